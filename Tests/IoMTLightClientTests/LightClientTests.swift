import IoMTCore
import Testing

@Suite("Light client: headers")
struct LightClientHeaderTests {
    func client(_ chain: TestChain) throws -> LightClient { try LightClient(genesis: chain.genesis) }

    @Test("starts from genesis: block 0 is trusted, its hash names the chain")
    func trustsGenesis() throws {
        let chain = TestChain()
        let lc = try client(chain)
        #expect(lc.latestHeight == 0)
        #expect(lc.genesisHash == chain.block(0).hash)
        #expect(lc.verifiedHeader(at: 0)?.validators == chain.genesis.validators)
        #expect(throws: LightClientError.genesisHashMismatch(expected: .zero, computed: chain.block(0).hash)) {
            try LightClient(genesis: chain.genesis, expectedGenesisHash: .zero)
        }
        var bad = chain.genesis
        bad.validators = []
        #expect(throws: LightClientError.invalidGenesis("at least one validator")) { try LightClient(genesis: bad) }
    }

    @Test("sequential: every header from 1 to 10 verified against the trusted set")
    func sequential() throws {
        var chain = TestChain()
        chain.extend(to: 10)
        var lc = try client(chain)
        for h in UInt64(1)...10 {
            let v = try lc.verify(header: chain.header(h), commit: chain.commit(h))
            #expect(v.header == chain.header(h))
        }
        #expect(lc.latestHeight == 10)
        #expect(lc.latest.validators == chain.genesis.validators)
    }

    @Test("sequential refuses a header that is not the next one")
    func sequentialNotAdjacent() throws {
        var chain = TestChain()
        chain.extend(to: 3)
        var lc = try client(chain)
        #expect(throws: LightClientError.notAdjacent(trustedHeight: 0, got: 2)) { try lc.verify(header: chain.header(2), commit: chain.commit(2)) }
    }

    @Test("skipping: genesis straight to 20 when the set is unchanged, one fetch")
    func skipping() throws {
        var chain = TestChain()
        chain.extend(to: 20)
        var lc = try client(chain)
        let log = FetchLog()
        let v = try lc.verifyTo(targetHeight: 20) { h in log.heights.append(h); return chain.lightBlock(h) }
        #expect(v.header == chain.header(20))
        #expect(log.heights == [20])
        #expect(lc.latestHeight == 20)
        #expect(lc.verifiedHeader(at: 10) == nil)
    }

    @Test("skipping with an asynchronous fetch")
    func skippingAsync() async throws {
        var chain = TestChain()
        chain.extend(to: 5)
        var lc = try client(chain)
        let c = chain
        let v = try await lc.verifyTo(targetHeight: 5) { (h: UInt64) async throws -> LightBlock in
            await Task.yield()
            return c.lightBlock(h)
        }
        #expect(v.header.height == 5)
    }

    /// (powers, signers, signed power, total power)
    static let underTwoThirds: [([UInt64], [Int], UInt64, UInt64)] = [
        ([], [0, 1], 2, 4),
        ([], [0], 1, 4),
        ([1, 1, 1, 3], [0, 3], 4, 6),  // exactly two thirds
    ]

    @Test("a commit with two thirds of the power or less is refused", arguments: underTwoThirds)
    func insufficientPower(powers: [UInt64], signers: [Int], signed: UInt64, total: UInt64) throws {
        var p: [Int: UInt64] = [:]
        for (i, w) in powers.enumerated() { p[i] = w }
        var chain = TestChain(powers: p)
        chain.append(signers: signers)
        var lc = try client(chain)
        #expect(throws: LightClientError.commit(height: 1, .insufficientPower(signed: signed, total: total))) {
            try lc.verify(header: chain.header(1), commit: chain.commit(1))
        }
        #expect(lc.latestHeight == 0)
    }

    @Test("three of four signatures are enough")
    func threeOfFour() throws {
        var chain = TestChain()
        chain.append(signers: [0, 2, 3])
        var lc = try client(chain)
        try lc.verify(header: chain.header(1), commit: chain.commit(1))
        #expect(lc.latestHeight == 1)
    }

    @Test("a forged signature is refused, sequentially and when skipping")
    func forgedSignature() throws {
        var chain = TestChain()
        chain.extend(to: 5)
        var commit = chain.commit(1)
        // Validator 2's slot carries a signature made by key 9 over the same vote.
        let vote = Commit.voteBytes(chainID: TestChain.chainID, height: 1, round: 0, blockHash: chain.header(1).hash)
        commit.signatures[2].signature = validatorKey(9).sign(vote)
        var lc = try client(chain)
        #expect(throws: LightClientError.commit(height: 1, .badSignature(validatorKey(2).publicKey))) {
            try lc.verify(header: chain.header(1), commit: commit)
        }
        var skip = chain.commit(5)
        skip.signatures[0].signature = validatorKey(0).sign(vote)  // a real signature, for another block
        #expect(throws: LightClientError.commit(height: 5, .badSignature(validatorKey(0).publicKey))) {
            try lc.verifySkipping(header: chain.header(5), commit: skip, validators: chain.sets[5])
        }
    }

    @Test("a duplicate signer is refused, sequentially and when skipping")
    func duplicateSigner() throws {
        var chain = TestChain()
        chain.append(signers: [0, 1])
        chain.extend(to: 5)
        var lc = try client(chain)
        var commit = chain.commit(1)
        commit.signatures.append(commit.signatures[0])  // 0, 1, 0: would be 3 of 4 if counted twice
        #expect(throws: LightClientError.commit(height: 1, .duplicateValidator(validatorKey(0).publicKey))) {
            try lc.verify(header: chain.header(1), commit: commit)
        }
        var skip = chain.commit(5)
        skip.signatures.append(skip.signatures[1])
        #expect(throws: LightClientError.commit(height: 5, .duplicateValidator(validatorKey(1).publicKey))) {
            try lc.verifySkipping(header: chain.header(5), commit: skip, validators: chain.sets[5])
        }
    }

    @Test("a signature by a key outside the set is refused")
    func unknownSigner() throws {
        var chain = TestChain()
        chain.append()
        var lc = try client(chain)
        let (h, c) = TestChain.resigned(chain.header(1), by: [0, 1, 2, 7].map(validatorKey))
        #expect(throws: LightClientError.commit(height: 1, .unknownValidator(validatorKey(7).publicKey))) { try lc.verify(header: h, commit: c) }
    }

    @Test("a header whose previousHash does not link is refused even when the set signed it")
    func previousHashDoesNotLink() throws {
        var chain = TestChain()
        chain.extend(to: 2)
        var lc = try client(chain)
        try lc.verify(header: chain.header(1), commit: chain.commit(1))
        var forged = chain.header(2)
        forged.previousHash = Hash.sha256(Array("elsewhere".utf8))
        let (h, c) = TestChain.resigned(forged, by: [0, 1, 2, 3].map(validatorKey))
        #expect(throws: LightClientError.previousHashMismatch(height: 2, expected: chain.header(1).hash, got: forged.previousHash)) {
            try lc.verify(header: h, commit: c)
        }
        // verify(_:) checks linkage before choosing a rule.
        #expect(throws: LightClientError.previousHashMismatch(height: 2, expected: chain.header(1).hash, got: forged.previousHash)) {
            try lc.verify(LightBlock(header: h, commit: c, validators: chain.sets[2]))
        }
    }

    @Test("a header of another chain is refused")
    func wrongChainID() throws {
        var chain = TestChain()
        chain.extend(to: 3)
        var lc = try client(chain)
        var forged = chain.header(1)
        forged.chainID = "other-chain"
        let (h, c) = TestChain.resigned(forged, by: [0, 1, 2, 3].map(validatorKey))
        #expect(throws: LightClientError.wrongChain(expected: TestChain.chainID, got: "other-chain")) { try lc.verify(header: h, commit: c) }
        #expect(throws: LightClientError.wrongChain(expected: TestChain.chainID, got: "other-chain")) {
            try lc.verifySkipping(header: h, commit: c, validators: chain.sets[1])
        }
    }

    @Test("a validator-set hash that is not the trusted set is refused")
    func validatorsHashMismatch() throws {
        var chain = TestChain()
        chain.extend(to: 3)
        var lc = try client(chain)
        // Sequential: the header names a set of four other keys, and that set signed it.
        var forged = chain.header(1)
        let impostors = validators([4, 5, 6, 7])
        forged.validatorsHash = Validator.setHash(impostors)
        let (h, c) = TestChain.resigned(forged, by: [4, 5, 6, 7].map(validatorKey))
        #expect(throws: LightClientError.validatorsHashMismatch(height: 1, header: forged.validatorsHash, validators: Validator.setHash(chain.genesis.validators))) {
            try lc.verify(header: h, commit: c)
        }
        // Skipping: the caller-supplied set does not hash to the header's validatorsHash.
        #expect(throws: LightClientError.validatorsHashMismatch(height: 3, header: chain.header(3).validatorsHash, validators: Validator.setHash(impostors))) {
            try lc.verifySkipping(header: chain.header(3), commit: chain.commit(3), validators: impostors)
        }
        // Skipping with the impostors' own consistent set: the trusted set signed nothing.
        #expect(throws: LightClientError.insufficientTrustedPower(height: 1, signed: 0, total: 4)) {
            try lc.verifySkipping(header: h, commit: c, validators: impostors)
        }
    }

    @Test("a header at a verified height with another hash is a conflict")
    func conflictingHeader() throws {
        var chain = TestChain()
        chain.extend(to: 2)
        var lc = try client(chain)
        try lc.verify(chain.lightBlock(1))
        var forged = chain.header(1)
        forged.timestampMs += 1
        let (h, c) = TestChain.resigned(forged, by: [0, 1, 2, 3].map(validatorKey))
        #expect(throws: LightClientError.conflictingHeader(height: 1, verified: chain.header(1).hash, got: h.hash)) {
            try lc.verify(LightBlock(header: h, commit: c, validators: chain.sets[1]))
        }
    }

    @Test("a header whose time does not advance is refused")
    func timestampNotIncreasing() throws {
        var chain = TestChain()
        chain.append()
        var lc = try client(chain)
        var forged = chain.header(1)
        forged.timestampMs = chain.genesis.genesisTimeMs
        let (h, c) = TestChain.resigned(forged, by: [0, 1, 2, 3].map(validatorKey))
        #expect(throws: LightClientError.timestampNotIncreasing(height: 1, trustedMs: chain.genesis.genesisTimeMs, gotMs: chain.genesis.genesisTimeMs)) {
            try lc.verify(header: h, commit: c)
        }
    }

    @Test("a fetch that answers another height is refused; a failing fetch names the height")
    func fetchErrors() throws {
        var chain = TestChain()
        chain.extend(to: 4)
        var lc = try client(chain)
        #expect(throws: LightClientError.fetchedWrongHeight(requested: 4, got: 3)) { try lc.verifyTo(targetHeight: 4) { _ in chain.lightBlock(3) } }
        struct Down: Error, CustomStringConvertible { var description: String { "node down" } }
        #expect(throws: LightClientError.fetchFailed(height: 4, reason: "node down")) { try lc.verifyTo(targetHeight: 4) { _ in throw Down() } }
    }

    @Test("backwards: a header below a verified one is verified by hash linkage")
    func backwards() throws {
        var chain = TestChain()
        chain.extend(to: 6)
        var lc = try client(chain)
        try lc.verifySkipping(header: chain.header(6), commit: chain.commit(6), validators: chain.sets[6])
        try lc.verifyBackwards(header: chain.header(5), validators: chain.sets[5])
        try lc.verifyBackwards(header: chain.header(4), validators: chain.sets[4])
        #expect(lc.verifiedHeader(at: 4)?.header == chain.header(4))
        var forged = chain.header(3)
        forged.stateRoot = .zero
        #expect(throws: LightClientError.previousHashMismatch(height: 4, expected: forged.hash, got: chain.header(3).hash)) {
            try lc.verifyBackwards(header: forged, validators: chain.sets[3])
        }
        #expect(throws: LightClientError.headerNotVerified(height: 2)) { try lc.verifyBackwards(header: chain.header(1), validators: chain.sets[1]) }
    }

    @Test("retained headers are bounded; genesis and the latest stay")
    func bounded() throws {
        var chain = TestChain()
        chain.extend(to: 30)
        var lc = try LightClient(genesis: chain.genesis, maxRetainedHeaders: 8)
        for h in UInt64(1)...30 { try lc.verify(chain.lightBlock(h)) }
        #expect(lc.verifiedHeader(at: 0) != nil)
        #expect(lc.verifiedHeader(at: 30) != nil)
        #expect(lc.verifiedHeader(at: 1) == nil)
    }
}

