import Crypto

/// Location sharing and contact tracing (issue 6 §2; seed 001 §5.1). People check in at venues with
/// rotating tokens their phone derives from a secret that never leaves it; the venue's gateway keeps
/// the check-ins off-chain and anchors them by Merkle root; a medical centre records a positive case
/// with the token hashes the person released; the venue's gateway matches them against its check-ins
/// and records, on-chain and signed, the token hashes it found exposed; phones read that feed and
/// recognise their own. The chain holds venue ids, times, token hashes and case ids: no name, no
/// account, no position.
public enum CheckInToken {
    /// Tokens rotate every 15 minutes.
    public static let intervalMs: Int64 = 15 * 60_000

    public static func interval(atMs: Int64) -> Int64 { atMs >= 0 ? atMs / intervalMs : (atMs - intervalMs + 1) / intervalMs }

    /// The token for one interval: HMAC-SHA256(secret, "iomtchain/checkin-token/v1" ‖ interval),
    /// its first 16 bytes. Unlinkable without the secret.
    public static func token(secret: [UInt8], interval: Int64) -> [UInt8] {
        var w = CanonicalWriter()
        w.write(UInt64(bitPattern: interval))
        let mac = HMAC<SHA256>.authenticationCode(for: Array("iomtchain/checkin-token/v1".utf8) + w.bytes, using: SymmetricKey(data: secret))
        return Array(Array(mac).prefix(16))
    }

    /// What venues store and the chain lists: never the token itself.
    public static func hash(_ token: [UInt8]) -> Hash { Hash.domain("iomtchain/checkin-token-hash/v1", token) }

    /// The hashes of a secret's tokens for every interval overlapping [fromMs, toMs] (what a person
    /// releases to the medical centre, and what the phone checks the exposure feed for).
    public static func hashes(secret: [UInt8], fromMs: Int64, toMs: Int64) -> [Hash] {
        guard fromMs <= toMs else { return [] }
        return (interval(atMs: fromMs)...interval(atMs: toMs)).map { hash(token(secret: secret, interval: $0)) }
    }
}

/// A member-admin registers a venue of its organisation (a shop, a school, a ward's waiting room).
public struct RegisterVenue: Hashable, Sendable, Codable, CanonicalCodable {
    /// 1–64 lower-case letters, digits and dashes.
    public var venue: String
    /// Persons allowed at once (the crowding warnings of §4 use it).
    public var capacity: UInt32

    public init(venue: String, capacity: UInt32) { self.venue = venue; self.capacity = capacity }

    public func encode(to w: inout CanonicalWriter) { w.write(venue); w.write(capacity) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { venue = try r.read(); capacity = try r.read() }
}

/// A venue's gateway anchors a batch of check-ins (the Merkle root over their canonical records), so
/// the check-ins a later match uses cannot be changed without it showing.
public struct AnchorCheckIns: Hashable, Sendable, Codable, CanonicalCodable {
    public var venue: String
    public var root: Hash
    public var count: UInt32
    public var firstMs: Int64
    public var lastMs: Int64

    public init(venue: String, root: Hash, count: UInt32, firstMs: Int64, lastMs: Int64) {
        self.venue = venue; self.root = root; self.count = count; self.firstMs = firstMs; self.lastMs = lastMs
    }

    public func encode(to w: inout CanonicalWriter) { w.write(venue); w.write(root); w.write(count); w.write(firstMs); w.write(lastMs) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        venue = try r.read(); root = try r.read(); count = try r.read(); firstMs = try r.read(); lastMs = try r.read()
    }
}

/// An attested practitioner of a medical centre records a positive assessment: a case id (random,
/// chosen by the centre) and the token hashes the person released for the infectious window.
public struct ReportPositive: Hashable, Sendable, Codable, CanonicalCodable {
    public var caseID: Hash
    public var tokenHashes: [Hash]
    public var fromMs: Int64
    public var toMs: Int64

    /// 21 days of 15-minute tokens (both ends of the window included).
    public static let maxTokens = 2_017
    public static let medicalKinds: Set<String> = ["hospital", "clinic", "laboratory", "medical-centre"]

    public init(caseID: Hash, tokenHashes: [Hash], fromMs: Int64, toMs: Int64) { self.caseID = caseID; self.tokenHashes = tokenHashes; self.fromMs = fromMs; self.toMs = toMs }

    public func encode(to w: inout CanonicalWriter) { w.write(caseID); w.write(tokenHashes); w.write(fromMs); w.write(toMs) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { caseID = try r.read(); tokenHashes = try r.readArray(); fromMs = try r.read(); toMs = try r.read() }
}

/// A venue's gateway records whom a case exposed there: the token hashes of the check-ins that
/// overlapped the case's, and the anchored check-in batches they (and the case's) are in. Once per
/// case and venue; the record is the notification (phones read the feed).
public struct RecordExposures: Hashable, Sendable, Codable, CanonicalCodable {
    public var caseID: Hash
    public var venue: String
    /// A venue where more were exposed than one transaction can name records them in parts
    /// (0, 1, …), each once.
    public var part: UInt32
    public var exposed: [Hash]
    public var checkInRoots: [Hash]

