import IoMTCore

/// An exact decimal: `mantissa × 10^exponent`, normalised (no trailing zeros in the mantissa), so
/// one number has one encoding. Readings keep the digits the device sent; no binary rounding.
public struct DecimalValue: Hashable, Sendable, Comparable, CanonicalCodable, CustomStringConvertible {
    public let mantissa: Int64
    public let exponent: Int16

    public init(mantissa: Int64, exponent: Int16) {
        var m = mantissa, e = exponent
        while m != 0, m % 10 == 0, e < Int16.max { m /= 10; e += 1 }
        if m == 0 { e = 0 }
        self.mantissa = m
        self.exponent = e
    }

    public init(_ v: Int64) { self.init(mantissa: v, exponent: 0) }

    /// Parses JSON number syntax (`-12.5`, `6.3e-1`); nil if it is not one or needs more than 18 digits.
    public init?(parsing text: String) {
        var s = Substring(text)
        var negative = false
        if s.first == "-" { negative = true; s = s.dropFirst() }
        var exp = 0
        if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            guard let x = Int(s[s.index(after: e)...]), abs(x) < 10_000 else { return nil }
            exp = x
            s = s[..<e]
        }
        var digits = ""
        if let dot = s.firstIndex(of: ".") {
            let frac = s[s.index(after: dot)...]
            digits = String(s[..<dot]) + frac
            exp -= frac.count
            guard !s[..<dot].isEmpty, !frac.isEmpty else { return nil }
        } else {
            digits = String(s)
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        // Leading zeros carry no value; more than 18 significant digits do not fit exactly.
        let significant = digits.drop { $0 == "0" }
        var trimmed = Substring(significant)
        while trimmed.count > 18, trimmed.last == "0" { trimmed = trimmed.dropLast(); exp += 1 }
        guard trimmed.count <= 18, let m = Int64(trimmed.isEmpty ? "0" : String(trimmed)) else { return nil }
        guard exp >= Int(Int16.min) + 20, exp <= Int(Int16.max) - 20 else { return nil }
        self.init(mantissa: negative ? -m : m, exponent: Int16(exp))
    }

    /// The value as a double, for range checks and alarms (not for storage).
    public var double: Double { Double(mantissa == 0 ? "0" : "\(mantissa)e\(exponent)") ?? .nan }

    public var description: String {
        if exponent >= 0 { return String(mantissa) + String(repeating: "0", count: Int(exponent)) }
        let neg = mantissa < 0
        var digits = String(mantissa.magnitude)
        let places = Int(-exponent)
        if digits.count <= places { digits = String(repeating: "0", count: places - digits.count + 1) + digits }
        let cut = digits.index(digits.endIndex, offsetBy: -places)
        return (neg ? "-" : "") + digits[..<cut] + "." + digits[cut...]
    }

    public static func < (a: DecimalValue, b: DecimalValue) -> Bool { a.double < b.double }

    public func encode(to w: inout CanonicalWriter) { w.write(mantissa); w.write(UInt16(bitPattern: exponent)) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let m: Int64 = try r.read()
        let e = Int16(bitPattern: try r.read())
        let v = DecimalValue(mantissa: m, exponent: e)
        guard v.mantissa == m, v.exponent == e else { throw .invalidValue("decimal not normalised") }
        self = v
    }
}

/// A code from a code system (LOINC `http://loinc.org`, SNOMED CT, ISO/IEEE 11073 MDC, …).
public struct Coding: Hashable, Sendable, CanonicalCodable, CustomStringConvertible {
    public var system: String
    public var code: String

    public init(system: String, code: String) { self.system = system; self.code = code }

    public static let loincSystem = "http://loinc.org"
    public static func loinc(_ code: String) -> Coding { Coding(system: loincSystem, code: code) }

    public var description: String { system == Self.loincSystem ? "LOINC \(code)" : "\(system)|\(code)" }

    public func encode(to w: inout CanonicalWriter) { w.write(system); w.write(code) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { system = try r.read(); code = try r.read() }
}

/// One measured value with its UCUM unit (`/min`, `%`, `Cel`, `mm[Hg]`, `mmol/L`, …).
public struct Measurement: Hashable, Sendable, CanonicalCodable {
    public var code: Coding
    public var value: DecimalValue
    /// UCUM code (case-sensitive, as in `http://unitsofmeasure.org`).
    public var unit: String

