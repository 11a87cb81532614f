import IoMTCore

/// Proof that one validator signed two conflicting consensus messages (equivocation).
///
/// Anyone holding the validator set of the height can check it with `verify(chainID:validators:)`;
/// it carries no trust in the node that found it. The two messages are stored in a canonical order
/// (by their encodings), so the same misbehaviour always yields the same evidence bytes and `id`,
/// which lets gossip and a future on-chain record de-duplicate it.
public enum Evidence: Hashable, Sendable, CanonicalCodable, CustomStringConvertible {
    /// Two votes of one type, height and round, for different values (nil counts as a value).
    case duplicateVote(SignedVote, SignedVote)
    /// Two proposals for one height and round with different content (value id or valid round).
    case duplicateProposal(SignedProposal, SignedProposal)

    public static func duplicateVotes(_ a: SignedVote, _ b: SignedVote) -> Evidence {
        a.canonicalBytes.lexicographicallyPrecedes(b.canonicalBytes) ? .duplicateVote(a, b) : .duplicateVote(b, a)
    }

    public static func duplicateProposals(_ a: SignedProposal, _ b: SignedProposal) -> Evidence {
        a.canonicalBytes.lexicographicallyPrecedes(b.canonicalBytes) ? .duplicateProposal(a, b) : .duplicateProposal(b, a)
    }

    /// The validator who misbehaved.
    public var offender: PublicKey {
        switch self {
        case .duplicateVote(let a, _): return a.validator
        case .duplicateProposal(let a, _): return a.proposer
        }
    }

    public var height: UInt64 {
        switch self {
        case .duplicateVote(let a, _): return a.vote.height
        case .duplicateProposal(let a, _): return a.proposal.height
        }
    }

    public var id: Hash { Hash.domain("iomt/evidence/v1", canonicalBytes) }

    public var description: String {
        switch self {
        case .duplicateVote(let a, let b):
            return "duplicate \(a.vote.type) by \(a.validator) at h\(a.vote.height) r\(a.vote.round): \(a.vote.valueID?.hex.prefix(8) ?? "nil") vs \(b.vote.valueID?.hex.prefix(8) ?? "nil")"
        case .duplicateProposal(let a, let b):
            return "duplicate proposal by \(a.proposer) at h\(a.proposal.height) r\(a.proposal.round): \(a.proposal.value.id.hex.prefix(8)) vs \(b.proposal.value.id.hex.prefix(8))"
        }
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case differentSigners
        case differentSlots
        case notConflicting
        case notCanonicalOrder
        case unknownValidator(PublicKey)
        case badSignature(PublicKey)

        public var description: String {
            switch self {
            case .differentSigners: return "the two messages are signed by different keys"
            case .differentSlots: return "the two messages are for different heights, rounds or vote types"
            case .notConflicting: return "the two messages sign the same content"
            case .notCanonicalOrder: return "the two messages are not in canonical order"
            case .unknownValidator(let k): return "\(k) is not in the validator set"
            case .badSignature(let k): return "a signature by \(k) does not verify"
            }
        }
    }

    /// Checks that both messages are validly signed by one member of `validators` and conflict.
    public func verify(chainID: String, validators: [Validator], verifier: SignatureVerifier = .standard) throws(Failure) {
        switch self {
        case .duplicateVote(let a, let b):
            guard a.validator == b.validator else { throw .differentSigners }
            guard a.vote.type == b.vote.type, a.vote.height == b.vote.height, a.vote.round == b.vote.round else { throw .differentSlots }
            guard a.vote.valueID != b.vote.valueID else { throw .notConflicting }
            guard a.canonicalBytes.lexicographicallyPrecedes(b.canonicalBytes) else { throw .notCanonicalOrder }
            guard validators.contains(where: { $0.publicKey == a.validator }) else { throw .unknownValidator(a.validator) }
            guard a.hasValidSignature(chainID: chainID, verifier: verifier), b.hasValidSignature(chainID: chainID, verifier: verifier) else {
                throw .badSignature(a.validator)
            }
        case .duplicateProposal(let a, let b):
            guard a.proposer == b.proposer else { throw .differentSigners }
            guard a.proposal.height == b.proposal.height, a.proposal.round == b.proposal.round else { throw .differentSlots }
            guard !a.signsSameContent(as: b) else { throw .notConflicting }
            guard a.canonicalBytes.lexicographicallyPrecedes(b.canonicalBytes) else { throw .notCanonicalOrder }
            guard validators.contains(where: { $0.publicKey == a.proposer }) else { throw .unknownValidator(a.proposer) }
            guard a.hasValidSignature(chainID: chainID, verifier: verifier), b.hasValidSignature(chainID: chainID, verifier: verifier) else {
                throw .badSignature(a.proposer)
            }
        }
    }

    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case .duplicateVote(let a, let b): w.write(UInt8(1)); w.write(a); w.write(b)
        case .duplicateProposal(let a, let b): w.write(UInt8(2)); w.write(a); w.write(b)
        }
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let t: UInt8 = try r.read()
        switch t {
        case 1: self = .duplicateVote(try r.read(), try r.read())
        case 2: self = .duplicateProposal(try r.read(), try r.read())
        default: throw .unknownTag(type: "Evidence", tag: t)
        }
    }
}
