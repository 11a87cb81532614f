import ArgumentParser
import Foundation
import IoMTCore

/// `iomtchain light verify`: the light client (Sources/IoMTCore/LightClient, docs/light-client.md)
/// against one untrusted node's HTTP API.
struct LightCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "light", abstract: "Light client: verify headers and proofs served by one untrusted node.",
        subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify a header, a transaction or a state value from genesis, trusting nothing the node says.",
            discussion: """
                Trusts only the genesis file. Fetches headers and commit certificates from --node and verifies \
                them from genesis (by skipping with bisection, or --sequential), then checks the requested \
                transaction or state proof against the verified header. Without --tx, --state-key or --account, \
                verifies the header at --height (default: the node's latest).
                Exit status: 0 verified; 2 a check failed (the node served something that does not verify); \
                1 usage or network error.
                """)

        @Option(help: "Node URL (not trusted).") var node = "http://127.0.0.1:8080"
        @Option(help: "Genesis file: the root of trust.") var genesis: String?
        @Option(help: "Transaction hash: verify that it is committed.") var tx: String?
        @Option(name: .customLong("state-key"), help: "State key in hex: verify its value (or absence) at the node's latest height.") var stateKey: String?
        @Option(help: "Account address: verify the account at the node's latest height.") var account: String?
        @Option(help: "Header height to verify (without --tx/--state-key/--account; else it must be the proof's height).") var height: UInt64?
        @Flag(help: "Verify every header from genesis instead of skipping.") var sequential = false
        @Flag(help: "Print the verdict as JSON.") var json = false

        func run() async throws {
            let request = try parse()
            let session = LightSession(client: NodeClient(base: node), lightClient: request.lightClient, sequential: sequential)
            let verdict: Verdict
            do {
                verdict = try await session.run(request.subject, height: height)
            } catch let failure as VerificationFailure {
                try report(session.failedVerdict(failure, node: node))
                throw ExitCode(2)
            }
            try report(verdict.with(node: node))
        }

        struct Request {
            var lightClient: LightClient
            var subject: Subject
        }

        private func parse() throws -> Request {
            guard let genesis else { throw CLIError("give --genesis FILE: the genesis you trust") }
            guard [tx, stateKey, account].compactMap({ $0 }).count <= 1 else { throw CLIError("give at most one of --tx, --state-key, --account") }
            let g: Genesis
            do { g = try JSONDecoder().decode(Genesis.self, from: Data(contentsOf: URL(fileURLWithPath: genesis))) } catch {
                throw CLIError("cannot read genesis \(genesis): \(error)")
            }
            let lc: LightClient
            do { lc = try LightClient(genesis: g) } catch { throw CLIError("\(error)") }
            var subject = Subject.header
            if let tx {
                guard let h = Hash(hex: tx) else { throw CLIError("--tx must be 64 hex digits") }
                subject = .transaction(h)
            } else if let stateKey {
                guard let k = Hex.decode(stateKey), !k.isEmpty, k.count <= 1024 else { throw CLIError("--state-key must be 1–1024 bytes of hex") }
                subject = .state(k)
            } else if let account {
                guard let a = Address(hex: account) else { throw CLIError("--account must be 40 hex digits") }
                subject = .account(a)
            }
            return Request(lightClient: lc, subject: subject)
        }

        private func report(_ v: Verdict) throws {
            if json { try printJSON(v) } else { print(v.text) }
        }
    }
}

enum Subject {
    case header
    case transaction(Hash)
    case state([UInt8])
    case account(Address)
}

/// The node served something that does not verify (exit 2).
struct VerificationFailure: Error {
    var code: String
    var reason: String

    init(_ code: String, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    init(_ e: LightClientError) { self.init(e.code, e.description) }
}

/// The verdict, printed as one line or as JSON.
struct Verdict: Encodable {
    struct TransactionResult: Encodable { var hash: Hash; var height: UInt64; var index: UInt64 }
    struct StateResult: Encodable { var key: String; var present: Bool; var value: String? }

    var verified: Bool
    var node = ""
    var chainId: String
    var genesisHash: Hash
    var mode: String
    var headersFetched: Int
    var height: UInt64?
    var blockHash: Hash?
    var transaction: TransactionResult?
    var state: StateResult?
    var account: Account?
    var error: String?
    var reason: String?

    func with(node: String) -> Verdict {
        var v = self
        v.node = node
        return v
    }

