import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `iomtchain demo` as a new user runs it (issue 6 §8, and the scenario of §1 and §2 on a real
/// 4-validator devnet with a gateway and the simulator, each its own process): the story plays to
/// the end, then Ctrl-C stops every process it started.
@Suite("iomtchain demo")
struct DemoTests {
    /// Processes whose command line names `folder` (the demo's children all do).
    static func processes(naming folder: String) -> [Int32] {
        let me = getpid()
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }.filter { pid in
            guard pid != me, let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(folder)
        }
    }

    @Test("plays monitoring, the supply chain and contact tracing on a 4-validator devnet, then stops every process on Ctrl-C", .timeLimit(.minutes(4)))
    func story() async throws {
        let dir = temporaryFolder() + "/demo"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let logPath = dir + ".out"
        try FileManager.default.createDirectory(atPath: (dir as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binaryPath)
        p.arguments = ["demo", "--data-dir", dir, "--simulator-seconds", "3"]
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        p.standardOutput = out
        p.standardError = out
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        var text = ""
        let deadline = Date().addingTimeInterval(200)
        while Date() < deadline, p.isRunning, !text.contains("Ctrl-C stops them all") {
            try await Task.sleep(nanoseconds: 200_000_000)
            text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        }
        #expect(text.contains("Ctrl-C stops them all"), "\(text)")
        for line in ["4 validators of iomt-devnet are up", "raised [\"spo2-low\"]", "accepted (", "the chain quarantined 4 units", "possible copied label",
                     "possible counterfeit", "public health recalled the batch", "Bob's phone reads the exposure feed: exposed", "Carol's phone reads the exposure feed: not exposed", "raised [\"geofence-breach 45m\"]", "proximity raised for 2 wearers", "1 acknowledged", "[\"overcrowded\"] raised", "set to 200 m³/h empty, then 900 m³/h; 2 acknowledgements on-chain", "1 open fault", "the grid shows 1 fever(s) and 1 positive(s)", "was read at icu-2", "1 missing cycle shows",
                     "validators hold the same block"] {
            #expect(text.contains(line), "missing: \(line)")
        }
        let running = Self.processes(naming: dir).filter { $0 != p.processIdentifier }
        #expect(running.count == 5, "4 validators and the gateway: \(running)")  // the simulator finished
        // Ctrl-C: every process it started stops, and so does it.
        kill(p.processIdentifier, SIGINT)
        let stopBy = Date().addingTimeInterval(20)
        while p.isRunning, Date() < stopBy { try await Task.sleep(nanoseconds: 100_000_000) }
        #expect(!p.isRunning)
        #expect(p.terminationStatus == 130)
        #expect(Self.processes(naming: dir).isEmpty, "left running: \(Self.processes(naming: dir))")
    }
}
