import IoMTCore
import PropertyBased
import Testing

@Suite("Keys and signatures")
struct SignatureTests {
    static let algorithms = SignatureAlgorithm.allCases

    static func key(_ algorithm: SignatureAlgorithm, _ n: UInt8) -> PrivateKey {
        algorithm == .ed25519 ? Fixture.ed25519(n) : Fixture.p256(n)
    }

    @Test("sign then verify", arguments: algorithms)
    func signVerify(_ algorithm: SignatureAlgorithm) {
        let key = Self.key(algorithm, 1)
        #expect(key.algorithm == algorithm)
        #expect(key.publicKey.bytes.count == (algorithm == .ed25519 ? 32 : 33))
        for message in [[], [0], Array("hello".utf8), [UInt8](repeating: 0xAA, count: 10_000)] as [[UInt8]] {
            let sig = key.sign(message)
            #expect(sig.bytes.count == 64)
            #expect(key.publicKey.isValidSignature(sig, for: message))
        }
    }

    @Test("a flipped bit in the message or the signature, or another key, fails", arguments: algorithms)
    func tampering(_ algorithm: SignatureAlgorithm) async {
        let key = Self.key(algorithm, 2)
        let other = Self.key(algorithm, 3)
        let gen = Generator<([UInt8], Int, Int), Shrink.None<([UInt8], Int, Int)>> { rng in
            let m = rng.bytes(1...200)
            return (m, Int.random(in: 0..<(m.count * 8), using: &rng), Int.random(in: 0..<512, using: &rng))
        }
        await propertyCheck(count: 60, input: gen) { message, messageBit, signatureBit in
            let sig = key.sign(message)
            #expect(key.publicKey.isValidSignature(sig, for: message))
            var m = message
            m[messageBit / 8] ^= 1 << UInt8(messageBit % 8)
            #expect(!key.publicKey.isValidSignature(sig, for: m))
            var s = sig.bytes
            s[signatureBit / 8] ^= 1 << UInt8(signatureBit % 8)
            #expect(!key.publicKey.isValidSignature(Signature(bytes: s)!, for: message))
            #expect(!other.publicKey.isValidSignature(sig, for: message))
            #expect(!key.publicKey.isValidSignature(other.sign(message), for: message))
        }
    }

    @Test("a signature of one algorithm never verifies under a key of the other")
    func crossAlgorithm() {
        let message = Array("cross".utf8)
        #expect(!Fixture.p256(1).publicKey.isValidSignature(Fixture.ed25519(1).sign(message), for: message))
        #expect(!Fixture.ed25519(1).publicKey.isValidSignature(Fixture.p256(1).sign(message), for: message))
        // An all-zero and an all-ones signature are simply invalid, never a crash.
        for key in [Fixture.ed25519(1).publicKey, Fixture.p256(1).publicKey] {
            #expect(!key.isValidSignature(Fixture.signature(0), for: message))
            #expect(!key.isValidSignature(Fixture.signature(0xFF), for: message))
        }
    }

    @Test("signatures must be 64 bytes")
    func signatureLength() {
        #expect(Signature(bytes: [UInt8](repeating: 1, count: 63)) == nil)
        #expect(Signature(bytes: [UInt8](repeating: 1, count: 65)) == nil)
        #expect(Signature(bytes: []) == nil)
        #expect(Signature(bytes: [UInt8](repeating: 1, count: 64)) != nil)
    }

    @Test("private keys: raw bytes round-trip, bad raw bytes are refused", arguments: algorithms)
    func privateKeys(_ algorithm: SignatureAlgorithm) throws {
        let key = Self.key(algorithm, 9)
        let again = try PrivateKey(algorithm: algorithm, rawBytes: key.rawBytes)
        #expect(again.publicKey == key.publicKey)
        #expect(key.rawBytes.count == 32)
        #expect(throws: KeyError.self) { try PrivateKey(algorithm: algorithm, rawBytes: [UInt8](repeating: 1, count: 31)) }
        #expect(throws: KeyError.self) { try PrivateKey(algorithm: algorithm, rawBytes: [UInt8](repeating: 1, count: 33)) }
        let generated = PrivateKey.generate(algorithm)
        #expect(generated.publicKey != key.publicKey)
        #expect(generated.publicKey.isValidSignature(generated.sign([1, 2, 3]), for: [1, 2, 3]))
    }

    @Test("P-256 scalars out of range are refused")
    func p256ScalarRange() {
        #expect(throws: KeyError.self) { try PrivateKey(algorithm: .p256, rawBytes: [UInt8](repeating: 0, count: 32)) }
        // The group order n itself.
        let n = Hex.decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")!
        #expect(throws: KeyError.self) { try PrivateKey(algorithm: .p256, rawBytes: n) }
        #expect(throws: KeyError.self) { try PrivateKey(algorithm: .p256, rawBytes: [UInt8](repeating: 0xFF, count: 32)) }
    }

    // MARK: text form

    @Test("PublicKey(text:) parses both algorithms and round-trips", arguments: algorithms)
    func textRoundTrip(_ algorithm: SignatureAlgorithm) throws {
        let key = Self.key(algorithm, 4).publicKey
        let prefix = algorithm == .ed25519 ? "ed25519:" : "p256:"
        #expect(key.text == prefix + Hex.encode(key.bytes))
        #expect(try PublicKey(text: key.text) == key)
        #expect(try PublicKey(text: prefix + Hex.encode(key.bytes).uppercased()) == key)
        #expect(try PublicKey(text: prefix.uppercased() + Hex.encode(key.bytes)) == key)
        #expect(try PublicKey(algorithm: algorithm, bytes: key.bytes) == key)
        if algorithm == .p256 {
            for alias in ["P-256:", "secp256r1:", "ecdsa-p256:"] {
                #expect(try PublicKey(text: alias + Hex.encode(key.bytes)) == key)
            }
        }
    }

