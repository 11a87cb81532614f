import IoMTCore

/// What a reading measures. Raw values are part of the canonical encoding: never reuse one.
public enum VitalKind: UInt8, Sendable, CaseIterable, CanonicalCodable, CustomStringConvertible {
    case heartRate = 1
    case respiratoryRate = 2
    case oxygenSaturation = 3
    case bodyTemperature = 4
    case bloodPressure = 5
    case systolicPressure = 6
    case diastolicPressure = 7
    case glucose = 8
    case bodyWeight = 9
    case bodyHeight = 10
    case bodyMassIndex = 11
    case ecg = 12
    case vitalSignsPanel = 13
    /// Any other coded quantity with a UCUM unit (kept, range-checked only for being finite).
    case other = 255

    public var name: String {
        switch self {
        case .heartRate: return "heart-rate"
        case .respiratoryRate: return "respiratory-rate"
        case .oxygenSaturation: return "oxygen-saturation"
        case .bodyTemperature: return "body-temperature"
        case .bloodPressure: return "blood-pressure"
        case .systolicPressure: return "systolic-pressure"
        case .diastolicPressure: return "diastolic-pressure"
        case .glucose: return "glucose"
        case .bodyWeight: return "body-weight"
        case .bodyHeight: return "body-height"
        case .bodyMassIndex: return "bmi"
        case .ecg: return "ecg"
        case .vitalSignsPanel: return "vital-signs-panel"
        case .other: return "other"
        }
    }

    public var description: String { name }

    public init?(name: String) {
        guard let k = VitalKind.allCases.first(where: { $0.name == name }) else { return nil }
        self = k
    }

    public func encode(to w: inout CanonicalWriter) { w.write(rawValue) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let t: UInt8 = try r.read()
        guard let k = VitalKind(rawValue: t) else { throw .unknownTag(type: "VitalKind", tag: t) }
        self = k
    }
}

/// The catalogue of vital signs the gateway knows: LOINC codes, the UCUM units each may be sent
/// in, and the physically possible range in each unit. A value outside it is a broken sensor or a
/// typo, refused at the edge (clinical thresholds are alarms, `AlarmRules`, not this).
public enum VitalSigns {
    public struct UnitRange: Sendable {
        public var unit: String
        public var min: Double
        public var max: Double
    }

    public struct Entry: Sendable {
        public var kind: VitalKind
        public var loinc: [String]
        public var units: [UnitRange]
        /// Components a panel must carry (blood pressure: systolic and diastolic).
        public var components: [VitalKind]
    }

    public static let entries: [Entry] = [
        Entry(kind: .heartRate, loinc: ["8867-4"], units: [.init(unit: "/min", min: 0, max: 350), .init(unit: "{beats}/min", min: 0, max: 350)], components: []),
        Entry(kind: .respiratoryRate, loinc: ["9279-1"], units: [.init(unit: "/min", min: 0, max: 150), .init(unit: "{breaths}/min", min: 0, max: 150)], components: []),
        Entry(kind: .oxygenSaturation, loinc: ["2708-6", "59408-5", "59417-6"], units: [.init(unit: "%", min: 0, max: 100)], components: []),
        Entry(kind: .bodyTemperature, loinc: ["8310-5", "8331-1", "8332-9", "8333-7"], units: [.init(unit: "Cel", min: 20, max: 46), .init(unit: "[degF]", min: 68, max: 115)], components: []),
        Entry(kind: .bloodPressure, loinc: ["85354-9", "55284-4"], units: [], components: [.systolicPressure, .diastolicPressure]),
        Entry(kind: .systolicPressure, loinc: ["8480-6"], units: [.init(unit: "mm[Hg]", min: 0, max: 400)], components: []),
        Entry(kind: .diastolicPressure, loinc: ["8462-4"], units: [.init(unit: "mm[Hg]", min: 0, max: 400)], components: []),
        Entry(kind: .glucose, loinc: ["15074-8", "2339-0", "2345-7", "41653-7", "14749-6"], units: [.init(unit: "mmol/L", min: 0, max: 150), .init(unit: "mg/dL", min: 0, max: 2_700)], components: []),
        Entry(kind: .bodyWeight, loinc: ["29463-7", "3141-9"], units: [.init(unit: "kg", min: 0, max: 700), .init(unit: "g", min: 0, max: 700_000), .init(unit: "[lb_av]", min: 0, max: 1_550)], components: []),
        Entry(kind: .bodyHeight, loinc: ["8302-2", "8306-3"], units: [.init(unit: "cm", min: 0, max: 300), .init(unit: "m", min: 0, max: 3), .init(unit: "[in_i]", min: 0, max: 120)], components: []),
        Entry(kind: .bodyMassIndex, loinc: ["39156-5"], units: [.init(unit: "kg/m2", min: 0, max: 300)], components: []),
        Entry(kind: .vitalSignsPanel, loinc: ["85353-1", "8716-3"], units: [], components: []),
    ]

