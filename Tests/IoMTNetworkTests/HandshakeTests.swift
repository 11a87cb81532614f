import IoMTCore
import Testing

@testable import IoMTNetwork

@Suite struct HandshakeTests {
    static let ephemeralA = [UInt8](repeating: 0x11, count: 32)
    static let ephemeralB = [UInt8](repeating: 0x22, count: 32)
    static let nodeKeyA = try! PrivateKey(algorithm: .ed25519, rawBytes: [UInt8](repeating: 0xA1, count: 32))

    /// Known answer: fixed ephemeral keys and chain id give fixed transcript and keys. The expected
    /// values were computed independently with Python's `cryptography` (X25519, HKDF-SHA256, Ed25519,
    /// ChaCha20-Poly1305) following docs/network.md, not taken from this implementation.
    @Test func keyDerivationKnownAnswer() throws {
        let publicA = try Handshake.ephemeralPublicKey(of: Self.ephemeralA)
        let publicB = try Handshake.ephemeralPublicKey(of: Self.ephemeralB)
        let a = try Handshake.deriveKeys(chainID: "iomt-kat", localEphemeralPrivateKey: Self.ephemeralA, remoteEphemeralPublicKey: publicB)
        let b = try Handshake.deriveKeys(chainID: "iomt-kat", localEphemeralPrivateKey: Self.ephemeralB, remoteEphemeralPublicKey: publicA)
        #expect(a.transcriptHash == b.transcriptHash)
        #expect(a.sendKey == b.receiveKey)
        #expect(a.receiveKey == b.sendKey)
        #expect(a.sendKey != a.receiveKey)
        #expect(Hex.encode(publicA) == "7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13")
        #expect(a.transcriptHash.hex == "a6f5520080bb76cea12af9e2e72c758f1a13153bbaaea6c423569313aeb83f10")
        #expect(Hex.encode(a.sendKey) == "a5feb0af1425efb3505a990dd09f761dd02d2eb17fde1a25ec21c8d49151ea95")
        #expect(Hex.encode(a.receiveKey) == "1581ece4b591c5a716d04c40567a1e5278a730db377b30dc932f620cb120516e")
        // Ed25519 signing is deterministic, so the whole authentication message is a known answer too.
        let auth = Handshake.encodeAuth(nodeKey: Self.nodeKeyA, transcript: a.transcriptHash)
        #expect(Hex.encode(Array(Hash.sha256(auth).bytes)) == "ed6c0f8dc4c1ef8a4758ba36fac93ca1ef3613864fc81aefc5dbdedac46d3057")
        #expect(try Handshake.verifyAuth(auth, transcript: b.transcriptHash) == Self.nodeKeyA.publicKey)
        // Frame known answers: envelope (consensus, "hi") sealed as frames 0 and 1 with A's send key.
        var sealer = FrameSealer(key: a.sendKey)
        #expect(Hex.encode(try sealer.seal(Envelope(kind: .consensus, payload: Array("hi".utf8)).encoded)) == "0000001307884f832cddd54a9db010bd2425b0dab043cb")
        #expect(Hex.encode(try sealer.seal(Envelope(kind: .consensus, payload: Array("hi".utf8)).encoded)) == "000000138846115a7bdaba3bb5f06f5ebf58854a42a071")
        // The transcript binds the chain id: another chain derives other keys.
        let other = try Handshake.deriveKeys(chainID: "iomt-other", localEphemeralPrivateKey: Self.ephemeralA, remoteEphemeralPublicKey: publicB)
        #expect(other.transcriptHash != a.transcriptHash)
        #expect(other.sendKey != a.sendKey)
    }

    @Test func helloChecksMagicVersionAndChain() throws {
        let eph = try Handshake.ephemeralPublicKey(of: Self.ephemeralA)
        let hello = Handshake.encodeHello(chainID: "c1", ephemeralPublicKey: eph)
        #expect(hello.count == Handshake.helloByteCount)
        #expect(try Handshake.decodeHello(hello, chainID: "c1") == eph)
        #expect(throws: HandshakeError.chainIDMismatch) { try Handshake.decodeHello(hello, chainID: "c2") }
        var bad = hello
        bad[0] = 0
        #expect(throws: HandshakeError.badMagic) { try Handshake.decodeHello(bad, chainID: "c1") }
        bad = hello
        bad[4] = 9
        #expect(throws: HandshakeError.unsupportedVersion(9)) { try Handshake.decodeHello(bad, chainID: "c1") }
    }

