/// A block header (seed 001 Table 2 plus what a BFT chain needs).
public struct BlockHeader: Hashable, Sendable, CanonicalCodable, Codable {
    public static let currentVersion: UInt32 = 1

    public var version: UInt32
    public var chainID: String
    public var height: UInt64
    public var previousHash: Hash
    /// RFC 6962 root over the block's signed transactions.
    public var transactionsRoot: Hash
    public var transactionCount: UInt32
    /// Root of the authenticated state after applying this block.
    public var stateRoot: Hash
    /// Hash of the validator set whose signatures finalise this block.
    public var validatorsHash: Hash
    /// Milliseconds since the Unix epoch, UTC. Set by the proposer, never read from a clock by contracts.
    public var timestampMs: Int64
    public var proposer: Address
    /// Proof-of-work mode: compact difficulty target ("bits", as Bitcoin). 0 under BFT.
    public var difficultyTarget: UInt32
    /// Proof-of-work mode: the nonce that meets the target. 0 under BFT.
    public var powNonce: UInt64

    public init(version: UInt32 = BlockHeader.currentVersion, chainID: String, height: UInt64, previousHash: Hash, transactionsRoot: Hash, transactionCount: UInt32, stateRoot: Hash, validatorsHash: Hash, timestampMs: Int64, proposer: Address, difficultyTarget: UInt32 = 0, powNonce: UInt64 = 0) {
        self.version = version
        self.chainID = chainID
        self.height = height
        self.previousHash = previousHash
        self.transactionsRoot = transactionsRoot
        self.transactionCount = transactionCount
        self.stateRoot = stateRoot
        self.validatorsHash = validatorsHash
        self.timestampMs = timestampMs
        self.proposer = proposer
        self.difficultyTarget = difficultyTarget
        self.powNonce = powNonce
    }

    public static let hashDomain = Array("iomt/block/v1".utf8)

    public var hash: Hash { Hash.sha256(BlockHeader.hashDomain + canonicalBytes) }

    enum CodingKeys: String, CodingKey {
        case version, chainID = "chainId", height, previousHash, transactionsRoot, transactionCount, stateRoot, validatorsHash, timestampMs, proposer, difficultyTarget, powNonce
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(version)
        w.write(chainID)
        w.write(height)
        w.write(previousHash)
        w.write(transactionsRoot)
        w.write(transactionCount)
        w.write(stateRoot)
        w.write(validatorsHash)
        w.write(timestampMs)
        w.write(proposer)
        w.write(difficultyTarget)
        w.write(powNonce)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        version = try r.read()
        chainID = try r.read()
        height = try r.read()
        previousHash = try r.read()
        transactionsRoot = try r.read()
        transactionCount = try r.read()
        stateRoot = try r.read()
        validatorsHash = try r.read()
        timestampMs = try r.read()
        proposer = try r.read()
        difficultyTarget = try r.read()
        powNonce = try r.read()
    }
}

/// One validator's signature on a block.
public struct CommitSignature: Hashable, Sendable, CanonicalCodable, Codable {
    public var validator: PublicKey
    public var signature: Signature

    public init(validator: PublicKey, signature: Signature) {
        self.validator = validator
        self.signature = signature
    }

    public func encode(to w: inout CanonicalWriter) { w.write(validator); w.write(signature) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        validator = try r.read(); signature = try r.read()
    }
}

/// The signatures that finalise a block: more than two thirds of the validator set's power
/// (here, with one validator, its one signature).
public struct Commit: Hashable, Sendable, CanonicalCodable, Codable {
    public var height: UInt64
    public var round: UInt32
    public var blockHash: Hash
    public var signatures: [CommitSignature]

    public init(height: UInt64, round: UInt32 = 0, blockHash: Hash, signatures: [CommitSignature]) {
        self.height = height
        self.round = round
        self.blockHash = blockHash
        self.signatures = signatures
    }

