import Foundation
import IoMTCore
import IoMTEdge

/// Contact tracing at a venue's gateway (issue 6 §2): people check in with their phone's current
/// token; the gateway keeps only the token's hash and the stay, anchors them in batches, follows the
/// chain's positive cases, matches each against its check-ins and records the exposures it found
/// (the venue's alarm, and the notification phones read from the chain).
extension Gateway {
    public enum CheckInError: Error, Sendable, CustomStringConvertible {
        case invalid(String)
        case staleToken(interval: Int64, current: Int64)
        case unknownVenue(String)
        case duplicateToken
        case unavailable(String)

        public var code: String {
            switch self {
            case .invalid: return "invalid-check-in"
            case .staleToken: return "stale-token"
            case .unknownVenue: return "unknown-venue"
            case .duplicateToken: return "duplicate-token"
            case .unavailable: return "node-unavailable"
            }
        }

        public var description: String {
            switch self {
            case .invalid(let s): return s
            case .staleToken(let i, let c):
                return "the token is for interval \(i); the current one is \(c) (tokens rotate every 15 minutes: the phone shows a fresh one)"
            case .unknownVenue(let v): return "venue \"\(v)\" is not a registered venue of this gateway's organisation"
            case .duplicateToken: return "this token was used for a check-in already: a token is used once"
            case .unavailable(let s): return "the chain is unreachable and the venue was not seen before: \(s)"
            }
        }
    }

    public struct CheckInRequest: Sendable, Codable {
        public var venue: String
        /// The phone's current token, 32 hex digits.
        public var token: String
        /// The 15-minute interval the token is for.
        public var interval: Int64
        /// The stay the person declares (1…720 minutes; 60 if absent).
        public var minutes: Int?
        public init(venue: String, token: String, interval: Int64, minutes: Int? = nil) { self.venue = venue; self.token = token; self.interval = interval; self.minutes = minutes }
    }

    public struct CheckInReceipt: Sendable, Codable {
        public var tokenHash: Hash
        public var venue: String
        public var inMs: Int64
        public var outMs: Int64
    }

    func organisation() async throws(CheckInError) -> String {
        if let o = ownOrganisation { return o }
        do {
            guard let a = try await node.state(StateKeys.account(account.publicKey.address)).map({ try Account(canonicalBytes: $0) }) else {
                throw GatewayError.node("this gateway's account is not on the chain")
            }
            ownOrganisation = a.organisation
            return a.organisation
        } catch {
            throw .unavailable("\(error)")
        }
    }

    func venueRecord(_ id: String) async throws(CheckInError) -> VenueRecord? {
        let now = Self.nowMs()
        if let c = venueCache[id], now - c.atMs < 60_000 { return c.record }
        do {
            let r = try await node.state(StateKeys.venue(id)).map { try VenueRecord(canonicalBytes: $0) }
            venueCache[id] = (r, now)
            if venueCache.count > 10_000 { venueCache.removeAll() }
            return r
        } catch {
            if let c = venueCache[id] { return c.record }
            throw .unavailable("\(error)")
        }
    }

    /// Takes a check-in: a fresh token (this interval or the one before), a venue of this gateway's
    /// organisation, a stay of at most 12 hours; the token is used once. Only its hash is kept.
    public func checkIn(_ r: CheckInRequest) async throws(CheckInError) -> CheckInReceipt {
        guard let token = Hex.decode(r.token), token.count == 16 else { throw .invalid("token is 32 hex digits") }
        let minutes = r.minutes ?? 60
        guard (1...720).contains(minutes) else { throw .invalid("minutes is 1…720") }
        let now = Self.nowMs(), current = CheckInToken.interval(atMs: now)
        // The interval is the phone's claim (the gateway cannot check the token's HMAC without the
        // secret): this catches an old token shown again by an honest phone, not a forger. A phone's
        // clock a little ahead at an interval's turn is allowed.
        guard (current - 1...current + 1).contains(r.interval) else { throw .staleToken(interval: r.interval, current: current) }
        let organisation = try await organisation()
        guard let venue = try await venueRecord(r.venue), venue.organisation == organisation else { throw .unknownVenue(r.venue) }
        let c = CheckIn(tokenHash: CheckInToken.hash(token), venue: venue.venue, inMs: now, outMs: now + Int64(minutes) * 60_000)
        do {
            _ = try store.addCheckIn(c)
        } catch GatewayStore.CheckInRefusal.duplicateToken {
            throw .duplicateToken
        } catch {
            throw .unavailable("\(error)")
        }
        return CheckInReceipt(tokenHash: c.tokenHash, venue: c.venue, inMs: c.inMs, outMs: c.outMs)
    }

