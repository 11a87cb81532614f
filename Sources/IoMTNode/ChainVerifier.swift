import Dispatch
import Foundation
import IoMTContracts
import IoMTCore
import IoMTStore

/// Replays a whole ledger from genesis and names the first block that does not check out:
/// hashes and links, Merkle roots, transaction and commit signatures, execution and state roots,
/// and finally the stored state table against the replayed state.
public enum ChainVerifier {
    public struct Report: Sendable, Codable {
        public var ok: Bool
        public var verifiedHeight: UInt64
        public var transactions: Int
        public var firstBadHeight: UInt64?
        public var reason: String?
    }

    /// Verifies one consistent snapshot of `store` (safe while a node is committing).
    public static func verify(store: LedgerStore, progress: ((UInt64) -> Void)? = nil) throws -> Report {
        try store.read { try verify(snapshot: $0, progress: progress) }
    }

    static func verify(snapshot store: LedgerSnapshot, progress: ((UInt64) -> Void)?) throws -> Report {
        guard let genesisBytes = try store.genesisFile() else { throw StoreError.notInitialised }
        let genesis: Genesis
        do { genesis = try JSONDecoder().decode(Genesis.self, from: Data(genesisBytes)) } catch {
            return Report(ok: false, verifiedHeight: 0, transactions: 0, firstBadHeight: 0, reason: "stored genesis file does not decode: \(error)")
        }
        let latest = try store.latestHeight() ?? 0
        var state = genesis.initialState()
        var txCount = 0
        func bad(_ h: UInt64, _ why: String) -> Report {
            Report(ok: false, verifiedHeight: h == 0 ? 0 : h - 1, transactions: txCount, firstBadHeight: h, reason: why)
        }

        let expectedGenesis = genesis.genesisBlock()
        let stored0: Block?
        do { stored0 = try store.block(height: 0) } catch { return bad(0, "\(error)") }
        guard let stored0 else { return bad(0, "genesis block missing") }
        guard stored0.header == expectedGenesis.header, stored0.transactions.isEmpty else { return bad(0, "genesis block differs from the genesis file") }

        var previous = stored0.header
        var height: UInt64 = 1
        // Proof of work: each block's target follows from the timestamps before it.
        var timestamps: [Int64] = [stored0.header.timestampMs]
        // Proof of authority: who sealed the blocks so far (the recent-signer rule).
        var proposers: [Address] = []
        let mode = genesis.mode
        let interval = genesis.consensus.blockIntervalMs
        while height <= latest {
            let block: Block
            do {
                guard let b = try store.block(height: height) else { return bad(height, "block missing") }
                block = b
            } catch { return bad(height, "\(error)") }
            let h = height
            let seal: Seal
            switch mode.kind {
            case .bft: seal = .commit
            case .poa: seal = .authority(genesisTimeMs: genesis.genesisTimeMs, intervalMs: interval, recentSigners: Array(proposers.suffix(16).reversed()))
            case .pow:
                seal = .work(ProofOfWork.expectedDifficulty(height: h, parentDifficulty: previous.height == 0 ? mode.initialDifficulty : previous.difficultyTarget,
                                                            mode: mode, blockIntervalMs: interval, parentTimeMs: previous.timestampMs,
                                                            windowStartMs: timestamps[Int(h) - Int(mode.retargetInterval)]))
            }
            if let why = check(block, previous: previous, state: &state, chainID: genesis.chainId, seal: seal) { return bad(height, why) }
            timestamps.append(block.header.timestampMs)
            proposers.append(block.header.proposer)
            txCount += block.transactions.count
            previous = block.header
            progress?(height)
            height += 1
        }

        // The state table must be exactly the replayed state.
        let storedState = AuthenticatedState.build(try store.loadState())
        if storedState.root != state.root {
            let replayed = Dictionary(uniqueKeysWithValues: state.entries().map { ($0.key, $0.value) })
            let stored = Dictionary(uniqueKeysWithValues: storedState.entries().map { ($0.key, $0.value) })
            let differing = Set(replayed.keys).union(stored.keys).first { replayed[$0] != stored[$0] }
            let key = differing.map(describeKey) ?? "?"
            return Report(ok: false, verifiedHeight: latest, transactions: txCount, firstBadHeight: latest,
                          reason: "stored state differs from the replayed state at key \(key) (state table edited after block \(latest))")
        }
        return Report(ok: true, verifiedHeight: latest, transactions: txCount, firstBadHeight: nil, reason: nil)
    }

