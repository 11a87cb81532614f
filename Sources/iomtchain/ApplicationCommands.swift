import ArgumentParser
import Foundation
import IoMTCore

/// The applications of issue 6 §4–§7 from the command line: venues' ventilation and faults,
/// outbreak tracing, hospital assets and sterilisers, and remote monitoring. Queries print the
/// node's (or gateway's) JSON; records are signed with a key file and wait for their commit.

/// `GET path` on the node, printed.
private func show(_ node: String, _ path: String) async throws { try await BatchCommand.get(node, path) }

struct VenueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "venue", abstract: "Venues: ventilation commands and acknowledgements, fan and filter faults (docs/venues.md).",
                                                    subcommands: [Ventilation.self, Faults.self, ResolveFault.self])

    struct Ventilation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A ventilation controller's last commands, newest first, with acknowledgements.")
        @OptionGroup var node: BatchCommand.NodeOption
        @Argument(help: "The controller's device id.") var device: String
        func run() async throws {
            guard let d = Address(hex: device) else { throw CLIError("a device id is 40 hex digits") }
            try await show(node.node, "/v1/ventilation/\(d.hex)")
        }
    }

    struct Faults: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Fan and filter faults: the technicians' list.")
        @OptionGroup var node: BatchCommand.NodeOption
        @Flag(help: "Only the open ones.") var open = false
        @Option(help: "Only this venue's.") var venue: String?
        @Option(help: "After this fault number.") var after: UInt64 = 0
        func run() async throws {
            var path = "/v1/faults?after=\(after)" + (open ? "&open=true" : "")
            if let venue { path += "&venue=\(percentEncoded(venue))" }
            try await show(node.node, path)
        }
    }

    struct ResolveFault: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "resolve-fault", abstract: "Close a fault after the repair (a member-admin of the controller's organisation).")
        @Option(help: "Member-admin key file.") var key: String
        @OptionGroup var node: BatchCommand.NodeOption
        @Option(help: "The fault's number.") var n: UInt64
        func run() async throws { try await submitAndWait(.resolveFault(IoMTCore.ResolveFault(n: n)), keyPath: key, node: node.node) }
    }
}

struct OutbreakCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "outbreak", abstract: "Outbreak-origin tracing: the grid of fevers and test results, and recording a result (docs/outbreak.md).",
                                                    subcommands: [Grid.self, RecordTest.self])

    struct Grid: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Fevers and test results by place and hour over the last hours.")
        @OptionGroup var node: BatchCommand.NodeOption
        @Option(help: "Only this place.") var place: String?
        @Option(help: "Hours back from now (at most 744).") var hours: Int64 = 24
        func run() async throws {
            guard (1...744).contains(hours) else { throw CLIError("--hours is 1…744") }
            let now = nowMs()
            var path = "/v1/outbreak?fromMs=\(now - hours * 3_600_000)&toMs=\(now)"
            if let place { path += "&place=\(percentEncoded(place))" }
            try await show(node.node, path)
        }
    }

    struct RecordTest: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "record-test", abstract: "An attested practitioner of a laboratory, hospital or clinic records a nucleic-acid test result.")
        @Option(help: "Practitioner key file.") var key: String
        @OptionGroup var node: BatchCommand.NodeOption
        @Option(help: "Place code of the sampling (a district, a ward).") var place: String
        @Option(help: "positive, negative or inconclusive.") var outcome: String
        @Option(help: "LOINC assay.") var assay = "loinc:94500-6"
        @Option(help: "When the sample was taken (ms; default now), recorded to the hour.") var sampledAtMs: Int64?
        func run() async throws {
            var rng = SystemRandomNumberGenerator()
            let id = Hash(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })!
            let hour = (sampledAtMs ?? nowMs()) / 3_600_000 * 3_600_000
            FileHandle.standardError.write(Data("result \(id)\n".utf8))
            try await submitAndWait(.recordTestResult(RecordTestResult(resultID: id, place: place, sampledAtMs: hour, assay: assay, outcome: outcome)), keyPath: key, node: node.node)
        }
    }
}