    /// ISO/IEEE 11073 MDC codes of ECG waveforms (FHIR's `urn:oid:2.16.840.1.113883.6.24`).
    public static let mdcSystem = "urn:oid:2.16.840.1.113883.6.24"
    public static let ecgMDC: Set<String> = ["131328", "131329", "131330", "131331", "131389", "131390", "131391", "131392", "131393", "131394", "131395", "131396"]
    public static let ecgLOINC: Set<String> = ["11524-6", "131328"]
    public static let ucumSystem = "http://unitsofmeasure.org"

    public static func entry(_ kind: VitalKind) -> Entry? { entries.first { $0.kind == kind } }

    /// The kind of a LOINC code, if the catalogue knows it.
    public static func kind(loinc code: String) -> VitalKind? { entries.first { $0.loinc.contains(code) }?.kind }

    /// The kind named by a list of codings: the first LOINC code the catalogue knows, else an ECG
    /// waveform code, else `.other`.
    public static func kind(of codings: [Coding]) -> VitalKind {
        for c in codings where c.system == Coding.loincSystem { if let k = kind(loinc: c.code) { return k } }
        for c in codings where (c.system == mdcSystem && ecgMDC.contains(c.code)) || (c.system == Coding.loincSystem && ecgLOINC.contains(c.code)) { return .ecg }
        return .other
    }

    /// Checks a value's unit and range for its kind.
    public static func check(_ m: Measurement, kind: VitalKind, field: String) throws(IngestError) {
        let v = m.value.double
        guard v.isFinite else { throw .outOfRange(field: field, value: m.value.description, unit: m.unit, allowed: "a finite number") }
        guard let e = entry(kind), !e.units.isEmpty else { return }
        guard let r = e.units.first(where: { $0.unit == m.unit }) else {
            throw .wrongUnit(field: field, kind: kind.name, unit: m.unit, allowed: e.units.map(\.unit))
        }
        guard v >= r.min, v <= r.max else {
            throw .outOfRange(field: field, value: m.value.description, unit: m.unit, allowed: "\(format(r.min))…\(format(r.max)) \(r.unit)")
        }
    }

    static func format(_ d: Double) -> String { d == d.rounded() ? String(Int64(d)) : String(d) }
}

/// Why a reading was refused at the edge. `code` is stable: the API, the CLI and tests key on it.
/// A refused upload changes nothing: it never reaches the queue, the blob store or the chain.
public enum IngestError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed(String)
    case notAnObservation(resourceType: String, where: String)
    case unsupported(String)
    case missingField(String)
    case missingUnit(field: String)
    case wrongUnit(field: String, kind: String, unit: String, allowed: [String])
    case outOfRange(field: String, value: String, unit: String, allowed: String)
    case invalidTime(field: String, value: String)
    case tooLarge(String)

    public var code: String {
        switch self {
        case .malformed: return "malformed"
        case .notAnObservation: return "not-an-observation"
        case .unsupported: return "unsupported"
        case .missingField: return "missing-field"
        case .missingUnit: return "missing-unit"
        case .wrongUnit: return "wrong-unit"
        case .outOfRange: return "out-of-range"
        case .invalidTime: return "invalid-time"
        case .tooLarge: return "too-large"
        }
    }

    public var description: String {
        switch self {
        case .malformed(let s): return "malformed input: \(s)"
        case .notAnObservation(let t, let w): return "\(w) is a \(t), not an Observation: only Observation resources (alone or in a Bundle) carry readings"
        case .unsupported(let s): return "unsupported: \(s)"
        case .missingField(let f): return "missing \(f)"
        case .missingUnit(let f): return "\(f) has no UCUM unit (a value without a unit is not a reading)"
        case .wrongUnit(let f, let k, let u, let a): return "\(f): unit \"\(u)\" is not one of \(a.map { "\"\($0)\"" }.joined(separator: ", ")) for \(k)"
        case .outOfRange(let f, let v, let u, let a): return "\(f): \(v) \(u) is outside \(a)"
        case .invalidTime(let f, let v): return "\(f): \"\(v)\" is not a FHIR dateTime/instant (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.sss](Z|±hh:mm))"
        case .tooLarge(let s): return "too large: \(s)"
        }
    }
}

extension VitalKind {
    /// The consent category (`DataCategory`) a reading of this kind belongs to: what a grant must
    /// cover for a reader to receive it.
    public var dataCategory: String {
        switch self {
        case .ecg: return "ecg"
        case .glucose: return "laboratory"
        default: return "vital-signs"
        }
    }
}
