import IoMTCore

/// FHIR R4 Observation and Bundle → `Reading`s.
///
/// Accepted: an Observation, or a Bundle whose every entry is an Observation (all or nothing: one
/// bad entry refuses the whole upload with the entry's index). An Observation must have a status
/// other than cancelled/entered-in-error, a coded `code`, an `effective[x]`, and at least one of
/// `valueQuantity`, `valueSampledData`, `component` or `hasMember`. Quantities need a UCUM unit
/// (`system` http://unitsofmeasure.org and `code`); known vital signs are checked against their
/// units and physically possible ranges (`VitalSigns`); blood pressure needs systolic and diastolic.
public enum FHIR {
    /// Most entries in one Bundle, most samples in one SampledData.
    public static let maxEntries = 10_000
    public static let maxSamples = 100_000

    public static func readings(json bytes: [UInt8]) throws(IngestError) -> [Reading] {
        let doc: JSONValue
        do { doc = try JSONValue.parse(bytes) } catch { throw .malformed(error.description) }
        return try readings(doc)
    }

    public static func readings(_ doc: JSONValue) throws(IngestError) -> [Reading] {
        guard doc.isObject else { throw .malformed("a FHIR resource is a JSON object, not \(doc.typeName)") }
        guard let type = doc["resourceType"]?.stringValue else { throw .missingField("resourceType") }
        switch type {
        case "Observation":
            return [try observation(doc, at: "Observation")]
        case "Bundle":
            guard let entries = doc["entry"]?.arrayValue else { throw .missingField("Bundle.entry") }
            guard entries.count <= maxEntries else { throw .tooLarge("Bundle has \(entries.count) entries; at most \(maxEntries)") }
            var out: [Reading] = []
            out.reserveCapacity(entries.count)
            for (i, e) in entries.enumerated() {
                let at = "Bundle.entry[\(i)]"
                guard let r = e["resource"] else { throw .notAnObservation(resourceType: "entry without a resource (\(e["request"]?["method"]?.stringValue ?? "no") request)", where: at) }
                let t = r["resourceType"]?.stringValue ?? "resource without resourceType"
                guard t == "Observation" else { throw .notAnObservation(resourceType: t, where: at) }
                out.append(try observation(r, at: at + ".resource"))
            }
            guard !out.isEmpty else { throw .missingField("Bundle.entry (the Bundle is empty)") }
            return out
        default:
            throw .notAnObservation(resourceType: type, where: "the resource")
        }
    }

    static let refusedStatus: Set<String> = ["cancelled", "entered-in-error", "unknown", "registered"]
    static let knownStatus: Set<String> = ["registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"]

    static func observation(_ o: JSONValue, at path: String) throws(IngestError) -> Reading {
        guard let status = o["status"]?.stringValue else { throw .missingField("\(path).status") }
        guard knownStatus.contains(status) else { throw .malformed("\(path).status \"\(status)\" is not an Observation status") }
        guard !refusedStatus.contains(status) else { throw .unsupported("\(path).status is \"\(status)\": only measured results (preliminary, final, amended, corrected) are readings") }
        let codings = try self.codings(o["code"], at: "\(path).code")
        let kind = VitalSigns.kind(of: codings)
        let code = codings.first { $0.system == Coding.loincSystem } ?? codings[0]

        var start: Int64, end: Int64?
        if let t = o["effectiveDateTime"] ?? o["effectiveInstant"] {
            guard let s = t.stringValue else { throw .malformed("\(path).effectiveDateTime is not a string") }
            start = try FHIRTime.parse(s, field: "\(path).effectiveDateTime")
        } else if let p = o["effectivePeriod"] {
            guard let s = p["start"]?.stringValue else { throw .missingField("\(path).effectivePeriod.start") }
            start = try FHIRTime.parse(s, field: "\(path).effectivePeriod.start")
            if let e = p["end"]?.stringValue {
                let v = try FHIRTime.parse(e, field: "\(path).effectivePeriod.end")
                guard v >= start else { throw .invalidTime(field: "\(path).effectivePeriod.end", value: e) }
                end = v
            }
        } else {
            throw .missingField("\(path).effective[x] (effectiveDateTime, effectiveInstant or effectivePeriod)")
        }

        var values: [Measurement] = []
        var series: [SampledSeries] = []
        _ = try value(of: o, code: code, kind: kind, at: path, into: &values, &series)
        if let comps = o["component"] {
            guard let list = comps.arrayValue else { throw .malformed("\(path).component is not an array") }
            for (i, c) in list.enumerated() {
                let cp = "\(path).component[\(i)]"
                let cc = try self.codings(c["code"], at: "\(cp).code")
                let ccode = cc.first { $0.system == Coding.loincSystem } ?? cc[0]
                guard try value(of: c, code: ccode, kind: VitalSigns.kind(of: cc), at: cp, into: &values, &series) else {
                    throw .missingField("\(cp).valueQuantity or valueSampledData")
                }
            }
        }
        var members: [String] = []
        if let hm = o["hasMember"] {
            guard let list = hm.arrayValue else { throw .malformed("\(path).hasMember is not an array") }
            for (i, m) in list.enumerated() {
                guard let ref = m["reference"]?.stringValue, !ref.isEmpty else { throw .missingField("\(path).hasMember[\(i)].reference") }
                members.append(ref)
            }
        }
        guard !values.isEmpty || !series.isEmpty || !members.isEmpty else {
            throw .missingField("\(path): a value (valueQuantity or valueSampledData), components or hasMember")
        }
        if let e = VitalSigns.entry(kind), !e.components.isEmpty {
            let present = Set(values.map { VitalSigns.kind(of: [$0.code]) })
            for needed in e.components where !present.contains(needed) {
                throw .missingField("\(path).component \(needed.name) (\(kind.name) needs \(e.components.map(\.name).joined(separator: " and ")))")
            }
        }
        return Reading(kind: kind, code: code, effectiveMs: start, effectiveEndMs: end, values: values, series: series, members: members,
                       sourceID: o["id"]?.stringValue ?? "", sourceSubject: o["subject"]?["reference"]?.stringValue ?? "")
    }