struct AssetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "asset", abstract: "Hospital assets by RFID tag, and sterilisers' cycles (docs/hospital.md).",
                                                    subcommands: [Register.self, Status.self, Show.self, List.self, Cycles.self])

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A member-admin registers an asset under its RFID tag.")
        @Option(help: "Member-admin key file.") var key: String
        @OptionGroup var node: BatchCommand.NodeOption
        @Option(help: "RFID tag (EPC hex, barcode).") var tag: String
        @Option(help: "\(AssetKinds.kinds.joined(separator: ", ")).") var kind: String
        @Option(help: "Home place code.") var home: String
        func run() async throws { try await submitAndWait(.registerAsset(RegisterAsset(tag: tag, kind: kind, home: home)), keyPath: key, node: node.node) }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set an asset's status (staff of its organisation); a malfunction puts it out of service.")
        @Option(help: "Practitioner or member-admin key file.") var key: String
        @OptionGroup var node: BatchCommand.NodeOption
        @Option(help: "RFID tag.") var tag: String
        @Option(help: "\(AssetKinds.statuses.joined(separator: ", ")).") var status: String
        @Option(help: "\(AssetKinds.malfunctions.joined(separator: ", ")).") var malfunction: String?
        func run() async throws { try await submitAndWait(.setAssetStatus(SetAssetStatus(tag: tag, status: status, malfunction: malfunction)), keyPath: key, node: node.node) }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One asset.")
        @OptionGroup var node: BatchCommand.NodeOption
        @Argument(help: "RFID tag.") var tag: String
        func run() async throws { try await show(node.node, "/v1/assets/\(percentEncoded(tag))") }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An organisation's assets, by kind and status.")
        @OptionGroup var node: BatchCommand.NodeOption
        @Option(help: "Organisation id.") var organisation: String
        @Option(help: "Kind.") var kind: String?
        @Option(help: "Status.") var status: String?
        func run() async throws {
            var path = "/v1/assets?organisation=\(percentEncoded(organisation))"
            if let kind { path += "&kind=\(percentEncoded(kind))" }
            if let status { path += "&status=\(percentEncoded(status))" }
            try await show(node.node, path)
        }
    }

    struct Cycles: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A steriliser's recorded cycles, newest first, and how many are missing.")
        @OptionGroup var node: BatchCommand.NodeOption
        @Argument(help: "The steriliser's device id.") var device: String
        func run() async throws {
            guard let d = Address(hex: device) else { throw CLIError("a device id is 40 hex digits") }
            try await show(node.node, "/v1/sterilisers/\(d.hex)/cycles")
        }
    }
}

struct MonitorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "monitor", abstract: "Remote monitoring: a patient's timeline (vitals, alerts, acknowledgements) and acknowledging an alert.",
                                                    subcommands: [Timeline.self, Ack.self, Alerts.self])

    struct Alerts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The chain's alert log: every alert the gateways recorded, raised and cleared (device, rule, severity, time; no value).")
        @OptionGroup var node: BatchCommand.NodeOption
        @Option(help: "Only this rule (e.g. spo2-low).") var rule: String?
        @Option(help: "Only this device.") var device: String?
        @Option(help: "After this alert-log number.") var after: UInt64 = 0
        func run() async throws {
            var path = "/v1/alert-log?after=\(after)"
            if let rule { path += "&rule=\(percentEncoded(rule))" }
            if let device {
                guard let d = Address(hex: device) else { throw CLIError("--device is 40 hex digits") }
                path += "&device=\(d.hex)"
            }
            try await show(node.node, path)
        }
    }

    struct Timeline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A patient's timeline from the gateway: a signed, consented and audited read (treatment for doctors, family-care for family).")
        @Option(help: "The reader's key file.") var key: String
        @Option(help: "Gateway URL.") var gateway: String
        @OptionGroup var node: BatchCommand.NodeOption
        @Option(help: "The patient's pseudonym.") var subject: String
        @Option(help: "treatment or family-care.") var purpose = "treatment"
        @Option(help: "Hours back from now (default: everything).") var hours: Int64?
        func run() async throws {
            guard let s = Hash(hex: subject) else { throw CLIError("--subject is 64 hex digits") }
            let now = nowMs()
            let window = hours.map { "&from=\(now - $0 * 3_600_000)&to=\(now)" } ?? ""
            let r = try await signedGET(gateway, "/v1/patients/\(s.hex)/timeline?purpose=\(percentEncoded(purpose))" + window,
                                        key: try KeyFile.load(path: key), chainID: try await chainID(of: node.node))
            guard r.status == 200 else { throw CLIError(NodeClient(base: gateway).problemText(r)) }
            print(String(decoding: r.body, as: UTF8.self))
        }
    }

    struct Ack: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Acknowledge an alert (a practitioner the patient's consent lets read their vital signs for treatment).")
        @Option(help: "Practitioner key file.") var key: String
        @OptionGroup var node: BatchCommand.NodeOption
        @Option(help: "The device that raised it.") var device: String
        @Option(help: "The alarm rule (e.g. spo2-low).") var rule: String
        @Option(help: "The alert's time (its effectiveMs).") var raisedAtMs: Int64
        func run() async throws {
            guard let d = Address(hex: device) else { throw CLIError("--device is 40 hex digits") }
            try await submitAndWait(.acknowledgeAlert(AcknowledgeAlert(device: d, rule: rule, raisedAtMs: raisedAtMs)), keyPath: key, node: node.node)
        }
    }
}
