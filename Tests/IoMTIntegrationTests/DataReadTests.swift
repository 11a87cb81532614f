import Crypto
import Foundation
import IoMTCore
import IoMTEdge
import IoMTGateway
import Testing

/// Issue 5 §3 and §5 with real processes: a reader's signed request to the gateway, the consent
/// decision at the node's latest height, keys re-wrapped for the reader, blobs fetched from the
/// node and decrypted by the reader; every request, granted or refused, in the patient's audit
/// log, anchored on-chain and exportable as FHIR AuditEvent.
@Suite("reading patient data: signed requests, re-wrapped keys, audit", .serialized)
struct DataReadTests {
    /// A signed GET to the gateway, optionally with the headers tampered.
    static func signedGET(_ gw: HTTP, _ target: String, key: PrivateKey, chainID: String, nowMs: Int64 = Int64(Date().timeIntervalSince1970 * 1000),
                          claim: Address? = nil, headers fixed: [String: String]? = nil) async throws -> (HTTP.Reply, [String: String]) {
        let audience = try #require(Address(hex: try await gw.get("/v1/status").json["account"] as? String ?? ""))
        var h = fixed ?? SignedRequest.headers(key: key, chainID: chainID, audience: audience, method: "GET", target: target, nowMs: nowMs, nonce: SignedRequest.newNonce())
        if let claim { h["X-IoMT-Account"] = claim.hex }
        return (try await gw.send("GET", target, headers: h), h)
    }

    static func x25519(_ dir: String, _ name: String) throws -> (path: String, key: X25519Key) {
        let path = dir + "/\(name).x25519"
        let made = try runCLI(["keys", "x25519", "--out", path])
        return (path, try X25519Key(hex: (try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as? [String: String])?["publicKey"] ?? ""))
    }

