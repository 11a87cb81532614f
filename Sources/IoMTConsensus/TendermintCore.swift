import IoMTCore

/// Messages and tallies of one round at the current height.
///
/// Algorithm 1 counts *messages*: an equivocator's prevote for A and its prevote for B each count
/// toward their own value. That matters for liveness: an honest validator may have locked on A
/// with the equivocator's A vote in its quorum, and the others must be able to see that quorum
/// too (L28). So each validator may hold up to `maxValuesPerSlot` votes of one type in one round,
/// one per value; its power counts once toward each value and once toward the total.
struct RoundState: Sendable {
    static let maxValuesPerSlot = 3

    var proposal: SignedProposal?
    var prevotes: [PublicKey: [SignedVote]] = [:]
    var precommits: [PublicKey: [SignedVote]] = [:]
    var prevotePower: [Hash?: UInt64] = [:]
    var prevoteTotal: UInt64 = 0
    var precommitPower: [Hash?: UInt64] = [:]
    var precommitTotal: UInt64 = 0
    /// Validators that sent any message for this round (for the f+1 round skip, L55).
    var senders: Set<PublicKey> = []
    var senderPower: UInt64 = 0
    // Algorithm 1's "for the first time" guards.
    var prevoteTimeoutScheduled = false   // L34
    var precommitTimeoutScheduled = false // L47
    var lockedOrUpdatedValid = false      // L36

    mutating func noteSender(_ key: PublicKey, power: UInt64) {
        if senders.insert(key).inserted { senderPower += power }
    }

    func votes(_ type: VoteType, by key: PublicKey) -> [SignedVote] {
        (type == .prevote ? prevotes[key] : precommits[key]) ?? []
    }

    /// Adds a vote whose signature was checked; false if the slot is already full.
    @discardableResult
    mutating func add(_ v: SignedVote, power: UInt64) -> Bool {
        let existing = votes(v.vote.type, by: v.validator)
        guard existing.count < RoundState.maxValuesPerSlot, !existing.contains(where: { $0.vote.valueID == v.vote.valueID }) else { return false }
        let first = existing.isEmpty
        switch v.vote.type {
        case .prevote:
            prevotes[v.validator, default: []].append(v)
            prevotePower[v.vote.valueID, default: 0] += power
            if first { prevoteTotal += power }
        case .precommit:
            precommits[v.validator, default: []].append(v)
            precommitPower[v.vote.valueID, default: 0] += power
            if first { precommitTotal += power }
        }
        noteSender(v.validator, power: power)
        return true
    }

    /// The precommits for `id`, one per validator.
    func precommits(for id: Hash) -> [SignedVote] {
        precommits.values.compactMap { $0.first { $0.vote.valueID == id } }
    }
}

/// Tendermint consensus (Buchman, Kwon, Milosevic 2018, "The latest gossip on BFT consensus",
/// Algorithm 1) as a pure, deterministic state machine: no I/O, no clock, no randomness.
///
/// Drive it with `step(_:)` and perform the returned actions in order (docs/consensus.md, "Driving
/// the core"). Comments `Lnn` refer to the line of Algorithm 1 a branch implements.
public struct TendermintCore: Sendable {
    public let configuration: ConsensusConfiguration
    private let signer: PrivateKey?

    public private(set) var height: UInt64 = 0
    public private(set) var round: UInt32 = 0
    public private(set) var step: ConsensusStep = .propose
    public private(set) var validators: ValidatorSet?
    public private(set) var lockedValue: ProposedValue?
    public private(set) var lockedRound: UInt32?
    public private(set) var validValue: ProposedValue?
    public private(set) var validRound: UInt32?
    /// Everything this validator signed at the current height (the host re-sends these when stalled).
    public private(set) var ownMessages: [ConsensusMessage] = []

