import Crypto
import Foundation
import IoMTCore
import IoMTEdge
import IoMTGateway
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A gateway process in front of a dev node process.
final class GatewayProcess: @unchecked Sendable {
    let dataDir: String
    let logPath: String
    var process = Process()
    private(set) var port = 0
    let args: [String]

    var url: String { "http://127.0.0.1:\(port)" }
    var http: HTTP { HTTP(base: url) }

    init(dataDir: String, key: String, node: String, extraArgs: [String] = []) throws {
        self.dataDir = dataDir
        logPath = dataDir + ".log"
        args = ["gateway", "run", "--data-dir", dataDir, "--key", key, "--node", node] + extraArgs
        try start()
    }

    func start() throws {
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        let marker = "\n--- start \(UUID().uuidString)\n"
        log.write(Data(marker.utf8))
        process = Process()
        process.executableURL = URL(fileURLWithPath: binaryPath)
        process.arguments = args + ["--http", "127.0.0.1:0"]
        process.standardError = log
        process.standardOutput = log
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let text = self.log.components(separatedBy: marker).last ?? ""
            if let r = text.range(of: "gateway http listening on 127.0.0.1:"), let p = Int(text[r.upperBound...].prefix { $0.isNumber }) { port = p; return }
            if !process.isRunning { throw TestFailure("gateway exited early:\n\(text)") }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw TestFailure("gateway did not start")
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func kill9() { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    deinit { if process.isRunning { kill9() } }
}

/// A signing device: signs each upload with its key and a counter.
struct TestDevice {
    let key: PrivateKey?
    let macKey: [UInt8]?
    var id: Address { key?.publicKey.address ?? DeviceID.forMACKey(hash: Hash.sha256(macKey!)) }

    func upload(_ gw: HTTP, chainID: String, counter: UInt64, body: [UInt8], contentType: String = "application/fhir+json", forge: Bool = false) async throws -> HTTP.Reply {
        let message = UploadAuth.message(chainID: chainID, device: id, counter: counter, contentType: contentType, body: body)
        var tag = key.map { $0.sign(message).bytes } ?? UploadAuth.mac(key: macKey!, message: message)
        if forge { tag[0] ^= 1 }
        let req = DeviceUpload.request(gateway: gw.base, device: id, counter: counter, contentType: contentType, tag: tag, body: body)
        let (data, resp) = try await URLSession.shared.data(for: req)
        return HTTP.Reply(status: (resp as! HTTPURLResponse).statusCode, body: data, headers: [:])
    }
}

@Suite("edge gateway: real node and gateway processes", .serialized)
struct GatewayTests {
    static let examples = URL(fileURLWithPath: packageRoot + "/Tests/IoMTEdgeTests/Fixtures/fhir-examples")
    static func example(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: examples.appendingPathComponent(name))) }

    /// Submits a transaction from the dev admin (or `key`) and waits for its commit.
    static func commit(_ node: HTTP, _ chain: DevChain, _ payload: TransactionPayload, key: PrivateKey? = nil) async throws {
        let k = key ?? chain.admin
        let acct = try await node.get("/v1/accounts/\(k.publicKey.address.hex)").json
        let nonce = UInt64(acct["nextNonce"] as? Int ?? 0)
        let tx = Transaction(chainID: chain.chainID, sender: k.publicKey.address, signerKey: k.publicKey, nonce: nonce, payload: payload).signed(with: k)
        let r = try await node.post("/v1/transactions?wait=commit", try chain.json(tx))
        guard r.status == 200 else { throw TestFailure("\(payload.kind): HTTP \(r.status) \(r.text)") }
    }

    /// A dev node, a registered gateway account (its key file in `dir`) and one registered signing
    /// device bound to `subject`.
    struct Setup {
        let node: NodeProcess
        let nodeHTTP: HTTP
        let chain: DevChain
        let keyPath: String
        let device: TestDevice
        /// The pseudonym of the device's (enrolled) patient.
        let subject: Hash
    }

    static func setUp(_ dir: String, deviceKey: PrivateKey, recipientKey: X25519Key? = nil) async throws -> Setup {
        let nodeDir = dir + "/node"
        let node = try NodeProcess(dataDir: nodeDir)
        let nodeHTTP = HTTP(base: node.url)
        let chain = try DevChain(dataDir: nodeDir)
        let gatewayKey = PrivateKey.generate(.ed25519)
        let keyPath = dir + "/gateway.key.json"
        try JSONEncoder().encode(KeyFile(gatewayKey)).write(to: URL(fileURLWithPath: keyPath))
        try await commit(nodeHTTP, chain, .registerAccount(RegisterAccount(publicKey: gatewayKey.publicKey, role: .gateway, organisation: "dev-hospital")))
        // The device's patient, enrolled first (a device binds only to an enrolled patient), with
        // `recipientKey` as its X25519 key when given.
        let patient = PrivateKey.generate(.ed25519)
        let agreement = try recipientKey ?? X25519Key(bytes: Array(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation))
        try await commit(nodeHTTP, chain, .registerPatient(RegisterPatient(signedBy: patient, agreementKey: agreement, chainID: chain.chainID, organisation: "dev-hospital")))
        let subject = Pseudonym.of(patient.publicKey.address)
        try await commit(nodeHTTP, chain, .registerDevice(RegisterDevice(publicKey: deviceKey.publicKey, deviceType: "pulse-oximeter", subject: subject, recipientKey: recipientKey)))
        return Setup(node: node, nodeHTTP: nodeHTTP, chain: chain, keyPath: keyPath, device: TestDevice(key: deviceKey, macKey: nil), subject: subject)
    }