    /// Per part: 1,500 token hashes and 256 roots stay under the default 64 KiB transaction
    /// limit; 64 parts name up to 96,000 exposed check-ins of one case at one venue.
    public static let maxExposed = 1_500
    public static let maxRoots = 256
    public static let maxParts: UInt32 = 64

    public init(caseID: Hash, venue: String, part: UInt32 = 0, exposed: [Hash], checkInRoots: [Hash]) {
        self.caseID = caseID; self.venue = venue; self.part = part; self.exposed = exposed; self.checkInRoots = checkInRoots
    }

    public func encode(to w: inout CanonicalWriter) { w.write(caseID); w.write(venue); w.write(part); w.write(exposed); w.write(checkInRoots) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        caseID = try r.read(); venue = try r.read(); part = try r.read(); exposed = try r.readArray(); checkInRoots = try r.readArray()
    }

    enum CodingKeys: String, CodingKey { case caseID, venue, part, exposed, checkInRoots }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        caseID = try c.decode(Hash.self, forKey: .caseID); venue = try c.decode(String.self, forKey: .venue)
        part = try c.decodeIfPresent(UInt32.self, forKey: .part) ?? 0
        exposed = try c.decode([Hash].self, forKey: .exposed); checkInRoots = try c.decode([Hash].self, forKey: .checkInRoots)
    }
}

/// A venue as held in state (`StateKeys.venue(id)`).
public struct VenueRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var venue: String
    public var organisation: String
    public var capacity: UInt32
    public var height: UInt64

    public init(venue: String, organisation: String, capacity: UInt32, height: UInt64) { self.venue = venue; self.organisation = organisation; self.capacity = capacity; self.height = height }

    public func encode(to w: inout CanonicalWriter) { w.write(venue); w.write(organisation); w.write(capacity); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { venue = try r.read(); organisation = try r.read(); capacity = try r.read(); height = try r.read() }
}

/// A check-in anchor as held in state (`StateKeys.checkInAnchor(root)`).
public struct CheckInAnchorRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var anchor: AnchorCheckIns
    public var gateway: Address
    public var height: UInt64

    public init(anchor: AnchorCheckIns, gateway: Address, height: UInt64) { self.anchor = anchor; self.gateway = gateway; self.height = height }

    public func encode(to w: inout CanonicalWriter) { w.write(anchor); w.write(gateway); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { anchor = try r.read(); gateway = try r.read(); height = try r.read() }
}

/// A positive case as held in state (`StateKeys.positiveCase(id)`; the n-th is `caseEntry(n)`).
public struct CaseRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var n: UInt64
    public var report: ReportPositive
    public var organisation: String
    public var practitioner: Address
    public var height: UInt64

    public init(n: UInt64, report: ReportPositive, organisation: String, practitioner: Address, height: UInt64) {
        self.n = n; self.report = report; self.organisation = organisation; self.practitioner = practitioner; self.height = height
    }

    public func encode(to w: inout CanonicalWriter) { w.write(n); w.write(report); w.write(organisation); w.write(practitioner); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { n = try r.read(); report = try r.read(); organisation = try r.read(); practitioner = try r.read(); height = try r.read() }
}

/// Exposures as recorded (`StateKeys.exposureEntry(n)`): the notification feed.
public struct ExposureRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var n: UInt64
    public var record: RecordExposures
    public var gateway: Address
    public var atMs: Int64
    public var height: UInt64

    public init(n: UInt64, record: RecordExposures, gateway: Address, atMs: Int64, height: UInt64) { self.n = n; self.record = record; self.gateway = gateway; self.atMs = atMs; self.height = height }

    public func encode(to w: inout CanonicalWriter) { w.write(n); w.write(record); w.write(gateway); w.write(atMs); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { n = try r.read(); record = try r.read(); gateway = try r.read(); atMs = try r.read(); height = try r.read() }
}

extension StateKeys {
    public static func venue(_ id: String) -> [UInt8] { Array("venue/".utf8) + Array(id.utf8) }
    public static func checkInAnchor(_ root: Hash) -> [UInt8] { Array("checkin-anchor/".utf8) + root.bytes }
    public static func positiveCase(_ id: Hash) -> [UInt8] { Array("case/".utf8) + id.bytes }
    /// How many cases were recorded (`UInt64`); the n-th case id is `caseEntry(n)` (`Hash`).
    public static let caseCount: [UInt8] = Array("cases/count".utf8)
    public static func caseEntry(_ n: UInt64) -> [UInt8] { Array("cases/".utf8) + n.canonicalBytes }
    /// Set (to n) once a venue's exposures for a case are recorded.
    public static func exposuresRecorded(_ caseID: Hash, _ venue: String, part: UInt32) -> [UInt8] {
        Array("exposed/".utf8) + caseID.bytes + UInt64(part).canonicalBytes + Array(venue.utf8)
    }
    /// How many exposure records there are (`UInt64`); the n-th is `exposureEntry(n)`.
    public static let exposureCount: [UInt8] = Array("exposures/count".utf8)
    public static func exposureEntry(_ n: UInt64) -> [UInt8] { Array("exposures/".utf8) + n.canonicalBytes }
}