    private var rounds: [UInt32: RoundState] = [:]
    private var validity: [Hash: Bool] = [:]
    private var validationRequested: Set<Hash> = []
    private var proposalRequested: Set<UInt32> = []
    private var nextHeightBuffer: [ConsensusMessage] = []
    private var nextHeightBuffered: Set<ConsensusMessage> = []
    private var reportedEvidence: Set<Hash> = []
    private var restored: PersistedConsensusState?
    private var actions: [ConsensusAction] = []

    /// - Parameters:
    ///   - signer: this validator's key; nil (or a key outside the set) makes a non-voting follower.
    ///   - restoring: the last state this node persisted, after a crash or restart.
    public init(configuration: ConsensusConfiguration, signer: PrivateKey?, restoring: PersistedConsensusState? = nil) {
        self.configuration = configuration
        self.signer = signer
        self.restored = restoring
    }

    /// Everything held for `round` at the current height: the proposal and every vote (an
    /// equivocator's conflicting votes included). The host's gossip re-sends these to peers that
    /// may lack them, so that what one honest validator saw, all eventually see (the paper's
    /// gossip assumption, which liveness needs).
    public func messages(inRound r: UInt32) -> [ConsensusMessage] {
        guard let rs = rounds[r] else { return [] }
        var out: [ConsensusMessage] = rs.proposal.map { [.proposal($0)] } ?? []
        for key in validators?.validators.map(\.publicKey) ?? [] {
            for v in rs.votes(.prevote, by: key) + rs.votes(.precommit, by: key) { out.append(.vote(v)) }
        }
        return out
    }

    /// The state to save, as the last `.persist` action carried it.
    public var persistedState: PersistedConsensusState {
        PersistedConsensusState(height: height, round: round, step: step, lockedValue: lockedValue, lockedRound: lockedRound,
                                validValue: validValue, validRound: validRound, ownMessages: ownMessages)
    }

    /// Feeds one event and returns the actions to perform, in order.
    public mutating func step(_ event: ConsensusEvent) -> [ConsensusAction] {
        actions = []
        switch event {
        case .startHeight(let h, let set): startHeight(h, validators: set)
        case .message(let m): receive(m)
        case .timeout(let t): onTimeout(t)
        case .proposalValue(let h, let r, let v): onProposalValue(height: h, round: r, value: v)
        case .validity(let h, let id, let ok):
            if h == height, validity[id] == nil { validity[id] = ok }
        case .decisionReceived(let v, let c): onDecisionReceived(value: v, commit: c)
        }
        if height > 0, step != .commit { evaluate() }
        defer { actions = [] }
        return actions
    }

    // MARK: heights and rounds

    private var me: PublicKey? {
        guard let signer, validators?.contains(signer.publicKey) == true else { return nil }
        return signer.publicKey
    }

    private mutating func startHeight(_ h: UInt64, validators set: ValidatorSet) {
        guard h > height else { return }
        let buffered = nextHeightBuffer.filter { $0.height == h }
        nextHeightBuffer = []; nextHeightBuffered = []
        height = h
        validators = set
        rounds = [:]; validity = [:]; validationRequested = []; proposalRequested = []; reportedEvidence = []
        if let saved = restored, saved.height == h {
            resume(saved)
        } else {
            lockedValue = nil; lockedRound = nil; validValue = nil; validRound = nil
            ownMessages = []
            startRound(0)
        }
        restored = nil
        for m in buffered { receive(m) }
    }

    /// Restart at the height we had persisted: keep the locks and every message we signed, re-send
    /// those of the current round (identical bytes, so never a double sign) and re-arm the step.
    private mutating func resume(_ s: PersistedConsensusState) {
        round = s.round
        step = s.step == .commit ? .precommit : s.step
        lockedValue = s.lockedValue; lockedRound = s.lockedRound
        validValue = s.validValue; validRound = s.validRound
        ownMessages = s.ownMessages
        for v in [lockedValue, validValue].compactMap({ $0 }) { validity[v.id] = true }
        for m in ownMessages { recordOwn(m) }
        for m in ownMessages where m.round == round { actions.append(.broadcast(m)) }
        // The received votes are gone, so L34/L47 may never fire again for this round: re-arm the
        // step's timeout (moving on by timeout is always safe).
        if step == .propose { enterPropose() } else { schedule(step) }
    }

