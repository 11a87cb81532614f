/// The smart hospital (issue 6 §5; seed 002 §IV-C): RFID-tagged assets with their location,
/// availability and malfunctions; sterilisation cycles recorded by the steriliser (its key signs
/// each cycle, numbered by its own counter) and the operator (who submits it), so an altered record
/// fails the signature and a missing one shows as a gap in the numbering. Ward environment alarms
/// are gateway alarm rules (`AlarmRule.defaults`).

public enum AssetKinds {
    public static let kinds = ["bed", "ambulance", "respirator", "infusion-pump", "wheelchair", "patient-monitor", "defibrillator"]
    public static let statuses = ["available", "in-use", "maintenance", "out-of-service"]
    public static let malfunctions = ["power-failure", "alarm-fault", "mechanical-damage", "calibration-due", "battery-failure", "other-fault"]

    /// An RFID tag id (an EPC in hex, a barcode): 1–64 letters, digits or dashes.
    public static func isValidTag(_ s: String) -> Bool {
        (1...64).contains(s.utf8.count) && s.utf8.allSatisfy { (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || $0 == 45 }
    }
}

/// A member-admin registers an asset of its organisation under its RFID tag.
public struct RegisterAsset: Hashable, Sendable, Codable, CanonicalCodable {
    public var tag: String
    public var kind: String
    /// Where it belongs (a ward, a bay): a place code.
    public var home: String

    public init(tag: String, kind: String, home: String) { self.tag = tag; self.kind = kind; self.home = home }
    public func encode(to w: inout CanonicalWriter) { w.write(tag); w.write(kind); w.write(home) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { tag = try r.read(); kind = try r.read(); home = try r.read() }
}

/// Staff set an asset's availability; a malfunction puts it out of service.
public struct SetAssetStatus: Hashable, Sendable, Codable, CanonicalCodable {
    public var tag: String
    public var status: String
    public var malfunction: String?

    public init(tag: String, status: String, malfunction: String? = nil) { self.tag = tag; self.status = status; self.malfunction = malfunction }
    public func encode(to w: inout CanonicalWriter) { w.write(tag); w.write(status); w.write(malfunction) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { tag = try r.read(); status = try r.read(); malfunction = try r.readOptional() }
}

/// A gateway records where an RFID reader (at its place) saw an asset.
public struct RecordAssetLocation: Hashable, Sendable, Codable, CanonicalCodable {
    public var tag: String
    public var reader: Address
    public var atMs: Int64

    public init(tag: String, reader: Address, atMs: Int64) { self.tag = tag; self.reader = reader; self.atMs = atMs }
    public func encode(to w: inout CanonicalWriter) { w.write(tag); w.write(reader); w.write(atMs) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { tag = try r.read(); reader = try r.read(); atMs = try r.read() }
}

/// One sterilisation cycle as the steriliser reports it (what its key signs).
public struct SterilisationCycle: Hashable, Sendable, Codable, CanonicalCodable {
    public var steriliser: Address
    /// The steriliser's own cycle counter.
    public var cycle: UInt64
    /// Hash of the load (the instrument sets' ids), so a set traces to its cycle without listing it.
    public var loadHash: Hash
    public var startMs: Int64
    public var endMs: Int64
    /// Highest chamber temperature (hundredths of °C) and the time held at sterilising temperature.
    public var maxCentiC: Int32
    public var holdSeconds: UInt32
    public var passed: Bool

    public init(steriliser: Address, cycle: UInt64, loadHash: Hash, startMs: Int64, endMs: Int64, maxCentiC: Int32, holdSeconds: UInt32, passed: Bool) {
        self.steriliser = steriliser; self.cycle = cycle; self.loadHash = loadHash; self.startMs = startMs; self.endMs = endMs
        self.maxCentiC = maxCentiC; self.holdSeconds = holdSeconds; self.passed = passed
    }

