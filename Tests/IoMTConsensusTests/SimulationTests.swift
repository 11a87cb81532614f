import Foundation
import IoMTConsensus
import IoMTCore
import IoMTSimulation
import Testing

@Suite("Deterministic cluster simulation")
struct SimulationTests {
    /// 300 seeds in six chunks (Swift Testing runs the chunks in parallel on both cores).
    static let sweepChunks = Array(0..<6)
    static let seedsPerChunk: UInt64 = 50
    static let sweepHeights = 2

    @Test("seed sweep: every invariant holds across all fault scenarios", arguments: sweepChunks)
    func seedSweep(chunk: Int) {
        let first = UInt64(chunk) * Self.seedsPerChunk + 1
        for seed in first..<(first + Self.seedsPerChunk) {
            let r = Simulation.run(seed: seed, options: SimulationOptions(validators: 4, heights: Self.sweepHeights))
            #expect(r.passed, "seed \(seed) [\(r.scenario)]: \(r.violation.map(String.init(describing:)) ?? "") — replay: iomtchain simulate --seed \(seed) --heights \(Self.sweepHeights)")
        }
    }

    @Test("seven validators (f = 2) on a few seeds", arguments: [UInt64(1), 2, 3, 4, 5, 6])
    func sevenValidators(seed: UInt64) {
        let r = Simulation.run(seed: seed, options: SimulationOptions(validators: 7, heights: 2))
        #expect(r.passed, "seed \(seed) [\(r.scenario)]: \(r.violation.map(String.init(describing:)) ?? "")")
    }

    @Test("the same seed replays exactly: equal trace hashes; other seeds differ")
    func reproducible() {
        let a = Simulation.run(seed: 42, options: SimulationOptions(heights: 2))
        let b = Simulation.run(seed: 42, options: SimulationOptions(heights: 2))
        let c = Simulation.run(seed: 43, options: SimulationOptions(heights: 2))
        #expect(a.traceHash == b.traceHash)
        #expect(a.steps == b.steps && a.decidedHeights == b.decidedHeights && a.simulatedTimeMs == b.simulatedTimeMs)
        #expect(a.traceHash != c.traceHash)
        let verbose = Simulation.run(seed: 42, options: SimulationOptions(heights: 2, verbose: true))
        #expect(verbose.traceHash == a.traceHash, "verbose tracing does not change the run")
        #expect(!verbose.trace.isEmpty)
    }

    @Test("the seeds cover every fault and every Byzantine behaviour")
    func scenarioCoverage() {
        var seen = Set<String>()
        for seed in UInt64(1)...300 {
            let s = Simulation.run(seed: seed, options: SimulationOptions(heights: 1, maxEvents: 1)).scenario
            if s.lossRate > 0 { seen.insert("loss") }
            if s.delayMaxMs > Scenario.deltaMs { seen.insert("delay") }
            if s.duplicationRate > 0 { seen.insert("duplication") }
            if s.reorderRate > 0 { seen.insert("reorder") }
            if !s.partitions.isEmpty { seen.insert("partition") }
            if !s.crashes.isEmpty { seen.insert("crash") }
            if s.clockRates.contains(where: { $0 != 1 }) { seen.insert("skew") }
            if s.powers.contains(where: { $0 != 1 }) { seen.insert("weighted") }
            for b in s.byzantine.values { seen.insert(b.rawValue) }
            if s.faultNames.isEmpty { seen.insert("none") }
        }
        let faults: Set<String> = ["loss", "delay", "duplication", "reorder", "partition", "crash", "skew", "weighted", "none"]
        let expected = faults.union(ByzantineBehaviour.allCases.map(\.rawValue))
        #expect(seen == expected)
    }

    @Test("equivocating Byzantine validators are exposed and detected with verifying evidence")
    func equivocationDetected() {
        var exposed = 0, detected = 0
        for seed in UInt64(1)...12 {
            let r = Simulation.run(seed: seed, options: SimulationOptions(heights: 4, byzantineOverride: (1, .equivocate)))
            #expect(r.passed, "seed \(seed): \(r.violation.map(String.init(describing:)) ?? "")")
            exposed += r.exposedEquivocators
            detected += r.detectedEquivocators
        }
        #expect(exposed > 0 && detected == exposed)
    }

    @Test("the checker can fail: f+1 colluding equivocators break agreement on some seed")
    func brokenVariantIsCaught() {
        var agreementFailures: [UInt64] = []
        for seed in UInt64(1)...30 {
            let r = Simulation.run(seed: seed, options: SimulationOptions(validators: 4, heights: 3, byzantineOverride: (2, .equivocate)))
            if r.violation?.invariant == .agreement { agreementFailures.append(seed) }
        }
        #expect(!agreementFailures.isEmpty, "two equivocators of four never split the honest validators")
    }

    @Test("xoshiro256** is seeded deterministically and spreads values")
    func prng() {
        var a = SimulationRNG(seed: 7), b = SimulationRNG(seed: 7), c = SimulationRNG(seed: 8)
        let xs = (0..<16).map { _ in a.next() }
        #expect(xs == (0..<16).map { _ in b.next() })
        #expect(xs != (0..<16).map { _ in c.next() })
        var counts = [Int](repeating: 0, count: 4)
        for _ in 0..<4_000 { counts[a.index(4)] += 1 }
        #expect(counts.allSatisfy { $0 > 850 && $0 < 1_150 }, "\(counts)")
    }
}

/// The consensus core and the simulator must not reach for the clock, randomness or environment.
@Suite("Determinism guard (consensus)")
struct ConsensusDeterminismGuardTests {
    static let forbidden = ["Date()", "UUID()", ".random", "DispatchTime", "ProcessInfo", "FileManager", "SystemRandomNumberGenerator"]
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("IoMTConsensus and IoMTSimulation use no clock, randomness, environment or file system",
          arguments: ["Sources/IoMTConsensus", "Sources/IoMTSimulation"])
    func noNondeterminism(_ dir: String) throws {
        let url = Self.packageRoot.appendingPathComponent(dir, isDirectory: true)
        let files = try FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil).filter { $0.pathExtension == "swift" }
        #expect(files.count >= 5, "found only \(files.map(\.lastPathComponent)) in \(dir)")
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            let found = Self.forbidden.filter { text.contains($0) }
            #expect(found.isEmpty, "\(dir)/\(file.lastPathComponent) contains \(found)")
        }
        if dir.hasSuffix("IoMTConsensus") {
            for file in files { #expect(!(try String(contentsOf: file, encoding: .utf8)).contains("import Foundation"), "\(file.lastPathComponent)") }
        }
    }
}
