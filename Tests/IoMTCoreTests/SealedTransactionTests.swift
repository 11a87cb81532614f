import IoMTCore
import Testing

@Suite("Sealed transactions")
struct SealedTransactionTests {
    static func transaction(_ algorithm: SignatureAlgorithm, nonce: UInt64, label: String) -> SignedTransaction {
        let key = algorithm == .ed25519 ? Fixture.ed25519(3) : Fixture.p256(3)
        let device = Fixture.ed25519(4)
        return Transaction(chainID: "iomt-test", sender: key.publicKey.address, signerKey: key.publicKey, nonce: nonce,
                           payload: .registerAccount(RegisterAccount(publicKey: device.publicKey, role: .device, organisation: "hospital-a", label: label)))
            .signed(with: key)
    }

    @Test("sealing computes exactly the signed transaction's bytes, hash, leaf hash and signature check", arguments: SignatureAlgorithm.allCases)
    func sameAsSigned(_ algorithm: SignatureAlgorithm) {
        for (nonce, label) in [(0, ""), (1, "pulse oximeter"), (UInt64.max, String(repeating: "x", count: 200))] {
            let tx = Self.transaction(algorithm, nonce: nonce, label: label)
            let sealed = SealedTransaction(tx)
            #expect(sealed.bytes == tx.canonicalBytes)
            #expect(sealed.hash == tx.hash)
            #expect(sealed.leafHash == MerkleTree.leafHash(tx.canonicalBytes))
            #expect(sealed.hasValidSignature())
            #expect(sealed.signed == tx)
        }
    }

    @Test("a sealed transaction with a forged field or signature fails its signature check", arguments: SignatureAlgorithm.allCases)
    func forgeries(_ algorithm: SignatureAlgorithm) {
        var changed = Self.transaction(algorithm, nonce: 7, label: "a")
        changed.transaction.nonce = 8
        #expect(!SealedTransaction(changed).hasValidSignature())
        var resigned = Self.transaction(algorithm, nonce: 7, label: "a")
        resigned.signature = Self.transaction(algorithm, nonce: 9, label: "a").signature
        #expect(!SealedTransaction(resigned).hasValidSignature())
    }
}
