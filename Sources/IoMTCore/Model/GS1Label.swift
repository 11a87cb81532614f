import Foundation

/// What a medicine pack's 2D code (GS1 DataMatrix or QR) carries, as a scanner hands it over: the
/// GTIN (AI 01), the lot (10), the serial (21) and the expiry date (17). Three forms are read:
///
/// - the raw element string a scanner emits: an optional symbology identifier (`]d2`, `]Q3`,
///   `]C1`), then AIs back to back, a variable-length field ended by the group separator (GS, 0x1D)
///   or the end — `]d2010950600013435217271231` `10COVID-7` GS `21SN-3`;
/// - the human-readable form, each AI in brackets — `(01)09506000134352(17)271231(10)COVID-7(21)SN-3`;
/// - a GS1 Digital Link URI — `https://id.gs1.org/01/09506000134352/10/COVID-7/21/SN-3?17=271231`.
///
/// AIs other than these four are read past when their length is known (GS1 General
/// Specifications §3.2, the ones found on medicines and medical devices) and refused otherwise: a
/// field of unknown length cannot be skipped safely.
public struct GS1Label: Hashable, Sendable {
    public var gtin: String
    public var lot: String?
    public var serial: String?
    /// AI 17 as written: YYMMDD, DD 00 meaning the month's last day.
    public var expiry: String?

    public init(gtin: String, lot: String? = nil, serial: String? = nil, expiry: String? = nil) {
        self.gtin = gtin; self.lot = lot; self.serial = serial; self.expiry = expiry
    }

    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case empty
        case unknownAI(String)
        case malformed(String)