    /// Waits until reading `seq` has a proof; asks with a request signed by `signer` (a member-admin
    /// of the gateway's organisation may read a patient's reading's proof).
    static func waitForProof(_ gw: HTTP, _ seq: Int64, seconds: Double = 40, signer: PrivateKey, chainID: String) async throws -> HTTP.Reply {
        let deadline = Date().addingTimeInterval(seconds)
        var last: HTTP.Reply?
        while Date() < deadline {
            let target = "/v1/readings/\(seq)/proof"
            let audience = try #require(Address(hex: try await gw.get("/v1/status").json["account"] as? String ?? ""))
            let r = try await gw.send("GET", target, headers: SignedRequest.headers(key: signer, chainID: chainID, audience: audience, method: "GET", target: target,
                                                                                  nowMs: Int64(Date().timeIntervalSince1970 * 1000), nonce: SignedRequest.newNonce()))
            if r.status == 200 { return r }
            last = r
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw TestFailure("no proof for reading \(seq): \(last?.status ?? 0) \(last?.text ?? "")")
    }

    @Test("devices upload FHIR and CSV signed or MAC'd; bad uploads are refused with a reason and counted; readings are sealed, stored by CID, anchored, and each one verifies offline; kill -9 of the gateway loses nothing acknowledged",
          .timeLimit(.minutes(4)))
    func endToEnd() async throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Accounts and devices on the chain: a gateway account, a signing oximeter bound to a
        // patient pseudonym, a MAC thermometer bound to a ward (its key made by the gateway CLI).
        // The patient's X25519 key (made with the CLI) is the oximeter's data-key recipient.
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let patientKeyPath = dir + "/patient.x25519"
        let made = try runCLI(["keys", "x25519", "--out", patientKeyPath])
        let patientPublic = try X25519Key(hex: (try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as? [String: String])?["publicKey"] ?? "")
        let setup = try await Self.setUp(dir, deviceKey: PrivateKey.generate(.p256), recipientKey: patientPublic)
        let node = setup.node, nodeHTTP = setup.nodeHTTP, chain = setup.chain, keyPath = setup.keyPath, oximeter = setup.device
        let nodeDir = dir + "/node"
        defer { node.terminate() }
        let gwDir = dir + "/gateway"
        let mac = try runCLI(["gateway", "mac-key", "--data-dir", gwDir])
        #expect(mac.status == 0, "\(mac.stderr)")
        let macInfo = try JSONSerialization.jsonObject(with: Data(mac.stdout.utf8)) as! [String: String]
        let thermometer = TestDevice(key: nil, macKey: Hex.decode(macInfo["macKey"]!)!)
        #expect(thermometer.id.hex == macInfo["device"])
        try await Self.commit(nodeHTTP, chain, .registerDevice(RegisterDevice(macKeyHash: Hash(hex: macInfo["macKeyHash"]!)!, deviceType: "thermometer", place: "ward-7")))

        let gw = try GatewayProcess(dataDir: gwDir, key: keyPath, node: node.url, extraArgs: ["--batch-ms", "200", "--batch-size", "50"])
        let id = chain.chainID

        // Accepted: FHIR Observation, a Bundle of two, CSV from the MAC device.
        let hr = try Self.example("observation-example-heart-rate.json")
        var r = try await oximeter.upload(gw.http, chainID: id, counter: 1, body: hr)
        #expect(r.status == 202, "\(r.text)")
        let first = Int64(r.json["firstSequence"] as? Int ?? 0)
        let spo2 = String(decoding: try Self.example("observation-example-satO2.json"), as: UTF8.self)
        let bundle = Array(#"{"resourceType":"Bundle","type":"batch","entry":[{"resource":\#(spo2)},{"resource":\#(String(decoding: hr, as: UTF8.self))}]}"#.utf8)
        r = try await oximeter.upload(gw.http, chainID: id, counter: 2, body: bundle)
        #expect(r.status == 202 && r.json["accepted"] as? Int == 2, "\(r.text)")
        let csv = Array("time,code,value,unit\n2026-12-01T08:00:00Z,8310-5,38.4,Cel\n2026-12-01T08:05:00Z,8310-5,38.6,Cel\n".utf8)
        r = try await thermometer.upload(gw.http, chainID: id, counter: 1, body: csv, contentType: "text/csv")
        #expect(r.status == 202, "\(r.text)")
        let csvSeq = Int64(r.json["firstSequence"] as? Int ?? 0)
        // 120 readings in one upload, batches of 50: sealed as three batches in one pass.
        let many = "time,code,value,unit\n" + (0..<120).map { "2026-12-01T09:\(String(format: "%02d", $0 / 2)):\($0 % 2 == 0 ? "00" : "30")Z,8310-5,37.\($0 % 10),Cel" }.joined(separator: "\n") + "\n"
        r = try await thermometer.upload(gw.http, chainID: id, counter: 3, body: Array(many.utf8), contentType: "text/csv")
        #expect(r.status == 202 && r.json["accepted"] as? Int == 120, "\(r.text)")
        let manyFirst = Int64(r.json["firstSequence"] as? Int ?? 0), manyLast = Int64(r.json["lastSequence"] as? Int ?? 0)

        // Refused, each with its reason, and nothing queued for them.
        let before = try await gw.http.get("/v1/status").json["queue"] as? [String: Int]
        r = try await oximeter.upload(gw.http, chainID: id, counter: 2, body: hr)
        #expect(r.status == 409 && r.json["code"] as? String == "replay")
        r = try await oximeter.upload(gw.http, chainID: id, counter: 3, body: hr, forge: true)
        #expect(r.status == 401 && r.json["code"] as? String == "bad-signature")
        r = try await TestDevice(key: PrivateKey.generate(.ed25519), macKey: nil).upload(gw.http, chainID: id, counter: 1, body: hr)
        #expect(r.status == 401 && r.json["code"] as? String == "unknown-device")
        r = try await oximeter.upload(gw.http, chainID: id, counter: 4, body: try Self.example("patient-example.json"))
        #expect(r.status == 422 && r.json["code"] as? String == "not-an-observation", "\(r.text)")
        r = try await oximeter.upload(gw.http, chainID: id, counter: 5, body: Array(#"{"resourceType":"Observation""#.utf8))
        #expect(r.status == 400 && r.json["code"] as? String == "malformed")
        r = try await thermometer.upload(gw.http, chainID: id, counter: 2, body: Array("time,code,value,unit\n2026-12-01T08:00:00Z,8310-5,38.4,\n".utf8), contentType: "text/csv")
        #expect(r.status == 422 && r.json["code"] as? String == "missing-unit")
        r = try await oximeter.upload(gw.http, chainID: "another-chain", counter: 6, body: hr)
        #expect(r.status == 401, "a signature for another chain does not verify here")
        let status = try await gw.http.get("/v1/status").json
        #expect((status["queue"] as? [String: Int])?["readings"] == before?["readings"], "refused uploads queued nothing")
        let refused = status["refused"] as? [String: Int] ?? [:]
        #expect(refused["replay"] == 1 && refused["bad-signature"] == 2 && refused["unknown-device"] == 1 && refused["not-an-observation"] == 1, "\(refused)")

        // Every reading gets a proof that verifies offline against the genesis validators.
        let proofReply = try await Self.waitForProof(gw.http, first, signer: chain.admin, chainID: chain.chainID)
        // A patient's reading is not served to an unsigned request (the proof carries it); a place's is.
        #expect(try await gw.http.get("/v1/readings/\(first)/proof").status == 401)
        let proofPath = dir + "/proof.json"
        try proofReply.body.write(to: URL(fileURLWithPath: proofPath))
        // Fetched by the CLI with a signed request (the custodian organisation's admin) and verified.
        let fetched = try runCLI(["verify-reading", "--gateway", gw.url, "--sequence", "\(first)", "--key", nodeDir + "/admin.key.json", "--genesis", nodeDir + "/genesis.json"])
        #expect(fetched.status == 0 && fetched.stdout.contains("valid: reading \(first)") && fetched.stdout.contains("commit verified"), "\(fetched.stdout)\(fetched.stderr)")
        var v = try runCLI(["verify-reading", "--file", proofPath, "--genesis", nodeDir + "/genesis.json"])
        #expect(v.status == 0 && v.stdout.contains("valid: reading \(first) (heart-rate 44 /min)") && v.stdout.contains("commit verified"), "\(v.stdout)\(v.stderr)")
        // One changed digit of the stored reading is caught.
        var tampered = try JSONSerialization.jsonObject(with: proofReply.body) as! [String: Any]
        var hex = Array(tampered["reading"] as! String)
        hex[hex.count - 1] = hex[hex.count - 1] == "0" ? "1" : "0"
        tampered["reading"] = String(hex)
        try JSONSerialization.data(withJSONObject: tampered).write(to: URL(fileURLWithPath: proofPath))
        v = try runCLI(["verify-reading", "--file", proofPath])
        #expect(v.status != 0 && v.stderr.contains("INVALID"), "\(v.stdout)\(v.stderr)")
        for seq in [manyFirst, manyFirst + 50, manyLast] {
            let p = try await Self.waitForProof(gw.http, seq, signer: chain.admin, chainID: chain.chainID)
            let inclusion = p.json["inclusion"] as? [String: Any]
            let size = inclusion?["treeSize"] as? Int ?? 0
            // The last batch holds the rest (20, or 22 if the two earlier CSV readings were still unbatched).
            #expect(seq == manyLast ? (20...22).contains(size) : size == 50, "reading \(seq) in a batch of \(size)")
        }
        let csvProof = try await Self.waitForProof(gw.http, csvSeq, signer: chain.admin, chainID: chain.chainID)
        #expect(try await gw.http.get("/v1/readings/\(csvSeq)/proof").status == 200)
        try csvProof.body.write(to: URL(fileURLWithPath: proofPath))
        v = try runCLI(["verify-reading", "--file", proofPath, "--genesis", nodeDir + "/genesis.json"])
        #expect(v.status == 0 && v.stdout.contains("body-temperature 38.4 Cel"), "\(v.stdout)\(v.stderr)")

        // The blob: served by CID, opens with the gateway's custody key for that patient (not its
        // own sealing key: a patient's key is destroyed on erasure), holds the reading; a
        // tampered blob on disk is refused, not served.
        let cid = try #require(ContentID(proofReply.json["blob"] as! String))
        let blobReply = try await gw.http.get("/v1/blobs/\(cid)")
        #expect(blobReply.status == 200 && cid.matches(Array(blobReply.body)))
        let sealing = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Data(contentsOf: URL(fileURLWithPath: gwDir + "/sealing-x25519.key")))
        #expect(throws: BlobError.self) { try SealedBlob(bytes: Array(blobReply.body)).open(with: sealing) }
        let custody = try #require(try GatewayStore(path: gwDir + "/gateway.sqlite").subjectKey(setup.subject, create: false))
        let opened = try SealedBlob(bytes: Array(blobReply.body)).open(with: Curve25519.KeyAgreement.PrivateKey(rawRepresentation: custody))
        #expect(opened.contains { $0.reading.kind == .heartRate && $0.reading.values.first?.value == DecimalValue(44) && $0.sequence == UInt64(first) })
        #expect(ReadingBatch(opened).root.description == proofReply.json["batchRoot"] as? String, "the batch root is recomputed from the blob alone")
        // The patient opens it with their own key, fetched by CID from the gateway; a stranger cannot.
        var o = try runCLI(["blob", "open", "--key", patientKeyPath, "--from", gw.http.base, "--cid", cid.description])
        #expect(o.status == 0 && o.stdout.contains(#""kind":"heart-rate""#) && o.stdout.contains(#""values":["44 /min"]"#) && o.stdout.contains(#""sequence":\#(first)"#), "\(o.stdout)\(o.stderr)")
        _ = try runCLI(["keys", "x25519", "--out", dir + "/stranger.x25519"])
        o = try runCLI(["blob", "open", "--key", dir + "/stranger.x25519", "--from", gw.http.base, "--cid", cid.description])
        #expect(o.status != 0 && o.stderr.contains("not one of the blob's recipients"), "\(o.stdout)\(o.stderr)")
        // The MAC thermometer has no registered recipient: its blob is sealed for the gateway only.
        let csvBlob = try #require(ContentID(csvProof.json["blob"] as! String))
        #expect(try SealedBlob(bytes: Array(try await gw.http.get("/v1/blobs/\(csvBlob)").body)).open(with: sealing).count >= 2, "a place's batches are sealed for the gateway's own key")
        o = try runCLI(["blob", "open", "--key", patientKeyPath, "--from", gw.http.base, "--cid", csvBlob.description])
        #expect(o.status != 0, "the patient's key opens only the patient's device's blobs")
        var onDisk = Array(try Data(contentsOf: URL(fileURLWithPath: gwDir + "/blobs/\(cid)")))
        onDisk[onDisk.count / 2] ^= 0x80
        try Data(onDisk).write(to: URL(fileURLWithPath: gwDir + "/blobs/\(cid)"))
        #expect(try await gw.http.get("/v1/blobs/\(cid)").json["code"] as? String == "blob-tampered")
        try Data(onDisk).write(to: URL(fileURLWithPath: dir + "/tampered.blob"))
        o = try runCLI(["blob", "open", "--key", patientKeyPath, "--file", dir + "/tampered.blob", "--cid", cid.description])
        #expect(o.status != 0 && o.stderr.contains("REFUSED"), "\(o.stdout)\(o.stderr)")

        // kill -9 right after acknowledgements: every acknowledged reading is anchored after a restart.
        var acknowledged: [Int64] = []
        for c in UInt64(10)..<UInt64(30) {
            let reply = try await oximeter.upload(gw.http, chainID: id, counter: c, body: hr)
            #expect(reply.status == 202)
            if reply.status == 202 { acknowledged.append(Int64(reply.json["firstSequence"] as? Int ?? 0)) }
        }
        gw.kill9()
        try gw.start()
        r = try await oximeter.upload(gw.http, chainID: id, counter: 29, body: hr)
        #expect(r.status == 409, "the counter survived the crash: a replay is still refused")
        for seq in acknowledged {
            let p = try await Self.waitForProof(gw.http, seq, signer: chain.admin, chainID: chain.chainID)
            try p.body.write(to: URL(fileURLWithPath: proofPath))
            #expect(try runCLI(["verify-reading", "--file", proofPath]).status == 0, "reading \(seq)")
        }

        // A suspended device is refused (once the gateway's 2 s record cache has expired).
        try await Self.commit(nodeHTTP, chain, .setDeviceStatus(SetDeviceStatus(device: oximeter.id, status: .suspended, reason: "lost")))
        try await Task.sleep(nanoseconds: 2_200_000_000)
        r = try await oximeter.upload(gw.http, chainID: id, counter: 100, body: hr)
        #expect(r.status == 403 && r.json["code"] as? String == "device-not-active", "\(r.text)")

        // Nothing but hashes, pseudonyms and counts went on-chain: no reading value appears in any block.
        let latest = try await nodeHTTP.get("/v1/blocks/latest").json
        let height = ((latest["header"] as? [String: Any])?["height"] as? Int) ?? 0
        for h in 1...max(1, height) {
            let b = try await nodeHTTP.get("/v1/blocks/\(h)").text
            #expect(!b.contains("8867-4") && !b.contains("Patient/example"), "block \(h) carries reading content")
        }
    }

    /// HL7's SpO2 example with another value.
    static func spo2(_ v: Int) throws -> [UInt8] {
        let text = String(decoding: try example("observation-example-satO2.json"), as: UTF8.self)
        precondition(text.contains("\"value\": 95,"))
        return Array(text.replacingOccurrences(of: "\"value\": 95,", with: "\"value\": \(v),").utf8)
    }

    @Test("edge alarms: SpO2 below 90 raises one alert that a waiting subscriber receives, hysteresis holds it until 92, the device is told to sample intensively, and a raised alarm survives a gateway kill -9",
          .timeLimit(.minutes(3)))
    func alarms() async throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let setup = try await Self.setUp(dir, deviceKey: PrivateKey.generate(.ed25519))
        let subject = setup.subject
        let node = setup.node, nodeHTTP = setup.nodeHTTP, chain = setup.chain, keyPath = setup.keyPath, oximeter = setup.device
        defer { node.terminate() }
        let gw = try GatewayProcess(dataDir: dir + "/gateway", key: keyPath, node: node.url, extraArgs: ["--batch-ms", "200"])
        let id = chain.chainID

        var r = try await oximeter.upload(gw.http, chainID: id, counter: 1, body: try Self.spo2(96))
        #expect(r.status == 202 && (r.json["alerts"] as? [Any])?.isEmpty == true && r.json["sampling"] as? String == "periodic", "\(r.text)")

        // A subscriber — the ward's staff, signing its request — waits; the abnormal reading wakes it.
        let http = gw.http
        let staff = chain.admin
        async let waited = DataReadTests.signedGET(http, "/v1/alerts?after=0&waitMs=20000", key: staff, chainID: id).0
        try await Task.sleep(nanoseconds: 300_000_000)
        r = try await oximeter.upload(gw.http, chainID: id, counter: 2, body: try Self.spo2(88))
        #expect(r.status == 202 && r.json["sampling"] as? String == "intensive", "\(r.text)")
        let raised = (r.json["alerts"] as? [[String: Any]]) ?? []
        #expect(raised.count == 1)
        let sub = try await waited
        let got = (sub.json["alerts"] as? [[String: Any]]) ?? []
        #expect(got.count == 1, "\(sub.text)")
        let event = got.first?["event"] as? [String: Any] ?? [:]
        #expect(event["rule"] as? String == "spo2-low" && event["state"] as? String == "raised" && event["value"] as? String == "88" && event["severity"] as? String == "critical", "\(event)")
        #expect(event["subject"] as? String == subject.description && event["device"] as? String == oximeter.id.hex)
        #expect(sub.json["redacted"] as? Bool == false)
        // Unsigned, the same alert comes without the patient and the value; signed by an account
        // the chain does not know, it is refused.
        let open = try await http.get("/v1/alerts?after=0")
        let bare = ((open.json["alerts"] as? [[String: Any]])?.first?["event"] as? [String: Any]) ?? [:]
        #expect(open.json["redacted"] as? Bool == true && bare["subject"] == nil && bare["value"] as? String == "" && bare["rule"] as? String == "spo2-low", "\(open.text)")
        let outsider = try await DataReadTests.signedGET(http, "/v1/alerts?after=0", key: PrivateKey.generate(.ed25519), chainID: id).0
        #expect(outsider.status == 401 && outsider.json["code"] as? String == "unknown-account", "\(outsider.text)")

        // Hysteresis: 91 is still low enough to keep the alarm; nothing new.
        r = try await oximeter.upload(gw.http, chainID: id, counter: 3, body: try Self.spo2(91))
        #expect((r.json["alerts"] as? [Any])?.isEmpty == true && r.json["sampling"] as? String == "intensive")

        // kill -9: the raised alarm is restored, so 85 raises nothing new; 93 clears it.
        gw.kill9()
        try gw.start()
        r = try await oximeter.upload(gw.http, chainID: id, counter: 4, body: try Self.spo2(85))
        #expect(r.status == 202 && (r.json["alerts"] as? [Any])?.isEmpty == true && r.json["sampling"] as? String == "intensive", "\(r.text)")
        r = try await oximeter.upload(gw.http, chainID: id, counter: 5, body: try Self.spo2(93))
        let cleared = (r.json["alerts"] as? [[String: Any]])?.first?["event"] as? [String: Any]
        #expect(cleared?["state"] as? String == "cleared" && r.json["sampling"] as? String == "periodic", "\(r.text)")
        let all = try await gw.http.get("/v1/alerts?after=0").json["alerts"] as? [[String: Any]] ?? []
        #expect(all.compactMap { ($0["event"] as? [String: Any])?["state"] as? String } == ["raised", "cleared"])
        // A bad query is refused.
        #expect(try await gw.http.get("/v1/alerts?waitMs=999999").status == 400)

        // Adaptive sampling on an authorised request: a practitioner of the device's organisation
        // asks for intensive reporting (CLI); the next reply says so; the owner sets it back.
        let nurse = PrivateKey.generate(.ed25519)
        let nursePath = dir + "/nurse.key.json"
        try JSONEncoder().encode(KeyFile(nurse)).write(to: URL(fileURLWithPath: nursePath))
        try await Self.commit(nodeHTTP, chain, .registerAccount(RegisterAccount(publicKey: nurse.publicKey, role: .practitioner, organisation: "dev-hospital")))
        let asked = try runCLI(["tx", "submit", "--key", nursePath, "--node", node.url, "--wait", "--type", "set-device-sampling",
                                "--device", oximeter.id.hex, "--mode", "intensive", "--minutes", "30", "--reason", "post-op watch"])
        #expect(asked.status == 0, "\(asked.stdout)\(asked.stderr)")
        try await Task.sleep(nanoseconds: 2_200_000_000) // the gateway's device-record cache
        r = try await oximeter.upload(gw.http, chainID: id, counter: 6, body: try Self.spo2(97))
        #expect(r.status == 202 && r.json["sampling"] as? String == "intensive" && r.json["samplingReason"] as? String == "requested", "\(r.text)")
        let stranger = PrivateKey.generate(.ed25519)
        try await Self.commit(nodeHTTP, chain, .registerAccount(RegisterAccount(publicKey: stranger.publicKey, role: .researcher, organisation: "dev-hospital")))
        let refusedAsk = try runCLI(["tx", "submit", "--key", { let p = dir + "/r.key.json"; try? JSONEncoder().encode(KeyFile(stranger)).write(to: URL(fileURLWithPath: p)); return p }(), "--node", node.url, "--wait",
                                     "--type", "set-device-sampling", "--device", oximeter.id.hex, "--mode", "periodic"])
        #expect(refusedAsk.status != 0 && (refusedAsk.stdout + refusedAsk.stderr).contains("unauthorised"), "\(refusedAsk.stdout)\(refusedAsk.stderr)")
        try await Self.commit(nodeHTTP, chain, .setDeviceSampling(SetDeviceSampling(device: oximeter.id, mode: "periodic", untilMs: 0)))
        try await Task.sleep(nanoseconds: 2_200_000_000)
        r = try await oximeter.upload(gw.http, chainID: id, counter: 7, body: try Self.spo2(97))
        #expect(r.status == 202 && r.json["sampling"] as? String == "periodic" && r.json["samplingReason"] == nil, "\(r.text)")

        // On-chain: a record-alert transaction per event; the state holds the latest (cleared), no value.
        let key = Hex.encode(StateKeys.alert(oximeter.id, rule: "spo2-low"))
        var record: AlertRecord?
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let hex = try await nodeHTTP.get("/v1/state/\(key)").json["value"] as? String, let r = try? AlertRecord(canonicalBytes: Hex.decode(hex)!), !r.alert.raised { record = r; break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        #expect(record?.alert.rule == "spo2-low" && record?.alert.severity == "critical" && record?.alert.device == oximeter.id, "\(String(describing: record))")
    }

    @Test("the device simulator registers every profile on-chain and drives signed FHIR uploads with anomalies; everything is accepted, alarms fire, and every reading is anchored",
          .timeLimit(.minutes(3)))
    func simulator() async throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let setup = try await Self.setUp(dir, deviceKey: PrivateKey.generate(.ed25519))
        defer { setup.node.terminate() }
        let gw = try GatewayProcess(dataDir: dir + "/gateway", key: setup.keyPath, node: setup.node.url, extraArgs: ["--batch-ms", "200"])
        let run = try runCLI(["simulate", "devices", "--node", setup.node.url, "--gateway", gw.url, "--admin-key", dir + "/node/admin.key.json",
                              "--devices", "21", "--seconds", "2", "--rate", "300", "--batch", "5", "--anomaly-rate", "0.4", "--seed", "7", "--wait-anchored"])
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("registered 21 devices, 0 already") && run.stdout.contains(" 0 refused") && run.stdout.contains("anchored: all"), "\(run.stdout)")
        let readings = Int(run.stdout.components(separatedBy: "accepted (").dropFirst().first?.prefix { $0.isNumber } ?? "") ?? 0
        let raised = Int(run.stdout.components(separatedBy: "alerts raised ").dropFirst().first?.prefix { $0.isNumber } ?? "") ?? 0
        #expect(readings >= 100 && raised >= 1, "\(run.stdout)")
        let status = try await gw.http.get("/v1/status").json
        #expect(status["readingsAccepted"] as? Int == readings && status["unanchored"] as? Int == 0, "\(status)")
        #expect((status["refused"] as? [String: Int])?.isEmpty == true)
        // A second run with the same seed finds its devices registered and continues their counters.
        let again = try runCLI(["simulate", "devices", "--node", setup.node.url, "--gateway", gw.url, "--admin-key", dir + "/node/admin.key.json",
                                "--devices", "21", "--seconds", "1", "--rate", "100", "--batch", "5", "--seed", "7"])
        #expect(again.status == 0 && again.stdout.contains("registered 0 devices, 21 already") && again.stdout.contains(" 0 refused"), "\(again.stdout)\(again.stderr)")
    }

