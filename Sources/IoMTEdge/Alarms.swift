import IoMTCore

/// A threshold rule for one vital sign, with hysteresis: it raises when a value crosses
/// `above`/`below` and clears only when the value is back past `clearAt`, so a value wobbling
/// around the threshold does not flood the ward with alerts.
public struct AlarmRule: Codable, Sendable, Hashable {
    /// Stable id, e.g. `spo2-low`; a patient-specific rule with the same id replaces the general one.
    public var id: String
    /// Vital kind name (`VitalKind.name`), e.g. `oxygen-saturation`.
    public var kind: String
    /// For a panel such as blood pressure: the LOINC code of the component to watch (8480-6 systolic).
    public var component: String?
    /// The rule applies to values in this UCUM unit (no unit conversion at the edge).
    public var unit: String
    public var above: Double?
    public var below: Double?
    /// Hysteresis: an `above` alarm clears at or below this, a `below` alarm at or above it.
    public var clearAt: Double
    /// `warning` or `critical`.
    public var severity: String
    /// Only for this patient pseudonym (per-patient thresholds); nil for every patient.
    public var subject: Hash?

    public init(id: String, kind: VitalKind, component: String? = nil, unit: String, above: Double? = nil, below: Double? = nil, clearAt: Double, severity: String = "warning", subject: Hash? = nil) {
        self.id = id; self.kind = kind.name; self.component = component; self.unit = unit
        self.above = above; self.below = below; self.clearAt = clearAt; self.severity = severity; self.subject = subject
    }

    /// Why a rule set is refused (at gateway start).
    public static func validate(_ rules: [AlarmRule]) throws(IngestError) {
        for r in rules {
            guard !r.id.isEmpty, r.id.utf8.count <= 64 else { throw .malformed("alarm rule id must be 1…64 bytes") }
            guard VitalKind(name: r.kind) != nil else { throw .malformed("alarm rule \(r.id): unknown kind \"\(r.kind)\"") }
            guard (r.above == nil) != (r.below == nil) else { throw .malformed("alarm rule \(r.id): give exactly one of above and below") }
            if let a = r.above, r.clearAt > a { throw .malformed("alarm rule \(r.id): clearAt \(r.clearAt) must not be above the threshold \(a)") }
            if let b = r.below, r.clearAt < b { throw .malformed("alarm rule \(r.id): clearAt \(r.clearAt) must not be below the threshold \(b)") }
            guard ["warning", "critical"].contains(r.severity) else { throw .malformed("alarm rule \(r.id): severity is warning or critical") }
        }
    }

    /// The defaults (adult, resting): SpO2 < 90 %, heart rate > 120 or < 40 /min, temperature > 38 °C,
    /// respiratory rate > 30 /min, systolic > 180 or < 90 mm[Hg], glucose < 3.9 mmol/L; and for ward
    /// environment sensors CO2 > 1,500 ppm, PM2.5 > 35 µg/m³, air outside 18–26 °C.
    public static let defaults: [AlarmRule] = [
        AlarmRule(id: "spo2-low", kind: .oxygenSaturation, unit: "%", below: 90, clearAt: 92, severity: "critical"),
        AlarmRule(id: "heart-rate-high", kind: .heartRate, unit: "/min", above: 120, clearAt: 110),
        AlarmRule(id: "heart-rate-low", kind: .heartRate, unit: "/min", below: 40, clearAt: 45, severity: "critical"),
        AlarmRule(id: "temperature-high", kind: .bodyTemperature, unit: "Cel", above: 38, clearAt: 37.7),
        AlarmRule(id: "respiratory-rate-high", kind: .respiratoryRate, unit: "/min", above: 30, clearAt: 25),
        AlarmRule(id: "systolic-high", kind: .bloodPressure, component: "8480-6", unit: "mm[Hg]", above: 180, clearAt: 170, severity: "critical"),
        AlarmRule(id: "systolic-low", kind: .bloodPressure, component: "8480-6", unit: "mm[Hg]", below: 90, clearAt: 95),
        AlarmRule(id: "glucose-low", kind: .glucose, unit: "mmol/L", below: 3.9, clearAt: 4.4, severity: "critical"),
        // Ward environment sensors (issue 6 §5): readings coded co2, pm2.5, ambient-temperature.
        AlarmRule(id: "co2-high", kind: .other, component: "co2", unit: "[ppm]", above: 1_500, clearAt: 1_200),
        AlarmRule(id: "pm25-high", kind: .other, component: "pm2.5", unit: "ug/m3", above: 35, clearAt: 25),
        AlarmRule(id: "ward-too-warm", kind: .other, component: "ambient-temperature", unit: "Cel", above: 26, clearAt: 25),
        AlarmRule(id: "ward-too-cold", kind: .other, component: "ambient-temperature", unit: "Cel", below: 18, clearAt: 19),
    ]
}

