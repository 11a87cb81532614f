import Dispatch
import Foundation
import IoMTContracts
import IoMTCore
import IoMTStore

/// A block this node executed (as proposer or to validate a proposal), kept until one is decided.
struct ExecutedBlock: Sendable {
    var block: ProposedBlock
    var sealed: [SealedTransaction]
    var writes: [[UInt8]: [UInt8]?]
    var state: AuthenticatedState
    /// Proposed by this node from its own mempool prefix (so the rest of the mempool stays valid).
    var fromOwnMempool: Bool
}

/// The block a new block builds on, with the state after it.
public struct ChainParent: Sendable {
    public var header: BlockHeader
    public var state: AuthenticatedState

    public init(header: BlockHeader, state: AuthenticatedState) {
        self.header = header
        self.state = state
    }

    /// The validator set that signs (or may seal, or mine) the next block.
    public var validators: [Validator] { ((try? StateOverlay(base: state).read([Validator].self, StateKeys.validators)) ?? nil) ?? [] }
}

/// Why a decided block could not be applied. The node halts rather than diverge.
public enum ConsensusHostError: Error, CustomStringConvertible, Sendable {
    case wrongHeight(expected: UInt64, got: UInt64)
    case invalidDecidedBlock(UInt64, String)
    case halted(String)

    public var description: String {
        switch self {
        case .wrongHeight(let e, let g): return "consensus asked for height \(g); the ledger is at \(e - 1)"
        case .invalidDecidedBlock(let h, let why): return "the block decided at height \(h) does not apply here (\(why)): this node's state diverges from the consortium's"
        case .halted(let why): return why
        }
    }
}

/// The node as the application of a BFT consensus engine (ABCI's PrepareProposal,
/// ProcessProposal and FinalizeBlock+Commit). In this mode the solo producer loop does not run,
/// so the tip is always the last durable block.
extension Node {
    /// The validator set that signs the next block (from the latest committed state).
    public func currentValidators() -> [Validator] {
        ((try? StateOverlay(base: committedState).read([Validator].self, StateKeys.validators)) ?? nil) ?? []
    }

    /// Builds this node's proposal for `height` from the mempool's longest prefix within the block
    /// limits, executed on the latest committed state.
    public func proposeBlock(height: UInt64) throws(ConsensusHostError) -> (id: Hash, bytes: [UInt8]) {
        if let failure = persistFailure { throw .halted(failure.description) }
        guard height == latestHeader.height + 1 else { throw .wrongHeight(expected: latestHeader.height + 1, got: height) }
        let candidate = mempool.candidateBlock(maxTransactions: Int(parameters.maxBlockTransactions), maxBytes: Int(parameters.maxBlockBytes))
        let context = ExecutionContext(chainID: genesis.chainId, height: height, timestampMs: max(clock(), latestHeader.timestampMs + 1))
        let result = Runtime.execute(sealed: candidate, on: committedState, context: context)
        let newState = result.state.committed()
        let header = BlockHeader(
            chainID: genesis.chainId, height: height, previousHash: latestHeader.hash,
            transactionsRoot: MerkleTree.root(leafHashes: result.applied.map(\.leafHash)),
            transactionCount: UInt32(result.applied.count), stateRoot: newState.root,
            validatorsHash: Validator.setHash(currentValidators()), timestampMs: context.timestampMs,
            proposer: validatorKey.publicKey.address)
        let block = ProposedBlock(header: header, transactions: result.applied.map(\.signed))
        candidates[header.hash] = ExecutedBlock(block: block, sealed: result.applied, writes: result.state.writes, state: newState,
                                                fromOwnMempool: result.rejected.isEmpty)
        return (header.hash, ProposedBlock.encode(header: header, transactionBytes: result.applied.map(\.bytes)))
    }

