import IoMTCore
import Testing

/// Committed test vectors (docs/test-vectors.md). The same value must give the same bytes on
/// every machine, forever: if one of these literals has to change, the chain's encoding changed,
/// every stored block and signature is invalidated, and that is a protocol version bump.
///
/// The values were cross-checked with an independent Python implementation (hashlib and
/// `cryptography`'s Ed25519) written from the layout in Canonical.swift's documentation, not from this code.
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

    static let senderPublicKeyHex = "79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664"
    static let senderAddressHex = "441571658c3d19f20651e6a7c23be29577126133"
    static let devicePublicKeyHex = "e7f162a10bec559afea195e4dce84b69568d5d2cb0963eb446c0685e2b17f2f0"
    static let transactionBytesHex = [
        "00000009696f6d742d74657374441571658c3d19f20651e6a7c23be295771261",
        "330179b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad04",
        "966400000000000000070101e7f162a10bec559afea195e4dce84b69568d5d2c",
        "b0963eb446c0685e2b17f2f0050000000873742d6d617279730000000670756d",
        "702d37",
    ].joined()
    static let transactionHashHex = "910463b048344dfcb34b1a741542c7170ff00a5690fe65132ad1a7803f9ce6a0"
    static let signatureHex = [
        "4795edc67a570bd991d8fbbeda4d57fc72cb9009e05b93b90c3b566e4c992fc9",
        "f292c5d592ed7c0a736fcc753a0bbeca8eab7120359c8c14a19251df2cb9600c",
    ].joined()
    static let transactionsRootHex = "5af620d549a60fa8816a8591313337f23453c6d0a3515fb87f61a42b8801ada3"
    static let validatorsHashHex = "2b31915a47ebe3cc7dff6998e3e3ef95c63aa14cc7fb5106c6267411601d0233"
    static let headerBytesHex = [
        "0000000100000009696f6d742d74657374000000000000000111111111111111",
        "111111111111111111111111111111111111111111111111115af620d549a60f",
        "a8816a8591313337f23453c6d0a3515fb87f61a42b8801ada300000001333333",
        "33333333333333333333333333333333333333333333333333333333332b3191",
        "5a47ebe3cc7dff6998e3e3ef95c63aa14cc7fb5106c6267411601d0233000001",
        "8bcfe56800441571658c3d19f20651e6a7c23be295771261331d00ffff010203",
        "0405060708",
    ].joined()
    static let headerHashHex = "4d6ee96f1e72ad2f098cc7922f801ed8401af912d34c05829b0fe69ce3f80ba4"

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
            timestampMs: 1_700_000_000_000, proposer: senderKey.publicKey.address, difficultyTarget: 0x1d00ffff, powNonce: 0x0102_0304_0506_0708)
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
        let committedBytes = try #require(Hex.decode(Self.transactionBytesHex))
        let decoded = try Transaction(canonicalBytes: committedBytes)
        #expect(decoded == tx)
    }

    @Test("Ed25519 signature over the transaction")
    func signature() throws {
        let committed = try #require(Hex.decode(Self.signatureHex).flatMap(Signature.init(bytes:)))
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