    /// L11 StartRound(r).
    private mutating func startRound(_ r: UInt32) {
        round = r
        step = .propose
        enterPropose()
    }

    private mutating func enterPropose() {
        guard let set = validators else { return }
        let timeout = ConsensusTimeout(height: height, round: round, step: .propose)
        actions.append(.scheduleTimeout(timeout, durationMs: configuration.timeouts.durationMs(.propose, round: round)))
        guard let me, set.proposer(height: height, round: round).publicKey == me else { return }
        if rounds[round]?.proposal?.proposer == me { return }
        if let v = validValue {
            // L15: re-propose the valid value with its valid round.
            signProposal(ConsensusProposal(height: height, round: round, validRound: validRound, value: v))
        } else if proposalRequested.insert(round).inserted {
            // L18: getValue() comes from the application.
            actions.append(.requestProposal(height: height, round: round))
        }
    }

    private mutating func onProposalValue(height h: UInt64, round r: UInt32, value: ProposedValue) {
        guard h == height, r == round, step == .propose, let me, let set = validators,
              set.proposer(height: h, round: r).publicKey == me, rounds[r]?.proposal == nil else { return }
        let v = validValue ?? value
        validity[v.id] = true
        signProposal(ConsensusProposal(height: h, round: r, validRound: validValue == nil ? nil : validRound, value: v))
    }

    // MARK: receiving

    private mutating func receive(_ m: ConsensusMessage) {
        guard let set = validators else { return }
        if m.height == height + 1 {
            bufferNextHeight(m)
            return
        }
        guard m.height == height, step != .commit else { return }
        guard UInt64(m.round) <= UInt64(round) + UInt64(configuration.futureRoundWindow) else { return }
        guard set.contains(m.signer) else { return }
        switch m {
        case .proposal(let p): receiveProposal(p, set: set)
        case .vote(let v): receiveVote(v, set: set)
        }
    }

    private mutating func bufferNextHeight(_ m: ConsensusMessage) {
        guard nextHeightBuffer.count < configuration.nextHeightBufferLimit, nextHeightBuffered.insert(m).inserted else { return }
        nextHeightBuffer.append(m)
    }

    private mutating func receiveProposal(_ p: SignedProposal, set: ValidatorSet) {
        let r = p.proposal.round
        // Only the round's proposer may propose (L22 "from proposer(h_p, round_p)").
        guard set.proposer(height: height, round: r).publicKey == p.proposer else { return }
        if let existing = rounds[r]?.proposal {
            guard !existing.signsSameContent(as: p), p.hasValidSignature(chainID: configuration.chainID, verifier: configuration.verifier) else { return }
            report(.duplicateProposals(existing, p))
            return
        }
        guard p.hasValidSignature(chainID: configuration.chainID, verifier: configuration.verifier),
              configuration.valueID(p.proposal.value.bytes) == p.proposal.value.id else { return }
        rounds[r, default: RoundState()].proposal = p
        rounds[r, default: RoundState()].noteSender(p.proposer, power: set.power(of: p.proposer))
        let id = p.proposal.value.id
        if validity[id] == nil, validationRequested.insert(id).inserted {
            actions.append(.validate(height: height, value: p.proposal.value))
        }
    }

    private mutating func receiveVote(_ v: SignedVote, set: ValidatorSet) {
        let r = v.vote.round
        let existing = rounds[r]?.votes(v.vote.type, by: v.validator) ?? []
        guard !existing.contains(where: { $0.vote.valueID == v.vote.valueID }),
              v.hasValidSignature(chainID: configuration.chainID, verifier: configuration.verifier) else { return }
        if let first = existing.first { report(.duplicateVotes(first, v)) }
        rounds[r, default: RoundState()].add(v, power: set.power(of: v.validator))
    }

