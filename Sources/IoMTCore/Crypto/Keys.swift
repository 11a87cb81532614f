import Crypto

/// The signature schemes an account may use. Both are elliptic-curve schemes the source papers name;
/// many device secure elements only do P-256.
public enum SignatureAlgorithm: UInt8, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case ed25519 = 1
    case p256 = 2

    public var description: String { self == .ed25519 ? "ed25519" : "p256" }

    public init?(name: String) {
        switch name.lowercased() {
        case "ed25519": self = .ed25519
        case "p256", "p-256", "ecdsa-p256", "secp256r1": self = .p256
        default: return nil
        }
    }

    var publicKeyLength: Int { self == .ed25519 ? 32 : 33 }
}

/// An account's public key: Ed25519 (32 bytes) or P-256 (33-byte SEC1 compressed point).
/// JSON form: `"ed25519:<hex>"` or `"p256:<hex>"`.
public struct PublicKey: Hashable, Sendable, CanonicalCodable, Codable, CustomStringConvertible {
    public let algorithm: SignatureAlgorithm
    public let bytes: [UInt8]

    /// Validates the key: the length for its algorithm and, for P-256, a point on the curve.
    public init(algorithm: SignatureAlgorithm, bytes: [UInt8]) throws(KeyError) {
        guard bytes.count == algorithm.publicKeyLength else {
            throw .invalidPublicKey("\(algorithm) public key must be \(algorithm.publicKeyLength) bytes, got \(bytes.count)")
        }
        switch algorithm {
        case .ed25519:
            guard (try? Curve25519.Signing.PublicKey(rawRepresentation: bytes)) != nil else { throw .invalidPublicKey("not an Ed25519 key") }
        case .p256:
            guard (try? P256.Signing.PublicKey(compressedRepresentation: bytes)) != nil else { throw .invalidPublicKey("not a point on P-256") }
        }
        self.algorithm = algorithm
        self.bytes = bytes
    }

    public init(text: String) throws(KeyError) {
        let parts = text.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, let alg = SignatureAlgorithm(name: String(parts[0])), let b = Hex.decode(String(parts[1])) else {
            throw .invalidPublicKey("expected \"ed25519:<hex>\" or \"p256:<hex>\", got \"\(text.prefix(80))\"")
        }
        try self.init(algorithm: alg, bytes: b)
    }

    /// A key straight from swift-crypto's own key object (already valid).
    init(trusted algorithm: SignatureAlgorithm, bytes: [UInt8]) {
        precondition(bytes.count == algorithm.publicKeyLength)
        self.algorithm = algorithm
        self.bytes = bytes
    }

    public var text: String { "\(algorithm):\(Hex.encode(bytes))" }
    public var description: String { text }

    /// The account address this key derives (fixed for the account's life, even across key rotation).
    public var address: Address { Address(deriving: self) }

    /// Verifies `signature` over `message`. Never throws: a malformed signature is simply invalid.
    public func isValidSignature(_ signature: Signature, for message: [UInt8]) -> Bool {
        switch algorithm {
        case .ed25519:
            guard let k = try? Curve25519.Signing.PublicKey(rawRepresentation: bytes) else { return false }
            return k.isValidSignature(signature.bytes, for: message)
        case .p256:
            guard let k = try? P256.Signing.PublicKey(compressedRepresentation: bytes),
                  let s = try? P256.Signing.ECDSASignature(rawRepresentation: signature.bytes) else { return false }
            return k.isValidSignature(s, for: message)
        }
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(algorithm.rawValue)
        writer.writeFixed(bytes)
    }

    public init(from reader: inout CanonicalReader) throws(CanonicalDecodingError) {
        let tag: UInt8 = try reader.read()
        guard let alg = SignatureAlgorithm(rawValue: tag) else { throw .unknownTag(type: "SignatureAlgorithm", tag: tag) }
        let b = try reader.readFixed(alg.publicKeyLength)
        if reader.trusted {
            self.init(trusted: alg, bytes: b)
        } else {
            do { try self.init(algorithm: alg, bytes: b) } catch { throw .invalidValue(error.description) }
        }
    }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(text: s) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(text)
    }
}

