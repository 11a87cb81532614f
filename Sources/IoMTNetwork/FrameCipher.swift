import Crypto

/// Why an encrypted frame was rejected. Any of them closes the connection and bans the peer.
public enum FrameError: Error, Equatable, Sendable {
    /// The length prefix exceeds the configured maximum (checked before buffering the body).
    case oversize(length: Int, limit: Int)
    /// Shorter than a tag, or the ChaChaPoly tag does not verify: tampering, truncation, replay or
    /// reordering (the nonce is the expected counter, so any of them fails here).
    case authenticationFailed
    /// 2^64 frames in one direction: never in practice; the connection is closed rather than reuse a nonce.
    case counterExhausted
}

/// Frame layout: `length:u32be ‖ ciphertext ‖ tag(16)`, `length = |ciphertext| + 16`.
/// ChaCha20-Poly1305 with nonce `0x00000000 ‖ counter:u64be` (the counter counts frames in that
/// direction from 0, the handshake's authentication message being frame 0) and the 4 length bytes as
/// associated data, so a changed length is detected too.
public enum FrameFormat {
    public static let lengthPrefixByteCount = 4
    public static let tagByteCount = 16

    static func nonce(_ counter: UInt64) -> ChaChaPoly.Nonce {
        var bytes = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { bytes[4 + i] = UInt8(truncatingIfNeeded: counter >> UInt64(56 - 8 * i)) }
        // 12 bytes is always a valid ChaChaPoly nonce.
        guard let nonce = try? ChaChaPoly.Nonce(data: bytes) else { preconditionFailure("12-byte nonce rejected") }
        return nonce
    }

    static func lengthPrefix(_ length: Int) -> [UInt8] {
        let v = UInt32(length)
        return [UInt8(v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)]
    }
}

/// Seals the frames of one direction.
public struct FrameSealer: @unchecked Sendable {  // SymmetricKey is an immutable value
    private let key: SymmetricKey
    public private(set) var counter: UInt64 = 0

    public init(key: [UInt8]) { self.key = SymmetricKey(data: key) }

    /// The whole frame, length prefix included.
    public mutating func seal(_ plaintext: [UInt8]) throws(FrameError) -> [UInt8] {
        guard counter < UInt64.max else { throw .counterExhausted }
        let prefix = FrameFormat.lengthPrefix(plaintext.count + FrameFormat.tagByteCount)
        guard let box = try? ChaChaPoly.seal(plaintext, using: key, nonce: FrameFormat.nonce(counter), authenticating: prefix) else {
            preconditionFailure("ChaChaPoly.seal failed with a valid key and nonce")
        }
        counter += 1
        return prefix + Array(box.ciphertext) + Array(box.tag)
    }
}

/// Opens the frames of one direction, in order.
public struct FrameOpener: @unchecked Sendable {  // SymmetricKey is an immutable value
    private let key: SymmetricKey
    public private(set) var counter: UInt64 = 0

    public init(key: [UInt8]) { self.key = SymmetricKey(data: key) }

    /// `body` is the `length` bytes that followed the length prefix.
    public mutating func open(body: [UInt8]) throws(FrameError) -> [UInt8] {
        guard counter < UInt64.max else { throw .counterExhausted }
        guard body.count >= FrameFormat.tagByteCount else { throw .authenticationFailed }
        let split = body.count - FrameFormat.tagByteCount
        let prefix = FrameFormat.lengthPrefix(body.count)
        guard let box = try? ChaChaPoly.SealedBox(nonce: FrameFormat.nonce(counter), ciphertext: body[0..<split], tag: body[split...]),
              let plain = try? ChaChaPoly.open(box, using: key, authenticating: prefix) else { throw .authenticationFailed }
        counter += 1
        return Array(plain)
    }
}
