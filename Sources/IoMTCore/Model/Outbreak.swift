/// Outbreak-origin tracing (issue 6 §6; seed 002 §IV-A): fever detections from thermal cameras and
/// heat sensors, and nucleic-acid test results from several institutions, on one grid of place and
/// hour so public health can query them together. No person is named: a detection is a place, a
/// time and a temperature; a test result is a place code (a district, a ward), a sampling time, an
/// assay code and an outcome.

/// A gateway records one fever its thermal camera or heat sensor detected (at or above 37.3 °C), at
/// the start of the hour it was seen (the grid's resolution: no exact time of a person at a place).
public struct RecordFeverDetection: Hashable, Sendable, Codable, CanonicalCodable {
    public var device: Address
    public var atMs: Int64
    public var centiC: Int32

    public static let thresholdCentiC: Int32 = 3_730

    public init(device: Address, atMs: Int64, centiC: Int32) { self.device = device; self.atMs = atMs; self.centiC = centiC }

    public func encode(to w: inout CanonicalWriter) { w.write(device); w.write(atMs); w.write(UInt32(bitPattern: centiC)) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { device = try r.read(); atMs = try r.read(); centiC = Int32(bitPattern: try r.read()) }
}

/// An attested practitioner of a laboratory, hospital or clinic records a nucleic-acid test result.
public struct RecordTestResult: Hashable, Sendable, Codable, CanonicalCodable {
    /// The institution's own id for the result, once: random, or a keyed hash (HMAC with the
    /// institution's secret) of its accession number — never a plain hash, which could be reversed.
    public var resultID: Hash
    /// Where the sample was taken, as a code (a district, a ward): 1–64 lower-case letters, digits, dashes.
    public var place: String
    /// The start of the hour the sample was taken.
    public var sampledAtMs: Int64
    /// LOINC code of the assay, e.g. `loinc:94500-6` (SARS-CoV-2 RNA, NAA with probe detection).
    public var assay: String
    /// `positive`, `negative` or `inconclusive`.
    public var outcome: String

    public static let outcomes = ["positive", "negative", "inconclusive"]

    public init(resultID: Hash, place: String, sampledAtMs: Int64, assay: String, outcome: String) {
        self.resultID = resultID; self.place = place; self.sampledAtMs = sampledAtMs; self.assay = assay; self.outcome = outcome
    }

    public func encode(to w: inout CanonicalWriter) { w.write(resultID); w.write(place); w.write(sampledAtMs); w.write(assay); w.write(outcome) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        resultID = try r.read(); place = try r.read(); sampledAtMs = try r.read(); assay = try r.read(); outcome = try r.read()
    }
}

/// One place and hour of the grid (`StateKeys.outbreakCell(place, hour)`).
public struct OutbreakCell: Hashable, Sendable, Codable, CanonicalCodable {
    public var place: String
    /// Hours since 1970 (UTC).
    public var hour: Int64
    public var fevers: UInt64 = 0
    public var maxCentiC: Int32 = 0
    public var positives: UInt64 = 0
    public var negatives: UInt64 = 0
    public var inconclusive: UInt64 = 0
    /// Organisations that contributed (sorted).
    public var institutions: [String] = []

    public init(place: String, hour: Int64) { self.place = place; self.hour = hour }

    public func encode(to w: inout CanonicalWriter) {
        w.write(place); w.write(hour); w.write(fevers); w.write(UInt32(bitPattern: maxCentiC)); w.write(positives); w.write(negatives); w.write(inconclusive)
        w.write(institutions)
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        place = try r.read(); hour = try r.read(); fevers = try r.read(); maxCentiC = Int32(bitPattern: try r.read())
        positives = try r.read(); negatives = try r.read(); inconclusive = try r.read(); institutions = try r.readArray()
    }
}

extension StateKeys {
    public static func outbreakCell(_ place: String, _ hour: Int64) -> [UInt8] { Array("outbreak/".utf8) + UInt64(bitPattern: hour).canonicalBytes + Array(place.utf8) }
    /// The places with any record (`StringList`), for a query over all of them.
    public static let outbreakPlaces: [UInt8] = Array("outbreak-places".utf8)
    public static func outbreakPlace(_ place: String) -> [UInt8] { Array("outbreak-place/".utf8) + Array(place.utf8) }
    public static func testResult(_ id: Hash) -> [UInt8] { Array("test-result/".utf8) + id.bytes }
}

/// A list of names: place codes (`StateKeys.outbreakPlaces`), asset tags (`StateKeys.assets(of:)`).
public struct StringList: Hashable, Sendable, Codable, CanonicalCodable {
    public var places: [String]
    public init(_ places: [String] = []) { self.places = places }
    public func encode(to w: inout CanonicalWriter) { w.write(places) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { places = try r.readArray() }
}