    /// A free loopback port (bound and released; the node binds it right after).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    @Test("store and forward: while the node is down the gateway keeps accepting known devices' uploads durably; when the node is back every reading is anchored",
          .timeLimit(.minutes(3)))
    func storeAndForward() async throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let setup = try await Self.setUp(dir, deviceKey: PrivateKey.generate(.ed25519))
        let chainID = setup.chain.chainID
        setup.node.terminate()
        // The same node folder on a fixed port, so the gateway can find it again after a restart.
        let port = try Self.freePort()
        var node = try NodeProcess(dataDir: dir + "/node", port: port)
        let gw = try GatewayProcess(dataDir: dir + "/gateway", key: setup.keyPath, node: node.url, extraArgs: ["--batch-ms", "200"])
        var r = try await setup.device.upload(gw.http, chainID: chainID, counter: 1, body: try Self.example("observation-example-heart-rate.json"))
        #expect(r.status == 202)
        _ = try await Self.waitForProof(gw.http, 1, signer: setup.chain.admin, chainID: setup.chain.chainID)

        node.terminate()
        var acknowledged: [Int64] = []
        for c in UInt64(2)...UInt64(11) {
            r = try await setup.device.upload(gw.http, chainID: chainID, counter: c, body: try Self.spo2(Int(88 + c)))
            #expect(r.status == 202, "accepted while the node is down: \(r.text)")
            acknowledged.append(Int64(r.json["firstSequence"] as? Int ?? 0))
        }
        try await Task.sleep(nanoseconds: 1_500_000_000)
        let status = try await gw.http.get("/v1/status").json
        #expect((status["unanchored"] as? Int ?? 0) == 10 && status["nodeError"] as? String != nil, "\(status)")
        let early = try await gw.http.get("/v1/readings/\(acknowledged[0])/proof")
        #expect(early.status == 409 && early.json["code"] as? String == "not-anchored-yet" && early.text.contains("not on the consortium's nodes yet"), "no proof without the node: \(early.text)")
        // An unknown device cannot be checked while the node is down: refused, not queued.
        r = try await TestDevice(key: PrivateKey.generate(.ed25519), macKey: nil).upload(gw.http, chainID: chainID, counter: 1, body: try Self.spo2(97))
        #expect(r.status == 503 && r.json["code"] as? String == "node-unavailable", "\(r.text)")

        node = try NodeProcess(dataDir: dir + "/node", port: port)
        defer { node.terminate() }
        for seq in acknowledged {
            let p = try await Self.waitForProof(gw.http, seq, signer: setup.chain.admin, chainID: setup.chain.chainID)
            let path = dir + "/proof-\(seq).json"
            try p.body.write(to: URL(fileURLWithPath: path))
            #expect(try runCLI(["verify-reading", "--file", path, "--genesis", dir + "/node/genesis.json"]).status == 0)
        }
        #expect(try await gw.http.get("/v1/status").json["unanchored"] as? Int == 0)
    }
}

