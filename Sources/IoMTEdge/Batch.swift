import Crypto
import IoMTCore

/// A reading as a gateway accepted it: which gateway, which device, the gateway's sequence number.
/// These make every leaf unique, so two batches never share a root even when a device sends the
/// same values twice (a retransmission), and the root still commits to where each reading came from.
public struct BatchedReading: Hashable, Sendable, CanonicalCodable {
    public var gateway: Address
    public var device: Address
    public var sequence: UInt64
    public var reading: Reading

    public init(gateway: Address, device: Address, sequence: UInt64, reading: Reading) {
        self.gateway = gateway; self.device = device; self.sequence = sequence; self.reading = reading
    }

    public func encode(to w: inout CanonicalWriter) { w.write(gateway); w.write(device); w.write(sequence); w.write(reading) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        gateway = try r.read(); device = try r.read(); sequence = try r.read(); reading = try r.read()
    }
}

/// A batch of one device's readings, as the gateway anchors it: leaves are the canonical encodings
/// of its `BatchedReading`s, the root is RFC 6962 over them (the same tree as a block's
/// transactions), and any one reading is proven to the anchored root by an inclusion proof.
public struct ReadingBatch: Sendable, Equatable {
    public let readings: [BatchedReading]
    public let leafHashes: [Hash]

    public init(_ readings: [BatchedReading]) {
        self.readings = readings
        leafHashes = readings.map { MerkleTree.leafHash($0.canonicalBytes) }
    }

    public var root: Hash { MerkleTree.root(leafHashes: leafHashes) }
    public var firstMs: Int64 { readings.map(\.reading.effectiveMs).min() ?? 0 }
    public var lastMs: Int64 { readings.map { $0.reading.effectiveEndMs ?? $0.reading.effectiveMs }.max() ?? 0 }

    public func proof(_ index: Int) -> InclusionProof? { MerkleTree.proof(leafHashes: leafHashes, index: index) }

    /// True if `reading` is leaf `proof.leafIndex` of the batch whose root is `root`.
    public static func verify(_ reading: BatchedReading, proof: InclusionProof, root: Hash) -> Bool {
        proof.verify(leaf: reading.canonicalBytes, root: root)
    }
}

/// Why a blob could not be opened. A tampered or truncated blob, or the wrong key, ends here.
public enum BlobError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed(String)
    case notARecipient
    case authenticationFailed

    public var description: String {
        switch self {
        case .malformed(let s): return "malformed blob: \(s)"
        case .notARecipient: return "the key is not one of the blob's recipients"
        case .authenticationFailed: return "the blob or its wrapped key fails authentication (tampered, or the wrong key)"
        }
    }
}

/// An encrypted batch, stored off-chain under its `ContentID`.
///
/// The batch (canonical `[BatchedReading]`, from which its root can be recomputed) is sealed with AES-256-GCM under a fresh data key; the data
/// key is wrapped for each recipient's X25519 key (ephemeral X25519 agreement, HKDF-SHA256, AES-GCM).
/// The header (version, compression and wrapped keys) is the AEAD's associated data, so changing any byte of the
/// blob fails authentication; its content id changes too. Keys and the ephemeral key are passed in:
/// this type has no randomness of its own (the gateway draws them).
///
/// The plaintext is compressed (zlib) before it is encrypted: readings repeat their codes and units.
///
/// ```
/// SealedBlob  = version:u8(2) ‖ compression:u8 (0 none, 1 zlib) ‖ recipients:[WrappedKey] ‖ nonce:12 ‖ ciphertext‖tag:Bytes
/// WrappedKey  = recipient:32 ‖ ephemeral:32 ‖ wrapped:Bytes (AES-GCM of the 32-byte data key, zero nonce:
///               each wrapping key is used once)
/// wrapping key = HKDF-SHA256(X25519(ephemeral, recipient), salt = ephemeral ‖ recipient, info = "iomtchain/blob-key/v1", 32)
/// ```
public struct SealedBlob: Sendable, Equatable {
    public struct WrappedKey: Sendable, Equatable, CanonicalCodable {
        public var recipient: [UInt8]
        public var ephemeral: [UInt8]
        public var wrapped: [UInt8]

