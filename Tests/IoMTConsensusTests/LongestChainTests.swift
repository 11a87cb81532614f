import IoMTConsensus
import IoMTCore
import Testing

@Suite("Proof of work: compact targets, work, retargeting")
struct ProofOfWorkTests {
    @Test("compact targets decode and re-encode as Bitcoin's (known answers)")
    func compactKnownAnswers() throws {
        // Bitcoin's genesis difficulty: 0x00000000FFFF0000…0.
        let t = try #require(ProofOfWork.target(0x1d00_ffff))
        #expect(t == [0, 0, 0, 0, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 26))
        #expect(ProofOfWork.compact(t) == 0x1d00_ffff)
        // Bitcoin Core's arith_uint256 tests: 0x05009234 is 0x92340000, 0x04923456 is negative.
        #expect(ProofOfWork.target(0x0500_9234) == [UInt8](repeating: 0, count: 28) + [0x92, 0x34, 0, 0])
        #expect(ProofOfWork.target(0x0492_3456) == nil)
        #expect(ProofOfWork.compact([UInt8](repeating: 0, count: 28) + [0x92, 0x34, 0, 0]) == 0x0500_9234)
        // A mantissa with its top bit set is shifted: 0x80 → 0x02008000.
        #expect(ProofOfWork.compact([UInt8](repeating: 0, count: 31) + [0x80]) == 0x0200_8000)
        #expect(ProofOfWork.compact(ProofOfWork.maximumTarget) == 0x207f_ffff)
        // Overflowing encodings are refused.
        #expect(ProofOfWork.target(0xff12_3456) == nil)
    }

    @Test("work is 2^256 / target: Bitcoin's chain work of its genesis block")
    func workKnownAnswer() {
        #expect(ProofOfWork.work(0x1d00_ffff) == 4_295_032_833)  // 0x100010001, Bitcoin's block 0 chainwork
        #expect(ProofOfWork.work(0x207f_ffff) == 2)
        // Harder targets have more work.
        #expect(ProofOfWork.work(ProofOfWork.compact(expectedHashes: 1 << 20)) > ProofOfWork.work(ProofOfWork.compact(expectedHashes: 1 << 16)))
        let w = ProofOfWork.work(ProofOfWork.compact(expectedHashes: 1 << 16))
        #expect(w >= 65_000 && w <= 66_000)
    }

    @Test("retargeting: Bitcoin's first retarget, the ×4 and ÷4 clamps, the easiest-target cap")
    func retargetKnownAnswers() {
        // Bitcoin Core pow_tests get_next_work: the span 1261130161…1262152739 over two weeks.
        #expect(ProofOfWork.retarget(0x1d00_ffff, actualMs: (1_262_152_739 - 1_261_130_161) * 1000, expectedMs: 1_209_600_000) == 0x1d00_d86a)
        // get_next_work_lower_limit_actual: clamped to a quarter.
        #expect(ProofOfWork.retarget(0x1c05_a3f4, actualMs: (1_279_297_671 - 1_279_008_237) * 1000, expectedMs: 1_209_600_000) == 0x1c01_68fd)
        // get_next_work_upper_limit_actual: clamped to four times.
        #expect(ProofOfWork.retarget(0x1c38_7f6f, actualMs: (1_269_211_443 - 1_263_163_443) * 1000, expectedMs: 1_209_600_000) == 0x1d00_e1fd)
        // get_next_work_pow_limit: never easier than the limit.
        #expect(ProofOfWork.retarget(0x207f_ffff, actualMs: 10_000, expectedMs: 1_000) == 0x207f_ffff)
        // Blocks twice as fast as wanted: twice the work.
        let bits = ProofOfWork.compact(expectedHashes: 1 << 16)
        let harder = ProofOfWork.retarget(bits, actualMs: 500, expectedMs: 1_000)
        #expect(ProofOfWork.work(harder) >= 2 * ProofOfWork.work(bits) - 2 && ProofOfWork.work(harder) <= 2 * ProofOfWork.work(bits) + 2)
    }

