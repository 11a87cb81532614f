import Foundation
import GRDB
import IoMTCore
import IoMTEdge

/// Research datasets and privacy-budget charges (issue 5 §7) in the gateway's store.
extension GatewayStore {
    /// How many of the chain's dataset requests for this gateway were handled.
    public func datasetCursor() throws -> UInt64 {
        try db.read { db in try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'dataset_cursor'").flatMap { UInt64(String(decoding: $0, as: UTF8.self)) } ?? 0 }
    }

    private static func setCursor(_ db: Database, _ n: UInt64) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('dataset_cursor', ?)", arguments: [Data(String(n).utf8)])
    }

    /// Records a built dataset (its seal is signed on the next pass) and moves the cursor past its request, in one write.
    public func addDataset(_ dataset: Hash, subjects: [Hash], rows: UInt64, root: Hash, cursor: UInt64) throws {
        try db.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO datasets(dataset, subjects, rows, root) VALUES (?, ?, ?, ?)",
                           arguments: [Data(dataset.bytes), Data(subjects.canonicalBytes), Int64(rows), Data(root.bytes)])
            try Self.setCursor(db, cursor)
        }
    }

    /// Moves the cursor past a request there is nothing to do for (cancelled before it was built).
    public func skipDataset(cursor: UInt64) throws { try db.write { db in try Self.setCursor(db, cursor) } }

    public struct Seal: Sendable {
        public var id: Int64
        public var dataset: Hash
        public var subjects: [Hash]
        public var rows: UInt64
        public var root: Hash
        public var attempts: Int
        public var refusal: String?
        public var committedHeight: UInt64?
    }

    static func seal(_ r: Row) throws -> Seal {
        Seal(id: r["id"], dataset: Hash(bytes: Array(r["dataset"] as Data))!, subjects: try [Hash](canonicalBytes: Array(r["subjects"] as Data), trusted: true),
             rows: UInt64(r["rows"] as Int64), root: Hash(bytes: Array(r["root"] as Data))!, attempts: r["attempts"], refusal: r["refusal"],
             committedHeight: (r["committed_height"] as Int64?).map { UInt64($0) })
    }

    public func unsignedSeals() throws -> [Seal] {
        try db.read { db in try Row.fetchAll(db, sql: "SELECT * FROM datasets WHERE tx_bytes IS NULL AND committed_height IS NULL ORDER BY id").map(Self.seal) }
    }

    /// Seals the chain refused (a patient revoked between the build and the seal): built again.
    public func refusedSeals() throws -> [Seal] {
        try db.read { db in try Row.fetchAll(db, sql: "SELECT * FROM datasets WHERE committed_height = 0 ORDER BY id").map(Self.seal) }
    }

    public func rebuildSeal(id: Int64, subjects: [Hash], rows: UInt64, root: Hash) throws {
        try db.write { db in
            try db.execute(sql: """
                UPDATE datasets SET subjects = ?, rows = ?, root = ?, attempts = attempts + 1, refusal = NULL,
                    tx_hash = NULL, tx_bytes = NULL, nonce = NULL, committed_height = NULL WHERE id = ?
                """, arguments: [Data(subjects.canonicalBytes), Int64(rows), Data(root.bytes), id])
        }
    }

    /// A refused seal whose dataset the chain no longer waits for (sealed or cancelled): left alone.
    public func abandonSeal(id: Int64) throws {
        try db.write { db in try db.execute(sql: "UPDATE datasets SET refusal = 'abandoned' WHERE id = ?", arguments: [id]) }
    }

    /// The chain pseudonyms with committed batches overlapping the window (categories are checked per reading).
    public func datasetCandidates(fromMs: Int64, untilMs: Int64) throws -> [Hash] {
        try db.read { db in
            try Data.fetchAll(db, sql: """
                SELECT DISTINCT subject FROM batches WHERE subject IS NOT NULL AND committed_height > 0 AND last_ms >= ? AND first_ms <= ? ORDER BY subject
                """, arguments: [fromMs, untilMs]).compactMap { Hash(bytes: Array($0)) }
        }
    }

    /// The readings of `subject` in committed batches whose category is one of `categories` and
    /// whose time is in the window, in the order they were received.
    public func datasetReadings(subject: Hash, categories: [String], fromMs: Int64, untilMs: Int64) throws -> [(seq: Int64, reading: Reading)] {
        try db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT r.seq, r.body FROM readings r JOIN batches b ON r.batch = b.id
                WHERE b.subject = ? AND b.committed_height > 0 AND b.last_ms >= ? AND b.first_ms <= ?
                ORDER BY r.seq
                """, arguments: [Data(subject.bytes), fromMs, untilMs]).map { row -> (seq: Int64, reading: Reading) in
                (row["seq"], try Reading(canonicalBytes: Array(row["body"] as Data), trusted: true))
            }.filter { $0.reading.effectiveMs >= fromMs && $0.reading.effectiveMs <= untilMs && categories.contains($0.reading.kind.dataCategory) }
        }
    }

    // MARK: charges

    public struct Charge: Sendable {
        public var id: Int64
        public var dataset: Hash
        public var researcher: Address
        public var epsilonMilli: UInt64
        public var queryDigest: Hash
        public var answer: [UInt8]
        public var refusal: String?
        public var transaction: Hash?
        public var committedHeight: UInt64?
    }

    static func charge(_ r: Row) -> Charge {
        Charge(id: r["id"], dataset: Hash(bytes: Array(r["dataset"] as Data))!, researcher: Address(bytes: Array(r["researcher"] as Data))!,
               epsilonMilli: UInt64(r["epsilon_milli"] as Int64), queryDigest: Hash(bytes: Array(r["query_digest"] as Data))!, answer: Array(r["answer"] as Data),
               refusal: r["refusal"], transaction: (r["tx_hash"] as Data?).flatMap { Hash(bytes: Array($0)) }, committedHeight: (r["committed_height"] as Int64?).map { UInt64($0) })
    }

    /// Keeps an answer with the charge that must commit before it is released; returns the charge's
    /// id, or nil if the budget cannot cover it. Only this gateway charges its datasets, so the
    /// charges it holds (committed or on their way, not refused) are what is spent: a query is
    /// refused here, in the same write, rather than by the chain after its answer was computed.
    public func addCharge(dataset: Hash, researcher: Address, epsilonMilli: UInt64, budgetMilli: UInt64, spentOnChainMilli: UInt64,
                          queryDigest: Hash, answer: [UInt8], nowMs: Int64) throws -> Int64? {
        try db.write { db in
            let held = UInt64(try Int64.fetchOne(db, sql: """
                SELECT coalesce(sum(epsilon_milli), 0) FROM privacy_charges WHERE dataset = ? AND (committed_height IS NULL OR committed_height > 0)
                """, arguments: [Data(dataset.bytes)]) ?? 0)
            let spent = max(held, spentOnChainMilli)
            guard spent <= budgetMilli, epsilonMilli <= budgetMilli - spent else { return nil }
            try db.execute(sql: "INSERT INTO privacy_charges(dataset, researcher, epsilon_milli, query_digest, answer, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [Data(dataset.bytes), Data(researcher.bytes), Int64(epsilonMilli), Data(queryDigest.bytes), Data(answer), nowMs])
            return db.lastInsertedRowID
        }
    }

    public func charge(id: Int64) throws -> Charge? {
        try db.read { db in try Row.fetchOne(db, sql: "SELECT * FROM privacy_charges WHERE id = ?", arguments: [id]).map(Self.charge) }
    }

    public func unsignedCharges() throws -> [Charge] {
        try db.read { db in try Row.fetchAll(db, sql: "SELECT * FROM privacy_charges WHERE tx_bytes IS NULL AND committed_height IS NULL ORDER BY id").map(Self.charge) }
    }

    /// Appends one audit entry per subject in one write (a dataset export or query reads them all).
    public func appendAudits(subjects: [Hash], _ make: (_ seq: UInt64, _ subjectSeq: UInt64, _ subject: Hash) -> AuditEntry) throws {
        try db.write { db in
            for subject in subjects { _ = try Self.insertAudit(db, subject: subject) { seq, subjectSeq in make(seq, subjectSeq, subject) } }
        }
    }
}
