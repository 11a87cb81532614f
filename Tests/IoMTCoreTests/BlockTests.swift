import IoMTCore
import Testing

@Suite("Blocks, commits and genesis")
struct BlockTests {
    static let v1 = Fixture.ed25519(0x71), v2 = Fixture.p256(0x72), v3 = Fixture.ed25519(0x73)
    static let validators = [
        Validator(publicKey: v1.publicKey, organisation: "a", power: 1),
        Validator(publicKey: v2.publicKey, organisation: "b", power: 1),
        Validator(publicKey: v3.publicKey, organisation: "c", power: 1),
    ]

    static func header(transactions: [SignedTransaction] = []) -> BlockHeader {
        BlockHeader(chainID: Fixture.chainID, height: 5, previousHash: Fixture.hash(1),
                    transactionsRoot: MerkleTree.root(leafHashes: Block.leafHashes(transactions)), transactionCount: UInt32(transactions.count),
                    stateRoot: Fixture.hash(2), validatorsHash: Validator.setHash(validators), timestampMs: 1_000, proposer: v1.publicKey.address)
    }

    static func commit(_ h: BlockHeader, by keys: [PrivateKey], round: UInt32 = 0) -> Commit {
        let msg = Commit.voteBytes(chainID: h.chainID, height: h.height, round: round, blockHash: h.hash)
        return Commit(height: h.height, round: round, blockHash: h.hash, signatures: keys.map { CommitSignature(validator: $0.publicKey, signature: $0.sign(msg)) })
    }

    @Test("the header hash covers every field")
    func headerHashCoversFields() {
        let h = Fixture.header
        var variants: [BlockHeader] = []
        var x = h; x.version += 1; variants.append(x)
        x = h; x.chainID += "x"; variants.append(x)
        x = h; x.height += 1; variants.append(x)
        x = h; x.previousHash = Fixture.hash(9); variants.append(x)
        x = h; x.transactionsRoot = Fixture.hash(9); variants.append(x)
        x = h; x.transactionCount += 1; variants.append(x)
        x = h; x.stateRoot = Fixture.hash(9); variants.append(x)
        x = h; x.validatorsHash = Fixture.hash(9); variants.append(x)
        x = h; x.timestampMs += 1; variants.append(x)
        x = h; x.proposer = Fixture.address(9); variants.append(x)
        x = h; x.difficultyTarget += 1; variants.append(x)
        x = h; x.powNonce -= 1; variants.append(x)
        #expect(Set(variants.map(\.hash) + [h.hash]).count == 13)
        #expect(h.hash == Hash.sha256(Array("iomt/block/v1".utf8) + h.canonicalBytes))
    }

    @Test("a commit with more than two thirds of the power verifies")
    func commitVerifies() throws {
        let h = Self.header()
        try Self.commit(h, by: [Self.v1, Self.v2, Self.v3]).verify(header: h, validators: Self.validators)
        try Self.commit(h, by: [Self.v3, Self.v1, Self.v2], round: 4).verify(header: h, validators: Self.validators)
        // 2 of 3 is not more than two thirds.
        #expect(throws: Commit.Failure.insufficientPower(signed: 2, total: 3)) { try Self.commit(h, by: [Self.v1, Self.v2]).verify(header: h, validators: Self.validators) }
        #expect(throws: Commit.Failure.insufficientPower(signed: 0, total: 3)) { try Self.commit(h, by: []).verify(header: h, validators: Self.validators) }
        // Weighted: one validator with power 3 of 4 suffices.
        var weighted = Self.validators
        weighted[0].power = 10
        var hw = h
        hw.validatorsHash = Validator.setHash(weighted)
        try Self.commit(hw, by: [Self.v1]).verify(header: hw, validators: weighted)
    }