/// A Mosquitto broker on a free loopback port, for one test.
final class Broker: @unchecked Sendable {
    let port: Int
    let process = Process()
    let dir: String

    init(dir: String) throws {
        self.dir = dir
        port = try GatewayTests.freePort()
        try "listener \(port) 127.0.0.1\nallow_anonymous true\npersistence false\n".write(toFile: dir + "/mosquitto.conf", atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/mosquitto")
        process.arguments = ["-c", dir + "/mosquitto.conf"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Ready when it accepts a connection.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if try runTool("/usr/bin/mosquitto_pub", ["-h", "127.0.0.1", "-p", "\(port)", "-t", "ping", "-m", "x"]).status == 0 { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw TestFailure("mosquitto did not start on port \(port)")
    }

    var uri: String { "tcp://127.0.0.1:\(port)" }

    /// Publishes `body` at QoS 1 with Mosquitto's own client.
    func publish(_ topic: String, _ body: [UInt8]) throws {
        let file = dir + "/payload-\(UUID().uuidString)"
        try Data(body).write(to: URL(fileURLWithPath: file))
        let r = try runTool("/usr/bin/mosquitto_pub", ["-h", "127.0.0.1", "-p", "\(port)", "-q", "1", "-t", topic, "-f", file], timeoutSeconds: 30)
        guard r.status == 0 else { throw TestFailure("mosquitto_pub: \(r.stderr)") }
    }

    /// Starts a subscriber that exits after `count` messages (or `seconds`); read its output after waiting.
    func subscribe(_ topic: String, count: Int, seconds: Int = 30) throws -> (Process, String) {
        let out = dir + "/sub-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/mosquitto_sub")
        p.arguments = ["-h", "127.0.0.1", "-p", "\(port)", "-q", "1", "-t", topic, "-C", "\(count)", "-W", "\(seconds)"]
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        p.standardError = FileHandle.nullDevice
        try p.run()
        Thread.sleep(forTimeInterval: 0.3)  // subscribed before anything is published
        return (p, out)
    }

    // SIGKILL: a broker started from the test process inherits its blocked signals and ignores SIGTERM.
    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() } }
}

