import IoMTCore

/// Everything needed to check one reading offline, trusting no gateway and no node:
/// reading → batch root (RFC 6962 inclusion) → anchor transaction (its `batchRoot`, device, blob
/// and count) → block (transaction inclusion in `transactionsRoot`) → commit (validator signatures).
public struct ReadingProof: Codable, Sendable {
    public var sequence: Int64
    public var device: Address
    /// Hex of the `BatchedReading`'s canonical encoding (the Merkle leaf: gateway, device, sequence, reading).
    public var reading: String
    public var batchRoot: Hash
    public var inclusion: InclusionProof
    /// The encrypted batch's content id (CIDv1).
    public var blob: String
    public var anchor: TransactionProof

    public init(sequence: Int64, device: Address, reading: BatchedReading, batchRoot: Hash, inclusion: InclusionProof, blob: ContentID, anchor: TransactionProof) {
        self.sequence = sequence; self.device = device; self.reading = Hex.encode(reading.canonicalBytes)
        self.batchRoot = batchRoot; self.inclusion = inclusion; self.blob = blob.description; self.anchor = anchor
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case badReading(String)
        case notInBatch
        case anchorMismatch(String)
        case anchor(TransactionProof.Failure)

        public var description: String {
            switch self {
            case .badReading(let s): return "the reading is not a canonical reading: \(s)"
            case .notInBatch: return "the reading's inclusion proof does not lead to the batch root"
            case .anchorMismatch(let s): return "the anchor transaction does not anchor this batch: \(s)"
            case .anchor(let f): return "the anchor transaction's proof fails: \(f)"
            }
        }
    }

    /// Verifies the whole chain of evidence; with `validators`, the block's commit too. Returns the reading.
    public func verify(validators: [Validator]?) throws(Failure) -> Reading {
        guard let bytes = Hex.decode(reading) else { throw .badReading("not hex") }
        let r: BatchedReading
        do { r = try BatchedReading(canonicalBytes: bytes) } catch { throw .badReading("\(error)") }
        guard r.device == device, r.sequence == UInt64(sequence) else { throw .badReading("it is reading \(r.sequence) of device \(r.device), not \(sequence) of \(device)") }
        guard inclusion.verify(leaf: bytes, root: batchRoot) else { throw .notInBatch }
        guard case .anchorReadings(let a) = anchor.transaction.transaction.payload else {
            throw .anchorMismatch("it is a \(anchor.transaction.transaction.payload.kind) transaction")
        }
        guard a.batchRoot == batchRoot else { throw .anchorMismatch("it anchors root \(a.batchRoot), not \(batchRoot)") }
        guard a.device == device else { throw .anchorMismatch("it anchors device \(a.device), not \(device)") }
        guard UInt64(a.count) == inclusion.treeSize else { throw .anchorMismatch("it anchors \(a.count) readings; the proof's batch has \(inclusion.treeSize)") }
        guard let cid = ContentID(blob), cid.digest == a.blobDigest else { throw .anchorMismatch("its blob digest is not that of \(blob)") }
        guard anchor.transaction.transaction.sender == r.gateway else { throw .anchorMismatch("it was sent by \(anchor.transaction.transaction.sender), not by the gateway \(r.gateway) that accepted the reading") }
        do { try anchor.verify(validators: validators) } catch { throw .anchor(error) }
        return r.reading
    }
}