    @Test("bad commits are refused with the right reason")
    func commitFailures() {
        let h = Self.header()
        let good = Self.commit(h, by: [Self.v1, Self.v2, Self.v3])
        var c = good
        c.height += 1
        #expect(throws: Commit.Failure.wrongBlock) { try c.verify(header: h, validators: Self.validators) }
        c = good
        c.blockHash = Fixture.hash(3)
        #expect(throws: Commit.Failure.wrongBlock) { try c.verify(header: h, validators: Self.validators) }
        #expect(throws: Commit.Failure.validatorsHashMismatch) { try good.verify(header: h, validators: Array(Self.validators.dropLast())) }
        let outsider = Fixture.ed25519(0x99)
        c = good
        c.signatures[1] = CommitSignature(validator: outsider.publicKey, signature: good.signatures[1].signature)
        #expect(throws: Commit.Failure.unknownValidator(outsider.publicKey)) { try c.verify(header: h, validators: Self.validators) }
        c = good
        c.signatures[2] = good.signatures[0]
        #expect(throws: Commit.Failure.duplicateValidator(Self.v1.publicKey)) { try c.verify(header: h, validators: Self.validators) }
        c = good
        c.round = 1 // signatures were over round 0
        #expect(throws: Commit.Failure.badSignature(Self.v1.publicKey)) { try c.verify(header: h, validators: Self.validators) }
        c = good
        c.signatures[1].signature = good.signatures[2].signature
        #expect(throws: Commit.Failure.badSignature(Self.v2.publicKey)) { try c.verify(header: h, validators: Self.validators) }
        // A vote for the same block on another chain is not a vote here.
        let other = Commit.voteBytes(chainID: "other", height: h.height, round: 0, blockHash: h.hash)
        c = good
        c.signatures[0].signature = Self.v1.sign(other)
        #expect(throws: Commit.Failure.badSignature(Self.v1.publicKey)) { try c.verify(header: h, validators: Self.validators) }
    }

    @Test("a transaction proof checks signature, size, root and commit")
    func transactionProof() throws {
        let sender = Fixture.ed25519(0x11)
        let txs = (0..<5).map { Fixture.transaction(nonce: UInt64($0), key: sender).signed(with: sender) }
        let h = Self.header(transactions: txs)
        let commit = Self.commit(h, by: [Self.v1, Self.v2, Self.v3])
        let leafHashes = Block.leafHashes(txs)
        for i in txs.indices {
            let proof = try #require(MerkleTree.proof(leafHashes: leafHashes, index: i))
            let tp = TransactionProof(transaction: txs[i], proof: proof, header: h, commit: commit)
            try tp.verify()
            try tp.verify(validators: Self.validators)
            var bad = tp
            bad.transaction = txs[(i + 1) % txs.count]
            #expect(throws: TransactionProof.Failure.rootMismatch) { try bad.verify() }
            bad = tp
            bad.transaction.signature = Fixture.signature(1)
            #expect(throws: TransactionProof.Failure.badTransactionSignature) { try bad.verify() }
            bad = tp
            bad.proof.treeSize += 1
            #expect(throws: TransactionProof.Failure.sizeMismatch) { try bad.verify() }
            bad = tp
            bad.commit = nil
            try bad.verify()
            #expect(throws: TransactionProof.Failure.missingCommit) { try bad.verify(validators: Self.validators) }
            bad = tp
            bad.commit = Self.commit(h, by: [Self.v1])
            #expect(throws: TransactionProof.Failure.commit(.insufficientPower(signed: 1, total: 3))) { try bad.verify(validators: Self.validators) }
        }
    }

    // MARK: genesis

    static let genesis = Genesis(
        chainId: "iomt-test", genesisTimeMs: 1_700_000_000_000,
        organisations: [Organisation(id: "st-marys", name: "St Mary's", kind: "hospital"), Organisation(id: "city-clinic", name: "City Clinic", kind: "clinic")],
        admins: [.init(publicKey: Fixture.ed25519(0xA1).publicKey, organisation: "st-marys"), .init(publicKey: Fixture.p256(0xB1).publicKey, organisation: "city-clinic", label: "b")],
        adminQuorum: 2, validators: [Validator(publicKey: Fixture.ed25519(0x71).publicKey, organisation: "st-marys")], consensus: ConsensusParameters())