        public func encode(to w: inout CanonicalWriter) { w.writeFixed(recipient); w.writeFixed(ephemeral); w.writeBytes(wrapped) }
        public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
            recipient = try r.readFixed(32); ephemeral = try r.readFixed(32); wrapped = try r.readBytes()
        }
        public init(recipient: [UInt8], ephemeral: [UInt8], wrapped: [UInt8]) { self.recipient = recipient; self.ephemeral = ephemeral; self.wrapped = wrapped }
    }

    public static let version: UInt8 = 2
    /// Largest plaintext a blob may expand to (a decompression bomb is refused, not allocated).
    public static let maxPlaintext = 64 << 20
    public enum Compression: UInt8, Sendable { case none = 0, zlib = 1 }
    public var compression: Compression = .zlib
    public var recipients: [WrappedKey]
    public var nonce: [UInt8]
    public var ciphertext: [UInt8]

    /// The stored bytes.
    public var bytes: [UInt8] {
        var w = CanonicalWriter()
        w.writeFixed(header); w.writeFixed(nonce); w.writeBytes(ciphertext)
        return w.bytes
    }

    public var contentID: ContentID { ContentID(of: bytes) }

    var header: [UInt8] {
        var w = CanonicalWriter()
        w.write(Self.version); w.write(compression.rawValue); w.write(recipients)
        return w.bytes
    }

    public init(bytes: [UInt8]) throws(BlobError) {
        var r = CanonicalReader(bytes, maxLength: 64 << 20)
        do {
            let v: UInt8 = try r.read()
            guard v == Self.version else { throw BlobError.malformed("version \(v)") }
            let c: UInt8 = try r.read()
            guard let known = Compression(rawValue: c) else { throw BlobError.malformed("compression \(c)") }
            compression = known
            recipients = try r.readArray()
            nonce = try r.readFixed(12)
            ciphertext = try r.readBytes()
            guard r.isAtEnd else { throw BlobError.malformed("trailing bytes") }
        } catch let e as BlobError { throw e } catch { throw .malformed("\(error)") }
        guard !recipients.isEmpty else { throw .malformed("no recipients") }
    }

    static func wrappingKey(ephemeral: Curve25519.KeyAgreement.PrivateKey, recipient: Curve25519.KeyAgreement.PublicKey) throws -> SymmetricKey {
        try ephemeral.sharedSecretFromKeyAgreement(with: recipient).hkdfDerivedSymmetricKey(
            using: SHA256.self, salt: ephemeral.publicKey.rawRepresentation + recipient.rawRepresentation,
            sharedInfo: Array("iomtchain/blob-key/v1".utf8), outputByteCount: 32)
    }

    /// Seals `readings` for `recipients`. `dataKey` (32 bytes), `nonce` (12 bytes) and one
    /// ephemeral key per recipient must be fresh random values.
    public static func seal(_ readings: [BatchedReading], dataKey: SymmetricKey, nonce: [UInt8], recipients: [Curve25519.KeyAgreement.PublicKey], ephemerals: [Curve25519.KeyAgreement.PrivateKey], compression: Compression = .zlib) throws -> SealedBlob {
        precondition(recipients.count == ephemerals.count && !recipients.isEmpty && nonce.count == 12 && dataKey.bitCount == 256)
        let raw = dataKey.withUnsafeBytes { Array($0) }
        var wrapped: [WrappedKey] = []
        for (r, e) in zip(recipients, ephemerals) {
            let box = try AES.GCM.seal(raw, using: try wrappingKey(ephemeral: e, recipient: r), nonce: AES.GCM.Nonce(data: [UInt8](repeating: 0, count: 12)))
            wrapped.append(WrappedKey(recipient: Array(r.rawRepresentation), ephemeral: Array(e.publicKey.rawRepresentation), wrapped: Array(box.ciphertext) + Array(box.tag)))
        }
        var blob = SealedBlob(recipients: wrapped, nonce: nonce, ciphertext: [])
        blob.compression = compression
        var w = CanonicalWriter()
        w.write(readings)
        let plain = compression == .zlib ? Deflate.compress(w.bytes, level: 1) : w.bytes
        let box = try AES.GCM.seal(plain, using: dataKey, nonce: AES.GCM.Nonce(data: nonce), authenticating: blob.header)
        blob.ciphertext = Array(box.ciphertext) + Array(box.tag)
        return blob
    }

    private init(recipients: [WrappedKey], nonce: [UInt8], ciphertext: [UInt8]) {
        self.recipients = recipients; self.nonce = nonce; self.ciphertext = ciphertext
    }

    /// The data key, unwrapped with a recipient's private key.
    public func dataKey(for key: Curve25519.KeyAgreement.PrivateKey) throws(BlobError) -> SymmetricKey {
        let me = Array(key.publicKey.rawRepresentation)
        guard let w = recipients.first(where: { $0.recipient == me }) else { throw .notARecipient }
        return try Self.unwrap(w, with: key)
    }

    /// Unwraps a wrapped data key (one of the blob's, or one re-wrapped for a reader) with the
    /// private key it was wrapped for.
    public static func unwrap(_ w: WrappedKey, with key: Curve25519.KeyAgreement.PrivateKey) throws(BlobError) -> SymmetricKey {
        let me = Array(key.publicKey.rawRepresentation)
        guard w.recipient == me else { throw .notARecipient }
        guard w.wrapped.count == 48 else { throw .malformed("wrapped key length \(w.wrapped.count)") }
        do {
            let eph = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: w.ephemeral)
            let shared = try key.sharedSecretFromKeyAgreement(with: eph).hkdfDerivedSymmetricKey(
                using: SHA256.self, salt: w.ephemeral + me, sharedInfo: Array("iomtchain/blob-key/v1".utf8), outputByteCount: 32)
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: [UInt8](repeating: 0, count: 12)), ciphertext: Array(w.wrapped.prefix(32)), tag: Array(w.wrapped.suffix(16)))
            return SymmetricKey(data: try AES.GCM.open(box, using: shared))
        } catch {
            throw .authenticationFailed
        }
    }

    /// Key re-wrapping (issue 5 §3): the blob's data key, unwrapped with `custody` (a recipient's
    /// key, such as a gateway's), wrapped again for `reader`'s X25519 key with a fresh ephemeral
    /// key. The reader decrypts locally; whoever re-wraps never sends the data key in the clear.
    public func rewrap(with custody: Curve25519.KeyAgreement.PrivateKey, for reader: Curve25519.KeyAgreement.PublicKey, ephemeral: Curve25519.KeyAgreement.PrivateKey = .init()) throws(BlobError) -> WrappedKey {
        let dataKey = try dataKey(for: custody)
        do {
            let box = try AES.GCM.seal(dataKey.withUnsafeBytes { Array($0) }, using: try Self.wrappingKey(ephemeral: ephemeral, recipient: reader), nonce: AES.GCM.Nonce(data: [UInt8](repeating: 0, count: 12)))
            return WrappedKey(recipient: Array(reader.rawRepresentation), ephemeral: Array(ephemeral.publicKey.rawRepresentation), wrapped: Array(box.ciphertext) + Array(box.tag))
        } catch {
            throw .malformed("re-wrapping: \(error)")
        }
    }

    /// Decrypts and decodes the readings with the data key.
    public func open(dataKey: SymmetricKey) throws(BlobError) -> [BatchedReading] {
        guard ciphertext.count >= 16 else { throw .malformed("ciphertext shorter than its tag") }
        var plain: [UInt8]
        do {
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce), ciphertext: Array(ciphertext.dropLast(16)), tag: Array(ciphertext.suffix(16)))
            plain = Array(try AES.GCM.open(box, using: dataKey, authenticating: header))
        } catch {
            throw .authenticationFailed
        }
        if compression == .zlib {
            do { plain = try Deflate.decompress(plain, maxOutput: Self.maxPlaintext) } catch { throw .malformed(error.description) }
        }
        do { return try [BatchedReading](canonicalBytes: plain) } catch { throw .malformed("readings: \(error)") }
    }

    public func open(with key: Curve25519.KeyAgreement.PrivateKey) throws(BlobError) -> [BatchedReading] { try open(dataKey: try dataKey(for: key)) }
}

/// JSON form of a wrapped key: `{"recipient", "ephemeral", "wrapped"}`, each in hex.
extension SealedBlob.WrappedKey: Codable {
    private enum Keys: String, CodingKey { case recipient, ephemeral, wrapped }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        func field(_ k: Keys, _ n: Int?) throws -> [UInt8] {
            guard let b = Hex.decode(try c.decode(String.self, forKey: k)), n == nil || b.count == n else {
                throw DecodingError.dataCorruptedError(forKey: k, in: c, debugDescription: "expected \(n.map { "\($0 * 2) " } ?? "")hex digits")
            }
            return b
        }
        self.init(recipient: try field(.recipient, 32), ephemeral: try field(.ephemeral, 32), wrapped: try field(.wrapped, 48))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(Hex.encode(recipient), forKey: .recipient); try c.encode(Hex.encode(ephemeral), forKey: .ephemeral); try c.encode(Hex.encode(wrapped), forKey: .wrapped)
    }
}