@Suite("Light client: validator-set changes")
struct LightClientValidatorChangeTests {
    /// Validators 2 and 3 are replaced by 4 and 5 in the state after block 5, so 6 is signed by {0,1,4,5}.
    func chainWithChange() -> TestChain {
        var chain = TestChain()
        chain.extend(to: 4)
        chain.append(newSet: validators([0, 1, 4, 5]))
        chain.extend(to: 10)
        return chain
    }

    @Test("the set for h is the one in the state after h - 1")
    func setTakesEffectNextHeight() {
        let chain = chainWithChange()
        #expect(chain.header(5).validatorsHash == Validator.setHash(validators([0, 1, 2, 3])))
        #expect(chain.header(6).validatorsHash == Validator.setHash(validators([0, 1, 4, 5])))
    }

    @Test("sequential follows a change with the set's state proof against the previous header")
    func sequentialWithProof() throws {
        let chain = chainWithChange()
        var lc = try LightClient(genesis: chain.genesis)
        for h in UInt64(1)...5 { try lc.verify(header: chain.header(h), commit: chain.commit(h)) }
        // Without the proof the trusted set is still {0,1,2,3}: the new hash is refused.
        #expect(throws: LightClientError.validatorsHashMismatch(height: 6, header: chain.header(6).validatorsHash, validators: Validator.setHash(validators([0, 1, 2, 3])))) {
            try lc.verify(header: chain.header(6), commit: chain.commit(6))
        }
        let proof = chain.states[5].proof(forKey: StateKeys.validators)
        #expect(try lc.validatorSet(provenBy: proof, after: chain.header(5)) == validators([0, 1, 4, 5]))
        try lc.verify(header: chain.header(6), commit: chain.commit(6), validatorsProof: proof)
        #expect(lc.latest.validators == validators([0, 1, 4, 5]))
        for h in UInt64(7)...10 { try lc.verify(header: chain.header(h), commit: chain.commit(h)) }
        #expect(lc.latestHeight == 10)
    }

    @Test("a set proof from another state, or for another key, is refused")
    func badSetProof() throws {
        let chain = chainWithChange()
        var lc = try LightClient(genesis: chain.genesis)
        try lc.verifyTo(targetHeight: 5) { chain.lightBlock($0) }
        let stale = chain.states[6].proof(forKey: StateKeys.validators)
        #expect(throws: LightClientError.self) { try lc.verify(header: chain.header(6), commit: chain.commit(6), validatorsProof: stale) }
        let other = chain.states[5].proof(forKey: StateKeys.admins)
        #expect(throws: LightClientError.stateKeyMismatch(expected: Hex.encode(StateKeys.validators), got: Hex.encode(StateKeys.admins))) {
            try lc.verify(header: chain.header(6), commit: chain.commit(6), validatorsProof: other)
        }
    }

    @Test("verify(_:) follows a partial change by the skipping rule when no proof is served")
    func adjacentByTrust() throws {
        let chain = chainWithChange()
        var lc = try LightClient(genesis: chain.genesis)
        for h in UInt64(1)...10 { try lc.verify(chain.lightBlock(h)) }  // 6: {0,1} hold 2/4 > 1/3 of the trusted set
        #expect(lc.latest.validators == validators([0, 1, 4, 5]))
    }

    @Test("skipping across a change where the trusted set signed too little forces bisection")
    func bisection() throws {
        // {0,1,2,3} → (after 3) {0,1,4,5} → (after 7) {4,5,6,7}: block 10's signers include none of genesis' set.
        var chain = TestChain()
        chain.extend(to: 2)
        chain.append(newSet: validators([0, 1, 4, 5]))
        chain.extend(to: 6)
        chain.append(newSet: validators([4, 5, 6, 7]))
        chain.extend(to: 12)
        var direct = try LightClient(genesis: chain.genesis)
        #expect(throws: LightClientError.insufficientTrustedPower(height: 10, signed: 0, total: 4)) {
            try direct.verifySkipping(header: chain.header(10), commit: chain.commit(10), validators: chain.sets[10])
        }
        var lc = try LightClient(genesis: chain.genesis)
        let log = FetchLog()
        let v = try lc.verifyTo(targetHeight: 10) { h in log.heights.append(h); return chain.lightBlock(h) }
        #expect(v.header == chain.header(10))
        // 10 refused (0/4 trusted), 5 accepted ({0,1} of {0,1,2,3}), then 10 again from 5 ({4,5} of {0,1,4,5}): fetched once.
        #expect(log.heights == [10, 5])
        #expect(lc.verifiedHeader(at: 5)?.header == chain.header(5))
        #expect(lc.latest.validators == validators([4, 5, 6, 7]))
    }

    @Test("a complete replacement needs the set's state proof at the adjacent height")
    func completeReplacement() throws {
        var chain = TestChain()
        chain.extend(to: 3)
        chain.append(newSet: validators([4, 5, 6, 7]))  // signs 5 on
        chain.extend(to: 8)
        var noProof = try LightClient(genesis: chain.genesis)
        let log = FetchLog()
        // Bisects 8 → 4 → 6 → 5 and stops: at 5 the trusted set {0,1,2,3} signed nothing.
        #expect(throws: LightClientError.insufficientTrustedPower(height: 5, signed: 0, total: 4)) {
            try noProof.verifyTo(targetHeight: 8) { h in log.heights.append(h); return chain.lightBlock(h) }
        }
        #expect(log.heights == [8, 4, 6, 5])
        #expect(noProof.latestHeight == 4)
        var withProof = try LightClient(genesis: chain.genesis)
        try withProof.verifyTo(targetHeight: 8) { h in chain.lightBlock(h, proof: true) }
        #expect(withProof.latestHeight == 8)
    }

    @Test("a set of impostors cannot be slipped in at the change")
    func impostorsAtChange() throws {
        let chain = chainWithChange()
        var lc = try LightClient(genesis: chain.genesis)
        try lc.verifyTo(targetHeight: 5) { chain.lightBlock($0) }
        // A node serves a header 6 naming keys 8…11 and signed by them, with no proof.
        var forged = chain.header(6)
        forged.validatorsHash = Validator.setHash(validators([8, 9, 10, 11]))
        let (h, c) = TestChain.resigned(forged, by: [8, 9, 10, 11].map(validatorKey))
        #expect(throws: LightClientError.insufficientTrustedPower(height: 6, signed: 0, total: 4)) {
            try lc.verify(LightBlock(header: h, commit: c, validators: validators([8, 9, 10, 11])))
        }
        // With the honest set's proof the forged hash does not match the proven set.
        #expect(throws: LightClientError.validatorsHashMismatch(height: 6, header: forged.validatorsHash, validators: Validator.setHash(validators([0, 1, 4, 5])))) {
            try lc.verify(LightBlock(header: h, commit: c, validators: validators([8, 9, 10, 11]), validatorsProof: chain.states[5].proof(forKey: StateKeys.validators)))
        }
    }
}

