import ArgumentParser
import Dispatch
import Foundation
import IoMTCore
import IoMTEdge
import IoMTGateway
import IoMTSimulation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `iomtchain simulate devices`: thousands of virtual devices with realistic readings and anomalies,
/// registered on-chain and uploading FHIR Bundles to a gateway over HTTP at a chosen rate.
struct SimulateDevicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "Drive virtual medical and IoT devices against a gateway: register them on-chain, then upload signed FHIR readings at a rate.",
        discussion: """
            Profiles, round-robin: vital-signs monitors (heart rate, SpO2, temperature, respiratory rate, blood pressure), glucose meters, \
            ECG patches (waveforms as SampledData), wristbands (positions in metres), RFID readers (scan counts), cold-chain loggers \
            (storage temperature) and venue crowd counters (occupancy). Values wander realistically; with --anomaly-rate an upload \
            carries an abnormal value (low SpO2, tachycardia, fever, hypertension, hypoglycaemia, a cold-chain excursion). \
            --admin-key registers the devices (a member-admin of the gateway's organisation). With --wait-anchored the run ends \
            when the gateway has anchored every accepted reading, and the rate end to end is printed.
            """)

    @Option(help: "Node URL (to register the devices).") var node = "http://127.0.0.1:8080"
    @Option(help: "Gateway URL.") var gateway = "http://127.0.0.1:8090"
    @Option(help: "A member-admin's key file (registers the devices).") var adminKey: String
    @Option(help: "Virtual devices.") var devices = 100
    @Option(help: "Readings per upload (one FHIR Bundle).") var batch = 10
    @Option(help: "Target readings per second (0: as fast as the gateway takes them).") var rate = 500.0
    @Option(help: "Seconds to run.") var seconds = 10.0
    @Option(help: "Concurrent uploads in flight.") var concurrency = 8
    @Option(help: "Fraction of uploads carrying an abnormal value.") var anomalyRate = 0.02
    @Option(help: "Seed of the values and device keys.") var seed: UInt64 = 1
    @Flag(help: "After sending, wait until the gateway has anchored every accepted reading; report the end-to-end rate.") var waitAnchored = false
    @Option(help: "Write the invented people and device identifiers (names, record numbers, serials) to this JSON file, e.g. for a scan that none of them reached the chain.") var identities: String?

    func validate() throws {
        guard devices >= 1, devices <= 100_000 else { throw ValidationError("--devices must be 1…100000") }
        guard batch >= 1, batch <= 1_000 else { throw ValidationError("--batch must be 1…1000") }
        guard seconds > 0, seconds <= 3_600 else { throw ValidationError("--seconds must be in (0, 3600]") }
        guard concurrency >= 1, concurrency <= 256 else { throw ValidationError("--concurrency must be 1…256") }
        guard rate >= 0, (0...1).contains(anomalyRate) else { throw ValidationError("--rate ≥ 0, --anomaly-rate in [0, 1]") }
    }

    enum Profile: Int, CaseIterable { case vitals, glucose, ecg, wristband, rfid, coldChain, crowd
        var deviceType: String {
            switch self {
            case .vitals: return "vital-signs-monitor"
            case .glucose: return "glucose-meter"
            case .ecg: return "ecg-patch"
            case .wristband: return "wristband"
            case .rfid: return "rfid-reader"
            case .coldChain: return "cold-chain-logger"
            case .crowd: return "crowd-counter"
            }
        }
        var bindsToPlace: Bool { self == .rfid || self == .coldChain || self == .crowd }
    }

    struct Device {
        let key: PrivateKey
        let profile: Profile
        var counter: UInt64 = 0
        var level: Double = 0   // the random walk of the device's main value

        /// What a real device's readings carry and must never reach the chain: the wearer's name
        /// and record number, the device's serial (invented from the key, so stable per seed).
        var identity: Identity {
            let b = Hash.domain("iomt/simulated-identity", key.publicKey.address.bytes).bytes
            let given = ["Amelia", "Bartholomew", "Chiara", "Dmitri", "Esperanza", "Fionnuala", "Gustavo", "Hiroko", "Ingeborg", "Jolanta"]
            let family = ["Abernathy", "Bergström", "Castellanos", "Dubrovnik", "Eriksdottir", "Fitzgerald", "Gonçalves", "Halvorsen", "Ishikawa", "Jankowski"]
            let mrn = "MRN-" + String(format: "%08d", (Int(b[2]) << 16 | Int(b[3]) << 8 | Int(b[4])) % 100_000_000)
            return Identity(device: key.publicKey.address.hex, name: "\(given[Int(b[0]) % given.count]) \(family[Int(b[1]) % family.count])", recordNumber: mrn,
                            serial: "SN-" + Hex.encode(Array(b[5..<11])).uppercased())
        }
    }

    struct Identity: Codable { var device: String; var name: String; var recordNumber: String; var serial: String }

    func run() async throws {
        let admin = try KeyFile.load(path: adminKey)
        let nodeURL = node.hasSuffix("/") ? String(node.dropLast()) : node
        let gatewayURL = gateway.hasSuffix("/") ? String(gateway.dropLast()) : gateway
        let chainID = try await Self.chainID(nodeURL)
        var rng = SimulationRNG(seed: seed)
        var fleet: [Device] = (0..<devices).map { i in
            Device(key: try! PrivateKey(algorithm: .ed25519, rawBytes: Array(Hash.domain("iomt/simulated-device", UInt64(seed).canonicalBytes, UInt64(i).canonicalBytes).bytes)),
                   profile: Profile.allCases[i % Profile.allCases.count])
        }
        // Counters continue across runs: a device's counter must rise over every upload it ever made
        // (the gateway refuses a replay), so they start from the clock in microseconds.
        let counterBase = UInt64(Date().timeIntervalSince1970 * 1_000_000)
        for i in fleet.indices { fleet[i].level = rng.unit(); fleet[i].counter = counterBase }
        if let identities {
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            try e.encode(fleet.map(\.identity)).write(to: URL(fileURLWithPath: identities))
        }
        let registered = try await register(fleet, admin: admin, chainID: chainID, node: nodeURL)
        print("registered \(registered) devices, \(devices - registered) already on the chain (\(Profile.allCases.map(\.deviceType).joined(separator: ", ")))")

        // A subscriber of the gateway's alerts: how long from sending an abnormal upload until the
        // alert it raised reaches a waiting subscriber.
        let stats = Stats()
        var after = Int64((try await Self.getJSON(gatewayURL + "/v1/alerts?after=0"))["last"] as? Int ?? 0)
        while let more = try await Self.getJSON(gatewayURL + "/v1/alerts?after=\(after)")["last"] as? Int, Int64(more) > after { after = Int64(more) }
        let subscriber = Task { [after] in
            var last = after
            while !Task.isCancelled {
                guard let reply = try? await Self.getJSON(gatewayURL + "/v1/alerts?after=\(last)&waitMs=1000") else { continue }
                let now = DispatchTime.now()
                for a in reply["alerts"] as? [[String: Any]] ?? [] {
                    if let e = a["event"] as? [String: Any], e["state"] as? String == "raised", let d = (e["device"] as? String).flatMap(Address.init(hex:)) {
                        stats.alertSeen(device: d, at: now)
                    }
                }
                last = Int64(reply["last"] as? Int ?? Int(last))
            }
        }
        defer { subscriber.cancel() }

        // Uploads, paced by the target rate, `concurrency` in flight.
        let start = DispatchTime.now()
        let deadline = seconds
        let perSecond = rate > 0 ? rate / Double(batch) : 0
        var sent = 0
        var next = 0
        // A device sends one upload at a time (its counter orders them), so at most one per device
        // is in flight; `concurrency` bounds them all.
        try await withThrowingTaskGroup(of: Int.self) { group in
            var busy = Set<Int>()
            while true {
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
                if elapsed >= deadline { break }
                if perSecond > 0, Double(sent) >= elapsed * perSecond {
                    try await Task.sleep(nanoseconds: 2_000_000)
                    continue
                }
                if busy.count >= min(concurrency, fleet.count), let done = try await group.next() { busy.remove(done) }
                var i = next % fleet.count
                while busy.contains(i) { next += 1; i = next % fleet.count }
                next += 1
                busy.insert(i)
                fleet[i].counter += 1
                let abnormal = rng.chance(anomalyRate)
                let body = Self.bundle(&fleet[i], count: batch, abnormal: abnormal, rng: &rng, nowMs: Int64(Date().timeIntervalSince1970 * 1000))
                let device = fleet[i].key, counter = fleet[i].counter
                if abnormal { stats.abnormalSent(device: device.publicKey.address) }
                group.addTask { await Self.upload(gatewayURL, chainID: chainID, key: device, counter: counter, body: body, stats: stats); return i }
                sent += 1
            }
            try await group.waitForAll()
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        let s = stats.snapshot()
        let lat = s.latenciesMs.sorted()
        func pct(_ p: Double) -> Double { lat.isEmpty ? 0 : lat[min(lat.count - 1, Int(Double(lat.count) * p))] }
        print(String(format: "uploads: %d sent, %d accepted (%d readings), %d refused%@; %.0f readings/s accepted over %.1f s; upload latency p50 %.1f ms, p99 %.1f ms; alerts raised %d, cleared %d",
                     sent, s.accepted, s.readings, s.refused.values.reduce(0, +), s.refused.isEmpty ? "" : " " + s.refused.description, Double(s.readings) / elapsed, elapsed, pct(0.5), pct(0.99), s.raised, s.cleared))
        try await Task.sleep(nanoseconds: 300_000_000)   // the subscriber's last wake-ups
        let alertLat = stats.snapshot().alertLatenciesMs.sorted()
        if !alertLat.isEmpty {
            func apct(_ p: Double) -> Double { alertLat[min(alertLat.count - 1, Int(Double(alertLat.count) * p))] }
            print(String(format: "alert latency (abnormal upload sent → alert received by a waiting subscriber): p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d alerts", apct(0.5), apct(0.99), alertLat.last!, alertLat.count))
        }
        fflush(nil)
        if waitAnchored {
            let t = DispatchTime.now()
            while true {
                let status = try await Self.getJSON(gatewayURL + "/v1/status")
                if (status["unanchored"] as? Int ?? 1) == 0 { break }
                guard Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e9 < 300 else { throw CLIError("readings still unanchored after 300 s") }
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            let total = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
            print(String(format: "anchored: all %d accepted readings committed on-chain %.2f s after the first upload: %.0f readings/s end to end", s.readings, total, Double(s.readings) / total))
        }
        if !s.refused.isEmpty { throw ExitCode(1) }
    }

    // MARK: readings

    static let other = "urn:iomtchain:observation"

    /// One FHIR Bundle of `count` observations of the device's profile.
    static func bundle(_ d: inout Device, count: Int, abnormal: Bool, rng: inout SimulationRNG, nowMs: Int64) -> [UInt8] {
        var entries: [String] = []
        entries.reserveCapacity(count)
        for k in 0..<count {
            d.level = min(1, max(0, d.level + (rng.unit() - 0.5) * 0.1))
            let t = FHIRTime.format(nowMs - Int64(count - 1 - k) * 100)
            let bad = abnormal && k == count - 1
            var o = observation(d.profile, level: d.level, abnormal: bad, k: k, time: t, rng: &rng)
            // Like a real device's export: the observation's id, the wearer (reference and name)
            // and the device's serial. The gateway keeps them inside the encrypted blob only.
            let who = d.identity
            let tags = "\"id\":\"\(who.serial)-\(d.counter)-\(k)\"," + (d.profile.bindsToPlace ? "" : "\"subject\":{\"reference\":\"Patient/\(who.recordNumber)\",\"display\":\"\(who.name)\"},")
                + "\"device\":{\"display\":\"\(who.serial)\"},"
            o.insert(contentsOf: tags, at: o.index(o.startIndex, offsetBy: "{\"resourceType\":\"Observation\",".count))
            entries.append(o)
        }
        return Array(("{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[" + entries.map { "{\"resource\":\($0)}" }.joined(separator: ",") + "]}").utf8)
    }

    static func quantity(_ v: Double, _ unit: String, places: Int = 0) -> String {
        "{\"value\":\(String(format: "%.\(places)f", v)),\"system\":\"http://unitsofmeasure.org\",\"code\":\"\(unit)\"}"
    }

    static func obs(_ system: String, _ code: String, _ time: String, _ value: String) -> String {
        "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":\"\(system)\",\"code\":\"\(code)\"}]},\"effectiveDateTime\":\"\(time)\",\(value)}"
    }

    static func observation(_ p: Profile, level: Double, abnormal: Bool, k: Int, time: String, rng: inout SimulationRNG) -> String {
        let loinc = "http://loinc.org"
        switch p {
        case .vitals:
            switch k % 5 {
            case 0: return obs(loinc, "8867-4", time, "\"valueQuantity\":" + quantity(abnormal ? 135 + 15 * level : 62 + 30 * level, "/min"))
            case 1: return obs(loinc, "2708-6", time, "\"valueQuantity\":" + quantity(abnormal ? 85 + 4 * level : 95 + 4 * level, "%"))
            case 2: return obs(loinc, "8310-5", time, "\"valueQuantity\":" + quantity(abnormal ? 38.6 + level : 36.4 + 0.8 * level, "Cel", places: 1))
            case 3: return obs(loinc, "9279-1", time, "\"valueQuantity\":" + quantity(12 + 8 * level, "/min"))
            default:
                let sys = abnormal ? 190 + 10 * level : 110 + 20 * level, dia = abnormal ? 110 : 70 + 15 * level
                return obs(loinc, "85354-9", time, "\"component\":[{\"code\":{\"coding\":[{\"system\":\"\(loinc)\",\"code\":\"8480-6\"}]},\"valueQuantity\":\(quantity(sys, "mm[Hg]"))},{\"code\":{\"coding\":[{\"system\":\"\(loinc)\",\"code\":\"8462-4\"}]},\"valueQuantity\":\(quantity(dia, "mm[Hg]"))}]")
            }
        case .glucose:
            return obs(loinc, "15074-8", time, "\"valueQuantity\":" + quantity(abnormal ? 3.1 : 4.6 + 3 * level, "mmol/L", places: 1))
        case .ecg:
            let samples = (0..<50).map { i in String(2048 + Int(400 * sin(Double(i) / 3)) + Int(rng.below(20))) }.joined(separator: " ")
            return obs(VitalSigns.mdcSystem, "131329", time, "\"valueSampledData\":{\"origin\":{\"value\":2048},\"period\":4,\"factor\":1.612,\"dimensions\":1,\"data\":\"\(samples)\"}")
        case .wristband:
            return obs(other, "position", time, "\"component\":[{\"code\":{\"coding\":[{\"system\":\"\(other)\",\"code\":\"x\"}]},\"valueQuantity\":\(quantity(50 * level, "m", places: 2))},{\"code\":{\"coding\":[{\"system\":\"\(other)\",\"code\":\"y\"}]},\"valueQuantity\":\(quantity(Double(rng.below(5000)) / 100, "m", places: 2))}]")
        case .rfid:
            return obs(other, "rfid-scans", time, "\"valueQuantity\":" + quantity(Double(rng.below(12)), "{scans}"))
        case .coldChain:
            return obs(other, "storage-temperature", time, "\"valueQuantity\":" + quantity(abnormal ? 11 + 3 * level : 2.5 + 5 * level, "Cel", places: 1))
        case .crowd:
            return obs(other, "occupancy", time, "\"valueQuantity\":" + quantity(Double(Int(200 * level)), "{persons}"))
        }
    }

    // MARK: registration and uploads

    /// Registers the devices not yet on the chain; returns how many it registered.
    func register(_ fleet: [Device], admin: PrivateKey, chainID: String, node: String) async throws -> Int {
        let acct = try await Self.getJSON(node + "/v1/accounts/" + admin.publicKey.address.hex)
        guard let account = acct["account"] as? [String: Any], let org = account["organisation"] as? String else { throw CLIError("the admin key's account is not on the chain") }
        var nonce = UInt64(acct["nextNonce"] as? Int ?? 0)
        var last: Hash?
        // Devices of an earlier run with the same seed are registered already: skip them.
        var fleet = fleet
        var fresh: [Device] = []
        for d in fleet where (try? await Self.getJSON(node + "/v1/state/" + Hex.encode(StateKeys.device(d.key.publicKey.address))))?["value"] as? String == nil { fresh.append(d) }
        fleet = fresh
        for chunk in stride(from: 0, to: fleet.count, by: 1_000) {
            var txs: [SignedTransaction] = []
            for d in fleet[chunk..<min(fleet.count, chunk + 1_000)] {
                let seed = Hash.domain("iomt/simulated-subject", d.key.publicKey.address.bytes)
                var subject: Hash?
                if !d.profile.bindsToPlace {
                    // The wearer is enrolled first (a device binds only to an enrolled patient):
                    // its keys come from the device's, so a later run finds it enrolled.
                    let secret = try PatientSecret(bytes: seed.bytes)
                    let patient = secret.signingKey(at: org)
                    let pseudonym = Pseudonym.of(patient.publicKey.address)
                    if (try? await Self.getJSON(node + "/v1/state/" + Hex.encode(StateKeys.patient(pseudonym))))?["value"] as? String == nil {
                        let enrol = RegisterPatient(signedBy: patient, agreementKey: try X25519Key(bytes: Array(secret.agreementKey(at: org).publicKey.rawRepresentation)),
                                                    chainID: chainID, organisation: org)
                        txs.append(Transaction(chainID: chainID, sender: admin.publicKey.address, signerKey: admin.publicKey, nonce: nonce, payload: .registerPatient(enrol)).signed(with: admin))
                        nonce += 1
                    }
                    subject = pseudonym
                }
                let reg = RegisterDevice(publicKey: d.key.publicKey, deviceType: d.profile.deviceType, subject: subject,
                                         place: d.profile.bindsToPlace ? "\(org)-site-\(Int(seed.bytes[0]) % 20)" : nil, label: "simulated")
                let tx = Transaction(chainID: chainID, sender: admin.publicKey.address, signerKey: admin.publicKey, nonce: nonce, payload: .registerDevice(reg)).signed(with: admin)
                nonce += 1
                txs.append(tx)
                last = tx.hash
            }
            var req = URLRequest(url: URL(string: node + "/v1/transactions/batch")!)
            req.httpMethod = "POST"
            req.httpBody = try JSONEncoder().encode(txs)
            req.setValue("application/json", forHTTPHeaderField: "Content-Type")
            req.timeoutInterval = 60
            let (data, resp) = try await URLSession.shared.data(for: req)
            guard (resp as? HTTPURLResponse).map({ (200..<300).contains($0.statusCode) }) == true else {
                throw CLIError("registering devices: HTTP \((resp as? HTTPURLResponse)?.statusCode ?? 0) \(String(decoding: data.prefix(300), as: UTF8.self))")
            }
            let replies = (try? JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []
            if let bad = replies.first(where: { $0["status"] as? String == "rejected" }) {
                throw CLIError("registering devices: a registration was refused: \(bad["error"] ?? "")")
            }
        }
        guard let last else { return 0 }
        for _ in 0..<600 {
            if (try? await Self.getJSON(node + "/v1/transactions/" + last.hex))?["status"] as? String == "committed" { return fleet.count }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw CLIError("device registrations not committed within 60 s")
    }

    final class Stats: @unchecked Sendable {
        private let lock = NSLock()
        private var accepted = 0, readings = 0, raised = 0, cleared = 0
        private var refused: [String: Int] = [:]
        private var latencies: [Double] = []
        private var abnormalAt: [Address: DispatchTime] = [:]
        private var alertLatencies: [Double] = []

        func abnormalSent(device: Address) { lock.lock(); abnormalAt[device] = DispatchTime.now(); lock.unlock() }
        func alertSeen(device: Address, at t: DispatchTime) {
            lock.lock(); defer { lock.unlock() }
            guard let sent = abnormalAt.removeValue(forKey: device) else { return }
            alertLatencies.append(Double(t.uptimeNanoseconds - sent.uptimeNanoseconds) / 1e6)
        }

        func record(accepted n: Int, raised r: Int, cleared c: Int, ms: Double) {
            lock.lock(); defer { lock.unlock() }
            accepted += 1; readings += n; raised += r; cleared += c; latencies.append(ms)
        }
        func refuse(_ code: String) { lock.lock(); refused[code, default: 0] += 1; lock.unlock() }
        func snapshot() -> (accepted: Int, readings: Int, raised: Int, cleared: Int, refused: [String: Int], latenciesMs: [Double], alertLatenciesMs: [Double]) {
            lock.lock(); defer { lock.unlock() }
            return (accepted, readings, raised, cleared, refused, latencies, alertLatencies)
        }
    }

    static func upload(_ gateway: String, chainID: String, key: PrivateKey, counter: UInt64, body: [UInt8], stats: Stats) async {
        let type = "application/fhir+json"
        let device = key.publicKey.address
        let sig = key.sign(UploadAuth.message(chainID: chainID, device: device, counter: counter, contentType: type, body: body))
        let req = DeviceUpload.request(gateway: gateway, device: device, counter: counter, contentType: type, tag: sig.bytes, body: body)
        let t = DispatchTime.now()
        do {
            let (data, resp) = try await URLSession.shared.data(for: req)
            let ms = Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e6
            let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
            if (resp as? HTTPURLResponse)?.statusCode == 202 {
                let alerts = (obj["alerts"] as? [[String: Any]] ?? []).compactMap { ($0["event"] as? [String: Any])?["state"] as? String }
                stats.record(accepted: obj["accepted"] as? Int ?? 0, raised: alerts.filter { $0 == "raised" }.count, cleared: alerts.filter { $0 == "cleared" }.count, ms: ms)
            } else {
                stats.refuse(obj["code"] as? String ?? "http-\((resp as? HTTPURLResponse)?.statusCode ?? 0)")
            }
        } catch {
            stats.refuse("unreachable")
        }
    }

    static func getJSON(_ url: String) async throws -> [String: Any] {
        let (data, _) = try await URLSession.shared.data(from: URL(string: url)!)
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    static func chainID(_ node: String) async throws -> String {
        guard let c = try await getJSON(node + "/v1/status")["chainId"] as? String else { throw CLIError("cannot read the chain id from \(node)") }
        return c
    }
}