    private mutating func report(_ e: Evidence) {
        if reportedEvidence.insert(e.id).inserted { actions.append(.evidence(e)) }
    }

    /// Our own messages count like anyone's (the paper's processes receive their own broadcasts).
    private mutating func recordOwn(_ m: ConsensusMessage) {
        guard let set = validators else { return }
        switch m {
        case .proposal(let p):
            rounds[p.proposal.round, default: RoundState()].proposal = p
            rounds[p.proposal.round, default: RoundState()].noteSender(p.proposer, power: set.power(of: p.proposer))
            validity[p.proposal.value.id] = true
        case .vote(let v):
            rounds[v.vote.round, default: RoundState()].add(v, power: set.power(of: v.validator))
        }
    }

    // MARK: signing — persist first, then broadcast

    private mutating func signProposal(_ p: ConsensusProposal) {
        guard let signer else { return }
        if let mine = ownMessages.first(where: { if case .proposal(let q) = $0 { return q.proposal.round == p.round } else { return false } }) {
            actions.append(.broadcast(mine))   // never a second proposal for one round
            return
        }
        emitSigned(.proposal(SignedProposal(signing: p, chainID: configuration.chainID, with: signer)))
    }

    private mutating func signVote(_ type: VoteType, _ id: Hash?) {
        guard let signer, me != nil else { return }
        if let mine = ownMessages.first(where: { if case .vote(let v) = $0 { return v.vote.type == type && v.vote.round == round } else { return false } }) {
            actions.append(.broadcast(mine))   // never a second vote of one type in one round
            return
        }
        let vote = Vote(type: type, height: height, round: round, valueID: id)
        emitSigned(.vote(SignedVote(signing: vote, chainID: configuration.chainID, with: signer)))
    }

    private mutating func emitSigned(_ m: ConsensusMessage) {
        ownMessages.append(m)
        recordOwn(m)
        actions.append(.persist(persistedState))
        actions.append(.broadcast(m))
    }

    // MARK: the upon-rules of Algorithm 1, applied until none fires

    private mutating func evaluate() {
        var fired = true
        var guardCount = 0
        while fired, step != .commit {
            fired = applyOneRule()
            guardCount += 1
            precondition(guardCount < 10_000, "consensus rules did not reach a fixed point")
        }
    }

    private mutating func applyOneRule() -> Bool {
        guard let set = validators else { return false }
        if decideIfCommitted(set) { return true }
        if skipToHigherRound(set) { return true }
        let rs = rounds[round] ?? RoundState()
        if step == .propose, let p = rs.proposal, prevoteOnProposal(p) { return true }
        if step == .prevote, !rs.prevoteTimeoutScheduled, set.isQuorum(rs.prevoteTotal) {
            // L34: 2f+1 prevotes for anything: wait timeoutPrevote for a decisive majority.
            rounds[round, default: RoundState()].prevoteTimeoutScheduled = true
            schedule(.prevote)
            return true
        }
        if step >= .prevote, !rs.lockedOrUpdatedValid, let p = rs.proposal, validity[p.proposal.value.id] == true,
           set.isQuorum(rs.prevotePower[p.proposal.value.id] ?? 0) {
            // L36: a polka for a valid proposal: lock (if still prevoting) and remember it as valid.
            rounds[round, default: RoundState()].lockedOrUpdatedValid = true
            validValue = p.proposal.value; validRound = round
            if step == .prevote {
                lockedValue = p.proposal.value; lockedRound = round
                step = .precommit
                signVote(.precommit, p.proposal.value.id)
            }
            return true
        }
        if step == .prevote, set.isQuorum(rs.prevotePower[nil] ?? 0) {
            // L44: 2f+1 prevotes for nil.
            step = .precommit
            signVote(.precommit, nil)
            return true
        }
        if !rs.precommitTimeoutScheduled, set.isQuorum(rs.precommitTotal) {
            // L47: 2f+1 precommits for anything: wait timeoutPrecommit, then move on.
            rounds[round, default: RoundState()].precommitTimeoutScheduled = true
            schedule(.precommit)
            return true
        }
        return false
    }

