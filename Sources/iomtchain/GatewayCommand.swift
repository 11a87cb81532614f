import ArgumentParser
import Crypto
import Foundation
import Hummingbird
import IoMTCore
import IoMTStore
import IoMTEdge
import IoMTGateway
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `iomtchain gateway`: the edge gateway (docs/gateway.md).
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway", abstract: "Edge gateway: authenticate device uploads, queue, encrypt, store off-chain and anchor on-chain.",
        subcommands: [Run.self, MACKey.self])

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a gateway in front of one node.",
            discussion: "The data folder holds the durable queue (gateway.sqlite), the blobs (blobs/<cid>) and the gateway's X25519 sealing key, created on first start. --key is the gateway's account key: a `gateway` account of the devices' organisation, registered on the chain.")
        @Option(help: "Data folder (created if missing).") var dataDir: String
        @Option(help: "The gateway account's key file.") var key: String
        @Option(help: "Node URL.") var node = "http://127.0.0.1:8080"
        @Option(help: "HTTP listen address host:port (port 0 picks a free one).") var http = "127.0.0.1:8090"
        @Option(help: "Readings per batch.") var batchSize = 1_000
        @Option(help: "Seal a device's batch when its oldest reading is this old (ms).") var batchMs: Int64 = 1_000
        @Option(help: "Backpressure: refuse uploads (503) while this many readings wait for a committed anchor.") var maxUnanchored = 1_000_000
        @Option(help: "Also wrap every blob's data key for this X25519 public key (hex, 32 bytes); repeatable.") var recipient: [String] = []
        @Option(help: "Alarm rules (JSON array of AlarmRule; docs/gateway.md) instead of the defaults.") var alarmRules: String?
        @Option(help: "Anchor a venue's check-ins when the oldest waited this long (ms).") var checkInBatchMs: Int64 = 60_000
        @Option(help: "A check-in is exposed when its stay overlaps a positive case's by at least this many minutes.") var exposureOverlapMinutes: Int64 = 15
        @Option(help: "Exposed check-ins named per record-exposures transaction (1…1500); more go in further parts.") var exposuresPerRecord = RecordExposures.maxExposed
        @Option(help: "Proximity alerts: two wristbands closer than this many metres…") var proximityMetres = 2.0
        @Option(help: "…for at least this many seconds.") var proximitySeconds: Int64 = 900
        @Option(help: "A quarantined person's wristband silent this many seconds raises wristband-silent (0: never).") var quarantineSilenceSeconds: Int64 = 600
        @Option(help: "Also take uploads from this MQTT broker (e.g. tcp://127.0.0.1:1883), topic iomt/readings/{device}/{counter}/{signature}/{fhir|csv}, QoS 1.") var mqtt: String?
        @Option(help: "MQTT client id: the broker keeps this session's QoS 1 messages while the gateway is down (default: from the gateway's account).") var mqttClientId: String?

        func run() async throws {
            try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
            let account = try KeyFile.load(path: key)
            // The gateway's X25519 key for unwrapping blob data keys: 32 raw bytes, mode 0600.
            let sealing = try loadOrCreateX25519Key(dataDir + "/sealing-x25519.key")
            var config = Gateway.Configuration()
            config.batchSize = batchSize
            config.batchMaxAgeMs = batchMs
            config.maxUnanchored = maxUnanchored
            guard checkInBatchMs >= 100, (0...720).contains(exposureOverlapMinutes) else { throw CLIError("--check-in-batch-ms is at least 100 and --exposure-overlap-minutes 0…720") }
            config.checkInBatchMs = checkInBatchMs
            guard proximityMetres > 0, proximityMetres <= 100, proximitySeconds >= 0 else { throw CLIError("--proximity-metres is in (0, 100] and --proximity-seconds ≥ 0") }
            config.proximityDistanceCm = Int64((proximityMetres * 100).rounded())
            config.proximityDurationMs = proximitySeconds * 1_000
            guard (0...86_400).contains(quarantineSilenceSeconds) else { throw CLIError("--quarantine-silence-seconds is 0…86400") }
            config.quarantineSilenceMs = quarantineSilenceSeconds * 1_000
            config.exposureMinOverlapMs = exposureOverlapMinutes * 60_000
            guard (1...RecordExposures.maxExposed).contains(exposuresPerRecord) else { throw CLIError("--exposures-per-record is 1…\(RecordExposures.maxExposed)") }
            config.exposuresPerRecord = exposuresPerRecord
            config.recipients = try recipient.map { hex in
                guard let b = Hex.decode(hex), (try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: b)) != nil else { throw CLIError("--recipient must be 64 hex digits (an X25519 public key)") }
                return b
            }
            if let alarmRules {
                do { config.alarmRules = try JSONDecoder().decode([AlarmRule].self, from: Data(contentsOf: URL(fileURLWithPath: alarmRules))) } catch { throw CLIError("--alarm-rules \(alarmRules): \(error)") }
                do { try AlarmRule.validate(config.alarmRules) } catch { throw CLIError("--alarm-rules: \(error)") }
            }
            let link = NodeLink(base: node)
            var chainID: String?
            for attempt in 0..<60 {
                if let c = try? await link.chainID() { chainID = c; break }
                if attempt == 0 { log("waiting for the node at \(node)") }
                try await Task.sleep(nanoseconds: 500_000_000)
            }
            guard let chainID else { throw CLIError("cannot reach the node at \(node)") }
            let store = try GatewayStore(path: dataDir + "/gateway.sqlite")
            let gateway = try Gateway(store: store, blobs: try BlobStore(folder: dataDir + "/blobs"), node: link, account: account, sealingKey: sealing, chainID: chainID, configuration: config)
            let counts = try store.counts()
            log("gateway for chain \(chainID) as \(account.publicKey.address); \(counts.readings) readings queued before, \(counts.unbatched) unbatched, \(counts.batches - counts.batchesCommitted) batches to anchor")
            let parts = http.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]) else { throw CLIError("--http must be host:port") }
            let app = Application(
                router: GatewayAPI(gateway: gateway).router(),
                configuration: .init(address: .hostname(String(parts[0]), port: port), serverName: "iomtchain-gateway"),
                onServerRunning: { channel in log("gateway http listening on \(parts[0]):\(channel.localAddress?.port ?? port)") })
            let loop = Task { await gateway.run() }
            defer { loop.cancel() }
            var intake: MQTTIntake?
            if let mqtt {
                let i = MQTTIntake(gateway: gateway, uri: mqtt, clientID: mqttClientId ?? "iomtchain-gateway-\(account.publicKey.address.hex.prefix(16))")
                var started = false
                for attempt in 0..<60 {
                    do { try await i.start(); started = true; break } catch {
                        if attempt == 0 { log("waiting for the MQTT broker: \(error)") }
                        try await Task.sleep(nanoseconds: 500_000_000)
                    }
                }
                guard started else { throw CLIError("cannot connect to the MQTT broker at \(mqtt)") }
                log("gateway mqtt subscribed to \(MQTTIntake.topic) at \(mqtt) as \(i.clientID)")
                intake = i
            }
            defer { intake?.stop() }
            try await app.runService()
        }
    }

    struct MACKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mac-key",
            abstract: "Create a device's HMAC-SHA256 key and store it in the gateway's data folder.",
            discussion: "Prints the key (give it to the device once, over a provisioning channel), the device id and the key's hash (register the device on-chain with macKeyHash). The gateway must not be running against the same folder.")
        @Option(help: "The gateway's data folder.") var dataDir: String
        @Option(help: "Use this key (64 hex digits) instead of a fresh one.") var key: String?

        func run() throws {
            let bytes: [UInt8]
            if let key {
                guard let b = Hex.decode(key), b.count == 32 else { throw CLIError("--key must be 64 hex digits") }
                bytes = b
            } else {
                bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
            }
            try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
            let hash = Hash.sha256(bytes)
            let id = DeviceID.forMACKey(hash: hash)
            try GatewayStore(path: dataDir + "/gateway.sqlite").setMACKey(bytes, for: id)
            try printJSON(["device": id.hex, "macKey": Hex.encode(bytes), "macKeyHash": hash.description])
        }
    }
}