    /// Whether `bytes` is a valid block at `height` on top of the latest committed block: it decodes,
    /// links to the latest header, is within the limits, was proposed by a validator, every
    /// signature verifies, every transaction applies, and the roots it claims are the ones this
    /// node computes. Deterministic: every honest node gives the same answer.
    public func validateBlock(_ bytes: [UInt8], height: UInt64) async -> Result<Void, ConsensusHostError> {
        guard let id = ProposedBlock.id(ofEncoded: bytes) else { return .failure(.invalidDecidedBlock(height, "undecodable header")) }
        if candidates[id] != nil { return .success(()) }
        guard bytes.count <= Int(parameters.maxBlockBytes) + (1 << 20) else { return .failure(.invalidDecidedBlock(height, "block of \(bytes.count) bytes")) }
        let block: ProposedBlock
        do { block = try ProposedBlock(canonicalBytes: bytes, maxLength: bytes.count) } catch {
            return .failure(.invalidDecidedBlock(height, "undecodable block: \(error)"))
        }
        // Transactions this node admitted had their signatures checked then (same bytes, same
        // hash): only the others are verified, as CometBFT's CheckTx cache does.
        let sealed = await Self.sealVerifyingSignatures(block.transactions, alreadyVerified: mempool.verifiedSignatures)
        guard let sealed else { return .failure(.invalidDecidedBlock(height, "a transaction signature does not verify")) }
        // The ledger may have moved while signatures were checked.
        guard block.header.height == height, height == latestHeader.height + 1 else {
            return .failure(.invalidDecidedBlock(height, "height \(block.header.height), expected \(latestHeader.height + 1)"))
        }
        let executed: ExecutedBlock
        switch Self.execute(block, sealed: sealed, on: ChainParent(header: latestHeader, state: committedState), genesis: genesis, parameters: parameters) {
        case .success(let e): executed = e
        case .failure(let e): return .failure(e)
        }
        candidates[id] = executed
        return .success(())
    }

    /// Checks a block (transactions already sealed and signature-verified) on top of `parent`
    /// and executes it: chain id, link, timestamp, validators hash, proposer, limits, Merkle
    /// root, every transaction applies, state root. Pure: the same answer on every node.
    nonisolated static func execute(_ block: ProposedBlock, sealed: [SealedTransaction], on parent: ChainParent, genesis: Genesis,
                                    parameters: ConsensusParameters) -> Result<ExecutedBlock, ConsensusHostError> {
        let h = block.header
        let height = h.height
        let validators = parent.validators
        func fail(_ why: String) -> Result<ExecutedBlock, ConsensusHostError> { .failure(.invalidDecidedBlock(height, why)) }
        guard h.height == parent.header.height + 1 else { return fail("height \(h.height), expected \(parent.header.height + 1)") }
        guard h.chainID == genesis.chainId else { return fail("chain \(h.chainID)") }
        guard h.previousHash == parent.header.hash else { return fail("previous hash does not link") }
        guard h.timestampMs > parent.header.timestampMs else { return fail("timestamp not after the previous block's") }
        guard h.validatorsHash == Validator.setHash(validators) else { return fail("validators hash") }
        guard validators.contains(where: { $0.address == h.proposer }) else { return fail("proposer \(h.proposer) is not a validator") }
        guard Int(h.transactionCount) == sealed.count, sealed.count <= Int(parameters.maxBlockTransactions) else { return fail("transaction count") }
        guard sealed.reduce(0, { $0 + $1.bytes.count }) <= Int(parameters.maxBlockBytes) else { return fail("block larger than maxBlockBytes") }
        guard MerkleTree.root(leafHashes: sealed.map(\.leafHash)) == h.transactionsRoot else { return fail("transactions root") }
        let result = Runtime.execute(sealed: sealed, on: parent.state, context: ExecutionContext(chainID: h.chainID, height: h.height, timestampMs: h.timestampMs))
        if let first = result.rejected.first { return fail("transaction \(first.transaction.hash) does not apply: \(first.error)") }
        let newState = result.state.committed()
        guard newState.root == h.stateRoot else { return fail("state root \(h.stateRoot), computed \(newState.root)") }
        return .success(ExecutedBlock(block: block, sealed: sealed, writes: result.state.writes, state: newState, fromOwnMempool: false))
    }

    /// Seals transactions and verifies their signatures on all cores; nil if any fails.
    /// A transaction found in `alreadyVerified` with the same signature (admitted to this node's
    /// mempool, so verified at admission; the hash covers the unsigned transaction, the signature
    /// the rest, so the signed bytes are identical) is not verified again.
    nonisolated static func sealVerifyingSignatures(_ txs: [SignedTransaction], alreadyVerified: [Hash: Signature] = [:]) async -> [SealedTransaction]? {
        await withCheckedContinuation { c in
            DispatchQueue.global().async {
                var out = [SealedTransaction?](repeating: nil, count: txs.count)
                out.withUnsafeMutableBufferPointer { buf in
                    guard let base = buf.baseAddress else { return }
                    nonisolated(unsafe) let ptr = base
                    DispatchQueue.concurrentPerform(iterations: txs.count) { i in
                        let s = SealedTransaction(txs[i])
                        ptr[i] = alreadyVerified[s.hash] == s.signed.signature || s.hasValidSignature() ? s : nil
                    }
                }
                let all = out.compactMap { $0 }
                c.resume(returning: all.count == txs.count ? all : nil)
            }
        }
    }