    /// L22 (fresh proposal) and L28 (proposal re-proposing a value with a polka in `validRound`).
    private mutating func prevoteOnProposal(_ p: SignedProposal) -> Bool {
        let v = p.proposal.value
        guard let valid = validity[v.id] else { return false }   // the application has not answered yet
        if let vr = p.proposal.validRound {
            guard vr < round, let set = validators, set.isQuorum(rounds[vr]?.prevotePower[v.id] ?? 0) else { return false }
            // L28–L33: accept if not locked on something newer than vr, or locked on this value.
            let acceptable = valid && ((lockedRound.map { $0 <= vr } ?? true) || lockedValue?.id == v.id)
            step = .prevote
            signVote(.prevote, acceptable ? v.id : nil)
        } else {
            // L22–L27: accept if unlocked or locked on this very value.
            let acceptable = valid && (lockedRound == nil || lockedValue?.id == v.id)
            step = .prevote
            signVote(.prevote, acceptable ? v.id : nil)
        }
        return true
    }

    /// L49: a proposal and 2f+1 precommits for its value in any round of this height decide it.
    private mutating func decideIfCommitted(_ set: ValidatorSet) -> Bool {
        for r in rounds.keys.sorted() {
            guard let rs = rounds[r], let p = rs.proposal, validity[p.proposal.value.id] == true,
                  set.isQuorum(rs.precommitPower[p.proposal.value.id] ?? 0) else { continue }
            let id = p.proposal.value.id
            let signatures = rs.precommits(for: id)
                .sorted { (set.index(of: $0.validator) ?? 0) < (set.index(of: $1.validator) ?? 0) }
                .map { CommitSignature(validator: $0.validator, signature: $0.signature) }
            decide(round: r, value: p.proposal.value, commit: Commit(height: height, round: r, blockHash: id, signatures: signatures))
            return true
        }
        return false
    }

    private mutating func decide(round r: UInt32, value: ProposedValue, commit: Commit) {
        step = .commit
        actions.append(.decide(height: height, round: r, value: value, commit: commit))
    }

    /// L55: f+1 of the power already speaks in a higher round: join the highest such round.
    private mutating func skipToHigherRound(_ set: ValidatorSet) -> Bool {
        guard let target = rounds.filter({ $0.key > round && set.isOneThird($0.value.senderPower) }).keys.max() else { return false }
        startRound(target)
        return true
    }

    private mutating func schedule(_ s: ConsensusStep) {
        actions.append(.scheduleTimeout(ConsensusTimeout(height: height, round: round, step: s),
                                        durationMs: configuration.timeouts.durationMs(s, round: round)))
    }

    // MARK: timeouts (L57, L61, L65) and block sync

    private mutating func onTimeout(_ t: ConsensusTimeout) {
        guard t.height == height, t.round == round, step != .commit else { return }
        switch t.step {
        case .propose where step == .propose:
            step = .prevote                 // L57–L60
            signVote(.prevote, nil)
        case .prevote where step == .prevote:
            step = .precommit               // L61–L64
            signVote(.precommit, nil)
        case .precommit:
            guard round < UInt32.max else { return }
            startRound(round + 1)           // L65–L67
        default:
            break
        }
    }

    private mutating func onDecisionReceived(value: ProposedValue, commit: Commit) {
        guard let set = validators, step != .commit, commit.height == height, commit.blockHash == value.id,
              configuration.valueID(value.bytes) == value.id,
              set.verifies(commit, chainID: configuration.chainID, verifier: configuration.verifier) else { return }
        decide(round: commit.round, value: value, commit: commit)
    }
}
