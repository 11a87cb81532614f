import ArgumentParser
import Foundation
import IoMTSimulation

/// `iomtchain simulate`: runs the deterministic consortium simulation (docs/consensus.md, "Simulator")
/// over many seeds; a failing seed is printed with the command that replays it exactly.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run the deterministic BFT consensus simulation over many seeds, or replay one seed verbosely; `simulate devices` drives virtual devices against a gateway.",
        subcommands: [SimulateDevicesCommand.self])

    @Option(help: "How many seeds to run.") var seeds: Int = 100
    @Option(help: "First seed.") var start: UInt64 = 1
    @Option(help: "Validators per consortium (n = 3f+1: 4, 7, ...).") var validators: Int = 4
    @Option(help: "Heights every honest validator must decide after the faults heal.") var heights: Int = 3
    @Option(help: "Replay this one seed and print its full trace.") var seed: UInt64?

    func validate() throws {
        guard (1...31).contains(validators) else { throw ValidationError("--validators must be between 1 and 31") }
        guard heights >= 1 else { throw ValidationError("--heights must be at least 1") }
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
    }

    func run() throws {
        if let seed {
            let report = Simulation.run(seed: seed, options: SimulationOptions(validators: validators, heights: heights, verbose: true))
            for line in report.trace { print(line) }
            print(summary(report))
            if !report.passed { throw ExitCode(1) }
            return
        }
        let began = DispatchTime.now().uptimeNanoseconds
        var failed = 0, steps = 0, exposed = 0, detected = 0
        for s in start..<(start + UInt64(seeds)) {
            let report = Simulation.run(seed: s, options: SimulationOptions(validators: validators, heights: heights))
            steps += report.steps
            exposed += report.exposedEquivocators
            detected += report.detectedEquivocators
            if let v = report.violation {
                failed += 1
                print("FAIL seed \(s): \(v) [\(report.scenario)] — replay: iomtchain simulate --seed \(s) --validators \(validators) --heights \(heights)")
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9
        print(String(format: "simulate: %d seeds (%llu...%llu), n=%d, K=%d: %d passed, %d failed; %d events; equivocators detected %d/%d; %.1f s",
                     seeds, start, start + UInt64(seeds) - 1, validators, heights, seeds - failed, failed, steps, detected, exposed, seconds))
        if failed > 0 { throw ExitCode(1) }
    }

    private func summary(_ r: SimulationReport) -> String {
        let outcome = r.violation.map { "FAIL: \($0)" } ?? "ok"
        return "seed \(r.seed) [\(r.scenario)]: \(outcome); \(r.steps) events, \(r.simulatedTimeMs) ms simulated, heights \(r.decidedHeights), "
            + "evidence \(r.evidenceEmitted), equivocators detected \(r.detectedEquivocators)/\(r.exposedEquivocators), trace \(r.traceHash.hex.prefix(16))"
    }
}
