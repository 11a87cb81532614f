import IoMTCore

/// One check-in as a venue's gateway keeps it: the hash of the person's token (never the token),
/// the venue and the stay. Its canonical bytes are the leaf anchored on-chain.
public struct CheckIn: Hashable, Sendable, Codable, CanonicalCodable {
    public var tokenHash: Hash
    public var venue: String
    public var inMs: Int64
    public var outMs: Int64

    /// The longest stay a check-in may claim.
    public static let maxStayMs: Int64 = 12 * 3_600_000

    public init(tokenHash: Hash, venue: String, inMs: Int64, outMs: Int64) { self.tokenHash = tokenHash; self.venue = venue; self.inMs = inMs; self.outMs = outMs }

    public func encode(to w: inout CanonicalWriter) { w.write(tokenHash); w.write(venue); w.write(inMs); w.write(outMs) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { tokenHash = try r.read(); venue = try r.read(); inMs = try r.read(); outMs = try r.read() }
}

/// Exposure matching: a case's check-ins (found by its released token hashes) against every other
/// check-in at the same venue; a check-in is exposed when its stay overlaps one of the case's by at
/// least `minOverlapMs`. Pure: the same answer from the same check-ins.
public struct ExposureMatcher: Sendable {
    /// Check-ins per venue, sorted by arrival.
    private var byVenue: [String: [CheckIn]] = [:]
    private var byToken: [Hash: CheckIn] = [:]

    public init(_ checkIns: [CheckIn]) {
        for c in checkIns {
            byVenue[c.venue, default: []].append(c)
            byToken[c.tokenHash] = c
        }
        for v in byVenue.keys { byVenue[v]!.sort { ($0.inMs, $0.tokenHash) < ($1.inMs, $1.tokenHash) } }
    }

    /// The case's visits (its check-ins) and, per venue, the token hashes exposed there (sorted).
    public func match(caseTokens: [Hash], minOverlapMs: Int64) -> (visits: [CheckIn], exposed: [String: [Hash]]) {
        let visits = caseTokens.compactMap { byToken[$0] }
        let own = Set(caseTokens)
        var exposed: [String: Set<Hash>] = [:]
        for visit in visits {
            guard let list = byVenue[visit.venue] else { continue }
            // The first check-in that could overlap: arrived no earlier than the longest stay before the visit ended.
            var lo = 0, hi = list.count
            let earliest = visit.inMs - CheckIn.maxStayMs
            while lo < hi { let mid = (lo + hi) / 2; if list[mid].inMs < earliest { lo = mid + 1 } else { hi = mid } }
            var i = lo
            while i < list.count, list[i].inMs < visit.outMs {
                let c = list[i]
                i += 1
                guard !own.contains(c.tokenHash) else { continue }
                if min(c.outMs, visit.outMs) - max(c.inMs, visit.inMs) >= minOverlapMs { exposed[visit.venue, default: []].insert(c.tokenHash) }
            }
        }
        return (visits, exposed.mapValues { $0.sorted() })
    }
}
