import Foundation
import GRDB
import IoMTCore
import IoMTEdge

/// Venue check-ins, their anchored batches and the exposure reports of positive cases (issue 6 §2)
/// in the gateway's store.
extension GatewayStore {
    public enum CheckInRefusal: Error, Equatable { case duplicateToken }

    /// Stores one check-in; a token is used once (`duplicateToken`).
    public func addCheckIn(_ c: CheckIn) throws -> Int64 {
        try db.write { db in
            guard try Int64.fetchOne(db, sql: "SELECT id FROM checkins WHERE token_hash = ?", arguments: [Data(c.tokenHash.bytes)]) == nil else { throw CheckInRefusal.duplicateToken }
            try db.execute(sql: "INSERT INTO checkins(token_hash, venue, in_ms, out_ms) VALUES (?, ?, ?, ?)", arguments: [Data(c.tokenHash.bytes), c.venue, c.inMs, c.outMs])
            return db.lastInsertedRowID
        }
    }

    /// Stores many check-ins in one write (an import, a benchmark); tokens already used are skipped.
    public func addCheckIns(_ list: [CheckIn]) throws {
        try db.write { db in
            for c in list {
                try db.execute(sql: "INSERT OR IGNORE INTO checkins(token_hash, venue, in_ms, out_ms) VALUES (?, ?, ?, ?)", arguments: [Data(c.tokenHash.bytes), c.venue, c.inMs, c.outMs])
            }
        }
    }

    static func checkIn(_ r: Row) -> CheckIn {
        CheckIn(tokenHash: Hash(bytes: Array(r["token_hash"] as Data))!, venue: r["venue"], inMs: r["in_ms"], outMs: r["out_ms"])
    }

    /// Puts the check-ins not in a batch yet into one batch per venue (leaves in id order), when the
    /// oldest waited `maxAgeMs` or `maxCount` wait; returns how many batches it made.
    @discardableResult
    public func sealCheckIns(nowMs: Int64, maxAgeMs: Int64 = 1_000, maxCount: Int = 10_000) throws -> Int {
        // Whether anything is due, without a write (this runs on every anchoring pass).
        let due = try db.read { db -> Bool in
            guard let r = try Row.fetchOne(db, sql: "SELECT min(in_ms) AS oldest, count(*) AS n FROM checkins WHERE batch IS NULL"), let oldest = r["oldest"] as Int64? else { return false }
            return (r["n"] as Int) >= maxCount || nowMs - oldest >= maxAgeMs
        }
        guard due else { return 0 }
        return try db.write { db in
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM checkins WHERE batch IS NULL ORDER BY id LIMIT ?", arguments: [maxCount * 10])
            guard !rows.isEmpty else { return 0 }
            var byVenue: [String: [(id: Int64, c: CheckIn)]] = [:]
            for r in rows { byVenue[r["venue"], default: []].append((r["id"], Self.checkIn(r))) }
            var made = 0
            for (venue, list) in byVenue.sorted(by: { $0.key < $1.key }) {
                for chunk in stride(from: 0, to: list.count, by: maxCount).map({ Array(list[$0..<min(list.count, $0 + maxCount)]) }) {
                    let root = MerkleTree.root(leaves: chunk.map { $0.c.canonicalBytes })
                    try db.execute(sql: "INSERT INTO checkin_batches(venue, root, count, first_ms, last_ms) VALUES (?, ?, ?, ?, ?)",
                                   arguments: [venue, Data(root.bytes), chunk.count, chunk.map(\.c.inMs).min()!, chunk.map(\.c.inMs).max()!])
                    let batch = db.lastInsertedRowID
                    for e in chunk { try db.execute(sql: "UPDATE checkins SET batch = ? WHERE id = ?", arguments: [batch, e.id]) }
                    made += 1
                }
            }
            return made
        }
    }