    /// What a validator signs to commit `blockHash` at `height`.
    public static func voteBytes(chainID: String, height: UInt64, round: UInt32, blockHash: Hash) -> [UInt8] {
        var w = CanonicalWriter()
        w.writeFixed(Array("iomt/commit/v1".utf8))
        w.write(chainID)
        w.write(height)
        w.write(round)
        w.write(blockHash)
        return w.bytes
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case wrongBlock
        case validatorsHashMismatch
        case unknownValidator(PublicKey)
        case duplicateValidator(PublicKey)
        case badSignature(PublicKey)
        case insufficientPower(signed: UInt64, total: UInt64)

        public var description: String {
            switch self {
            case .wrongBlock: return "commit is for another block or height"
            case .validatorsHashMismatch: return "header's validatorsHash does not match the validator set"
            case .unknownValidator(let k): return "signature by \(k), not a validator"
            case .duplicateValidator(let k): return "two signatures by \(k)"
            case .badSignature(let k): return "invalid signature by \(k)"
            case .insufficientPower(let s, let t): return "signed power \(s) of \(t) is not more than two thirds"
            }
        }
    }

    /// Checks that this commit finalises `header` under `validators`.
    public func verify(header: BlockHeader, validators: [Validator]) throws(Failure) {
        guard height == header.height, blockHash == header.hash else { throw .wrongBlock }
        guard header.validatorsHash == Validator.setHash(validators) else { throw .validatorsHashMismatch }
        let message = Commit.voteBytes(chainID: header.chainID, height: height, round: round, blockHash: blockHash)
        let total = validators.reduce(UInt64(0)) { $0 + $1.power }
        var signed: UInt64 = 0
        var seen = Set<PublicKey>()
        for s in signatures {
            guard let v = validators.first(where: { $0.publicKey == s.validator }) else { throw .unknownValidator(s.validator) }
            guard seen.insert(s.validator).inserted else { throw .duplicateValidator(s.validator) }
            guard s.validator.isValidSignature(s.signature, for: message) else { throw .badSignature(s.validator) }
            signed += v.power
        }
        guard signed * 3 > total * 2 else { throw .insufficientPower(signed: signed, total: total) }
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(height); w.write(round); w.write(blockHash); w.write(signatures)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        height = try r.read(); round = try r.read(); blockHash = try r.read(); signatures = try r.readArray()
    }
}

extension Validator {
    public static func setHash(_ validators: [Validator]) -> Hash {
        Hash.domain("iomt/validators/v1", validators.canonicalBytes)
    }
}

/// A block: header, transactions, and the commit that finalises it (nil only for genesis).
public struct Block: Hashable, Sendable, Codable {
    public var header: BlockHeader
    public var transactions: [SignedTransaction]
    public var commit: Commit?

    public init(header: BlockHeader, transactions: [SignedTransaction], commit: Commit?) {
        self.header = header
        self.transactions = transactions
        self.commit = commit
    }

    public var hash: Hash { header.hash }

    public static func leafHashes(_ txs: [SignedTransaction]) -> [Hash] {
        txs.map { MerkleTree.leafHash($0.canonicalBytes) }
    }
}

/// Everything needed to check offline that a transaction is in a committed block.
public struct TransactionProof: Sendable, Codable {
    public var transaction: SignedTransaction
    public var proof: InclusionProof
    public var header: BlockHeader
    public var commit: Commit?

    public init(transaction: SignedTransaction, proof: InclusionProof, header: BlockHeader, commit: Commit?) {
        self.transaction = transaction
        self.proof = proof
        self.header = header
        self.commit = commit
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case badTransactionSignature
        case sizeMismatch
        case rootMismatch
        case commit(Commit.Failure)
        case missingCommit

        public var description: String {
            switch self {
            case .badTransactionSignature: return "transaction signature is invalid"
            case .sizeMismatch: return "proof tree size differs from the header's transaction count"
            case .rootMismatch: return "Merkle proof does not lead to the header's transactionsRoot"
            case .commit(let f): return "commit: \(f)"
            case .missingCommit: return "no commit to check the header against"
            }
        }
    }

    /// Verifies the transaction against the header; with `validators`, the header against its commit.
    public func verify(validators: [Validator]? = nil) throws(Failure) {
        guard transaction.hasValidSignature() else { throw .badTransactionSignature }
        guard proof.treeSize == UInt64(header.transactionCount) else { throw .sizeMismatch }
        guard proof.verify(leaf: transaction.canonicalBytes, root: header.transactionsRoot) else { throw .rootMismatch }
        if let validators {
            guard let commit else { throw .missingCommit }
            do { try commit.verify(header: header, validators: validators) } catch { throw .commit(error) }
        }
    }
}
