/// A light client (issue 3 §6): follows the chain from a trusted genesis by checking each header it
/// accepts against a commit certificate, never re-executing blocks, then checks transaction and state
/// proofs against the headers it has verified. One untrusted node can serve it everything.
///
/// Modelled on CometBFT's light client (`light/verifier.go`: `VerifyAdjacent`, `VerifyNonAdjacent`;
/// `light/client.go`: `verifySkipping`), adapted to IoMTChain headers, which carry the hash of their
/// own validator set only (CometBFT headers also carry `NextValidatorsHash`).
///
/// **Where validator sets come from.** The set that signs block h is the value of
/// `StateKeys.validators` in the state *after* block h-1: `Node.buildBlock` reads it from the tip
/// state before executing block h. So a state proof of that key against header h-1's `stateRoot`
/// plays the part of CometBFT's `NextValidatorsHash` (`LightBlock.validatorsProof`).
///
/// Pure: no I/O, clock or randomness. The caller fetches; `verifyTo(targetHeight:fetch:)` takes the
/// fetch as a closure.
public struct LightClient: Sendable {
    /// Most verified headers kept; beyond it the oldest half (except genesis and the latest) is dropped.
    public static let defaultMaxRetainedHeaders = 10_000

    public let chainID: String
    /// Hash of block 0, computed locally from the genesis file: the root of trust.
    public let genesisHash: Hash
    public let maxRetainedHeaders: Int
    /// The highest verified header and the set that signed it.
    public private(set) var latest: VerifiedHeader
    private var headers: [UInt64: VerifiedHeader]

    /// Trusts `genesis` (and, when given, checks that it hashes to `expectedGenesisHash`).
    public init(genesis: Genesis, expectedGenesisHash: Hash? = nil, maxRetainedHeaders: Int = LightClient.defaultMaxRetainedHeaders) throws(LightClientError) {
        do { try genesis.validate() } catch { throw .invalidGenesis(error.reason) }
        let block = genesis.genesisBlock()
        if let expectedGenesisHash, expectedGenesisHash != block.hash {
            throw .genesisHashMismatch(expected: expectedGenesisHash, computed: block.hash)
        }
        chainID = genesis.chainId
        genesisHash = block.hash
        self.maxRetainedHeaders = max(maxRetainedHeaders, 2)
        // The genesis state holds genesis.validators under StateKeys.validators: they sign block 1.
        latest = VerifiedHeader(header: block.header, validators: genesis.validators)
        headers = [0: latest]
    }

    public var latestHeight: UInt64 { latest.header.height }

    /// The verified header at `height`, if this client holds it.
    public func verifiedHeader(at height: UInt64) -> VerifiedHeader? { headers[height] }

    // MARK: headers

    /// Sequential (adjacent) verification of the header right after the latest verified one
    /// (CometBFT `VerifyAdjacent`): same chain, height + 1, `previousHash` links, a later timestamp,
    /// `validatorsHash` names the set this client trusts for that height, and more than two thirds
    /// of that set's power signed `commit`.
    ///
    /// The trusted set is the latest header's set, unless `validatorsProof` — a state proof of
    /// `StateKeys.validators` against the latest header's state root — shows that it changed.
    @discardableResult
    public mutating func verify(header: BlockHeader, commit: Commit, validatorsProof: StateProof? = nil) throws(LightClientError) -> VerifiedHeader {
        try checkAdjacent(header)
        var validators = latest.validators
        if let validatorsProof { validators = try validatorSet(provenBy: validatorsProof, after: latest.header) }
        try checkValidatorsHash(header, validators)
        try checkCommit(commit, header: header, validators: validators)
        return accept(VerifiedHeader(header: header, validators: validators))
    }

