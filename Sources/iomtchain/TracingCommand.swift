import ArgumentParser
import Foundation
import IoMTCore
import IoMTEdge
import IoMTGateway

/// `iomtchain tracing`: contact tracing from the command line (docs/contact-tracing.md) — a
/// person's phone (secret, check-in, release, exposure check), a venue's admin and a medical centre.
struct TracingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tracing", abstract: "Contact tracing: venues, check-ins with rotating tokens, positive cases, the exposure check.",
        subcommands: [NewSecret.self, RegisterVenue.self, CheckIn.self, Release.self, ReportPositive.self, Exposures.self])

    /// A person's secret: 32 bytes, hex, in a file only they (their phone) read.
    static func secret(_ path: String) throws -> [UInt8] {
        guard let bytes = Hex.decode(String(decoding: try readInput(path), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)), bytes.count == 32 else {
            throw CLIError("\(path): a tracing secret is 64 hex digits (iomtchain tracing new-secret)")
        }
        return bytes
    }

    struct NewSecret: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "new-secret", abstract: "A person's tracing secret (the phone's): tokens derive from it and it never leaves the device.")
        @Option(help: "Where to write it (mode 0600).") var out: String
        func run() throws {
            var rng = SystemRandomNumberGenerator()
            let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
            guard FileManager.default.createFile(atPath: out, contents: Data(Hex.encode(bytes).utf8), attributes: [.posixPermissions: 0o600]) else { throw CLIError("cannot write \(out)") }
        }
    }

    struct RegisterVenue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "register-venue", abstract: "A member-admin registers a venue of its organisation.")
        @Option(help: "Member-admin key file.") var key: String
        @OptionGroup var node: BatchCommand.NodeOption
        @Option(help: "Venue id (lower-case letters, digits, dashes).") var venue: String
        @Option(help: "Persons allowed at once.") var capacity: UInt32
        func run() async throws { try await submitAndWait(.registerVenue(IoMTCore.RegisterVenue(venue: venue, capacity: capacity)), keyPath: key, node: node.node) }
    }

    struct CheckIn: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "check-in", abstract: "Check in at a venue through its gateway with the current token (what the phone does at the door).")
        @Option(help: "The venue's gateway URL.") var gateway: String
        @Option(help: "Venue id.") var venue: String
        @Option(help: "The person's secret file.") var secret: String
        @Option(help: "The stay (minutes).") var minutes = 60
        func run() async throws {
            let s = try TracingCommand.secret(secret)
            let interval = CheckInToken.interval(atMs: nowMs())
            let body = try JSONEncoder().encode(Gateway.CheckInRequest(venue: venue, token: Hex.encode(CheckInToken.token(secret: s, interval: interval)), interval: interval, minutes: minutes))
            let client = NodeClient(base: gateway)
            let r = try await client.request("POST", "/v1/checkins", body: body)
            guard r.status == 201 else { throw CLIError(client.problemText(r)) }
            print(String(decoding: r.body, as: UTF8.self))
        }
    }

    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The token hashes of a window (what a person gives the medical centre after a positive test; the tokens themselves stay on the phone).")
        @Option(help: "The person's secret file.") var secret: String
        @Option(help: "Days back from now (the infectious window).") var days: Int64 = 14
        func run() throws {
            guard (1...30).contains(days) else { throw CLIError("--days is 1…30") }
            let now = nowMs()
            let hashes = CheckInToken.hashes(secret: try TracingCommand.secret(secret), fromMs: now - days * 86_400_000, toMs: now)
            print(String(decoding: try JSONEncoder().encode(ReleasedTokens(fromMs: now - days * 86_400_000, toMs: now, tokenHashes: hashes)), as: UTF8.self))
        }
    }

    struct ReleasedTokens: Codable { var fromMs: Int64; var toMs: Int64; var tokenHashes: [Hash] }

    struct ReportPositive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "report-positive", abstract: "An attested practitioner of a medical centre records a positive case with the token hashes the person released.")
        @Option(help: "Practitioner key file.") var key: String
        @OptionGroup var node: BatchCommand.NodeOption
        @Option(help: "The person's release (the output of tracing release).") var tokens: String
        func run() async throws {
            let released = try JSONDecoder().decode(ReleasedTokens.self, from: try readInput(tokens))
            var rng = SystemRandomNumberGenerator()
            let caseID = Hash(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })!
            FileHandle.standardError.write(Data("case \(caseID)\n".utf8))
            try await submitAndWait(.reportPositive(IoMTCore.ReportPositive(caseID: caseID, tokenHashes: released.tokenHashes, fromMs: released.fromMs, toMs: released.toMs)),
                                    keyPath: key, node: node.node)
        }
    }

    struct Exposures: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Read the chain's exposure feed and recognise this person's token hashes (exits 3 when exposed).")
        @OptionGroup var node: BatchCommand.NodeOption
        @Option(help: "The person's secret file.") var secret: String
        @Option(help: "Days back to check.") var days: Int64 = 14
        func run() async throws {
            guard (1...30).contains(days) else { throw CLIError("--days is 1…30") }
            let now = nowMs()
            let mine = Set(CheckInToken.hashes(secret: try TracingCommand.secret(secret), fromMs: now - days * 86_400_000, toMs: now))
            let client = NodeClient(base: node.node)
            struct Page: Decodable { var exposures: [ExposureRecord]; var last: UInt64; var count: UInt64 }
            var after: UInt64 = 0, hits: [[String: String]] = []
            while true {
                let page = try await client.get("/v1/exposures?after=\(after)&limit=1000", as: Page.self)
                for e in page.exposures where e.record.exposed.contains(where: mine.contains) {
                    hits.append(["venue": e.record.venue, "case": e.record.caseID.hex, "recordedAtMs": "\(e.atMs)", "exposure": "\(e.n)"])
                }
                guard page.last > after, page.last < page.count else { break }
                after = page.last
            }
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys]
            print(String(decoding: try e.encode(["exposed": hits.isEmpty ? "no" : "yes"]), as: UTF8.self))
            for h in hits { print(String(decoding: try e.encode(h), as: UTF8.self)) }
            if !hits.isEmpty { throw ExitCode(3) }
        }
    }
}
