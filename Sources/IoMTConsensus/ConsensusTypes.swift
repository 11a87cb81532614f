import IoMTCore

/// Where a validator is within a round (Algorithm 1's `step_p`), plus `commit`: decided, waiting for
/// the host to apply the block and start the next height.
public enum ConsensusStep: UInt8, Hashable, Comparable, Sendable, CanonicalCodable, CustomStringConvertible {
    case propose = 1
    case prevote = 2
    case precommit = 3
    case commit = 4

    public static func < (a: ConsensusStep, b: ConsensusStep) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .propose: return "propose"
        case .prevote: return "prevote"
        case .precommit: return "precommit"
        case .commit: return "commit"
        }
    }

    public func encode(to w: inout CanonicalWriter) { w.write(rawValue) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let t: UInt8 = try r.read()
        guard let v = ConsensusStep(rawValue: t) else { throw .unknownTag(type: "ConsensusStep", tag: t) }
        self = v
    }
}

/// A timer the host must fire back as `.timeout` after `durationMs` of its local clock.
public struct ConsensusTimeout: Hashable, Sendable, CustomStringConvertible {
    public var height: UInt64
    public var round: UInt32
    public var step: ConsensusStep

    public init(height: UInt64, round: UInt32, step: ConsensusStep) {
        self.height = height
        self.round = round
        self.step = step
    }

    public var description: String { "timeout-\(step)(h\(height) r\(round))" }
}

/// What a validator must keep on disk so that after a crash it never signs two different messages
/// for one (height, round, type) and never forgets a lock (docs/consensus.md, "Persistence").
/// The host saves it durably when it sees `.persist`, before performing any later action.
public struct PersistedConsensusState: Hashable, Sendable, CanonicalCodable {
    public var height: UInt64
    public var round: UInt32
    public var step: ConsensusStep
    public var lockedValue: ProposedValue?
    public var lockedRound: UInt32?
    public var validValue: ProposedValue?
    public var validRound: UInt32?
    /// Every message this validator signed at `height`, in signing order.
    public var ownMessages: [ConsensusMessage]

    public init(height: UInt64, round: UInt32, step: ConsensusStep, lockedValue: ProposedValue?, lockedRound: UInt32?,
                validValue: ProposedValue?, validRound: UInt32?, ownMessages: [ConsensusMessage]) {
        self.height = height
        self.round = round
        self.step = step
        self.lockedValue = lockedValue
        self.lockedRound = lockedRound
        self.validValue = validValue
        self.validRound = validRound
        self.ownMessages = ownMessages
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(height); w.write(round); w.write(step)
        w.write(lockedValue); w.write(lockedRound.map { UInt64($0) })
        w.write(validValue); w.write(validRound.map { UInt64($0) })
        w.write(ownMessages)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        height = try r.read(); round = try r.read(); step = try r.read()
        lockedValue = try r.readOptional()
        lockedRound = try PersistedConsensusState.round(r.readOptional(UInt64.self))
        validValue = try r.readOptional()
        validRound = try PersistedConsensusState.round(r.readOptional(UInt64.self))
        ownMessages = try r.readArray()
    }

    private static func round(_ v: UInt64?) throws(CanonicalDecodingError) -> UInt32? {
        guard let v else { return nil }
        guard let r = UInt32(exactly: v) else { throw .invalidValue("round \(v) out of range") }
        return r
    }
}

/// Inputs to the consensus core. The host feeds them one at a time to `TendermintCore.step(_:)`.
public enum ConsensusEvent: Sendable {
    /// Begin `height` with its validator set. Sent once at start-up (after restoring, if any) and
    /// after each decided block has been applied and saved: this is the "block committed" event.
    case startHeight(UInt64, validators: ValidatorSet)
    /// A proposal or vote from the network (any sender; the core checks signer and signature).
    case message(ConsensusMessage)
    /// A timer set by `.scheduleTimeout` expired.
    case timeout(ConsensusTimeout)
    /// The application's answer to `.requestProposal`: the value (block) to propose.
    case proposalValue(height: UInt64, round: UInt32, value: ProposedValue)
    /// The application's answer to `.validate`: whether the value is a valid block at that height.
    case validity(height: UInt64, valueID: Hash, isValid: Bool)
    /// Block sync: a value decided at our current height together with its commit certificate.
    case decisionReceived(value: ProposedValue, commit: Commit)
}

/// Outputs of the consensus core. The host performs them in order; `.persist` must be durable
/// before the host performs any action after it (in particular a `.broadcast`).
public enum ConsensusAction: Hashable, Sendable {
    case persist(PersistedConsensusState)
    case broadcast(ConsensusMessage)
    case scheduleTimeout(ConsensusTimeout, durationMs: UInt64)
    case requestProposal(height: UInt64, round: UInt32)
    case validate(height: UInt64, value: ProposedValue)
    /// `value` is decided at `height`; `commit` holds more than two thirds of the power's precommits.
    case decide(height: UInt64, round: UInt32, value: ProposedValue, commit: Commit)
    /// A validator equivocated; gossip the evidence and, later, record it on-chain.
    case evidence(Evidence)
}

extension ValidatorSet {
    /// Checks a commit certificate without a block header: distinct members, valid signatures over
    /// `Commit.voteBytes`, more than two thirds of the power.
    public func verifies(_ commit: Commit, chainID: String, verifier: SignatureVerifier = .standard) -> Bool {
        let message = Commit.voteBytes(chainID: chainID, height: commit.height, round: commit.round, blockHash: commit.blockHash)
        var seen = Set<PublicKey>()
        var power: UInt64 = 0
        for s in commit.signatures {
            guard contains(s.validator), seen.insert(s.validator).inserted, verifier.verify(s.validator, s.signature, message) else { return false }
            power += self.power(of: s.validator)
        }
        return isQuorum(power)
    }
}
