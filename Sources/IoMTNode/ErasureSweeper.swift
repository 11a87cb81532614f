import Foundation
import IoMTCore
import IoMTStore

/// Deletes the blobs of erased batches (issue 5 §6). It follows committed blocks from a cursor
/// kept beside the blobs; for every `confirm-erasure` it erases each listed batch's blob here (a
/// tombstone first, so no peer's copy is ever taken in again). Every node runs one, so every
/// replica goes; a node that was down catches up from its cursor.
public actor ErasureSweeper {
    let node: Node
    let blobs: BlobStore
    let cursorPath: String
    private(set) var cursor: UInt64
    public private(set) var erased: UInt64 = 0

    public init(node: Node, blobs: BlobStore) {
        self.node = node
        self.blobs = blobs
        cursorPath = blobs.folder + "/erasure.cursor"
        cursor = (try? String(contentsOfFile: cursorPath, encoding: .utf8)).flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
    }

    /// Sweeps the blocks committed since the cursor; returns how many blobs it erased.
    @discardableResult
    public func sweep() async throws -> Int {
        let top = await node.latestHeader.height
        guard top > cursor else { return 0 }
        let state = await node.committedState
        var count = 0
        var h = cursor + 1
        while h <= top {
            if let block = try node.store.block(height: h) {
                for tx in block.transactions {
                    guard case .confirmErasure(let c) = tx.transaction.payload else { continue }
                    for root in c.batchRoots {
                        guard let bytes = state.value(forKey: StateKeys.anchor(root)), let a = try? AnchorRecord(canonicalBytes: bytes, trusted: true) else { continue }
                        try blobs.erase(ContentID(digest: a.anchor.blobDigest))
                        count += 1
                    }
                }
            }
            h += 1
            // The cursor moves every 100 blocks and at the end: a crash repeats at most that much
            // (erasing twice is harmless).
            if h % 100 == 0 || h > top { try save(h - 1) }
        }
        erased += UInt64(count)
        return count
    }

    private func save(_ height: UInt64) throws {
        cursor = height
        try String(height).write(toFile: cursorPath, atomically: true, encoding: .utf8)
    }

    /// Sweeps every `intervalMs` until cancelled.
    public func run(intervalMs: UInt64 = 500) async {
        while !Task.isCancelled {
            do { try await sweep() } catch {
                FileHandle.standardError.write(Data("[iomtchain] erasure sweep: \(error)\n".utf8))
            }
            try? await Task.sleep(nanoseconds: intervalMs * 1_000_000)
        }
    }
}
