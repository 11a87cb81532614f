import Foundation
import IoMTContracts
import IoMTCore

/// The node as the application of a longest-chain engine (proof of work, proof of authority).
/// The ledger holds only final blocks; the engine keeps the blocks above them (and their states)
/// in memory, so a fork is resolved without ever undoing a durable write. The mempool stays
/// relative to the final ledger: a transaction leaves it when the block holding it is final.
extension Node {
    /// The last final block and the state after it.
    public var finalParent: ChainParent { ChainParent(header: latestHeader, state: committedState) }

    /// Builds a block on `parent` from the mempool, leaving out transactions already in the
    /// unfinalised blocks between the ledger and `parent` (`excluding`). Transactions that do not
    /// apply on `parent`'s state are skipped, not included.
    func buildChainBlock(on parent: ChainParent, excluding: Set<Hash>, timestampMs: Int64, difficulty: UInt32, proposer: Address) -> ExecutedBlock {
        let limit = Int(parameters.maxBlockTransactions)
        let candidate = mempool.candidateBlock(maxTransactions: limit + excluding.count, maxBytes: Int(parameters.maxBlockBytes) * 2)
            .filter { !excluding.contains($0.hash) }
        var chosen: [SealedTransaction] = []
        var bytes = 0
        for tx in candidate where chosen.count < limit && bytes + tx.bytes.count <= Int(parameters.maxBlockBytes) {
            chosen.append(tx)
            bytes += tx.bytes.count
        }
        let context = ExecutionContext(chainID: genesis.chainId, height: parent.header.height + 1, timestampMs: timestampMs)
        let result = Runtime.execute(sealed: chosen, on: parent.state, context: context)
        let newState = result.state.committed()
        let header = BlockHeader(
            chainID: genesis.chainId, height: context.height, previousHash: parent.header.hash,
            transactionsRoot: MerkleTree.root(leafHashes: result.applied.map(\.leafHash)),
            transactionCount: UInt32(result.applied.count), stateRoot: newState.root,
            validatorsHash: Validator.setHash(parent.validators), timestampMs: timestampMs,
            proposer: proposer, difficultyTarget: difficulty)
        let block = ProposedBlock(header: header, transactions: result.applied.map(\.signed))
        return ExecutedBlock(block: block, sealed: result.applied, writes: result.state.writes, state: newState, fromOwnMempool: false)
    }

    /// Verifies the signatures of a received block's transactions (on all cores) and executes it
    /// on `parent`. The seal (work or authority signature) is the engine's to check.
    func executeChainBlock(_ block: ProposedBlock, on parent: ChainParent) async -> Result<ExecutedBlock, ConsensusHostError> {
        guard let sealed = await Self.sealVerifyingSignatures(block.transactions, alreadyVerified: mempool.verifiedSignatures) else {
            return .failure(.invalidDecidedBlock(block.header.height, "a transaction signature does not verify"))
        }
        return Self.execute(block, sealed: sealed, on: parent, genesis: genesis, parameters: parameters)
    }
}