    /// What makes a block final in the chain's consensus mode.
    enum Seal {
        /// A BFT commit certificate of more than two thirds of the validators' power.
        case commit
        /// One signature by the slot's authority (proof of authority).
        case authority(genesisTimeMs: Int64, intervalMs: UInt64, recentSigners: [Address])
        /// A header hash meeting this compact target (proof of work).
        case work(UInt32)
    }

    /// Checks one block on top of `previous` and `state`; advances `state` on success.
    static func check(_ block: Block, previous: BlockHeader, state: inout AuthenticatedState, chainID: String, seal: Seal = .commit) -> String? {
        let h = block.header
        guard h.version == BlockHeader.currentVersion else { return "unknown header version \(h.version)" }
        guard h.chainID == chainID else { return "chain id \(h.chainID), expected \(chainID)" }
        guard h.previousHash == previous.hash else { return "previousHash does not match block \(previous.height)'s hash" }
        guard h.timestampMs > previous.timestampMs else { return "timestamp does not advance" }
        guard Int(h.transactionCount) == block.transactions.count else { return "header counts \(h.transactionCount) transactions, block has \(block.transactions.count)" }
        guard MerkleTree.root(leafHashes: Block.leafHashes(block.transactions)) == h.transactionsRoot else { return "transactionsRoot does not match the transactions" }

        var sigOK = [Bool](repeating: false, count: block.transactions.count)
        sigOK.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let ptr = out.baseAddress
            DispatchQueue.concurrentPerform(iterations: block.transactions.count) { i in ptr?[i] = block.transactions[i].hasValidSignature() }
        }
        if let i = sigOK.firstIndex(of: false) { return "transaction \(i) (\(block.transactions[i].hash)) has an invalid signature" }

        let overlay = StateOverlay(base: state)
        let validators: [Validator]
        do { validators = try overlay.read([Validator].self, StateKeys.validators) ?? [] } catch { return "\(error)" }
        switch seal {
        case .commit:
            guard let commit = block.commit else { return "block has no commit" }
            do { try commit.verify(header: h, validators: validators) } catch { return "commit: \(error)" }
        case .authority(let genesisTimeMs, let intervalMs, let recent):
            if let why = ProofOfAuthority.checkSeal(block.commit, header: h, genesisTimeMs: genesisTimeMs, intervalMs: intervalMs, validators: validators,
                                                    recentSigners: Array(recent.prefix(ProofOfAuthority.recentWindow(validators.count)))) { return why }
            guard ProofOfAuthority.slot(timestampMs: h.timestampMs, genesisTimeMs: genesisTimeMs, intervalMs: intervalMs)
                > ProofOfAuthority.slot(timestampMs: previous.timestampMs, genesisTimeMs: genesisTimeMs, intervalMs: intervalMs) else { return "sealed in the same slot as its parent" }
        case .work(let target):
            guard h.difficultyTarget == target else { return "difficulty \(String(h.difficultyTarget, radix: 16)), expected \(String(target, radix: 16))" }
            guard ProofOfWork.meets(h.hash, target) else { return "header hash does not meet its proof-of-work target" }
            guard validators.contains(where: { $0.address == h.proposer }) else { return "miner \(h.proposer) is not a validator" }
        }

        let result = Runtime.execute(block.transactions, on: state, context: ExecutionContext(chainID: chainID, height: h.height, timestampMs: h.timestampMs))
        if let (tx, err) = result.rejected.first { return "transaction \(tx.hash) does not apply: \(err.code): \(err)" }
        let next = result.state.committed()
        guard next.root == h.stateRoot else { return "stateRoot \(h.stateRoot) differs from the replayed state root \(next.root)" }
        state = next
        return nil
    }
}

/// A state key for humans: its ASCII prefix, then the rest in hex ("acct/1f2e…").
func describeKey(_ key: [UInt8]) -> String {
    if key.allSatisfy({ $0 >= 0x21 && $0 < 0x7f }) { return String(decoding: key, as: UTF8.self) }
    let printable = key.prefix { $0 >= 0x21 && $0 < 0x7f }
    let cut = printable.lastIndex(of: UInt8(ascii: "/")).map { $0 + 1 } ?? printable.count
    let prefix = key.prefix(cut)
    let rest = key.dropFirst(cut)
    return String(decoding: prefix, as: UTF8.self) + Hex.encode(rest)
}