    /// Skipping (non-adjacent) verification (CometBFT `VerifyNonAdjacent`) of a header above the
    /// latest verified one, with `validators` — the set for `header.height` as the caller obtained
    /// it, bound by `header.validatorsHash`. Accepted when validators holding more than one third of
    /// the latest trusted set's power signed `commit` (at least one of them is honest, so the header
    /// is on the real chain) and more than two thirds of the header's own set did.
    ///
    /// Throws `.insufficientTrustedPower` when the trusted set's share is one third or less: verify
    /// an intermediate header first (bisection, `verifyTo(targetHeight:fetch:)`).
    @discardableResult
    public mutating func verifySkipping(header: BlockHeader, commit: Commit, validators: [Validator]) throws(LightClientError) -> VerifiedHeader {
        try checkChain(header)
        guard header.height > latest.header.height else { throw .notAfterTrusted(trustedHeight: latest.header.height, got: header.height) }
        try checkTimestamp(header)
        try checkValidatorsHash(header, validators)
        guard commit.height == header.height, commit.blockHash == header.hash else { throw .commit(height: header.height, .wrongBlock) }
        let (signed, total) = try Self.power(of: latest.validators, signing: commit, header: header)
        // More than one third, without overflow: signed * 3 > total  ⇔  signed > ⌊total / 3⌋.
        guard signed > total / 3 else { throw .insufficientTrustedPower(height: header.height, signed: signed, total: total) }
        try checkCommit(commit, header: header, validators: validators)
        return accept(VerifiedHeader(header: header, validators: validators))
    }

    /// Verifies a block a node served, choosing the rule: a header already held must be the same;
    /// the next header is checked sequentially when its set is the trusted one (or is proven by
    /// `validatorsProof`) and otherwise by the skipping rule; a later header by the skipping rule.
    @discardableResult
    public mutating func verify(_ block: LightBlock) throws(LightClientError) -> VerifiedHeader {
        let height = block.header.height
        if let known = headers[height] {
            guard known.header.hash == block.header.hash else { throw .conflictingHeader(height: height, verified: known.header.hash, got: block.header.hash) }
            return known
        }
        guard height > latest.header.height else { throw .notAfterTrusted(trustedHeight: latest.header.height, got: height) }
        if height == latest.header.height + 1 {
            // Linkage first: an adjacent header must extend the verified chain whatever its signers.
            try checkAdjacent(block.header)
            if block.validatorsProof != nil || block.header.validatorsHash == Validator.setHash(latest.validators) {
                return try verify(header: block.header, commit: block.commit, validatorsProof: block.validatorsProof)
            }
        }
        return try verifySkipping(header: block.header, commit: block.commit, validators: block.validators)
    }

    /// Verifies a header below a verified one by hash linkage (CometBFT's backwards verification):
    /// accepted when the verified header at `header.height + 1` names it as `previousHash`.
    /// `validators` (the set for `header.height`) must match its `validatorsHash`.
    @discardableResult
    public mutating func verifyBackwards(header: BlockHeader, validators: [Validator]) throws(LightClientError) -> VerifiedHeader {
        try checkChain(header)
        if let known = headers[header.height] {
            guard known.header.hash == header.hash else { throw .conflictingHeader(height: header.height, verified: known.header.hash, got: header.hash) }
            return known
        }
        guard let next = headers[header.height + 1] else { throw .headerNotVerified(height: header.height + 1) }
        guard next.header.previousHash == header.hash else {
            throw .previousHashMismatch(height: next.header.height, expected: header.hash, got: next.header.previousHash)
        }
        try checkValidatorsHash(header, validators)
        return accept(VerifiedHeader(header: header, validators: validators))
    }

    // MARK: bisection

    /// Verifies the header at `targetHeight` from the latest verified one, fetching headers with
    /// `fetch` (height → block): first the target itself by the skipping rule; when the trusted set
    /// signed too little of it, the midpoint between the latest verified height and the pivot, and
    /// so on down to adjacent headers (CometBFT `verifySkipping`). Each fetched block is asked for once.
    @discardableResult
    public mutating func verifyTo(targetHeight: UInt64, fetch: (UInt64) throws -> LightBlock) throws(LightClientError) -> VerifiedHeader {
        var bisection = Bisection(target: targetHeight)
        while true {
            switch try step(&bisection) {
            case .done(let verified): return verified
            case .fetch(let height):
                do { bisection.fetched[height] = try fetch(height) } catch { throw .fetchFailed(height: height, reason: "\(error)") }
            }
        }
    }

    /// `verifyTo(targetHeight:fetch:)` with an asynchronous fetch.
    @discardableResult
    public mutating func verifyTo(targetHeight: UInt64, fetch: (UInt64) async throws -> LightBlock) async throws(LightClientError) -> VerifiedHeader {
        var bisection = Bisection(target: targetHeight)
        while true {
            switch try step(&bisection) {
            case .done(let verified): return verified
            case .fetch(let height):
                do { bisection.fetched[height] = try await fetch(height) } catch { throw .fetchFailed(height: height, reason: "\(error)") }
            }
        }
    }

