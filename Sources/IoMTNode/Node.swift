import Dispatch
import Foundation
import IoMTContracts
import IoMTCore
import IoMTStore

public enum NodeError: Error, CustomStringConvertible, Sendable {
    case stateMismatch(height: UInt64, stored: Hash, header: Hash)
    case notAValidator(Address)
    case genesisMismatch(String)
    case invalidGenesis(String)

    public var description: String {
        switch self {
        case .stateMismatch(let h, let s, let hd):
            return "stored state root \(s) does not match block \(h)'s stateRoot \(hd): run `iomtchain chain verify`"
        case .notAValidator(let a): return "validator key \(a) is not in the validator set"
        case .genesisMismatch(let s): return "genesis mismatch: \(s)"
        case .invalidGenesis(let s): return s
        }
    }
}

/// What the node reports about itself (GET /v1/status).
public struct NodeStatus: Codable, Sendable {
    public var chainId: String
    public var genesisHash: Hash
    public var height: UInt64
    public var latestBlockHash: Hash
    public var latestBlockTimeMs: Int64
    public var stateRoot: Hash
    public var validator: Address
    public var mempoolSize: Int
    public var mempoolCapacity: Int
}

/// Counters for /metrics.
public struct NodeMetrics: Sendable {
    public var admitted: UInt64 = 0
    public var rejected: [String: UInt64] = [:]
    public var blocksCommitted: UInt64 = 0
    public var transactionsCommitted: UInt64 = 0
    public var droppedAfterAdmission: UInt64 = 0
    public var lastBlockCommitSeconds: Double = 0
    public var commitSecondsTotal: Double = 0
}

