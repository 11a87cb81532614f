/// The canonical binary encoding (docs/encoding.md).
///
/// One value has exactly one encoding, on every machine: integers are fixed-width big-endian,
/// byte strings and UTF-8 strings carry a 32-bit big-endian length, arrays a 32-bit count,
/// optionals a presence byte (0 or 1), enums a one-byte tag. Decoding is strict: any other
/// presence byte, an unknown tag, invalid UTF-8, a length past the end, or trailing bytes are errors,
/// so `decode(encode(x)) == x` and `encode(decode(b)) == b` for every accepted `b`.
public struct CanonicalWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func write(_ v: UInt8) { bytes.append(v) }
    public mutating func write(_ v: Bool) { bytes.append(v ? 1 : 0) }
    public mutating func write(_ v: UInt16) { writeBigEndian(UInt64(v), width: 2) }
    public mutating func write(_ v: UInt32) { writeBigEndian(UInt64(v), width: 4) }
    public mutating func write(_ v: UInt64) { writeBigEndian(v, width: 8) }
    public mutating func write(_ v: Int64) { writeBigEndian(UInt64(bitPattern: v), width: 8) }

    /// Fixed-length bytes: no length prefix (the type fixes the length).
    public mutating func writeFixed<C: Collection>(_ v: C) where C.Element == UInt8 { bytes.append(contentsOf: v) }

    /// Variable-length bytes with a 32-bit length prefix.
    public mutating func writeBytes<C: Collection>(_ v: C) where C.Element == UInt8 {
        write(UInt32(v.count))
        bytes.append(contentsOf: v)
    }

    public mutating func write(_ v: String) { writeBytes(Array(v.utf8)) }

    public mutating func write<T: CanonicalEncodable>(_ v: T) { v.encode(to: &self) }

    public mutating func write<T: CanonicalEncodable>(_ v: T?) {
        if let v { write(UInt8(1)); v.encode(to: &self) } else { write(UInt8(0)) }
    }

    public mutating func write<T: CanonicalEncodable>(_ v: [T]) {
        write(UInt32(v.count))
        for e in v { e.encode(to: &self) }
    }

    private mutating func writeBigEndian(_ v: UInt64, width: Int) {
        var shift = (width - 1) * 8
        while shift >= 0 {
            bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift)))
            shift -= 8
        }
    }
}

/// Why a byte string is not a canonical encoding. Stable codes for the API.
public enum CanonicalDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    case unexpectedEnd(needed: Int, offset: Int)
    case invalidPresenceByte(UInt8, offset: Int)
    case invalidBool(UInt8, offset: Int)
    case unknownTag(type: String, tag: UInt8)
    case invalidUTF8(offset: Int)
    case lengthTooLarge(Int, limit: Int)
    case trailingBytes(count: Int)
    case invalidValue(String)

    public var description: String {
        switch self {
        case .unexpectedEnd(let n, let o): return "unexpected end of input: needed \(n) bytes at offset \(o)"
        case .invalidPresenceByte(let b, let o): return "invalid optional presence byte \(b) at offset \(o)"
        case .invalidBool(let b, let o): return "invalid boolean byte \(b) at offset \(o)"
        case .unknownTag(let t, let tag): return "unknown \(t) tag \(tag)"
        case .invalidUTF8(let o): return "invalid UTF-8 string at offset \(o)"
        case .lengthTooLarge(let n, let l): return "length \(n) exceeds limit \(l)"
        case .trailingBytes(let n): return "\(n) trailing bytes after the value"
        case .invalidValue(let why): return "invalid value: \(why)"
        }
    }
}

public struct CanonicalReader: Sendable {
    public let bytes: [UInt8]
    public private(set) var offset: Int = 0
    /// No single length prefix may exceed this (bounds allocations on hostile input).
    public var maxLength: Int
    /// Set when the bytes were written by this node (its own state): expensive semantic checks
    /// that structure alone cannot fail, such as a P-256 point being on the curve, are skipped.
    public let trusted: Bool

    public init(_ bytes: [UInt8], maxLength: Int = 16 << 20, trusted: Bool = false) {
        self.bytes = bytes
        self.maxLength = maxLength
        self.trusted = trusted
    }

    public var isAtEnd: Bool { offset == bytes.count }

