import Foundation
import GRDB
import IoMTCore
import IoMTNode
import IoMTStore
import Testing

@Suite("Pending file: acknowledged transactions beside the ledger")
struct PendingFileTests {
    @Test("a committed block's transactions leave the pending file with the next admission write")
    func prunedWithNextFlush() async throws {
        let chain = TestChain()
        let node = try chain.open()
        for r in await node.submit(batch: chain.registrations(from: 0, count: 30)) { _ = try r.get() }
        chain.clock.advance(200)
        #expect(try await node.produceBlock()?.transactionCount == 30)
        // Durable in the ledger; still in the pending file until the next admission write.
        #expect(try node.store.pendingCount() == 30)
        for r in await node.submit(batch: chain.registrations(from: 30, count: 5)) { _ = try r.get() }
        #expect(try node.store.pendingCount() == 5)
    }

    @Test("after a crash between a block's commit and its pruning, restore prunes the committed ones without calling them dropped")
    func restorePrunesCommitted() async throws {
        let chain = TestChain()
        var node: Node? = try chain.open()
        let txs = chain.registrations(from: 0, count: 40)
        for r in await node!.submit(batch: Array(txs[0..<30])) { _ = try r.get() }
        chain.clock.advance(200)
        _ = try await node!.produceBlock()
        for r in await node!.submit(batch: Array(txs[30..<40])) { _ = try r.get() }
        // The second write pruned the first 30; commit 10 more and stop before any further write.
        chain.clock.advance(200)
        _ = try await node!.produceBlock()
        #expect(try node!.store.pendingCount() == 10)
        for r in await node!.submit(batch: chain.registrations(from: 40, count: 3)) { _ = try r.get() }
        // Now: 3 pending and not committed. Simulate the crash window by putting the committed 10 back.
        try node!.store.savePending(Array(txs[30..<40]))
        node = nil
        let reopened = try chain.open()
        let restored = try await reopened.restorePending()
        #expect(restored.restored == 3)
        #expect(restored.dropped == 0)
        #expect(try reopened.store.pendingCount() == 3)
        #expect(await reopened.latestHeader.height == 2)
    }

    @Test("a ledger from before the pending file moves its pending transactions into it on open")
    func legacyPendingTableMoves() async throws {
        let chain = TestChain()
        let txs = chain.registrations(from: 0, count: 4)
        do {
            let node = try chain.open()
            _ = node
        }
        // Recreate the old layout: a pending table inside the ledger, and migration v2 not yet run.
        let legacy = try DatabaseQueue(path: chain.databasePath)
        try await legacy.write { db in
            try db.execute(sql: "CREATE TABLE pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, hash BLOB NOT NULL UNIQUE, body BLOB NOT NULL)")
            for tx in txs { try db.execute(sql: "INSERT INTO pending(hash, body) VALUES (?, ?)", arguments: [Data(tx.hash.bytes), Data(tx.canonicalBytes)]) }
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'v2'")
        }
        try legacy.close()
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: chain.dir + "/ledger-pending.sqlite" + suffix) }

        let node = try chain.open()
        #expect(try node.store.loadPending().transactions.map(\.hash) == txs.map(\.hash))
        let restored = try await node.restorePending()
        #expect(restored.restored == 4)
        let tableLeft = try await DatabaseQueue(path: chain.databasePath).read { db in try db.tableExists("pending") }
        #expect(!tableLeft)
    }
}
