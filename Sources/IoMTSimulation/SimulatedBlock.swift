import IoMTConsensus
import IoMTCore

/// A client transaction of the toy application: opaque payload signed by a client's Ed25519 key.
public struct ClientTransaction: Hashable, Sendable, CanonicalCodable {
    public var client: PublicKey
    public var nonce: UInt64
    public var payload: [UInt8]
    public var signature: Signature

    public static let domain = Array("iomt/sim-tx/v1".utf8)

    public static func signingBytes(client: PublicKey, nonce: UInt64, payload: [UInt8]) -> [UInt8] {
        var w = CanonicalWriter()
        w.writeFixed(domain); w.write(client); w.write(nonce); w.writeBytes(payload)
        return w.bytes
    }

    public init(signedBy key: PrivateKey, nonce: UInt64, payload: [UInt8]) {
        client = key.publicKey
        self.nonce = nonce
        self.payload = payload
        signature = key.sign(ClientTransaction.signingBytes(client: key.publicKey, nonce: nonce, payload: payload))
    }

    public func hasValidSignature(_ verifier: SignatureVerifier) -> Bool {
        verifier.verify(client, signature, ClientTransaction.signingBytes(client: client, nonce: nonce, payload: payload))
    }

    public func encode(to w: inout CanonicalWriter) { w.write(client); w.write(nonce); w.writeBytes(payload); w.write(signature) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        client = try r.read(); nonce = try r.read(); payload = try r.readBytes(); signature = try r.read()
    }
}

/// The simulated application's value: a real `BlockHeader` (so commits are checked with the real
/// `Commit.verify`) over a list of signed client transactions. Its id is the header hash.
public struct SimulatedBlock: Hashable, Sendable, CanonicalCodable {
    public var header: BlockHeader
    public var transactions: [ClientTransaction]

    public init(header: BlockHeader, transactions: [ClientTransaction]) {
        self.header = header
        self.transactions = transactions
    }

    public static func transactionsRoot(_ txs: [ClientTransaction]) -> Hash {
        MerkleTree.root(leafHashes: txs.map { MerkleTree.leafHash($0.canonicalBytes) })
    }

    public var value: ProposedValue { ProposedValue(id: header.hash, bytes: canonicalBytes) }

    /// The value id from the bytes: only the header is decoded (it comes first).
    public static func valueID(_ bytes: [UInt8]) -> Hash? {
        var r = CanonicalReader(bytes, trusted: true)
        guard let header = try? BlockHeader(from: &r) else { return nil }
        return header.hash
    }

    public enum Invalidity: Error, Equatable, Sendable, CustomStringConvertible {
        case undecodable
        case wrongChain
        case wrongHeight(expected: UInt64, got: UInt64)
        case wrongPrevious
        case wrongValidators
        case wrongTransactionsRoot
        case badClientSignature(nonce: UInt64)

        public var description: String {
            switch self {
            case .undecodable: return "block bytes do not decode"
            case .wrongChain: return "block is for another chain"
            case .wrongHeight(let e, let g): return "block height \(g), expected \(e)"
            case .wrongPrevious: return "block does not extend the previous block"
            case .wrongValidators: return "block names another validator set"
            case .wrongTransactionsRoot: return "transactions root or count does not match the transactions"
            case .badClientSignature(let n): return "client transaction \(n) has an invalid signature"
            }
        }
    }

    /// The application's validity check (Tendermint's valid(v)).
    public static func check(_ bytes: [UInt8], chainID: String, height: UInt64, previous: Hash, validatorsHash: Hash,
                             verifier: SignatureVerifier) throws(Invalidity) -> SimulatedBlock {
        guard let b = try? SimulatedBlock(canonicalBytes: bytes, trusted: true) else { throw .undecodable }
        guard b.header.chainID == chainID else { throw .wrongChain }
        guard b.header.height == height else { throw .wrongHeight(expected: height, got: b.header.height) }
        guard b.header.previousHash == previous else { throw .wrongPrevious }
        guard b.header.validatorsHash == validatorsHash else { throw .wrongValidators }
        guard b.header.transactionsRoot == transactionsRoot(b.transactions), Int(b.header.transactionCount) == b.transactions.count else {
            throw .wrongTransactionsRoot
        }
        for tx in b.transactions where !tx.hasValidSignature(verifier) { throw .badClientSignature(nonce: tx.nonce) }
        return b
    }

    public func encode(to w: inout CanonicalWriter) { w.write(header); w.write(transactions) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        header = try r.read(); transactions = try r.readArray()
    }
}
