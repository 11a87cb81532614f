/// Milliseconds since 1970 written as an ISO 8601 UTC time by arithmetic (H. Hinnant's
/// civil-from-days): no formatter, no locale, the same text on every machine.
public enum UTCTime {
    /// The range a four-digit year can write: 0001-01-01T00:00:00Z … 9999-12-31T23:59:59.999Z.
    public static let earliestMs: Int64 = -62_135_596_800_000, latestMs: Int64 = 253_402_300_799_999

    /// `YYYY-MM-DDThh:mm:ss.sssZ`; times outside `earliestMs…latestMs` are written as the nearest
    /// end, never trapped on.
    public static func iso(_ t: Int64) -> String {
        let ms = min(max(t, earliestMs), latestMs)
        let days = Int((ms >= 0 ? ms : ms - 86_399_999) / 86_400_000)
        let rest = Int(ms - Int64(days) * 86_400_000)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ v: Int, _ n: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, n - s.count)) + s }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(rest / 3_600_000, 2)):\(pad(rest / 60_000 % 60, 2)):\(pad(rest / 1000 % 60, 2)).\(pad(rest % 1000, 3))Z"
    }
}
