

/// A content identifier: CIDv1, codec raw (0x55), multihash sha2-256 (0x12, 32 bytes), written in
/// multibase base32 (RFC 4648 lower case, no padding, prefix `b`), as IPFS writes it: `bafkrei…`.
/// The same bytes give the same id here and in any IPFS tool.
public struct ContentID: Hashable, Sendable, Comparable, CustomStringConvertible, CanonicalCodable {
    public let digest: Hash

    public init(digest: Hash) { self.digest = digest }

    /// The id of `bytes`.
    public init(of bytes: [UInt8]) { digest = Hash.sha256(bytes) }

    static let prefix: [UInt8] = [0x01, 0x55, 0x12, 0x20]

    /// The binary CID: version, codec, multihash code, digest length, digest.
    public var bytes: [UInt8] { Self.prefix + digest.bytes }

    public var description: String { "b" + Base32.encode(bytes) }

    /// Parses the text form; nil for anything but a base32 CIDv1 raw sha2-256.
    public init?(_ text: String) {
        guard text.first == "b", let raw = Base32.decode(String(text.dropFirst())), raw.count == 36, Array(raw[0..<4]) == Self.prefix,
              let h = Hash(bytes: Array(raw[4...])) else { return nil }
        digest = h
    }

    /// The CIDv1 that `ipfs add` gives a file holding `bytes` (dag-pb codec 0x70 over a UnixFS File
    /// node, sha2-256, base32), for files of one chunk (at most 256 KiB; nil above). Blobs are
    /// stored under their raw id (`description`); this is the cross-check with IPFS's own tools
    /// (Debian's `ipfs-cid`), which hash files this way.
    public static func unixFSFileID(_ bytes: [UInt8]) -> String? {
        guard bytes.count <= 262_144 else { return nil }
        func varint(_ v: Int) -> [UInt8] {
            var v = UInt64(v), out: [UInt8] = []
            repeat { var b = UInt8(v & 0x7F); v >>= 7; if v != 0 { b |= 0x80 }; out.append(b) } while v != 0
            return out
        }
        // UnixFS Data { Type = File (field 1: 2), Data (field 2, omitted when empty), filesize (field 3) }
        var unixfs: [UInt8] = [0x08, 0x02]
        if !bytes.isEmpty { unixfs += [0x12] + varint(bytes.count) + bytes }
        unixfs += [0x18] + varint(bytes.count)
        // PBNode { Data (field 1) }, no links.
        let node = [0x0A] + varint(unixfs.count) + unixfs
        return "b" + Base32.encode([0x01, 0x70, 0x12, 0x20] + Hash.sha256(node).bytes)
    }

    /// True if `bytes` are the content this id names.
    public func matches(_ bytes: [UInt8]) -> Bool { Hash.sha256(bytes) == digest }

    public static func < (a: ContentID, b: ContentID) -> Bool { a.digest < b.digest }

    public func encode(to w: inout CanonicalWriter) { w.write(digest) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { digest = try r.read() }
}

/// RFC 4648 base32, lower-case alphabet, no padding (multibase `b`).
public enum Base32 {
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)

    public static func encode(_ data: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((data.count * 8 + 4) / 5)
        var buffer: UInt32 = 0, bits = 0
        for b in data {
            buffer = buffer << 8 | UInt32(b); bits += 8
            while bits >= 5 { bits -= 5; out.append(alphabet[Int(buffer >> UInt32(bits) & 31)]) }
        }
        if bits > 0 { out.append(alphabet[Int(buffer << UInt32(5 - bits) & 31)]) }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        var buffer: UInt32 = 0, bits = 0
        for c in text.utf8 {
            guard let v = alphabet.firstIndex(of: c) else { return nil }
            buffer = buffer << 5 | UInt32(v); bits += 5
            if bits >= 8 { bits -= 8; out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits))) }
            buffer &= (1 << UInt32(bits)) - 1
        }
        // Left-over bits must be zero padding of less than one byte.
        guard bits < 5, buffer == 0 else { return nil }
        return out
    }
}

/// What a gateway signs to put a blob on a node (`PUT /v1/blobs/{cid}`): the chain and the
/// blob's digest, under its own domain so the signature means nothing else.
public enum BlobPutAuth {
    public static func message(chainID: String, digest: Hash) -> [UInt8] {
        Array("iomtchain/blob-put/v1".utf8) + [0] + Array(chainID.utf8) + [0] + digest.bytes
    }
}