@Suite("Light client: proofs")
struct LightClientProofTests {
    func verified(to h: UInt64) throws -> (TestChain, LightClient) {
        var chain = TestChain()
        chain.extend(to: 8)
        var lc = try LightClient(genesis: chain.genesis)
        for i in UInt64(1)...h { try lc.verify(header: chain.header(i), commit: chain.commit(i)) }
        return (chain, lc)
    }

    @Test("a transaction proof verifies against a verified header")
    func transactionProof() throws {
        let (chain, lc) = try verified(to: 5)
        for i in 0..<3 { try lc.verify(transactionProof: chain.transactionProof(height: 3, index: i)) }
    }

    @Test("tampered transaction proofs are refused")
    func tamperedTransactionProof() throws {
        let (chain, lc) = try verified(to: 5)
        var p = chain.transactionProof(height: 3, index: 1)
        p.transaction.transaction.nonce += 1
        #expect(throws: LightClientError.transactionProof(.badTransactionSignature)) { try lc.verify(transactionProof: p) }

        p = chain.transactionProof(height: 3, index: 1)
        p.transaction = chain.block(4).transactions[1]  // validly signed, but not in block 3
        #expect(throws: LightClientError.transactionProof(.rootMismatch)) { try lc.verify(transactionProof: p) }

        p = chain.transactionProof(height: 3, index: 1)
        p.proof.path[0] = Hash.sha256([1])
        #expect(throws: LightClientError.transactionProof(.rootMismatch)) { try lc.verify(transactionProof: p) }

        p = chain.transactionProof(height: 3, index: 1)
        p.header.transactionsRoot = MerkleTree.root(leafHashes: Block.leafHashes([p.transaction]))
        p.header.transactionCount = 1
        p.proof = InclusionProof(leafIndex: 0, treeSize: 1, path: [])
        #expect(throws: LightClientError.conflictingHeader(height: 3, verified: chain.header(3).hash, got: p.header.hash)) { try lc.verify(transactionProof: p) }

        #expect(throws: LightClientError.headerNotVerified(height: 7)) { try lc.verify(transactionProof: chain.transactionProof(height: 7, index: 0)) }
    }