    public func unsignedCheckInBatches() throws -> [(id: Int64, anchor: AnchorCheckIns)] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM checkin_batches WHERE tx_bytes IS NULL ORDER BY id").map { r in
                (r["id"], AnchorCheckIns(venue: r["venue"], root: Hash(bytes: Array(r["root"] as Data))!, count: UInt32(r["count"] as Int64), firstMs: r["first_ms"], lastMs: r["last_ms"]))
            }
        }
    }

    /// A check-in with its batch's root and whether that batch's anchor committed: nil while it
    /// waits (not batched, or not committed yet), false if the chain refused it for good.
    public typealias StoredCheckIn = (checkIn: CheckIn, root: Hash?, anchored: Bool?)

    private static func stored(_ r: Row) -> StoredCheckIn {
        let committed: Int64? = r["committed"]
        return (Self.checkIn(r), (r["root"] as Data?).flatMap { Hash(bytes: Array($0)) }, committed.map { $0 > 0 })
    }

    public func checkInBatchRoot(id: Int64) throws -> Hash? {
        try db.read { db in try Data.fetchOne(db, sql: "SELECT root FROM checkin_batches WHERE id = ?", arguments: [id]).flatMap { Hash(bytes: Array($0)) } }
    }

    private static let storedColumns = "SELECT c.*, b.root AS root, b.committed_height AS committed FROM checkins c LEFT JOIN checkin_batches b ON b.id = c.batch"

    /// The check-ins made with these token hashes (a case's visits), each with its batch's root and
    /// whether that batch's anchor committed.
    public func checkIns(tokenHashes: [Hash]) throws -> [StoredCheckIn] {
        try db.read { db in
            var out: [StoredCheckIn] = []
            for chunk in stride(from: 0, to: tokenHashes.count, by: 500).map({ Array(tokenHashes[$0..<min(tokenHashes.count, $0 + 500)]) }) {
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
                out += try Row.fetchAll(db, sql: "\(Self.storedColumns) WHERE c.token_hash IN (\(marks)) ORDER BY c.id",
                                        arguments: StatementArguments(chunk.map { Data($0.bytes) })).map(Self.stored)
            }
            return out
        }
    }

    /// The check-ins at a venue that arrived in [fromMs, toMs).
    public func checkIns(venue: String, arrivedFrom fromMs: Int64, before toMs: Int64) throws -> [StoredCheckIn] {
        try db.read { db in
            try Row.fetchAll(db, sql: "\(Self.storedColumns) WHERE c.venue = ? AND c.in_ms >= ? AND c.in_ms < ? ORDER BY c.id", arguments: [venue, fromMs, toMs]).map(Self.stored)
        }
    }

    /// How many of the chain's positive cases were matched here.
    public func caseCursor() throws -> UInt64 {
        try db.read { db in try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'case_cursor'").flatMap { UInt64(String(decoding: $0, as: UTF8.self)) } ?? 0 }
    }

    public struct ExposureReport: Sendable, Codable {
        public var id: Int64
        public var caseID: Hash
        public var venue: String
        /// Which part of the case's exposures at the venue (RecordExposures.part).
        public var part: UInt32
        /// The case's check-ins at the venue.
        public var visits: Int
        public var exposed: [Hash]
        public var checkInRoots: [Hash]
        public var raisedMs: Int64
        /// Set once the chain committed the record (0: refused).
        public var committedHeight: UInt64?
        /// In the venue-alarm list (part 0 stands for the case's visit): how many parts record it.
        public var parts: UInt32?
    }

    /// Records a case's exposure reports and moves the cursor past it, in one write.
    public func addExposureReports(_ reports: [(venue: String, part: UInt32, visits: Int, exposed: [Hash], roots: [Hash])], caseID: Hash, cursor: UInt64, nowMs: Int64) throws {
        try db.write { db in
            for r in reports {
                try db.execute(sql: "INSERT OR IGNORE INTO exposure_reports(case_id, venue, part, visits, exposed, roots, raised_ms, on_chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               arguments: [Data(caseID.bytes), r.venue, r.part, r.visits, Data(r.exposed.canonicalBytes), Data(r.roots.canonicalBytes), nowMs, r.exposed.isEmpty ? 0 : 1])
            }
            try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('case_cursor', ?)", arguments: [Data(String(cursor).utf8)])
        }
    }

    static func exposureReport(_ r: Row) throws -> ExposureReport {
        ExposureReport(id: r["id"], caseID: Hash(bytes: Array(r["case_id"] as Data))!, venue: r["venue"], part: UInt32(r["part"] as Int64), visits: r["visits"],
                       exposed: try [Hash](canonicalBytes: Array(r["exposed"] as Data), trusted: true), checkInRoots: try [Hash](canonicalBytes: Array(r["roots"] as Data), trusted: true),
                       raisedMs: r["raised_ms"], committedHeight: (r["committed_height"] as Int64?).map { UInt64($0) }, parts: (r["parts"] as Int64?).map { UInt32($0) })
    }

    /// Exposure reports after `id`, oldest first: the venue alarms, one per case and venue (its
    /// part 0, with the number of parts).
    public func exposureReports(after id: Int64, limit: Int = 1_000) throws -> [ExposureReport] {
        try db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT e.*, (SELECT COUNT(*) FROM exposure_reports p WHERE p.case_id = e.case_id AND p.venue = e.venue) AS parts
                FROM exposure_reports e WHERE e.id > ? AND e.part = 0 ORDER BY e.id LIMIT ?
                """, arguments: [id, limit]).map(Self.exposureReport)
        }
    }

    /// Exposure reports to record on-chain: those that exposed someone (a case's visit that exposed
    /// nobody stays a local venue alarm, so the chain does not list where a case went for nothing).
    public func unsignedExposureReports() throws -> [ExposureReport] {
        try db.read { db in try Row.fetchAll(db, sql: "SELECT * FROM exposure_reports WHERE tx_bytes IS NULL AND committed_height IS NULL AND on_chain = 1 ORDER BY id").map(Self.exposureReport) }
    }
}
