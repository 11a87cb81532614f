import ArgumentParser
import Dispatch
import Foundation
import IoMTCore
import IoMTEdge
import IoMTGateway
import IoMTSimulation

/// `iomtchain bench-exposure`: exposure matching over a day of check-ins (issue 6's goal: 100,000
/// check-ins a day matched in under 1 s). A synthetic day (venues of uneven popularity, stays of
/// 15–180 minutes) is matched against positive cases, in memory over the whole day
/// (`ExposureMatcher`) and the way a venue gateway does it per case: the case's visits from its
/// SQLite store by token hash, the check-ins at those venues that could overlap them, then the
/// same matcher.
struct BenchExposureCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-exposure", abstract: "Time exposure matching over a day of check-ins (in memory and through a gateway's SQLite store).")
    @Option(help: "Check-ins in the day.") var checkIns = 100_000
    @Option(help: "Venues.") var venues = 1_000
    @Option(help: "Positive cases matched.") var cases = 100
    @Option(help: "Timed repetitions of the store path.") var repetitions = 21
    @Option(help: "Seed.") var seed: UInt64 = 1

    func run() async throws {
        var rng = SimulationRNG(seed: seed)
        let day: Int64 = 1_800_000_000_000 / 86_400_000 * 86_400_000
        let minute: Int64 = 60_000
        // Popularity: venue index u² skews arrivals toward the first venues.
        var list: [CheckIn] = []
        list.reserveCapacity(checkIns)
        for _ in 0..<checkIns {
            let u = rng.unit()
            let venue = "venue-\(Int(Double(venues) * u * u))"
            let inMs = day + 7 * 60 * minute + Int64(rng.below(16 * 60)) * minute
            list.append(CheckIn(tokenHash: Hash(bytes: rng.bytes(32))!, venue: venue, inMs: inMs, outMs: inMs + Int64(rng.between(15, 180)) * minute))
        }
        // A case: 4 of the day's check-ins are its own, among 96 released token hashes.
        var caseTokens: [[Hash]] = []
        for _ in 0..<cases {
            var tokens = (0..<4).map { _ in list[rng.index(list.count)].tokenHash }
            while tokens.count < 96 { tokens.append(Hash(bytes: rng.bytes(32))!) }
            caseTokens.append(tokens)
        }
        func ms(_ t: DispatchTime) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e6 }
        print("\(checkIns) check-ins at \(venues) venues over one day; \(cases) cases of 96 released token hashes (4 of them checked in)")

        var t = DispatchTime.now()
        let matcher = ExposureMatcher(list)
        let indexMs = ms(t)
        var perCase: [Double] = [], exposedTotal = 0
        t = DispatchTime.now()
        for tokens in caseTokens {
            let c = DispatchTime.now()
            exposedTotal += matcher.match(caseTokens: tokens, minOverlapMs: 15 * minute).exposed.values.reduce(0) { $0 + $1.count }
            perCase.append(ms(c))
        }
        let allMs = ms(t)
        let p = Percentiles(perCase)
        print(String(format: "in memory: index %.1f ms; one case p50 %.3f ms, p99 %.3f ms; all %d cases %.1f ms (index + cases %.1f ms); %d exposures found",
                     indexMs, p.p50, p.p99, cases, allMs, indexMs + allMs, exposedTotal))
        fflush(nil)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("iomt-bench-exposure-\(ProcessInfo.processInfo.processIdentifier)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try GatewayStore(path: dir + "/gateway.sqlite")
        t = DispatchTime.now()
        for chunk in stride(from: 0, to: list.count, by: 10_000) { try store.addCheckIns(Array(list[chunk..<min(list.count, chunk + 10_000)])) }
        try store.sealCheckIns(nowMs: Int64.max / 2)
        print(String(format: "store: %d check-ins written and batched in %.0f ms", checkIns, ms(t)))
        var storeSamples: [Double] = []
        for i in 0..<repetitions {
            let tokens = caseTokens[i % caseTokens.count]
            let c = DispatchTime.now()
            // What the gateway does per case: its visits by token hash, the check-ins at those venues
            // that could overlap them, index, match.
            let visits = try store.checkIns(tokenHashes: tokens)
            var candidates: [CheckIn] = []
            for v in visits { candidates += try store.checkIns(venue: v.checkIn.venue, arrivedFrom: v.checkIn.inMs - CheckIn.maxStayMs, before: v.checkIn.outMs).map(\.checkIn) }
            let found = ExposureMatcher(candidates).match(caseTokens: tokens, minOverlapMs: 15 * minute)
            storeSamples.append(ms(c))
            guard found.visits.count >= 1, found.exposed == matcher.match(caseTokens: tokens, minOverlapMs: 15 * minute).exposed else {
                throw CLIError("the gateway path found other exposures than the whole day's index")
            }
        }
        let s = Percentiles(storeSamples)
        print(String(format: "gateway path (SQLite: visits by token hash, check-ins at those venues, index, match), one case: p50 %.1f ms, p99 %.1f ms over %d runs", s.p50, s.p99, storeSamples.count))
    }
}
