import Crypto
import IoMTCore

/// Why a handshake failed. Each maps to a `RefusalReason`.
public enum HandshakeError: Error, Equatable, Sendable, CustomStringConvertible {
    case badMagic
    case unsupportedVersion(UInt8)
    case chainIDMismatch
    case invalidEphemeralKey
    /// The peer echoed our own ephemeral key (a reflection attempt).
    case reflectedEphemeralKey
    case malformedAuth
    case badSignature

    public var description: String {
        switch self {
        case .badMagic: return "hello does not start with \"IOMT\""
        case .unsupportedVersion(let v): return "unsupported p2p protocol version \(v)"
        case .chainIDMismatch: return "peer is on another chain"
        case .invalidEphemeralKey: return "invalid X25519 ephemeral key"
        case .reflectedEphemeralKey: return "peer sent our own ephemeral key back"
        case .malformedAuth: return "malformed authentication message"
        case .badSignature: return "node signature over the transcript does not verify"
        }
    }
}

/// The session keys one side derives from a handshake.
public struct SessionKeys: Equatable, Sendable {
    /// SHA-256 over the protocol tag, the chain id and both ephemeral keys (lower one first).
    public var transcriptHash: Hash
    /// ChaChaPoly key for frames this side sends.
    public var sendKey: [UInt8]
    /// ChaChaPoly key for frames this side receives.
    public var receiveKey: [UInt8]
}

/// The mutual authenticated key exchange (docs/network.md, "Handshake"): a station-to-station
/// handshake modelled on CometBFT's SecretConnection and the Noise XX pattern —
/// ephemeral X25519 in the clear, HKDF-SHA256 over a transcript hash, then each side proves its
/// long-term node key by signing the transcript hash inside the encrypted channel.
///
/// Everything here is pure (no I/O, no randomness: the ephemeral private key is an input), so the
/// derivation has known-answer tests.
public enum Handshake {
    public static let protocolTag = "iomt/p2p/v1"
    public static let magic: [UInt8] = Array("IOMT".utf8)
    public static let version: UInt8 = 1
    /// `magic(4) ‖ version(1) ‖ chainTag(32) ‖ ephemeralPublicKey(32)`.
    public static let helloByteCount = 4 + 1 + 32 + 32
    /// Domain prefix of the bytes a node signs: `"iomt/p2p/v1/auth" ‖ transcriptHash`.
    public static let authDomain: [UInt8] = Array("iomt/p2p/v1/auth".utf8)
    /// HKDF `info` for the two directional keys.
    public static let keyInfo: [UInt8] = Array("iomt/p2p/v1/keys".utf8)
    /// Largest authentication plaintext: P-256 key (1 + 33) + signature (64).
    public static let maxAuthByteCount = 1 + 33 + 64

    /// `SHA-256("iomt/p2p/v1/chain" ‖ chainID)`: lets a peer on another chain be told apart
    /// (refused as `chainIDMismatch`) before any key is derived.
    public static func chainTag(_ chainID: String) -> Hash {
        Hash.domain("iomt/p2p/v1/chain", Array(chainID.utf8))
    }

