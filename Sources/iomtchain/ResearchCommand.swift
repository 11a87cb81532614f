import ArgumentParser
import Foundation
import IoMTCore
import IoMTGateway

/// Signs a request (method, target, body) with the account key and sends it to `base`. The gateway's
/// account, which the signature names, comes from its `GET /v1/status` unless `audience` is given.
func signedSend(_ base: String, _ method: String, _ target: String, body: [UInt8], key: PrivateKey, chainID: String, audience known: Address? = nil,
                timeout: TimeInterval = 60) async throws -> NodeClient.Reply {
    struct Status: Decodable { var account: Address }
    let audience: Address
    if let known { audience = known } else { audience = try await NodeClient(base: base).get("/v1/status", as: Status.self).account }
    let headers = SignedRequest.headers(key: key, chainID: chainID, audience: audience, method: method, target: target, body: body, nowMs: nowMs(), nonce: SignedRequest.newNonce())
    do {
        let r = try await NodeLink(base: base).request(method, target, body: body.isEmpty ? nil : Data(body), headers: headers, timeout: timeout)
        return NodeClient.Reply(status: r.status, body: r.body)
    } catch {
        throw CLIError("\(error)")
    }
}

/// `iomtchain dataset`: a researcher's side of research datasets (issue 5 §7). The request itself
/// is a transaction (`tx submit --type request-dataset`); these commands show it, download its
/// rows, and ask differentially private aggregate questions of it.
struct DatasetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataset", abstract: "Show a research dataset, download its pseudonymised rows, or query it with differential privacy.",
        subcommands: [Show.self, Rows.self, Query.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A dataset as the chain holds it: request, status, patients, rows, sealed root, privacy budget and its charges.")
        @Option(help: "Node URL.") var node = "http://127.0.0.1:8080"
        @Argument(help: "The dataset's id (its request transaction's hash).") var id: String

        func run() async throws {
            let r = try await NodeClient(base: node).request("GET", "/v1/datasets/\(id)")
            guard r.status == 200 else { throw CLIError(NodeClient(base: node).problemText(r)) }
            print(String(decoding: r.body, as: UTF8.self))
        }
    }

    struct Rows: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download a sealed rows dataset from its gateway (signed by the researcher) and check its rows against their root.",
            discussion: "Prints the export as JSON. The root of the rows served is recomputed here; it equals the root sealed on-chain unless patients revoked consent or were erased since (then `withdrawn` says how many).")
        @Option(help: "The dataset's gateway.") var gateway: String
        @Option(help: "A node (for the chain id and the sealed record).") var node = "http://127.0.0.1:8080"
        @Option(help: "The researcher's account key file.") var key: String
        @Argument(help: "The dataset's id.") var id: String

        func run() async throws {
            let r = try await signedGET(gateway, "/v1/datasets/\(id)/rows", key: try KeyFile.load(path: key), chainID: try await chainID(of: node))
            guard r.status == 200 else { throw CLIError(NodeClient(base: gateway).problemText(r)) }
            let export = try JSONDecoder().decode(Gateway.DatasetExport.self, from: r.body)
            let root = MerkleTree.root(leaves: export.rows.map(\.canonicalBytes))
            guard root == export.root else { throw CLIError("REFUSED: the rows do not hash to the root the gateway states") }
            // The sealed root comes from the chain, not from the gateway.
            guard let bytes = try await stateValue(node, StateKeys.dataset(export.dataset)), let sealed = try? DatasetRecord(canonicalBytes: bytes) else {
                throw CLIError("REFUSED: dataset \(export.dataset) is not on the chain")
            }
            let matches = root == sealed.contentRoot
            if !matches && export.withdrawn == 0 { throw CLIError("REFUSED: the rows' root \(root) is not the root sealed on-chain and no patient withdrew") }
            FileHandle.standardError.write(Data("\(export.rows.count) rows of \(export.patients) patients; root \(root) \(matches ? "equals the sealed root" : "differs from the sealed root (\(export.withdrawn) patients withdrawn since the seal)")\n".utf8))
            print(String(decoding: r.body, as: UTF8.self))
        }
    }

    struct Query: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask a differentially private aggregate question of a sealed dataset; ε is charged to its on-chain budget before the answer is released.")
        @Option(help: "The dataset's gateway.") var gateway: String
        @Option(help: "A node (for the chain id).") var node = "http://127.0.0.1:8080"
        @Option(help: "The researcher's account key file.") var key: String
        @Option(help: "count, mean or histogram.") var statistic: String
        @Option(help: "The vital sign (heart-rate, oxygen-saturation, body-temperature, systolic-pressure, …).") var measure: String
        @Option(help: "Its UCUM unit (/min, %, Cel, mm[Hg], …).") var unit: String
        @Option(help: "Lower clamp (default: the physical range).") var lower: Double?
        @Option(help: "Upper clamp (default: the physical range).") var upper: Double?
        @Option(help: "Histogram bins (1…100).") var bins: Int?
        @Option(help: "ε spent on this query (e.g. 0.5).") var epsilon: Double
        @Argument(help: "The dataset's id.") var id: String

        func run() async throws {
            guard epsilon.isFinite, epsilon > 0, epsilon <= 10 else { throw CLIError("--epsilon is in (0, 10]") }
            let q = Gateway.AggregateQuery(statistic: statistic, measure: measure, unit: unit, lower: lower, upper: upper, bins: bins, epsilonMilli: UInt64((epsilon * 1000).rounded()))
            let body = Array(try JSONEncoder().encode(q))
            let r = try await signedSend(gateway, "POST", "/v1/datasets/\(id)/query", body: body, key: try KeyFile.load(path: key), chainID: try await chainID(of: node))
            guard r.status == 200 || r.status == 202 else { throw CLIError(NodeClient(base: gateway).problemText(r)) }
            if r.status == 202 { FileHandle.standardError.write(Data("the budget charge has not committed yet: ask again with GET /v1/datasets/\(id)/queries/<query>\n".utf8)) }
            print(String(decoding: r.body, as: UTF8.self))
        }
    }
}

/// `iomtchain credits`: an account's balance in consortium credits and every movement of it.
struct CreditsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "credits", abstract: "Show an account's balance in consortium credits and its movements (issued, transfers, dataset payments and shares).")
    @Option(help: "Node URL.") var node = "http://127.0.0.1:8080"
    @Option(help: "The account's address (or give --key).") var account: String?
    @Option(help: "A key file whose account to show.") var key: String?

    func run() async throws {
        let address: String
        if let account { address = account } else if let key { address = try KeyFile.load(path: key).publicKey.address.hex } else { throw CLIError("give --account or --key") }
        let r = try await NodeClient(base: node).request("GET", "/v1/accounts/\(address)/credits")
        guard r.status == 200 else { throw CLIError(NodeClient(base: node).problemText(r)) }
        print(String(decoding: r.body, as: UTF8.self))
    }
}