/// An alarm raised or cleared by one reading.
public struct AlarmEvent: Codable, Sendable, Hashable {
    public enum State: String, Codable, Sendable { case raised, cleared }
    public var rule: String
    public var severity: String
    public var state: State
    public var device: Address
    public var subject: Hash?
    public var value: String
    public var unit: String
    public var effectiveMs: Int64

    public init(rule: String, severity: String, state: State, device: Address, subject: Hash?, value: String, unit: String, effectiveMs: Int64) {
        self.rule = rule; self.severity = severity; self.state = state; self.device = device
        self.subject = subject; self.value = value; self.unit = unit; self.effectiveMs = effectiveMs
    }
}

/// Alarm state per device and rule: a pure state machine (no clock; time is the readings').
public struct AlarmTracker: Sendable {
    public private(set) var rules: [AlarmRule]
    /// Active alarms: (device, rule id).
    public private(set) var active: Set<Key> = []

    public struct Key: Hashable, Sendable {
        public var device: Address
        public var rule: String
        public init(device: Address, rule: String) { self.device = device; self.rule = rule }
    }

    public init(rules: [AlarmRule] = AlarmRule.defaults, active: Set<Key> = []) { self.rules = rules; self.active = active }

    /// The rules that apply to a subject: patient-specific ones replace general ones with the same id.
    public func rules(for subject: Hash?) -> [AlarmRule] {
        let specific = rules.filter { $0.subject != nil && $0.subject == subject }
        let replaced = Set(specific.map(\.id))
        return rules.filter { $0.subject == nil && !replaced.contains($0.id) } + specific
    }

    /// Feeds one reading; returns the alarms it raises or clears.
    public mutating func observe(_ reading: Reading, device: Address, subject: Hash?) -> [AlarmEvent] {
        var events: [AlarmEvent] = []
        for rule in rules(for: subject) where rule.kind == reading.kind.name {
            let m = rule.component.map { c in reading.values.first { $0.code.code == c } } ?? reading.values.first
            guard let m, m.unit == rule.unit else { continue }
            let v = m.value.double
            let key = Key(device: device, rule: rule.id)
            let isActive = active.contains(key)
            let crossed = rule.above.map { v > $0 } ?? rule.below.map { v < $0 } ?? false
            let back = rule.above != nil ? v <= rule.clearAt : v >= rule.clearAt
            if !isActive, crossed {
                active.insert(key)
                events.append(AlarmEvent(rule: rule.id, severity: rule.severity, state: .raised, device: device, subject: subject, value: m.value.description, unit: m.unit, effectiveMs: reading.effectiveMs))
            } else if isActive, back {
                active.remove(key)
                events.append(AlarmEvent(rule: rule.id, severity: rule.severity, state: .cleared, device: device, subject: subject, value: m.value.description, unit: m.unit, effectiveMs: reading.effectiveMs))
            }
        }
        return events
    }

    /// The rule a cold-chain logger's excursion raises.
    public static let excursionRule = "cold-chain-excursion"

    /// A cold-chain logger's temperature in hundredths of °C: the reading's first value in `Cel`
    /// (or `[degF]`, converted); nil if it carries none.
    public static func centiCelsius(_ reading: Reading) -> Int32? {
        for m in reading.values {
            let v = m.value.double
            guard v.isFinite, abs(v) < 1_000 else { continue }
            if m.unit == "Cel" { return Int32((v * 100).rounded()) }
            if m.unit == "[degF]" { return Int32(((v - 32) * 500 / 9).rounded()) }
        }
        return nil
    }