    /// The public half of a raw 32-byte X25519 private key.
    public static func ephemeralPublicKey(of privateKey: [UInt8]) throws(HandshakeError) -> [UInt8] {
        guard let k = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: privateKey) else { throw .invalidEphemeralKey }
        return Array(k.publicKey.rawRepresentation)
    }

    /// A fresh ephemeral private key from the system's secure generator.
    public static func randomEphemeralKey() -> [UInt8] {
        Array(Curve25519.KeyAgreement.PrivateKey().rawRepresentation)
    }

    public static func encodeHello(chainID: String, ephemeralPublicKey: [UInt8]) -> [UInt8] {
        precondition(ephemeralPublicKey.count == 32, "X25519 public keys are 32 bytes")
        var out = magic
        out.append(version)
        out.append(contentsOf: chainTag(chainID).bytes)
        out.append(contentsOf: ephemeralPublicKey)
        return out
    }

    /// Checks a peer's hello and returns its ephemeral public key.
    public static func decodeHello(_ bytes: [UInt8], chainID: String) throws(HandshakeError) -> [UInt8] {
        guard bytes.count == helloByteCount, Array(bytes[0..<4]) == magic else { throw .badMagic }
        guard bytes[4] == version else { throw .unsupportedVersion(bytes[4]) }
        guard Array(bytes[5..<37]) == chainTag(chainID).bytes else { throw .chainIDMismatch }
        return Array(bytes[37..<69])
    }

    /// `SHA-256(canonical(protocolTag) ‖ canonical(chainID) ‖ lo ‖ hi)`, where lo/hi are the two
    /// ephemeral public keys in lexicographic order (both sides compute the same value).
    public static func transcriptHash(chainID: String, ephemeralA: [UInt8], ephemeralB: [UInt8]) -> Hash {
        let (lo, hi) = ephemeralA.lexicographicallyPrecedes(ephemeralB) ? (ephemeralA, ephemeralB) : (ephemeralB, ephemeralA)
        var w = CanonicalWriter(capacity: 128)
        w.write(protocolTag)
        w.write(chainID)
        w.writeFixed(lo)
        w.writeFixed(hi)
        return Hash.sha256(w.bytes)
    }

    /// Derives the transcript hash and the two directional keys:
    /// `okm = HKDF-SHA256(ikm: X25519(local, remote), salt: transcriptHash, info: keyInfo, 64)`;
    /// `okm[0..<32]` encrypts frames sent by the side with the lower ephemeral key, `okm[32..<64]`
    /// those sent by the other side.
    public static func deriveKeys(chainID: String, localEphemeralPrivateKey: [UInt8], remoteEphemeralPublicKey: [UInt8]) throws(HandshakeError) -> SessionKeys {
        guard let local = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: localEphemeralPrivateKey) else { throw .invalidEphemeralKey }
        let localPublic = Array(local.publicKey.rawRepresentation)
        guard localPublic != remoteEphemeralPublicKey else { throw .reflectedEphemeralKey }
        guard let remote = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: remoteEphemeralPublicKey),
              let shared = try? local.sharedSecretFromKeyAgreement(with: remote) else { throw .invalidEphemeralKey }
        let sharedBytes = shared.withUnsafeBytes { Array($0) }
        // A low-order point yields the all-zero secret: refuse it (RFC 7748 §6.1).
        guard sharedBytes.contains(where: { $0 != 0 }) else { throw .invalidEphemeralKey }
        let transcript = transcriptHash(chainID: chainID, ephemeralA: localPublic, ephemeralB: remoteEphemeralPublicKey)
        let okm = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: sharedBytes), salt: transcript.bytes, info: keyInfo, outputByteCount: 64
        ).withUnsafeBytes { Array($0) }
        let lowKey = Array(okm[0..<32]), highKey = Array(okm[32..<64])
        let localIsLow = localPublic.lexicographicallyPrecedes(remoteEphemeralPublicKey)
        return SessionKeys(transcriptHash: transcript, sendKey: localIsLow ? lowKey : highKey, receiveKey: localIsLow ? highKey : lowKey)
    }

    /// The bytes a node key signs: `authDomain ‖ transcriptHash`.
    public static func signedBytes(transcript: Hash) -> [UInt8] { authDomain + transcript.bytes }

    /// The authentication plaintext: `canonical(PublicKey) ‖ signature(64)`.
    public static func encodeAuth(nodeKey: PrivateKey, transcript: Hash) -> [UInt8] {
        nodeKey.publicKey.canonicalBytes + nodeKey.sign(signedBytes(transcript: transcript)).bytes
    }

    /// Decodes a peer's authentication plaintext and verifies its signature over the transcript.
    public static func verifyAuth(_ bytes: [UInt8], transcript: Hash) throws(HandshakeError) -> PublicKey {
        var reader = CanonicalReader(bytes, maxLength: maxAuthByteCount)
        guard let key = try? PublicKey(from: &reader),
              let raw = try? reader.readFixed(Signature.byteCount),
              reader.isAtEnd,
              let signature = Signature(bytes: raw) else { throw .malformedAuth }
        guard key.isValidSignature(signature, for: signedBytes(transcript: transcript)) else { throw .badSignature }
        return key
    }
}