    @Test("a valid genesis validates and yields a deterministic initial state and block")
    func genesisState() throws {
        try Self.genesis.validate()
        let s = Self.genesis.initialState()
        #expect(s.count == 1 + 2 + 2 + 1 + 4) // chain id, orgs, admin accounts, the validator's node account, admins/governance/validators/consensus
        #expect(s.root == Self.genesis.initialState().root)
        let admin = try Account(canonicalBytes: try #require(s.value(forKey: StateKeys.account(Fixture.ed25519(0xA1).publicKey.address))))
        #expect(admin.role == .memberAdmin && admin.organisation == "st-marys" && admin.nonce == 0 && admin.status == .active)
        let admins = try AddressSet(canonicalBytes: try #require(s.value(forKey: StateKeys.admins)))
        #expect(admins.count == 2)
        let node = try Account(canonicalBytes: try #require(s.value(forKey: StateKeys.account(Fixture.ed25519(0x71).publicKey.address))))
        #expect(node.role == .node && node.organisation == "st-marys" && node.status == .active)
        #expect(try GovernanceParameters(canonicalBytes: try #require(s.value(forKey: StateKeys.governance))).adminQuorum == 2)
        let block = Self.genesis.genesisBlock()
        #expect(block.header.height == 0 && block.header.stateRoot == s.root && block.commit == nil)
        #expect(block.header.transactionsRoot == MerkleTree.emptyRoot)
        #expect(block.hash == Self.genesis.genesisBlock().hash)
        var g = Self.genesis
        g.adminQuorum = 1
        #expect(g.genesisBlock().hash != block.hash)
    }

    @Test("invalid genesis files are refused")
    func genesisInvalid() {
        var cases: [Genesis] = []
        var g = Self.genesis; g.chainId = "Bad Chain"; cases.append(g)
        g = Self.genesis; g.chainId = ""; cases.append(g)
        g = Self.genesis; g.organisations = []; cases.append(g)
        g = Self.genesis; g.organisations.append(g.organisations[0]); cases.append(g)
        g = Self.genesis; g.organisations[0].id = "St-Marys"; cases.append(g)
        g = Self.genesis; g.admins = []; cases.append(g)
        g = Self.genesis; g.admins.append(g.admins[0]); cases.append(g)
        g = Self.genesis; g.admins[0].organisation = "nowhere"; cases.append(g)
        g = Self.genesis; g.adminQuorum = 0; cases.append(g)
        g = Self.genesis; g.adminQuorum = 3; cases.append(g)
        g = Self.genesis; g.validators = []; cases.append(g)
        g = Self.genesis; g.validators.append(g.validators[0]); cases.append(g)
        g = Self.genesis; g.validators[0].organisation = "nowhere"; cases.append(g)
        g = Self.genesis; g.validators[0].power = 0; cases.append(g)
        g = Self.genesis; g.consensus.maxTransactionBytes = 100; cases.append(g)
        g = Self.genesis; g.consensus.maxBlockBytes = g.consensus.maxTransactionBytes - 1; cases.append(g)
        g = Self.genesis; g.consensus.maxBlockTransactions = 0; cases.append(g)
        g = Self.genesis; g.consensus.blockIntervalMs = 0; cases.append(g)
        g = Self.genesis; g.consensus.blockIntervalMs = 60_001; cases.append(g)
        for (i, g) in cases.enumerated() {
            #expect(throws: Genesis.Invalid.self, "case \(i)") { try g.validate() }
        }
        #expect(Genesis.isValidIdentifier("a.b_c-9"))
        #expect(!Genesis.isValidIdentifier(String(repeating: "a", count: 65)))
        #expect(Genesis.isValidIdentifier(String(repeating: "a", count: 64)))
        #expect(!Genesis.isValidIdentifier("café"))
    }
}
