import IoMTConsensus
import IoMTCore
import Testing

@Suite("Tendermint core (Algorithm 1)")
struct TendermintCoreTests {
    let t = Harness()

    /// A non-proposer at height 1 that has received and validated `value`.
    func prevoted(_ value: ProposedValue, node i: Int) -> Driver {
        var d = Driver(t.core(i), key: t.keys[i].publicKey)
        d.step(.startHeight(1, validators: t.set))
        let out = d.step(t.proposal(value))
        #expect(out.contains(.validate(height: 1, value: value)))
        d.step(.validity(height: 1, valueID: value.id, isValid: true))
        return d
    }

    @Test("happy path: proposal, 2f+1 prevotes, 2f+1 precommits decide in round 0 with a Commit that passes Commit.verify")
    func happyPath() throws {
        let i = t.nonProposer()
        let a = t.value(1)
        var d = prevoted(a, node: i)
        #expect(d.votes.last == Vote(type: .prevote, height: 1, round: 0, valueID: a.id))
        let others = t.others(than: i)
        d.step(t.vote(.prevote, a.id, by: others[0]))
        d.step(t.vote(.prevote, a.id, by: others[1]))
        #expect(d.votes.last == Vote(type: .precommit, height: 1, round: 0, valueID: a.id))
        #expect(d.core.lockedValue == a && d.core.lockedRound == 0)
        d.step(t.vote(.precommit, a.id, by: others[0]))
        #expect(d.decisions.isEmpty, "two of four precommits are not a quorum")
        d.step(t.vote(.precommit, a.id, by: others[1]))
        let decision = try #require(d.decisions.first)
        #expect(decision.height == 1 && decision.round == 0 && decision.value == a)
        #expect(decision.commit.signatures.count == 3)
        try decision.commit.verify(header: t.header(1), validators: t.set.validators)
        #expect(d.core.step == .commit)
    }

    @Test("the proposer asks the application for a value and proposes it")
    func proposerProposes() throws {
        let p = t.proposer(1, 0)
        var d = Driver(t.core(p), key: t.keys[p].publicKey)
        let start = d.step(.startHeight(1, validators: t.set))
        #expect(start.contains(.requestProposal(height: 1, round: 0)))
        let a = t.value(7)
        d.step(.proposalValue(height: 1, round: 0, value: a))
        guard case .proposal(let sp)? = d.broadcasts.first else { Issue.record("no proposal broadcast"); return }
        #expect(sp.proposal == ConsensusProposal(height: 1, round: 0, validRound: nil, value: a))
        #expect(sp.hasValidSignature(chainID: Harness.chainID, verifier: .standard))
        // The proposer prevotes its own value right away.
        #expect(d.votes == [Vote(type: .prevote, height: 1, round: 0, valueID: a.id)])
    }