/// A single-validator node: mempool, block production, durable commit, queries.
///
/// Consensus is trivially "the one validator signs" here; the consortium issue replaces
/// `produceBlock` with a BFT engine that proposes the same candidate blocks.
public actor Node {
    public nonisolated let store: LedgerStore
    public nonisolated let genesis: Genesis
    public nonisolated let genesisHash: Hash
    public nonisolated let validatorKey: PrivateKey
    public nonisolated let parameters: ConsensusParameters
    let clock: @Sendable () -> Int64

    /// The latest durable block and its state: what queries and proofs serve.
    public internal(set) var committedState: AuthenticatedState
    public internal(set) var latestHeader: BlockHeader
    public internal(set) var latestCommit: Commit?
    /// The latest executed block and its state (ahead of the durable one while a commit runs):
    /// what the next block and admission build on.
    var tipState: AuthenticatedState
    var tipHeader: BlockHeader
    private var blocksInFlight = 0
    private var persistTail: Task<Void, Never>?
    /// Transactions in executed blocks whose commit is still running.
    private var inFlight: Set<Hash> = []
    /// Set when a block could not be stored; block production stops for good (restart recovers).
    var persistFailure: StorageHalt?
    private var halted: Bool { persistFailure != nil }
    var mempool: Mempool
    public internal(set) var metrics = NodeMetrics()
    /// Blocks this node executed while proposing or validating (BFT mode), by id, until one is decided.
    var candidates: [Hash: ExecutedBlock] = [:]
    /// Called with every batch of newly admitted transactions (BFT mode gossips them to peers).
    var onAdmitted: (@Sendable ([SealedTransaction]) -> Void)?
    private var haltReported = false

    private var unflushed: [SealedTransaction] = []
    /// Committed or dropped transactions still in the pending file (removed with the next flush).
    var prunable: [Hash] = []
    private var flushWaiters: [CheckedContinuation<Void, any Error>] = []
    private var flushing = false
    private var commitWaiters: [Hash: [(deadlineMs: Int64, continuation: CheckedContinuation<CommitOutcome, Never>)]] = [:]
    /// Why recently admitted transactions were dropped before commit (bounded, oldest forgotten first).
    private var recentlyCommitted: [Hash: LedgerSnapshot.Location] = [:]
    private var recentlyCommittedBlocks: [[Hash]] = []
    static let recentlyCommittedLimit = 50_000
    private var recentlyDropped: [Hash: ContractError] = [:]
    private var recentlyDroppedOrder: [Hash] = []
    static let recentlyDroppedLimit = 10_000
    /// Bound on clients waiting for commits; past it, waits return at once as timed out.
    static let maxCommitWaiters = 100_000
    private var commitWaiterCount = 0
    /// No waiter's deadline is earlier than this (`.max` when there are none).
    private var earliestWaiterDeadline = Int64.max

    public enum CommitOutcome: Sendable {
        case committed(height: UInt64, index: Int)
        case dropped(ContractError)
        case timedOut
    }

    public static let defaultMempoolCapacity = 50_000

    /// Opens (and on first start, initialises) the ledger at `databasePath`.
    public init(databasePath: String, genesis: Genesis, genesisFile: [UInt8], validatorKey: PrivateKey,
                mempoolCapacity: Int = Node.defaultMempoolCapacity, requireValidator: Bool = true,
                clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) throws {
        do { try genesis.validate() } catch { throw NodeError.invalidGenesis(error.description) }
        let store = try LedgerStore(path: databasePath)
        if try store.latestHeight() == nil {
            try store.initialise(genesis: genesis, genesisFile: genesisFile)
        } else if let stored = try store.genesisFile(), let g = try? JSONDecoder().decode(Genesis.self, from: Data(stored)), g != genesis {
            throw NodeError.genesisMismatch("the data folder holds chain \"\(g.chainId)\" from another genesis file")
        }
        guard let height = try store.latestHeight(), let (header, commit) = try store.header(height: height) else { throw StoreError.notInitialised }
        let state = AuthenticatedState.build(try store.loadState())
        guard state.root == header.stateRoot else { throw NodeError.stateMismatch(height: height, stored: state.root, header: header.stateRoot) }

        let overlay = StateOverlay(base: state)
        let validators = (try? overlay.read([Validator].self, StateKeys.validators)) ?? nil ?? []
        // A consortium's observer nodes follow the chain without being validators.
        guard !requireValidator || validators.contains(where: { $0.publicKey == validatorKey.publicKey }) else { throw NodeError.notAValidator(validatorKey.publicKey.address) }
        let params = ((try? overlay.read(ConsensusParameters.self, StateKeys.consensus)) ?? nil) ?? genesis.consensus

        self.store = store
        self.genesis = genesis
        self.genesisHash = genesis.genesisBlock().hash
        self.validatorKey = validatorKey
        self.parameters = params
        self.clock = clock
        committedState = state
        latestHeader = header
        latestCommit = commit
        tipState = state
        tipHeader = header
        mempool = Mempool(capacity: mempoolCapacity, committed: state)
    }

    /// Re-admits the transactions that were pending when the node stopped.
    public func restorePending() throws -> (restored: Int, dropped: Int) {
        let (txs, undecodable) = try store.loadPending()
        var dropped: [Hash] = []
        var committed: [Hash] = []
        let context = nextContext()
        for tx in txs.map(SealedTransaction.init) {
            guard tx.hasValidSignature() else { dropped.append(tx.hash); continue }
            do { try mempool.admit(tx, context: context, ignoringCapacity: true) } catch {
                // Committed in a block whose pruning of the pending file had not happened yet.
                if try store.location(ofTransaction: tx.hash) != nil { committed.append(tx.hash) } else { dropped.append(tx.hash) }
            }
        }
        if !dropped.isEmpty || !committed.isEmpty { try store.removePending(dropped + committed) }
        return (mempool.count, dropped.count + undecodable)
    }

    // MARK: admission

    /// Stateless checks: size and signature. `nonisolated`, so callers on many threads
    /// spread signature verification over all cores before entering the actor.
    /// Returns the transaction sealed (encoded and hashed once, for everything after).
    @discardableResult
    public nonisolated func precheck(_ tx: SignedTransaction) throws(AdmissionError) -> SealedTransaction {
        try precheck(sealed: SealedTransaction(tx))
    }

    nonisolated func precheck(sealed: SealedTransaction) throws(AdmissionError) -> SealedTransaction {
        let size = sealed.bytes.count
        guard size <= Int(parameters.maxTransactionBytes) else { throw .tooLarge(bytes: size, limit: Int(parameters.maxTransactionBytes)) }
        guard sealed.hasValidSignature() else { throw .badSignature }
        return sealed
    }

    /// Admits a transaction and returns once it is durably recorded as pending.
    public nonisolated func submit(_ tx: SignedTransaction) async throws(AdmissionError) -> Hash {
        let sealed: SealedTransaction
        do { sealed = try precheck(tx) } catch {
            await count(rejection: error.code)
            throw error
        }
        try await admitChecked([sealed])[0].get()
        return sealed.hash
    }

    /// Admits a batch (signatures verified in parallel on all cores); one result per transaction.
    /// `relay: false` for transactions gossiped by a peer (they are not gossiped on again).
    public nonisolated func submit(batch txs: [SignedTransaction], relay: Bool = true) async -> [Result<Hash, AdmissionError>] {
        // Transactions this node already holds (pending, or committed lately: gossip often brings
        // a transaction after the block that carried it) are duplicates: their signatures are not
        // verified again, which is most of admission's cost.
        let sealedAll = txs.map(SealedTransaction.init)
        let known = await knownTransactions(sealedAll.map(\.hash))
        // Each slot is written by exactly one iteration: distinct indices, no shared element.
        var pre = [Result<SealedTransaction, AdmissionError>?](repeating: nil, count: txs.count)
        pre.withUnsafeMutableBufferPointer { out in
            guard let base = out.baseAddress else { return }  // empty batch
            nonisolated(unsafe) let ptr = base
            DispatchQueue.concurrentPerform(iterations: txs.count) { i in
                let sealed = sealedAll[i]
                ptr[i] = known.contains(sealed.hash) ? .failure(.duplicate(sealed.hash))
                    : Result { () throws(AdmissionError) -> SealedTransaction in try precheck(sealed: sealed) }
            }
        }
        var passed: [(index: Int, tx: SealedTransaction)] = []
        var preRejected: [String] = []
        var results = [Result<Hash, AdmissionError>](repeating: .failure(.badSignature), count: txs.count)
        for (i, r) in pre.enumerated() {
            switch r {
            case .success(let sealed): passed.append((i, sealed))
            case .failure(let e): results[i] = .failure(e); preRejected.append(e.code)
            case nil: preconditionFailure("concurrentPerform left slot \(i) unset")
            }
        }
        let admitted = await admitChecked(passed.map(\.tx), relay: relay)
        for (j, p) in passed.enumerated() { results[p.index] = admitted[j].map { p.tx.hash } }
        if !preRejected.isEmpty { await count(rejections: preRejected) }
        return results
    }

    private func count(rejection code: String) { metrics.rejected[code, default: 0] += 1 }
    private func count(rejections codes: [String]) { for c in codes { count(rejection: c) } }

    /// Stateful admission, then one durable write for everything admitted since the last one.
    private func admitChecked(_ txs: [SealedTransaction], relay: Bool = true) async -> [Result<Void, AdmissionError>] {
        let context = nextContext()
        var results: [Result<Void, AdmissionError>] = []
        var accepted: [SealedTransaction] = []
        for tx in txs {
            do {
                try mempool.admit(tx, context: context)
                unflushed.append(tx)
                accepted.append(tx)
                results.append(.success(()))
            } catch {
                let refusal = alreadyCommitted(tx, error) ? AdmissionError.duplicate(tx.hash) : error
                count(rejection: refusal.code)
                results.append(.failure(refusal))
            }
        }
        guard !accepted.isEmpty else { return results }
        if relay, let onAdmitted { onAdmitted(accepted) }
        do {
            try await flushPending()
            metrics.admitted += UInt64(accepted.count)
        } catch {
            // The disk refused: nothing is acknowledged. The transactions stay in the mempool and
            // may still commit, so the client is told to query before resubmitting.
            return results.map { r in r.flatMap { .failure(.storageUnavailable("\(error)")) } }
        }
        return results
    }

    /// A replay of a committed transaction is reported as a duplicate rather than a stale nonce.
    /// Only looked up on that (rare) path, so admission stays free of disk reads.
    private func alreadyCommitted(_ tx: SealedTransaction, _ error: AdmissionError) -> Bool {
        guard case .rejected(.nonceTooLow) = error else { return false }
        return (try? store.location(ofTransaction: tx.hash)) != nil
    }

    /// SQLite writes block their thread for the write and its fsync (15–25 ms here). They run on
    /// these queues' own threads, never on Swift's cooperative pool, which has one thread per core:
    /// two blocked writes would otherwise stall every task and actor in the process.
    static let pendingQueue = DispatchQueue(label: "iomtchain.store.pending")
    static let commitQueue = DispatchQueue(label: "iomtchain.store.commit")

    static func offPool<T: Sendable>(_ queue: DispatchQueue, _ body: @escaping @Sendable () throws -> T) async -> Result<T, any Error> {
        await withCheckedContinuation { c in queue.async { c.resume(returning: Result { try body() }) } }
    }

    /// Group commit: waits until a write containing everything unflushed so far has fsync'd.
    private func flushPending() async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            flushWaiters.append(c)
            if !flushing { startFlush() }
        }
    }

    private func startFlush() {
        guard !unflushed.isEmpty else { return }
        flushing = true
        let batch = unflushed
        let waiters = flushWaiters
        let prune = prunable
        unflushed = []
        flushWaiters = []
        prunable = []
        let store = self.store
        Task.detached {
            let result = await Self.offPool(Self.pendingQueue) { try store.savePending(sealed: batch, pruning: prune) }
            await self.flushDone(result, waiters: waiters, pruned: prune)
        }
    }

    private func flushDone(_ result: Result<Void, any Error>, waiters: [CheckedContinuation<Void, any Error>], pruned: [Hash]) {
        // Pruning is only housekeeping: if the write failed, try again with the next one.
        if case .failure = result { prunable += pruned }
        for w in waiters { w.resume(with: result) }
        flushing = false
        if !unflushed.isEmpty { startFlush() }
    }

    /// Waits until `hash` commits, is dropped, or `timeoutMs` passes.
    public func awaitCommit(_ hash: Hash, timeoutMs: Int64) async -> CommitOutcome {
        // Memory first: a transaction just admitted (the common case) costs no disk read. One
        // that is neither pending nor in flight is durable, dropped, or unknown.
        guard isPending(hash) else {
            if let loc = recentlyCommitted[hash] { return .committed(height: loc.height, index: loc.index) }
            if let loc = try? store.location(ofTransaction: hash) { return .committed(height: loc.height, index: loc.index) }
            if let why = recentlyDropped[hash] { return .dropped(why) }
            return .timedOut
        }
        guard commitWaiterCount < Self.maxCommitWaiters else { return .timedOut }
        let deadline = clock() + timeoutMs
        commitWaiterCount += 1
        earliestWaiterDeadline = min(earliestWaiterDeadline, deadline)
        // The solo producer loop also expires waiters on every poll; in BFT mode nothing else does.
        Task { [weak self] in
            try? await Task.sleep(nanoseconds: UInt64(max(0, timeoutMs)) * 1_000_000 + 1_000_000)
            await self?.expireWaiters()
        }
        return await withCheckedContinuation { c in commitWaiters[hash, default: []].append((deadline, c)) }
    }

    /// Admitted and not yet durable (in the mempool, or in a block whose commit is running).
    public func isPending(_ hash: Hash) -> Bool { mempool.hashes.contains(hash) || inFlight.contains(hash) }

    /// Up to `limit` pending transactions admitted at least `ageMs` ago, oldest first: gossiped
    /// again, so that one a peer missed (a dropped frame, a link down at the time) still reaches
    /// every validator and does not wait for this node's turn to propose.
    public func waitingTransactions(ageMs: Int64, limit: Int) -> [SignedTransaction] {
        mempool.waiting(since: clock() - ageMs, limit: limit).map(\.signed)
    }

    /// Of `hashes`, those pending here or committed lately.
    func knownTransactions(_ hashes: [Hash]) -> Set<Hash> {
        Set(hashes.filter { mempool.hashes.contains($0) || recentlyCommitted[$0] != nil })
    }

    /// Waits until every executed block is durable.
    public func settle() async { await persistTail?.value }

    // MARK: block production

    private func nextContext() -> ExecutionContext {
        ExecutionContext(chainID: genesis.chainId, height: tipHeader.height + 1, timestampMs: nextTimestamp())
    }

    private func nextTimestamp() -> Int64 { max(clock(), tipHeader.timestampMs + 1) }

    /// Blocks executed but not yet durable, at most this many: block N+1 executes while block N's
    /// SQLite commit and fsync run off the actor.
    static let maxBlocksInFlight = 2

    /// Cuts a block if the mempool holds a full block or the interval has passed since the last one.
    /// Returns once the block is executed; its durable commit continues in the background.
    @discardableResult
    public func produceBlockIfDue() throws -> BlockHeader? {
        expireWaiters()
        guard mempool.count > 0, !halted, blocksInFlight < Self.maxBlocksInFlight else { return nil }
        let full = mempool.count >= Int(parameters.maxBlockTransactions)
        let due = clock() - tipHeader.timestampMs >= Int64(parameters.blockIntervalMs)
        guard full || due else { return nil }
        return try buildBlock()?.header
    }

    /// Executes, signs and durably commits one block; returns when it is on disk.
    public func produceBlock() async throws -> BlockHeader? {
        guard let built = try buildBlock() else { return nil }
        await built.persisted.value
        if let failure = persistFailure { throw failure }
        return built.header
    }

    public struct StorageHalt: Error, CustomStringConvertible {
        public var description: String
    }

    /// Executes a candidate block on the tip, signs it, and queues its durable commit.
    /// Memory moves to the new tip at once (the next block builds on it); queries, waiters and
    /// `latestHeader` move only when the block is on disk.
    private func buildBlock() throws -> (header: BlockHeader, persisted: Task<Void, Never>)? {
        guard !halted else { return nil }
        let started = DispatchTime.now()
        let candidate = mempool.candidateBlock(maxTransactions: Int(parameters.maxBlockTransactions), maxBytes: Int(parameters.maxBlockBytes))
        guard !candidate.isEmpty else { return nil }
        let context = nextContext()
        let result = Runtime.execute(sealed: candidate, on: tipState, context: context)
        let newState = result.state.committed()
        let validators = try StateOverlay(base: tipState).read([Validator].self, StateKeys.validators) ?? []
        let header = BlockHeader(
            chainID: genesis.chainId, height: context.height, previousHash: tipHeader.hash,
            transactionsRoot: MerkleTree.root(leafHashes: result.applied.map(\.leafHash)),
            transactionCount: UInt32(result.applied.count), stateRoot: newState.root,
            validatorsHash: Validator.setHash(validators), timestampMs: context.timestampMs,
            proposer: validatorKey.publicKey.address)
        let vote = Commit.voteBytes(chainID: header.chainID, height: header.height, round: 0, blockHash: header.hash)
        let commit = Commit(height: header.height, blockHash: header.hash, signatures: [CommitSignature(validator: validatorKey.publicKey, signature: validatorKey.sign(vote))])
        let block = Block(header: header, transactions: result.applied.map(\.signed), commit: commit)
        // One signature finalises a block only while this validator holds more than two thirds
        // of the power. Once governance adds validators, a single node halts rather than commit
        // blocks no one else could accept (the consortium issue brings the other signatures).
        do { try commit.verify(header: header, validators: validators) } catch {
            if !haltReported {
                haltReported = true
                FileHandle.standardError.write(Data("[iomtchain] not producing blocks: \(error); waiting for other validators\n".utf8))
            }
            return nil
        }

        tipState = newState
        tipHeader = header
        let included = Set(candidate.map(\.hash))
        let dropped = mempool.rebase(on: newState, removing: included, exact: result.rejected.isEmpty, context: nextContext())
        let failed = result.rejected.map { ($0.transaction.hash, $0.error) } + dropped.map { ($0.0.hash, $0.1) }
        for (hash, err) in failed { resolveWaiters(hash, .dropped(err)) }
        let droppedHashes = failed.map(\.0)
        let appliedHashes = result.applied.map(\.hash)
        for h in appliedHashes { inFlight.insert(h) }
        metrics.droppedAfterAdmission += UInt64(droppedHashes.count)

        blocksInFlight += 1
        let previous = persistTail
        let store = self.store
        let writes = result.state.writes
        let sealed = result.applied
        let task = Task.detached {
            await previous?.value
            let outcome = await Self.offPool(Self.commitQueue) { try store.commit(block: block, sealed: sealed, writes: writes) }
            await self.persisted(block, state: newState, applied: appliedHashes, dropped: droppedHashes, outcome: outcome, started: started)
        }
        persistTail = task
        return (header, task)
    }

    /// Runs on the actor after a block's SQLite commit returned.
    private func persisted(_ block: Block, state: AuthenticatedState, applied: [Hash], dropped: [Hash], outcome: Result<Void, any Error>, started: DispatchTime) {
        blocksInFlight -= 1
        for h in applied { inFlight.remove(h) }
        if case .failure(let error) = outcome {
            // Memory is now ahead of disk: stop, and let a restart recover from the last durable block.
            let failure = StorageHalt(description: "block \(block.header.height) could not be stored: \(error); node halted, restart it")
            persistFailure = failure
            FileHandle.standardError.write(Data("[iomtchain] \(failure.description)\n".utf8))
            for h in applied { resolveWaiters(h, .timedOut) }
            return
        }
        // The block is durable: its transactions, and those it made invalid, leave the pending
        // file with the next admission write.
        prunable += applied
        prunable += dropped
        committedState = state
        latestHeader = block.header
        latestCommit = block.commit
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        metrics.blocksCommitted += 1
        metrics.transactionsCommitted += UInt64(applied.count)
        metrics.lastBlockCommitSeconds = seconds
        metrics.commitSecondsTotal += seconds
        for (i, h) in applied.enumerated() { resolveWaiters(h, .committed(height: block.header.height, index: i)) }
        rememberCommitted(applied, height: block.header.height)
    }

    /// Where the transactions of the last few blocks landed, so a client asking right after the
    /// commit (the common case) is answered without a disk read on the actor.
    func rememberCommitted(_ hashes: [Hash], height: UInt64) {
        for (i, h) in hashes.enumerated() { recentlyCommitted[h] = LedgerSnapshot.Location(height: height, index: i) }
        recentlyCommittedBlocks.append(hashes)
        var remembered = recentlyCommittedBlocks.reduce(0) { $0 + $1.count }
        while remembered > Self.recentlyCommittedLimit, recentlyCommittedBlocks.count > 1 {
            let old = recentlyCommittedBlocks.removeFirst()
            for h in old { recentlyCommitted.removeValue(forKey: h) }
            remembered -= old.count
        }
    }

    func resolveWaiters(_ hash: Hash, _ outcome: CommitOutcome) {
        if case .dropped(let why) = outcome { rememberDropped(hash, why) }
        guard let ws = commitWaiters.removeValue(forKey: hash) else { return }
        commitWaiterCount -= ws.count
        for w in ws { w.continuation.resume(returning: outcome) }
    }

    private func rememberDropped(_ hash: Hash, _ why: ContractError) {
        if recentlyDropped.updateValue(why, forKey: hash) == nil { recentlyDroppedOrder.append(hash) }
        if recentlyDroppedOrder.count > Self.recentlyDroppedLimit {
            let old = recentlyDroppedOrder.prefix(recentlyDroppedOrder.count / 2)
            for h in old { recentlyDropped.removeValue(forKey: h) }
            recentlyDroppedOrder.removeFirst(old.count)
        }
    }

    /// Resolves waits whose deadline has passed. Called on every producer poll, so it scans the
    /// waiters only once the earliest deadline is due, not every millisecond.
    private func expireWaiters() {
        guard !commitWaiters.isEmpty else { earliestWaiterDeadline = .max; return }
        let now = clock()
        guard now >= earliestWaiterDeadline else { return }
        var earliest = Int64.max
        for (hash, ws) in commitWaiters {
            let (expired, live) = (ws.filter { $0.deadlineMs <= now }, ws.filter { $0.deadlineMs > now })
            for w in expired { w.continuation.resume(returning: .timedOut) }
            commitWaiterCount -= expired.count
            commitWaiters[hash] = live.isEmpty ? nil : live
            for w in live { earliest = min(earliest, w.deadlineMs) }
        }
        earliestWaiterDeadline = earliest
    }

    /// Runs block production until the task is cancelled.
    public func runProducer(pollMs: UInt64 = 2) async {
        while !Task.isCancelled {
            do { try produceBlockIfDue() } catch {
                FileHandle.standardError.write(Data("block production failed: \(error)\n".utf8))
            }
            try? await Task.sleep(nanoseconds: pollMs * 1_000_000)
        }
    }

    // MARK: queries

    public func status() -> NodeStatus {
        NodeStatus(chainId: genesis.chainId, genesisHash: genesisHash, height: latestHeader.height,
                   latestBlockHash: latestHeader.hash, latestBlockTimeMs: latestHeader.timestampMs,
                   stateRoot: latestHeader.stateRoot, validator: validatorKey.publicKey.address,
                   mempoolSize: mempool.count, mempoolCapacity: mempool.capacity)
    }

    public var mempoolCount: Int { mempool.count }

    /// A state value with its proof against the latest committed header.
    public func stateProof(key: [UInt8]) -> (proof: StateProof, header: BlockHeader, commit: Commit?) {
        (committedState.proof(forKey: key), latestHeader, latestCommit)
    }

    /// The latest committed state with its header (for queries such as access decisions).
    public func committedSnapshot() -> (state: AuthenticatedState, header: BlockHeader) { (committedState, latestHeader) }

    /// The next nonce for `address`, counting pending transactions.
    public func nextNonce(_ address: Address) -> UInt64? {
        (try? mempool.pendingState.read(Account.self, StateKeys.account(address)))??.nonce
    }

    /// A committed transaction with its Merkle proof.
    public nonisolated func transactionProof(_ hash: Hash) throws -> (TransactionProof, index: Int)? {
        guard let loc = try store.location(ofTransaction: hash), let block = try store.block(height: loc.height) else { return nil }
        let leaves = Block.leafHashes(block.transactions)
        guard loc.index < leaves.count, let proof = MerkleTree.proof(leafHashes: leaves, index: loc.index) else {
            throw StoreError.corrupt("transaction \(hash) index \(loc.index) outside block \(loc.height)")
        }
        return (TransactionProof(transaction: block.transactions[loc.index], proof: proof, header: block.header, commit: block.commit), loc.index)
    }
}