    var text: String {
        guard verified, let height, let blockHash else { return "NOT VERIFIED: \(reason ?? "unknown") [\(error ?? "")] (node \(node))" }
        let how = "header \(height) (\(blockHash)) verified from genesis \(genesisHash) by \(mode), \(headersFetched) header(s) fetched from \(node), which is not trusted"
        if let t = transaction { return "VERIFIED: transaction \(t.hash) is leaf \(t.index) of block \(t.height); \(how)" }
        if let a = account { return "VERIFIED: account \(a.address) (\(a.role), \(a.status.name), nonce \(a.nonce)) at height \(height); \(how)" }
        if let s = state { return "VERIFIED: key \(s.key) is \(s.present ? "present (\(s.value.map { $0.count / 2 } ?? 0) bytes)" : "absent") at height \(height); \(how)" }
        return "VERIFIED: \(how)"
    }
}

/// One run of the light client against one node: fetches, verifies, keeps count.
final class LightSession {
    let client: NodeClient
    var lightClient: LightClient
    let sequential: Bool
    /// Candidate validator sets by hash. Unauthenticated: a header's `validatorsHash`, itself
    /// checked by the commit rules, is what makes one of them the set of that height.
    var candidateSets: [Hash: [Validator]] = [:]
    var fetchedLatestSet = false
    var headersFetched = 0

    init(client: NodeClient, lightClient: LightClient, sequential: Bool) {
        self.client = client
        self.lightClient = lightClient
        self.sequential = sequential
        let genesisSet = lightClient.latest.validators
        candidateSets[Validator.setHash(genesisSet)] = genesisSet
    }

    var mode: String { sequential ? "sequential verification" : "skipping verification" }

    func failedVerdict(_ f: VerificationFailure, node: String) -> Verdict {
        Verdict(verified: false, node: node, chainId: lightClient.chainID, genesisHash: lightClient.genesisHash, mode: mode,
                headersFetched: headersFetched, height: nil, blockHash: nil, error: f.code, reason: f.reason)
    }

    // MARK: replies (decoded leniently: only what is verified matters)

    struct BlockReply: Decodable { var header: BlockHeader; var commit: Commit? }
    struct TransactionReply: Decodable {
        var status: String
        var transaction: SignedTransaction?
        var proof: InclusionProof?
        var header: BlockHeader?
        var commit: Commit?
    }
    struct StateReply: Decodable { var proof: StateProof; var header: BlockHeader }

    /// GETs and decodes; unreachable node or server error → CLIError (exit 1); a reply that does
    /// not decode or a 4xx where the node must have data → VerificationFailure (exit 2).
    func get<T: Decodable>(_ path: String, _: T.Type, missing: String) async throws -> T {
        let r = try await client.request("GET", path)
        if r.status >= 500 || r.status == 0 { throw CLIError(client.problemText(r)) }
        guard (200..<300).contains(r.status) else { throw VerificationFailure("node-refused", "\(missing): \(client.problemText(r))") }
        do { return try JSONDecoder().decode(T.self, from: r.body) } catch {
            throw VerificationFailure("undecodable-reply", "GET \(path): the node's reply does not decode: \(error)")
        }
    }

    // MARK: run

    func run(_ subject: Subject, height: UInt64?) async throws -> Verdict {
        try await checkGenesis()
        switch subject {
        case .header:
            let target = try await headerTarget(height)
            let v = try await verify(to: target)
            return verdict(v.header)
        case .transaction(let hash):
            let r = try await get("/v1/transactions/\(hash)", TransactionReply.self, missing: "node does not serve transaction \(hash)")
            guard r.status == "committed", let tx = r.transaction, let proof = r.proof, let header = r.header else {
                throw VerificationFailure("not-committed", "node reports transaction \(hash) as \(r.status), with no proof to verify")
            }
            guard tx.hash == hash else { throw VerificationFailure("wrong-transaction", "asked for transaction \(hash), node served \(tx.hash)") }
            try requireHeight(height, header)
            try await verify(to: header.height)
            do { try lightClient.verify(transactionProof: TransactionProof(transaction: tx, proof: proof, header: header, commit: r.commit)) } catch {
                throw VerificationFailure(error)
            }
            var v = verdict(header)
            v.transaction = .init(hash: hash, height: header.height, index: proof.leafIndex)
            return v
        case .state(let key):
            let r = try await get("/v1/state/\(Hex.encode(key))", StateReply.self, missing: "node does not serve state key")
            let value = try await verifyState(r, key: key, height: height)
            var v = verdict(r.header)
            v.state = .init(key: Hex.encode(key), present: value != nil, value: value.map { Hex.encode($0) })
            return v
        case .account(let address):
            let r = try await get("/v1/accounts/\(address)", StateReply.self, missing: "node does not serve account \(address)")
            guard let bytes = try await verifyState(r, key: StateKeys.account(address), height: height) else {
                throw VerificationFailure("account-absent", "the verified state at height \(r.header.height) has no account \(address), though the node served it")
            }
            guard let account = try? Account(canonicalBytes: bytes) else {
                throw VerificationFailure("undecodable-account", "the verified value for account \(address) does not decode")
            }
            var v = verdict(r.header)
            v.account = account
            return v
        }
    }

    private func verdict(_ header: BlockHeader) -> Verdict {
        Verdict(verified: true, chainId: lightClient.chainID, genesisHash: lightClient.genesisHash, mode: mode,
                headersFetched: headersFetched, height: header.height, blockHash: header.hash)
    }

