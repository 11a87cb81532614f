import ArgumentParser
import Foundation
import IoMTCore

@main
struct IoMTChainCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iomtchain",
        abstract: "IoMTChain: a permissioned blockchain for the Internet of Medical Things.",
        subcommands: [NodeCommand.self, KeysCommand.self, TxCommand.self, BlockCommand.self, StateCommand.self,
                      ChainCommand.self, ProofCommand.self, BenchCommand.self, SimulateCommand.self, LightCommand.self,
                      DevnetCommand.self, BenchConsortiumCommand.self, GatewayCommand.self, DeviceCommand.self, VerifyReadingCommand.self, BlobCommand.self,
                      PatientCommand.self, AccessCommand.self, DataCommand.self, AuditCommand.self, BenchConsentCommand.self,
                      DatasetCommand.self, CreditsCommand.self, BatchCommand.self, BenchSupplyChainCommand.self, TracingCommand.self, BenchExposureCommand.self, DemoCommand.self, QuarantineCommand.self,
                      VenueCommand.self, OutbreakCommand.self, AssetCommand.self, MonitorCommand.self])
}

/// An error the CLI prints as one line and exits non-zero with.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func printJSON<T: Encodable>(_ v: T) throws {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try enc.encode(v), as: UTF8.self))
}

func readInput(_ path: String?) throws -> Data {
    if let path, path != "-" { return try Data(contentsOf: URL(fileURLWithPath: path)) }
    return FileHandle.standardInput.readDataToEndOfFile()
}

func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