    struct Bisection {
        let target: UInt64
        var pivot: UInt64
        /// Fetched, not yet verified: at most one per halving, so O(log distance).
        var fetched: [UInt64: LightBlock] = [:]

        init(target: UInt64) {
            self.target = target
            pivot = target
        }
    }

    enum BisectionStep {
        case done(VerifiedHeader)
        case fetch(UInt64)
    }

    /// One move of the bisection: verify what was fetched and pick the next pivot, or ask for a block.
    mutating func step(_ b: inout Bisection) throws(LightClientError) -> BisectionStep {
        while true {
            if let verified = headers[b.target] { return .done(verified) }
            guard b.target > latest.header.height else { throw .notAfterTrusted(trustedHeight: latest.header.height, got: b.target) }
            guard let block = b.fetched[b.pivot] else { return .fetch(b.pivot) }
            guard block.header.height == b.pivot else { throw .fetchedWrongHeight(requested: b.pivot, got: block.header.height) }
            do throws(LightClientError) {
                try verify(block)
                b.fetched = b.fetched.filter { $0.key > latest.header.height }
                b.pivot = b.target
            } catch {
                guard case .insufficientTrustedPower = error, b.pivot > latest.header.height + 1 else { throw error }
                b.pivot = latest.header.height + (b.pivot - latest.header.height) / 2
            }
        }
    }

    // MARK: proofs

    /// Checks that `header` is one this client verified (same height, same hash).
    public func requireVerified(_ header: BlockHeader) throws(LightClientError) {
        guard let known = headers[header.height] else { throw .headerNotVerified(height: header.height) }
        guard known.header.hash == header.hash else { throw .conflictingHeader(height: header.height, verified: known.header.hash, got: header.hash) }
    }

    /// Verifies that a transaction is in a block this client verified: the proof's header must be a
    /// verified header, the transaction's signature valid, and its Merkle path lead to the header's
    /// `transactionsRoot`. The proof's own commit is not needed (the header is already verified).
    public func verify(transactionProof proof: TransactionProof) throws(LightClientError) {
        try requireVerified(proof.header)
        do { try proof.verify() } catch { throw .transactionProof(error) }
    }

    /// Verifies a state proof for `key` against the state root of `header`, which must be a verified
    /// header. Returns the proven value (nil: the key is absent in that state).
    @discardableResult
    public func verify(stateProof proof: StateProof, key: [UInt8], at header: BlockHeader) throws(LightClientError) -> [UInt8]? {
        try requireVerified(header)
        guard proof.key == key else { throw .stateKeyMismatch(expected: Hex.encode(key), got: Hex.encode(proof.key)) }
        do { try proof.verify(root: header.stateRoot) } catch { throw .stateProof(error) }
        return proof.value
    }

    /// The validator set for height `header.height + 1`, from a state proof of `StateKeys.validators`
    /// against verified `header`'s state root.
    public func validatorSet(provenBy proof: StateProof, after header: BlockHeader) throws(LightClientError) -> [Validator] {
        let height = header.height + 1
        guard let bytes = try verify(stateProof: proof, key: StateKeys.validators, at: header) else {
            throw .invalidValidatorSet(height: height, reason: "no validator set in the state after block \(header.height)")
        }
        guard let set = try? [Validator](canonicalBytes: bytes) else {
            throw .invalidValidatorSet(height: height, reason: "validator set in the state after block \(header.height) does not decode")
        }
        guard !set.isEmpty else { throw .invalidValidatorSet(height: height, reason: "empty validator set") }
        return set
    }

    // MARK: checks

    private func checkChain(_ header: BlockHeader) throws(LightClientError) {
        guard header.chainID == chainID else { throw .wrongChain(expected: chainID, got: header.chainID) }
    }

    private func checkTimestamp(_ header: BlockHeader) throws(LightClientError) {
        // Node.nextTimestamp makes block times strictly increase (max(clock, previous + 1)).
        guard header.timestampMs > latest.header.timestampMs else {
            throw .timestampNotIncreasing(height: header.height, trustedMs: latest.header.timestampMs, gotMs: header.timestampMs)
        }
    }

    private func checkAdjacent(_ header: BlockHeader) throws(LightClientError) {
        try checkChain(header)
        guard header.height == latest.header.height + 1 else { throw .notAdjacent(trustedHeight: latest.header.height, got: header.height) }
        guard header.previousHash == latest.header.hash else {
            throw .previousHashMismatch(height: header.height, expected: latest.header.hash, got: header.previousHash)
        }
        try checkTimestamp(header)
    }

