import IoMTCore

/// Vendor CSV → `Reading`s. RFC 4180 (quoted fields, doubled quotes, CRLF or LF), one header row.
///
/// Columns, in any order, names case-insensitive: `time` (a FHIR dateTime, or integer milliseconds
/// since the Unix epoch), `code` (a LOINC code) or `kind` (`heart-rate`, `oxygen-saturation`,
/// `body-temperature`, `blood-pressure`, …), `value` (a decimal; blood pressure as `120/80`),
/// `unit` (UCUM); optional `id`. Every row is checked like a FHIR quantity; one bad row refuses the
/// whole file, naming the row (line numbers count the header as line 1).
public enum VendorCSV {
    public static let maxRows = 100_000

    public static func readings(_ bytes: [UInt8]) throws(IngestError) -> [Reading] {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .malformed("CSV is not UTF-8") }
        let rows = try parse(text)
        guard let header = rows.first else { throw .missingField("CSV header row") }
        let names = header.map { $0.trimmingSpaces.lowercased() }
        func column(_ n: String) -> Int? { names.firstIndex(of: n) }
        guard let timeCol = column("time") else { throw .missingField("CSV column \"time\"") }
        guard let valueCol = column("value") else { throw .missingField("CSV column \"value\"") }
        guard let unitCol = column("unit") else { throw .missingField("CSV column \"unit\"") }
        let codeCol = column("code"), kindCol = column("kind"), idCol = column("id")
        guard codeCol != nil || kindCol != nil else { throw .missingField("CSV column \"code\" (LOINC) or \"kind\"") }
        guard rows.count - 1 <= maxRows else { throw .tooLarge("CSV has \(rows.count - 1) rows; at most \(maxRows)") }
        var out: [Reading] = []
        for (n, row) in rows.enumerated().dropFirst() {
            let line = "CSV line \(n + 1)"
            if row.count == 1, row[0].trimmingSpaces.isEmpty { continue }
            guard row.count == header.count else { throw .malformed("\(line) has \(row.count) fields; the header has \(header.count)") }
            let timeText = row[timeCol].trimmingSpaces
            let time: Int64
            if !timeText.isEmpty, timeText.allSatisfy({ $0.isASCII && $0.isNumber }), let ms = Int64(timeText) {
                // Milliseconds since 1970, up to the end of year 9999 (what a FHIR time can say).
                guard ms <= FHIRTime.latestMs else { throw .invalidTime(field: "\(line) time", value: timeText) }
                time = ms
            } else {
                time = try FHIRTime.parse(timeText, field: "\(line) time")
            }
            var kind: VitalKind
            var code: Coding
            if let c = codeCol, !row[c].trimmingSpaces.isEmpty {
                code = .loinc(row[c].trimmingSpaces)
                kind = VitalSigns.kind(loinc: code.code) ?? .other
            } else if let k = kindCol, let named = VitalKind(name: row[k].trimmingSpaces), let entry = VitalSigns.entry(named) {
                kind = named
                code = .loinc(entry.loinc[0])
            } else {
                throw .missingField("\(line) code or a known kind (\(VitalSigns.entries.map(\.kind.name).joined(separator: ", ")))")
            }
            let unit = row[unitCol].trimmingSpaces
            guard !unit.isEmpty else { throw .missingUnit(field: "\(line) value") }
            let valueText = row[valueCol].trimmingSpaces
            var values: [Measurement] = []
            if kind == .bloodPressure {
                let parts = valueText.split(separator: "/", omittingEmptySubsequences: false)
                guard parts.count == 2, let s = DecimalValue(parsing: String(parts[0])), let d = DecimalValue(parsing: String(parts[1])) else {
                    throw .malformed("\(line) value \"\(valueText)\": blood pressure is systolic/diastolic, e.g. 120/80")
                }
                values = [Measurement(code: .loinc("8480-6"), value: s, unit: unit), Measurement(code: .loinc("8462-4"), value: d, unit: unit)]
                try VitalSigns.check(values[0], kind: .systolicPressure, field: "\(line) systolic")
                try VitalSigns.check(values[1], kind: .diastolicPressure, field: "\(line) diastolic")
            } else {
                guard kind != .vitalSignsPanel, kind != .ecg else { throw .unsupported("\(line): \(kind.name) has no single value; send it as FHIR") }
                guard let v = DecimalValue(parsing: valueText) else { throw .malformed("\(line) value \"\(valueText)\" is not a decimal") }
                let m = Measurement(code: code, value: v, unit: unit)
                try VitalSigns.check(m, kind: kind, field: "\(line) value")
                values = [m]
            }
            out.append(Reading(kind: kind, code: code, effectiveMs: time, values: values, sourceID: idCol.map { row[$0] } ?? "line \(n + 1)"))
        }
        guard !out.isEmpty else { throw .missingField("CSV rows (only a header was sent)") }
        return out
    }

    /// RFC 4180 records.
    static func parse(_ text: String) throws(IngestError) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field = ""
        var quoted = false, wasQuoted = false
        var it = Array(text.unicodeScalars)[...]
        while let c = it.popFirst() {
            if quoted {
                if c == "\"" {
                    if it.first == "\"" { it.removeFirst(); field.unicodeScalars.append("\"") } else { quoted = false }
                } else {
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"":
                guard field.isEmpty, !wasQuoted else { throw .malformed("CSV line \(rows.count + 1): a quote inside an unquoted field") }
                quoted = true; wasQuoted = true
            case ",":
                row.append(field); field = ""; wasQuoted = false
            case "\r":
                if it.first == "\n" { continue }
                fallthrough
            case "\n":
                row.append(field); rows.append(row); row = []; field = ""; wasQuoted = false
                guard rows.count <= maxRows + 1 else { throw .tooLarge("CSV has more than \(maxRows) rows") }
            default:
                guard !wasQuoted else { throw .malformed("CSV line \(rows.count + 1): characters after a closing quote") }
                field.unicodeScalars.append(c)
            }
        }
        guard !quoted else { throw .malformed("CSV: unterminated quoted field") }
        if !field.isEmpty || !row.isEmpty || wasQuoted { row.append(field); rows.append(row) }
        return rows
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