    @Test("PublicKey(text:) refuses malformed text", arguments: [
        "", "ed25519", "ed25519:", ":00", "rsa:" + String(repeating: "00", count: 32),
        "ed25519:" + String(repeating: "0", count: 63), // odd number of digits
        "ed25519:" + String(repeating: "zz", count: 32), // not hex
        "ed25519:" + String(repeating: "01", count: 31), // 31 bytes
        "ed25519:" + String(repeating: "01", count: 33), // 33 bytes
        "p256:" + String(repeating: "02", count: 32), // 32 bytes
        "p256:04" + String(repeating: "01", count: 64), // uncompressed form: 65 bytes
        "p256:05" + String(repeating: "01", count: 32), // bad SEC1 prefix
        "p256:02ffffffff00000001000000000000000000000000ffffffffffffffffffffffff", // x = p, not a field element
        "p256:03ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // x > p
        "p256:02" + String(repeating: "00", count: 32) + "00", // 34 bytes
    ])
    func textRejects(_ text: String) {
        #expect(throws: KeyError.self) { try PublicKey(text: text) }
    }

    @Test("P-256 points off the curve are refused")
    func p256OffCurve() throws {
        // About half of all x coordinates have no point on P-256. For those, neither parity may
        // parse; a parser that did not check the curve equation would accept every one of them.
        var refused = 0
        for x in UInt8(1)...UInt8(40) {
            let xBytes = [UInt8](repeating: 0, count: 31) + [x]
            let even = (try? PublicKey(algorithm: .p256, bytes: [0x02] + xBytes)) != nil
            let odd = (try? PublicKey(algorithm: .p256, bytes: [0x03] + xBytes)) != nil
            // For a valid x both parities are points; for an invalid one neither is.
            #expect(even == odd, "x = \(x)")
            if !even {
                refused += 1
                #expect(throws: KeyError.self) { try PublicKey(text: "p256:02" + Hex.encode(xBytes)) }
            }
        }
        // About half of all x are not on the curve: 40 tries without one would mean no check at all.
        #expect(refused > 5 && refused < 35)
    }

    @Test("an address is the first 20 bytes of SHA-256(\"iomt/address/v1\" ‖ key encoding)", arguments: algorithms)
    func addressDerivation(_ algorithm: SignatureAlgorithm) {
        let key = Self.key(algorithm, 5).publicKey
        let expected = Array(Hash.sha256(Array("iomt/address/v1".utf8) + [algorithm.rawValue] + key.bytes).bytes.prefix(20))
        #expect(key.address.bytes == expected)
        #expect(Address(hex: key.address.hex) == key.address)
        #expect(Address(hex: "00") == nil)
        #expect(Self.key(algorithm, 6).publicKey.address != key.address)
    }

    // MARK: signed transactions

    @Test("a signed transaction verifies; any tampering fails", arguments: algorithms)
    func signedTransaction(_ algorithm: SignatureAlgorithm) {
        let key = Self.key(algorithm, 7)
        let stx = Fixture.transaction(nonce: 7, key: key).signed(with: key)
        #expect(stx.hasValidSignature())
        #expect(stx.hash == stx.transaction.hash)

        var t = stx
        t.transaction.nonce = 8
        #expect(!t.hasValidSignature())
        t = stx
        t.transaction.chainID = "iomt-prod"
        #expect(!t.hasValidSignature())
        t = stx
        t.transaction.payload = .rotateKey(RotateKey(newPublicKey: Fixture.ed25519(0x99).publicKey))
        #expect(!t.hasValidSignature())
        t = stx
        t.transaction.sender = Fixture.address(1)
        #expect(!t.hasValidSignature())
        // Another key's signature, or another key claimed as signer.
        let other = Self.key(algorithm, 8)
        t = stx
        t.signature = stx.transaction.signed(with: other).signature
        #expect(!t.hasValidSignature())
        t = stx
        t.transaction.signerKey = other.publicKey
        #expect(!t.hasValidSignature())
        // Signing the raw canonical bytes without the domain tag is not a transaction signature.
        t = stx
        t.signature = key.sign(stx.transaction.canonicalBytes)
        #expect(!t.hasValidSignature())
        #expect(stx.transaction.signingBytes == Array("iomt/tx/v1".utf8) + stx.transaction.canonicalBytes)
    }

    @Test("the transaction id does not cover the signature")
    func hashExcludesSignature() {
        let tx = Fixture.transaction()
        let a = SignedTransaction(transaction: tx, signature: Fixture.signature(1))
        let b = SignedTransaction(transaction: tx, signature: Fixture.signature(2))
        #expect(a.hash == b.hash)
        var tx2 = tx
        tx2.nonce += 1
        #expect(tx2.hash != tx.hash)
    }

    @Test("KeyFile round-trips and detects a mismatched public key", arguments: algorithms)
    func keyFile(_ algorithm: SignatureAlgorithm) throws {
        let key = Self.key(algorithm, 10)
        var file = KeyFile(key)
        #expect(try file.privateKeyValue().publicKey == key.publicKey)
        #expect(file.address == key.publicKey.address.hex)
        file.publicKey = Self.key(algorithm, 11).publicKey.text
        #expect(throws: KeyError.self) { try file.privateKeyValue() }
    }
}