    private func checkValidatorsHash(_ header: BlockHeader, _ validators: [Validator]) throws(LightClientError) {
        guard !validators.isEmpty else { throw .invalidValidatorSet(height: header.height, reason: "empty validator set") }
        let setHash = Validator.setHash(validators)
        guard header.validatorsHash == setHash else {
            throw .validatorsHashMismatch(height: header.height, header: header.validatorsHash, validators: setHash)
        }
    }

    private func checkCommit(_ commit: Commit, header: BlockHeader, validators: [Validator]) throws(LightClientError) {
        guard Self.totalPower(validators) != nil else { throw .invalidValidatorSet(height: header.height, reason: "total power overflows") }
        do { try commit.verify(header: header, validators: validators) } catch { throw .commit(height: header.height, error) }
    }

    /// Power of `trusted` that signed `commit` (signatures by others are ignored: they count only
    /// toward the header's own set), and the set's total. Bad or duplicate signatures are errors.
    static func power(of trusted: [Validator], signing commit: Commit, header: BlockHeader) throws(LightClientError) -> (signed: UInt64, total: UInt64) {
        guard let total = totalPower(trusted) else { throw .invalidValidatorSet(height: header.height, reason: "trusted set's total power overflows") }
        let message = Commit.voteBytes(chainID: header.chainID, height: commit.height, round: commit.round, blockHash: commit.blockHash)
        var seen = Set<PublicKey>()
        var signed: UInt64 = 0
        for s in commit.signatures {
            guard seen.insert(s.validator).inserted else { throw .commit(height: header.height, .duplicateValidator(s.validator)) }
            guard let v = trusted.first(where: { $0.publicKey == s.validator }) else { continue }
            guard s.validator.isValidSignature(s.signature, for: message) else { throw .commit(height: header.height, .badSignature(s.validator)) }
            signed += v.power  // ≤ total, which did not overflow
        }
        return (signed, total)
    }

    /// The set's total power; nil when it exceeds a third of UInt64.max (so that Commit.verify's
    /// `signed * 3` cannot overflow).
    static func totalPower(_ validators: [Validator]) -> UInt64? {
        var total: UInt64 = 0
        for v in validators {
            let (sum, overflow) = total.addingReportingOverflow(v.power)
            guard !overflow, sum <= UInt64.max / 3 else { return nil }
            total = sum
        }
        return total
    }

    private mutating func accept(_ verified: VerifiedHeader) -> VerifiedHeader {
        headers[verified.header.height] = verified
        if verified.header.height > latest.header.height { latest = verified }
        if headers.count > maxRetainedHeaders { pruneOldest() }
        return verified
    }

    /// Drops the oldest half of the retained headers, keeping genesis and the latest.
    private mutating func pruneOldest() {
        let heights = headers.keys.sorted()
        for h in heights.prefix(heights.count / 2) where h != 0 && h != latest.header.height { headers[h] = nil }
    }
}

/// A header the light client has verified, with the validator set that signed it.
public struct VerifiedHeader: Hashable, Sendable {
    public var header: BlockHeader
    /// Hashes to `header.validatorsHash`.
    public var validators: [Validator]

    public init(header: BlockHeader, validators: [Validator]) {
        self.header = header
        self.validators = validators
    }
}

/// What a node serves for one height: the header, its commit, and the validator set for that height.
public struct LightBlock: Hashable, Sendable, Codable {
    public var header: BlockHeader
    public var commit: Commit
    /// The set for `header.height`, as the source claims it; bound by `header.validatorsHash`.
    public var validators: [Validator]
    /// Optional: `StateKeys.validators` in the state after block `height - 1`, against that header's
    /// state root. Lets sequential verification follow a validator-set change with no overlap.
    public var validatorsProof: StateProof?

    public init(header: BlockHeader, commit: Commit, validators: [Validator], validatorsProof: StateProof? = nil) {
        self.header = header
        self.commit = commit
        self.validators = validators
        self.validatorsProof = validatorsProof
    }
}

