import Crypto

/// A SHA-256 digest. The one hash of the system: blocks, transactions, Merkle nodes, state keys.
public struct Hash: Hashable, Comparable, Sendable, CanonicalCodable, Codable, CustomStringConvertible {
    public static let byteCount = 32
    public static let zero = Hash(unchecked: [UInt8](repeating: 0, count: 32))

    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == Hash.byteCount else { return nil }
        self.bytes = bytes
    }

    init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    public init?(hex: String) {
        guard let b = Hex.decode(hex) else { return nil }
        self.init(bytes: b)
    }

    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }

    public static func < (a: Hash, b: Hash) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }

    public static func == (a: Hash, b: Hash) -> Bool { a.bytes == b.bytes }

    /// A digest is already uniform: its first eight bytes feed the hasher (one combine, not 32).
    public func hash(into hasher: inout Hasher) {
        var word: UInt64 = 0
        for i in 0..<8 { word = word << 8 | UInt64(bytes[i]) }
        hasher.combine(word)
    }

    /// Bit `i` (0 = most significant bit of the first byte).
    @inlinable public func bit(_ i: Int) -> Bool { (bytes[i >> 3] >> (7 - UInt8(i & 7))) & 1 == 1 }

    // MARK: hashing

    public static func sha256(_ data: [UInt8]) -> Hash {
        Hash(unchecked: Array(SHA256.hash(data: data)))
    }

    /// SHA-256 of a one-byte domain prefix followed by `parts`, without concatenating first.
    public static func tagged(_ tag: UInt8, _ parts: [UInt8]...) -> Hash {
        var h = SHA256()
        h.update(data: [tag])
        for p in parts { h.update(data: p) }
        return Hash(unchecked: Array(h.finalize()))
    }

    /// SHA-256 of a domain-separation string followed by `parts`.
    public static func domain(_ label: String, _ parts: [UInt8]...) -> Hash {
        var h = SHA256()
        h.update(data: Array(label.utf8))
        for p in parts { h.update(data: p) }
        return Hash(unchecked: Array(h.finalize()))
    }

    // MARK: encodings

    public func encode(to writer: inout CanonicalWriter) { writer.writeFixed(bytes) }

    public init(from reader: inout CanonicalReader) throws(CanonicalDecodingError) {
        bytes = try reader.readFixed(Hash.byteCount)
    }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let h = Hash(hex: s) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "expected 64 hex digits, got \"\(s.prefix(80))\""))
        }
        self = h
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(hex)
    }
}