    @Test("a granted reader decrypts the patient's batches locally; forged, stale, replayed, undelegated, wrong-purpose, expired, revoked and other-patient requests are refused with a reason; all of it is audited and anchored",
          .timeLimit(.minutes(5)))
    func readAndAudit() async throws {
        let dir = temporaryFolder()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let nodeDir = dir + "/node"
        let node = try NodeProcess(dataDir: nodeDir)
        defer { node.terminate() }
        let http = HTTP(base: node.url), chain = try DevChain(dataDir: nodeDir)
        let id = chain.chainID

        // The patient (keys from its secret), a second patient, a gateway, a doctor and a nurse
        // with published X25519 keys, and the patient's oximeter.
        let secret = PatientSecret.generate()
        let patient = try await ConsentAPITests.enrol(http, chain, secret)
        let subject = Pseudonym.of(patient.publicKey.address)
        let other = try await ConsentAPITests.enrol(http, chain, PatientSecret.generate())
        let otherSubject = Pseudonym.of(other.publicKey.address)
        let patientX = dir + "/patient.x25519"
        try Data(secret.agreementKey(at: "dev-hospital").rawRepresentation).write(to: URL(fileURLWithPath: patientX))
        let gatewayKey = PrivateKey.generate(.ed25519)
        let gatewayKeyPath = dir + "/gateway.key.json"
        try JSONEncoder().encode(KeyFile(gatewayKey)).write(to: URL(fileURLWithPath: gatewayKeyPath))
        try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: gatewayKey.publicKey, role: .gateway, organisation: "dev-hospital")))
        let doctor = PrivateKey.generate(.ed25519), nurse = PrivateKey.generate(.p256)
        let doctorPath = dir + "/doctor.key.json", patientPath = dir + "/patient.key.json"
        try JSONEncoder().encode(KeyFile(doctor)).write(to: URL(fileURLWithPath: doctorPath))
        try JSONEncoder().encode(KeyFile(patient)).write(to: URL(fileURLWithPath: patientPath))
        let doctorX = try Self.x25519(dir, "doctor"), nurseX = try Self.x25519(dir, "nurse")
        for (k, p, x) in [(doctor, "doctor", doctorX.key), (nurse, "nurse", nurseX.key)] {
            try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: k.publicKey, role: .practitioner, organisation: "dev-hospital")))
            try await GatewayTests.commit(http, chain, .attestPractitioner(AttestPractitioner(account: k.publicKey.address, profession: p, licenceHash: Hash.sha256(Array(p.utf8)))))
            try await GatewayTests.commit(http, chain, .setAgreementKey(SetAgreementKey(agreementKey: x)), key: k)
        }
        let oximeter = TestDevice(key: PrivateKey.generate(.ed25519), macKey: nil)
        try await GatewayTests.commit(http, chain, .registerDevice(RegisterDevice(publicKey: oximeter.key!.publicKey, deviceType: "pulse-oximeter", subject: subject,
                                                                                    recipientKey: try ConsentAPITests.agreementKey(secret, "dev-hospital"))))
        let gw = try GatewayProcess(dataDir: dir + "/gateway", key: gatewayKeyPath, node: node.url, extraArgs: ["--batch-ms", "200"])
        defer { gw.kill9() }

        // Three SpO2 readings, anchored.
        var last: Int64 = 0
        for (i, v) in [97, 96, 95].enumerated() {
            let r = try await oximeter.upload(gw.http, chainID: id, counter: UInt64(i + 1), body: try GatewayTests.spo2(v))
            #expect(r.status == 202, "\(r.text)")
            last = Int64(r.json["lastSequence"] as? Int ?? 0)
        }
        _ = try await GatewayTests.waitForProof(gw.http, last, signer: chain.admin, chainID: chain.chainID)

        let target = "/v1/patients/\(subject.hex)/data?category=vital-signs&purpose=treatment"
        func read(_ key: PrivateKey, _ t: String = target) async throws -> HTTP.Reply { try await Self.signedGET(gw.http, t, key: key, chainID: id).0 }
        func code(_ r: HTTP.Reply) -> String { r.json["code"] as? String ?? "" }

        // No grant yet: denied with the contract's reason.
        var r = try await read(doctor)
        #expect(r.status == 403 && code(r) == "access-denied" && r.text.contains("no grant"), "\(r.text)")
        // Granted, but the patient has not delegated re-wrapping to the gateway.
        let day: Int64 = 86_400_000, now = Int64(Date().timeIntervalSince1970 * 1000)
        try await GatewayTests.commit(http, chain, .grantConsent(GrantConsent(grantee: .account(doctor.publicKey.address), categories: ["vital-signs"], purposes: ["treatment"], expiresMs: now + day)), key: patient)
        r = try await read(doctor)
        #expect(r.status == 403 && code(r) == "no-delegation", "\(r.text)")
        let delegated = try runCLI(["tx", "submit", "--key", patientPath, "--node", node.url, "--wait", "--type", "set-rewrap-delegation", "--gateway", gatewayKey.publicKey.address.hex])
        #expect(delegated.status == 0, "\(delegated.stderr)")

        // The doctor reads through the CLI: signed request, blobs from the node, verified against
        // their anchors, decrypted with the re-wrapped key.
        var cli = try runCLI(["data", "read", "--gateway", gw.url, "--node", node.url, "--key", doctorPath, "--x25519", doctorX.path,
                              "--subject", subject.hex, "--category", "vital-signs", "--purpose", "treatment"])
        #expect(cli.status == 0, "\(cli.stderr)")
        let lines = cli.stdout.split(separator: "\n")
        #expect(lines.count == 3 && lines.allSatisfy { $0.contains("oxygen-saturation") }, "\(cli.stdout)")
        #expect(["97 %", "96 %", "95 %"].allSatisfy { v in lines.contains { $0.contains(v) } }, "\(cli.stdout)")
        #expect(cli.stderr.contains("verified against its anchor") && cli.stderr.contains("access by grant"), "\(cli.stderr)")
        // The wrapped key opens nothing for anyone else: the nurse's key cannot unwrap it.
        r = try await read(doctor)
        let served = try JSONDecoder().decode(Gateway.DataReply.self, from: r.body)
        let nursePrivate = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: try Data(contentsOf: URL(fileURLWithPath: nurseX.path)))
        #expect(throws: BlobError.self) { try SealedBlob.unwrap(served.batches[0].key, with: nursePrivate) }
        #expect(served.batches.allSatisfy { $0.key.recipient == doctorX.key.bytes })

        // Refusals, each with its reason.
        (r, _) = try await Self.signedGET(gw.http, target, key: nurse, chainID: id, claim: doctor.publicKey.address)
        #expect(r.status == 401 && code(r) == "bad-signature", "forged: \(r.text)")
        (r, _) = try await Self.signedGET(gw.http, target, key: doctor, chainID: id, nowMs: now - 10 * 60_000)
        #expect(r.status == 401 && code(r) == "stale-request", "\(r.text)")
        let (first, headers) = try await Self.signedGET(gw.http, target, key: doctor, chainID: id)
        #expect(first.status == 200)
        (r, _) = try await Self.signedGET(gw.http, target, key: doctor, chainID: id, headers: headers)
        #expect(r.status == 409 && code(r) == "replayed-request", "\(r.text)")
        r = try await read(doctor, "/v1/patients/\(subject.hex)/data?category=vital-signs&purpose=research")
        #expect(r.status == 403 && code(r) == "access-denied", "wrong purpose: \(r.text)")
        r = try await read(doctor, "/v1/patients/\(otherSubject.hex)/data?category=vital-signs&purpose=treatment")
        #expect(r.status == 403 && code(r) == "access-denied", "another patient's data: \(r.text)")
        r = try await read(doctor, "/v1/patients/\(subject.hex)/data?category=ecg&purpose=treatment")
        #expect(r.status == 403 && code(r) == "access-denied", "another category: \(r.text)")
        r = try await Self.signedGET(gw.http, target, key: doctor, chainID: "another-chain").0
        #expect(r.status == 401 && code(r) == "bad-signature", "a signature for another chain")
        r = try await gw.http.get(target)
        #expect(r.status == 401 && code(r) == "missing-credentials")

        // A grant that lapses: the nurse reads while it runs, not after.
        let lapse = Int64(Date().timeIntervalSince1970 * 1000) + 3_000
        try await GatewayTests.commit(http, chain, .grantConsent(GrantConsent(grantee: .account(nurse.publicKey.address), categories: ["vital-signs"], purposes: ["treatment"], expiresMs: lapse)), key: patient)
        r = try await read(nurse)
        #expect(r.status == 200 && (r.json["batches"] as? [[String: Any]])?.reduce(0, { $0 + ($1["count"] as? Int ?? 0) }) == 3, "\(r.text)")
        while Int64(Date().timeIntervalSince1970 * 1000) <= lapse { try await Task.sleep(nanoseconds: 200_000_000) }

        // The patient revokes the doctor's grant (this block also moves the chain's time past
        // the nurse's expiry). New readings arrive after; neither can read anything.
        let doctorGrant = try #require(Hash(hex: served.reference?.hex ?? ""))
        try await GatewayTests.commit(http, chain, .revokeConsent(RevokeConsent(grant: doctorGrant)), key: patient)
        r = try await read(doctor)
        #expect(r.status == 403 && code(r) == "access-denied", "revoked: \(r.text)")
        r = try await read(nurse)
        #expect(r.status == 403 && code(r) == "access-denied", "expired: \(r.text)")
        let more = try await oximeter.upload(gw.http, chainID: id, counter: 10, body: try GatewayTests.spo2(93))
        _ = try await GatewayTests.waitForProof(gw.http, Int64(more.json["lastSequence"] as? Int ?? 0), signer: chain.admin, chainID: chain.chainID)
        r = try await read(doctor)
        #expect(r.status == 403, "no new batch is readable by the former grantee")
        // The patient reads its own data, new batch included, with its own key (no grant needed).
        cli = try runCLI(["data", "read", "--gateway", gw.url, "--node", node.url, "--key", patientPath, "--x25519", patientX,
                          "--subject", subject.hex, "--category", "vital-signs", "--purpose", "treatment"])
        #expect(cli.status == 0 && cli.stdout.split(separator: "\n").count == 4 && cli.stderr.contains("access by own"), "\(cli.stdout)\(cli.stderr)")

        // The audit log: every request that named the patient, granted or refused, in order,
        // anchored on-chain in runs the CLI verifies against the chain.
        // (The test's own proof requests, signed by the custodian organisation's admin, are reads too.)
        let expected = ["granted", "access-denied", "no-delegation", "granted", "granted", "bad-signature", "stale-request", "granted", "replayed-request",
                        "access-denied", "access-denied", "bad-signature", "missing-credentials", "granted", "access-denied", "access-denied", "granted", "access-denied", "granted"]
        var audit: [[String: Any]] = []
        let deadline = Date().addingTimeInterval(60)
        repeat {
            let out = try runCLI(["audit", "--gateway", gw.url, "--node", node.url, "--key", patientPath, "--subject", subject.hex])
            #expect(out.status == 0, "\(out.stderr)")
            audit = out.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            if audit.count == expected.count, audit.allSatisfy({ $0["anchored"] as? String == "verified against the chain" }) { break }
            try await Task.sleep(nanoseconds: 300_000_000)
        } while Date() < deadline
        let codes = audit.compactMap { ($0["entry"] as? [String: Any])?["code"] as? String }
        #expect(codes == expected, "\(codes)")
        #expect(audit.compactMap { ($0["entry"] as? [String: Any])?["subjectSeq"] as? Int } == Array(1...expected.count), "the patient's entries are numbered without gaps")
        #expect(audit.allSatisfy { $0["anchored"] as? String == "verified against the chain" }, "\(audit.map { $0["anchored"] ?? "" })")
        let readers = Set(audit.compactMap { ($0["entry"] as? [String: Any])?["reader"] as? String })
        #expect(readers.isSuperset(of: [doctor.publicKey.address.hex, nurse.publicKey.address.hex, patient.publicKey.address.hex]))
        // The other patient's log has the doctor's attempt on its data, and only that.
        let otherPath = dir + "/other.key.json"
        try JSONEncoder().encode(KeyFile(other)).write(to: URL(fileURLWithPath: otherPath))
        let otherLog = try runCLI(["audit", "--gateway", gw.url, "--node", node.url, "--key", otherPath, "--subject", otherSubject.hex])
        #expect(otherLog.status == 0 && otherLog.stdout.split(separator: "\n").count == 1 && otherLog.stdout.contains("access-denied"), "\(otherLog.stdout)\(otherLog.stderr)")
        // Nobody else lists a patient's log.
        let snoop = try runCLI(["audit", "--gateway", gw.url, "--node", node.url, "--key", doctorPath, "--subject", subject.hex])
        #expect(snoop.status != 0 && snoop.stderr.contains("unauthorised"), "\(snoop.stderr)")
        // As FHIR AuditEvent resources.
        let fhir = try runCLI(["audit", "--gateway", gw.url, "--node", node.url, "--key", patientPath, "--subject", subject.hex, "--fhir"])
        let bundle = try #require(try JSONSerialization.jsonObject(with: Data(fhir.stdout.utf8)) as? [String: Any], "\(fhir.stderr)")
        let events = (bundle["entry"] as? [[String: Any]] ?? []).compactMap { $0["resource"] as? [String: Any] }
        #expect(events.count == expected.count && events.allSatisfy { $0["resourceType"] as? String == "AuditEvent" && $0["action"] as? String == "R" })
        #expect(events.map { $0["outcome"] as? String ?? "" } == expected.map { $0 == "granted" ? "0" : "4" })
        // A reading's proof carries the reading: for a patient's, only to an allowed, signed reader.
        #expect(try await gw.http.get("/v1/readings/\(last)/proof").status == 401, "unsigned")
        let (nurseProof, _) = try await Self.signedGET(gw.http, "/v1/readings/\(last)/proof", key: nurse, chainID: id)
        #expect(nurseProof.status == 403 && code(nurseProof) == "access-denied", "\(nurseProof.text)")
        // The log holds pseudonyms, codes and hashes, never a reading.
        #expect(!fhir.stdout.contains("oxygen") && !fhir.stdout.contains("%"))
    }

    @Test("erasure: the patient asks; reads and uploads stop at once; the gateway destroys the custody key and plaintext, the nodes delete the blobs; the CLI shows no live key remains",
          .timeLimit(.minutes(4)))
    func erasure() async throws {
        let dir = temporaryFolder()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let nodeDir = dir + "/node"
        let node = try NodeProcess(dataDir: nodeDir)
        defer { node.terminate() }
        let http = HTTP(base: node.url), chain = try DevChain(dataDir: nodeDir)
        let secret = PatientSecret.generate()
        let patient = try await ConsentAPITests.enrol(http, chain, secret)
        let subject = Pseudonym.of(patient.publicKey.address)
        let patientPath = dir + "/patient.key.json"
        try JSONEncoder().encode(KeyFile(patient)).write(to: URL(fileURLWithPath: patientPath))
        let gatewayKey = PrivateKey.generate(.ed25519)
        try JSONEncoder().encode(KeyFile(gatewayKey)).write(to: URL(fileURLWithPath: dir + "/gateway.key.json"))
        try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: gatewayKey.publicKey, role: .gateway, organisation: "dev-hospital")))
        let doctor = PrivateKey.generate(.ed25519), doctorX = try Self.x25519(dir, "doctor")
        try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: doctor.publicKey, role: .practitioner, organisation: "dev-hospital")))
        try await GatewayTests.commit(http, chain, .attestPractitioner(AttestPractitioner(account: doctor.publicKey.address, profession: "doctor", licenceHash: .zero)))
        try await GatewayTests.commit(http, chain, .setAgreementKey(SetAgreementKey(agreementKey: doctorX.key)), key: doctor)
        try await GatewayTests.commit(http, chain, .grantConsent(GrantConsent(grantee: .account(doctor.publicKey.address), categories: ["vital-signs"], purposes: ["treatment"],
                                                                             expiresMs: Int64(Date().timeIntervalSince1970 * 1000) + 86_400_000)), key: patient)
        try await GatewayTests.commit(http, chain, .setRewrapDelegation(SetRewrapDelegation(gateway: gatewayKey.publicKey.address)), key: patient)
        let oximeter = TestDevice(key: PrivateKey.generate(.ed25519), macKey: nil)
        try await GatewayTests.commit(http, chain, .registerDevice(RegisterDevice(publicKey: oximeter.key!.publicKey, deviceType: "pulse-oximeter", subject: subject)))
        let gw = try GatewayProcess(dataDir: dir + "/gateway", key: dir + "/gateway.key.json", node: node.url, extraArgs: ["--batch-ms", "200"])
        defer { gw.kill9() }
        var last: Int64 = 0
        for (i, v) in [91, 92, 93].enumerated() {
            let r = try await oximeter.upload(gw.http, chainID: chain.chainID, counter: UInt64(i + 1), body: try GatewayTests.spo2(v))
            last = Int64(r.json["lastSequence"] as? Int ?? 0)
        }
        _ = try await GatewayTests.waitForProof(gw.http, last, signer: chain.admin, chainID: chain.chainID)
        let plain = try #require(try GatewayStore(path: dir + "/gateway/gateway.sqlite").reading(seq: last)).reading.canonicalBytes
        let read = ["data", "read", "--gateway", gw.url, "--node", node.url, "--key", dir + "/doctor.key.json", "--x25519", doctorX.path,
                    "--subject", subject.hex, "--category", "vital-signs", "--purpose", "treatment"]
        try JSONEncoder().encode(KeyFile(doctor)).write(to: URL(fileURLWithPath: dir + "/doctor.key.json"))
        #expect(try runCLI(read).stdout.split(separator: "\n").count == 3)
        let cids = try #require(try await gw.http.get("/v1/patients/\(subject.hex)/erasure/blobs").json["cids"] as? [String])
        #expect(!cids.isEmpty)
        #expect(try await http.get("/v1/blobs/\(cids[0])").status == 200)
        let notYet = try runCLI(["patient", "erasure", "--pseudonym", subject.hex, "--node", node.url, "--gateway", gw.url])
        #expect(notYet.status != 0 && notYet.stdout.contains("\"complete\" : false"))

        // The patient asks. Reads are refused from that block on, uploads at once.
        let asked = try runCLI(["tx", "submit", "--key", patientPath, "--node", node.url, "--wait", "--type", "request-erasure", "--subject", subject.hex])
        #expect(asked.status == 0, "\(asked.stderr)")
        let denied = try runCLI(read)
        #expect(denied.status != 0 && denied.stderr.contains("erased"), "\(denied.stderr)")
        var refused = HTTP.Reply(status: 0, body: Data(), headers: [:])
        for attempt in 0..<50 {
            refused = try await oximeter.upload(gw.http, chainID: chain.chainID, counter: UInt64(10 + attempt), body: try GatewayTests.spo2(90))
            if refused.status == 410 { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        #expect(refused.status == 410 && refused.json["code"] as? String == "subject-erased", "\(refused.text)")

        // Everywhere: the CLI shows complete (custody key destroyed, no plaintext, confirmations
        // committed, no node or gateway serves any of the blobs).
        var report = (status: Int32(1), stdout: "", stderr: "")
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            report = try runCLI(["patient", "erasure", "--pseudonym", subject.hex, "--node", node.url, "--gateway", gw.url])
            if report.status == 0 { break }
            try await Task.sleep(nanoseconds: 300_000_000)
        }
        #expect(report.status == 0 && report.stdout.contains("\"custodyKey\" : \"destroyed\""), "\(report.stdout)\(report.stderr)")
        let gone = try await http.get("/v1/blobs/\(cids[0])")
        #expect(gone.status == 410 && gone.json["code"] as? String == "blob-erased")
        #expect(try await gw.http.get("/v1/readings/\(last)/proof").status == 404, "the reading itself is gone from the gateway")
        // The plaintext is not left in the gateway's database file or its log either.
        for file in ["gateway.sqlite", "gateway.sqlite-wal"] {
            let bytes = Array((FileManager.default.contents(atPath: dir + "/gateway/" + file)) ?? Data())
            #expect(!PHIScanTests.contains(bytes, plain), "a reading's plaintext is still in \(file)")
        }
        // The chain keeps its hashes: the anchor is still there, marked erased.
        #expect(try await http.get("/v1/state/" + Hex.encode(StateKeys.erasure(subject))).json["value"] as? String != nil)
    }

    @Test("a transaction the chain refuses is set aside, not retried for ever: a gateway restored without its audit log still anchors readings", .timeLimit(.minutes(3)))
    func refusedTransactionDoesNotWedge() async throws {
        let dir = temporaryFolder()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let node = try NodeProcess(dataDir: dir + "/node")
        defer { node.terminate() }
        let http = HTTP(base: node.url), chain = try DevChain(dataDir: dir + "/node")
        let gatewayKey = PrivateKey.generate(.ed25519)
        try JSONEncoder().encode(KeyFile(gatewayKey)).write(to: URL(fileURLWithPath: dir + "/gateway.key.json"))
        try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: gatewayKey.publicKey, role: .gateway, organisation: "dev-hospital")))
        let thermometer = TestDevice(key: PrivateKey.generate(.ed25519), macKey: nil)
        try await GatewayTests.commit(http, chain, .registerDevice(RegisterDevice(publicKey: thermometer.key!.publicKey, deviceType: "thermometer", place: "ward-3")))
        let someone = Hash.sha256([42])
        func headOnChain() async throws -> UInt64 {
            guard let hex = try await http.get("/v1/state/" + Hex.encode(StateKeys.auditHead(gatewayKey.publicKey.address))).json["value"] as? String,
                  let bytes = Hex.decode(hex) else { return 0 }
            return try AuditHead(canonicalBytes: bytes).lastSeq
        }
        // The first gateway logs three refused requests and anchors them as its audit run 1…3.
        var gw = try GatewayProcess(dataDir: dir + "/gateway-1", key: dir + "/gateway.key.json", node: node.url, extraArgs: ["--batch-ms", "200"])
        for _ in 0..<3 { _ = try await gw.http.get("/v1/patients/\(someone.hex)/data?category=ecg&purpose=research") }
        let deadline = Date().addingTimeInterval(30)
        while try await headOnChain() < 3, Date() < deadline { try await Task.sleep(nanoseconds: 200_000_000) }
        #expect(try await headOnChain() == 3)
        gw.kill9()
        // Restored without its store (same account): its audit runs start at 1 again. A run the
        // chain covers counts as committed; one that straddles the chain's head is refused. The
        // run boundaries follow the gateway's 2-s timer: if one falls exactly after the chain's head
        // the next run follows on and is rightly accepted; then the test restores again (the
        // chance of that twice running is small). Readings must be anchored either way.
        var refusedOnce = false
        for attempt in 0..<3 where !refusedOnce {
            let head = try await headOnChain()
            gw = try GatewayProcess(dataDir: dir + "/gateway-\(attempt + 2)", key: dir + "/gateway.key.json", node: node.url, extraArgs: ["--batch-ms", "200"])
            let restored = gw
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<Int(head) + 3 { group.addTask { _ = try await restored.http.get("/v1/patients/\(someone.hex)/data?category=ecg&purpose=research") } }
                try await group.waitForAll()
            }
            let settled = Date().addingTimeInterval(30)
            while Date() < settled {
                let status = try await gw.http.get("/v1/status").json
                if (status["refusedTransactions"] as? Int ?? 0) >= 1 { refusedOnce = true; break }
                if try await headOnChain() > head { break }
                try await Task.sleep(nanoseconds: 200_000_000)
            }
            if !refusedOnce && attempt < 2 { gw.kill9() }
        }
        defer { gw.kill9() }
        #expect(refusedOnce, "a restored gateway's straddling audit run is refused and set aside")
        let r = try await thermometer.upload(gw.http, chainID: chain.chainID, counter: 1, body: Array("time,code,value,unit\n2026-12-01T08:00:00Z,8310-5,37.1,Cel\n".utf8), contentType: "text/csv")
        #expect(r.status == 202, "\(r.text)")
        _ = try await GatewayTests.waitForProof(gw.http, Int64(r.json["firstSequence"] as? Int ?? 0), signer: chain.admin, chainID: chain.chainID)
        let status = try await gw.http.get("/v1/status").json
        #expect((status["refusedTransactions"] as? Int ?? 0) >= 1, "\(status)")
        #expect(gw.log.contains("refused by the chain"), "the refusal is logged")
    }
}