/// Why the light client refused something. Each case names the height and what did not match.
public enum LightClientError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidGenesis(String)
    case genesisHashMismatch(expected: Hash, computed: Hash)
    case wrongChain(expected: String, got: String)
    case notAdjacent(trustedHeight: UInt64, got: UInt64)
    case notAfterTrusted(trustedHeight: UInt64, got: UInt64)
    case previousHashMismatch(height: UInt64, expected: Hash, got: Hash)
    case timestampNotIncreasing(height: UInt64, trustedMs: Int64, gotMs: Int64)
    /// The header's `validatorsHash` differs from the hash of the set it was checked against.
    case validatorsHashMismatch(height: UInt64, header: Hash, validators: Hash)
    case invalidValidatorSet(height: UInt64, reason: String)
    /// The commit does not finalise the header under its set (wrong block, unknown, duplicate or
    /// bad signature, or not more than two thirds of the power).
    case commit(height: UInt64, Commit.Failure)
    /// Skipping: the trusted set's signers hold one third of its power or less. Verify an
    /// intermediate header first (bisection).
    case insufficientTrustedPower(height: UInt64, signed: UInt64, total: UInt64)
    case fetchedWrongHeight(requested: UInt64, got: UInt64)
    case fetchFailed(height: UInt64, reason: String)
    /// A header at a height already verified, with another hash: the source is lying (or forked).
    case conflictingHeader(height: UInt64, verified: Hash, got: Hash)
    case headerNotVerified(height: UInt64)
    case transactionProof(TransactionProof.Failure)
    case stateKeyMismatch(expected: String, got: String)
    case stateProof(StateProof.Failure)

    /// A stable machine-readable code (the CLI's JSON verdict).
    public var code: String {
        switch self {
        case .invalidGenesis: return "invalid-genesis"
        case .genesisHashMismatch: return "genesis-hash-mismatch"
        case .wrongChain: return "wrong-chain"
        case .notAdjacent: return "not-adjacent"
        case .notAfterTrusted: return "not-after-trusted"
        case .previousHashMismatch: return "previous-hash-mismatch"
        case .timestampNotIncreasing: return "timestamp-not-increasing"
        case .validatorsHashMismatch: return "validators-hash-mismatch"
        case .invalidValidatorSet: return "invalid-validator-set"
        case .commit: return "invalid-commit"
        case .insufficientTrustedPower: return "insufficient-trusted-power"
        case .fetchedWrongHeight: return "fetched-wrong-height"
        case .fetchFailed: return "fetch-failed"
        case .conflictingHeader: return "conflicting-header"
        case .headerNotVerified: return "header-not-verified"
        case .transactionProof: return "invalid-transaction-proof"
        case .stateKeyMismatch: return "state-key-mismatch"
        case .stateProof: return "invalid-state-proof"
        }
    }

    public var description: String {
        switch self {
        case .invalidGenesis(let r): return "invalid genesis: \(r)"
        case .genesisHashMismatch(let e, let c): return "genesis hashes to \(c), expected \(e)"
        case .wrongChain(let e, let g): return "header is for chain \"\(g)\", not \"\(e)\""
        case .notAdjacent(let t, let g): return "header \(g) does not follow the latest verified header \(t)"
        case .notAfterTrusted(let t, let g): return "header \(g) is not above the latest verified header \(t)"
        case .previousHashMismatch(let h, let e, let g): return "header \(h) links to \(g), but the verified header below it is \(e)"
        case .timestampNotIncreasing(let h, let t, let g): return "header \(h) time \(g) ms is not after the verified header's \(t) ms"
        case .validatorsHashMismatch(let h, let hh, let v): return "header \(h) names validator set \(hh), but the set checked hashes to \(v)"
        case .invalidValidatorSet(let h, let r): return "validator set for height \(h): \(r)"
        case .commit(let h, let f): return "commit of header \(h): \(f)"
        case .insufficientTrustedPower(let h, let s, let t):
            return "header \(h): trusted validators signed power \(s) of \(t), not more than one third; verify an intermediate header first"
        case .fetchedWrongHeight(let r, let g): return "asked for header \(r), got \(g)"
        case .fetchFailed(let h, let r): return "fetching header \(h): \(r)"
        case .conflictingHeader(let h, let v, let g): return "header \(h) is \(g), but the verified header \(h) is \(v)"
        case .headerNotVerified(let h): return "header \(h) has not been verified by this light client"
        case .transactionProof(let f): return "transaction proof: \(f)"
        case .stateKeyMismatch(let e, let g): return "state proof is for key \(g), not \(e)"
        case .stateProof(let f): return "state proof: \(f)"
        }
    }
}
