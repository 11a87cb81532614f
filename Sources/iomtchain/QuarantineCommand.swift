import ArgumentParser
import Foundation
import IoMTCore
import IoMTGateway

/// `iomtchain quarantine`: a public-health officer orders a quarantine (the chain gets the order and
/// a commitment to the geofence; the wristband's gateway gets the fence) or lifts one.
struct QuarantineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quarantine", abstract: "Order, lift or show a quarantine (a wristband's geofence, checked at the gateway); the breaches.",
        subcommands: [Order.self, Lift.self, Show.self, Breaches.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A quarantine order as the chain has it, and whether it is in force.")
        @OptionGroup var node: BatchCommand.NodeOption
        @Option(help: "The order id.") var order: String
        func run() async throws {
            guard let o = Hash(hex: order) else { throw CLIError("--order is 64 hex digits") }
            try await BatchCommand.get(node.node, "/v1/quarantine/\(o.hex)")
        }
    }

    struct Breaches: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The chain's log of quarantine alerts (raised and cleared; device, time — never a position), for the disease-control centre.")
        @OptionGroup var node: BatchCommand.NodeOption
        @Option(help: "geofence-breach or wristband-silent.") var rule = "geofence-breach"
        @Option(help: "After this alert-log number.") var after: UInt64 = 0
        @Option(help: "Wait up to this long for one (ms).") var waitMs = 0
        func run() async throws {
            guard ["geofence-breach", "wristband-silent"].contains(rule) else { throw CLIError("--rule is geofence-breach or wristband-silent") }
            try await BatchCommand.get(node.node, "/v1/alert-log?rule=\(rule)&after=\(after)&waitMs=\(min(max(waitMs, 0), 60_000))")
        }
    }

    struct Order: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Order a quarantine: the order and the fence's commitment on-chain, the fence to the wristband's gateway; prints the order id.")
        @Option(help: "Public-health officer key file.") var key: String
        @OptionGroup var node: BatchCommand.NodeOption
        @Option(help: "The gateway the wristband reports to.") var gateway: String
        @Option(help: "The patient's pseudonym.") var subject: String
        @Option(help: "The wristband bound to the patient.") var device: String
        @Option(help: "The fence's centre and radius, metres, in the site's frame.") var x: Double
        @Option var y: Double
        @Option var radius: Double
        @Option(help: "Days.") var days: Int64 = 14
        func run() async throws {
            guard let s = Hash(hex: subject), let d = Address(hex: device) else { throw CLIError("--subject is 64 hex digits, --device 40") }
            var rng = SystemRandomNumberGenerator()
            let salt = Hex.encode((0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })
            let order = Hash(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })!
            let request = Gateway.FenceRequest(order: order, xM: x, yM: y, radiusM: radius, salt: salt)
            guard let fence = request.fence(), (1...60).contains(days) else { throw CLIError("--radius must be > 0 and --days 1…60") }
            let now = nowMs()
            try await submitAndWait(.orderQuarantine(OrderQuarantine(orderID: order, subject: s, device: d, fenceCommitment: fence.commitment, fromMs: now, untilMs: now + days * 86_400_000)),
                                    keyPath: key, node: node.node)
            let client = NodeClient(base: gateway)
            let r = try await client.request("POST", "/v1/quarantine/fences", body: try JSONEncoder().encode(request))
            guard r.status == 201 else { throw CLIError("the order \(order) is on the chain, but the gateway refused the fence: \(client.problemText(r))") }
            FileHandle.standardError.write(Data("order \(order)\n".utf8))
        }
    }

    struct Lift: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lift a quarantine before its term.")
        @Option(help: "Public-health officer key file (of the ordering agency).") var key: String
        @OptionGroup var node: BatchCommand.NodeOption
        @Option(help: "The order id.") var order: String
        func run() async throws {
            guard let o = Hash(hex: order) else { throw CLIError("--order is 64 hex digits") }
            try await submitAndWait(.liftQuarantine(LiftQuarantine(orderID: o)), keyPath: key, node: node.node)
        }
    }
}
