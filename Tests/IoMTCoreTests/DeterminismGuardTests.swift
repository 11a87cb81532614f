import Foundation
import Testing

/// The core and the contracts must compute the same bytes on every node: no clock, no randomness,
/// no environment, no file system. This scans their sources for the usual ways those creep in.
@Suite("Determinism guard")
struct DeterminismGuardTests {
    static let forbidden = ["Date()", "UUID()", ".random", "DispatchTime", "ProcessInfo", "FileManager"]

    /// The package root: this file is <root>/Tests/IoMTCoreTests/DeterminismGuardTests.swift.
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func swiftFiles(under relative: String) throws -> [URL] {
        let dir = packageRoot.appendingPathComponent(relative, isDirectory: true).resolvingSymlinksInPath()
        guard let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: dir.path])
        }
        return e.compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }.sorted { $0.path < $1.path }
    }

    static func violations(in text: String) -> [String] {
        forbidden.filter { text.contains($0) }
    }

    @Test("the scanner flags each forbidden construct")
    func scannerWorks() {
        for f in Self.forbidden { #expect(Self.violations(in: "let x = \(f)") == [f]) }
        #expect(Self.violations(in: "let h = Hash.sha256(bytes) // deterministic").isEmpty)
    }

    @Test("IoMTCore, IoMTContracts and IoMTEdge use no clock, randomness, environment or file system", arguments: ["Sources/IoMTCore", "Sources/IoMTContracts", "Sources/IoMTEdge"])
    func noNondeterminism(_ dir: String) throws {
        let files = try Self.swiftFiles(under: dir)
        // Guard against a path mistake silently scanning nothing.
        #expect(files.count >= (dir.hasSuffix("IoMTCore") ? 8 : 3), "found only \(files.map(\.lastPathComponent)) in \(dir)")
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            let found = Self.violations(in: text)
            #expect(found.isEmpty, "\(dir)/\(file.lastPathComponent) contains \(found)")
        }
    }
}
