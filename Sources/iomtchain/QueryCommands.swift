import ArgumentParser
import Foundation
import IoMTCore
import IoMTNode
import IoMTStore

struct BlockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "block", abstract: "Blocks.", subcommands: [Show.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a block by height, or the latest.")
        @Argument(help: "Height, or \"latest\".") var height = "latest"
        @Option(help: "Node URL.") var node = "http://127.0.0.1:8080"

        func run() async throws {
            let client = NodeClient(base: node)
            let r = try await client.request("GET", "/v1/blocks/\(height)")
            guard (200..<300).contains(r.status) else { throw CLIError(client.problemText(r)) }
            print(String(decoding: r.body, as: UTF8.self))
        }
    }
}

struct StateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "state", abstract: "Authenticated state.", subcommands: [Show.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a state key (hex) or an account, with its proof checked against the header.")
        @Option(help: "State key in hex.") var key: String?
        @Option(help: "Account address.") var account: String?
        @Option(help: "Node URL.") var node = "http://127.0.0.1:8080"

        struct Reply: Decodable { var proof: StateProof; var header: BlockHeader }

        func run() async throws {
            let path: String
            if let account { path = "/v1/accounts/\(account)" } else if let key { path = "/v1/state/\(key)" } else { throw CLIError("give --key or --account") }
            let client = NodeClient(base: node)
            let r = try await client.request("GET", path)
            guard (200..<300).contains(r.status) else { throw CLIError(client.problemText(r)) }
            let reply = try JSONDecoder().decode(Reply.self, from: r.body)
            do { try reply.proof.verify(root: reply.header.stateRoot) } catch { throw CLIError("the node's state proof does not verify: \(error)") }
            print(String(decoding: r.body, as: UTF8.self))
        }
    }
}

struct ChainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "chain", abstract: "Whole-chain operations.", subcommands: [Verify.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replay the chain from genesis (hashes, Merkle roots, signatures, state roots); name the first bad block.")
        @Option(help: "Data folder.") var dataDir = "./data"

        func run() throws {
            let folder = DataFolder(path: dataDir)
            guard FileManager.default.fileExists(atPath: folder.ledgerPath) else { throw CLIError("no ledger at \(folder.ledgerPath)") }
            let report = try ChainVerifier.verify(store: try LedgerStore(path: folder.ledgerPath))
            try printJSON(report)
            if !report.ok { throw ExitCode(2) }
        }
    }
}

struct ProofCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "proof", abstract: "Proofs.", subcommands: [Verify.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify offline a transaction or state proof (the JSON of GET /v1/transactions/{hash}, /v1/state/{key} or /v1/accounts/{address}).",
            discussion: "Without --genesis, checks the proof against the header it carries. With --genesis, also checks the header's commit signatures against the genesis validator set.")
        @Option(help: "Proof JSON (default: stdin).") var file: String?
        @Option(help: "Genesis file: also verify the header's commit against its validators.") var genesis: String?

        struct StateReply: Decodable { var proof: StateProof; var header: BlockHeader; var commit: Commit? }

        func run() throws {
            let data = try readInput(file)
            var validators: [Validator]?
            if let genesis {
                validators = try JSONDecoder().decode(Genesis.self, from: Data(contentsOf: URL(fileURLWithPath: genesis))).validators
            }
            if let p = try? JSONDecoder().decode(TransactionProof.self, from: data) {
                do { try p.verify(validators: validators) } catch { throw CLIError("INVALID transaction proof: \(error)") }
                print("valid: transaction \(p.transaction.hash) is leaf \(p.proof.leafIndex) of block \(p.header.height) (\(p.header.hash))\(validators == nil ? "" : ", commit verified")")
                return
            }
            if let s = try? JSONDecoder().decode(StateReply.self, from: data) {
                do { try s.proof.verify(root: s.header.stateRoot) } catch { throw CLIError("INVALID state proof: \(error)") }
                if let validators {
                    guard let c = s.commit else { throw CLIError("INVALID: no commit for the header") }
                    do { try c.verify(header: s.header, validators: validators) } catch { throw CLIError("INVALID commit: \(error)") }
                }
                let what = s.proof.value.map { "present (\($0.count) bytes)" } ?? "absent"
                print("valid: key \(Hex.encode(s.proof.key)) is \(what) at block \(s.header.height) (\(s.header.hash))\(validators == nil ? "" : ", commit verified")")
                return
            }
            throw CLIError("not a transaction or state proof")
        }
    }
}