    @Test("the target changes only at retarget heights, from the window's timestamps")
    func expectedDifficultySchedule() {
        let mode = ConsensusMode(kind: .pow, retargetInterval: 10)
        let d = mode.initialDifficulty
        #expect(ProofOfWork.expectedDifficulty(height: 1, parentDifficulty: 0, mode: mode, blockIntervalMs: 100, parentTimeMs: 0, windowStartMs: 0) == d)
        #expect(ProofOfWork.expectedDifficulty(height: 9, parentDifficulty: d, mode: mode, blockIntervalMs: 100, parentTimeMs: 5, windowStartMs: 0) == d)
        // Nine intervals of 100 ms wanted; 450 ms taken: the target halves (twice the work).
        let next = ProofOfWork.expectedDifficulty(height: 10, parentDifficulty: d, mode: mode, blockIntervalMs: 100, parentTimeMs: 1_450, windowStartMs: 1_000)
        #expect(next == ProofOfWork.retarget(d, actualMs: 450, expectedMs: 900))
        #expect(ProofOfWork.work(next) > ProofOfWork.work(d))
    }

    @Test("a found nonce meets the target; the search is the header hash")
    func searchFindsValidNonce() throws {
        var header = BlockHeader(chainID: "pow-test", height: 1, previousHash: Hash.sha256([1]), transactionsRoot: MerkleTree.emptyRoot,
                                 transactionCount: 0, stateRoot: Hash.sha256([2]), validatorsHash: Hash.sha256([3]), timestampMs: 1_000,
                                 proposer: PrivateKey.generate(.ed25519).publicKey.address, difficultyTarget: ProofOfWork.compact(expectedHashes: 256))
        let nonce = try #require(ProofOfWork.search(header, from: 0, count: 1 << 16))
        header.powNonce = nonce
        #expect(ProofOfWork.meets(header.hash, header.difficultyTarget))
        // Every nonce before the one found fails.
        for n in 0..<nonce {
            header.powNonce = n
            #expect(!ProofOfWork.meets(header.hash, header.difficultyTarget))
        }
        #expect(!ProofOfWork.meets(Hash(bytes: [UInt8](repeating: 0xFF, count: 32))!, header.difficultyTarget))
    }

    @Test("genesis: a pow mode is validated, written to state, and changes the chain's identity; BFT's genesis is unchanged")
    func genesisMode() throws {
        let key = PrivateKey.generate(.ed25519)
        var g = Genesis(chainId: "modes", genesisTimeMs: 1, organisations: [Organisation(id: "o", name: "O", kind: "hospital")],
                        admins: [.init(publicKey: key.publicKey, organisation: "o")], adminQuorum: 1,
                        validators: [Validator(publicKey: key.publicKey, organisation: "o")], consensus: ConsensusParameters())
        let bft = g.genesisBlock().hash
        g.consensusMode = .bft
        #expect(g.genesisBlock().hash == bft)
        g.consensusMode = ConsensusMode(kind: .pow)
        try g.validate()
        #expect(g.genesisBlock().hash != bft)
        #expect(g.genesisBlock().header.difficultyTarget == g.mode.initialDifficulty)
        #expect(try ConsensusMode(canonicalBytes: #require(g.initialState().value(forKey: StateKeys.consensusMode))) == g.mode)
        g.consensusMode = ConsensusMode(kind: .pow, confirmationDepth: 0)
        #expect(throws: Genesis.Invalid.self) { try g.validate() }
        g.consensusMode = ConsensusMode(kind: .pow, initialDifficulty: 0x0492_3456)
        #expect(throws: Genesis.Invalid.self) { try g.validate() }
        g.consensusMode = ConsensusMode(kind: .poa)
        #expect(g.mode.confirmationDepth == 2)
        try g.validate()
        // Six authorities need depth ≥ 3.
        g.validators = (0..<6).map { _ in Validator(publicKey: PrivateKey.generate(.ed25519).publicKey, organisation: "o") }
        #expect(throws: Genesis.Invalid.self) { try g.validate() }
        g.consensusMode = ConsensusMode(kind: .poa, confirmationDepth: 3)
        try g.validate()
    }
}

@Suite("Proof of authority: slots and seals")
struct ProofOfAuthorityTests {
    static let keys = (0..<4).map { _ in PrivateKey.generate(.ed25519) }
    static let validators = keys.map { Validator(publicKey: $0.publicKey, organisation: "o") }

    func header(slot: UInt64, proposer: Int) -> BlockHeader {
        BlockHeader(chainID: "poa", height: 5, previousHash: Hash.sha256([1]), transactionsRoot: MerkleTree.emptyRoot, transactionCount: 0,
                    stateRoot: Hash.sha256([2]), validatorsHash: Validator.setHash(Self.validators), timestampMs: 1_000 + Int64(slot) * 100 + 7,
                    proposer: Self.keys[proposer].publicKey.address)
    }

