import IoMTCore

/// A wristband's position in a reading: the components `x` and `y` (in `m` or `cm`) of a position
/// observation, in centimetres; nil if the reading carries none.
public enum WristbandPosition {
    public static func centimetres(_ r: Reading) -> (x: Int64, y: Int64)? {
        func value(_ code: String) -> Int64? {
            guard let m = r.values.first(where: { $0.code.code == code }) else { return nil }
            let v = m.value.double
            guard v.isFinite, abs(v) < 1e9 else { return nil }
            switch m.unit {
            case "m": return Int64((v * 100).rounded())
            case "cm": return Int64(v.rounded())
            default: return nil
            }
        }
        guard let x = value("x"), let y = value("y") else { return nil }
        return (x, y)
    }
}

/// Proximity alerts (issue 6 §3): two wristbands closer than `distanceCm` for at least `durationMs`
/// raise a `proximity` alert for each wearer; it clears when they are more than `clearCm` apart
/// (or one has not reported for `staleMs`). A pure state machine over the readings' own times; a
/// grid of `clearCm` cells finds the neighbours of a position without comparing every pair.
public struct ProximityTracker: Sendable {
    public static let rule = "proximity"
    public let distanceCm: Int64
    public let clearCm: Int64
    public let durationMs: Int64
    public let staleMs: Int64

    struct Seen: Sendable { var x: Int64; var y: Int64; var atMs: Int64; var subject: Hash? }
    struct Cell: Hashable, Sendable { var i: Int64; var j: Int64 }
    struct Pair: Hashable, Sendable {
        var a: Address, b: Address
        init(_ p: Address, _ q: Address) { (a, b) = p.bytes.lexicographicallyPrecedes(q.bytes) ? (p, q) : (q, p) }
        func other(_ d: Address) -> Address { d == a ? b : a }
    }

    private var seen: [Address: Seen] = [:]
    private var cells: [Cell: Set<Address>] = [:]
    private var closeSince: [Pair: Int64] = [:]
    private var partners: [Address: Set<Address>] = [:]
    private var active: Set<Pair> = []

    public init(distanceCm: Int64 = 200, clearCm: Int64 = 250, durationMs: Int64 = 15 * 60_000, staleMs: Int64 = 60_000) {
        self.distanceCm = distanceCm; self.clearCm = max(clearCm, distanceCm); self.durationMs = durationMs; self.staleMs = staleMs
    }

    private func cell(_ x: Int64, _ y: Int64) -> Cell {
        func f(_ v: Int64) -> Int64 { v >= 0 ? v / clearCm : (v - clearCm + 1) / clearCm }
        return Cell(i: f(x), j: f(y))
    }

    private func hasActivePair(_ d: Address) -> Bool { (partners[d] ?? []).contains { active.contains(Pair(d, $0)) } }

    private func event(_ d: Address, _ state: AlarmEvent.State, distanceCm: Int64, atMs: Int64) -> AlarmEvent {
        AlarmEvent(rule: Self.rule, severity: "warning", state: state, device: d, subject: seen[d]?.subject,
                   value: "\(distanceCm / 100).\(distanceCm % 100 < 10 ? "0" : "")\(distanceCm % 100)", unit: "m", effectiveMs: atMs)
    }

    /// Feeds one wristband position; returns the alerts it raises or clears (for either wearer).
    public mutating func observe(device: Address, subject: Hash?, xCm: Int64, yCm: Int64, atMs: Int64) -> [AlarmEvent] {
        if let old = seen[device] { cells[cell(old.x, old.y)]?.remove(device) }
        seen[device] = Seen(x: xCm, y: yCm, atMs: atMs, subject: subject)
        let c = cell(xCm, yCm)
        cells[c, default: []].insert(device)
        var events: [AlarmEvent] = []
        var near: [Address: Int64] = [:]
        for di in -1...1 {
            for dj in -1...1 {
                for other in cells[Cell(i: c.i + Int64(di), j: c.j + Int64(dj))] ?? [] where other != device {
                    guard let o = seen[other], abs(o.atMs - atMs) <= staleMs else { continue }
                    let dx = Double(o.x - xCm), dy = Double(o.y - yCm)
                    near[other] = Int64((dx * dx + dy * dy).squareRoot().rounded())
                }
            }
        }
        // Pairs that separated: beyond the clearing distance, out of the neighbouring cells, or stale.
        for other in (partners[device] ?? []).sorted(by: { $0.bytes.lexicographicallyPrecedes($1.bytes) }) where (near[other] ?? Int64.max) > clearCm {
            let pair = Pair(device, other)
            closeSince[pair] = nil
            partners[device]?.remove(other)
            partners[other]?.remove(device)
            if active.remove(pair) != nil {
                for d in [device, other] where !hasActivePair(d) { events.append(event(d, .cleared, distanceCm: near[other] ?? clearCm, atMs: atMs)) }
            }
        }
        // Pairs that are close: raised once they stayed close long enough.
        for (other, d) in near.sorted(by: { $0.key.bytes.lexicographicallyPrecedes($1.key.bytes) }) where d <= distanceCm {
            let pair = Pair(device, other)
            let since = closeSince[pair] ?? atMs
            closeSince[pair] = since
            partners[device, default: []].insert(other)
            partners[other, default: []].insert(device)
            if atMs - since >= durationMs, !active.contains(pair) {
                let before = [device, other].map(hasActivePair)
                active.insert(pair)
                for (k, who) in [device, other].enumerated() where !before[k] { events.append(event(who, .raised, distanceCm: d, atMs: atMs)) }
            }
        }
        return events
    }
}
