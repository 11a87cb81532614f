import CZlib

/// zlib (RFC 1950: deflate with an Adler-32 check) for reading batches before they are sealed.
/// Readings repeat their codes, units and keys, so a batch shrinks several-fold; compressing after
/// encryption would gain nothing.
public enum Deflate {
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case corrupt(String)
        case tooLarge(Int)
        public var description: String {
            switch self {
            case .corrupt(let s): return "compressed data is corrupt: \(s)"
            case .tooLarge(let n): return "compressed data expands beyond \(n) bytes: refused"
            }
        }
    }

    /// `bytes` compressed at `level` (1 fastest … 9 smallest).
    public static func compress(_ bytes: [UInt8], level: Int32 = 6) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(compressBound(uLong(bytes.count))))
        var outLen = uLongf(out.count)
        let rc = bytes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                compress2(dst.baseAddress, &outLen, src.baseAddress, uLong(src.count), level)
            }
        }
        precondition(rc == Z_OK, "zlib compress2 failed (\(rc)) with a buffer of compressBound bytes")
        out.removeLast(out.count - Int(outLen))
        return out
    }

    /// The original bytes. Refuses, without allocating it, output larger than `maxOutput` (a
    /// decompression bomb), and anything that is not one whole zlib stream.
    public static func decompress(_ bytes: [UInt8], maxOutput: Int) throws(Failure) -> [UInt8] {
        var stream = z_stream()
        guard inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { throw .corrupt("inflateInit failed") }
        defer { inflateEnd(&stream) }
        let tooLarge: Int32 = -1_000 // not a zlib status
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        let rc: Int32 = bytes.withUnsafeBufferPointer { src in
            // zlib reads through a non-const pointer but never writes the input.
            stream.next_in = src.baseAddress.map { UnsafeMutablePointer(mutating: $0) }
            stream.avail_in = uInt(src.count)
            while true {
                let (status, produced) = chunk.withUnsafeMutableBufferPointer { dst -> (Int32, Int) in
                    stream.next_out = dst.baseAddress
                    stream.avail_out = uInt(dst.count)
                    let s = inflate(&stream, Z_NO_FLUSH)
                    return (s, dst.count - Int(stream.avail_out))
                }
                if out.count + produced > maxOutput { return tooLarge }
                out.append(contentsOf: chunk[0..<produced])
                if status == Z_STREAM_END { return stream.avail_in == 0 ? Z_STREAM_END : Z_DATA_ERROR }
                if status != Z_OK { return status }
                if produced == 0 && stream.avail_in == 0 { return Z_BUF_ERROR }
            }
        }
        switch rc {
        case Z_STREAM_END: return out
        case tooLarge: throw .tooLarge(maxOutput)
        case Z_BUF_ERROR: throw .corrupt("truncated stream")
        case Z_DATA_ERROR: throw .corrupt(stream.msg.map { String(cString: $0) } ?? "bad data or trailing bytes")
        default: throw .corrupt("zlib error \(rc)")
        }
    }
}
