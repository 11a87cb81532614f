import IoMTCore
import IoMTEdge
import Testing

@Suite("distancing: proximity between wristbands, a quarantine geofence")
struct DistancingTests {
    static func band(_ n: UInt8) -> Address { Address(bytes: [UInt8](repeating: n, count: 20))! }
    static let s: Int64 = 1_000

    @Test("two wearers within 2 m for the set time raise one alert each; a brief contact does not; moving apart clears")
    func proximity() {
        var t = ProximityTracker(distanceCm: 200, clearCm: 250, durationMs: 60 * Self.s, staleMs: 30 * Self.s)
        let a = Self.band(1), b = Self.band(2), c = Self.band(3)
        #expect(t.observe(device: a, subject: nil, xCm: 0, yCm: 0, atMs: 0).isEmpty)
        #expect(t.observe(device: b, subject: nil, xCm: 150, yCm: 0, atMs: 1 * Self.s).isEmpty)   // close from 1 s
        #expect(t.observe(device: c, subject: nil, xCm: 10_000, yCm: 0, atMs: 2 * Self.s).isEmpty)  // far away
        #expect(t.observe(device: a, subject: nil, xCm: 20, yCm: 0, atMs: 30 * Self.s).isEmpty)
        #expect(t.observe(device: b, subject: nil, xCm: 160, yCm: 10, atMs: 55 * Self.s).isEmpty)  // 54 s so far
        let raised = t.observe(device: a, subject: nil, xCm: 30, yCm: 0, atMs: 62 * Self.s)
        #expect(Set(raised.map(\.device)) == [a, b] && raised.allSatisfy { $0.state == .raised && $0.rule == "proximity" })
        #expect(t.observe(device: b, subject: nil, xCm: 170, yCm: 0, atMs: 63 * Self.s).isEmpty)  // still close: nothing new
        #expect(t.observe(device: b, subject: nil, xCm: 260, yCm: 0, atMs: 64 * Self.s).isEmpty)  // 2.3 m: inside the clearing margin
        let cleared = t.observe(device: b, subject: nil, xCm: 900, yCm: 0, atMs: 65 * Self.s)
        #expect(Set(cleared.map(\.device)) == [a, b] && cleared.allSatisfy { $0.state == .cleared })
        // A contact shorter than the set time raises nothing.
        #expect(t.observe(device: c, subject: nil, xCm: 950, yCm: 0, atMs: 66 * Self.s).isEmpty)
        #expect(t.observe(device: c, subject: nil, xCm: 5_000, yCm: 0, atMs: 100 * Self.s).isEmpty)
        #expect(t.observe(device: b, subject: nil, xCm: 900, yCm: 0, atMs: 200 * Self.s).isEmpty)
    }

    @Test("a position reported long ago is not a contact")
    func stale() {
        var t = ProximityTracker(distanceCm: 200, clearCm: 250, durationMs: 0, staleMs: 30 * Self.s)
        _ = t.observe(device: Self.band(1), subject: nil, xCm: 0, yCm: 0, atMs: 0)
        #expect(t.observe(device: Self.band(2), subject: nil, xCm: 10, yCm: 0, atMs: 100 * Self.s).isEmpty)
        #expect(t.observe(device: Self.band(1), subject: nil, xCm: 5, yCm: 0, atMs: 101 * Self.s).count == 2)  // both fresh now, duration 0
    }

    @Test("a quarantined wristband silent for the set time raises wristband-silent once; a position clears it; 0 never raises")
    func silence() {
        var alarms = AlarmTracker(rules: [])
        let d = Self.band(7), minute: Int64 = 60_000
        #expect(alarms.observeSilence(device: d, subject: nil, lastHeardMs: 0, nowMs: 9 * minute, silentMs: 10 * minute) == nil)
        let raised = alarms.observeSilence(device: d, subject: nil, lastHeardMs: 0, nowMs: 12 * minute, silentMs: 10 * minute)
        #expect(raised?.state == .raised && raised?.rule == "wristband-silent" && raised?.severity == "critical" && raised?.value == "12" && raised?.unit == "min")
        #expect(alarms.observeSilence(device: d, subject: nil, lastHeardMs: 0, nowMs: 20 * minute, silentMs: 10 * minute) == nil)  // once
        #expect(alarms.isAlarming(d))
        #expect(alarms.reset(device: d, rule: AlarmTracker.silenceRule, atMs: 21 * minute)?.state == .cleared)
        #expect(alarms.observeSilence(device: d, subject: nil, lastHeardMs: 0, nowMs: 99 * minute, silentMs: 0) == nil)
    }

    @Test("a geofence breach raises once, clears a metre inside, and carries the distance, not the position")
    func fence() {
        var alarms = AlarmTracker(rules: [])
        let fence = Geofence(xCm: 0, yCm: 0, radiusCm: 1_000, salt: [UInt8](repeating: 1, count: 32))
        let d = Self.band(9)
        #expect(alarms.observeFence((500, 0), atMs: 1, device: d, subject: nil, fence: fence) == nil)
        let out = alarms.observeFence((0, 3_000), atMs: 2, device: d, subject: nil, fence: fence)
        #expect(out?.state == .raised && out?.rule == "geofence-breach" && out?.value == "20" && out?.unit == "m")
        #expect(alarms.observeFence((0, 4_000), atMs: 3, device: d, subject: nil, fence: fence) == nil)
        #expect(alarms.observeFence((0, 950), atMs: 4, device: d, subject: nil, fence: fence) == nil)  // inside, but not by a metre
        #expect(alarms.observeFence((0, 800), atMs: 5, device: d, subject: nil, fence: fence)?.state == .cleared)
    }
}
