import IoMTCore

/// Deterministic keys: seed byte i, so every run builds the same chain.
func validatorKey(_ i: Int) -> PrivateKey {
    // swiftlint:disable:next force_try
    try! PrivateKey(algorithm: .ed25519, rawBytes: [UInt8](repeating: UInt8(i + 1), count: 32))
}

func validators(_ indices: [Int], powers: [Int: UInt64] = [:]) -> [Validator] {
    indices.map { Validator(publicKey: validatorKey($0).publicKey, organisation: "org-a", power: powers[$0] ?? 1) }
}

/// A chain of real headers, states and commits built without a node: each block applies a few
/// signed transactions' worth of state writes, and a validator-set change written into the state
/// after block h signs from block h + 1 on (as Node.buildBlock reads the set from the tip state).
struct TestChain {
    let genesis: Genesis
    let admin = validatorKey(99)
    private(set) var blocks: [Block]
    /// State after each block (index = height).
    private(set) var states: [AuthenticatedState]
    /// The set that signs each height (index = height; genesis' entry is the genesis set).
    private(set) var sets: [[Validator]]
    /// Private keys by public key, for every validator that ever existed.
    let keys: [PublicKey: PrivateKey]

    static let chainID = "light-test"

    init(initial: [Int] = [0, 1, 2, 3], powers: [Int: UInt64] = [:]) {
        genesis = Genesis(
            chainId: Self.chainID, genesisTimeMs: 1_700_000_000_000,
            organisations: [Organisation(id: "org-a", name: "Hospital A", kind: "hospital")],
            admins: [Genesis.Admin(publicKey: validatorKey(99).publicKey, organisation: "org-a")],
            adminQuorum: 1, validators: validators(initial, powers: powers), consensus: ConsensusParameters())
        blocks = [genesis.genesisBlock()]
        states = [genesis.initialState()]
        sets = [genesis.validators]
        var k: [PublicKey: PrivateKey] = [:]
        for i in 0..<16 { k[validatorKey(i).publicKey] = validatorKey(i) }
        keys = k
    }

    var tip: Block { blocks[blocks.count - 1] }

    /// The set stored in the latest state: it signs the next block.
    var nextSet: [Validator] {
        // swiftlint:disable:next force_try
        try! [Validator](canonicalBytes: states[states.count - 1].proof(forKey: StateKeys.validators).value!)
    }

    /// Appends a block signed by all of its set (or `signers`); `newSet` is written to its state.
    @discardableResult
    mutating func append(newSet: [Validator]? = nil, signers: [Int]? = nil, transactions count: Int = 3) -> Block {
        let height = UInt64(blocks.count)
        let set = nextSet
        let txs = (0..<count).map { i in
            Transaction(chainID: Self.chainID, sender: admin.publicKey.address, signerKey: admin.publicKey, nonce: height * 100 + UInt64(i),
                        payload: .registerAccount(RegisterAccount(publicKey: validatorKey(40 + i).publicKey, role: .device, organisation: "org-a", label: "h\(height)")))
                .signed(with: admin)
        }
        var writes: [[UInt8]: [UInt8]?] = [Array("test/height".utf8): height.canonicalBytes]
        for tx in txs { writes[Array("test/tx/".utf8) + tx.hash.bytes] = tx.canonicalBytes }
        if let newSet { writes[StateKeys.validators] = newSet.canonicalBytes }
        let state = states[states.count - 1].applying(writes)
        let header = BlockHeader(
            chainID: Self.chainID, height: height, previousHash: tip.hash,
            transactionsRoot: MerkleTree.root(leafHashes: Block.leafHashes(txs)), transactionCount: UInt32(txs.count),
            stateRoot: state.root, validatorsHash: Validator.setHash(set),
            timestampMs: genesis.genesisTimeMs + Int64(height) * 1000, proposer: set[0].address)
        let signing = signers.map { idx in idx.map { validatorKey($0).publicKey } } ?? set.map(\.publicKey)
        let block = Block(header: header, transactions: txs, commit: Self.commit(header, signedBy: signing.map { keys[$0]! }))
        blocks.append(block)
        states.append(state)
        sets.append(set)
        return block
    }

    mutating func extend(to height: UInt64) {
        while UInt64(blocks.count) <= height { append() }
    }

    static func commit(_ header: BlockHeader, signedBy keys: [PrivateKey], round: UInt32 = 0) -> Commit {
        let message = Commit.voteBytes(chainID: header.chainID, height: header.height, round: round, blockHash: header.hash)
        return Commit(height: header.height, round: round, blockHash: header.hash,
                      signatures: keys.map { CommitSignature(validator: $0.publicKey, signature: $0.sign(message)) })
    }

    func block(_ h: UInt64) -> Block { blocks[Int(h)] }
    func commit(_ h: UInt64) -> Commit { blocks[Int(h)].commit! }
    func header(_ h: UInt64) -> BlockHeader { blocks[Int(h)].header }

    /// What an honest node serves for height h; with `proof`, the set's state proof against h-1.
    func lightBlock(_ h: UInt64, proof: Bool = false) -> LightBlock {
        LightBlock(header: header(h), commit: commit(h), validators: sets[Int(h)],
                   validatorsProof: proof ? states[Int(h) - 1].proof(forKey: StateKeys.validators) : nil)
    }

    func transactionProof(height h: UInt64, index: Int) -> TransactionProof {
        let b = block(h)
        return TransactionProof(transaction: b.transactions[index], proof: MerkleTree.proof(leafHashes: Block.leafHashes(b.transactions), index: index)!,
                                header: b.header, commit: b.commit)
    }

    /// Re-signs a modified header with `keys` (a validly signed but forged header).
    static func resigned(_ header: BlockHeader, by keys: [PrivateKey]) -> (BlockHeader, Commit) {
        (header, commit(header, signedBy: keys))
    }
}

/// Records the heights a fetch closure was asked for.
final class FetchLog: @unchecked Sendable {
    var heights: [UInt64] = []
}