/// A 64-byte signature: Ed25519, or P-256 ECDSA as raw r‖s.
public struct Signature: Hashable, Sendable, CanonicalCodable, Codable, CustomStringConvertible {
    public static let byteCount = 64
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == Signature.byteCount else { return nil }
        self.bytes = bytes
    }

    init(trusted bytes: [UInt8]) {
        precondition(bytes.count == Signature.byteCount)
        self.bytes = bytes
    }

    public var description: String { Hex.encode(bytes) }

    public func encode(to writer: inout CanonicalWriter) { writer.writeFixed(bytes) }
    public init(from reader: inout CanonicalReader) throws(CanonicalDecodingError) { bytes = try reader.readFixed(64) }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let b = Hex.decode(s), let sig = Signature(bytes: b) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "signature must be 128 hex digits"))
        }
        self = sig
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(Hex.encode(bytes))
    }
}

/// A 20-byte account address: the first 20 bytes of SHA-256("iomt/address/v1" ‖ key encoding)
/// of the key the account was registered with.
public struct Address: Hashable, Comparable, Sendable, CanonicalCodable, Codable, CustomStringConvertible {
    public static let byteCount = 20
    public static let zero = Address(unchecked: [UInt8](repeating: 0, count: 20))
    public let bytes: [UInt8]

    init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    public init?(bytes: [UInt8]) {
        guard bytes.count == Address.byteCount else { return nil }
        self.bytes = bytes
    }

    public init?(hex: String) {
        guard let b = Hex.decode(hex) else { return nil }
        self.init(bytes: b)
    }

    public init(deriving key: PublicKey) {
        bytes = Array(Hash.domain("iomt/address/v1", key.canonicalBytes).bytes.prefix(20))
    }

    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }
    public static func < (a: Address, b: Address) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }

    public func encode(to writer: inout CanonicalWriter) { writer.writeFixed(bytes) }
    public init(from reader: inout CanonicalReader) throws(CanonicalDecodingError) { bytes = try reader.readFixed(20) }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let a = Address(hex: s) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "address must be 40 hex digits"))
        }
        self = a
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(hex)
    }
}

public enum KeyError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidPublicKey(String)
    case invalidPrivateKey(String)

    public var description: String {
        switch self {
        case .invalidPublicKey(let s): return "invalid public key: \(s)"
        case .invalidPrivateKey(let s): return "invalid private key: \(s)"
        }
    }
}

/// A signing key. Lives in key files and the CLI, never on-chain.
public struct PrivateKey: Sendable {
    // swift-crypto's key structs are immutable values, not yet marked Sendable.
    private enum Storage: @unchecked Sendable {
        case ed25519(Curve25519.Signing.PrivateKey)
        case p256(P256.Signing.PrivateKey)
    }

    private let storage: Storage
    public let publicKey: PublicKey

    /// A fresh key from the system's secure random generator.
    public static func generate(_ algorithm: SignatureAlgorithm) -> PrivateKey {
        switch algorithm {
        case .ed25519: return PrivateKey(.ed25519(Curve25519.Signing.PrivateKey()))
        case .p256: return PrivateKey(.p256(P256.Signing.PrivateKey()))
        }
    }

    /// Ed25519: the 32-byte seed. P-256: the 32-byte scalar.
    public init(algorithm: SignatureAlgorithm, rawBytes: [UInt8]) throws(KeyError) {
        switch algorithm {
        case .ed25519:
            guard let k = try? Curve25519.Signing.PrivateKey(rawRepresentation: rawBytes) else { throw .invalidPrivateKey("Ed25519 seed must be 32 bytes") }
            self.init(.ed25519(k))
        case .p256:
            guard let k = try? P256.Signing.PrivateKey(rawRepresentation: rawBytes) else { throw .invalidPrivateKey("P-256 scalar must be 32 bytes in range") }
            self.init(.p256(k))
        }
    }