    public mutating func readFixed(_ n: Int) throws(CanonicalDecodingError) -> [UInt8] {
        guard n >= 0, bytes.count - offset >= n else { throw .unexpectedEnd(needed: n, offset: offset) }
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    public mutating func read() throws(CanonicalDecodingError) -> UInt8 {
        guard offset < bytes.count else { throw .unexpectedEnd(needed: 1, offset: offset) }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func read() throws(CanonicalDecodingError) -> Bool {
        let at = offset
        let b: UInt8 = try read()
        switch b {
        case 0: return false
        case 1: return true
        default: throw .invalidBool(b, offset: at)
        }
    }

    public mutating func read() throws(CanonicalDecodingError) -> UInt16 { UInt16(try readBigEndian(2)) }
    public mutating func read() throws(CanonicalDecodingError) -> UInt32 { UInt32(try readBigEndian(4)) }
    public mutating func read() throws(CanonicalDecodingError) -> UInt64 { try readBigEndian(8) }
    public mutating func read() throws(CanonicalDecodingError) -> Int64 { Int64(bitPattern: try readBigEndian(8)) }

    public mutating func readBytes() throws(CanonicalDecodingError) -> [UInt8] {
        let n = Int(try read() as UInt32)
        guard n <= maxLength else { throw .lengthTooLarge(n, limit: maxLength) }
        return try readFixed(n)
    }

    public mutating func read() throws(CanonicalDecodingError) -> String {
        let at = offset
        let raw = try readBytes()
        guard let s = String(validating: raw, as: UTF8.self) else { throw .invalidUTF8(offset: at) }
        return s
    }

    public mutating func read<T: CanonicalDecodable>(_: T.Type = T.self) throws(CanonicalDecodingError) -> T {
        try T(from: &self)
    }

    public mutating func readOptional<T: CanonicalDecodable>(_: T.Type = T.self) throws(CanonicalDecodingError) -> T? {
        let at = offset
        let p: UInt8 = try read()
        switch p {
        case 0: return nil
        case 1: return try T(from: &self)
        default: throw .invalidPresenceByte(p, offset: at)
        }
    }

    public mutating func readArray<T: CanonicalDecodable>(_: T.Type = T.self) throws(CanonicalDecodingError) -> [T] {
        let n = Int(try read() as UInt32)
        // Every element takes at least one byte: a count past the remaining input is a lie.
        guard n <= bytes.count - offset else { throw .unexpectedEnd(needed: n, offset: offset) }
        var out: [T] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try T(from: &self)) }
        return out
    }

    public func finish() throws(CanonicalDecodingError) {
        guard isAtEnd else { throw .trailingBytes(count: bytes.count - offset) }
    }

    private mutating func readBigEndian(_ width: Int) throws(CanonicalDecodingError) -> UInt64 {
        guard bytes.count - offset >= width else { throw .unexpectedEnd(needed: width, offset: offset) }
        var v: UInt64 = 0
        for i in 0..<width { v = v << 8 | UInt64(bytes[offset + i]) }
        offset += width
        return v
    }
}

public protocol CanonicalEncodable {
    func encode(to writer: inout CanonicalWriter)
}

public protocol CanonicalDecodable {
    init(from reader: inout CanonicalReader) throws(CanonicalDecodingError)
}

public typealias CanonicalCodable = CanonicalEncodable & CanonicalDecodable

extension CanonicalEncodable {
    /// The canonical bytes of this value.
    public var canonicalBytes: [UInt8] {
        var w = CanonicalWriter()
        encode(to: &w)
        return w.bytes
    }
}

extension CanonicalDecodable {
    /// Decodes exactly one value from `bytes`; trailing bytes are an error.
    public init(canonicalBytes bytes: [UInt8], maxLength: Int = 16 << 20, trusted: Bool = false) throws(CanonicalDecodingError) {
        var r = CanonicalReader(bytes, maxLength: maxLength, trusted: trusted)
        self = try Self(from: &r)
        try r.finish()
    }
}

extension String: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(self) }
    public init(from reader: inout CanonicalReader) throws(CanonicalDecodingError) { self = try reader.read() }
}

extension UInt64: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) { writer.write(self) }
    public init(from reader: inout CanonicalReader) throws(CanonicalDecodingError) { self = try reader.read() }
}
