import ArgumentParser
@preconcurrency import Crypto
import Dispatch
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import IoMTCore
import IoMTEdge
import IoMTGateway
#if canImport(Glibc)
import Glibc
#endif

/// `iomtchain demo`: a fresh 4-validator devnet, a gateway and the device simulator, each its own
/// process on 127.0.0.1, and the applications played as a story with a readable log of what happened
/// and where to look (issue 6 §8). Ctrl-C stops every process it started, at any point.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start a 4-validator devnet, a gateway and the device simulator, and play remote monitoring, the vaccine supply chain, contact tracing, quarantine, venue ventilation, outbreak tracing and the smart hospital as a story.",
        discussion: "Everything lives under --data-dir (keys in keys/, logs beside each process). Runs until Ctrl-C (SIGINT) or SIGTERM, which stop every process it started; --exit-when-done stops them after the story.")

    @Option(help: "Folder for the demo (created; must not hold one already).") var dataDir = "./demo"
    @Option(help: "Validators.") var validators = 4
    @Option(help: "Seconds the device simulator runs.") var simulatorSeconds = 8.0
    @Flag(help: "Stop everything once the story is told, instead of running until Ctrl-C.") var exitWhenDone = false

    func run() async throws {
        guard (4...16).contains(validators) else { throw CLIError("--validators is 4…16 (the story needs a hospital, a clinic, a public-health agency and a manufacturer)") }
        guard !FileManager.default.fileExists(atPath: dataDir + "/devnet.json") else { throw CLIError("\(dataDir) holds a demo already: remove it or choose another --data-dir") }
        let children = Children()
        // Ctrl-C at any point: stop what was started, then exit.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let signals = [SIGINT, SIGTERM].map { (sig: Int32) -> any DispatchSourceSignal in
            let s = DispatchSource.makeSignalSource(signal: sig, queue: DispatchQueue(label: "demo.signals"))
            s.setEventHandler {
                print("\n[demo] stopping \(children.count) processes")
                fflush(nil)
                children.stopAll()
                print("[demo] stopped")
                fflush(nil)
                Glibc.exit(sig == SIGINT ? 130 : 143)
            }
            s.resume()
            return s
        }
        defer { signals.forEach { $0.cancel() } }
        do {
            try await Story(dataDir: dataDir, validators: validators, simulatorSeconds: simulatorSeconds, children: children).tell()
        } catch {
            // Ctrl-C during the story: the signal handler stops everything and exits.
            if children.isStopping { while true { sleep(1) } }
            print("[demo] failed: \(error)")
            children.stopAll()
            throw ExitCode(1)
        }
        if exitWhenDone {
            children.stopAll()
            print("[demo] done; every process stopped")
            return
        }
        print("[demo] running: \(children.count) processes; Ctrl-C stops them all")
        fflush(nil)
        while true { try? await Task.sleep(nanoseconds: 3_600_000_000_000) }
    }
}

/// Starts `executable` with `arguments`, its output (both streams) into the file `log`.
func startProcess(_ executable: String, _ arguments: [String], log: String) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    _ = FileManager.default.createFile(atPath: log, contents: nil)
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
    p.standardOutput = handle
    p.standardError = handle
    try p.run()
    return p
}

/// The processes the demo started.
final class Children: @unchecked Sendable {
    private let lock = NSLock()
    private var processes: [Process] = []
    private var stopping = false
    var count: Int { lock.withLock { processes.count } }
    var isStopping: Bool { lock.withLock { stopping } }
    /// Starts a process and keeps it, unless stopping began (then it is not started).
    func start(_ make: () throws -> Process) throws -> Process {
        try lock.withLock {
            guard !stopping else { throw CLIError("stopping") }
            let p = try make()
            processes.append(p)
            return p
        }
    }
    func stopAll() {
        let list = lock.withLock { stopping = true; return processes }
        for p in list where p.isRunning { p.terminate() }
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, list.contains(where: \.isRunning) { usleep(50_000) }
        for p in list where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
    }
}

/// The scripted story: each step does real work through the HTTP APIs and says what it did.
private struct Story {
    let dataDir: String
    let validators: Int
    let simulatorSeconds: Double
    let children: Children

    func say(_ section: String, _ line: String) {
        print("[\(section)] \(line)")
        fflush(nil)
    }

    func saveKey(_ key: PrivateKey, _ name: String) throws -> String {
        let path = dataDir + "/keys/\(name).key.json"
        try KeyFile.save(key, path: path)
        return path
    }

