@preconcurrency import Crypto
import Foundation
import GRDB
import IoMTCore
import IoMTEdge

/// The gateway's durable queue: one SQLite file (WAL, `synchronous = FULL`) in its data folder.
///
/// An upload is acknowledged only after its readings and the device's new counter are committed
/// here in one transaction, so a kill -9 after the reply loses nothing and a replayed upload is
/// still refused after a restart. Readings then move through batches: sealed (blob written,
/// readings assigned), signed (the anchor transaction's bytes stored before it is sent, so a
/// restart re-sends the same transaction instead of anchoring twice), committed (its height).
public final class GatewayStore: Sendable {
    let db: DatabaseQueue

    public init(path: String) throws {
        var config = Configuration()
        config.journalMode = .wal
        // secure_delete: a deleted row's bytes (a destroyed custody key, an erased reading) are
        // overwritten in the file, not left in a free page.
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL; PRAGMA secure_delete = ON") }
        db = try DatabaseQueue(path: path, configuration: config)
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
                CREATE TABLE device_counters(device BLOB PRIMARY KEY, counter INTEGER NOT NULL);
                CREATE TABLE mac_keys(device BLOB PRIMARY KEY, key BLOB NOT NULL);
                CREATE TABLE batches(
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    device BLOB NOT NULL, root BLOB NOT NULL UNIQUE, cid TEXT NOT NULL,
                    first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL, count INTEGER NOT NULL, sealed_ms INTEGER NOT NULL,
                    tx_hash BLOB, tx_bytes BLOB, nonce INTEGER, committed_height INTEGER);
                CREATE TABLE readings(
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    device BLOB NOT NULL, received_ms INTEGER NOT NULL, body BLOB NOT NULL,
                    batch INTEGER REFERENCES batches(id), leaf INTEGER);
                CREATE INDEX readings_unbatched ON readings(device, seq) WHERE batch IS NULL;
                CREATE INDEX readings_batch ON readings(batch, leaf);
                CREATE INDEX batches_open ON batches(id) WHERE committed_height IS NULL;
                """)
        }
        m.registerMigration("v2-alerts") { db in
            try db.execute(sql: """
                CREATE TABLE alerts(
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    device BLOB NOT NULL, rule TEXT NOT NULL, severity TEXT NOT NULL, state TEXT NOT NULL,
                    subject BLOB, value TEXT NOT NULL, unit TEXT NOT NULL, effective_ms INTEGER NOT NULL,
                    sequence INTEGER NOT NULL, raised_ms INTEGER NOT NULL,
                    tx_hash BLOB, tx_bytes BLOB, nonce INTEGER, committed_height INTEGER);
                CREATE INDEX alerts_device_rule ON alerts(device, rule, id);
                """)
        }
        m.registerMigration("v3-blob-placement") { db in
            // How many consortium nodes acknowledged holding the batch's blob (NULL: not yet put).
            try db.execute(sql: "ALTER TABLE batches ADD COLUMN placed_holders INTEGER")
        }
        m.registerMigration("v4-reads-and-audit") { db in
            // Whose readings a batch holds and their consent categories (issue 5: serving reads).
            try db.execute(sql: """
                ALTER TABLE batches ADD COLUMN subject BLOB;
                ALTER TABLE batches ADD COLUMN categories TEXT;
                CREATE INDEX batches_subject ON batches(subject, first_ms) WHERE subject IS NOT NULL;
                CREATE TABLE audit(seq INTEGER PRIMARY KEY, subject BLOB NOT NULL, body BLOB NOT NULL, run INTEGER REFERENCES audit_runs(id));
                CREATE INDEX audit_subject ON audit(subject, seq);
                CREATE INDEX audit_unanchored ON audit(seq) WHERE run IS NULL;
                CREATE TABLE audit_runs(
                    id INTEGER PRIMARY KEY AUTOINCREMENT, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, root BLOB NOT NULL,
                    tx_hash BLOB, tx_bytes BLOB, nonce INTEGER, committed_height INTEGER);
                CREATE TABLE request_nonces(account BLOB NOT NULL, nonce TEXT NOT NULL, at_ms INTEGER NOT NULL, PRIMARY KEY(account, nonce));
                """)
        }
        m.registerMigration("v5-erasure") { db in
            try db.execute(sql: """
                CREATE TABLE subject_keys(subject BLOB PRIMARY KEY, key BLOB NOT NULL);
                CREATE TABLE erasures(subject BLOB PRIMARY KEY, sequence INTEGER NOT NULL, state TEXT NOT NULL,
                    batches INTEGER, readings INTEGER, blobs INTEGER, key_destroyed INTEGER, erased_ms INTEGER);
                CREATE TABLE erasure_confirmations(id INTEGER PRIMARY KEY AUTOINCREMENT, subject BLOB NOT NULL, roots BLOB NOT NULL, final INTEGER NOT NULL,
                    tx_hash BLOB, tx_bytes BLOB, nonce INTEGER, committed_height INTEGER);
                CREATE INDEX batches_device ON batches(device);
                """)
        }
        m.registerMigration("v6-reading-subjects") { db in
            // Whose each queued reading is, so erasure finds readings not yet in a batch.
            try db.execute(sql: """
                ALTER TABLE readings ADD COLUMN subject BLOB;
                CREATE INDEX readings_subject ON readings(subject) WHERE subject IS NOT NULL;
                """)
        }
        m.registerMigration("v7-audit-subject-seq") { db in
            try db.execute(sql: """
                ALTER TABLE audit ADD COLUMN subject_seq INTEGER;
                CREATE INDEX audit_subject_seq ON audit(subject, subject_seq);
                """)
        }
        m.registerMigration("v8-research") { db in
            // Research datasets this gateway sealed (issue 5 §7) and the privacy-budget charges of
            // aggregate queries, each answer kept with its charge until the charge commits.
            try db.execute(sql: """
                CREATE TABLE datasets(
                    id INTEGER PRIMARY KEY AUTOINCREMENT, dataset BLOB NOT NULL UNIQUE, subjects BLOB NOT NULL, rows INTEGER NOT NULL, root BLOB NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 1, refusal TEXT,
                    tx_hash BLOB, tx_bytes BLOB, nonce INTEGER, committed_height INTEGER);
                CREATE TABLE privacy_charges(
                    id INTEGER PRIMARY KEY AUTOINCREMENT, dataset BLOB NOT NULL, researcher BLOB NOT NULL, epsilon_milli INTEGER NOT NULL,
                    query_digest BLOB NOT NULL, answer BLOB NOT NULL, created_ms INTEGER NOT NULL, refusal TEXT,
                    tx_hash BLOB, tx_bytes BLOB, nonce INTEGER, committed_height INTEGER);
                CREATE INDEX privacy_charges_dataset ON privacy_charges(dataset, id);
                """)
        }
        m.registerMigration("v9-excursions") { db in
            // Cold-chain excursions to report on-chain (issue 6 §1), one per raised excursion alert,
            // written with it.
            try db.execute(sql: """
                CREATE TABLE excursion_reports(
                    id INTEGER PRIMARY KEY AUTOINCREMENT, alert INTEGER NOT NULL REFERENCES alerts(id), device BLOB NOT NULL, batch BLOB NOT NULL,
                    centi_c INTEGER NOT NULL, at_ms INTEGER NOT NULL,
                    tx_hash BLOB, tx_bytes BLOB, nonce INTEGER, committed_height INTEGER);
                """)
        }
        m.registerMigration("v10-tracing") { db in
            // Venue check-ins (issue 6 §2): token hashes only; anchored in batches per venue. Positive
            // cases matched here become exposure reports, one per case and venue.
            try db.execute(sql: """
                CREATE TABLE checkin_batches(
                    id INTEGER PRIMARY KEY AUTOINCREMENT, venue TEXT NOT NULL, root BLOB NOT NULL UNIQUE, count INTEGER NOT NULL,
                    first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL,
                    tx_hash BLOB, tx_bytes BLOB, nonce INTEGER, committed_height INTEGER);
                CREATE TABLE checkins(
                    id INTEGER PRIMARY KEY AUTOINCREMENT, token_hash BLOB NOT NULL UNIQUE, venue TEXT NOT NULL,
                    in_ms INTEGER NOT NULL, out_ms INTEGER NOT NULL, batch INTEGER REFERENCES checkin_batches(id));
                CREATE INDEX checkins_venue ON checkins(venue, in_ms);
                CREATE INDEX checkins_unbatched ON checkins(id) WHERE batch IS NULL;
                CREATE TABLE exposure_reports(
                    id INTEGER PRIMARY KEY AUTOINCREMENT, case_id BLOB NOT NULL, venue TEXT NOT NULL, visits INTEGER NOT NULL,
                    exposed BLOB NOT NULL, roots BLOB NOT NULL, raised_ms INTEGER NOT NULL,
                    tx_hash BLOB, tx_bytes BLOB, nonce INTEGER, committed_height INTEGER, UNIQUE(case_id, venue));
                """)
        }
        m.registerMigration("v11-local-exposure-reports") { db in
            // A case's visit that exposed nobody is a local venue alarm only (0), not an on-chain record.
            try db.execute(sql: "ALTER TABLE exposure_reports ADD COLUMN on_chain INTEGER NOT NULL DEFAULT 1")
        }
        m.registerMigration("v12-geofences") { db in
            // Quarantine geofences handed over by public-health officers (issue 6 §3); their
            // commitments are on-chain, the positions only here.
            try db.execute(sql: """
                CREATE TABLE geofences(order_id BLOB PRIMARY KEY, device BLOB NOT NULL, x_cm INTEGER NOT NULL, y_cm INTEGER NOT NULL, radius_cm INTEGER NOT NULL, salt BLOB NOT NULL);
                """)
        }
        m.registerMigration("v13-outgoing") { db in
            // Transactions the gateway queues as they are (ventilation commands and acknowledgements,
            // faults: issue 6 §4), signed in order like the rest.
            try db.execute(sql: """
                CREATE TABLE outgoing(id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL, created_ms INTEGER NOT NULL,
                    tx_hash BLOB, tx_bytes BLOB, nonce INTEGER, committed_height INTEGER);
                """)
        }
        m.registerMigration("v14-sealed-geofences") { db in
            // A quarantined person's home (the fence's centre) is sealed at rest: AES-GCM under a key
            // derived from the gateway's sealing key, the order as associated data. Fences an older
            // gateway kept in the clear are sealed when the gateway first opens them (`geofences(key:)`).
            try db.execute(sql: "CREATE TABLE sealed_geofences(order_id BLOB PRIMARY KEY, device BLOB NOT NULL, sealed BLOB NOT NULL)")
        }
        m.registerMigration("v15-exposure-parts") { db in
            // A case's exposures at a venue go on-chain in parts of up to 1,500 check-ins
            // (RecordExposures.part): one report per case, venue and part.
            try db.execute(sql: """
                CREATE TABLE exposure_reports_v2(
                    id INTEGER PRIMARY KEY AUTOINCREMENT, case_id BLOB NOT NULL, venue TEXT NOT NULL, part INTEGER NOT NULL DEFAULT 0, visits INTEGER NOT NULL,
                    exposed BLOB NOT NULL, roots BLOB NOT NULL, raised_ms INTEGER NOT NULL,
                    tx_hash BLOB, tx_bytes BLOB, nonce INTEGER, committed_height INTEGER, on_chain INTEGER NOT NULL DEFAULT 1, UNIQUE(case_id, venue, part));
                INSERT INTO exposure_reports_v2(id, case_id, venue, part, visits, exposed, roots, raised_ms, tx_hash, tx_bytes, nonce, committed_height, on_chain)
                    SELECT id, case_id, venue, 0, visits, exposed, roots, raised_ms, tx_hash, tx_bytes, nonce, committed_height, on_chain FROM exposure_reports;
                DROP TABLE exposure_reports;
                ALTER TABLE exposure_reports_v2 RENAME TO exposure_reports;
                """)
        }
        try m.migrate(db)
    }

    /// Queues a transaction payload to sign and send (durably, before this returns).
    public func queue(_ payload: TransactionPayload, atMs: Int64) throws {
        try db.write { db in try db.execute(sql: "INSERT INTO outgoing(payload, created_ms) VALUES (?, ?)", arguments: [Data(payload.canonicalBytes), atMs]) }
    }

    /// The last ventilation command for a controller queued here and not refused (committed or not).
    public func queuedVentilation(_ device: Address) throws -> CommandVentilation? {
        try db.read { db in
            var last: CommandVentilation?
            for data in try Data.fetchAll(db, sql: "SELECT payload FROM outgoing WHERE committed_height IS NULL OR committed_height > 0 ORDER BY id") {
                if case .commandVentilation(let c) = try TransactionPayload(canonicalBytes: Array(data)), c.device == device { last = c }
            }
            return last
        }
    }

    public func unsignedQueued(limit: Int = 500) throws -> [(id: Int64, payload: TransactionPayload)] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT id, payload FROM outgoing WHERE tx_bytes IS NULL AND committed_height IS NULL ORDER BY id LIMIT ?", arguments: [limit]).map { r in
                (r["id"], try TransactionPayload(canonicalBytes: Array(r["payload"] as Data)))
            }
        }
    }

    /// Keeps a quarantine's geofence, sealed under `key` (see `v14-sealed-geofences`).
    public func addGeofence(order: Hash, device: Address, fence: Geofence, key: SymmetricKey) throws {
        let sealed = try Self.seal(fence, order: order, key: key)
        try db.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO sealed_geofences(order_id, device, sealed) VALUES (?, ?, ?)",
                           arguments: [Data(order.bytes), Data(device.bytes), Data(sealed)])
        }
    }

    /// Every geofence kept: order, device, fence (opened with `key`). Fences an older gateway
    /// kept in the clear are sealed first, and their clear rows deleted (zeroed: `secure_delete`).
    /// A fence that does not open under `key` (another gateway's database) is an error.
    public func geofences(key: SymmetricKey) throws -> [(order: Hash, device: Address, fence: Geofence)] {
        let rows = try db.write { db -> [Row] in
            if try db.tableExists("geofences") {
                for r in try Row.fetchAll(db, sql: "SELECT * FROM geofences") {
                    let order = Hash(bytes: Array(r["order_id"] as Data))!
                    let fence = Geofence(xCm: r["x_cm"], yCm: r["y_cm"], radiusCm: r["radius_cm"], salt: Array(r["salt"] as Data))
                    try db.execute(sql: "INSERT OR REPLACE INTO sealed_geofences(order_id, device, sealed) VALUES (?, ?, ?)",
                                   arguments: [Data(order.bytes), r["device"] as Data, Data(try Self.seal(fence, order: order, key: key))])
                }
                try db.execute(sql: "DROP TABLE geofences")
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM sealed_geofences ORDER BY rowid")
        }
        return try rows.map { r in
            let order = Hash(bytes: Array(r["order_id"] as Data))!
            return (order, Address(bytes: Array(r["device"] as Data))!, try Self.open(Array(r["sealed"] as Data), order: order, key: key))
        }
    }

    /// Deletes a geofence whose quarantine is over (the row is zeroed: `secure_delete`).
    public func removeGeofence(order: Hash) throws {
        try db.write { db in try db.execute(sql: "DELETE FROM sealed_geofences WHERE order_id = ?", arguments: [Data(order.bytes)]) }
    }

    private static func seal(_ fence: Geofence, order: Hash, key: SymmetricKey) throws -> [UInt8] {
        var w = CanonicalWriter()
        w.write(fence.xCm); w.write(fence.yCm); w.write(fence.radiusCm); w.writeBytes(fence.salt)
        return Array(try AES.GCM.seal(w.bytes, using: key, authenticating: order.bytes).combined!)
    }

    private static func open(_ sealed: [UInt8], order: Hash, key: SymmetricKey) throws -> Geofence {
        let plain = try AES.GCM.open(try AES.GCM.SealedBox(combined: sealed), using: key, authenticating: order.bytes)
        var r = CanonicalReader(Array(plain))
        return Geofence(xCm: try r.read(), yCm: try r.read(), radiusCm: try r.read(), salt: try r.readBytes())
    }

    // MARK: uploads

    public struct NewUpload: Sendable {
        public var device: Address
        public var counter: UInt64
        public var readings: [Reading]
        public var receivedMs: Int64
        /// The patient pseudonym the device is bound to.
        public var subject: Hash?
        public init(device: Address, counter: UInt64, readings: [Reading], receivedMs: Int64, subject: Hash? = nil) {
            self.device = device; self.counter = counter; self.readings = readings; self.receivedMs = receivedMs; self.subject = subject
        }
    }

    /// Stores many uploads in one transaction (group commit: one fsync for all). Each is checked
    /// on its own: one whose counter is not above its device's last (counting the uploads before it
    /// in the same group) is refused as a replay and writes nothing; the others are stored.
    public func accept(_ uploads: [NewUpload]) throws -> [Result<ClosedRange<Int64>, UploadRefusal>] {
        try db.write { db in
            var last: [Address: UInt64] = [:]
            var out: [Result<ClosedRange<Int64>, UploadRefusal>] = []
            out.reserveCapacity(uploads.count)
            let insert = try db.cachedStatement(sql: "INSERT INTO readings(device, received_ms, body, subject) VALUES (?, ?, ?, ?)")
            // An erased subject's readings are refused here too, inside the write: an upload that
            // passed the gateway's check just before the erasure was noted cannot slip in after it.
            let isErased = try db.cachedStatement(sql: "SELECT 1 FROM erasures WHERE subject = ?")
            for u in uploads {
                let key = Data(u.device.bytes)
                let previous = try last[u.device] ?? Int64.fetchOne(db, sql: "SELECT counter FROM device_counters WHERE device = ?", arguments: [key]).map { UInt64(bitPattern: $0) }
                if let previous, u.counter <= previous {
                    out.append(.failure(.replay(device: u.device, counter: u.counter, last: previous)))
                    continue
                }
                if let subject = u.subject, try Bool.fetchOne(isErased, arguments: [Data(subject.bytes)]) == true {
                    out.append(.failure(.subjectErased(subject)))
                    continue
                }
                try db.execute(sql: "INSERT OR REPLACE INTO device_counters(device, counter) VALUES (?, ?)", arguments: [key, Int64(bitPattern: u.counter)])
                last[u.device] = u.counter
                var first: Int64 = 0
                for (i, r) in u.readings.enumerated() {
                    try insert.execute(arguments: [key, u.receivedMs, Data(r.canonicalBytes), u.subject.map { Data($0.bytes) }])
                    if i == 0 { first = db.lastInsertedRowID }
                }
                out.append(.success(first...db.lastInsertedRowID))
            }
            return out
        }
    }

    public func lastCounter(_ device: Address) throws -> UInt64? {
        try db.read { db in try Int64.fetchOne(db, sql: "SELECT counter FROM device_counters WHERE device = ?", arguments: [Data(device.bytes)]).map { UInt64(bitPattern: $0) } }
    }

    /// Readings accepted and not yet anchored in a committed block (for backpressure).
    public func unanchoredCount() throws -> Int {
        try db.read { db in
            try Int.fetchOne(db, sql: "SELECT (SELECT count(*) FROM readings WHERE batch IS NULL) + (SELECT coalesce(sum(count), 0) FROM batches WHERE committed_height IS NULL)") ?? 0
        }
    }

    // MARK: alerts

    public struct StoredAlert: Sendable, Codable {
        public var id: Int64
        public var event: AlarmEvent
        /// The reading that raised or cleared it.
        public var sequence: Int64
        /// When the gateway raised it (its clock).
        public var raisedMs: Int64
    }

    /// A cold-chain excursion to report with its alert: the batch the logger watches and the temperature.
    public struct Excursion: Sendable {
        public var batch: Hash
        public var centiC: Int32
        public init(batch: Hash, centiC: Int32) { self.batch = batch; self.centiC = centiC }
    }

    /// Stores alarm events durably (with the excursion report of each raised excursion, in the
    /// same transaction); returns them with their ids.
    public func addAlerts(_ events: [(AlarmEvent, sequence: Int64, excursion: Excursion?)], atMs: Int64) throws -> [StoredAlert] {
        try db.write { db in
            try events.map { e, seq, excursion in
                try db.execute(sql: "INSERT INTO alerts(device, rule, severity, state, subject, value, unit, effective_ms, sequence, raised_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               arguments: [Data(e.device.bytes), e.rule, e.severity, e.state.rawValue, e.subject.map { Data($0.bytes) }, e.value, e.unit, e.effectiveMs, seq, atMs])
                let id = db.lastInsertedRowID
                if let x = excursion {
                    try db.execute(sql: "INSERT INTO excursion_reports(alert, device, batch, centi_c, at_ms) VALUES (?, ?, ?, ?, ?)",
                                   arguments: [id, Data(e.device.bytes), Data(x.batch.bytes), Int64(x.centiC), e.effectiveMs])
                }
                return StoredAlert(id: id, event: e, sequence: seq, raisedMs: atMs)
            }
        }
    }

    /// Excursion reports without a signed `report-excursion` transaction yet, oldest first.
    public func unsignedExcursions(limit: Int = 500) throws -> [(id: Int64, report: ReportExcursion)] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM excursion_reports WHERE tx_bytes IS NULL ORDER BY id LIMIT ?", arguments: [limit]).map { r in
                (r["id"], ReportExcursion(device: Address(bytes: Array(r["device"] as Data))!, batch: Hash(bytes: Array(r["batch"] as Data))!,
                                          centiC: Int32(r["centi_c"] as Int64), atMs: r["at_ms"]))
            }
        }
    }

    static func alert(_ r: Row) -> StoredAlert {
        let subject: Data? = r["subject"]
        let event = AlarmEvent(rule: r["rule"], severity: r["severity"], state: AlarmEvent.State(rawValue: r["state"]) ?? .raised,
                               device: Address(bytes: Array(r["device"] as Data))!, subject: subject.flatMap { Hash(bytes: Array($0)) },
                               value: r["value"], unit: r["unit"], effectiveMs: r["effective_ms"])
        return StoredAlert(id: r["id"], event: event, sequence: r["sequence"], raisedMs: r["raised_ms"])
    }

    /// A patient's alerts raised or cleared in [fromMs, toMs] (the reading's time), oldest first (1,000 at most).
    public func alerts(subject: Hash, fromMs: Int64, toMs: Int64, limit: Int = 1_000) throws -> [StoredAlert] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM alerts WHERE subject = ? AND effective_ms BETWEEN ? AND ? ORDER BY id LIMIT ?",
                             arguments: [Data(subject.bytes), fromMs, toMs, limit]).map(Self.alert)
        }
    }

    /// Alerts after `id`, oldest first.
    public func alerts(after id: Int64, limit: Int = 1000) throws -> [StoredAlert] {
        try db.read { db in try Row.fetchAll(db, sql: "SELECT * FROM alerts WHERE id > ? ORDER BY id LIMIT ?", arguments: [id, limit]).map(Self.alert) }
    }

    /// The alarms whose last event is `raised` (restored into the tracker at start).
    public func activeAlarms() throws -> [AlarmTracker.Key] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT device, rule, state FROM alerts WHERE id IN (SELECT max(id) FROM alerts GROUP BY device, rule)").compactMap { r in
                let state: String = r["state"]
                guard state == AlarmEvent.State.raised.rawValue else { return nil }
                return AlarmTracker.Key(device: Address(bytes: Array(r["device"] as Data))!, rule: r["rule"])
            }
        }
    }

    /// Alerts without a signed `record-alert` transaction yet, oldest first.
    public func unsignedAlerts(limit: Int = 500) throws -> [StoredAlert] {
        try db.read { db in try Row.fetchAll(db, sql: "SELECT * FROM alerts WHERE tx_bytes IS NULL ORDER BY id LIMIT ?", arguments: [limit]).map(Self.alert) }
    }

    public func lastAlertID() throws -> Int64 {
        try db.read { db in try Int64.fetchOne(db, sql: "SELECT coalesce(max(id), 0) FROM alerts") ?? 0 }
    }

    // MARK: MAC keys

    public func setMACKey(_ key: [UInt8], for device: Address) throws {
        try db.write { db in try db.execute(sql: "INSERT OR REPLACE INTO mac_keys(device, key) VALUES (?, ?)", arguments: [Data(device.bytes), Data(key)]) }
    }

    public func macKey(_ device: Address) throws -> [UInt8]? {
        try db.read { db in try Data.fetchOne(db, sql: "SELECT key FROM mac_keys WHERE device = ?", arguments: [Data(device.bytes)]).map { Array($0) } }
    }

    // MARK: batching

    public struct PendingDevice: Sendable { public var device: Address; public var count: Int; public var oldestMs: Int64 }

    /// Devices with unbatched readings, how many, and when the oldest arrived.
    public func pendingDevices() throws -> [PendingDevice] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT device, count(*) AS n, min(received_ms) AS oldest FROM readings WHERE batch IS NULL GROUP BY device").map {
                PendingDevice(device: Address(bytes: Array($0["device"] as Data))!, count: $0["n"], oldestMs: $0["oldest"])
            }
        }
    }

    /// The oldest `limit` unbatched readings of a device, in sequence order.
    public func unbatched(_ device: Address, limit: Int) throws -> [(seq: Int64, reading: Reading)] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT seq, body FROM readings WHERE device = ? AND batch IS NULL ORDER BY seq LIMIT ?", arguments: [Data(device.bytes), limit]).map { row -> (seq: Int64, reading: Reading) in
                let seq: Int64 = row["seq"]
                let body: Data = row["body"]
                return (seq: seq, reading: try Reading(canonicalBytes: Array(body), trusted: true))
            }
        }
    }

    /// Records a sealed batch (its blob is already durable) and assigns its readings, in order.
    public func recordBatch(device: Address, batch: ReadingBatch, sequences: [Int64], cid: ContentID, sealedMs: Int64) throws -> Int64 {
        try recordBatches([SealedBatch(device: device, batch: batch, sequences: sequences, cid: cid)], sealedMs: sealedMs)[0]
    }

    public struct SealedBatch: Sendable {
        public var device: Address
        public var batch: ReadingBatch
        public var sequences: [Int64]
        public var cid: ContentID
        /// The patient pseudonym the device is bound to, if any.
        public var subject: Hash?
        public init(device: Address, batch: ReadingBatch, sequences: [Int64], cid: ContentID, subject: Hash? = nil) {
            self.device = device; self.batch = batch; self.sequences = sequences; self.cid = cid; self.subject = subject
        }

        /// The consent categories of its readings, sorted, comma-separated.
        public var categories: String { Set(batch.readings.map(\.reading.kind.dataCategory)).sorted().joined(separator: ",") }
    }

    /// Records sealed batches (their blobs already durable) in one transaction: one fsync for all.
    public func recordBatches(_ sealed: [SealedBatch], sealedMs: Int64) throws -> [Int64] {
        try db.write { db in
            try sealed.map { s in
                try db.execute(sql: "INSERT INTO batches(device, root, cid, first_ms, last_ms, count, sealed_ms, subject, categories) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               arguments: [Data(s.device.bytes), Data(s.batch.root.bytes), s.cid.description, s.batch.firstMs, s.batch.lastMs, s.sequences.count, sealedMs,
                                           s.subject.map { Data($0.bytes) }, s.categories])
                let id = db.lastInsertedRowID
                for (leaf, seq) in s.sequences.enumerated() {
                    try db.execute(sql: "UPDATE readings SET batch = ?, leaf = ? WHERE seq = ? AND batch IS NULL", arguments: [id, leaf, seq])
                    guard db.changesCount == 1 else { throw GatewayError.internalError("reading \(seq) was batched twice") }
                }
                return id
            }
        }
    }

    public struct Batch: Sendable {
        public var id: Int64
        public var device: Address
        public var root: Hash
        public var cid: String
        public var firstMs: Int64
        public var lastMs: Int64
        public var count: Int
        public var txHash: Hash?
        public var txBytes: [UInt8]?
        public var nonce: UInt64?
        public var committedHeight: UInt64?
        /// Consortium nodes holding its blob, once put on the node (0: too large to replicate).
        public var placedHolders: Int?
        /// The patient pseudonym its device is bound to (nil: a place's batch, or sealed before v4).
        public var subject: Hash?
    }

    static func batch(_ r: Row) -> Batch {
        Batch(id: r["id"], device: Address(bytes: Array(r["device"] as Data))!, root: Hash(bytes: Array(r["root"] as Data))!, cid: r["cid"],
              firstMs: r["first_ms"], lastMs: r["last_ms"], count: r["count"],
              txHash: (r["tx_hash"] as Data?).flatMap { Hash(bytes: Array($0)) }, txBytes: (r["tx_bytes"] as Data?).map { Array($0) },
              nonce: (r["nonce"] as Int64?).map { UInt64($0) }, committedHeight: (r["committed_height"] as Int64?).map { UInt64($0) },
              placedHolders: r["placed_holders"], subject: (r["subject"] as Data?).flatMap { Hash(bytes: Array($0)) })
    }

    /// Records that the batch's blob is held by `holders` consortium nodes.
    public func markPlaced(batch id: Int64, holders: Int) throws {
        try db.write { db in try db.execute(sql: "UPDATE batches SET placed_holders = ? WHERE id = ?", arguments: [holders, id]) }
    }

    /// Batches not yet committed on-chain, oldest first.
    public func openBatches(limit: Int = 1000) throws -> [Batch] {
        try db.read { db in try Row.fetchAll(db, sql: "SELECT * FROM batches WHERE committed_height IS NULL ORDER BY id LIMIT ?", arguments: [limit]).map(Self.batch) }
    }

    /// The gateway's outgoing transactions live with what they carry: a batch's `anchor-readings`,
    /// an alert's `record-alert`. Each is stored signed before it is sent, with its nonce; the
    /// gateway's next nonce moves in the same write.
    public enum Outgoing: String, Sendable, CaseIterable {
        case batch = "batches", alert = "alerts", audit = "audit_runs", erasure = "erasure_confirmations", dataset = "datasets", charge = "privacy_charges", excursion = "excursion_reports",
             checkIns = "checkin_batches", exposure = "exposure_reports", queued = "outgoing"
    }

    public func setTransaction(_ kind: Outgoing, id: Int64, hash: Hash, bytes: [UInt8], nonce: UInt64) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE \(kind.rawValue) SET tx_hash = ?, tx_bytes = ?, nonce = ? WHERE id = ?", arguments: [Data(hash.bytes), Data(bytes), Int64(nonce), id])
            try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('next_nonce', ?)", arguments: [Data(String(nonce + 1).utf8)])
        }
    }

    public struct Signed: Sendable {
        public var kind: Outgoing
        public var id: Int64
        public var nonce: UInt64
        public var hash: Hash
        public var bytes: [UInt8]
    }

    /// Signed, not yet committed transactions, in nonce order (the order the node accepts them in).
    public func outbox(limit: Int = 1000) throws -> [Signed] {
        try db.read { db in
            // One SELECT per table that holds signed transactions (every `Outgoing`), in nonce order.
            let union = Outgoing.allCases.map {
                "SELECT '\($0.rawValue)' AS kind, id, nonce, tx_hash, tx_bytes FROM \($0.rawValue) WHERE committed_height IS NULL AND tx_bytes IS NOT NULL"
            }.joined(separator: " UNION ALL ")
            return try Row.fetchAll(db, sql: union + " ORDER BY nonce LIMIT ?", arguments: [limit]).map { r in
                Signed(kind: Outgoing(rawValue: r["kind"])!, id: r["id"], nonce: UInt64(r["nonce"] as Int64), hash: Hash(bytes: Array(r["tx_hash"] as Data))!, bytes: Array(r["tx_bytes"] as Data))
            }
        }
    }

    /// Forgets every uncommitted transaction from `nonce` on (that nonce went to another
    /// transaction, so these can never commit): their batches and alerts are signed again.
    public func clearTransactions(fromNonce nonce: UInt64, resetNonceTo next: UInt64) throws {
        try db.write { db in
            for t in Outgoing.allCases {
                try db.execute(sql: "UPDATE \(t.rawValue) SET tx_hash = NULL, tx_bytes = NULL, nonce = NULL WHERE committed_height IS NULL AND nonce >= ?", arguments: [Int64(nonce)])
            }
            try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('next_nonce', ?)", arguments: [Data(String(next).utf8)])
        }
    }

    public func nextNonce() throws -> UInt64? {
        try db.read { db in try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'next_nonce'").flatMap { UInt64(String(decoding: $0, as: UTF8.self)) } }
    }

    public func markCommitted(_ kind: Outgoing, id: Int64, height: UInt64) throws {
        try db.write { db in try db.execute(sql: "UPDATE \(kind.rawValue) SET committed_height = ? WHERE id = ?", arguments: [Int64(height), id]) }
    }

    /// Sets a transaction the chain refused aside (height 0), keeping the refusal where the row has room for it.
    public func markRefused(_ kind: Outgoing, id: Int64, code: String) throws {
        try db.write { db in
            if kind == .dataset || kind == .charge {
                try db.execute(sql: "UPDATE \(kind.rawValue) SET committed_height = 0, refusal = ? WHERE id = ?", arguments: [code, id])
            } else {
                try db.execute(sql: "UPDATE \(kind.rawValue) SET committed_height = 0 WHERE id = ?", arguments: [id])
            }
        }
    }

    // MARK: reads and their audit log (issue 5)

    /// Committed batches of `subject` holding only `category` readings, wholly inside
    /// `fromMs…toMs`, oldest first.
    public func readableBatches(subject: Hash, category: String, fromMs: Int64, toMs: Int64, limit: Int) throws -> [Batch] {
        try db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM batches WHERE subject = ? AND categories = ? AND first_ms >= ? AND last_ms <= ? AND committed_height IS NOT NULL
                ORDER BY first_ms, id LIMIT ?
                """, arguments: [Data(subject.bytes), category, fromMs, toMs, limit]).map(Self.batch)
        }
    }

    /// Claims a request nonce for an account: false if it was used before (a replay). Nonces
    /// older than `forgetBeforeMs` are forgotten (requests that old are refused as stale anyway).
    public func claimNonce(account: Address, nonce: String, atMs: Int64, forgetBeforeMs: Int64) throws -> Bool {
        try db.write { db in
            try db.execute(sql: "DELETE FROM request_nonces WHERE at_ms < ?", arguments: [forgetBeforeMs])
            try db.execute(sql: "INSERT OR IGNORE INTO request_nonces(account, nonce, at_ms) VALUES (?, ?, ?)", arguments: [Data(account.bytes), nonce, atMs])
            return db.changesCount == 1
        }
    }

    /// Whether `nonce` was already used by `account` (a cheap early check; the claim is `appendAudit`'s).
    public func nonceUsed(account: Address, nonce: String) throws -> Bool {
        try db.read { db in try Bool.fetchOne(db, sql: "SELECT 1 FROM request_nonces WHERE account = ? AND nonce = ?", arguments: [Data(account.bytes), nonce]) ?? false }
    }

    /// Appends an entry to the audit log (durably: the read is answered after this returns); its
    /// `seq` is assigned here, one more than the last. With `claiming` (account, nonce, time,
    /// forget-before), the request's nonce is claimed in the same transaction; `make` learns
    /// whether it was used before (a replay) and writes the entry accordingly.
    public func appendAudit(claiming: (Address, String, Int64, Int64)? = nil, subject: Hash, _ make: (_ seq: UInt64, _ subjectSeq: UInt64, _ replayed: Bool) -> AuditEntry) throws -> (entry: AuditEntry, replayed: Bool) {
        try db.write { db in
            var replayed = false
            if let (account, nonce, atMs, forget) = claiming {
                try db.execute(sql: "DELETE FROM request_nonces WHERE at_ms < ?", arguments: [forget])
                try db.execute(sql: "INSERT OR IGNORE INTO request_nonces(account, nonce, at_ms) VALUES (?, ?, ?)", arguments: [Data(account.bytes), nonce, atMs])
                replayed = db.changesCount == 0
            }
            return (try Self.insertAudit(db, subject: subject) { seq, subjectSeq in make(seq, subjectSeq, replayed) }, replayed)
        }
    }

    /// Appends one entry inside a write: numbers it (next `seq`, next of its subject) and checks
    /// that `make` kept the numbers.
    static func insertAudit(_ db: Database, subject: Hash, _ make: (_ seq: UInt64, _ subjectSeq: UInt64) -> AuditEntry) throws -> AuditEntry {
        let seq = UInt64(try Int64.fetchOne(db, sql: "SELECT coalesce(max(seq), 0) + 1 FROM audit") ?? 1)
        let subjectSeq = UInt64(try Int64.fetchOne(db, sql: "SELECT coalesce(max(subject_seq), 0) + 1 FROM audit WHERE subject = ?", arguments: [Data(subject.bytes)]) ?? 1)
        let e = make(seq, subjectSeq)
        guard e.subject == subject, e.seq == seq, e.subjectSeq == subjectSeq else { throw GatewayError.internalError("an audit entry must carry the numbers it was given") }
        try db.execute(sql: "INSERT INTO audit(seq, subject, body, subject_seq) VALUES (?, ?, ?, ?)", arguments: [Int64(seq), Data(e.subject.bytes), Data(e.canonicalBytes), Int64(subjectSeq)])
        return e
    }

    public struct AuditRun: Sendable, Codable {
        public var id: Int64
        public var firstSeq: UInt64
        public var lastSeq: UInt64
        public var root: Hash
        public var transaction: Hash?
        public var committedHeight: UInt64?
    }

    static func run(_ r: Row) -> AuditRun {
        AuditRun(id: r["id"], firstSeq: UInt64(r["first_seq"] as Int64), lastSeq: UInt64(r["last_seq"] as Int64), root: Hash(bytes: Array(r["root"] as Data))!,
                 transaction: (r["tx_hash"] as Data?).flatMap { Hash(bytes: Array($0)) }, committedHeight: (r["committed_height"] as Int64?).map { UInt64($0) })
    }

    /// Closes the entries not yet in a run into a new run (at most `limit`) under their Merkle root,
    /// if there are at least `minimum` of them.
    public func closeAuditRun(limit: Int = 10_000, minimum: Int = 1) throws -> AuditRun? {
        try db.write { db in
            let rows = try Row.fetchAll(db, sql: "SELECT seq, body FROM audit WHERE run IS NULL ORDER BY seq LIMIT ?", arguments: [limit])
            guard rows.count >= minimum, let first = rows.first, let last = rows.last else { return nil }
            let root = MerkleTree.root(leaves: rows.map { Array($0["body"] as Data) })
            let firstSeq: Int64 = first["seq"], lastSeq: Int64 = last["seq"]
            try db.execute(sql: "INSERT INTO audit_runs(first_seq, last_seq, root) VALUES (?, ?, ?)", arguments: [firstSeq, lastSeq, Data(root.bytes)])
            let id = db.lastInsertedRowID
            try db.execute(sql: "UPDATE audit SET run = ? WHERE run IS NULL AND seq BETWEEN ? AND ?", arguments: [id, firstSeq, lastSeq])
            return AuditRun(id: id, firstSeq: UInt64(firstSeq), lastSeq: UInt64(lastSeq), root: root)
        }
    }

    public func auditRun(id: Int64) throws -> AuditRun? {
        try db.read { db in try Row.fetchOne(db, sql: "SELECT * FROM audit_runs WHERE id = ?", arguments: [id]).map(Self.run) }
    }

    /// Runs without a signed `anchor-audit` transaction yet, oldest first.
    public func unsignedAuditRuns() throws -> [AuditRun] {
        try db.read { db in try Row.fetchAll(db, sql: "SELECT * FROM audit_runs WHERE tx_bytes IS NULL ORDER BY id").map(Self.run) }
    }

    public struct AuditRecord: Sendable, Codable {
        public var entry: AuditEntry
        /// The anchored run holding it, with the entry's inclusion proof (nil while unanchored).
        public var run: AuditRun?
        public var proof: InclusionProof?
    }

    /// A subject's audit entries after `seq`, oldest first, each with its run's proof if it has one.
    public func audit(subject: Hash, after seq: UInt64, limit: Int) throws -> [AuditRecord] {
        try db.read { db in
            var runs: [Int64: (AuditRun, [Hash])] = [:]
            return try Row.fetchAll(db, sql: "SELECT seq, body, run FROM audit WHERE subject = ? AND seq > ? ORDER BY seq LIMIT ?",
                                    arguments: [Data(subject.bytes), Int64(seq), limit]).map { r in
                let entry = try AuditEntry(canonicalBytes: Array(r["body"] as Data), trusted: true)
                guard let runID: Int64 = r["run"] else { return AuditRecord(entry: entry) }
                if runs[runID] == nil, let row = try Row.fetchOne(db, sql: "SELECT * FROM audit_runs WHERE id = ?", arguments: [runID]) {
                    let run = Self.run(row)
                    let leaves = try Data.fetchAll(db, sql: "SELECT body FROM audit WHERE seq BETWEEN ? AND ? ORDER BY seq", arguments: [Int64(run.firstSeq), Int64(run.lastSeq)])
                    runs[runID] = (run, leaves.map { MerkleTree.leafHash(Array($0)) })
                }
                guard let (run, hashes) = runs[runID] else { return AuditRecord(entry: entry) }
                return AuditRecord(entry: entry, run: run, proof: MerkleTree.proof(leafHashes: hashes, index: Int(entry.seq - run.firstSeq)))
            }
        }
    }

    // MARK: custody keys and erasure (issue 5 §6)

    /// The subject's custody key (32 raw X25519 private-key bytes), made on first use. Its batches
    /// are sealed for it, so destroying it (erasure) leaves this gateway unable to open any copy.
    public func subjectKey(_ subject: Hash, create: Bool) throws -> [UInt8]? {
        if !create {
            return try db.read { db in try Data.fetchOne(db, sql: "SELECT key FROM subject_keys WHERE subject = ?", arguments: [Data(subject.bytes)]).map { Array($0) } }
        }
        return try db.write { db in
            if let k = try Data.fetchOne(db, sql: "SELECT key FROM subject_keys WHERE subject = ?", arguments: [Data(subject.bytes)]) { return Array(k) }
            guard create else { return nil }
            guard try Int.fetchOne(db, sql: "SELECT count(*) FROM erasures WHERE subject = ?", arguments: [Data(subject.bytes)]) == 0 else { return nil }
            let key = Array(Curve25519.KeyAgreement.PrivateKey().rawRepresentation)
            try db.execute(sql: "INSERT INTO subject_keys(subject, key) VALUES (?, ?)", arguments: [Data(subject.bytes), Data(key)])
            return key
        }
    }

    public func erasureCursor() throws -> UInt64 {
        try db.read { db in try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'erasure_cursor'").flatMap { UInt64(String(decoding: $0, as: UTF8.self)) } ?? 0 }
    }

    /// Records the chain's erasure number `sequence` (of `subject`, which this gateway may or may
    /// not hold data of) and moves the cursor past it.
    public func noteErasure(_ subject: Hash, sequence: UInt64) throws {
        try db.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO erasures(subject, sequence, state) VALUES (?, ?, 'requested')", arguments: [Data(subject.bytes), Int64(sequence)])
            try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('erasure_cursor', ?)", arguments: [Data(String(sequence).utf8)])
        }
    }

    public func erasedSubjects() throws -> Set<Hash> {
        try db.read { db in Set(try Data.fetchAll(db, sql: "SELECT subject FROM erasures").compactMap { Hash(bytes: Array($0)) }) }
    }

    public func requestedErasures() throws -> [Hash] {
        try db.read { db in try Data.fetchAll(db, sql: "SELECT subject FROM erasures WHERE state = 'requested' ORDER BY sequence").compactMap { Hash(bytes: Array($0)) } }
    }

    /// The subject's batches that are sealed but not yet committed (erasure waits for them: their
    /// blobs are on the nodes and their anchors about to commit, so they are confirmed too).
    public func openBatches(of subject: Hash) throws -> Int {
        try db.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM batches WHERE subject = ? AND committed_height IS NULL", arguments: [Data(subject.bytes)]) ?? 0 }
    }

    /// Deletes queued readings of subjects already being erased (an erasure waiting for its
    /// batches to commit must not keep new plaintext meanwhile); returns how many.
    public func purgeErased() throws -> Int {
        try db.write { db in
            try db.execute(sql: "DELETE FROM readings WHERE batch IS NULL AND subject IN (SELECT subject FROM erasures)")
            return db.changesCount
        }
    }

    public struct LocalErasure: Sendable { public var cids: [String]; public var roots: [Hash]; public var readings: Int }

    /// Erases what this gateway holds of `subject`: its readings (batched, and queued from its
    /// devices), its custody key; lists the batches' blobs (the caller deletes them) and queues
    /// the on-chain confirmations (roots in chunks, the last one final). In one transaction.
    public func eraseSubject(_ subject: Hash, devices: Set<Address>, nowMs: Int64) throws -> LocalErasure {
        try db.write { db in
            let key = Data(subject.bytes)
            let rows = try Row.fetchAll(db, sql: "SELECT id, root, cid, device FROM batches WHERE subject = ?", arguments: [key])
            let allDevices = devices.union(rows.compactMap { Address(bytes: Array($0["device"] as Data)) })
            var readings = 0
            try db.execute(sql: "DELETE FROM readings WHERE batch IN (SELECT id FROM batches WHERE subject = ?)", arguments: [key])
            readings += db.changesCount
            try db.execute(sql: "DELETE FROM readings WHERE subject = ?", arguments: [key])
            readings += db.changesCount
            // Alerts keep their rule, time and transaction (an on-chain record may still be on its
            // way); the value that raised them goes.
            try db.execute(sql: "UPDATE alerts SET value = '', unit = '' WHERE subject = ?", arguments: [key])
            for d in allDevices {
                try db.execute(sql: "DELETE FROM readings WHERE batch IS NULL AND device = ?", arguments: [Data(d.bytes)])
                readings += db.changesCount
            }
            try db.execute(sql: "DELETE FROM subject_keys WHERE subject = ?", arguments: [key])
            let destroyed = db.changesCount
            let roots = rows.map { Hash(bytes: Array($0["root"] as Data))! }
            var chunks = stride(from: 0, to: roots.count, by: ConfirmErasure.maxRoots).map { Array(roots[$0..<min(roots.count, $0 + ConfirmErasure.maxRoots)]) }
            if chunks.isEmpty { chunks = [[]] }
            for (i, c) in chunks.enumerated() {
                try db.execute(sql: "INSERT INTO erasure_confirmations(subject, roots, final) VALUES (?, ?, ?)", arguments: [key, Data(c.flatMap(\.bytes)), i == chunks.count - 1 ? 1 : 0])
            }
            try db.execute(sql: "UPDATE erasures SET state = 'erased', batches = ?, readings = ?, blobs = ?, key_destroyed = ?, erased_ms = ? WHERE subject = ?",
                           arguments: [roots.count, readings, rows.count, destroyed, nowMs, key])
            return LocalErasure(cids: rows.map { $0["cid"] }, roots: roots, readings: readings)
        }
    }

    /// Copies the WAL into the database file and truncates it, so that erased rows' old page
    /// images do not linger in the log (`secure_delete` already zeroes them in the file).
    public func checkpoint() throws {
        try db.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
    }

    public struct ErasureConfirmation: Sendable { public var id: Int64; public var subject: Hash; public var roots: [Hash]; public var final: Bool }

    public func unsignedErasureConfirmations() throws -> [ErasureConfirmation] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT id, subject, roots, final FROM erasure_confirmations WHERE tx_bytes IS NULL ORDER BY id").map { r in
                let raw = Array(r["roots"] as Data)
                return ErasureConfirmation(id: r["id"], subject: Hash(bytes: Array(r["subject"] as Data))!,
                                           roots: stride(from: 0, to: raw.count, by: 32).map { Hash(bytes: Array(raw[$0..<$0 + 32]))! }, final: (r["final"] as Int64) != 0)
            }
        }
    }

    public struct ErasureReport: Sendable, Codable {
        public var subject: Hash
        /// `none` (no erasure requested), `requested`, `erased` (here; confirmations on their way), `confirmed`.
        public var state: String
        /// `held`, `destroyed`, or `none` (this gateway never held one).
        public var custodyKey: String
        public var batches: Int
        public var readingsHeld: Int
        public var readingsErased: Int?
        public var confirmationsPending: Int
    }

    public func erasureReport(_ subject: Hash) throws -> ErasureReport {
        try db.read { db in
            let key = Data(subject.bytes)
            let row = try Row.fetchOne(db, sql: "SELECT * FROM erasures WHERE subject = ?", arguments: [key])
            let hasKey = try Int.fetchOne(db, sql: "SELECT count(*) FROM subject_keys WHERE subject = ?", arguments: [key]) ?? 0 > 0
            let batches = try Int.fetchOne(db, sql: "SELECT count(*) FROM batches WHERE subject = ?", arguments: [key]) ?? 0
            let held = (try Int.fetchOne(db, sql: "SELECT count(*) FROM readings WHERE subject = ? OR batch IN (SELECT id FROM batches WHERE subject = ?)", arguments: [key, key]) ?? 0)
                + (try Int.fetchOne(db, sql: "SELECT count(*) FROM alerts WHERE subject = ? AND value != ''", arguments: [key]) ?? 0)
            let pending = try Int.fetchOne(db, sql: "SELECT count(*) FROM erasure_confirmations WHERE subject = ? AND committed_height IS NULL", arguments: [key]) ?? 0
            var state = (row?["state"] as String?) ?? "none"
            if state == "erased", pending == 0 { state = "confirmed" }
            let destroyed = (row?["key_destroyed"] as Int64?).map { $0 > 0 } ?? false
            return ErasureReport(subject: subject, state: state, custodyKey: hasKey ? "held" : (destroyed ? "destroyed" : "none"), batches: batches,
                                 readingsHeld: held, readingsErased: row?["readings"], confirmationsPending: pending)
        }
    }

    /// Every batch's content id of a subject (to show none of their blobs is held any more).
    public func cids(of subject: Hash) throws -> [String] {
        try db.read { db in try String.fetchAll(db, sql: "SELECT cid FROM batches WHERE subject = ?", arguments: [Data(subject.bytes)]) }
    }

    // MARK: proofs

    public struct StoredReading: Sendable {
        public var seq: Int64
        public var device: Address
        public var reading: Reading
        public var batch: Batch?
        public var leaf: Int?
    }

    public func reading(seq: Int64) throws -> StoredReading? {
        try db.read { db in
            guard let r = try Row.fetchOne(db, sql: "SELECT * FROM readings WHERE seq = ?", arguments: [seq]) else { return nil }
            let batch = try (r["batch"] as Int64?).flatMap { try Row.fetchOne(db, sql: "SELECT * FROM batches WHERE id = ?", arguments: [$0]) }.map(Self.batch)
            return StoredReading(seq: seq, device: Address(bytes: Array(r["device"] as Data))!, reading: try Reading(canonicalBytes: Array(r["body"] as Data), trusted: true),
                                 batch: batch, leaf: r["leaf"])
        }
    }

    /// A batch's readings in leaf order, with their sequence numbers.
    public func readings(batch: Int64) throws -> [(seq: Int64, reading: Reading)] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT seq, body FROM readings WHERE batch = ? ORDER BY leaf", arguments: [batch]).map { row -> (seq: Int64, reading: Reading) in
                let seq: Int64 = row["seq"]
                let body: Data = row["body"]
                return (seq: seq, reading: try Reading(canonicalBytes: Array(body), trusted: true))
            }
        }
    }

    public struct Counts: Sendable, Codable {
        public var readings: Int
        public var unbatched: Int
        public var batches: Int
        public var batchesCommitted: Int
    }

    public func counts() throws -> Counts {
        try db.read { db in
            Counts(readings: try Int.fetchOne(db, sql: "SELECT count(*) FROM readings") ?? 0,
                   unbatched: try Int.fetchOne(db, sql: "SELECT count(*) FROM readings WHERE batch IS NULL") ?? 0,
                   batches: try Int.fetchOne(db, sql: "SELECT count(*) FROM batches") ?? 0,
                   batchesCommitted: try Int.fetchOne(db, sql: "SELECT count(*) FROM batches WHERE committed_height IS NOT NULL") ?? 0)
        }
    }
}

public enum GatewayError: Error, CustomStringConvertible {
    case internalError(String)
    case node(String)
    public var description: String {
        switch self {
        case .internalError(let s): return "internal error: \(s)"
        case .node(let s): return "node: \(s)"
        }
    }
}
