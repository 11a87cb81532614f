import Foundation
import Testing

@Suite("OpenAPI document")
struct OpenAPITests {
    let specPath = packageRoot + "/Sources/IoMTAPI/openapi.yaml"

    @Test("documents every route the router serves")
    func everyRouteDocumented() throws {
        let spec = try String(contentsOfFile: specPath, encoding: .utf8)
        let folder = packageRoot + "/Sources/IoMTAPI"
        let api = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".swift") }
            .map { try String(contentsOfFile: folder + "/" + $0, encoding: .utf8) }.joined(separator: "\n")
        let routes = api.split(separator: "\n").compactMap { line -> String? in
            guard let r = line.range(of: #"router\.(get|post|put)\("([^"]+)""#, options: .regularExpression) else { return nil }
            let path = line[r].split(separator: "\"")[1]
            // Hummingbird's ":name" is OpenAPI's "{name}".
            return path.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
        }
        #expect(routes.count >= 17)
        // The web console's pages (/console/…) are HTML for people, documented in docs/console.md.
        for route in routes where !route.hasPrefix("console") {
            #expect(spec.contains("\n  /\(route):") || spec.contains("\n  \"/\(route)\":"), "route /\(route) missing from openapi.yaml")
        }
    }

    static var validatorAvailable: Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import openapi_spec_validator"]
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    @Test("is a valid OpenAPI 3.1 document", .enabled(if: OpenAPITests.validatorAvailable, "openapi-spec-validator not installed (scripts/setup.sh installs it)"))
    func valid() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-m", "openapi_spec_validator", specPath]
        let log = NSTemporaryDirectory() + "openapi-\(UUID().uuidString.prefix(6)).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardError = p.standardOutput
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }
}