    func tell() async throws {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        // 1. The consortium: org-0 hospital, org-1 clinic, org-2 public-health agency, org-3 manufacturer.
        let devnet = try DevnetCommand.parse(["--validators", "\(validators)", "--data-dir", dataDir])
        let manifest = try devnet.create()
        try JSONEncoder().encode(manifest).write(to: URL(fileURLWithPath: dataDir + "/devnet.json"))
        try FileManager.default.createDirectory(atPath: dataDir + "/keys", withIntermediateDirectories: true)
        for m in manifest.members { _ = try children.start { try devnet.launch(executable, m) } }
        for m in manifest.members { try await devnet.waitHealthy(m) }
        let nodeURL = "http://\(manifest.members[0].http)"
        let chain = Chain(node: NodeClient(base: nodeURL), chainID: manifest.chainId)
        say("consortium", "\(validators) validators of \(manifest.chainId) are up (Tendermint BFT, one OS process each):")
        for m in manifest.members { say("consortium", "  \(m.name)  http://\(m.http)  (log \(m.dataDir)/node.log)") }

        // 2. Governance admits admins for the agency and the manufacturer (the devnet's quorum is 1).
        let admin = try KeyFile.load(path: manifest.adminKey)
        let agencyAdmin = PrivateKey.generate(.ed25519), pharmaAdmin = PrivateKey.generate(.ed25519)
        try await chain.commit(admin, .proposeGovernance(.addAdmin(publicKey: agencyAdmin.publicKey, organisation: "org-2", label: "agency admin")))
        try await chain.commit(admin, .proposeGovernance(.addAdmin(publicKey: pharmaAdmin.publicKey, organisation: "org-3", label: "manufacturer admin")))
        _ = try saveKey(agencyAdmin, "agency-admin"); let pharmaPath = try saveKey(pharmaAdmin, "manufacturer-admin")
        say("governance", "the consortium admitted admins for org-2 (public-health agency) and org-3 (manufacturer); keys in \(dataDir)/keys/")

        // 3. The hospital's gateway.
        let gatewayKey = PrivateKey.generate(.ed25519)
        try await chain.commit(admin, .registerAccount(RegisterAccount(publicKey: gatewayKey.publicKey, role: .gateway, organisation: "org-0", label: "hospital gateway")))
        let gatewayPort = try freePorts(1)[0]
        let gatewayURL = "http://127.0.0.1:\(gatewayPort)"
        _ = try children.start { try startProcess(executable, ["gateway", "run", "--data-dir", dataDir + "/gateway", "--key", try saveKey(gatewayKey, "gateway"), "--node", nodeURL,
                                            "--http", "127.0.0.1:\(gatewayPort)", "--batch-ms", "500", "--check-in-batch-ms", "500", "--proximity-seconds", "1"],
                                          log: dataDir + "/gateway.log") }
        try await waitHealthy(gatewayURL, what: "the gateway", log: dataDir + "/gateway.log")
        say("gateway", "the hospital's edge gateway is up: \(gatewayURL) (log \(dataDir)/gateway.log)")

        // 4. Remote monitoring: a patient, her pulse oximeter, an abnormal reading.
        let alice = PrivateKey.generate(.ed25519)
        let aliceX = try X25519Key(bytes: Array(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation))
        try await chain.commit(admin, .registerPatient(RegisterPatient(signedBy: alice, agreementKey: aliceX, chainID: manifest.chainId, organisation: "org-0")))
        let aliceSubject = Pseudonym.of(alice.publicKey.address)
        _ = try saveKey(alice, "patient-alice")
        let oximeter = PrivateKey.generate(.ed25519)
        try await chain.commit(admin, .registerDevice(RegisterDevice(publicKey: oximeter.publicKey, deviceType: "pulse-oximeter", subject: aliceSubject, label: "home SpO2")))
        say("monitoring", "patient Alice enrolled as pseudonym \(aliceSubject.hex.prefix(16))…; her pulse oximeter registered")
        var counter: UInt64 = 1
        func upload(_ key: PrivateKey, _ observation: String) async throws -> [String: Any] {
            counter += 1
            let body = Array(observation.utf8), device = key.publicKey.address
            let message = UploadAuth.message(chainID: manifest.chainId, device: device, counter: counter, contentType: "application/fhir+json", body: body)
            let req = DeviceUpload.request(gateway: gatewayURL, device: device, counter: counter, contentType: "application/fhir+json", tag: key.sign(message).bytes, body: body)
            let (data, resp) = try await URLSession.shared.data(for: req)
            guard (resp as? HTTPURLResponse)?.statusCode == 202 else { throw CLIError("upload refused: \(String(decoding: data, as: UTF8.self))") }
            return (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
        }
        func spo2(_ v: Double) -> String {
            SimulateDevicesCommand.obs("http://loinc.org", "2708-6", FHIRTime.format(nowMs()), "\"valueQuantity\":" + SimulateDevicesCommand.quantity(v, "%"))
        }
        _ = try await upload(oximeter, spo2(97))
        let low = try await upload(oximeter, spo2(86))
        let raised = (low["alerts"] as? [[String: Any]])?.compactMap { ($0["event"] as? [String: Any])?["rule"] as? String } ?? []
        say("monitoring", "SpO2 97 % accepted; SpO2 86 % raised \(raised) at the gateway before the chain committed anything; the device was told to sample \(low["sampling"] as? String ?? "?") (GET \(gatewayURL)/v1/alerts)")
        say("simulator", "starting the device simulator: 35 virtual devices (vital signs, glucose, ECG, wristbands, RFID, cold-chain loggers, crowd counters) for \(simulatorSeconds) s")
        let sim = try children.start { try startProcess(executable, ["simulate", "devices", "--node", nodeURL, "--gateway", gatewayURL, "--admin-key", manifest.adminKey, "--devices", "35",
                                         "--rate", "100", "--seconds", "\(simulatorSeconds)", "--anomaly-rate", "0.05", "--seed", "\(UInt64(nowMs()))"], log: dataDir + "/simulator.log") }
        while sim.isRunning { try await Task.sleep(nanoseconds: 200_000_000) }
        let simLog = (try? String(contentsOfFile: dataDir + "/simulator.log", encoding: .utf8)) ?? ""
        for line in simLog.split(separator: "\n").suffix(3) { say("simulator", String(line)) }
        guard sim.terminationStatus == 0 else { throw CLIError("the simulator failed (see \(dataDir)/simulator.log)") }

        // 5. Supply chain: a batch, custody to the hospital, a fridge logger, an excursion, a dose, scans, a recall.
        let serials = (1...20).map { "SN-\($0)" }
        let serialsPath = dataDir + "/serials.txt"
        try serials.joined(separator: "\n").write(toFile: serialsPath, atomically: true, encoding: .utf8)
        let now = nowMs(), gtin = "09506000134352", lot = "DEMO-\(now % 100_000)"
        let batch = RegisterBatch(gtin: gtin, lot: lot, productCode: "CVX208", units: 20, serialsRoot: MerkleTree.root(leaves: serials.map { Array($0.utf8) }),
                                  manufacturedMs: now - 86_400_000, expiresMs: now + 180 * 86_400_000, minCentiC: 200, maxCentiC: 800)
        try await chain.commit(pharmaAdmin, .registerBatch(batch))
        say("supply chain", "the manufacturer registered batch \(gtin)/\(lot) (20 units, 2–8 °C): \(batch.id.hex)  (serials in \(serialsPath), its key \(pharmaPath))")
        let until = nowMs() + 3_600_000
        let message = TransferCustody.message(chainID: manifest.chainId, batch: batch.id, units: 10, sender: pharmaAdmin.publicKey.address, receiver: admin.publicKey.address, sequence: 1, validUntilMs: until)
        try await chain.commit(pharmaAdmin, .transferCustody(TransferCustody(batch: batch.id, units: 10, receiver: admin.publicKey.address, sequence: 1, validUntilMs: until,
                                                                             receiverSignature: admin.sign(message))))
        say("supply chain", "10 units moved to the hospital, signed by both sides")
        let logger = PrivateKey.generate(.ed25519)
        try await chain.commit(admin, .registerDevice(RegisterDevice(publicKey: logger.publicKey, deviceType: "cold-chain-logger", place: "pharmacy-fridge-1", label: "fridge logger")))
        try await chain.commit(admin, .attachLogger(AttachLogger(device: logger.publicKey.address, batch: batch.id, units: 4)))
        func fridge(_ c: Double) -> String {
            SimulateDevicesCommand.obs(SimulateDevicesCommand.other, "storage-temperature", FHIRTime.format(nowMs()), "\"valueQuantity\":" + SimulateDevicesCommand.quantity(c, "Cel", places: 1))
        }
        _ = try await upload(logger, fridge(5.0))
        _ = try await upload(logger, fridge(11.2))
        var quarantined: [String: Int] = [:]
        for _ in 0..<300 where quarantined.isEmpty {
            quarantined = try await chain.json("/v1/batches/\(batch.id.hex)")["quarantined"] as? [String: Int] ?? [:]
            if quarantined.isEmpty { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        guard !quarantined.isEmpty else { throw CLIError("the excursion was not recorded") }
        say("supply chain", "the fridge logger read 5.0 °C, then 11.2 °C: the gateway raised cold-chain-excursion and the chain quarantined \(quarantined.values.reduce(0, +)) units at the hospital")
        let nurse = PrivateKey.generate(.ed25519)
        try await chain.commit(admin, .registerAccount(RegisterAccount(publicKey: nurse.publicKey, role: .practitioner, organisation: "org-0", label: "nurse")))
        try await chain.commit(admin, .attestPractitioner(AttestPractitioner(account: nurse.publicKey.address, profession: "nurse", licenceHash: Hash.sha256(Array("demo-licence".utf8)))))
        _ = try saveKey(nurse, "nurse")
        try await chain.commit(nurse, .administerDose(AdministerDose(batch: batch.id, subject: aliceSubject, serialHash: Hash.sha256(Array("SN-1".utf8)), atMs: nowMs())))
        say("supply chain", "a nurse gave Alice unit SN-1 (one of the 6 units not quarantined)")
        let proof = MerkleTree.proof(leafHashes: serials.map { MerkleTree.leafHash(Array($0.utf8)) }, index: 0).map { Hex.encode($0.canonicalBytes) } ?? ""
        let copied = try await chain.json("/v1/scan?gtin=\(gtin)&lot=\(lot)&serial=SN-1&proof=\(proof)")
        let fake = try await chain.json("/v1/scan?gtin=\(gtin)&lot=FAKE-1")
        say("supply chain", "a second label SN-1 scanned: flagged=\(copied["flagged"] as? Bool ?? false) (\(copied["reason"] as? String ?? "")); an unknown lot: flagged=\(fake["flagged"] as? Bool ?? false) (\(fake["reason"] as? String ?? ""))")
        let officer = PrivateKey.generate(.ed25519)
        try await chain.commit(agencyAdmin, .registerAccount(RegisterAccount(publicKey: officer.publicKey, role: .publicHealthOfficer, organisation: "org-2", label: "officer")))
        try await chain.commit(officer, .recallBatch(RecallBatch(batch: batch.id, reasonCode: "cold-chain-excursion")))
        let recall = (try await chain.json("/v1/recalls?after=0")["recalls"] as? [[String: Any]])?.last ?? [:]
        let trace = try await chain.json("/v1/batches/\(batch.id.hex)/trace")["trace"] as? [String: Any] ?? [:]
        let holders = (recall["holders"] as? [String: Int] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        say("supply chain", "public health recalled the batch; the recall feed tells the holders (\(holders) units) and the forward trace reaches \((trace["patients"] as? [Any])?.count ?? 0) patient(s)")

        // 6. Contact tracing at the hospital cafeteria.
        try await chain.commit(admin, .registerVenue(RegisterVenue(venue: "hospital-cafeteria", capacity: 80)))
        var secrets: [String: [UInt8]] = [:]
        for (who, venue) in [("alice", "hospital-cafeteria"), ("bob", "hospital-cafeteria"), ("carol", "hospital-cafeteria")] {
            var rng = SystemRandomNumberGenerator()
            let secret = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
            secrets[who] = secret
            let interval = CheckInToken.interval(atMs: nowMs())
            let stay = who == "carol" ? 5 : 60
            let body = try JSONEncoder().encode(Gateway.CheckInRequest(venue: venue, token: Hex.encode(CheckInToken.token(secret: secret, interval: interval)), interval: interval, minutes: stay))
            let r = try await NodeClient(base: gatewayURL).request("POST", "/v1/checkins", body: body)
            guard r.status == 201 else { throw CLIError("check-in refused: \(NodeClient(base: gatewayURL).problemText(r))") }
        }
        say("contact tracing", "Alice and Bob checked in at hospital-cafeteria for an hour, Carol for 5 minutes (rotating tokens; the gateway keeps only their hashes)")
        let doctor = PrivateKey.generate(.ed25519)
        try await chain.commit(admin, .registerAccount(RegisterAccount(publicKey: doctor.publicKey, role: .practitioner, organisation: "org-0", label: "doctor")))
        try await chain.commit(admin, .attestPractitioner(AttestPractitioner(account: doctor.publicKey.address, profession: "doctor", licenceHash: Hash.sha256(Array("demo-doctor".utf8)))))
        var caseBytes = [UInt8](repeating: 0, count: 32)
        for i in caseBytes.indices { caseBytes[i] = UInt8.random(in: 0...255) }
        let caseID = Hash(bytes: caseBytes)!
        try await chain.commit(doctor, .reportPositive(ReportPositive(caseID: caseID, tokenHashes: CheckInToken.hashes(secret: secrets["alice"]!, fromMs: nowMs() - 86_400_000, toMs: nowMs()),
                                                                     fromMs: nowMs() - 86_400_000, toMs: nowMs())))
        say("contact tracing", "a doctor recorded Alice's positive test as case \(caseID.hex.prefix(16))… with the token hashes her phone released")
        let feed = try await chain.json("/v1/exposures?after=0&waitMs=30000")
        let exposed = Set(((feed["exposures"] as? [[String: Any]])?.first?["record"] as? [String: Any])?["exposed"] as? [String] ?? [])
        guard !exposed.isEmpty else { throw CLIError("no exposure was recorded (see \(dataDir)/gateway.log)") }
        for who in ["bob", "carol"] {
            let mine = Set(CheckInToken.hashes(secret: secrets[who]!, fromMs: nowMs() - 3_600_000, toMs: nowMs()).map(\.hex))
            say("contact tracing", "\(who.capitalized)'s phone reads the exposure feed: \(mine.isDisjoint(with: exposed) ? "not exposed" : "exposed at hospital-cafeteria")")
        }

        // Remote monitoring, continued: Alice lets the doctor read her vital signs; he acknowledges her
        // SpO2 alert on-chain and reads her timeline through the gateway (a signed, consented, audited read).
        let doctorX = try X25519Key(bytes: Array(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation))
        try await chain.commit(doctor, .setAgreementKey(SetAgreementKey(agreementKey: doctorX)))
        try await chain.commit(alice, .setRewrapDelegation(SetRewrapDelegation(gateway: gatewayKey.publicKey.address)))
        try await chain.commit(alice, .grantConsent(GrantConsent(grantee: .account(doctor.publicKey.address), categories: ["vital-signs"], purposes: ["treatment"], expiresMs: nowMs() + 86_400_000)))
        let raisedAt = ((low["alerts"] as? [[String: Any]])?.first?["event"] as? [String: Any])?["effectiveMs"] as? Int ?? 0
        for _ in 0..<100 {
            if try await chain.json("/v1/state/" + Hex.encode(StateKeys.alert(oximeter.publicKey.address, rule: "spo2-low")))["value"] as? String != nil { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        try await chain.commit(doctor, .acknowledgeAlert(AcknowledgeAlert(device: oximeter.publicKey.address, rule: "spo2-low", raisedAtMs: Int64(raisedAt))))
        let read = try await signedGET(gatewayURL, "/v1/patients/\(aliceSubject.hex)/timeline?purpose=treatment", key: doctor, chainID: manifest.chainId)
        guard read.status == 200, let timeline = try JSONSerialization.jsonObject(with: read.body) as? [String: Any] else { throw CLIError("the doctor's timeline read was refused: HTTP \(read.status)") }
        let acknowledged = (timeline["alerts"] as? [[String: Any]] ?? []).filter { $0["acknowledgement"] != nil }.count
        say("monitoring", "Alice granted the doctor her vital signs for treatment; he acknowledged her SpO2 alert on-chain and read her timeline: \((timeline["alerts"] as? [Any])?.count ?? 0) alert event(s), \(acknowledged) acknowledged (the read is in her audit log)")

        // 7. Quarantine: Alice, positive, is to stay home; her wristband leaves the geofence.
        let band = PrivateKey.generate(.ed25519)
        try await chain.commit(admin, .registerDevice(RegisterDevice(publicKey: band.publicKey, deviceType: "wristband", subject: aliceSubject, label: "wristband")))
        var rng = SystemRandomNumberGenerator()
        let fenceRequest = Gateway.FenceRequest(order: Hash(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })!, xM: 10, yM: 10, radiusM: 25,
                                                salt: Hex.encode((0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }))
        guard let fence = fenceRequest.fence() else { throw CLIError("bad fence") }
        try await chain.commit(officer, .orderQuarantine(OrderQuarantine(orderID: fenceRequest.order, subject: aliceSubject, device: band.publicKey.address, fenceCommitment: fence.commitment,
                                                                          fromMs: nowMs(), untilMs: nowMs() + 14 * 86_400_000)))
        let handed = try await NodeClient(base: gatewayURL).request("POST", "/v1/quarantine/fences", body: try JSONEncoder().encode(fenceRequest))
        guard handed.status == 201 else { throw CLIError("the gateway refused the fence: \(NodeClient(base: gatewayURL).problemText(handed))") }
        say("quarantine", "public health ordered Alice's quarantine (on-chain: the order and a salted commitment to her 25 m geofence; the fence itself went to the gateway only)")
        func position(_ x: Double, _ y: Double) -> String {
            let other = SimulateDevicesCommand.other
            return SimulateDevicesCommand.obs(other, "position", FHIRTime.format(nowMs()), "\"component\":[{\"code\":{\"coding\":[{\"system\":\"\(other)\",\"code\":\"x\"}]},\"valueQuantity\":"
                + SimulateDevicesCommand.quantity(x, "m", places: 1) + "},{\"code\":{\"coding\":[{\"system\":\"\(other)\",\"code\":\"y\"}]},\"valueQuantity\":" + SimulateDevicesCommand.quantity(y, "m", places: 1) + "}]")
        }
        _ = try await upload(band, position(12, 14))
        let outside = try await upload(band, position(80, 10))
        let breach = (outside["alerts"] as? [[String: Any]])?.compactMap { ($0["event"] as? [String: Any]).map { "\($0["rule"] as? String ?? "") \($0["value"] as? String ?? "")\($0["unit"] as? String ?? "")" } } ?? []
        say("quarantine", "her wristband reported inside the fence, then 45 m beyond its edge: the gateway raised \(breach) at once (the chain records the alert, never a position)")
        // Distancing: a nurse's wristband comes within a metre of hers for more than the set time (1 s in the demo).
        let staffBand = PrivateKey.generate(.ed25519)
        try await chain.commit(admin, .registerDevice(RegisterDevice(publicKey: staffBand.publicKey, deviceType: "wristband", place: "ward-5", label: "staff wristband")))
        _ = try await upload(staffBand, position(80.8, 10.2))
        try await Task.sleep(nanoseconds: 1_200_000_000)
        let near = try await upload(band, position(80.1, 10.4))
        let contacts = (near["alerts"] as? [[String: Any]])?.compactMap { ($0["event"] as? [String: Any]).flatMap { $0["rule"] as? String == "proximity" ? $0["device"] as? String : nil } } ?? []
        say("distancing", "a staff wristband stayed within a metre of hers for over a second: proximity raised for \(contacts.count) wearers")

        // 8. A crowded hall: the counter sees 25 people where 20 are allowed; the fans follow.
        try await chain.commit(admin, .registerVenue(RegisterVenue(venue: "outpatient-hall", capacity: 20)))
        let counterKey = PrivateKey.generate(.ed25519), fanKey = PrivateKey.generate(.ed25519)
        try await chain.commit(admin, .registerDevice(RegisterDevice(publicKey: counterKey.publicKey, deviceType: "crowd-counter", place: "outpatient-hall", label: "door counter")))
        try await chain.commit(admin, .registerDevice(RegisterDevice(publicKey: fanKey.publicKey, deviceType: "ventilation-controller", place: "outpatient-hall", label: "air handler")))
        func measure(_ code: String, _ v: Double, _ unit: String) -> String {
            SimulateDevicesCommand.obs(SimulateDevicesCommand.other, code, FHIRTime.format(nowMs()), "\"valueQuantity\":" + SimulateDevicesCommand.quantity(v, unit))
        }
        func told(_ reply: [String: Any]) -> Int { (reply["ventilation"] as? [String: Any])?["setpointM3h"] as? Int ?? 0 }
        let first = try await upload(fanKey, measure("airflow", 0, "m3/h"))
        let crowd = try await upload(counterKey, measure("occupancy", 25, "{persons}"))
        let crowdAlerts = (crowd["alerts"] as? [[String: Any]])?.compactMap { ($0["event"] as? [String: Any])?["rule"] as? String } ?? []
        let second = try await upload(fanKey, measure("airflow", Double(told(first)), "m3/h"))
        _ = try await upload(fanKey, measure("airflow", Double(told(second)), "m3/h"))
        _ = try await upload(fanKey, measure("filter-clogged", 1, "{state}"))
        var acked = 0
        for _ in 0..<100 where acked < 2 {
            acked = (try await chain.json("/v1/ventilation/\(fanKey.publicKey.address.hex)")["commands"] as? [[String: Any]] ?? []).filter { $0["ack"] != nil }.count
            if acked < 2 { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        say("venues", "the outpatient hall's counter saw 25 people (capacity 20): \(crowdAlerts) raised; its air handler was set to \(told(first)) m³/h empty, then \(told(second)) m³/h; \(acked) acknowledgements on-chain")
        var openFaults: [[String: Any]] = []
        for _ in 0..<100 where openFaults.isEmpty {
            openFaults = try await chain.json("/v1/faults?open=true&venue=outpatient-hall")["faults"] as? [[String: Any]] ?? []
            if openFaults.isEmpty { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        say("venues", "the air handler reported a clogged filter: \(openFaults.count) open fault on the technicians' list (GET /v1/faults?open=true)")

        // 9. Outbreak tracing: a thermal camera at the entrance, and the hospital's test results, on one grid.
        let cameraKey = PrivateKey.generate(.ed25519)
        try await chain.commit(admin, .registerDevice(RegisterDevice(publicKey: cameraKey.publicKey, deviceType: "thermal-camera", place: "main-entrance", label: "entrance camera")))
        for t in [36.7, 38.6, 36.9] {
            _ = try await upload(cameraKey, SimulateDevicesCommand.obs("http://loinc.org", "8310-5", FHIRTime.format(nowMs()), "\"valueQuantity\":" + SimulateDevicesCommand.quantity(t, "Cel", places: 1)))
        }
        try await chain.commit(doctor, .recordTestResult(RecordTestResult(resultID: Hash.sha256(Array("demo-result-\(nowMs())".utf8)), place: "main-entrance", sampledAtMs: nowMs() / 3_600_000 * 3_600_000,
                                                                         assay: "loinc:94500-6", outcome: "positive")))
        var fevers = 0, positives = 0
        for _ in 0..<100 where fevers == 0 {
            let cells = try await chain.json("/v1/outbreak?place=main-entrance&fromMs=\(nowMs() - 3_600_000)&toMs=\(nowMs())")["cells"] as? [[String: Any]] ?? []
            fevers = cells.reduce(0) { $0 + ($1["fevers"] as? Int ?? 0) }
            positives = cells.reduce(0) { $0 + ($1["positives"] as? Int ?? 0) }
            if fevers == 0 { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        say("outbreak", "the entrance camera screened 3 people, one at 38.6 °C; with the hospital's positive test there, the grid shows \(fevers) fever(s) and \(positives) positive(s) at main-entrance this hour (GET /v1/outbreak)")

        // 10. Smart hospital: a respirator found by its RFID tag, a steriliser's cycles with one missing.
        let readerKey = PrivateKey.generate(.ed25519), sterKey = PrivateKey.generate(.ed25519)
        try await chain.commit(admin, .registerDevice(RegisterDevice(publicKey: readerKey.publicKey, deviceType: "rfid-reader", place: "icu-2", label: "ICU door reader")))
        try await chain.commit(admin, .registerDevice(RegisterDevice(publicKey: sterKey.publicKey, deviceType: "steriliser", place: "cssd", label: "autoclave 1")))
        try await chain.commit(admin, .registerAsset(RegisterAsset(tag: "RESP-0001", kind: "respirator", home: "icu-1")))
        _ = try await upload(readerKey, SimulateDevicesCommand.obs("urn:iomtchain:rfid", "RESP-0001", FHIRTime.format(nowMs()), "\"valueQuantity\":" + SimulateDevicesCommand.quantity(1, "{scan}")))
        var located = ""
        for _ in 0..<100 where located.isEmpty {
            located = (try await chain.json("/v1/assets/RESP-0001")["asset"] as? [String: Any])?["location"] as? String ?? ""
            if located.isEmpty { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        for n in [UInt64(41), 43] {
            let c = SterilisationCycle(steriliser: sterKey.publicKey.address, cycle: n, loadHash: Hash.sha256(Array("tray-\(n)".utf8)), startMs: nowMs() - 3_600_000, endMs: nowMs() - 60_000,
                                       maxCentiC: 13_450, holdSeconds: 240, passed: true)
            try await chain.commit(nurse, .recordSterilisation(RecordSterilisation(cycle: c, steriliserSignature: sterKey.sign(c.message(chainID: manifest.chainId)))))
        }
        let sterilised = try await chain.json("/v1/sterilisers/\(sterKey.publicKey.address.hex)/cycles")
        say("hospital", "respirator RESP-0001 was read at \(located) by the ICU's RFID reader; the autoclave's cycles 41 and 43 were recorded (signed by it, submitted by the nurse): \(sterilised["missing"] as? Int ?? 0) missing cycle shows")

        // 11. One chain: every validator holds the same block at a common height.
        var heights: [UInt64] = []
        for m in manifest.members { heights.append(UInt64(try await Chain(node: NodeClient(base: "http://\(m.http)"), chainID: manifest.chainId).json("/v1/status")["height"] as? Int ?? 0)) }
        let common = heights.min() ?? 0
        var hashes = Set<String>()
        for m in manifest.members {
            let block = try await Chain(node: NodeClient(base: "http://\(m.http)"), chainID: manifest.chainId).json("/v1/blocks/\(common)")
            hashes.insert(block["hash"] as? String ?? "?")
        }
        guard hashes.count == 1 else { throw CLIError("the validators disagree at height \(common): \(hashes)") }
        say("consortium", "all \(validators) validators hold the same block \(common) (\(hashes.first!.prefix(16))…); heights now \(heights)")

        // 12. Where to look.
        say("where to look", "node API (any validator):")
        for path in ["/v1/status", "/v1/blocks/latest", "/v1/batches/\(batch.id.hex)", "/v1/batches/\(batch.id.hex)/trace", "/v1/batches/\(batch.id.hex)/immunizations",
                     "/v1/scan?gtin=\(gtin)&lot=\(lot)", "/v1/recalls?after=0", "/v1/exposures?after=0", "/v1/venues/hospital-cafeteria", "/v1/cases/\(caseID.hex)",
                     "/v1/ventilation/\(fanKey.publicKey.address.hex)", "/v1/faults?open=true", "/v1/outbreak?fromMs=\(nowMs() - 3_600_000)&toMs=\(nowMs())",
                     "/v1/assets?organisation=org-0", "/v1/sterilisers/\(sterKey.publicKey.address.hex)/cycles", "/openapi.yaml"] {
            say("where to look", "  \(nodeURL)\(path)")
        }
        say("where to look", "web console: \(nodeURL)/console (explorer, consortium, supply chain: \(nodeURL)/console/supply-chain?batch=\(batch.id.hex), public health, hospital: \(nodeURL)/console/hospital?organisation=org-0)")
        say("where to look", "gateway: \(gatewayURL)/v1/alerts?after=0 (redacted unless signed by staff)  \(gatewayURL)/v1/venue-alarms  \(gatewayURL)/v1/status")
        say("where to look", "CLI: iomtchain batch trace \(batch.id.hex) --node \(nodeURL)")
        say("where to look", "     iomtchain batch scan --gtin \(gtin) --lot \(lot) --node \(nodeURL)")
        say("where to look", "docs: docs/console.md, docs/supply-chain.md, docs/contact-tracing.md, docs/quarantine.md, docs/venues.md, docs/outbreak.md, docs/hospital.md, docs/gateway.md, docs/patient-data.md")
    }

    func waitHealthy(_ url: String, what: String, log: String) async throws {
        for _ in 0..<300 {
            if let r = try? await NodeClient(base: url).request("GET", "/healthz"), r.status == 200 { return }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw CLIError("\(what) did not answer on \(url) within 30 s (see \(log))")
    }
}

/// Signs and commits transactions, and reads JSON, through one node.
private struct Chain {
    let node: NodeClient
    let chainID: String

    struct AccountReply: Decodable { var nextNonce: UInt64? }

    func commit(_ key: PrivateKey, _ payload: TransactionPayload) async throws {
        let nonce = try await node.get("/v1/accounts/\(key.publicKey.address.hex)", as: AccountReply.self).nextNonce ?? 0
        let tx = Transaction(chainID: chainID, sender: key.publicKey.address, signerKey: key.publicKey, nonce: nonce, payload: payload).signed(with: key)
        let r = try await node.request("POST", "/v1/transactions?wait=commit&timeoutMs=30000", body: try JSONEncoder().encode(tx))
        guard r.status == 200 else { throw CLIError("\(payload.kind): \(node.problemText(r))") }
    }

    func json(_ path: String) async throws -> [String: Any] {
        let r = try await node.request("GET", path)
        guard r.status == 200 else { throw CLIError("GET \(path): \(node.problemText(r))") }
        return (try JSONSerialization.jsonObject(with: r.body) as? [String: Any]) ?? [:]
    }
}