    private init(_ s: Storage) {
        storage = s
        switch s {
        case .ed25519(let k):
            publicKey = PublicKey(trusted: .ed25519, bytes: Array(k.publicKey.rawRepresentation))
        case .p256(let k):
            publicKey = PublicKey(trusted: .p256, bytes: Array(k.publicKey.compressedRepresentation))
        }
    }

    public var algorithm: SignatureAlgorithm { publicKey.algorithm }

    public var rawBytes: [UInt8] {
        switch storage {
        case .ed25519(let k): return Array(k.rawRepresentation)
        case .p256(let k): return Array(k.rawRepresentation)
        }
    }

    public func sign(_ message: [UInt8]) -> Signature {
        switch storage {
        case .ed25519(let k):
            // Signing fails only if BoringSSL cannot allocate: nothing sensible is left to do then.
            guard let raw = try? k.signature(for: message) else { preconditionFailure("Ed25519 signing failed") }
            return Signature(trusted: Array(raw))
        case .p256(let k):
            guard let raw = try? k.signature(for: message) else { preconditionFailure("P-256 signing failed") }
            return Signature(trusted: Array(raw.rawRepresentation))
        }
    }
}

/// The JSON key file written by `iomtchain keys generate`.
public struct KeyFile: Codable, Sendable {
    public var algorithm: String
    public var privateKey: String
    public var publicKey: String
    public var address: String

    public init(_ key: PrivateKey) {
        algorithm = key.algorithm.description
        privateKey = Hex.encode(key.rawBytes)
        publicKey = key.publicKey.text
        address = key.publicKey.address.hex
    }

    public func privateKeyValue() throws -> PrivateKey {
        guard let alg = SignatureAlgorithm(name: algorithm) else { throw KeyError.invalidPrivateKey("unknown algorithm \(algorithm)") }
        guard let raw = Hex.decode(privateKey) else { throw KeyError.invalidPrivateKey("privateKey is not hex") }
        let key = try PrivateKey(algorithm: alg, rawBytes: raw)
        guard key.publicKey.text == publicKey else { throw KeyError.invalidPrivateKey("publicKey does not match privateKey") }
        return key
    }
}

/// An X25519 public key (32 bytes) that data keys are wrapped for: a patient's, or the records key
/// of a place's owner. JSON form: 64 hex digits.
public struct X25519Key: Hashable, Sendable, CanonicalCodable, Codable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(KeyError) {
        guard bytes.count == 32, let key = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: bytes) else {
            throw .invalidPublicKey("an X25519 public key is 32 bytes, got \(bytes.count)")
        }
        // A small-order point (all zeros, 1, the other low-order encodings) gives every sender the
        // same all-zero shared secret: data keys wrapped for it would be readable by anyone. A fixed
        // private key probes for it.
        guard let probe = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: [UInt8](repeating: 0x5A, count: 32)),
              let shared = try? probe.sharedSecretFromKeyAgreement(with: key),
              shared.withUnsafeBytes({ $0.contains { $0 != 0 } }) else {
            throw .invalidPublicKey("a small-order X25519 point is not a key: anyone could unwrap what is sealed for it")
        }
        self.bytes = bytes
    }

    public init(hex: String) throws(KeyError) {
        guard let b = Hex.decode(hex) else { throw .invalidPublicKey("an X25519 public key is 64 hex digits") }
        try self.init(bytes: b)
    }

    public var description: String { Hex.encode(bytes) }

    public func encode(to w: inout CanonicalWriter) { w.writeFixed(bytes) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        do { try self.init(bytes: try r.readFixed(32)) } catch let e as CanonicalDecodingError { throw e } catch { throw .invalidValue("\(error)") }
    }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(hex: s) } catch { throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description)) }
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
