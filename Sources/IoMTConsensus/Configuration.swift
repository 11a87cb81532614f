import IoMTCore

/// Checks a signature. Injected so the simulator can share a cache of verified signatures between
/// its nodes; the default is the real check (`PublicKey.isValidSignature`).
public struct SignatureVerifier: Sendable {
    public let verify: @Sendable (PublicKey, Signature, [UInt8]) -> Bool

    public init(_ verify: @escaping @Sendable (PublicKey, Signature, [UInt8]) -> Bool) { self.verify = verify }

    /// Ed25519 or P-256, as the key says.
    public static let standard = SignatureVerifier { key, signature, message in key.isValidSignature(signature, for: message) }
}

/// Linear timeout growth per round (Tendermint §"Timeouts": timeouts grow with the round so that,
/// after GST, some round lasts long enough for every correct process to hear every other).
public struct TimeoutSchedule: Hashable, Sendable {
    public var proposeBaseMs: UInt64
    public var proposeDeltaMs: UInt64
    public var prevoteBaseMs: UInt64
    public var prevoteDeltaMs: UInt64
    public var precommitBaseMs: UInt64
    public var precommitDeltaMs: UInt64

    public init(proposeBaseMs: UInt64 = 300, proposeDeltaMs: UInt64 = 100, prevoteBaseMs: UInt64 = 100, prevoteDeltaMs: UInt64 = 50,
                precommitBaseMs: UInt64 = 100, precommitDeltaMs: UInt64 = 50) {
        self.proposeBaseMs = proposeBaseMs
        self.proposeDeltaMs = proposeDeltaMs
        self.prevoteBaseMs = prevoteBaseMs
        self.prevoteDeltaMs = prevoteDeltaMs
        self.precommitBaseMs = precommitBaseMs
        self.precommitDeltaMs = precommitDeltaMs
    }

    /// How long to wait in `step` of `round` (local clock milliseconds).
    public func durationMs(_ step: ConsensusStep, round: UInt32) -> UInt64 {
        let r = UInt64(round)
        switch step {
        case .propose: return proposeBaseMs + r * proposeDeltaMs
        case .prevote: return prevoteBaseMs + r * prevoteDeltaMs
        case .precommit, .commit: return precommitBaseMs + r * precommitDeltaMs
        }
    }
}

/// Fixed parameters of one node's consensus core.
public struct ConsensusConfiguration: Sendable {
    public var chainID: String
    public var timeouts: TimeoutSchedule
    /// Votes and proposals more than this many rounds ahead of ours are dropped (each validator can
    /// then hold at most `2 × window` votes and proposals per height in memory).
    public var futureRoundWindow: UInt32
    /// Messages for the next height, received before our own decision, are kept up to this many
    /// and replayed when that height starts; further ones, and any for later heights, are dropped
    /// (block sync, not consensus, brings a node that far behind up to date).
    public var nextHeightBufferLimit: Int
    /// Maps a value's bytes to its id (in IoMTChain: decode the block, hash its header).
    public var valueID: @Sendable ([UInt8]) -> Hash?
    public var verifier: SignatureVerifier

    public init(chainID: String, timeouts: TimeoutSchedule = TimeoutSchedule(), futureRoundWindow: UInt32 = 64, nextHeightBufferLimit: Int = 4096,
                valueID: @escaping @Sendable ([UInt8]) -> Hash?, verifier: SignatureVerifier = .standard) {
        self.chainID = chainID
        self.timeouts = timeouts
        self.futureRoundWindow = futureRoundWindow
        self.nextHeightBufferLimit = nextHeightBufferLimit
        self.valueID = valueID
        self.verifier = verifier
    }
}