    @Test func authRejectsWrongTranscriptAndGarbage() throws {
        let t1 = Hash.sha256([1]), t2 = Hash.sha256([2])
        for key in [Self.nodeKeyA, PrivateKey.generate(.p256)] {
            let auth = Handshake.encodeAuth(nodeKey: key, transcript: t1)
            #expect(try Handshake.verifyAuth(auth, transcript: t1) == key.publicKey)
            #expect(throws: HandshakeError.badSignature) { try Handshake.verifyAuth(auth, transcript: t2) }
            #expect(throws: HandshakeError.malformedAuth) { try Handshake.verifyAuth(Array(auth.dropLast()), transcript: t1) }
            #expect(throws: HandshakeError.malformedAuth) { try Handshake.verifyAuth(auth + [0], transcript: t1) }
        }
    }

    @Test func reflectedOrLowOrderEphemeralRefused() throws {
        let publicA = try Handshake.ephemeralPublicKey(of: Self.ephemeralA)
        #expect(throws: HandshakeError.reflectedEphemeralKey) {
            try Handshake.deriveKeys(chainID: "c", localEphemeralPrivateKey: Self.ephemeralA, remoteEphemeralPublicKey: publicA)
        }
        #expect(throws: HandshakeError.invalidEphemeralKey) {
            try Handshake.deriveKeys(chainID: "c", localEphemeralPrivateKey: Self.ephemeralA, remoteEphemeralPublicKey: [UInt8](repeating: 0, count: 32))
        }
    }

    @Test func framesDetectTamperingReplayAndReordering() throws {
        let key = [UInt8](repeating: 7, count: 32)
        var sealer = FrameSealer(key: key)
        var opener = FrameOpener(key: key)
        let f0 = try sealer.seal([1, 2, 3]), f1 = try sealer.seal([4]), f2 = try sealer.seal([5])
        #expect(f0.count == 4 + 3 + 16)
        #expect(try opener.open(body: Array(f0.dropFirst(4))) == [1, 2, 3])
        // Replay of frame 0 now fails (expected counter 1).
        var replay = opener
        #expect(throws: FrameError.authenticationFailed) { try replay.open(body: Array(f0.dropFirst(4))) }
        // Reordering: frame 2 before frame 1 fails.
        var reorder = opener
        #expect(throws: FrameError.authenticationFailed) { try reorder.open(body: Array(f2.dropFirst(4))) }
        // A flipped ciphertext bit fails.
        var tampered = Array(f1.dropFirst(4))
        tampered[0] ^= 1
        var tamper = opener
        #expect(throws: FrameError.authenticationFailed) { try tamper.open(body: tampered) }
        // Truncation fails.
        var truncate = opener
        #expect(throws: FrameError.authenticationFailed) { try truncate.open(body: Array(f1.dropFirst(4).dropLast())) }
        #expect(try opener.open(body: Array(f1.dropFirst(4))) == [4])
        #expect(try opener.open(body: Array(f2.dropFirst(4))) == [5])
    }

    @Test func envelopeEncoding() {
        let e = Envelope(kind: .blockSyncResponse, payload: [9, 8])
        #expect(e.encoded == [4, 9, 8])
        #expect(Envelope(encoded: [4, 9, 8]) == e)
        #expect(Envelope(encoded: []) == nil)
        #expect(Envelope(encoded: [0x40])?.kind == EnvelopeKind(rawValue: 0x40))
    }

    @Test func gossipFilterIsBoundedAndForgetsOldest() {
        let filter = GossipFilter(capacity: 3)
        let h = (0..<5).map { Hash.sha256([UInt8($0)]) }
        #expect(filter.firstSight(h[0]))
        #expect(!filter.firstSight(h[0]))
        #expect(filter.firstSight(h[1]))
        #expect(filter.firstSight(h[2]))
        #expect(filter.firstSight(h[3]))  // evicts h[0]
        #expect(filter.count == 3)
        #expect(!filter.contains(h[0]))
        #expect(filter.firstSight(h[0]))
        #expect(!filter.firstSight(h[3]))
    }
}
