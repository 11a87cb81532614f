@preconcurrency import Crypto
import Dispatch
import Foundation
import IoMTCore
import IoMTStore
import IoMTEdge

/// The edge gateway (issue 4): authenticates device uploads, normalises them to readings, keeps
/// them in a durable queue, seals batches into encrypted content-addressed blobs and anchors each
/// batch's Merkle root on the chain through one node. While the node is unreachable it keeps
/// accepting (up to `maxUnanchored`) and anchors when the node is back.
public actor Gateway {
    public struct Configuration: Sendable {
        /// Readings per batch (a device's batch is sealed when it has this many).
        public var batchSize = 1_000
        /// …or when its oldest unbatched reading is this old.
        public var batchMaxAgeMs: Int64 = 1_000
        /// Backpressure: uploads get 503 while this many readings wait for a committed anchor.
        public var maxUnanchored = 1_000_000
        /// How long a device's on-chain record is trusted before it is looked up again (a
        /// suspension or revocation takes effect within this).
        public var deviceCacheMs: Int64 = 2_000
        /// Largest upload body.
        public var maxUploadBytes = 4 << 20
        /// More X25519 public keys (32 raw bytes each) every blob's data key is wrapped for (e.g. a
        /// hospital's records key).
        public var recipients: [[UInt8]] = []
        /// Edge alarm rules (threshold with hysteresis, per vital sign, optionally per patient).
        public var alarmRules: [AlarmRule] = AlarmRule.defaults
        /// Check-ins are anchored in one batch per venue when the oldest waited this long.
        public var checkInBatchMs: Int64 = 60_000
        /// A check-in is exposed when its stay overlaps a positive case's by at least this much.
        public var exposureMinOverlapMs: Int64 = 15 * 60_000
        /// Exposed check-ins named per `record-exposures` transaction (1…RecordExposures.maxExposed);
        /// more go in further parts.
        public var exposuresPerRecord = RecordExposures.maxExposed
        /// Proximity alerts: two wristbands closer than this (cm) for at least `proximityDurationMs`.
        public var proximityDistanceCm: Int64 = 200
        public var proximityDurationMs: Int64 = 15 * 60_000
        /// A quarantined person's wristband silent this long raises `wristband-silent` (0: never).
        public var quarantineSilenceMs: Int64 = 10 * 60_000
        /// Ventilation: the airflow per person present, and the least airflow of an empty venue (m³/h).
        public var airflowPerPersonM3h: UInt32 = 36
        public var minimumAirflowM3h: UInt32 = 200

        public init() {}
    }

    public let store: GatewayStore
    public let blobs: BlobStore
    public let node: NodeLink
    public let account: PrivateKey
    public let sealingKey: Curve25519.KeyAgreement.PrivateKey
    /// Its public half, raw (Sendable, for sealing off the actor).
    let sealingPublicKey: [UInt8]
    /// The key quarantine geofences are sealed under in the store (derived from `sealingKey`).
    let geofenceKey: SymmetricKey
    public let chainID: String
    public let configuration: Configuration

    private var deviceCache: [Address: (record: DeviceRecord?, atMs: Int64)] = [:]
    /// What each cold-chain logger watches (its storage record's batch and the batch's range), from
    /// the chain, cached like device records.
    private var storageCache: [Address: (watch: StorageWatch?, atMs: Int64)] = [:]
    /// Subjects whose erasure the chain recorded (`processErasures`).
    var erased: Set<Hash>
    private var lastErasureCheckMs: Int64 = 0
    var lastDatasetCheckMs: Int64 = 0
    var venueCache: [String: (record: VenueRecord?, atMs: Int64)] = [:]
    /// The gateway account's organisation, from the chain (once).
    var ownOrganisation: String?
    /// Quarantine geofences by wristband (the latest handed over per device), and their orders as
    /// last read from the chain.
    var geofences: [Address: (order: Hash, fence: Geofence)] = [:]
    var quarantineCache: [Hash: (record: QuarantineRecord?, atMs: Int64)] = [:]
    /// When each wristband last reported here (the gateway's clock), for the silence watch; a
    /// wristband not heard since the gateway started counts from its start.
    var lastHeardMs: [Address: Int64] = [:]
    let startedMs = Gateway.nowMs()
    var proximity: ProximityTracker
    var caseWaitLogged: UInt64 = 0
    /// Venues (issue 6 §4): each crowd counter's latest count, the venues over capacity, each
    /// ventilation controller's venue, last command and last acknowledged command.
    var counterCounts: [Address: (venue: String, count: UInt32)] = [:]
    var overcrowded: Set<String> = []
    var controllers: [Address: String] = [:]
    var lastCommand: [Address: (sequence: UInt64, setpointM3h: UInt32)] = [:]
    var lastAcked: [Address: UInt64] = [:]
    var lastTold: [Address: UInt64] = [:]
    var reportedFaults: Set<String> = []
    /// Where each RFID-tagged asset was last seen (tag → place), to record only moves; whether a tag
    /// is one of this organisation's assets (from the chain); each camera's last fever.
    var assetLocations: [String: String] = [:]
    var ownAssets: [String: (own: Bool, atMs: Int64)] = [:]
    var lastFever: [Address: Int64] = [:]
    /// The storage each cold-chain logger was last checked against ("batch/n"; nil: with no batch).
    var loggerStorage: [Address: String?] = [:]
    private var lastAuditRunMs: Int64 = 0
    /// Own transactions the chain refused and the gateway set aside (`Status.refusedTransactions`).
    private var refusedTransactions: UInt64 = 0
    private var accepted: UInt64 = 0
    private var acceptedReadings: UInt64 = 0
    private var refused: [String: UInt64] = [:]
    private var lastSubmitMs: [Hash: Int64] = [:]
    private var nodeError: String?
    var alarms: AlarmTracker
    private var lastAlertID: Int64
    private var alertWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
    private var nextWaiter = 0
    private var alertStoreFailures: UInt64 = 0
    private let committer: UploadCommitter
    private let sealer = DispatchQueue(label: "iomtchain.gateway.sealer")

    public init(store: GatewayStore, blobs: BlobStore, node: NodeLink, account: PrivateKey, sealingKey: Curve25519.KeyAgreement.PrivateKey, chainID: String, configuration: Configuration = .init()) throws {
        self.store = store; self.blobs = blobs; self.node = node; self.account = account
        self.sealingKey = sealingKey; self.chainID = chainID; self.configuration = configuration
        sealingPublicKey = Array(sealingKey.publicKey.rawRepresentation)
        geofenceKey = Self.derivedKey(sealingKey, "geofences/v1")
        try AlarmRule.validate(configuration.alarmRules)
        // Alarms raised before a restart stay raised — except those whose state lived only in memory
        // (proximity, overcrowding): no rule of the tracker would ever clear them.
        alarms = AlarmTracker(rules: configuration.alarmRules,
                              active: Set(try store.activeAlarms().filter { $0.rule != ProximityTracker.rule && $0.rule != Gateway.overcrowdedRule }))
        proximity = ProximityTracker(distanceCm: configuration.proximityDistanceCm, clearCm: configuration.proximityDistanceCm + 50, durationMs: configuration.proximityDurationMs)
        for g in try store.geofences(key: geofenceKey) { geofences[g.device] = (g.order, g.fence) }
        lastAlertID = try store.lastAlertID()
        erased = try store.erasedSubjects()
        committer = try UploadCommitter(store: store, maxUnanchored: configuration.maxUnanchored)
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// A key only this gateway holds, for one purpose (`info`): derived from its sealing key.
    static func derivedKey(_ sealingKey: Curve25519.KeyAgreement.PrivateKey, _ info: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: sealingKey.rawRepresentation), salt: Array("iomtchain/gateway/v1".utf8),
                               info: Array(info.utf8), outputByteCount: 32)
    }

    // MARK: uploads

    /// Why an upload was refused; every refusal is counted by its code.
    public enum UploadError: Error, Sendable, CustomStringConvertible {
        case refused(UploadRefusal)
        case invalid(IngestError)
        case unsupportedMediaType(String)
        case overloaded(Int)
        case unavailable(String)
        /// The device's patient had its data erased: nothing more is taken for it.
        case erased(Hash)

        public var code: String {
            switch self {
            case .erased: return "subject-erased"
            case .refused(let r): return r.code
            case .invalid(let e): return e.code
            case .unsupportedMediaType: return "unsupported-media-type"
            case .overloaded: return "overloaded"
            case .unavailable: return "node-unavailable"
            }
        }

        public var description: String {
            switch self {
            case .refused(let r): return r.description
            case .invalid(let e): return e.description
            case .unsupportedMediaType(let t): return "content type \"\(t)\" is not application/fhir+json, application/json or text/csv"
            case .overloaded(let n): return "\(n) readings wait for anchoring; retry later"
            case .unavailable(let s): return "cannot check the device on the chain: \(s)"
            case .erased(let s): return "the data of subject \(s) was erased at the patient's request; readings of its devices are refused"
            }
        }
    }

    public struct Accepted: Sendable, Codable {
        public var device: Address
        public var counter: UInt64
        public var accepted: Int
        public var firstSequence: Int64
        public var lastSequence: Int64
        /// `intensive` while an alarm of the device is active or an authorised request for
        /// intensive reporting is in force (`set-device-sampling`), else `periodic`.
        public var sampling: String = "periodic"
        /// Why intensive: `alarm` or `requested`; absent when periodic.
        public var samplingReason: String?
        /// Alarms this upload raised or cleared.
        public var alerts: [GatewayStore.StoredAlert] = []
        /// For a ventilation controller: the airflow set-point it is to apply (issue 6 §4).
        public var ventilation: VentilationCommand?
    }

    public struct VentilationCommand: Sendable, Codable, Equatable {
        public var sequence: UInt64
        public var setpointM3h: UInt32
    }

    /// The device's on-chain record, from the cache while it is fresh.
    func deviceRecord(_ id: Address) async throws(UploadError) -> DeviceRecord? {
        let now = Self.nowMs()
        if let c = deviceCache[id], now - c.atMs < configuration.deviceCacheMs { return c.record }
        do {
            let r = try await node.device(id)
            deviceCache[id] = (r, now)
            if deviceCache.count > 100_000 { deviceCache.removeAll(keepingCapacity: true) }
            return r
        } catch {
            // The node is unreachable: a record seen before still authenticates (store and forward).
            if let c = deviceCache[id] { return c.record }
            throw .unavailable("\(error)")
        }
    }

    /// The batch a cold-chain logger watches and its storage range (nil: the logger is with no batch).
    struct StorageWatch: Sendable {
        var batch: Hash
        /// The storage record's number under the batch: a new placement is a new watch.
        var n: UInt64
        var minCentiC: Int32
        var maxCentiC: Int32
    }

    func storageWatch(_ device: Address) async -> StorageWatch? {
        let now = Self.nowMs()
        if let c = storageCache[device], now - c.atMs < configuration.deviceCacheMs { return c.watch }
        do {
            var watch: StorageWatch?
            if let bytes = try await node.state(StateKeys.loggerAttachment(device)) {
                let storage = try StorageRecord(canonicalBytes: bytes)
                if let b = try await node.state(StateKeys.batch(storage.batch)).map({ try BatchRecord(canonicalBytes: $0) }) {
                    watch = StorageWatch(batch: storage.batch, n: storage.n, minCentiC: b.registration.minCentiC, maxCentiC: b.registration.maxCentiC)
                }
            }
            storageCache[device] = (watch, now)
            if storageCache.count > 100_000 { storageCache.removeAll(keepingCapacity: true) }
            return watch
        } catch {
            // The node is unreachable: what was seen before still holds (store and forward).
            if let c = storageCache[device] { return c.watch }
            log("cold-chain logger \(device): its storage is unknown (\(error)); its readings are kept, not checked")
            return nil
        }
    }

    private func count(_ e: UploadError) -> UploadError {
        refused[e.code, default: 0] += 1
        return e
    }

    private func counted(_ n: Int) { accepted += 1; acceptedReadings += UInt64(n) }

    /// `upload` as a `Result`.
    public func uploadResult(device: Address, counter: UInt64, contentType: String, tag: [UInt8], body: [UInt8]) async -> Result<Accepted, UploadError> {
        do throws(UploadError) {
            return .success(try await upload(device: device, counter: counter, contentType: contentType, tag: tag, body: body))
        } catch {
            return .failure(error)
        }
    }

    /// Authenticates, normalises and durably queues one upload. Returns after the readings are on disk.
    public func upload(device: Address, counter: UInt64, contentType: String, tag: [UInt8], body: [UInt8]) async throws(UploadError) -> Accepted {
        guard let record = try await deviceRecord(device) else { throw count(.refused(.unknownDevice(device))) }
        if let subject = record.subject, erased.contains(subject) { throw count(.erased(subject)) }
        let macKey: [UInt8]?
        do { macKey = record.macKeyHash == nil ? nil : try store.macKey(device) } catch { throw count(.unavailable("\(error)")) }
        let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        struct Stored: Sendable { var accepted: Accepted; var readings: [Reading] }
        let committer = self.committer
        let work = Task.detached { [chainID, committer] () throws -> Stored in
            let message = UploadAuth.message(chainID: chainID, device: device, counter: counter, contentType: mediaType, body: body)
            do throws(UploadRefusal) { try UploadAuth.verify(device: record, macKey: macKey, message: message, tag: tag) } catch { throw UploadError.refused(error) }
            let readings: [Reading]
            do {
                switch mediaType {
                case "application/fhir+json", "application/json": readings = try FHIR.readings(json: body)
                case "text/csv": readings = try VendorCSV.readings(body)
                default: throw UploadError.unsupportedMediaType(mediaType)
                }
            } catch let e as IngestError { throw UploadError.invalid(e) } catch let e as UploadError { throw e } catch { throw UploadError.invalid(.malformed("\(error)")) }
            let seqs = try await committer.submit(GatewayStore.NewUpload(device: device, counter: counter, readings: readings, receivedMs: Gateway.nowMs(), subject: record.subject)).get()
            return Stored(accepted: Accepted(device: device, counter: counter, accepted: readings.count, firstSequence: seqs.lowerBound, lastSequence: seqs.upperBound), readings: readings)
        }
        let result: Result<Stored, UploadError>
        do {
            result = .success(try await work.value)
        } catch let e as UploadError {
            result = .failure(e)
        } catch {
            result = .failure(.unavailable("\(error)"))
        }
        switch result {
        case .failure(let e):
            throw count(e)
        case .success(let stored):
            var a = stored.accepted
            counted(a.accepted)
            let watch = record.deviceType == "cold-chain-logger" ? await storageWatch(device) : nil
            let quarantine = record.deviceType == "wristband" ? await quarantine(of: device) : nil
            // Application records are made only for this gateway's own organisation's devices (the
            // chain would refuse the others, and each refusal costs a nonce repair).
            let own = (try? await organisation()) == record.organisation
            if own, record.deviceType == "thermal-camera" || record.deviceType == "heat-sensor" {
                // Outbreak tracing: fevers the camera or sensor saw, at most one a minute per device (a
                // febrile person in several frames, a sensor stuck high), at the hour's start (no exact time).
                for r in stored.readings where r.kind == .bodyTemperature {
                    guard let c = AlarmTracker.centiCelsius(r), c >= RecordFeverDetection.thresholdCentiC, c <= 4_600 else { continue }
                    guard r.effectiveMs - (lastFever[device] ?? Int64.min / 2) >= 60_000 else { continue }
                    lastFever[device] = r.effectiveMs
                    let hour = r.effectiveMs / 3_600_000 * 3_600_000
                    do { try store.queue(.recordFeverDetection(RecordFeverDetection(device: device, atMs: hour, centiC: c)), atMs: Self.nowMs()) } catch { log("could not queue a fever detection: \(error)") }
                }
            }
            if own, record.deviceType == "rfid-reader", let place = record.place {
                // Smart hospital: a tag of this organisation's assets seen at another place than before moves it there.
                for r in stored.readings where r.code.system == "urn:iomtchain:rfid" && AssetKinds.isValidTag(r.code.code) && assetLocations[r.code.code] != place {
                    guard await isOwnAsset(r.code.code) else { continue }
                    assetLocations[r.code.code] = place
                    do { try store.queue(.recordAssetLocation(RecordAssetLocation(tag: r.code.code, reader: device, atMs: r.effectiveMs)), atMs: Self.nowMs()) } catch { log("could not queue an asset location: \(error)") }
                }
            }
            if own, record.deviceType == "crowd-counter" || record.deviceType == "ventilation-controller" {
                let (alerts, command) = await venueReadings(stored.readings, device: device, record: record, firstSequence: a.firstSequence)
                a.alerts += alerts
                a.ventilation = command
            }
            a.alerts += raiseAlarms(stored.readings, device: device, subject: record.subject, firstSequence: a.firstSequence,
                                   logger: record.deviceType == "cold-chain-logger", storage: watch, wristband: record.deviceType == "wristband", quarantine: quarantine)
            if alarms.isAlarming(device) {
                (a.sampling, a.samplingReason) = ("intensive", "alarm")
            } else if record.sampling?.isIntensive(atMs: Self.nowMs()) == true {
                (a.sampling, a.samplingReason) = ("intensive", "requested")
            }
            return a
        }
    }

    // MARK: alarms

    /// Runs the alarm rules over readings already on disk; stores and publishes what they raise or clear.
    /// A cold-chain logger's readings are checked against the storage range of the batch it
    /// watches; a raised excursion is also reported on-chain (its units are quarantined).
    /// A wristband's positions are checked against its wearer's geofence while a quarantine order is
    /// in force, and against every other wristband's for proximity.
    func raiseAlarms(_ readings: [Reading], device: Address, subject: Hash?, firstSequence: Int64, logger: Bool = false, storage: StorageWatch? = nil,
                             wristband: Bool = false, quarantine: (record: QuarantineRecord, fence: Geofence)? = nil) -> [GatewayStore.StoredAlert] {
        var events: [(AlarmEvent, sequence: Int64, excursion: GatewayStore.Excursion?)] = []
        if logger {
            // A logger placed anew (another batch, or the same one again) starts a new watch: an
            // excursion still raised belonged to the earlier units, and the new ones must get theirs.
            let key = storage.map { "\($0.batch.hex)/\($0.n)" }
            if let last = loggerStorage[device], last != key, let e = alarms.reset(device: device, rule: AlarmTracker.excursionRule, atMs: readings.first?.effectiveMs ?? Self.nowMs()) {
                events.append((e, firstSequence, nil))
            }
            loggerStorage[device] = .some(key)
        }
        for (i, r) in readings.enumerated() {
            for e in alarms.observe(r, device: device, subject: subject) { events.append((e, firstSequence + Int64(i), nil)) }
            if wristband, let p = WristbandPosition.centimetres(r) {
                lastHeardMs[device] = Self.nowMs()
                if let e = alarms.reset(device: device, rule: AlarmTracker.silenceRule, atMs: r.effectiveMs) { events.append((e, firstSequence + Int64(i), nil)) }
                if let q = quarantine, q.record.isActive(atMs: r.effectiveMs) {
                    if let e = alarms.observeFence(p, atMs: r.effectiveMs, device: device, subject: subject, fence: q.fence) { events.append((e, firstSequence + Int64(i), nil)) }
                } else if let e = alarms.reset(device: device, rule: AlarmTracker.breachRule, atMs: r.effectiveMs) {
                    // The quarantine was lifted or ended during a breach: the breach ends with it.
                    events.append((e, firstSequence + Int64(i), nil))
                }
                for e in proximity.observe(device: device, subject: subject, xCm: p.x, yCm: p.y, atMs: r.effectiveMs) { events.append((e, firstSequence + Int64(i), nil)) }
            }
            if let w = storage, let (e, c) = alarms.observeStorage(r, device: device, minCentiC: w.minCentiC, maxCentiC: w.maxCentiC) {
                events.append((e, firstSequence + Int64(i), e.state == .raised ? GatewayStore.Excursion(batch: w.batch, centiC: c) : nil))
            }
        }
        return storeAlerts(events)
    }

    /// Stores alarm events (with their excursion reports) and wakes the subscribers.
    func storeAlerts(_ events: [(AlarmEvent, sequence: Int64, excursion: GatewayStore.Excursion?)]) -> [GatewayStore.StoredAlert] {
        guard !events.isEmpty else { return [] }
        do {
            let stored = try store.addAlerts(events, atMs: Self.nowMs())
            lastAlertID = stored.last?.id ?? lastAlertID
            for (_, c) in alertWaiters { c.resume() }
            alertWaiters.removeAll()
            return stored
        } catch {
            alertStoreFailures += 1
            log("could not store \(events.count) alert(s): \(error)")
            return []
        }
    }

    /// Alerts after `id`; if there are none, waits up to `waitMs` for the next (long poll).
    public func alerts(after id: Int64, waitMs: Int) async throws -> [GatewayStore.StoredAlert] {
        if lastAlertID <= id, waitMs > 0 {
            let token = nextWaiter
            nextWaiter += 1
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                alertWaiters[token] = c
                Task { [weak self] in
                    try? await Task.sleep(nanoseconds: UInt64(waitMs) * 1_000_000)
                    await self?.timeOut(token)
                }
            }
        }
        return try store.alerts(after: id)
    }

    private func timeOut(_ token: Int) { alertWaiters.removeValue(forKey: token)?.resume() }

    // MARK: batching and anchoring

    /// A device with a batch due for sealing, and the X25519 keys its blob is sealed for.
    public struct DueDevice: Sendable {
        public var device: Address
        public var count: Int
        public var keys: [[UInt8]]
        /// The patient pseudonym the device is bound to (its batches are served to readers of it).
        public var subject: Hash?
    }

    /// The devices with a batch due (full, or old enough), each with the keys to seal for: the
    /// gateway's custody key, the device's registered recipient (the patient's key), then the
    /// configured extra keys. A device whose record cannot be read (node down since a restart) is
    /// left out: its readings wait rather than be sealed without the patient's key.
    func dueForSealing() async throws -> [DueDevice] {
        let now = Self.nowMs()
        var out: [DueDevice] = []
        for p in try store.pendingDevices() where p.count >= configuration.batchSize || now - p.oldestMs >= configuration.batchMaxAgeMs {
            // Any cached record will do (a recipient key changes rarely; uploads keep the cache
            // fresh for authentication): only a device never looked up costs a node request.
            var found = deviceCache[p.device]?.record
            if found == nil { found = (try? await deviceRecord(p.device)) ?? nil }
            guard let record = found else { continue }
            // A patient's batches are sealed for its own custody key (destroyed on erasure); a
            // place's for the gateway's. An erased subject's queued readings are never sealed.
            var keys = [sealingPublicKey]
            if let subject = record.subject {
                guard !erased.contains(subject), let k = try store.subjectKey(subject, create: true) else { continue }
                keys = [Array(try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: k).publicKey.rawRepresentation)]
            }
            if let k = record.recipientKey?.bytes, !keys.contains(k) { keys.append(k) }
            // Configured extra recipients (an organisation's records key) get places' batches only:
            // a patient's data keys go to the patient and its custody key, nobody else.
            if record.subject == nil { for k in configuration.recipients where !keys.contains(k) { keys.append(k) } }
            out.append(DueDevice(device: p.device, count: p.count, keys: keys, subject: record.subject))
        }
        return out
    }

    /// Seals the due devices' batches. Runs off the actor (on its own thread: blob and queue
    /// fsyncs), so uploads are never held up behind sealing.
    public nonisolated func seal(_ due: [DueDevice]) throws {
        let now = Self.nowMs()
        // Sealed batches are written together: their blobs with one folder fsync, then their
        // records in one SQLite transaction (a blob is always durable before its record).
        var sealed: [(record: GatewayStore.SealedBatch, blob: [UInt8])] = []
        func flush() throws {
            guard !sealed.isEmpty else { return }
            let ids = try blobs.put(many: sealed.map(\.blob))
            guard ids == sealed.map(\.record.cid) else { throw GatewayError.internalError("a blob was stored under another id") }
            _ = try store.recordBatches(sealed.map(\.record), sealedMs: now)
            sealed.removeAll(keepingCapacity: true)
        }
        for p in due {
            if sealed.count >= 256 { try flush() }
            let publicKeys = try p.keys.map { try Curve25519.KeyAgreement.PublicKey(rawRepresentation: $0) }
            var left = p.count
            while left > 0 {
                let rows = try store.unbatched(p.device, limit: configuration.batchSize)
                guard !rows.isEmpty else { break }
                let batch = ReadingBatch(rows.map { BatchedReading(gateway: account.publicKey.address, device: p.device, sequence: UInt64($0.seq), reading: $0.reading) })
                let blob = try SealedBlob.seal(batch.readings, dataKey: SymmetricKey(size: .bits256), nonce: (0..<12).map { _ in UInt8.random(in: 0...255) },
                                               recipients: publicKeys, ephemerals: publicKeys.map { _ in Curve25519.KeyAgreement.PrivateKey() })
                let bytes = blob.bytes
                sealed.append((GatewayStore.SealedBatch(device: p.device, batch: batch, sequences: rows.map(\.seq), cid: ContentID(of: bytes), subject: p.subject), bytes))
                left -= rows.count
                if rows.count < configuration.batchSize { break }
                // More of this device's readings may follow: they are read from the queue, where
                // these are not marked batched until flushed.
                try flush()
            }
        }
        try flush()
    }

    /// Signs what has no transaction yet (alerts first: they are urgent), then sends and follows
    /// every signed, uncommitted transaction in nonce order.
    public func anchorOpen() async throws {
        let me = account.publicKey.address
        func nextNonce() async throws -> UInt64 { if let n = try store.nextNonce() { return n }; return try await node.nextNonce(me) }
        func sign(_ payload: TransactionPayload, nonce: UInt64) -> SignedTransaction {
            Transaction(chainID: chainID, sender: me, signerKey: account.publicKey, nonce: nonce, payload: payload).signed(with: account)
        }
        for a in try store.unsignedAlerts() {
            let n = try await nextNonce()
            let tx = sign(.recordAlert(RecordAlert(device: a.event.device, rule: a.event.rule, severity: a.event.severity, raised: a.event.state == .raised, atMs: a.event.effectiveMs)), nonce: n)
            try store.setTransaction(.alert, id: a.id, hash: tx.hash, bytes: tx.canonicalBytes, nonce: n)
        }
        try store.sealCheckIns(nowMs: Self.nowMs(), maxAgeMs: configuration.checkInBatchMs)
        for (id, anchor) in try store.unsignedCheckInBatches() {
            let n = try await nextNonce()
            let tx = sign(.anchorCheckIns(anchor), nonce: n)
            try store.setTransaction(.checkIns, id: id, hash: tx.hash, bytes: tx.canonicalBytes, nonce: n)
        }
        for r in try store.unsignedExposureReports() {
            let n = try await nextNonce()
            let tx = sign(.recordExposures(RecordExposures(caseID: r.caseID, venue: r.venue, part: r.part, exposed: r.exposed, checkInRoots: r.checkInRoots)), nonce: n)
            try store.setTransaction(.exposure, id: r.id, hash: tx.hash, bytes: tx.canonicalBytes, nonce: n)
        }
        for (id, payload) in try store.unsignedQueued() {
            let n = try await nextNonce()
            let tx = sign(payload, nonce: n)
            try store.setTransaction(.queued, id: id, hash: tx.hash, bytes: tx.canonicalBytes, nonce: n)
        }
        for (id, report) in try store.unsignedExcursions() {
            let n = try await nextNonce()
            let tx = sign(.reportExcursion(report), nonce: n)
            try store.setTransaction(.excursion, id: id, hash: tx.hash, bytes: tx.canonicalBytes, nonce: n)
        }
        for c in try store.unsignedErasureConfirmations() {
            let n = try await nextNonce()
            let tx = sign(.confirmErasure(ConfirmErasure(subject: c.subject, batchRoots: c.roots, final: c.final)), nonce: n)
            try store.setTransaction(.erasure, id: c.id, hash: tx.hash, bytes: tx.canonicalBytes, nonce: n)
        }
        // The audit log's new entries, as one run under one root (issue 5 §5): every 2 s, or sooner
        // once 1,000 wait (a burst of requests makes few transactions, not one per pass).
        let sinceRun = Self.nowMs() - lastAuditRunMs
        if try store.closeAuditRun(minimum: sinceRun >= 2_000 ? 1 : 1_000) != nil { lastAuditRunMs = Self.nowMs() }
        for d in try store.unsignedSeals() {
            let n = try await nextNonce()
            let tx = sign(.sealDataset(SealDataset(dataset: d.dataset, subjects: d.subjects, rows: d.rows, contentRoot: d.root)), nonce: n)
            try store.setTransaction(.dataset, id: d.id, hash: tx.hash, bytes: tx.canonicalBytes, nonce: n)
        }
        for c in try store.unsignedCharges() {
            let n = try await nextNonce()
            let tx = sign(.chargePrivacyBudget(ChargePrivacyBudget(dataset: c.dataset, epsilonMilli: c.epsilonMilli, queryDigest: c.queryDigest)), nonce: n)
            try store.setTransaction(.charge, id: c.id, hash: tx.hash, bytes: tx.canonicalBytes, nonce: n)
        }
        for run in try store.unsignedAuditRuns() {
            let n = try await nextNonce()
            let tx = sign(.anchorAudit(AnchorAudit(firstSeq: run.firstSeq, lastSeq: run.lastSeq, root: run.root)), nonce: n)
            try store.setTransaction(.audit, id: run.id, hash: tx.hash, bytes: tx.canonicalBytes, nonce: n)
        }
        // The blob goes to the consortium before its root goes on-chain: an anchored batch is
        // always readable from the nodes, not only from this gateway. Up to 16 puts at a time; a put
        // that fails is tried again on the next pass (storing a blob twice is harmless).
        var batches = try store.openBatches(limit: 500)
        let unplaced = batches.indices.filter { batches[$0].placedHolders == nil }
        var placementError: (any Error)?
        placing: for start in stride(from: 0, to: unplaced.count, by: 16) {
            let chunk = unplaced[start..<min(unplaced.count, start + 16)].map { batches[$0] }
            let placed: [(id: Int64, cid: ContentID, holders: Int?)]
            do {
                placed = try await putBlobs(chunk)
            } catch {
                // Those batches wait for the next pass; alerts and anchors already signed still go
                // out first, then the error is reported (status, log) like any node failure.
                placementError = error
                break placing
            }
            for p in placed {
                if p.holders == nil { log("blob \(p.cid) is too large for the node: kept at this gateway only") }
                try store.markPlaced(batch: p.id, holders: p.holders ?? 0)
                if let i = batches.firstIndex(where: { $0.id == p.id }) { batches[i].placedHolders = p.holders ?? 0 }
            }
        }
        for b in batches where b.txBytes == nil && b.placedHolders != nil {
            guard let cid = ContentID(b.cid) else { throw GatewayError.internalError("batch \(b.id) has a bad cid") }
            let n = try await nextNonce()
            let tx = sign(.anchorReadings(AnchorReadings(device: b.device, batchRoot: b.root, blobDigest: cid.digest, firstMs: b.firstMs, lastMs: b.lastMs, count: UInt32(b.count))), nonce: n)
            try store.setTransaction(.batch, id: b.id, hash: tx.hash, bytes: tx.canonicalBytes, nonce: n)
        }
        // Follow what was sent: the node commits one sender's transactions in nonce order, so
        // walk the in-flight ones oldest first and stop at the first that is not committed yet
        // (one status request per pass, plus one per newly committed transaction).
        let now = Self.nowMs()
        let open = try store.outbox()
        var due: [GatewayStore.Signed] = []
        var following = true
        for t in open {
            if let last = lastSubmitMs[t.hash], now - last < 3_000 {
                if following, case .committed(let h, _) = try await node.transaction(t.hash) {
                    try store.markCommitted(t.kind, id: t.id, height: h)
                    lastSubmitMs[t.hash] = nil
                } else {
                    following = false
                }
                continue
            }
            due.append(t)
        }
        // Send (or re-send, after 3 s without a commit) the rest, in nonce order, in batches.
        var i = 0
        while i < due.count {
            let chunk = Array(due[i..<min(due.count, i + 500)])
            i += chunk.count
            let results = try await node.submit(batch: try chunk.map { try SignedTransaction(canonicalBytes: $0.bytes) })
            let sentMs = Self.nowMs()
            for (t, (status, code)) in zip(chunk, results) {
                lastSubmitMs[t.hash] = sentMs
                if (200..<300).contains(status) || code == "duplicate-transaction" { continue }
                if code == "nonce-too-low" || code == "nonce-too-high" {
                    switch try await node.transaction(t.hash) {
                    case .committed(let h, _): try store.markCommitted(t.kind, id: t.id, height: h); lastSubmitMs[t.hash] = nil
                    case .pending: break
                    case .unknown:
                        // Its nonce went to another transaction (or one before it was lost): sign this
                        // and everything after it again, from the node's count.
                        // Everything from the node's count on is re-signed (not only from this one:
                        // signed transactions below it but above the node's count would share nonces).
                        let next = try await node.nextNonce(account.publicKey.address)
                        try store.clearTransactions(fromNonce: min(t.nonce, next), resetNonceTo: next)
                        lastSubmitMs.removeAll()
                        return
                    }
                } else if status == 503 {
                    lastSubmitMs[t.hash] = nil
                    return // the node is busy: try again on the next pass
                } else if status == 413 || (status == 422 && !["unknown-sender", "sender-not-active", "signer-key-mismatch", "wrong-chain"].contains(code ?? "")) {
                    // (A refusal of the gateway's account itself — suspended, rotated key — pauses
                    // everything below until it is fixed: nothing is set aside for that.)
                    // The contract refused it (or the chain's size limit, 413), and would again: retrying would hold every later
                    // transaction of this gateway behind it for ever. An audit run the chain already
                    // covers (a restored store signing again) counts as committed; anything else is
                    // set aside as refused (height 0), counted and logged, and the queue moves on
                    // (the unused nonce is re-signed by the next transactions' nonce repair).
                    var covered = false
                    if t.kind == .audit, let head = try? await node.state(StateKeys.auditHead(me)).map({ try AuditHead(canonicalBytes: $0) }),
                       let run = try store.auditRun(id: t.id), head.lastSeq >= run.lastSeq { covered = true }
                    // A check-in batch whose root the chain anchored already (a restored store signing
                    // again) is anchored: exposure matching may name it.
                    if t.kind == .checkIns, let root = try store.checkInBatchRoot(id: t.id),
                       let anchored = try? await node.state(StateKeys.checkInAnchor(root)).map({ try CheckInAnchorRecord(canonicalBytes: $0) }) {
                        try store.markCommitted(.checkIns, id: t.id, height: anchored.height)
                        lastSubmitMs[t.hash] = nil
                        continue
                    }
                    try store.markRefused(t.kind, id: t.id, code: code ?? "http-\(status)")
                    lastSubmitMs[t.hash] = nil
                    if !covered {
                        refusedTransactions += 1
                        log("\(t.kind.rawValue) \(t.id)'s transaction was refused by the chain (\(code ?? "HTTP \(status)")): set aside; the queue moves on")
                    }
                } else {
                    throw GatewayError.node("\(t.kind.rawValue) \(t.id)'s transaction refused: HTTP \(status) \(code ?? "")")
                }
            }
        }
        if lastSubmitMs.count > 100_000 { lastSubmitMs = lastSubmitMs.filter { now - $0.value < 60_000 } }
        if let placementError { throw placementError }
    }

    /// Puts the batches' blobs on the node, all at once; each with the number of nodes holding it
    /// (nil: too large for the node).
    private func putBlobs(_ batches: [GatewayStore.Batch]) async throws -> [(id: Int64, cid: ContentID, holders: Int?)] {
        try await withThrowingTaskGroup(of: (id: Int64, cid: ContentID, holders: Int?).self) { [node, blobs, chainID, account] group in
            for b in batches {
                guard let cid = ContentID(b.cid) else { throw GatewayError.internalError("batch \(b.id) has a bad cid") }
                group.addTask { (b.id, cid, try await node.putBlob(try blobs.get(cid), id: cid, chainID: chainID, account: account)) }
            }
            var out: [(id: Int64, cid: ContentID, holders: Int?)] = []
            for try await p in group { out.append(p) }
            return out
        }
    }

    /// Runs sealing and anchoring until cancelled.
    /// Runs `step` every `everyMs` until cancelled, logging when it starts failing and when it recovers.
    func follow(_ what: String, everyMs: UInt64, _ step: () async throws -> Void) async {
        var failing: String?
        while !Task.isCancelled {
            do {
                try await step()
                if failing != nil { log("\(what): node reachable again") }
                failing = nil
            } catch {
                let text = "\(error)"
                if failing != text { log("\(what) paused: \(text)") }
                failing = text
            }
            try? await Task.sleep(nanoseconds: everyMs * 1_000_000)
        }
    }

    public func run(intervalMs: UInt64 = 100) async {
        // Dataset builds and case matching run beside sealing and anchoring (a large build must not
        // hold readings back).
        let datasets = Task { await self.follow("datasets", everyMs: 1_000) { try await self.processDatasets() } }
        let cases = Task { await self.follow("exposure matching", everyMs: 500) { try await self.processCases() } }
        let silence = Task { await self.follow("quarantine watch", everyMs: 1_000) { await self.watchSilence() } }
        defer { datasets.cancel(); cases.cancel(); silence.cancel() }
        while !Task.isCancelled {
            do {
                let due = try await dueForSealing()
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                    sealer.async { c.resume(with: Result { try self.seal(due) }) }
                }
                try await processErasures()
                try await anchorOpen()
                await committer.refreshUnanchored()
                if nodeError != nil { log("node reachable again; anchoring") }
                nodeError = nil
            } catch {
                let text = "\(error)"
                if nodeError != text { log("anchoring paused: \(text) (readings stay queued)") }
                nodeError = text
            }
            try? await Task.sleep(nanoseconds: intervalMs * 1_000_000)
        }
    }

    /// Follows the chain's erasure requests (at most once a second); for each subject this gateway
    /// holds data of, once its sealed batches are all anchored: erases the plaintext readings and
    /// the custody key, deletes the blobs here and queues the on-chain confirmations (the nodes
    /// delete their copies when those commit).
    func processErasures() async throws {
        let now = Self.nowMs()
        guard now - lastErasureCheckMs >= 1_000 else { return }
        lastErasureCheckMs = now
        var cursor = try store.erasureCursor()
        if let count = try await node.state(StateKeys.erasureCount).map({ try UInt64(canonicalBytes: $0) }), count > cursor {
            while cursor < count {
                cursor += 1
                guard let bytes = try await node.state(StateKeys.erasureEntry(cursor)) else { break }
                let subject = try Hash(canonicalBytes: bytes)
                try store.noteErasure(subject, sequence: cursor)
                erased.insert(subject)
                log("erasure \(cursor) requested for subject \(subject)")
            }
        }
        if !erased.isEmpty, try store.purgeErased() > 0 { try store.checkpoint() }
        for subject in try store.requestedErasures() {
            guard try store.openBatches(of: subject) == 0 else { continue }
            let devices = Set(deviceCache.compactMap { $0.value.record?.subject == subject ? $0.key : nil })
            let done = try store.eraseSubject(subject, devices: devices, nowMs: now)
            try store.checkpoint()
            for cid in done.cids {
                guard let id = ContentID(cid) else { continue }
                do { try blobs.erase(id) } catch { log("erasing blob \(cid): \(error)") }
            }
            log("erased subject \(subject): \(done.roots.count) batches, \(done.readings) readings, custody key destroyed; confirming on-chain")
        }
    }

    nonisolated func log(_ s: String) {
        FileHandle.standardError.write(Data("[iomtchain gateway] \(s)\n".utf8))
    }

    // MARK: proofs, blobs, status

    public enum ProofError: Error, Sendable { case unknown, notAnchored(String) }

    /// The reading's full proof, once its batch is committed.
    public func proof(sequence: Int64) async throws -> ReadingProof {
        guard let r = try store.reading(seq: sequence) else { throw ProofError.unknown }
        guard let b = r.batch, let leaf = r.leaf else { throw ProofError.notAnchored("reading \(sequence) is not batched yet") }
        guard b.placedHolders != nil else { throw ProofError.notAnchored("batch \(b.id)'s blob is not on the consortium's nodes yet") }
        guard let hash = b.txHash else { throw ProofError.notAnchored("batch \(b.id) has no anchor transaction yet") }
        guard case .committed(let h, let body) = try await node.transaction(hash) else { throw ProofError.notAnchored("anchor transaction \(hash) is not committed yet") }
        if b.committedHeight == nil { try store.markCommitted(.batch, id: b.id, height: h) }
        let anchor = try JSONDecoder().decode(TransactionProof.self, from: body)
        let batch = ReadingBatch(try store.readings(batch: b.id).map { BatchedReading(gateway: account.publicKey.address, device: b.device, sequence: UInt64($0.seq), reading: $0.reading) })
        guard batch.root == b.root, let inclusion = batch.proof(leaf), let cid = ContentID(b.cid) else { throw GatewayError.internalError("batch \(b.id) does not rebuild to its root") }
        return ReadingProof(sequence: sequence, device: r.device, reading: batch.readings[leaf], batchRoot: b.root, inclusion: inclusion, blob: cid, anchor: anchor)
    }

    public struct Status: Sendable, Codable {
        public var chainId: String
        public var account: Address
        public var sealingKey: String
        public var uploadsAccepted: UInt64
        public var readingsAccepted: UInt64
        public var refused: [String: UInt64]
        public var queue: GatewayStore.Counts
        public var unanchored: Int
        public var nodeError: String?
        public var alerts: Int64
        public var alertStoreFailures: UInt64
        /// Own transactions (anchors, alerts, audit runs, erasure confirmations) the chain refused: set aside, see the log.
        public var refusedTransactions: UInt64
    }

    public func status() throws -> Status {
        Status(chainId: chainID, account: account.publicKey.address, sealingKey: Hex.encode(Array(sealingKey.publicKey.rawRepresentation)),
               uploadsAccepted: accepted, readingsAccepted: acceptedReadings, refused: refused, queue: try store.counts(), unanchored: try store.unanchoredCount(), nodeError: nodeError,
               alerts: lastAlertID, alertStoreFailures: alertStoreFailures, refusedTransactions: refusedTransactions)
    }
}
