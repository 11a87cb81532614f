import IoMTConsensus
import IoMTCore

/// What the chain keeps of a validator's equivocation, for governance to act on (for example by
/// proposing `remove-validator`). The evidence itself is in the recording transaction.
public struct EvidenceRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var id: Hash
    public var offender: PublicKey
    public var offenderOrganisation: String
    /// The height of the two conflicting messages.
    public var height: UInt64
    /// `duplicate-vote` or `duplicate-proposal`.
    public var kind: String
    public var reporter: Address
    public var recordedAtHeight: UInt64

    public func encode(to w: inout CanonicalWriter) {
        w.write(id); w.write(offender); w.write(offenderOrganisation); w.write(height); w.write(kind); w.write(reporter); w.write(recordedAtHeight)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        id = try r.read(); offender = try r.read(); offenderOrganisation = try r.read(); height = try r.read()
        kind = try r.read(); reporter = try r.read(); recordedAtHeight = try r.read()
    }

    public init(id: Hash, offender: PublicKey, offenderOrganisation: String, height: UInt64, kind: String, reporter: Address, recordedAtHeight: UInt64) {
        self.id = id
        self.offender = offender
        self.offenderOrganisation = offenderOrganisation
        self.height = height
        self.kind = kind
        self.reporter = reporter
        self.recordedAtHeight = recordedAtHeight
    }
}

/// The accountability module: records evidence that a validator signed two conflicting
/// consensus messages. The evidence verifies on its own (both signatures, same slot, different
/// values), so any active account may report it; each piece is recorded once.
enum Accountability {
    static let maxEvidenceBytes = 16 << 10

    static func record(_ b: RecordEvidence, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard b.evidence.count <= maxEvidenceBytes else { throw .invalidArgument("evidence of \(b.evidence.count) bytes; at most \(maxEvidenceBytes)") }
        let evidence: Evidence
        do { evidence = try Evidence(canonicalBytes: b.evidence, maxLength: maxEvidenceBytes) } catch {
            throw .invalidArgument("evidence does not decode: \(error)")
        }
        guard evidence.height <= context.height else { throw .invalidArgument("evidence from height \(evidence.height), after this block") }
        // Checked against the current validator set: the set does not change yet; once governance
        // changes it, evidence against a validator already removed is refused (nothing to act on).
        let validators = try state.read([Validator].self, StateKeys.validators) ?? []
        do { try evidence.verify(chainID: context.chainID, validators: validators) } catch {
            throw .invalidArgument("evidence does not verify: \(error)")
        }
        let key = StateKeys.evidence(evidence.id)
        guard state.value(forKey: key) == nil else { throw .alreadyExists("evidence \(evidence.id)") }
        let offender = evidence.offender
        let kind: String
        switch evidence {
        case .duplicateVote: kind = "duplicate-vote"
        case .duplicateProposal: kind = "duplicate-proposal"
        }
        state.put(key, EvidenceRecord(id: evidence.id, offender: offender,
                                      offenderOrganisation: validators.first { $0.publicKey == offender }?.organisation ?? "",
                                      height: evidence.height, kind: kind, reporter: sender.address, recordedAtHeight: context.height))
    }
}
