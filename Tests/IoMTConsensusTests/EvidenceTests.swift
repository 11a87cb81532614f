import IoMTConsensus
import IoMTCore
import Testing

@Suite("Equivocation evidence and message encodings")
struct EvidenceTests {
    let t = Harness()

    @Test("two different prevotes from one validator become evidence that verifies; forgeries do not")
    func duplicateVoteEvidence() throws {
        let i = t.nonProposer()
        var d = Driver(t.core(i), key: t.keys[i].publicKey)
        d.step(.startHeight(1, validators: t.set))
        let liar = t.others(than: i)[0]
        let a = t.value(1), b = t.value(2)
        d.step(t.vote(.prevote, a.id, by: liar))
        d.step(t.vote(.prevote, a.id, by: liar))
        #expect(d.evidence.isEmpty, "the same vote twice is not equivocation")
        d.step(t.vote(.prevote, b.id, by: liar))
        let e = try #require(d.evidence.first)
        #expect(d.evidence.count == 1)
        #expect(e.offender == t.keys[liar].publicKey)
        try e.verify(chainID: Harness.chainID, validators: t.set.validators)

        // Canonical: decoding gives the same evidence, and the same pair in either order is one id.
        let decoded = try Evidence(canonicalBytes: e.canonicalBytes)
        #expect(decoded == e)
        let va = t.signedVote(.prevote, a.id, by: liar), vb = t.signedVote(.prevote, b.id, by: liar)
        #expect(Evidence.duplicateVotes(va, vb) == Evidence.duplicateVotes(vb, va))

        // Forged: a second "vote" whose signature is not the liar's.
        var forged = vb
        forged.signature = t.signedVote(.prevote, b.id, by: t.others(than: i)[1]).signature
        #expect(throws: Evidence.Failure.badSignature(t.keys[liar].publicKey)) {
            try Evidence.duplicateVotes(va, forged).verify(chainID: Harness.chainID, validators: t.set.validators)
        }
        #expect(throws: Evidence.Failure.notConflicting) {
            try Evidence.duplicateVote(va, va).verify(chainID: Harness.chainID, validators: t.set.validators)
        }
        let other = t.signedVote(.prevote, b.id, by: t.others(than: i)[1])
        #expect(throws: Evidence.Failure.differentSigners) {
            try Evidence.duplicateVotes(va, other).verify(chainID: Harness.chainID, validators: t.set.validators)
        }
        let nextRound = t.signedVote(.prevote, b.id, round: 1, by: liar)
        #expect(throws: Evidence.Failure.differentSlots) {
            try Evidence.duplicateVotes(va, nextRound).verify(chainID: Harness.chainID, validators: t.set.validators)
        }
        #expect(throws: Evidence.Failure.unknownValidator(t.keys[liar].publicKey)) {
            try e.verify(chainID: Harness.chainID, validators: t.set.validators.filter { $0.publicKey != t.keys[liar].publicKey })
        }
        #expect(throws: Evidence.Failure.badSignature(t.keys[liar].publicKey)) {
            try e.verify(chainID: "another-chain", validators: t.set.validators)
        }
    }

    @Test("two different proposals from the round's proposer become evidence that verifies")
    func duplicateProposalEvidence() throws {
        let i = t.nonProposer()
        var d = Driver(t.core(i), key: t.keys[i].publicKey)
        d.step(.startHeight(1, validators: t.set))
        d.step(t.proposal(t.value(1)))
        d.step(t.proposal(t.value(2)))
        let e = try #require(d.evidence.first)
        guard case .duplicateProposal = e else { Issue.record("expected proposal evidence, got \(e)"); return }
        try e.verify(chainID: Harness.chainID, validators: t.set.validators)
        #expect(try Evidence(canonicalBytes: e.canonicalBytes) == e)
    }

    @Test("precommit signatures are exactly Commit.voteBytes; prevotes and proposals are domain-separated")
    func signedBytes() {
        let id = t.value(1).id
        let precommit = Vote(type: .precommit, height: 9, round: 2, valueID: id)
        #expect(precommit.signingBytes(chainID: "c") == Commit.voteBytes(chainID: "c", height: 9, round: 2, blockHash: id))
        let prevote = Vote(type: .prevote, height: 9, round: 2, valueID: id)
        #expect(prevote.signingBytes(chainID: "c").starts(with: Array("iomt/prevote/v1".utf8)))
        #expect(prevote.signingBytes(chainID: "c") != precommit.signingBytes(chainID: "c"))
        let nilPrecommit = Vote(type: .precommit, height: 9, round: 2, valueID: nil)
        #expect(nilPrecommit.signingBytes(chainID: "c").starts(with: Array("iomt/precommit-nil/v1".utf8)))
        let p = ConsensusProposal(height: 9, round: 2, validRound: nil, value: t.value(1))
        #expect(p.signingBytes(chainID: "c").starts(with: Array("iomt/proposal/v1".utf8)))
        var q = p; q.validRound = 1
        #expect(p.signingBytes(chainID: "c") != q.signingBytes(chainID: "c"))
    }

    @Test("messages round-trip through the canonical encoding; bad tags are rejected")
    func encodings() throws {
        let m1 = ConsensusMessage.vote(t.signedVote(.precommit, nil, height: 3, round: 4, by: 1))
        let m2 = ConsensusMessage.vote(t.signedVote(.prevote, t.value(1).id, by: 2))
        let p = SignedProposal(signing: ConsensusProposal(height: 1, round: 3, validRound: 2, value: t.value(1)), chainID: Harness.chainID, with: t.keys[0])
        for m in [m1, m2, .proposal(p)] {
            #expect(try ConsensusMessage(canonicalBytes: m.canonicalBytes) == m)
        }
        var bad = m1.canonicalBytes
        bad[0] = 9
        #expect(throws: CanonicalDecodingError.self) { try ConsensusMessage(canonicalBytes: bad) }
        let state = PersistedConsensusState(height: 5, round: 2, step: .precommit, lockedValue: t.value(1), lockedRound: 1,
                                            validValue: t.value(1), validRound: 1, ownMessages: [m1, .proposal(p)])
        #expect(try PersistedConsensusState(canonicalBytes: state.canonicalBytes) == state)
    }
}