    /// Applies the block consensus decided at the next height, with its commit certificate, and
    /// returns once it is durable. A decided block that does not apply here, or a storage failure,
    /// halts the node: its state would otherwise diverge from the consortium's.
    public func commitDecided(_ bytes: [UInt8], commit: Commit) async throws(ConsensusHostError) {
        if let failure = persistFailure { throw .halted(failure.description) }
        guard commit.height == latestHeader.height + 1 else {
            if commit.height <= latestHeader.height { return }  // already applied (e.g. through sync)
            throw .wrongHeight(expected: latestHeader.height + 1, got: commit.height)
        }
        if candidates[commit.blockHash] == nil {
            if case .failure(let e) = await validateBlock(bytes, height: commit.height) { halt(e.description); throw e }
        }
        guard commit.height == latestHeader.height + 1 else { return }  // applied meanwhile
        guard let executed = candidates[commit.blockHash] else { throw .invalidDecidedBlock(commit.height, "no block with the decided id") }
        try await applyFinal(executed, commit: commit)
    }

    /// Makes a final block durable (with its commit certificate, PoA seal, or none for PoW) and
    /// moves the ledger, the mempool and the commit waiters to it.
    func applyFinal(_ executed: ExecutedBlock, commit: Commit?) async throws(ConsensusHostError) {
        let height = executed.block.header.height
        guard height == latestHeader.height + 1 else { throw .wrongHeight(expected: latestHeader.height + 1, got: height) }
        let started = DispatchTime.now()
        let block = Block(header: executed.block.header, transactions: executed.block.transactions, commit: commit)
        let store = self.store
        let writes = executed.writes
        let sealed = executed.sealed
        if case .failure(let error) = await Self.offPool(Self.commitQueue, { try store.commit(block: block, sealed: sealed, writes: writes) }) {
            let message = "block \(height) could not be stored: \(error); node halted, restart it"
            halt(message)
            throw .halted(message)
        }
        candidates = [:]
        let applied = sealed.map(\.hash)
        let exact = executed.fromOwnMempool && mempool.startsWith(applied)
        let dropped = mempool.rebase(on: executed.state, removing: Set(applied), exact: exact,
                                     context: ExecutionContext(chainID: genesis.chainId, height: height + 1, timestampMs: max(clock(), block.header.timestampMs + 1)))
        committedState = executed.state
        tipState = executed.state
        latestHeader = block.header
        tipHeader = block.header
        latestCommit = commit
        prunable += applied
        prunable += dropped.map(\.0.hash)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        metrics.blocksCommitted += 1
        metrics.transactionsCommitted += UInt64(applied.count)
        metrics.droppedAfterAdmission += UInt64(dropped.count)
        metrics.lastBlockCommitSeconds = seconds
        metrics.commitSecondsTotal += seconds
        for (tx, err) in dropped { resolveWaiters(tx.hash, .dropped(err)) }
        for (i, h) in applied.enumerated() { resolveWaiters(h, .committed(height: height, index: i)) }
        rememberCommitted(applied, height: height)
    }

    private func halt(_ message: String) {
        guard persistFailure == nil else { return }
        persistFailure = StorageHalt(description: message)
        FileHandle.standardError.write(Data("[iomtchain] \(message)\n".utf8))
    }

    /// A committed block as consensus carries it, with its commit: what block sync serves.
    public nonisolated func decidedBlock(height: UInt64) throws -> (bytes: [UInt8], commit: Commit)? {
        guard let block = try store.block(height: height), let commit = block.commit else { return nil }
        return (ProposedBlock(header: block.header, transactions: block.transactions).canonicalBytes, commit)
    }

    /// Lets BFT mode gossip newly admitted transactions.
    public func setAdmissionObserver(_ observer: (@Sendable ([SealedTransaction]) -> Void)?) { onAdmitted = observer }
}
