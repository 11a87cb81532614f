import IoMTCore

/// A value the validators agree on: opaque bytes (in IoMTChain, an encoded block) identified by
/// `id` (the block hash). Only `id` is signed; the core checks `bytes` against `id` with the
/// injected `ConsensusContext.valueID` before using a proposal.
public struct ProposedValue: Hashable, Sendable, CanonicalCodable {
    public var id: Hash
    public var bytes: [UInt8]

    public init(id: Hash, bytes: [UInt8]) {
        self.id = id
        self.bytes = bytes
    }

    public func encode(to w: inout CanonicalWriter) { w.write(id); w.writeBytes(bytes) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        id = try r.read(); bytes = try r.readBytes()
    }
}

/// The two vote types of Tendermint (Algorithm 1: PREVOTE and PRECOMMIT). Raw values are encoded.
public enum VoteType: UInt8, Hashable, Sendable, CanonicalCodable, CustomStringConvertible {
    case prevote = 1
    case precommit = 2

    public var description: String { self == .prevote ? "prevote" : "precommit" }

    public func encode(to w: inout CanonicalWriter) { w.write(rawValue) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let t: UInt8 = try r.read()
        guard let v = VoteType(rawValue: t) else { throw .unknownTag(type: "VoteType", tag: t) }
        self = v
    }
}

/// A vote for a value id, or for nil (`valueID == nil`), at one height and round.
public struct Vote: Hashable, Sendable, CanonicalCodable {
    public var type: VoteType
    public var height: UInt64
    public var round: UInt32
    public var valueID: Hash?

    public init(type: VoteType, height: UInt64, round: UInt32, valueID: Hash?) {
        self.type = type
        self.height = height
        self.round = round
        self.valueID = valueID
    }

    public static let prevoteDomain = Array("iomt/prevote/v1".utf8)
    public static let precommitNilDomain = Array("iomt/precommit-nil/v1".utf8)

    /// The bytes a validator signs (docs/consensus.md, "Signed bytes"). A precommit for a value is
    /// exactly `Commit.voteBytes`, so a quorum of precommits is a `Commit` that `Commit.verify` accepts.
    public func signingBytes(chainID: String) -> [UInt8] {
        switch (type, valueID) {
        case (.precommit, let id?):
            return Commit.voteBytes(chainID: chainID, height: height, round: round, blockHash: id)
        case (.precommit, nil):
            var w = CanonicalWriter()
            w.writeFixed(Vote.precommitNilDomain)
            w.write(chainID); w.write(height); w.write(round)
            return w.bytes
        case (.prevote, _):
            var w = CanonicalWriter()
            w.writeFixed(Vote.prevoteDomain)
            w.write(chainID); w.write(height); w.write(round); w.write(valueID)
            return w.bytes
        }
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(type); w.write(height); w.write(round); w.write(valueID)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        type = try r.read(); height = try r.read(); round = try r.read(); valueID = try r.readOptional()
    }
}

/// A vote with its validator's signature over `vote.signingBytes(chainID:)`.
public struct SignedVote: Hashable, Sendable, CanonicalCodable {
    public var vote: Vote
    public var validator: PublicKey
    public var signature: Signature

    public init(vote: Vote, validator: PublicKey, signature: Signature) {
        self.vote = vote
        self.validator = validator
        self.signature = signature
    }

    public init(signing vote: Vote, chainID: String, with key: PrivateKey) {
        self.init(vote: vote, validator: key.publicKey, signature: key.sign(vote.signingBytes(chainID: chainID)))
    }

    public func hasValidSignature(chainID: String, verifier: SignatureVerifier) -> Bool {
        verifier.verify(validator, signature, vote.signingBytes(chainID: chainID))
    }

    public func encode(to w: inout CanonicalWriter) { w.write(vote); w.write(validator); w.write(signature) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        vote = try r.read(); validator = try r.read(); signature = try r.read()
    }
}

/// Tendermint's PROPOSAL(h, r, v, validRound): `validRound == nil` is the paper's -1.
public struct ConsensusProposal: Hashable, Sendable {
    public var height: UInt64
    public var round: UInt32
    public var validRound: UInt32?
    public var value: ProposedValue