    private func requireHeight(_ height: UInt64?, _ header: BlockHeader) throws {
        if let height, height != header.height {
            throw CLIError("the proof is at height \(header.height); --height \(height) cannot be used with it (the API serves state only at the latest height)")
        }
    }

    private func verifyState(_ r: StateReply, key: [UInt8], height: UInt64?) async throws -> [UInt8]? {
        try requireHeight(height, r.header)
        try await verify(to: r.header.height)
        do { return try lightClient.verify(stateProof: r.proof, key: key, at: r.header) } catch { throw VerificationFailure(error) }
    }

    /// Block 0 as the node serves it must be the genesis we trust: a cheap, clear first check.
    private func checkGenesis() async throws {
        let b = try await get("/v1/blocks/0", BlockReply.self, missing: "node does not serve block 0")
        do { try lightClient.requireVerified(b.header) } catch {
            throw VerificationFailure("genesis-mismatch", "the node's block 0 is \(b.header.hash) (chain \"\(b.header.chainID)\"), not the trusted genesis \(lightClient.genesisHash) (chain \"\(lightClient.chainID)\"): \(error)")
        }
    }

    private func headerTarget(_ height: UInt64?) async throws -> UInt64 {
        if let height { return height }
        return try await get("/v1/blocks/latest", BlockReply.self, missing: "node does not serve its latest block").header.height
    }

    // MARK: headers

    @discardableResult
    private func verify(to target: UInt64) async throws -> VerifiedHeader {
        if sequential { return try await verifySequentially(to: target) }
        var lc = lightClient
        lastFetchFailure = nil
        do {
            let v = try await lc.verifyTo(targetHeight: target) { h in try await self.fetchBlock(h) }
            lightClient = lc
            return v
        } catch {
            lightClient = lc
            // A fetch that failed carries its own verdict (network error: exit 1; bad reply: exit 2).
            if let e = lastFetchFailure { throw e }
            throw VerificationFailure(error)
        }
    }

    private var lastFetchFailure: (any Error)?

    private func fetchBlock(_ height: UInt64) async throws -> LightBlock {
        do {
            let b = try await get("/v1/blocks/\(height)", BlockReply.self, missing: "node does not serve block \(height)")
            headersFetched += 1
            return try await lightBlock(b)
        } catch {
            lastFetchFailure = error
            throw error
        }
    }

    private func verifySequentially(to target: UInt64) async throws -> VerifiedHeader {
        if let v = lightClient.verifiedHeader(at: target) { return v }
        while lightClient.latestHeight < target {
            let from = lightClient.latestHeight + 1
            let limit = min(100, target - from + 1)
            let page = try await get("/v1/blocks?from=\(from)&limit=\(limit)", [BlockReply].self, missing: "node does not serve blocks from \(from)")
            guard !page.isEmpty else { throw VerificationFailure("missing-block", "node served no block at height \(from)") }
            for b in page.prefix(Int(limit)) {
                headersFetched += 1
                let block = try await lightBlock(b)
                do { try lightClient.verify(header: block.header, commit: block.commit) } catch {
                    // The set changed: the API serves no historical set proof, so fall back to the
                    // rule that needs none (more than a third of the trusted set signed).
                    guard case .validatorsHashMismatch = error else { throw VerificationFailure(error) }
                    do { try lightClient.verify(block) } catch { throw VerificationFailure(error) }
                }
            }
        }
        guard let v = lightClient.verifiedHeader(at: target) else { throw VerificationFailure("missing-block", "header \(target) was not served") }
        return v
    }

    /// A block reply with its validator set, looked up by the header's validatorsHash.
    func lightBlock(_ b: BlockReply) async throws -> LightBlock {
        guard let commit = b.commit else { throw VerificationFailure("missing-commit", "node served block \(b.header.height) without a commit") }
        return LightBlock(header: b.header, commit: commit, validators: try await validators(for: b.header))
    }

    /// The validator set a header names. Known sets are genesis' and those seen before; otherwise
    /// the node's current set (`StateKeys.validators` at its latest height). The API serves no set
    /// for past heights, so a set that existed only in between cannot be obtained (docs/light-client.md).
    func validators(for header: BlockHeader) async throws -> [Validator] {
        if let s = candidateSets[header.validatorsHash] { return s }
        if !fetchedLatestSet {
            fetchedLatestSet = true
            let r = try await get("/v1/state/\(Hex.encode(StateKeys.validators))", StateReply.self, missing: "node does not serve its validator set")
            if let bytes = r.proof.value, let set = try? [Validator](canonicalBytes: bytes) { candidateSets[Validator.setHash(set)] = set }
            if let s = candidateSets[header.validatorsHash] { return s }
        }
        throw VerificationFailure("validator-set-unavailable",
                                  "header \(header.height) names validator set \(header.validatorsHash), which is neither genesis' nor the node's current set; the API serves no validator set for past heights")
    }
}

