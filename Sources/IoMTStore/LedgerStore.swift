import Foundation
import GRDB
import IoMTCore

/// Why the ledger could not be read or written.
public enum StoreError: Error, CustomStringConvertible, Sendable {
    /// A stored row does not decode or does not match its own hash: someone edited the database.
    case corrupt(String)
    case notInitialised
    case alreadyInitialised
    case heightMismatch(expected: UInt64, got: UInt64)

    public var description: String {
        switch self {
        case .corrupt(let s): return "ledger database is corrupt: \(s) (run `iomtchain chain verify`)"
        case .notInitialised: return "ledger database has no genesis"
        case .alreadyInitialised: return "ledger database already holds a chain"
        case .heightMismatch(let e, let g): return "expected to commit height \(e), got \(g)"
        }
    }
}

/// The durable ledger: blocks, transactions and current state in one SQLite file, and the pending
/// transactions that were acknowledged to clients in a second one beside it (both WAL mode,
/// `synchronous = FULL`).
///
/// `commit(block:writes:)` writes a block, its transactions and its state changes in one SQLite
/// transaction: after a crash at any moment the file holds either all of it or none of it.
///
/// Pending transactions live in their own file so that acknowledging a client (an fsync of a
/// small append) never waits behind a large block commit holding the ledger's write lock, nor
/// the other way round. The price is that a block's transactions leave the pending file in a
/// later write than the block's own: after a crash, a restored pending transaction may already
/// be committed. `Node.restorePending` recognises those (their nonce is spent, and the ledger
/// holds them) and prunes them.
public final class LedgerStore: Sendable {
    public let path: String
    public let pendingPath: String
    private let db: DatabasePool
    private let pendingDB: DatabaseQueue

    public init(path: String) throws {
        self.path = path
        pendingPath = path.hasSuffix(".sqlite") ? String(path.dropLast(".sqlite".count)) + "-pending.sqlite" : path + "-pending"
        var config = Configuration()
        config.journalMode = .wal
        config.prepareDatabase { db in
            // FULL: every commit fsyncs the WAL, so a committed block survives power loss too.
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // 64 MiB page cache: a block's index updates stay in memory.
            try db.execute(sql: "PRAGMA cache_size = -65536")
        }
        config.maximumReaderCount = 8
        // Another connection (an operator's sqlite3, a closing previous instance) may hold the lock briefly.
        config.busyMode = .timeout(10)
        db = try DatabasePool(path: path, configuration: config)
        var pendingConfig = Configuration()
        pendingConfig.journalMode = .wal
        pendingConfig.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        pendingConfig.busyMode = .timeout(10)
        pendingDB = try DatabaseQueue(path: pendingPath, configuration: pendingConfig)
        try Self.pendingMigrator.migrate(pendingDB)
        let migrator = Self.migrator
        if try !db.read({ db in try migrator.appliedIdentifiers(db) }).contains("v2") {
            try migrator.migrate(db, upTo: "v1")
            try movePendingOutOfLedger()
        }
        try migrator.migrate(db)
    }

    /// Ledgers written before pending transactions had their own file keep them in a `pending`
    /// table: copy them over (durably) before the `v2` migration drops that table.
    private func movePendingOutOfLedger() throws {
        guard try db.read({ db in try db.tableExists("pending") }) else { return }
        let rows = try db.read { db in try Row.fetchAll(db, sql: "SELECT hash, body FROM pending ORDER BY seq") }
        guard !rows.isEmpty else { return }
        try pendingDB.write { p in
            let stmt = try p.makeStatement(sql: "INSERT OR IGNORE INTO pending(hash, body) VALUES (?, ?)")
            for row in rows { try stmt.execute(arguments: [row["hash"] as Data, row["body"] as Data]) }
        }
    }

