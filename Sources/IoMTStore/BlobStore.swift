import Foundation
import IoMTCore
#if canImport(Glibc)
import Glibc
#endif

/// Blobs by content id in a folder: `<folder>/<cid>`. A blob is written to a temporary file,
/// fsync'd, renamed into place and the folder fsync'd, so it is either whole or absent after a
/// crash. Reads verify the bytes against the id: a tampered blob is refused, never served.
public struct BlobStore: Sendable {
    public let folder: String

    public init(folder: String) throws {
        self.folder = folder
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case notFound(ContentID)
        case tampered(ContentID)
        /// Erased at its patient's request: a tombstone keeps it from ever being stored again.
        case erased(ContentID)
        case io(String)
        public var description: String {
            switch self {
            case .notFound(let id): return "no blob \(id)"
            case .erased(let id): return "blob \(id) was erased at its patient's request"
            case .tampered(let id): return "blob \(id) does not match its content id (tampered or corrupt): refused"
            case .io(let s): return "blob store: \(s)"
            }
        }
    }

    func path(_ id: ContentID) -> String { folder + "/" + id.description }

    /// Stores `bytes` durably; returns their id. Storing the same bytes twice is a no-op.
    @discardableResult
    public func put(_ bytes: [UInt8]) throws(Failure) -> ContentID {
        let id = try writeBlob(bytes)
        syncFolder()
        return id
    }

    /// Stores several blobs durably with one fsync of the folder for all of them (each file is
    /// still fsync'd before it is renamed into place). Returns their ids in order.
    public func put(many blobs: [[UInt8]]) throws(Failure) -> [ContentID] {
        var ids: [ContentID] = []
        ids.reserveCapacity(blobs.count)
        for b in blobs { ids.append(try writeBlob(b)) }
        if !blobs.isEmpty { syncFolder() }
        return ids
    }

    private func syncFolder() {
        let dfd = open(folder, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    /// Writes one blob to a temporary file, fsyncs it and renames it into place (the folder is not fsync'd).
    private func writeBlob(_ bytes: [UInt8]) throws(Failure) -> ContentID {
        let id = ContentID(of: bytes)
        guard !isErased(id) else { throw .erased(id) }
        let final = path(id)
        // Already here and whole: nothing to do. A damaged copy is replaced.
        if let existing = FileManager.default.contents(atPath: final), id.matches(Array(existing)) { return id }
        let tmp = final + ".tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw .io("create \(tmp): errno \(errno)") }
        var ok = bytes.withUnsafeBytes { buf -> Bool in
            var off = 0
            while off < buf.count {
                let n = write(fd, buf.baseAddress! + off, buf.count - off)
                if n <= 0 { if errno == EINTR { continue }; return false }
                off += n
            }
            return true
        }
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, final) == 0 else { unlink(tmp); throw .io("write \(final): errno \(errno)") }
        return id
    }

    /// Moves a damaged blob aside (`<cid>.tampered-<ms>`), kept for inspection, never served.
    public func quarantine(_ id: ContentID) {
        let ms = Int64(Date().timeIntervalSince1970 * 1000)
        _ = rename(path(id), path(id) + ".tampered-\(ms)")
    }

    /// True if a file for `id` is here (not verified).
    public func holds(_ id: ContentID) -> Bool { FileManager.default.fileExists(atPath: path(id)) }

    /// Erases a blob for good: a tombstone (`<cid>.erased`) is written and fsync'd first, so no
    /// fetch or replica brings it back, then every copy here (quarantined ones too) is deleted.
    public func erase(_ id: ContentID) throws(Failure) {
        let tomb = path(id) + ".erased"
        if !isErased(id) {
            let fd = open(tomb, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            guard fd >= 0 else { throw .io("create \(tomb): errno \(errno)") }
            fsync(fd)
            close(fd)
        }
        unlink(path(id))
        let prefix = id.description + ".tampered-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasPrefix(prefix) { unlink(folder + "/" + name) }
        syncFolder()
    }

    public func isErased(_ id: ContentID) -> Bool { FileManager.default.fileExists(atPath: path(id) + ".erased") }

    /// The blob's bytes, verified against `id`.
    public func get(_ id: ContentID) throws(Failure) -> [UInt8] {
        guard !isErased(id) else { throw .erased(id) }
        guard let data = FileManager.default.contents(atPath: path(id)) else { throw .notFound(id) }
        let bytes = Array(data)
        guard id.matches(bytes) else { throw .tampered(id) }
        return bytes
    }
}