    /// What the steriliser signs: the cycle, bound to the chain.
    public func message(chainID: String) -> [UInt8] {
        var w = CanonicalWriter()
        w.write("iomtchain/sterilisation/v1"); w.write(chainID); w.write(self)
        return w.bytes
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(steriliser); w.write(cycle); w.write(loadHash); w.write(startMs); w.write(endMs); w.write(UInt32(bitPattern: maxCentiC)); w.write(holdSeconds); w.write(passed)
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        steriliser = try r.read(); cycle = try r.read(); loadHash = try r.read(); startMs = try r.read(); endMs = try r.read()
        maxCentiC = Int32(bitPattern: try r.read()); holdSeconds = try r.read(); passed = try r.read()
    }
}

/// The operator submits a cycle with the steriliser's signature over it.
public struct RecordSterilisation: Hashable, Sendable, Codable, CanonicalCodable {
    public var cycle: SterilisationCycle
    public var steriliserSignature: Signature

    public init(cycle: SterilisationCycle, steriliserSignature: Signature) { self.cycle = cycle; self.steriliserSignature = steriliserSignature }
    public func encode(to w: inout CanonicalWriter) { w.write(cycle); w.write(steriliserSignature) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { cycle = try r.read(); steriliserSignature = try r.read() }
}

/// An asset as held in state (`StateKeys.asset(tag)`).
public struct AssetRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var tag: String
    public var kind: String
    public var organisation: String
    public var home: String
    public var location: String?
    public var locationMs: Int64?
    public var status: String
    public var malfunction: String?
    public var malfunctions: UInt64
    public var height: UInt64

    public init(tag: String, kind: String, organisation: String, home: String, status: String = "available", height: UInt64) {
        self.tag = tag; self.kind = kind; self.organisation = organisation; self.home = home; self.status = status; self.malfunctions = 0; self.height = height
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(tag); w.write(kind); w.write(organisation); w.write(home); w.write(location); w.write(locationMs.map { UInt64(bitPattern: $0) })
        w.write(status); w.write(malfunction); w.write(malfunctions); w.write(height)
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        tag = try r.read(); kind = try r.read(); organisation = try r.read(); home = try r.read(); location = try r.readOptional()
        locationMs = try r.readOptional(UInt64.self).map { Int64(bitPattern: $0) }
        status = try r.read(); malfunction = try r.readOptional(); malfunctions = try r.read(); height = try r.read()
    }
}

/// A cycle as held in state (`StateKeys.sterilisation(steriliser, cycle)`).
public struct SterilisationRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var cycle: SterilisationCycle
    public var operatorAccount: Address
    public var organisation: String
    /// Cycles of the steriliser's counter skipped before this one: records that are missing.
    public var missingBefore: UInt64
    public var height: UInt64

    public init(cycle: SterilisationCycle, operatorAccount: Address, organisation: String, missingBefore: UInt64, height: UInt64) {
        self.cycle = cycle; self.operatorAccount = operatorAccount; self.organisation = organisation; self.missingBefore = missingBefore; self.height = height
    }
    public func encode(to w: inout CanonicalWriter) { w.write(cycle); w.write(operatorAccount); w.write(organisation); w.write(missingBefore); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        cycle = try r.read(); operatorAccount = try r.read(); organisation = try r.read(); missingBefore = try r.read(); height = try r.read()
    }
}

extension StateKeys {
    public static func asset(_ tag: String) -> [UInt8] { Array("asset/".utf8) + Array(tag.utf8) }
    /// An organisation's asset tags (`StringList`).
    public static func assets(of organisation: String) -> [UInt8] { Array("assets-of/".utf8) + Array(organisation.utf8) }
    /// A steriliser's last recorded cycle (`UInt64`), its cycles, and the cycles missing in all (`UInt64`).
    public static func lastCycle(_ steriliser: Address) -> [UInt8] { Array("sterilised/".utf8) + steriliser.bytes }
    public static func sterilisation(_ steriliser: Address, _ cycle: UInt64) -> [UInt8] { Array("sterilised/".utf8) + steriliser.bytes + cycle.canonicalBytes }
    public static func missingCycles(_ steriliser: Address) -> [UInt8] { Array("sterilised-missing/".utf8) + steriliser.bytes }
}