    public init(height: UInt64, round: UInt32, validRound: UInt32?, value: ProposedValue) {
        self.height = height
        self.round = round
        self.validRound = validRound
        self.value = value
    }

    public static let domain = Array("iomt/proposal/v1".utf8)

    /// The signed bytes cover the value's id, not its bytes (those are checked against the id).
    public func signingBytes(chainID: String) -> [UInt8] {
        var w = CanonicalWriter()
        w.writeFixed(ConsensusProposal.domain)
        w.write(chainID); w.write(height); w.write(round)
        if let validRound { w.write(UInt8(1)); w.write(validRound) } else { w.write(UInt8(0)) }
        w.write(value.id)
        return w.bytes
    }
}

/// A proposal with its proposer's signature over `proposal.signingBytes(chainID:)`.
public struct SignedProposal: Hashable, Sendable, CanonicalCodable {
    public var proposal: ConsensusProposal
    public var proposer: PublicKey
    public var signature: Signature

    public init(proposal: ConsensusProposal, proposer: PublicKey, signature: Signature) {
        self.proposal = proposal
        self.proposer = proposer
        self.signature = signature
    }

    public init(signing proposal: ConsensusProposal, chainID: String, with key: PrivateKey) {
        self.init(proposal: proposal, proposer: key.publicKey, signature: key.sign(proposal.signingBytes(chainID: chainID)))
    }

    public func hasValidSignature(chainID: String, verifier: SignatureVerifier) -> Bool {
        verifier.verify(proposer, signature, proposal.signingBytes(chainID: chainID))
    }

    /// The same signed content (value id and valid round), whatever the value bytes.
    func signsSameContent(as other: SignedProposal) -> Bool {
        proposal.value.id == other.proposal.value.id && proposal.validRound == other.proposal.validRound
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(proposal.height); w.write(proposal.round)
        if let vr = proposal.validRound { w.write(UInt8(1)); w.write(vr) } else { w.write(UInt8(0)) }
        w.write(proposal.value)
        w.write(proposer); w.write(signature)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let height: UInt64 = try r.read()
        let round: UInt32 = try r.read()
        let validRound: UInt32?
        switch try r.read() as UInt8 {
        case 0: validRound = nil
        case 1: validRound = try r.read() as UInt32
        case let b: throw .invalidPresenceByte(b, offset: r.offset - 1)
        }
        let value: ProposedValue = try r.read()
        proposal = ConsensusProposal(height: height, round: round, validRound: validRound, value: value)
        proposer = try r.read(); signature = try r.read()
    }
}

/// Everything validators send each other through consensus.
public enum ConsensusMessage: Hashable, Sendable, CanonicalCodable, CustomStringConvertible {
    case proposal(SignedProposal)
    case vote(SignedVote)

    public var height: UInt64 {
        switch self {
        case .proposal(let p): return p.proposal.height
        case .vote(let v): return v.vote.height
        }
    }

    public var round: UInt32 {
        switch self {
        case .proposal(let p): return p.proposal.round
        case .vote(let v): return v.vote.round
        }
    }

    public var signer: PublicKey {
        switch self {
        case .proposal(let p): return p.proposer
        case .vote(let v): return v.validator
        }
    }

    public var description: String {
        switch self {
        case .proposal(let p):
            return "proposal(h\(p.proposal.height) r\(p.proposal.round) vr\(p.proposal.validRound.map(String.init) ?? "-") \(p.proposal.value.id.hex.prefix(8)))"
        case .vote(let v):
            return "\(v.vote.type)(h\(v.vote.height) r\(v.vote.round) \(v.vote.valueID.map { String($0.hex.prefix(8)) } ?? "nil"))"
        }
    }

    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case .proposal(let p): w.write(UInt8(1)); w.write(p)
        case .vote(let v): w.write(UInt8(2)); w.write(v)
        }
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let t: UInt8 = try r.read()
        switch t {
        case 1: self = .proposal(try r.read())
        case 2: self = .vote(try r.read())
        default: throw .unknownTag(type: "ConsensusMessage", tag: t)
        }
    }
}
