import ArgumentParser
@preconcurrency import Crypto
import Dispatch
import Foundation
import IoMTContracts
import IoMTCore
import IoMTEdge
import IoMTGateway
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `iomtchain bench-consent`: issue 5's performance figures. (1) Consent decisions per second on
/// one thread over a state of many patients, grants and practitioners, against a baseline of raw
/// state lookups on the same state. (2) The time to serve an authorised read of one batch, as the
/// reader sees it: signed request, consent check and key re-wrap at the gateway, blob fetched from
/// the node, checked against its content id and on-chain anchor, decrypted, root recomputed — on a
/// dev node and a gateway started as processes, against a baseline of a plain GET to the node.
struct BenchConsentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-consent",
        abstract: "Benchmark consent decisions per second (one thread) and the latency of an authorised read of one batch (node and gateway processes).")

    @Option(help: "Patients in the state.") var patients = 10_000
    @Option(help: "Practitioners in the state.") var practitioners = 1_000
    @Option(help: "Seconds per throughput measurement.") var seconds = 5.0
    @Option(help: "Authorised reads to time.") var reads = 300
    @Flag(help: "Only the consent-decision throughput (no processes).") var skipReads = false
    @Option(help: "Scratch folder for the node and gateway (deleted afterwards).") var scratch = NSTemporaryDirectory() + "iomt-bench-consent-\(getpid())"

    func run() async throws {
        print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; load average \(loadAverage())")
        try decisions()
        if !skipReads { try await authorisedReads() }
    }

    // MARK: (1) decisions per second

    func decisions() throws {
        let orgs = (0..<10).map { "org-\($0)" }
        let professions = ["doctor", "nurse", "paramedic"]
        var pairs: [(key: [UInt8], value: [UInt8])] = []
        func key(_ prefix: String, _ i: Int) -> PrivateKey { try! PrivateKey(algorithm: .ed25519, rawBytes: Hash.domain(prefix, UInt64(i).canonicalBytes).bytes) }
        var readers: [Address] = []
        for i in 0..<practitioners {
            let k = key("bench/practitioner", i)
            let a = Account(address: k.publicKey.address, publicKey: k.publicKey, role: .practitioner, organisation: orgs[i % orgs.count], registeredAtHeight: 1)
            pairs.append((StateKeys.account(a.address), a.canonicalBytes))
            let att = AttestPractitioner(account: a.address, profession: professions[i % professions.count], licenceHash: .zero)
            pairs.append((StateKeys.practitioner(a.address), PractitionerRecord(attestation: att, organisation: a.organisation, attestedBy: .zero, height: 1).canonicalBytes))
            readers.append(a.address)
        }
        var subjects: [Hash] = []
        var grantCount = 0
        for i in 0..<patients {
            let k = key("bench/patient", i)
            let org = orgs[i % orgs.count]
            let acct = Account(address: k.publicKey.address, publicKey: k.publicKey, role: .patient, organisation: org, registeredAtHeight: 1)
            let subject = Pseudonym.of(acct.address)
            pairs.append((StateKeys.account(acct.address), acct.canonicalBytes))
            pairs.append((StateKeys.patient(subject), PatientRecord(pseudonym: subject, account: acct.address, organisation: org, enrolledBy: .zero, height: 1).canonicalBytes))
            // Three grants each: one practitioner (vital signs, ECG; treatment), the patient's
            // organisation (laboratory; research), doctors anywhere (diagnoses; treatment).
            let grants = [
                GrantConsent(grantee: .account(readers[(i * 7) % readers.count]), categories: ["vital-signs", "ecg"], purposes: ["treatment"], expiresMs: .max),
                GrantConsent(grantee: .organisation(org), categories: ["laboratory"], purposes: ["research"], expiresMs: .max),
                GrantConsent(grantee: .attributes(role: .practitioner, profession: "doctor", organisation: nil), categories: ["diagnoses"], purposes: ["treatment"], expiresMs: .max),
            ]
            var ids: [Hash] = []
            for (j, g) in grants.enumerated() {
                let id = Hash.domain("bench/grant", subject.bytes, [UInt8(j)])
                ids.append(id)
                pairs.append((StateKeys.consent(id), ConsentRecord(id: id, subject: subject, grant: g, grantedAtMs: 0, height: 1).canonicalBytes))
            }
            grantCount += ids.count
            pairs.append((StateKeys.consents(of: subject), IDList(ids).canonicalBytes))
            subjects.append(subject)
        }
        let state = AuthenticatedState.build(pairs)
        print("state: \(patients) patients, \(grantCount) grants, \(practitioners) attested practitioners (\(pairs.count) entries)")

        var rng = SystemRandomNumberGenerator()
        // Half the questions come from the practitioner a patient granted (mostly allowed), half
        // from anyone about anything (mostly denied, after every grant was looked at).
        let queries = (0..<65_536).map { n -> AccessQuery in
            let i = Int.random(in: 0..<subjects.count, using: &rng)
            let category = ["vital-signs", "ecg", "laboratory", "diagnoses", "location"][Int.random(in: 0..<5, using: &rng)]
            if n % 2 == 0 {
                return AccessQuery(reader: readers[(i * 7) % readers.count], subject: subjects[i], category: category, purpose: "treatment", dataFromMs: 1_000, dataUntilMs: 2_000)
            }
            return AccessQuery(reader: readers[Int.random(in: 0..<readers.count, using: &rng)], subject: subjects[i], category: category,
                               purpose: ["treatment", "research"][Int.random(in: 0..<2, using: &rng)], dataFromMs: 1_000, dataUntilMs: 2_000)
        }
        // Baseline: one state lookup (the account of a random reader), the unit a decision is made of.
        let lookupKeys = readers.map { StateKeys.account($0) }
        var sink = 0
        let lookups = timed(seconds) { i in if state.value(forKey: lookupKeys[i % lookupKeys.count]) != nil { sink &+= 1 } }
        var allowed = 0
        let checks = timed(seconds) { i in
            if (try? Consent.decide(queries[i % queries.count], state: state, atMs: 5_000))?.allowed == true { allowed += 1 }
        }
        print(String(format: "consent decisions: %.0f /s on one thread (%.1f µs each; %.0f%% allowed); baseline state lookups %.0f /s; a decision costs %.1f lookups",
                     checks.perSecond, 1e6 / checks.perSecond, 100 * Double(allowed) / Double(max(1, checks.count)), lookups.perSecond, lookups.perSecond / checks.perSecond))
        if sink < 0 { print(sink) }
    }

    /// Runs `body` on this thread for `seconds`; returns how many times and the rate.
    func timed(_ seconds: Double, _ body: (Int) -> Void) -> (count: Int, perSecond: Double) {
        let start = DispatchTime.now().uptimeNanoseconds
        let end = start + UInt64(seconds * 1e9)
        var n = 0
        var now = start
        while now < end {
            for _ in 0..<256 { body(n); n += 1 }
            now = DispatchTime.now().uptimeNanoseconds
        }
        return (n, Double(n) / (Double(now - start) / 1e9))
    }

    // MARK: (2) authorised reads

    func authorisedReads() async throws {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        try? FileManager.default.removeItem(atPath: scratch)
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let (nodeProcess, nodeURL) = try await Self.launch(executable, ["node", "run", "--dev", "--data-dir", scratch + "/node", "--http", "127.0.0.1:0"],
                                                           log: scratch + "/node.log", marker: "http listening on 127.0.0.1:")
        defer { nodeProcess.terminate(); nodeProcess.waitUntilExit() }
        let admin = try KeyFile.load(path: scratch + "/node/admin.key.json")
        let client = NodeClient(base: nodeURL)
        let chainID = try await chainID(of: nodeURL)
        func commit(_ payload: TransactionPayload, by key: PrivateKey) async throws {
            struct A: Decodable { var nextNonce: UInt64? }
            let nonce = try await client.get("/v1/accounts/\(key.publicKey.address.hex)", as: A.self).nextNonce ?? 0
            let tx = Transaction(chainID: chainID, sender: key.publicKey.address, signerKey: key.publicKey, nonce: nonce, payload: payload).signed(with: key)
            let r = try await client.request("POST", "/v1/transactions?wait=commit", body: try JSONEncoder().encode(tx))
            guard r.status == 200 else { throw CLIError("\(payload.kind): \(client.problemText(r))") }
        }
        let org = "dev-hospital"
        let secret = PatientSecret.generate()
        let patient = secret.signingKey(at: org)
        let subject = Pseudonym.of(patient.publicKey.address)
        try await commit(.registerPatient(RegisterPatient(signedBy: patient, agreementKey: try X25519Key(bytes: Array(secret.agreementKey(at: org).publicKey.rawRepresentation)), chainID: chainID, organisation: org)), by: admin)
        let gatewayKey = PrivateKey.generate(.ed25519)
        try KeyFile.save(gatewayKey, path: scratch + "/gateway.key.json")
        try await commit(.registerAccount(RegisterAccount(publicKey: gatewayKey.publicKey, role: .gateway, organisation: org)), by: admin)
        let doctor = PrivateKey.generate(.ed25519), doctorX = Curve25519.KeyAgreement.PrivateKey()
        try await commit(.registerAccount(RegisterAccount(publicKey: doctor.publicKey, role: .practitioner, organisation: org)), by: admin)
        try await commit(.attestPractitioner(AttestPractitioner(account: doctor.publicKey.address, profession: "doctor", licenceHash: .zero)), by: admin)
        try await commit(.setAgreementKey(SetAgreementKey(agreementKey: try X25519Key(bytes: Array(doctorX.publicKey.rawRepresentation)))), by: doctor)
        try await commit(.grantConsent(GrantConsent(grantee: .account(doctor.publicKey.address), categories: ["vital-signs"], purposes: ["treatment"], expiresMs: nowMs() + 86_400_000)), by: patient)
        try await commit(.setRewrapDelegation(SetRewrapDelegation(gateway: gatewayKey.publicKey.address)), by: patient)
        let device = PrivateKey.generate(.ed25519)
        try await commit(.registerDevice(RegisterDevice(publicKey: device.publicKey, deviceType: "pulse-oximeter", subject: subject)), by: admin)
        let (gatewayProcess, gatewayURL) = try await Self.launch(executable, ["gateway", "run", "--data-dir", scratch + "/gateway", "--key", scratch + "/gateway.key.json",
                                                                             "--node", nodeURL, "--http", "127.0.0.1:0", "--batch-ms", "100", "--batch-size", "100"],
                                                                 log: scratch + "/gateway.log", marker: "gateway http listening on 127.0.0.1:")
        defer { gatewayProcess.terminate(); gatewayProcess.waitUntilExit() }
        // One batch of 100 heart-rate readings.
        let csv = "time,code,value,unit\n" + (0..<100).map { "2026-12-01T08:\(String(format: "%02d", $0 / 2)):\($0 % 2 == 0 ? "00" : "30")Z,8867-4,\(60 + $0 % 30),/min" }.joined(separator: "\n") + "\n"
        let body = Array(csv.utf8)
        let message = UploadAuth.message(chainID: chainID, device: device.publicKey.address, counter: 1, contentType: "text/csv", body: body)
        let (_, resp) = try await URLSession.shared.data(for: DeviceUpload.request(gateway: gatewayURL, device: device.publicKey.address, counter: 1, contentType: "text/csv", tag: device.sign(message).bytes, body: body))
        guard (resp as? HTTPURLResponse)?.statusCode == 202 else { throw CLIError("upload refused: HTTP \((resp as? HTTPURLResponse)?.statusCode ?? 0)") }
        struct Status: Decodable { var unanchored: Int }
        let deadline = Date().addingTimeInterval(60)
        while try await NodeClient(base: gatewayURL).get("/v1/status", as: Status.self).unanchored > 0 {
            guard Date() < deadline else { throw CLIError("the batch was not anchored within 60 s") }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        try await Task.sleep(nanoseconds: 500_000_000)   // the gateway marks the batch committed on its next pass

        let target = "/v1/patients/\(subject.hex)/data?category=vital-signs&purpose=treatment"
        struct GatewayStatus: Decodable { var account: Address }
        let audience = try await NodeClient(base: gatewayURL).get("/v1/status", as: GatewayStatus.self).account
        var total: [Double] = [], gatewayPart: [Double] = [], baseline: [Double] = []
        for i in 0..<(reads + 10) {
            let b0 = DispatchTime.now().uptimeNanoseconds
            _ = try await client.request("GET", "/v1/status")
            let t0 = DispatchTime.now().uptimeNanoseconds
            let r = try await signedGET(gatewayURL, target, key: doctor, chainID: chainID, audience: audience)
            guard r.status == 200 else { throw CLIError(NodeClient(base: gatewayURL).problemText(r)) }
            let t1 = DispatchTime.now().uptimeNanoseconds
            let reply = try JSONDecoder().decode(Gateway.DataReply.self, from: r.body)
            guard reply.batches.count == 1, let b = reply.batches.first, let id = ContentID(b.cid) else { throw CLIError("expected one batch, got \(reply.batches.count)") }
            guard let anchorBytes = try await stateValue(nodeURL, StateKeys.anchor(b.batchRoot)), let anchor = try? AnchorRecord(canonicalBytes: anchorBytes),
                  anchor.anchor.blobDigest == id.digest else { throw CLIError("the batch's anchor does not match") }
            let blob = try await client.request("GET", "/v1/blobs/\(id)")
            let bytes = Array(blob.body)
            guard blob.status == 200, id.matches(bytes) else { throw CLIError("the node's blob does not match its id") }
            let readings = try SealedBlob(bytes: bytes).open(dataKey: try SealedBlob.unwrap(b.key, with: doctorX))
            guard readings.count == 100, ReadingBatch(readings).root == b.batchRoot else { throw CLIError("the batch does not rebuild its root") }
            let t2 = DispatchTime.now().uptimeNanoseconds
            if i >= 10 {   // the first ten warm up connections and caches
                baseline.append(Double(t0 - b0) / 1e6); gatewayPart.append(Double(t1 - t0) / 1e6); total.append(Double(t2 - t0) / 1e6)
            }
        }
        let p = Percentiles(total), g = Percentiles(gatewayPart), base = Percentiles(baseline)
        print(String(format: "authorised read of one batch (100 readings), %d reads, sequential: total p50 %.2f ms, p99 %.2f ms, max %.2f ms; of which the gateway (signature, nonce, consent check at the node, re-wrap, audit write) p50 %.2f ms, p99 %.2f ms; baseline GET /v1/status p50 %.2f ms, p99 %.2f ms (read p50 = %.1f× baseline)",
                     p.count, p.p50, p.p99, p.max, g.p50, g.p99, base.p50, base.p99, p.p50 / max(base.p50, 0.001)))
    }

    /// Starts `args` and waits for `marker` followed by the port in its log; returns its URL.
    static func launch(_ executable: String, _ args: [String], log: String, marker: String) async throws -> (Process, String) {
        let p = try startProcess(executable, args, log: log)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if let r = text.range(of: marker), let port = Int(text[r.upperBound...].prefix { $0.isNumber }) { return (p, "http://127.0.0.1:\(port)") }
            guard p.isRunning else { throw CLIError("\(args.prefix(2).joined(separator: " ")) exited: \(text.suffix(500))") }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        p.terminate()
        throw CLIError("\(args.prefix(2).joined(separator: " ")) did not start within 60 s (see \(log))")
    }
}