    /// Follows the chain's positive cases in order: matches each against this gateway's check-ins
    /// and queues one exposure report per venue the case visited. A case whose check-ins (or the
    /// exposed ones) are not anchored yet waits for their anchors: the record names the anchored
    /// batches they are in.
    func processCases() async throws {
        let count = try await node.state(StateKeys.caseCount).map { try UInt64(canonicalBytes: $0) } ?? 0
        var cursor = try store.caseCursor()
        while cursor < count {
            let n = cursor + 1
            guard let idBytes = try await node.state(StateKeys.caseEntry(n)), let id = Hash(bytes: idBytes),
                  let record = try await node.state(StateKeys.positiveCase(id)).map({ try CaseRecord(canonicalBytes: $0) }) else {
                throw GatewayError.node("case \(n) is listed but not readable")
            }
            let r = record.report
            // The case's visits, then only the check-ins at those venues that could overlap them.
            let visitRows = try store.checkIns(tokenHashes: r.tokenHashes)
            var candidates: [Hash: GatewayStore.StoredCheckIn] = [:]
            for v in visitRows {
                candidates[v.checkIn.tokenHash] = v
                for c in try store.checkIns(venue: v.checkIn.venue, arrivedFrom: v.checkIn.inMs - CheckIn.maxStayMs, before: v.checkIn.outMs) { candidates[c.checkIn.tokenHash] = c }
            }
            // Check-ins whose batch the chain refused for good cannot be named: they are left out.
            let usable = candidates.values.filter { $0.anchored != false }
            let (visits, exposed) = ExposureMatcher(usable.map(\.checkIn)).match(caseTokens: r.tokenHashes, minOverlapMs: configuration.exposureMinOverlapMs)
            let involved = Set(visits.map(\.tokenHash) + exposed.values.joined())
            let rows = usable.filter { involved.contains($0.checkIn.tokenHash) }
            if rows.contains(where: { $0.anchored == nil }) {
                // Next pass, once anchored (a batch is sealed within --check-in-batch-ms).
                if caseWaitLogged != n { log("case \(n) waits for its check-ins' anchors"); caseWaitLogged = n }
                return
            }
            var reports: [(venue: String, part: UInt32, visits: Int, exposed: [Hash], roots: [Hash])] = []
            let rootOf = Dictionary(rows.map { ($0.checkIn.tokenHash, $0.root) }, uniquingKeysWith: { a, _ in a })
            for venue in Set(visits.map(\.venue)).sorted() {
                let here = visits.filter { $0.venue == venue }
                var all = exposed[venue] ?? []
                let per = max(1, min(configuration.exposuresPerRecord, RecordExposures.maxExposed))
                let most = Int(RecordExposures.maxParts) * per
                if all.count > most { log("case \(n) at \(venue): \(all.count) check-ins exposed; the records name the first \(most): the rest are not notified"); all = Array(all.prefix(most)) }
                // In parts of up to 1,500 (--exposures-per-record; one transaction each), each with the roots of its
                // check-ins and of the case's visits there.
                let chunks = all.isEmpty ? [[]] : stride(from: 0, to: all.count, by: per).map { Array(all[$0..<min(all.count, $0 + per)]) }
                for (part, chunk) in chunks.enumerated() {
                    let roots = Set((here.map(\.tokenHash) + chunk).compactMap { rootOf[$0] ?? nil }).sorted()
                    if roots.count > RecordExposures.maxRoots { log("case \(n) at \(venue), part \(part): \(roots.count) check-in batches; the record names \(RecordExposures.maxRoots)") }
                    reports.append((venue, UInt32(part), here.count, chunk, Array(roots.prefix(RecordExposures.maxRoots))))
                }
                log("case \(n) visited \(venue): \(all.count) check-in(s) exposed\(chunks.count > 1 ? " (\(chunks.count) records)" : ""); venue alarm raised")
            }
            try store.addExposureReports(reports, caseID: id, cursor: n, nowMs: Self.nowMs())
            cursor = n
        }
    }
}