    /// An observation's or a component's value[x]: a quantity (checked for `kind`'s unit and range)
    /// or sampled data, appended to `values` or `series`. False if it has no value; other value types are refused.
    static func value(of o: JSONValue, code: Coding, kind: VitalKind, at path: String, into values: inout [Measurement], _ series: inout [SampledSeries]) throws(IngestError) -> Bool {
        if let q = o["valueQuantity"] {
            let m = try quantity(q, code: code, at: "\(path).valueQuantity")
            try VitalSigns.check(m, kind: kind, field: "\(path).valueQuantity")
            values.append(m)
        } else if let sd = o["valueSampledData"] {
            series.append(try sampled(sd, code: code, at: "\(path).valueSampledData"))
        } else if let other = o.objectKeys.first(where: { $0.hasPrefix("value") }) {
            throw .unsupported("\(path).\(other): readings are quantities or sampled data")
        } else {
            return false
        }
        return true
    }

    static func codings(_ cc: JSONValue?, at path: String) throws(IngestError) -> [Coding] {
        guard let cc else { throw .missingField(path) }
        guard let list = cc["coding"]?.arrayValue, !list.isEmpty else { throw .missingField("\(path).coding (a reading needs a code such as LOINC)") }
        var out: [Coding] = []
        for (i, c) in list.enumerated() {
            guard let system = c["system"]?.stringValue, let code = c["code"]?.stringValue, !system.isEmpty, !code.isEmpty else {
                throw .missingField("\(path).coding[\(i)].system and .code")
            }
            out.append(Coding(system: system, code: code))
        }
        return out
    }

    static func decimal(_ v: JSONValue?, at path: String) throws(IngestError) -> DecimalValue {
        guard let v else { throw .missingField(path) }
        guard case .number(let text) = v else { throw .malformed("\(path) is a \(v.typeName), not a number") }
        guard let d = DecimalValue(parsing: text) else { throw .outOfRange(field: path, value: text, unit: "", allowed: "at most 18 significant digits") }
        return d
    }

    static func quantity(_ q: JSONValue, code: Coding, at path: String) throws(IngestError) -> Measurement {
        let value = try decimal(q["value"], at: "\(path).value")
        guard let unit = q["code"]?.stringValue, !unit.isEmpty, q["system"]?.stringValue == VitalSigns.ucumSystem else {
            throw .missingUnit(field: path)
        }
        return Measurement(code: code, value: value, unit: unit)
    }