/// `iomtchain device upload`: what a device (or its app) does: sign one upload and send it.
struct DeviceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "device", abstract: "Act as a device.", subcommands: [Upload.self])

    struct Upload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sign and send one upload (FHIR JSON or CSV) to a gateway; print its reply.")
        @Option(help: "Gateway URL.") var gateway = "http://127.0.0.1:8090"
        @Option(help: "The device's signing key file (for a signing device).") var key: String?
        @Option(help: "The device's HMAC key, 64 hex digits (for a MAC device).") var macKey: String?
        @Option(help: "The device's upload counter: strictly increasing across its uploads.") var counter: UInt64
        @Option(help: "Content type: application/fhir+json or text/csv (default from the file name).") var contentType: String?
        @Option(help: "Chain id (default: ask the gateway).") var chainId: String?
        @Argument(help: "The file to upload (- for stdin).") var file: String

        func run() async throws {
            let body = Array(try readInput(file))
            let type = contentType ?? (file.hasSuffix(".csv") ? "text/csv" : "application/fhir+json")
            let base = gateway.hasSuffix("/") ? String(gateway.dropLast()) : gateway
            var chain = chainId
            if chain == nil {
                let (d, _) = try await URLSession.shared.data(from: URL(string: base + "/v1/status")!)
                chain = (try JSONSerialization.jsonObject(with: d) as? [String: Any])?["chainId"] as? String
            }
            guard let chain else { throw CLIError("cannot learn the chain id from the gateway; pass --chain-id") }
            let device: Address, tag: [UInt8]
            if let key {
                let k = try KeyFile.load(path: key)
                device = k.publicKey.address
                tag = k.sign(UploadAuth.message(chainID: chain, device: device, counter: counter, contentType: type, body: body)).bytes
            } else if let macKey, let mk = Hex.decode(macKey), mk.count == 32 {
                device = DeviceID.forMACKey(hash: Hash.sha256(mk))
                tag = UploadAuth.mac(key: mk, message: UploadAuth.message(chainID: chain, device: device, counter: counter, contentType: type, body: body))
            } else {
                throw CLIError("give --key or --mac-key (64 hex digits)")
            }
            let req = DeviceUpload.request(gateway: base, device: device, counter: counter, contentType: type, tag: tag, body: body)
            let (data, resp) = try await URLSession.shared.data(for: req)
            let status = (resp as? HTTPURLResponse)?.statusCode ?? 0
            print(String(decoding: data, as: UTF8.self))
            if status != 202 { throw ExitCode(1) }
        }
    }
}