@Suite("edge gateway over MQTT: Mosquitto and the Paho C client", .serialized)
struct MQTTGatewayTests {
    static func topic(_ d: TestDevice, chainID: String, counter: UInt64, body: [UInt8], type: String = "application/fhir+json", forge: Bool = false) -> String {
        let message = UploadAuth.message(chainID: chainID, device: d.id, counter: counter, contentType: type, body: body)
        var tag = d.key!.sign(message).bytes
        if forge { tag[5] ^= 1 }
        return "iomt/readings/\(d.id.hex)/\(counter)/\(Hex.encode(tag))/\(type == "text/csv" ? "csv" : "fhir")"
    }

    @Test("a device publishes at QoS 1 through Mosquitto; the gateway queues it, replies on iomt/replies/{device}, refuses a forged one, and the reading is anchored and proven; messages published while the gateway is down (kill -9) arrive after it restarts",
          .timeLimit(.minutes(3)))
    func mqtt() async throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let broker = try Broker(dir: dir)
        let setup = try await GatewayTests.setUp(dir, deviceKey: PrivateKey.generate(.ed25519))
        defer { setup.node.terminate() }
        let chainID = setup.chain.chainID
        let gw = try GatewayProcess(dataDir: dir + "/gateway", key: setup.keyPath, node: setup.node.url,
                                    extraArgs: ["--batch-ms", "200", "--mqtt", broker.uri, "--mqtt-client-id", "test-gateway"])
        #expect(gw.log.contains("gateway mqtt subscribed"), "\(gw.log)")
        let d = setup.device
        let hr = try GatewayTests.example("observation-example-heart-rate.json")