    static func sampled(_ sd: JSONValue, code: Coding, at path: String) throws(IngestError) -> SampledSeries {
        guard let origin = sd["origin"] else { throw .missingField("\(path).origin") }
        let o = try decimal(origin["value"], at: "\(path).origin.value")
        var unit = ""
        if let u = origin["code"]?.stringValue {
            guard origin["system"]?.stringValue == VitalSigns.ucumSystem else { throw .missingUnit(field: "\(path).origin") }
            unit = u
        }
        let period = try decimal(sd["period"], at: "\(path).period")
        guard period.mantissa > 0 else { throw .outOfRange(field: "\(path).period", value: period.description, unit: "ms", allowed: "more than 0 ms") }
        let factor = sd["factor"] == nil ? DecimalValue(1) : try decimal(sd["factor"], at: "\(path).factor")
        let dims = try decimal(sd["dimensions"], at: "\(path).dimensions")
        guard dims.exponent >= 0, dims.mantissa >= 1, dims.mantissa <= 64 else { throw .outOfRange(field: "\(path).dimensions", value: dims.description, unit: "", allowed: "1…64") }
        var samples: [SampleValue] = []
        if let data = sd["data"] {
            guard let text = data.stringValue else { throw .malformed("\(path).data is not a string") }
            for token in text.split(separator: " ", omittingEmptySubsequences: true) {
                guard samples.count < maxSamples else { throw .tooLarge("\(path).data has more than \(maxSamples) samples") }
                switch token {
                case "E": samples.append(.error)
                case "L": samples.append(.belowRange)
                case "U": samples.append(.aboveRange)
                default:
                    guard let d = DecimalValue(parsing: String(token)) else { throw .malformed("\(path).data: \"\(token)\" is not a decimal, E, L or U") }
                    samples.append(.value(d))
                }
            }
            guard samples.count % Int(dims.mantissa) == 0 else { throw .malformed("\(path).data: \(samples.count) samples are not a multiple of \(dims.mantissa) dimensions") }
        }
        return SampledSeries(code: code, origin: o, unit: unit, periodMs: period, factor: factor, dimensions: UInt32(dims.mantissa), samples: samples)
    }
}

/// FHIR `dateTime` and `instant` → milliseconds since the Unix epoch (UTC). A partial date means
/// its first instant (UTC); a time needs a zone (FHIR requires one when a time is given).
public enum FHIRTime {
    public static func parse(_ s: String, field: String) throws(IngestError) -> Int64 {
        guard let v = parse(s) else { throw .invalidTime(field: field, value: s) }
        return v
    }

    public static func parse(_ s: String) -> Int64? {
        let b = Array(s.utf8)
        var i = 0
        func num(_ n: Int) -> Int? {
            guard b.count - i >= n else { return nil }
            var v = 0
            for k in 0..<n {
                let c = b[i + k]
                guard c >= 0x30, c <= 0x39 else { return nil }
                v = v * 10 + Int(c - 0x30)
            }
            i += n
            return v
        }
        func take(_ c: Character) -> Bool {
            guard i < b.count, b[i] == c.asciiValue! else { return false }
            i += 1
            return true
        }
        guard let year = num(4), year >= 1 else { return nil }
        var month = 1, day = 1, hour = 0, minute = 0, second = 0, millis = 0, offsetMinutes = 0
        if take("-") {
            guard let m = num(2), (1...12).contains(m) else { return nil }
            month = m
            if take("-") {
                guard let d = num(2), d >= 1, d <= daysIn(month: m, year: year) else { return nil }
                day = d
                if take("T") {
                    guard let h = num(2), h < 24, take(":"), let mi = num(2), mi < 60, take(":"), let se = num(2), se < 60 else { return nil }
                    hour = h; minute = mi; second = se
                    if take(".") {
                        var digits = 0, frac = 0
                        while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                            if digits < 3 { frac = frac * 10 + Int(b[i] - 0x30) }
                            digits += 1; i += 1
                        }
                        guard digits >= 1, digits <= 9 else { return nil }
                        var scale = min(digits, 3)
                        while scale < 3 { frac *= 10; scale += 1 }
                        millis = frac
                    }
                    if take("Z") {
                    } else if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
                        let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
                        i += 1
                        guard let oh = num(2), take(":"), let om = num(2), om < 60, oh * 60 + om <= 14 * 60 else { return nil }
                        offsetMinutes = sign * (oh * 60 + om)
                    } else {
                        return nil
                    }
                }
            }
        }
        guard i == b.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetMinutes * 60)
        return seconds * 1000 + Int64(millis)
    }

    /// Milliseconds since the Unix epoch → FHIR instant `YYYY-MM-DDThh:mm:ss.sssZ` (UTC).
    /// The range a FHIR dateTime can write: 0001-01-01T00:00:00Z … 9999-12-31T23:59:59.999Z.
    public static let earliestMs = UTCTime.earliestMs, latestMs = UTCTime.latestMs

    /// Times outside `earliestMs…latestMs` (never parsed from a reading, but a contract or query
    /// may hold one) are written as the nearest end, never trapped on.
    public static func format(_ t: Int64) -> String { UTCTime.iso(t) }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