/// `iomtchain verify-reading`: checks a reading's proof offline.
struct VerifyReadingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-reading",
        abstract: "Verify offline one reading's proof (the JSON of a gateway's GET /v1/readings/{seq}/proof): reading → batch root → anchor transaction → block → commit.",
        discussion: "Without --genesis, checks everything up to the block header the proof carries. With --genesis, also checks the header's commit signatures against the genesis validator set. With --gateway, --sequence and --key, fetches the proof with a signed request first (a patient's reading is served only to the patient, a reader its consent allows, or the custodian organisation's member-admin; the request is audited).")
    @Option(help: "Proof JSON (default: stdin).") var file: String?
    @Option(help: "Genesis file: also verify the commit against its validators.") var genesis: String?
    @Option(help: "Fetch the proof from this gateway.") var gateway: String?
    @Option(help: "With --gateway: the reading's sequence number.") var sequence: Int64?
    @Option(help: "With --gateway: the account key file that signs the request.") var key: String?
    @Option(help: "With --gateway: the purpose of the read.") var purpose = "treatment"

    func run() async throws {
        let data: Data
        if let gateway {
            guard let sequence, let key else { throw CLIError("--gateway needs --sequence and --key") }
            struct S: Decodable { var chainId: String }
            let chain = try await NodeClient(base: gateway).get("/v1/status", as: S.self).chainId
            let r = try await signedGET(gateway, "/v1/readings/\(sequence)/proof?purpose=\(percentEncoded(purpose))", key: try KeyFile.load(path: key), chainID: chain)
            guard r.status == 200 else { throw CLIError(NodeClient(base: gateway).problemText(r)) }
            data = r.body
        } else {
            data = try readInput(file)
        }
        let proof: ReadingProof
        do { proof = try JSONDecoder().decode(ReadingProof.self, from: data) } catch { throw CLIError("not a reading proof: \(error)") }
        var validators: [Validator]?
        if let genesis { validators = try JSONDecoder().decode(Genesis.self, from: Data(contentsOf: URL(fileURLWithPath: genesis))).validators }
        let reading: Reading
        do { reading = try proof.verify(validators: validators) } catch { throw CLIError("INVALID reading proof: \(error)") }
        let values = reading.values.map { "\($0.value) \($0.unit)" }.joined(separator: ", ")
        print("valid: reading \(proof.sequence) (\(reading.kind)\(values.isEmpty ? "" : " " + values)) of device \(proof.device) is leaf \(proof.inclusion.leafIndex) of \(proof.inclusion.treeSize) in batch \(proof.batchRoot), anchored by transaction \(proof.anchor.transaction.hash) in block \(proof.anchor.header.height)\(validators == nil ? "" : ", commit verified")")
    }
}
