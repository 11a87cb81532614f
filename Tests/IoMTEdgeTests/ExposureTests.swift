import IoMTCore
import IoMTEdge
import Testing

@Suite("exposure matching and check-in tokens")
struct ExposureTests {
    static let minute: Int64 = 60_000
    static func token(_ n: UInt8) -> Hash { Hash.sha256([n]) }
    static func c(_ n: UInt8, _ venue: String, _ inMin: Int64, _ outMin: Int64) -> CheckIn { CheckIn(tokenHash: token(n), venue: venue, inMs: inMin * minute, outMs: outMin * minute) }

    @Test("a check-in is exposed when it overlaps one of the case's at the same venue by at least the minimum; the case's own and other venues' are not")
    func overlaps() {
        let checkIns = [
            Self.c(1, "library", 600, 660),   // the case: 10:00–11:00 at the library
            Self.c(2, "library", 630, 690),   // 30 min overlap: exposed
            Self.c(3, "library", 650, 720),   // 10 min: not with a 15-minute minimum
            Self.c(4, "library", 540, 601),   // 1 min: not
            Self.c(5, "cafe", 600, 660),      // another venue: not
            Self.c(6, "library", 100, 900),   // a long stay across the whole visit: exposed
            Self.c(7, "library", 660, 700),   // arrived as the case left: not
            Self.c(8, "cafe", 700, 760),      // the case's second visit (token 8 is the case's too)
            Self.c(9, "cafe", 720, 800),      // 40 min with the second visit: exposed
        ]
        let m = ExposureMatcher(checkIns)
        let (visits, exposed) = m.match(caseTokens: [Self.token(1), Self.token(8), Self.token(99)], minOverlapMs: 15 * Self.minute)
        #expect(visits.map(\.tokenHash) == [Self.token(1), Self.token(8)])
        #expect(exposed["library"] == [Self.token(2), Self.token(6)].sorted())
        #expect(exposed["cafe"] == [Self.token(9)])
        // With no minimum, any overlap counts (touching does not).
        let any = m.match(caseTokens: [Self.token(1)], minOverlapMs: 1).exposed["library"] ?? []
        #expect(Set(any) == Set([2, 3, 4, 6].map(Self.token)))
        // A case with no check-ins here exposes nobody.
        #expect(m.match(caseTokens: [Self.token(42)], minOverlapMs: 0).visits.isEmpty)
    }

    @Test("tokens rotate every 15 minutes, differ between secrets, and the released hashes cover the window")
    func tokens() {
        let a = [UInt8](repeating: 1, count: 32), b = [UInt8](repeating: 2, count: 32)
        #expect(CheckInToken.token(secret: a, interval: 100) != CheckInToken.token(secret: a, interval: 101))
        #expect(CheckInToken.token(secret: a, interval: 100) != CheckInToken.token(secret: b, interval: 100))
        #expect(CheckInToken.token(secret: a, interval: 100).count == 16)
        #expect(CheckInToken.interval(atMs: 15 * 60_000 * 100 + 5) == 100 && CheckInToken.interval(atMs: -1) == -1)
        let hashes = CheckInToken.hashes(secret: a, fromMs: 15 * 60_000 * 100, toMs: 15 * 60_000 * 104 - 1)
        #expect(hashes == (100...103).map { CheckInToken.hash(CheckInToken.token(secret: a, interval: $0)) })
        #expect(CheckInToken.hashes(secret: a, fromMs: 10, toMs: 5).isEmpty)
    }
}