        let (sub, out) = try broker.subscribe("iomt/replies/\(d.id.hex)", count: 2)
        try broker.publish(Self.topic(d, chainID: chainID, counter: 1, body: hr), hr)
        try broker.publish(Self.topic(d, chainID: chainID, counter: 2, body: hr, forge: true), hr)
        try waitForExit(sub, seconds: 40, "mosquitto_sub waiting for 2 replies")
        let replies = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(replies.count == 2, "\(replies)")
        let accepted = replies.first { $0["accepted"] != nil }
        #expect(accepted?["accepted"] as? Int == 1)
        #expect(replies.contains { $0["code"] as? String == "bad-signature" }, "\(replies)")
        let seq = Int64(accepted?["firstSequence"] as? Int ?? 0)
        let proof = try await GatewayTests.waitForProof(gw.http, seq, signer: setup.chain.admin, chainID: setup.chain.chainID)
        try proof.body.write(to: URL(fileURLWithPath: dir + "/proof.json"))
        let v = try runCLI(["verify-reading", "--file", dir + "/proof.json", "--genesis", dir + "/node/genesis.json"])
        #expect(v.status == 0 && v.stdout.contains("heart-rate 44 /min"), "\(v.stdout)\(v.stderr)")

        // The broker holds QoS 1 messages for the gateway's persistent session while it is down.
        let before = (try await gw.http.get("/v1/status").json["queue"] as? [String: Int])?["readings"] ?? 0
        gw.kill9()
        let csv = Array("time,code,value,unit\n2026-12-01T08:00:00Z,8310-5,37.1,Cel\n".utf8)
        try broker.publish(Self.topic(d, chainID: chainID, counter: 3, body: hr), hr)
        try broker.publish(Self.topic(d, chainID: chainID, counter: 4, body: csv, type: "text/csv"), csv)
        try gw.start()
        let deadline = Date().addingTimeInterval(20)
        var after = before
        while Date() < deadline, after < before + 2 {
            after = (try await gw.http.get("/v1/status").json["queue"] as? [String: Int])?["readings"] ?? 0
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        #expect(after == before + 2, "readings queued: \(before) before the kill, \(after) after the restart")
    }
}