    private static var pendingMigrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: "CREATE TABLE pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, hash BLOB NOT NULL UNIQUE, body BLOB NOT NULL)")
        }
        // A validator's consensus state (lock, last signed messages), saved before it signs.
        m.registerMigration("v2") { db in
            try db.execute(sql: "CREATE TABLE consensus (id INTEGER PRIMARY KEY CHECK (id = 1), state BLOB NOT NULL)")
        }
        return m
    }

    private static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
                CREATE TABLE blocks (
                    height INTEGER PRIMARY KEY,
                    hash BLOB NOT NULL UNIQUE,
                    header BLOB NOT NULL,
                    commit_cert BLOB,
                    tx_count INTEGER NOT NULL,
                    time_ms INTEGER NOT NULL
                );
                CREATE TABLE transactions (
                    hash BLOB PRIMARY KEY,
                    height INTEGER NOT NULL,
                    idx INTEGER NOT NULL,
                    sender BLOB NOT NULL,
                    body BLOB NOT NULL
                ) WITHOUT ROWID;
                CREATE UNIQUE INDEX transactions_position ON transactions(height, idx);
                CREATE INDEX transactions_sender ON transactions(sender, height);
                CREATE TABLE state (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
                CREATE TABLE pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, hash BLOB NOT NULL UNIQUE, body BLOB NOT NULL);
                """)
        }
        // Pending transactions moved to their own file (see `movePendingOutOfLedger`).
        m.registerMigration("v2") { db in try db.execute(sql: "DROP TABLE pending") }
        return m
    }

    // MARK: genesis

    /// Writes genesis (file bytes, block 0, initial state) into an empty database.
    public func initialise(genesis: Genesis, genesisFile: [UInt8]) throws {
        let block = genesis.genesisBlock()
        let state = genesis.initialState()
        try db.write { db in
            guard try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM blocks") == 0 else { throw StoreError.alreadyInitialised }
            try db.execute(sql: "INSERT INTO meta(key, value) VALUES ('genesis', ?)", arguments: [Data(genesisFile)])
            try insert(block, sealed: block.transactions.map(SealedTransaction.init), in: db)
            for (k, v) in state.entries() {
                try db.execute(sql: "INSERT INTO state(key, value) VALUES (?, ?)", arguments: [Data(k), Data(v)])
            }
        }
    }

    // MARK: blocks

    /// Atomically appends `block` (height = latest + 1) with its state changes. Its transactions
    /// stay in the pending file until a later `savePending(_:pruning:)` or `removePending`.
    public func commit(block: Block, writes: [[UInt8]: [UInt8]?]) throws {
        try commit(block: block, sealed: block.transactions.map(SealedTransaction.init), writes: writes)
    }

    /// `commit(block:writes:)` with the block's transactions already sealed (`sealed[i]` is
    /// `block.transactions[i]`), so none is encoded or hashed again.
    public func commit(block: Block, sealed: [SealedTransaction], writes: [[UInt8]: [UInt8]?]) throws {
        precondition(sealed.count == block.transactions.count)
        try db.write { db in
            let latest = try Int64.fetchOne(db, sql: "SELECT MAX(height) FROM blocks") ?? -1
            guard Int64(block.header.height) == latest + 1 else {
                throw StoreError.heightMismatch(expected: UInt64(latest + 1), got: block.header.height)
            }
            try insert(block, sealed: sealed, in: db)
            let upsert = try db.cachedStatement(sql: "INSERT INTO state(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            let delete = try db.cachedStatement(sql: "DELETE FROM state WHERE key = ?")
            for (k, v) in writes {
                if let v {
                    try upsert.execute(arguments: [Data(k), Data(v)])
                } else {
                    try delete.execute(arguments: [Data(k)])
                }
            }
        }
    }

    private func insert(_ block: Block, sealed: [SealedTransaction], in db: Database) throws {
        let h = block.header
        try db.execute(
            sql: "INSERT INTO blocks(height, hash, header, commit_cert, tx_count, time_ms) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [Int64(h.height), Data(h.hash.bytes), Data(h.canonicalBytes), block.commit.map { Data($0.canonicalBytes) }, Int(h.transactionCount), h.timestampMs])
        let stmt = try db.cachedStatement(sql: "INSERT INTO transactions(hash, height, idx, sender, body) VALUES (?, ?, ?, ?, ?)")
        for (i, tx) in sealed.enumerated() {
            try stmt.execute(arguments: [Data(tx.hash.bytes), Int64(h.height), i, Data(tx.signed.transaction.sender.bytes), Data(tx.bytes)])
        }
    }

    /// Runs `body` on one consistent snapshot of the ledger (a single read transaction), so a
    /// long reader such as `chain verify` sees no block committed while it runs.
    public func read<T>(_ body: (LedgerSnapshot) throws -> T) throws -> T {
        try db.read { db in try body(LedgerSnapshot(db: db)) }
    }

    public func genesisFile() throws -> [UInt8]? { try read { try $0.genesisFile() } }
    public func latestHeight() throws -> UInt64? { try read { try $0.latestHeight() } }
    public func header(height: UInt64) throws -> (header: BlockHeader, commit: Commit?)? { try read { try $0.header(height: height) } }
    public func block(height: UInt64) throws -> Block? { try read { try $0.block(height: height) } }
    public func location(ofTransaction hash: Hash) throws -> LedgerSnapshot.Location? { try read { try $0.location(ofTransaction: hash) } }
    public func loadState() throws -> [(key: [UInt8], value: [UInt8])] { try read { try $0.loadState() } }

    // MARK: pending transactions

    /// Durably records admitted transactions before they are acknowledged to the client, and in
    /// the same write forgets `pruning` (transactions since committed or dropped).
    public func savePending(_ txs: [SignedTransaction], pruning: [Hash] = []) throws {
        try savePending(sealed: txs.map(SealedTransaction.init), pruning: pruning)
    }

    public func savePending(sealed txs: [SealedTransaction], pruning: [Hash] = []) throws {
        try pendingDB.write { db in
            let stmt = try db.cachedStatement(sql: "INSERT OR IGNORE INTO pending(hash, body) VALUES (?, ?)")
            for tx in txs { try stmt.execute(arguments: [Data(tx.hash.bytes), Data(tx.bytes)]) }
            let del = try db.cachedStatement(sql: "DELETE FROM pending WHERE hash = ?")
            for h in pruning { try del.execute(arguments: [Data(h.bytes)]) }
        }
    }

    public func removePending(_ hashes: [Hash]) throws {
        try savePending(sealed: [], pruning: hashes)
    }

    // MARK: consensus state

    /// Durably records a validator's consensus state (fsync'd before it returns). It lives in the
    /// pending file: small and frequent writes that must not wait behind a block commit.
    public func saveConsensusState(_ bytes: [UInt8]) throws {
        try pendingDB.write { db in
            try db.execute(sql: "INSERT INTO consensus(id, state) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET state = excluded.state", arguments: [Data(bytes)])
        }
    }

    public func loadConsensusState() throws -> [UInt8]? {
        try pendingDB.read { db in try Data.fetchOne(db, sql: "SELECT state FROM consensus WHERE id = 1").map { [UInt8]($0) } }
    }

    /// How many transactions the pending file holds.
    public func pendingCount() throws -> Int {
        try pendingDB.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM pending") ?? 0 }
    }

    /// Pending transactions in admission order. Rows that do not decode are skipped and reported.
    public func loadPending() throws -> (transactions: [SignedTransaction], undecodable: Int) {
        try pendingDB.read { db in
            var txs: [SignedTransaction] = []
            var bad = 0
            for row in try Row.fetchAll(db, sql: "SELECT body FROM pending ORDER BY seq") {
                if let tx = try? SignedTransaction(canonicalBytes: [UInt8](row["body"] as Data)) { txs.append(tx) } else { bad += 1 }
            }
            return (txs, bad)
        }
    }

    /// Runs raw SQL (tests use it to tamper with the database as an attacker would).
    public func unsafeExecute(_ sql: String, arguments: StatementArguments = []) throws {
        try db.write { db in try db.execute(sql: sql, arguments: arguments) }
    }
}

/// Reads of one consistent view of the ledger (see `LedgerStore.read`).
public struct LedgerSnapshot {
    let db: Database

    /// The genesis file as stored at initialisation.
    public func genesisFile() throws -> [UInt8]? {
        try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'genesis'").map { [UInt8]($0) }
    }

    public func latestHeight() throws -> UInt64? {
        try Int64.fetchOne(db, sql: "SELECT MAX(height) FROM blocks").map { UInt64($0) }
    }

    /// Header and commit at `height`, checked against the stored hash.
    public func header(height: UInt64) throws -> (header: BlockHeader, commit: Commit?)? {
        // Heights come from requests too: one past Int64 is simply not there (never a trap).
        guard height <= UInt64(Int64.max) else { return nil }
        guard let row = try Row.fetchOne(db, sql: "SELECT hash, header, commit_cert FROM blocks WHERE height = ?", arguments: [Int64(height)]) else { return nil }
        let header: BlockHeader
        do { header = try BlockHeader(canonicalBytes: [UInt8](row["header"] as Data)) } catch { throw StoreError.corrupt("header at height \(height): \(error)") }
        guard header.height == height, header.hash.bytes == [UInt8](row["hash"] as Data) else {
            throw StoreError.corrupt("header at height \(height) does not match its stored hash")
        }
        var commit: Commit?
        if let c = row["commit_cert"] as Data? {
            do { commit = try Commit(canonicalBytes: [UInt8](c)) } catch { throw StoreError.corrupt("commit at height \(height): \(error)") }
        }
        return (header, commit)
    }

    public func block(height: UInt64) throws -> Block? {
        guard let (header, commit) = try header(height: height) else { return nil }
        let rows = try Row.fetchAll(db, sql: "SELECT body FROM transactions WHERE height = ? ORDER BY idx", arguments: [Int64(height)])
        let txs = try rows.enumerated().map { (i, row) in
            do { return try SignedTransaction(canonicalBytes: [UInt8](row["body"] as Data)) } catch { throw StoreError.corrupt("transaction \(i) at height \(height): \(error)") }
        }
        return Block(header: header, transactions: txs, commit: commit)
    }

    public struct Location: Sendable {
        public var height: UInt64
        public var index: Int
        public init(height: UInt64, index: Int) { self.height = height; self.index = index }
    }

    public func location(ofTransaction hash: Hash) throws -> Location? {
        try Row.fetchOne(db, sql: "SELECT height, idx FROM transactions WHERE hash = ?", arguments: [Data(hash.bytes)]).map {
            Location(height: UInt64($0["height"] as Int64), index: $0["idx"])
        }
    }

    /// Every stored state entry (to rebuild the in-memory tree on start).
    public func loadState() throws -> [(key: [UInt8], value: [UInt8])] {
        try Row.fetchAll(db, sql: "SELECT key, value FROM state").map { ([UInt8]($0["key"] as Data), [UInt8]($0["value"] as Data)) }
    }
}