    /// Feeds a cold-chain logger's reading against the storage range of the batch it watches
    /// (hundredths of °C): raises when it leaves the range, clears once it is back inside by 0.5 °C
    /// (or at the middle of a narrower range). Returns the event and the temperature.
    public mutating func observeStorage(_ reading: Reading, device: Address, minCentiC: Int32, maxCentiC: Int32) -> (AlarmEvent, centiC: Int32)? {
        guard let c = Self.centiCelsius(reading) else { return nil }
        let key = Key(device: device, rule: Self.excursionRule)
        let margin = min(50, (maxCentiC - minCentiC) / 2)
        let outside = c < minCentiC || c > maxCentiC, back = c >= minCentiC + margin && c <= maxCentiC - margin
        let state: AlarmEvent.State
        if !active.contains(key), outside { active.insert(key); state = .raised } else if active.contains(key), back { active.remove(key); state = .cleared } else { return nil }
        let magnitude = abs(Int(c)), cents = magnitude % 100
        let value = (c < 0 ? "-" : "") + "\(magnitude / 100)." + (cents < 10 ? "0" : "") + "\(cents)"
        return (AlarmEvent(rule: Self.excursionRule, severity: "critical", state: state, device: device, subject: nil, value: value, unit: "Cel", effectiveMs: reading.effectiveMs), c)
    }

    /// Clears an active alarm without a reading (what it watched changed); nil if it was not active.
    public mutating func reset(device: Address, rule: String, atMs: Int64) -> AlarmEvent? {
        guard active.remove(Key(device: device, rule: rule)) != nil else { return nil }
        return AlarmEvent(rule: rule, severity: "critical", state: .cleared, device: device, subject: nil, value: "", unit: "", effectiveMs: atMs)
    }

    /// The rule a quarantined person's wristband raises outside its geofence.
    public static let breachRule = "geofence-breach"

    /// Feeds a quarantined person's wristband position (centimetres) against their geofence: raises
    /// when it leaves the disc, clears once it is back inside by a metre.
    public mutating func observeFence(_ position: (x: Int64, y: Int64), atMs: Int64, device: Address, subject: Hash?, fence: Geofence) -> AlarmEvent? {
        let key = Key(device: device, rule: Self.breachRule)
        let state: AlarmEvent.State
        if !active.contains(key), !fence.contains(xCm: position.x, yCm: position.y) {
            active.insert(key); state = .raised
        } else if active.contains(key), fence.contains(xCm: position.x, yCm: position.y, marginCm: 100) {
            active.remove(key); state = .cleared
        } else {
            return nil
        }
        // The alert carries the distance from the fence's edge, not the position.
        let dx = Double(position.x - fence.xCm), dy = Double(position.y - fence.yCm)
        let outsideM = max(0, ((dx * dx + dy * dy).squareRoot() - Double(fence.radiusCm)) / 100)
        return AlarmEvent(rule: Self.breachRule, severity: "critical", state: state, device: device, subject: subject, value: "\(Int(outsideM.rounded()))", unit: "m", effectiveMs: atMs)
    }

    /// The rule a quarantined person's wristband raises when it stops reporting.
    public static let silenceRule = "wristband-silent"

    /// A quarantined person's wristband last heard at `lastHeardMs` (the gateway's clock): raises
    /// `wristband-silent` once it has been silent `silentMs`; its next position clears it
    /// (`reset`). The value is the silence in whole minutes.
    public mutating func observeSilence(device: Address, subject: Hash?, lastHeardMs: Int64, nowMs: Int64, silentMs: Int64) -> AlarmEvent? {
        let key = Key(device: device, rule: Self.silenceRule)
        guard silentMs > 0, !active.contains(key), nowMs - lastHeardMs >= silentMs else { return nil }
        active.insert(key)
        return AlarmEvent(rule: Self.silenceRule, severity: "critical", state: .raised, device: device, subject: subject,
                          value: "\((nowMs - lastHeardMs) / 60_000)", unit: "min", effectiveMs: nowMs)
    }

    /// True while any alarm of the device is active (the gateway then asks it for intensive sampling).
    public func isAlarming(_ device: Address) -> Bool { active.contains { $0.device == device } }
}