    @Test("proposer rotation: smooth weighted round-robin over (height + round)")
    func proposerRotation() throws {
        let equal = Harness()
        let firstFour = (1...4).map { equal.proposer(UInt64($0), 0) }
        #expect(Set(firstFour).count == 4, "each of four equal validators proposes once per cycle")
        for h in UInt64(1)...12 {
            for r in UInt32(0)...5 { #expect(equal.proposer(h, r + 1) == equal.proposer(h + 1, r)) }
        }
        let weighted = Harness(powers: [3, 1, 1, 1])
        let cycle = (0..<6).map { weighted.proposer(UInt64($0), 0) }
        #expect(cycle.filter { $0 == 0 }.count == 3, "power 3 of 6 proposes 3 times per cycle: \(cycle)")
        #expect(zip(cycle, cycle.dropFirst()).allSatisfy { $0 != $1 || $0 != 0 } || cycle.filter { $0 == 0 }.count == 3)
        #expect(!(0..<4).allSatisfy { cycle[$0] == 0 && cycle[$0 + 1] == 0 && cycle[$0 + 2] == 0 }, "not a run of three: \(cycle)")
    }

    @Test("weighted quorums: more than 2/3 and more than 1/3 of the power")
    func quorums() throws {
        let w = Harness(powers: [3, 1, 1, 1])   // total 6
        #expect(w.set.isQuorum(5) && !w.set.isQuorum(4))
        #expect(w.set.isOneThird(3) && !w.set.isOneThird(2))
        #expect(throws: ValidatorSet.Failure.empty) { try ValidatorSet([]) }
        let v = w.set.validators[0]
        #expect(throws: ValidatorSet.Failure.duplicate(v.publicKey)) { try ValidatorSet([v, v]) }
        var z = v; z.power = 0
        #expect(throws: ValidatorSet.Failure.zeroPower(v.publicKey)) { try ValidatorSet([z]) }
    }

    /// Locks node `i` on `a` in round 0, then moves it to round 1 through 2f+1 precommits (no
    /// decision) and timeoutPrecommit.
    func lockedOnA(_ a: ProposedValue, node i: Int) -> Driver {
        var d = prevoted(a, node: i)
        let others = t.others(than: i)
        d.step(t.vote(.prevote, a.id, by: others[0]))
        d.step(t.vote(.prevote, a.id, by: others[1]))
        d.step(t.vote(.precommit, nil, by: others[0]))
        let out = d.step(t.vote(.precommit, nil, by: others[1]))
        #expect(out.contains { if case .scheduleTimeout(let to, _) = $0 { return to.step == .precommit } else { return false } })
        d.step(.timeout(ConsensusTimeout(height: 1, round: 0, step: .precommit)))
        #expect(d.core.round == 1 && d.core.lockedValue == a)
        return d
    }

    @Test("a lock prevents prevoting a different value (L22: prevote nil)")
    func lockPreventsOtherValue() throws {
        let i = t.nonProposer(1, 1) == t.nonProposer() ? t.nonProposer() : t.keys.indices.first { $0 != t.proposer(1, 0) && $0 != t.proposer(1, 1) }!
        let a = t.value(1), b = t.value(2)
        var d = lockedOnA(a, node: i)
        d.step(t.proposal(b, round: 1))
        d.step(.validity(height: 1, valueID: b.id, isValid: true))
        #expect(d.votes.last == Vote(type: .prevote, height: 1, round: 1, valueID: nil))
    }

    @Test("a locked validator prevotes a re-proposal of its locked value, and unlocks for a newer polka (L28)")
    func validRoundRule() throws {
        let i = t.keys.indices.first { $0 != t.proposer(1, 0) && $0 != t.proposer(1, 1) && $0 != t.proposer(1, 2) }!
        let a = t.value(1), b = t.value(2)
        var d = lockedOnA(a, node: i)
        // Round 1: B with a polka for B in round 1 itself is not usable for L28 (vr must be < round);
        // give 2f+1 prevotes for B in round 1, then B re-proposed in round 2 with vr = 1.
        for j in t.others(than: i).prefix(3) { d.step(t.vote(.prevote, b.id, round: 1, by: j)) }
        d.step(.timeout(ConsensusTimeout(height: 1, round: 1, step: .propose)))
        d.step(.timeout(ConsensusTimeout(height: 1, round: 1, step: .prevote)))
        for j in t.others(than: i).prefix(3) { d.step(t.vote(.precommit, nil, round: 1, by: j)) }
        d.step(.timeout(ConsensusTimeout(height: 1, round: 1, step: .precommit)))
        #expect(d.core.round == 2)
        d.step(t.proposal(b, round: 2, validRound: 1))
        d.step(.validity(height: 1, valueID: b.id, isValid: true))
        #expect(d.votes.last == Vote(type: .prevote, height: 1, round: 2, valueID: b.id), "lockedRound 0 <= vr 1: accept B")
    }

    @Test("f+1 of the power in a higher round makes a validator skip to it (L55); f alone does not")
    func roundSkip() throws {
        let i = t.nonProposer()
        var d = Driver(t.core(i), key: t.keys[i].publicKey)
        d.step(.startHeight(1, validators: t.set))
        let others = t.others(than: i)
        d.step(t.vote(.prevote, nil, round: 5, by: others[0]))
        #expect(d.core.round == 0, "one of four is not more than a third")
        d.step(t.vote(.precommit, nil, round: 5, by: others[0]))
        #expect(d.core.round == 0, "the same validator twice still counts once")
        d.step(t.vote(.prevote, nil, round: 5, by: others[1]))
        #expect(d.core.round == 5)
        #expect(d.timeouts.last?.0 == ConsensusTimeout(height: 1, round: 5, step: .propose))
    }

    @Test("timeouts grow linearly with the round; a silent round moves on through timeouts")
    func timeoutEscalation() throws {
        let schedule = TimeoutSchedule(proposeBaseMs: 300, proposeDeltaMs: 100, prevoteBaseMs: 100, prevoteDeltaMs: 50)
        #expect(schedule.durationMs(.propose, round: 0) == 300)
        #expect(schedule.durationMs(.propose, round: 3) == 600)
        #expect(schedule.durationMs(.prevote, round: 2) == 200)
        let i = t.keys.indices.first { $0 != t.proposer(1, 0) && $0 != t.proposer(1, 1) }!
        var d = Driver(t.core(i), key: t.keys[i].publicKey)
        d.step(.startHeight(1, validators: t.set))
        #expect(d.timeouts.last?.1 == 300)
        d.step(.timeout(ConsensusTimeout(height: 1, round: 0, step: .propose)))
        #expect(d.votes.last == Vote(type: .prevote, height: 1, round: 0, valueID: nil), "L57: timeoutPropose prevotes nil")
        let others = t.others(than: i)
        d.step(t.vote(.prevote, nil, by: others[0]))
        d.step(t.vote(.prevote, nil, by: others[1]))
        #expect(d.votes.last == Vote(type: .precommit, height: 1, round: 0, valueID: nil), "L44: 2f+1 nil prevotes")
        d.step(t.vote(.precommit, nil, by: others[0]))
        d.step(t.vote(.precommit, nil, by: others[1]))
        #expect(d.timeouts.last?.0 == ConsensusTimeout(height: 1, round: 0, step: .precommit))
        d.step(.timeout(ConsensusTimeout(height: 1, round: 0, step: .precommit)))
        #expect(d.core.round == 1)
        #expect(d.timeouts.last?.0 == ConsensusTimeout(height: 1, round: 1, step: .propose))
        #expect(d.timeouts.last?.1 == 400)
        // A stale timeout changes nothing.
        #expect(d.step(.timeout(ConsensusTimeout(height: 1, round: 0, step: .propose))).isEmpty)
    }

    @Test("an invalid proposal gets a nil prevote")
    func invalidProposal() {
        let i = t.nonProposer()
        var d = Driver(t.core(i), key: t.keys[i].publicKey)
        d.step(.startHeight(1, validators: t.set))
        let a = t.value(3)
        d.step(t.proposal(a))
        #expect(d.votes.isEmpty, "waits for the application's verdict")
        d.step(.validity(height: 1, valueID: a.id, isValid: false))
        #expect(d.votes == [Vote(type: .prevote, height: 1, round: 0, valueID: nil)])
    }

    @Test("proposals from the wrong proposer, bad signatures, non-validators and mismatched bytes are ignored")
    func ignoresBadMessages() throws {
        let i = t.nonProposer()
        var d = Driver(t.core(i), key: t.keys[i].publicKey)
        d.step(.startHeight(1, validators: t.set))
        let a = t.value(4)
        let wrong = t.keys.indices.first { $0 != t.proposer(1, 0) && $0 != i }!
        #expect(d.step(t.proposal(a, by: wrong)).isEmpty)
        let outsider = try PrivateKey(algorithm: .ed25519, rawBytes: [UInt8](repeating: 0x99, count: 32))
        let foreign = SignedVote(signing: Vote(type: .prevote, height: 1, round: 7, valueID: nil), chainID: Harness.chainID, with: outsider)
        let others = t.others(than: i)
        #expect(d.step(.message(.vote(foreign))).isEmpty)
        var forged = t.signedVote(.prevote, nil, round: 7, by: others[0])
        forged.signature = t.signedVote(.prevote, a.id, round: 7, by: others[0]).signature
        #expect(d.step(.message(.vote(forged))).isEmpty)
        d.step(t.vote(.prevote, nil, round: 7, by: others[1]))
        #expect(d.core.round == 0, "only one valid round-7 vote arrived")
        var tampered = a
        tampered.bytes = t.value(5).bytes
        #expect(d.step(t.proposal(tampered)).isEmpty, "bytes that do not hash to the signed id")
    }

    @Test("every signed broadcast is preceded by a persist holding it")
    func persistBeforeBroadcast() throws {
        // The Driver checks this on every step; here a whole decided height through both paths.
        let i = t.nonProposer()
        var d = prevoted(t.value(1), node: i)
        for j in t.others(than: i).prefix(2) { d.step(t.vote(.prevote, t.value(1).id, by: j)) }
        for j in t.others(than: i).prefix(2) { d.step(t.vote(.precommit, t.value(1).id, by: j)) }
        let signed = d.broadcasts.filter { $0.signer == t.keys[i].publicKey }
        #expect(signed.count == 2)
        var persists = 0
        for a in d.all {
            if case .persist = a { persists += 1 }
            if case .broadcast = a { #expect(persists > 0) }
        }
        let p = t.proposer(1, 0)
        var q = Driver(t.core(p), key: t.keys[p].publicKey)
        q.step(.startHeight(1, validators: t.set))
        q.step(.proposalValue(height: 1, round: 0, value: t.value(2)))
        #expect(q.broadcasts.count == 2)
    }

    @Test("restart from the persisted state re-sends the same votes and never signs a conflicting one")
    func restartDoesNotDoubleSign() throws {
        let i = t.keys.indices.first { $0 != t.proposer(1, 0) && $0 != t.proposer(1, 1) }!
        let a = t.value(1), b = t.value(2)
        let before = lockedOnA(a, node: i)
        let saved = try #require(before.lastPersisted)
        #expect(saved.lockedValue == a && saved.lockedRound == 0)
        let bytes = saved.canonicalBytes
        let reloaded = try PersistedConsensusState(canonicalBytes: bytes)
        #expect(reloaded == saved)

        var d = Driver(t.core(i, restoring: reloaded), key: t.keys[i].publicKey, restored: reloaded)
        d.step(.startHeight(1, validators: t.set))
        #expect(d.core.round == saved.round && d.core.lockedValue == a)
        // Timeouts of round 0 that fire again after the restart must not produce a new round-0 vote.
        d.step(.timeout(ConsensusTimeout(height: 1, round: 0, step: .propose)))
        d.step(.timeout(ConsensusTimeout(height: 1, round: 0, step: .prevote)))
        #expect(d.timeouts.contains { $0.0 == ConsensusTimeout(height: 1, round: 0, step: .precommit) }, "the restored step's timeout is re-armed")
        d.step(.timeout(ConsensusTimeout(height: 1, round: 0, step: .precommit)))
        #expect(d.core.round == 1)
        var signed: [String: ConsensusMessage] = [:]
        for m in before.broadcasts + d.broadcasts where m.signer == t.keys[i].publicKey {
            guard case .vote(let v) = m else { continue }
            let slot = "\(v.vote.type)/\(v.vote.round)"
            if let earlier = signed[slot] { #expect(earlier == m, "double sign at \(slot)") } else { signed[slot] = m }
        }
        // The restored lock still holds: a new value in round 1 gets a nil prevote.
        d.step(t.proposal(b, round: 1))
        d.step(.validity(height: 1, valueID: b.id, isValid: true))
        #expect(d.votes.last == Vote(type: .prevote, height: 1, round: 1, valueID: nil))
    }

    @Test("restart in the middle of a round re-sends the persisted prevote and does not prevote again")
    func restartResendsPrevote() throws {
        let i = t.nonProposer()
        let a = t.value(1)
        let before = prevoted(a, node: i)
        let saved = try #require(before.lastPersisted)
        var d = Driver(t.core(i, restoring: saved), key: t.keys[i].publicKey, restored: saved)
        let out = d.step(.startHeight(1, validators: t.set))
        let prevote = Vote(type: .prevote, height: 1, round: 0, valueID: a.id)
        #expect(out.contains { if case .broadcast(.vote(let v)) = $0 { return v.vote == prevote } else { return false } })
        d.step(.timeout(ConsensusTimeout(height: 1, round: 0, step: .propose)))
        #expect(d.votes.allSatisfy { $0 == prevote })
    }

    @Test("messages for the next height are buffered and replayed; later heights are dropped")
    func futureHeights() throws {
        let i = t.nonProposer()
        var d = prevoted(t.value(1), node: i)
        let others = t.others(than: i)
        let b2 = t.value(9, height: 2)
        d.step(t.proposal(b2, height: 2))
        d.step(t.vote(.prevote, nil, height: 3, round: 0, by: others[0]))
        for j in others.prefix(2) { d.step(t.vote(.prevote, t.value(1).id, by: j)) }
        for j in others.prefix(2) { d.step(t.vote(.precommit, t.value(1).id, by: j)) }
        #expect(d.decisions.count == 1)
        let out = d.step(.startHeight(2, validators: t.set))
        #expect(out.contains(.validate(height: 2, value: b2)), "the buffered height-2 proposal is replayed")
    }

    @Test("block sync: a verified commit certificate decides the current height")
    func decisionReceived() throws {
        let i = t.nonProposer()
        var d = Driver(t.core(i), key: t.keys[i].publicKey)
        d.step(.startHeight(1, validators: t.set))
        let a = t.value(1)
        let others = t.others(than: i)
        let sigs = others.prefix(3).map { j in CommitSignature(validator: t.keys[j].publicKey, signature: t.signedVote(.precommit, a.id, by: j).signature) }
        let weak = Commit(height: 1, round: 0, blockHash: a.id, signatures: Array(sigs.prefix(2)))
        #expect(d.step(.decisionReceived(value: a, commit: weak)).isEmpty, "two of four signatures are not enough")
        let commit = Commit(height: 1, round: 0, blockHash: a.id, signatures: sigs)
        d.step(.decisionReceived(value: a, commit: commit))
        #expect(d.decisions.first?.value == a)
    }
}