    public init(code: Coding, value: DecimalValue, unit: String) { self.code = code; self.value = value; self.unit = unit }

    public func encode(to w: inout CanonicalWriter) { w.write(code); w.write(value); w.write(unit) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { code = try r.read(); value = try r.read(); unit = try r.read() }
}

/// A waveform (FHIR SampledData): value = origin + factor × sample, one sample every `periodMs`.
public struct SampledSeries: Hashable, Sendable, CanonicalCodable {
    public var code: Coding
    public var origin: DecimalValue
    /// UCUM unit of origin; empty where the source gave none (HL7's own ECG example gives none).
    public var unit: String
    public var periodMs: DecimalValue
    public var factor: DecimalValue
    public var dimensions: UInt32
    /// Samples in order: decimals, or nil for FHIR's E (error), L (below range), U (above range).
    public var samples: [SampleValue]

    public init(code: Coding, origin: DecimalValue, unit: String, periodMs: DecimalValue, factor: DecimalValue, dimensions: UInt32, samples: [SampleValue]) {
        self.code = code; self.origin = origin; self.unit = unit; self.periodMs = periodMs
        self.factor = factor; self.dimensions = dimensions; self.samples = samples
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(code); w.write(origin); w.write(unit); w.write(periodMs); w.write(factor); w.write(dimensions); w.write(samples)
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        code = try r.read(); origin = try r.read(); unit = try r.read(); periodMs = try r.read()
        factor = try r.read(); dimensions = try r.read(); samples = try r.readArray()
    }
}

public enum SampleValue: Hashable, Sendable, CanonicalCodable {
    case value(DecimalValue)
    case error, belowRange, aboveRange

    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case .value(let d): w.write(UInt8(0)); w.write(d)
        case .error: w.write(UInt8(1))
        case .belowRange: w.write(UInt8(2))
        case .aboveRange: w.write(UInt8(3))
        }
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let t: UInt8 = try r.read()
        switch t {
        case 0: self = .value(try r.read())
        case 1: self = .error
        case 2: self = .belowRange
        case 3: self = .aboveRange
        default: throw .unknownTag(type: "SampleValue", tag: t)
        }
    }
}

/// The one reading model every ingestion path (HTTP/JSON, MQTT, FHIR, CSV) produces.
///
/// A reading holds measured values and where they came from; it does not name the patient: the
/// device is bound to a pseudonymous subject on-chain, and `sourceSubject` (a FHIR reference such
/// as `Patient/example`, if the source gave one) stays in the encrypted off-chain blob.
public struct Reading: Hashable, Sendable, CanonicalCodable {
    public var kind: VitalKind
    /// The observation's code (LOINC where the source gave one).
    public var code: Coding
    /// When it was measured (ms since the Unix epoch, UTC); `effectiveEndMs` for a period.
    public var effectiveMs: Int64
    public var effectiveEndMs: Int64?
    public var values: [Measurement]
    public var series: [SampledSeries]
    /// References of a panel's member observations (FHIR `hasMember`).
    public var members: [String]
    /// The source's own id (FHIR `id`, CSV row number), for tracing back to it.
    public var sourceID: String
    public var sourceSubject: String

    public init(kind: VitalKind, code: Coding, effectiveMs: Int64, effectiveEndMs: Int64? = nil, values: [Measurement] = [], series: [SampledSeries] = [], members: [String] = [], sourceID: String = "", sourceSubject: String = "") {
        self.kind = kind; self.code = code; self.effectiveMs = effectiveMs; self.effectiveEndMs = effectiveEndMs
        self.values = values; self.series = series; self.members = members; self.sourceID = sourceID; self.sourceSubject = sourceSubject
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(kind); w.write(code); w.write(effectiveMs); w.write(effectiveEndMs.map(UInt64.init(bitPattern:)))
        w.write(values); w.write(series); w.write(members); w.write(sourceID); w.write(sourceSubject)
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        kind = try r.read(); code = try r.read(); effectiveMs = try r.read()
        effectiveEndMs = try r.readOptional(UInt64.self).map(Int64.init(bitPattern:))
        values = try r.readArray(); series = try r.readArray()
        members = try r.readArray()
        sourceID = try r.read(); sourceSubject = try r.read()
    }
}