    @Test("a state proof verifies against a verified header: present and absent keys")
    func stateProof() throws {
        let (chain, lc) = try verified(to: 5)
        let key = Array("test/height".utf8)
        let value = try lc.verify(stateProof: chain.states[5].proof(forKey: key), key: key, at: chain.header(5))
        #expect(value == UInt64(5).canonicalBytes)
        let absent = Array("test/nothing-here".utf8)
        #expect(try lc.verify(stateProof: chain.states[5].proof(forKey: absent), key: absent, at: chain.header(5)) == nil)
    }

    @Test("tampered state proofs are refused")
    func tamperedStateProof() throws {
        let (chain, lc) = try verified(to: 5)
        let key = Array("test/height".utf8)
        var p = chain.states[5].proof(forKey: key)
        p.value = UInt64(6).canonicalBytes
        #expect(throws: LightClientError.stateProof(.valueMismatch)) { try lc.verify(stateProof: p, key: key, at: chain.header(5)) }

        // An honest proof from another height's state does not match header 5's root.
        let other = chain.states[4].proof(forKey: key)
        #expect(throws: LightClientError.self) { try lc.verify(stateProof: other, key: key, at: chain.header(5)) }

        p = chain.states[5].proof(forKey: key)
        p.siblings[0] = Hash.sha256([7])
        #expect(throws: LightClientError.self) { try lc.verify(stateProof: p, key: key, at: chain.header(5)) }

        // A proof for another key is not a proof for this one.
        let otherKey = StateKeys.admins
        #expect(throws: LightClientError.stateKeyMismatch(expected: Hex.encode(key), got: Hex.encode(otherKey))) {
            try lc.verify(stateProof: chain.states[5].proof(forKey: otherKey), key: key, at: chain.header(5))
        }
        // Against a header the client never verified.
        #expect(throws: LightClientError.headerNotVerified(height: 6)) { try lc.verify(stateProof: chain.states[6].proof(forKey: key), key: key, at: chain.header(6)) }
        // Against a forged header carrying the forged state's root.
        var forgedHeader = chain.header(5)
        let forgedState = chain.states[5].applying([key: UInt64(999).canonicalBytes])
        forgedHeader.stateRoot = forgedState.root
        #expect(throws: LightClientError.conflictingHeader(height: 5, verified: chain.header(5).hash, got: forgedHeader.hash)) {
            try lc.verify(stateProof: forgedState.proof(forKey: key), key: key, at: forgedHeader)
        }
    }
}