    @Test("slot s belongs to validator s mod n")
    func schedule() {
        #expect(ProofOfAuthority.slot(timestampMs: 1_000, genesisTimeMs: 1_000, intervalMs: 100) == 0)
        #expect(ProofOfAuthority.slot(timestampMs: 1_099, genesisTimeMs: 1_000, intervalMs: 100) == 0)
        #expect(ProofOfAuthority.slot(timestampMs: 1_100, genesisTimeMs: 1_000, intervalMs: 100) == 1)
        for s: UInt64 in 0..<9 { #expect(ProofOfAuthority.authority(slot: s, validators: Self.validators) == Self.validators[Int(s % 4)]) }
    }

    @Test("the slot's authority's seal verifies; another validator, another block or a bad signature does not")
    func seals() {
        let h = header(slot: 6, proposer: 2)
        let good = ProofOfAuthority.seal(h, with: Self.keys[2])
        #expect(ProofOfAuthority.checkSeal(good, header: h, genesisTimeMs: 1_000, intervalMs: 100, validators: Self.validators, recentSigners: []) == nil)
        #expect(ProofOfAuthority.checkSeal(nil, header: h, genesisTimeMs: 1_000, intervalMs: 100, validators: Self.validators, recentSigners: []) != nil)
        // Validator 3 sealing in validator 2's slot.
        let wrong = header(slot: 6, proposer: 3)
        #expect(ProofOfAuthority.checkSeal(ProofOfAuthority.seal(wrong, with: Self.keys[3]), header: wrong, genesisTimeMs: 1_000, intervalMs: 100, validators: Self.validators, recentSigners: []) != nil)
        // A seal of another block.
        #expect(ProofOfAuthority.checkSeal(ProofOfAuthority.seal(header(slot: 10, proposer: 2), with: Self.keys[2]), header: h, genesisTimeMs: 1_000, intervalMs: 100, validators: Self.validators, recentSigners: []) != nil)
        // A forged signature.
        var forged = good
        forged.signatures[0].signature = Signature(bytes: [UInt8](repeating: 7, count: 64))!
        #expect(ProofOfAuthority.checkSeal(forged, header: h, genesisTimeMs: 1_000, intervalMs: 100, validators: Self.validators, recentSigners: []) == "authority seal signature does not verify")
    }

    @Test("Clique's rule: an authority that sealed one of the last ⌊n/2⌋ blocks may not seal, so a cut-off minority stalls")
    func recentSigners() {
        let h = header(slot: 6, proposer: 2)
        let seal = ProofOfAuthority.seal(h, with: Self.keys[2])
        let a = Self.keys.map(\.publicKey.address)
        func check(_ recent: [Address]) -> String? {
            ProofOfAuthority.checkSeal(seal, header: h, genesisTimeMs: 1_000, intervalMs: 100, validators: Self.validators, recentSigners: recent)
        }
        #expect(ProofOfAuthority.recentWindow(4) == 2 && ProofOfAuthority.recentWindow(7) == 3)
        #expect(check([a[1], a[0], a[3]]) == nil)          // its last block was three back: fine
        #expect(check([a[1], a[2]]) != nil)                // two back: refused
        #expect(check([a[2]]) != nil)                      // the parent: refused
        #expect(check([a[1], a[0], a[2]]) == nil)          // beyond the window
        // Two of four authorities alone (0 and 2) can add blocks only while the other is not in
        // the last two: after sealing 0, 2 they stall, so with depth 2 nothing of theirs is final.
        var chain: [Address] = []
        var sealed = 0
        for s: UInt64 in 0..<40 where [0, 2].contains(Int(s % 4)) {
            let who = a[Int(s % 4)]
            if !ProofOfAuthority.mayNotSeal(who, recentSigners: chain.reversed(), authorities: 4) { chain.append(who); sealed += 1 }
        }
        #expect(sealed == 2)
    }
}

@Suite("Longest-chain fork choice (BlockTree)")
struct BlockTreeTests {
    static func id(_ s: String) -> Hash { Hash.sha256(Array(s.utf8)) }
    static let root = BlockTree.Entry(id: id("root"), parent: .zero, height: 10, timestampMs: 0, difficulty: 0, cumulativeWork: 0)

    @discardableResult
    static func add(_ t: inout BlockTree, _ name: String, on parent: String, height: UInt64, work: UInt64 = 1) -> BlockTree.Insertion {
        t.insert(id: id(name), parent: parent == "root" ? root.id : id(parent), height: height, timestampMs: Int64(height), difficulty: 0, work: work)
    }