        public var description: String {
            switch self {
            case .empty: return "the code is empty"
            case .unknownAI(let ai): return "application identifier (\(ai)) is not one this reader knows the length of"
            case .malformed(let why): return why
            }
        }
    }

    /// Known AIs: fixed length of the data, or nil for variable length up to `max`.
    static let ais: [String: (fixed: Int?, max: Int)] = [
        "00": (18, 18), "01": (14, 14), "02": (14, 14), "10": (nil, 20), "11": (6, 6), "12": (6, 6), "13": (6, 6),
        "15": (6, 6), "16": (6, 6), "17": (6, 6), "20": (2, 2), "21": (nil, 20), "22": (nil, 20), "30": (nil, 8), "37": (nil, 8),
        "240": (nil, 30), "241": (nil, 30), "250": (nil, 30), "7003": (10, 10),
        "710": (nil, 20), "711": (nil, 20), "712": (nil, 20), "713": (nil, 20), "714": (nil, 20), "715": (nil, 20),
    ]
    static let maxLength = 512

    public static func parse(_ text: String) throws(ParseError) -> GS1Label {
        let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !t.isEmpty else { throw .empty }
        guard t.utf8.count <= maxLength else { throw .malformed("a GS1 code is at most \(maxLength) bytes") }
        var fields: [(String, String)] = []
        if t.hasPrefix("http://") || t.hasPrefix("https://") {
            fields = try digitalLink(t)
        } else if t.hasPrefix("(") {
            fields = try bracketed(t)
        } else {
            fields = try raw(t)
        }
        var label = GS1Label(gtin: "")
        for (ai, value) in fields {
            guard let spec = ais[ai] else { throw .unknownAI(ai) }
            if let n = spec.fixed, value.utf8.count != n { throw .malformed("(\(ai)) carries \(n) characters, not \(value.utf8.count)") }
            guard (1...spec.max).contains(value.utf8.count) else { throw .malformed("(\(ai)) carries 1…\(spec.max) characters") }
            switch ai {
            case "01": try set(&label.gtin, value, ai)
            case "10": label.lot = try once(label.lot, value, ai)
            case "21": label.serial = try once(label.serial, value, ai)
            case "17": label.expiry = try once(label.expiry, value, ai)
            default: break
            }
        }
        guard !label.gtin.isEmpty else { throw .malformed("the code carries no GTIN (01)") }
        guard GS1.isValidGTIN(label.gtin) else { throw .malformed("(01) \(label.gtin) is not a GTIN with a correct check digit") }
        if let lot = label.lot, !GS1.isValidLot(lot) { throw .malformed("(10) is 1…20 letters, digits or -./_") }
        if let serial = label.serial, !GS1.isValidLot(serial) { throw .malformed("(21) is 1…20 letters, digits or -./_") }
        if let e = label.expiry, Self.expiryDay(e) == nil { throw .malformed("(17) is a date YYMMDD") }
        return label
    }

    private static func set(_ field: inout String, _ value: String, _ ai: String) throws(ParseError) {
        guard field.isEmpty else { throw .malformed("(\(ai)) appears twice") }
        field = value
    }

    private static func once(_ current: String?, _ value: String, _ ai: String) throws(ParseError) -> String {
        guard current == nil else { throw .malformed("(\(ai)) appears twice") }
        return value
    }

    /// `(01)…(10)…`: each AI in brackets, its data up to the next bracket.
    static func bracketed(_ t: String) throws(ParseError) -> [(String, String)] {
        var out: [(String, String)] = []
        var rest = Substring(t)
        while !rest.isEmpty {
            guard rest.first == "(", let close = rest.firstIndex(of: ")") else { throw .malformed("expected (AI) at \"\(rest.prefix(12))\"") }
            let ai = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            let end = after.firstIndex(of: "(") ?? after.endIndex
            out.append((ai, String(after[..<end])))
            rest = after[end...]
        }
        return out
    }

    /// AIs back to back as a scanner emits them; a variable-length field ends at GS or the end.
    static func raw(_ t: String) throws(ParseError) -> [(String, String)] {
        var bytes = Array(t.utf8)
        for id in ["]d2", "]Q3", "]C1", "]e0"] where bytes.starts(with: Array(id.utf8)) { bytes.removeFirst(3) }
        let gs: UInt8 = 0x1D
        var out: [(String, String)] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == gs { i += 1; continue }
            // AIs are 2 to 4 digits: the first known prefix is the AI (GS1 AIs are prefix-free).
            var found: (String, (fixed: Int?, max: Int))?
            for n in 2...4 where i + n <= bytes.count {
                let candidate = String(decoding: bytes[i..<i + n], as: UTF8.self)
                if let spec = ais[candidate] { found = (candidate, spec); break }
            }
            guard let (ai, spec) = found else { throw .unknownAI(String(decoding: bytes[i..<min(bytes.count, i + 4)], as: UTF8.self)) }
            i += ai.utf8.count
            let end: Int
            if let n = spec.fixed {
                guard i + n <= bytes.count else { throw .malformed("(\(ai)) is cut short") }
                end = i + n
            } else {
                end = bytes[i...].firstIndex(of: gs) ?? bytes.count
            }
            out.append((ai, String(decoding: bytes[i..<end], as: UTF8.self)))
            i = end
        }
        return out
    }

    /// A GS1 Digital Link URI: `/01/{gtin}` (or `/gtin/`), then `/{ai}/{value}` pairs, and AIs as
    /// query parameters; values percent-decoded.
    static func digitalLink(_ t: String) throws(ParseError) -> [(String, String)] {
        guard let url = URLComponents(string: t) else { throw .malformed("not a URI") }
        let segments = url.percentEncodedPath.split(separator: "/").map(String.init)
        let names = ["gtin": "01", "lot": "10", "ser": "21", "exp": "17"]
        guard let start = segments.firstIndex(where: { $0 == "01" || $0 == "gtin" }) else { throw .malformed("a GS1 Digital Link has /01/{GTIN} in its path") }
        let pairs = segments[start...]
        guard pairs.count % 2 == 0 else { throw .malformed("the path after /01/ is AI/value pairs") }
        var out: [(String, String)] = []
        var i = pairs.startIndex
        while i < pairs.endIndex {
            guard let value = pairs[i + 1].removingPercentEncoding else { throw .malformed("bad percent-encoding") }
            let ai = names[pairs[i]] ?? pairs[i]
            // Digital Link allows a GTIN in 8, 12, 13 or 14 digits; the element string has 14.
            out.append((ai, ai == "01" && [8, 12, 13].contains(value.utf8.count) ? GS1.gtin14(value) : value))
            i += 2
        }
        for q in url.queryItems ?? [] {
            let key = names[q.name] ?? q.name
            guard key.utf8.allSatisfy({ (48...57).contains($0) }) else { continue }  // other parameters (linkType, …) are not AIs
            out.append((key, q.value ?? ""))
        }
        return out
    }

    /// AI 17's day as milliseconds since 1970 (UTC midnight); DD 00 is the month's last day. Years
    /// 00–49 are 20xx, 50–99 19xx (GS1's rule is a sliding window; fixed here, as for medicines).
    public static func expiryDay(_ yymmdd: String) -> Int64? {
        let d = yymmdd.utf8.map { Int($0) - 48 }
        guard d.count == 6, d.allSatisfy({ (0...9).contains($0) }) else { return nil }
        let yy = d[0] * 10 + d[1], mm = d[2] * 10 + d[3], dd = d[4] * 10 + d[5]
        guard (1...12).contains(mm) else { return nil }
        let year = yy < 50 ? 2000 + yy : 1900 + yy
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mm - 1]
        guard dd <= days else { return nil }
        return daysFromCivil(year, mm, dd == 0 ? days : dd) * 86_400_000
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return Int64(era * 146_097 + doe - 719_468)
    }
}