    @Test("the longest chain wins; a heavier fork reorganises; ties go to the lower hash on every node")
    func forkChoice() {
        var t = BlockTree(root: Self.root, depth: 3)
        #expect(Self.add(&t, "a11", on: "root", height: 11) == .added(newBest: true, reorganised: false))
        #expect(Self.add(&t, "a12", on: "a11", height: 12) == .added(newBest: true, reorganised: false))
        #expect(Self.add(&t, "b12", on: "a11", height: 12) == .added(newBest: Self.id("b12").bytes.lexicographicallyPrecedes(Self.id("a12").bytes), reorganised: Self.id("b12").bytes.lexicographicallyPrecedes(Self.id("a12").bytes)))
        let tip12 = t.best.id
        // Whichever arrives first, the same tip.
        var u = BlockTree(root: Self.root, depth: 3)
        Self.add(&u, "a11", on: "root", height: 11)
        Self.add(&u, "b12", on: "a11", height: 12)
        Self.add(&u, "a12", on: "a11", height: 12)
        #expect(u.best.id == tip12)
        // The other fork grows: it wins, a reorganisation.
        let loser = tip12 == Self.id("a12") ? "b12" : "a12"
        #expect(Self.add(&t, "x13", on: loser, height: 13) == .added(newBest: true, reorganised: true))
        // b12 replacing a12 on a tie was a reorganisation too.
        #expect(t.reorganisations == (Self.id("b12").bytes.lexicographicallyPrecedes(Self.id("a12").bytes) ? 2 : 1))
        #expect(t.chain(to: t.best.id).map(\.id) == [Self.id("a11"), Self.id(loser), Self.id("x13")])
        // More work beats more blocks (proof of work).
        var w = BlockTree(root: Self.root, depth: 3)
        Self.add(&w, "long1", on: "root", height: 11, work: 10)
        Self.add(&w, "long2", on: "long1", height: 12, work: 10)
        Self.add(&w, "heavy", on: "root", height: 11, work: 25)
        #expect(w.best.id == Self.id("heavy"))
    }

    @Test("unknown parents, duplicates, wrong heights and blocks at or below the final height are refused")
    func refusals() {
        var t = BlockTree(root: Self.root, depth: 2)
        #expect(Self.add(&t, "a11", on: "nowhere", height: 11) == .unknownParent)
        #expect(Self.add(&t, "a11", on: "root", height: 11) == .added(newBest: true, reorganised: false))
        #expect(Self.add(&t, "a11", on: "root", height: 11) == .duplicate)
        if case .rejected = Self.add(&t, "skip", on: "a11", height: 13) {} else { Issue.record("a height gap was accepted") }
        if case .rejected = Self.add(&t, "old", on: "root", height: 10) {} else { Issue.record("a block at the final height was accepted") }
        #expect(t.count == 1)
    }

    @Test("a block is final with depth blocks on top; forks off the final chain are forgotten and can never win")
    func finality() {
        var t = BlockTree(root: Self.root, depth: 2)
        Self.add(&t, "a11", on: "root", height: 11)
        Self.add(&t, "b11", on: "root", height: 11)
        Self.add(&t, "a12", on: "a11", height: 12)
        #expect(t.finalise().final.isEmpty)  // a11 has one block on top, needs two
        Self.add(&t, "a13", on: "a12", height: 13)
        let (final, pruned) = t.finalise()
        #expect(final.map(\.id) == [Self.id("a11")])
        #expect(pruned == [Self.id("b11")])
        #expect(t.root.id == Self.id("a11") && t.root.height == 11)
        #expect(!t.contains(Self.id("b11")))
        // The forgotten fork's children now have an unknown parent, and a block at the final
        // height is refused: nothing final is ever reorganised away.
        #expect(Self.add(&t, "b12", on: "b11", height: 12, work: 1_000) == .unknownParent)
        if case .rejected = Self.add(&t, "c11", on: "root", height: 11) {} else { Issue.record("a block at the final height was accepted") }
        // Finality proceeds block by block along the best chain.
        Self.add(&t, "a14", on: "a13", height: 14)
        Self.add(&t, "a15", on: "a14", height: 15)
        #expect(t.finalise().final.map(\.id) == [Self.id("a12"), Self.id("a13")])
        #expect(t.best.id == Self.id("a15") && t.count == 2)
    }
}
