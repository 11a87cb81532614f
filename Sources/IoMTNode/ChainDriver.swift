import Dispatch
import Foundation
import IoMTConsensus
import IoMTCore

/// Runs a longest-chain consensus mode (proof of work or proof of authority, chosen in genesis)
/// for one node: produces blocks (mines, or seals in its slot), checks and executes the blocks
/// peers relay, keeps the fork choice (`BlockTree`), makes blocks durable once they are
/// `confirmationDepth` deep, gossips transactions, and syncs a lagging node.
///
/// Events are handled one at a time by one task, each to completion, so the fork choice and the
/// order of final blocks never interleave. The clock is injected (tests and the simulator).
public actor ChainDriver {
    public nonisolated let node: Node
    public nonisolated let publicKey: PublicKey
    public nonisolated let mode: ConsensusMode
    let network: any PeerNetwork
    let signer: PrivateKey?
    let clock: @Sendable () -> Int64
    let intervalMs: UInt64

    struct Unfinalised {
        var executed: ExecutedBlock
        var seal: Commit?
        var bytes: [UInt8]
    }

    private var tree: BlockTree
    private var blocks: [Hash: Unfinalised] = [:]
    /// Blocks whose parent has not arrived, by that parent (bounded).
    private var orphans: [Hash: [(ChainBlockMessage, PublicKey?)]] = [:]
    private var orphanCount = 0
    static let orphanLimit = 512
    static let syncBatch: UInt64 = 32
    /// Each peer's last announced best height, and when (a peer that stops announcing — crashed,
    /// cut off — stops counting after `peerHeightTTLMs`, or its stale claim would stop everyone).
    private var peerHeights: [PublicKey: (height: UInt64, atMs: Int64)] = [:]
    static let peerHeightTTLMs: Int64 = 3_000
    private var lastSyncRequest: [PublicKey: Int64] = [:]
    private var lastSealedSlot: UInt64?
    private var blocksProduced = 0
    private var invalidBlocks = 0
    private var conflictingPeers: Set<PublicKey> = []
    public private(set) var haltReason: String?
    private var running = false
    private var tasks: [Task<Void, Never>] = []
    private let events: AsyncStream<Event>.Continuation
    private let eventStream: AsyncStream<Event>
    private let gossip: AsyncStream<[SignedTransaction]>.Continuation
    private let gossipStream: AsyncStream<[SignedTransaction]>
    /// Bumped whenever the best tip changes, so a running nonce search stops at once.
    nonisolated let generation = Generation()
    private var job: (generation: UInt64, block: ExecutedBlock)?
    nonisolated let hashes = Generation()
    private let startedAtMs: Int64

    enum Event: Sendable {
        case block(ChainBlockMessage, from: PublicKey?, sync: Bool)
        case syncRequest(fromHeight: UInt64, peer: PublicKey)
        case status(height: UInt64, peer: PublicKey)
        case tick
        case mined(generation: UInt64, nonce: UInt64)
    }

    /// `signer` is this node's validator key (nil for an observer, which follows without
    /// producing blocks).
    public init(node: Node, network: any PeerNetwork, signer: PrivateKey?, clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) async {
        self.node = node
        self.network = network
        self.signer = signer
        self.clock = clock
        publicKey = node.validatorKey.publicKey
        mode = node.genesis.mode
        intervalMs = node.parameters.blockIntervalMs
        let final = await node.latestHeader
        let difficulty = final.height == 0 ? node.genesis.mode.initialDifficulty : final.difficultyTarget
        tree = BlockTree(root: BlockTree.Entry(id: final.hash, parent: final.previousHash, height: final.height, timestampMs: final.timestampMs,
                                               difficulty: difficulty, cumulativeWork: 0),
                         depth: UInt64(node.genesis.mode.confirmationDepth))
        (eventStream, events) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingOldest(20_000))
        // Not dropping (admissions are bounded by the mempool); `regossip` is the backstop.
        (gossipStream, gossip) = AsyncStream.makeStream(of: [SignedTransaction].self, bufferingPolicy: .unbounded)
        startedAtMs = clock()
    }

    public func start() async {
        guard !running else { return }
        running = true
        let continuation = gossip
        await node.setAdmissionObserver { txs in continuation.yield(txs.map(\.signed)) }
        let network = self.network, me = publicKey
        let gossipStream = self.gossipStream, eventStream = self.eventStream, events = self.events
        tasks.append(Task {
            for await txs in gossipStream { await network.broadcast(PeerMessage.transactions(txs).canonicalBytes, from: me) }
        })
        tasks.append(Task {
            for await e in eventStream { await self.handle(e) }
        })
        let tickMs = mode.kind == .poa ? max(5, min(25, intervalMs / 4)) : 1_000
        tasks.append(Task {
            var n: UInt64 = 0
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: tickMs * 1_000_000)
                events.yield(.tick)
                n += 1
                if n % max(1, 1_000 / tickMs) == 0 { await self.announce(); await self.regossip() }
            }
        })
        if mode.kind == .pow, signer != nil {
            tasks.append(Task.detached { [weak self] in await self?.mine() })
        }
    }

    /// What has waited here for 2 s or more goes out again, as in the BFT driver: a transaction a
    /// peer missed must not wait for this node's turn to seal or mine (an observer never has one).
    private func regossip() async {
        let waiting = await node.waitingTransactions(ageMs: 2_000, limit: 2_000)
        for start in stride(from: 0, to: waiting.count, by: 500) {
            await network.broadcast(PeerMessage.transactions(Array(waiting[start..<min(waiting.count, start + 500)])).canonicalBytes, from: publicKey)
        }
    }

    public func stop() async {
        running = false
        for t in tasks { t.cancel() }
        tasks = []
        gossip.finish()
        events.finish()
        generation.bump()
        await node.setAdmissionObserver(nil)
    }

    // MARK: inbound

    /// Handles one frame from `peer`. Returns false for garbage (the network bans the sender);
    /// a well-formed but invalid block is counted and its sender reported the same way.
    @discardableResult
    public func receive(_ bytes: [UInt8], from peer: PublicKey) async -> Bool {
        guard running else { return true }
        let message: PeerMessage
        do { message = try PeerMessage(canonicalBytes: bytes, maxLength: 64 << 20) } catch { return false }
        switch message {
        case .transactions(let txs):
            let results = await node.submit(batch: txs, relay: false)
            if results.contains(where: { if case .failure(.badSignature) = $0 { return true } else { return false } }) { return false }
        case .chainBlock(let b):
            guard ProposedBlock.id(ofEncoded: b.block) != nil else { return false }
            events.yield(.block(b, from: peer, sync: false))
        case .chainSyncBlock(let b):
            guard ProposedBlock.id(ofEncoded: b.block) != nil else { return false }
            events.yield(.block(b, from: peer, sync: true))
        case .chainSyncRequest(let h):
            events.yield(.syncRequest(fromHeight: h, peer: peer))
        case .status(let h):
            events.yield(.status(height: h, peer: peer))
        case .consensus, .decision, .evidence:
            return false  // BFT messages on a longest-chain chain
        }
        return true
    }

    private func handle(_ e: Event) async {
        guard running, haltReason == nil else { return }
        switch e {
        case .block(let message, let peer, let sync): await accept(message, from: peer, sync: sync)
        case .syncRequest(let h, let peer): await serveSync(from: h, to: peer)
        case .status(let h, let peer):
            peerHeights[peer] = (h, clock())
            if h > tree.best.height { await requestSync(from: peer) }
        case .tick: if mode.kind == .poa { await sealIfMySlot() }
        case .mined(let g, let nonce): await minedBlock(generation: g, nonce: nonce)
        }
    }

    private func announce() async {
        await network.broadcast(PeerMessage.status(height: tree.best.height).canonicalBytes, from: publicKey)
    }

    /// Asks `peer` for its chain from the final height, at most once per 500 ms per peer: every
    /// orphan and every higher status would otherwise ask again, and each answer of up to 32
    /// blocks, still orphaned while its first block is in flight, asked again — a flood that filled
    /// the event queue and stalled the chain under load.
    private func requestSync(from peer: PublicKey) async {
        let now = clock()
        if let last = lastSyncRequest[peer], now - last < 500 { return }
        lastSyncRequest[peer] = now
        await network.send(PeerMessage.chainSyncRequest(fromHeight: tree.root.height + 1).canonicalBytes, to: peer, from: publicKey)
    }

    /// Up to `syncBatch` blocks of this node's best chain from `h`: final ones from the ledger
    /// (with their seals), the rest from memory.
    private func serveSync(from h: UInt64, to peer: PublicKey) async {
        guard h >= 1 else { return }
        var sent: UInt64 = 0
        var height = h
        while sent < Self.syncBatch, height <= tree.root.height {
            guard let block = try? node.store.block(height: height) else { return }
            let m = ChainBlockMessage(block: ProposedBlock(header: block.header, transactions: block.transactions).canonicalBytes, seal: block.commit)
            await network.send(PeerMessage.chainSyncBlock(m).canonicalBytes, to: peer, from: publicKey)
            sent += 1
            height += 1
        }
        for entry in tree.chain(to: tree.best.id) where entry.height >= height && sent < Self.syncBatch {
            guard let b = blocks[entry.id] else { continue }
            await network.send(PeerMessage.chainSyncBlock(ChainBlockMessage(block: b.bytes, seal: b.seal)).canonicalBytes, to: peer, from: publicKey)
            sent += 1
        }
    }

    // MARK: the fork choice

    /// The block `id` (final tip or unfinalised) with the state after it.
    private func parent(_ id: Hash) async -> ChainParent? {
        if id == tree.root.id { return await node.finalParent }
        guard let b = blocks[id] else { return nil }
        return ChainParent(header: b.executed.block.header, state: b.executed.state)
    }

    /// The compact target a child of `parent` must carry.
    private func expectedDifficulty(childOf parent: BlockTree.Entry) -> UInt32 {
        let height = parent.height + 1
        return ProofOfWork.expectedDifficulty(
            height: height, parentDifficulty: parent.difficulty, mode: mode, blockIntervalMs: intervalMs, parentTimeMs: parent.timestampMs,
            windowStartMs: timestamp(atHeight: height - UInt64(mode.retargetInterval), onChainOf: parent.id))
    }

    private func timestamp(atHeight h: UInt64, onChainOf id: Hash) -> Int64 {
        if let e = tree.ancestor(of: id, atHeight: h) { return e.timestampMs }
        return ((try? node.store.block(height: h)) ?? nil)?.header.timestampMs ?? node.genesis.genesisTimeMs
    }

    /// Proposers of block `id` and the blocks before it, newest first (at most `count`; the
    /// genesis block has none).
    private func recentProposers(endingAt id: Hash, count: Int) -> [Address] {
        var out: [Address] = []
        var cur = id
        while out.count < count, let b = blocks[cur] {
            out.append(b.executed.block.header.proposer)
            cur = b.executed.block.header.previousHash
        }
        // The rest are final: from the ledger, down from the final block.
        if out.count < count, cur == tree.root.id {
            var height = tree.root.height
            while out.count < count, height >= 1, let header = ((try? node.store.block(height: height)) ?? nil)?.header {
                out.append(header.proposer)
                height -= 1
            }
        }
        return out
    }

    private func slot(_ t: Int64) -> UInt64 { ProofOfAuthority.slot(timestampMs: t, genesisTimeMs: node.genesis.genesisTimeMs, intervalMs: intervalMs) }

    /// Checks a block's seal and execution on its parent, adds it to the fork choice, relays it,
    /// and makes final what became final. Blocks whose parent is missing wait (bounded).
    private func accept(_ message: ChainBlockMessage, from peer: PublicKey?, sync: Bool) async {
        let block: ProposedBlock
        do { block = try ProposedBlock(canonicalBytes: message.block, maxLength: message.block.count) } catch { return reject(peer, "undecodable block: \(error)") }
        let h = block.header
        let id = h.hash
        if tree.contains(id) { return }
        if h.height <= tree.root.height {
            // A block at a final height that is not ours: the peer finalised another chain (a
            // partition, or blocks faster than they can be checked, outlasted the confirmation
            // depth). Nothing reconciles that automatically; operators must see it.
            if let mine = (try? node.store.block(height: h.height)) ?? nil, mine.hash != id {
                if let peer, conflictingPeers.insert(peer).inserted {
                    FileHandle.standardError.write(Data("[iomtchain] FORK BELOW FINAL HEIGHT: \(peer) has block \(id) at final height \(h.height), this node has \(mine.hash); the consortium has split and needs an operator\n".utf8))
                }
            }
            return
        }
        guard let parentEntry = tree.entry(h.previousHash), let parent = await parent(h.previousHash) else {
            if orphanCount < Self.orphanLimit {
                orphans[h.previousHash, default: []].append((message, peer))
                orphanCount += 1
            }
            if let peer { await requestSync(from: peer) }
            return
        }
        // The seal: work, or the slot's authority.
        switch mode.kind {
        case .pow:
            let want = expectedDifficulty(childOf: parentEntry)
            guard h.difficultyTarget == want else { return reject(peer, "block \(h.height) carries difficulty \(String(h.difficultyTarget, radix: 16)), expected \(String(want, radix: 16))") }
            guard ProofOfWork.meets(id, want) else { return reject(peer, "block \(h.height) hash does not meet its target") }
            guard message.seal == nil else { return reject(peer, "a proof-of-work block carries a seal") }
        case .poa:
            let validators = parent.validators
            let recent = recentProposers(endingAt: h.previousHash, count: ProofOfAuthority.recentWindow(validators.count))
            if let why = ProofOfAuthority.checkSeal(message.seal, header: h, genesisTimeMs: node.genesis.genesisTimeMs, intervalMs: intervalMs,
                                                    validators: validators, recentSigners: recent) {
                return reject(peer, "block \(h.height): \(why)")
            }
            guard slot(h.timestampMs) > slot(parent.header.timestampMs) else { return reject(peer, "block \(h.height) in the same slot as its parent") }
        case .bft:
            return reject(peer, "BFT chain")
        }
        // A block from the future waits for a later sync rather than count against its sender.
        if h.timestampMs > clock() + Int64(mode.kind == .poa ? intervalMs : 15_000) { return }
        let executed: ExecutedBlock
        switch await node.executeChainBlock(block, on: parent) {
        case .success(let e): executed = e
        case .failure(let e): return reject(peer, "\(e)")
        }
        await add(Unfinalised(executed: executed, seal: message.seal, bytes: message.block), relay: !sync)
        // Children that were waiting for this block.
        if let waiting = orphans.removeValue(forKey: id) {
            orphanCount -= waiting.count
            for (m, p) in waiting { await accept(m, from: p, sync: true) }
        }
        // Catching up: once a sync batch is used up, ask for the next at once.
        if sync, let peer, let theirs = peerHeights[peer]?.height, theirs > tree.best.height, h.height == tree.best.height,
           (h.height - tree.root.height) % Self.syncBatch == 0 || tree.best.height + UInt64(mode.confirmationDepth) < theirs {
            await network.send(PeerMessage.chainSyncRequest(fromHeight: tree.best.height + 1).canonicalBytes, to: peer, from: publicKey)
        }
    }

    private func reject(_ peer: PublicKey?, _ why: String) {
        invalidBlocks += 1
        FileHandle.standardError.write(Data("[iomtchain] refused a block\(peer.map { " from \($0)" } ?? ""): \(why)\n".utf8))
    }

    /// Adds a checked block (own or received), relays it, and applies what became final.
    private func add(_ b: Unfinalised, relay: Bool) async {
        let h = b.executed.block.header
        let work: UInt64 = mode.kind == .pow ? ProofOfWork.work(h.difficultyTarget) : 1
        let result = tree.insert(id: h.hash, parent: h.previousHash, height: h.height, timestampMs: h.timestampMs, difficulty: h.difficultyTarget, work: work)
        guard case .added(let newBest, _) = result else { return }
        blocks[h.hash] = b
        if newBest { generation.bump() }
        if relay { await network.broadcast(PeerMessage.chainBlock(ChainBlockMessage(block: b.bytes, seal: b.seal)).canonicalBytes, from: publicKey) }
        let (final, pruned) = tree.finalise()
        for id in pruned { blocks.removeValue(forKey: id) }
        for entry in final {
            guard let f = blocks.removeValue(forKey: entry.id) else { continue }
            do { try await node.applyFinal(f.executed, commit: f.seal) } catch {
                haltReason = "\(error)"
                FileHandle.standardError.write(Data("[iomtchain] \(error)\n".utf8))
                return
            }
        }
    }

    /// Transactions in the unfinalised blocks from the ledger up to `tip`.
    private func pendingInChain(to tip: Hash) -> Set<Hash> {
        var out: Set<Hash> = []
        for e in tree.chain(to: tip) { for tx in blocks[e.id]?.executed.sealed ?? [] { out.insert(tx.hash) } }
        return out
    }

    // MARK: proof of authority

    /// A node that has just started, or that a peer reports to be behind, does not produce: a
    /// block on a stale tip is wasted work (and, for PoA, a fork the recent-signer rule must
    /// then stop). It waits for its peers' heights (they announce every second) before the first.
    private func catchingUp(now: Int64) -> Bool {
        let fresh = peerHeights.values.filter { now - $0.atMs < Self.peerHeightTTLMs }
        if fresh.contains(where: { $0.height > tree.best.height }) { return true }
        return peerHeights.isEmpty && now - startedAtMs < 3_000
    }

    /// Seals a block on the best tip if this node is the current slot's authority and has not
    /// sealed in this slot.
    private func sealIfMySlot() async {
        guard let signer else { return }
        let now = clock()
        let s = slot(now)
        guard lastSealedSlot != s, s > slot(tree.best.timestampMs), !catchingUp(now: now), let parent = await parent(tree.best.id),
              ProofOfAuthority.authority(slot: s, validators: parent.validators)?.publicKey == signer.publicKey else { return }
        let validators = parent.validators
        guard !ProofOfAuthority.mayNotSeal(signer.publicKey.address, recentSigners: recentProposers(endingAt: tree.best.id, count: ProofOfAuthority.recentWindow(validators.count)),
                                           authorities: validators.count) else { return }
        lastSealedSlot = s
        let timestamp = max(now, tree.best.timestampMs + 1)
        var executed = await node.buildChainBlock(on: parent, excluding: pendingInChain(to: tree.best.id), timestampMs: timestamp, difficulty: 0, proposer: signer.publicKey.address)
        executed.fromOwnMempool = false
        let seal = ProofOfAuthority.seal(executed.block.header, with: signer)
        blocksProduced += 1
        await add(Unfinalised(executed: executed, seal: seal, bytes: executed.block.canonicalBytes), relay: true)
    }

    // MARK: proof of work

    /// The block to mine now: on the best tip, from the mempool. Rebuilt when the tip changes or
    /// the last template is older than a block interval (new transactions, fresh timestamp).
    func miningJob() async -> (generation: UInt64, header: BlockHeader)? {
        guard running, haltReason == nil, let signer, let parent = await parent(tree.best.id) else { return nil }
        guard parent.validators.contains(where: { $0.publicKey == signer.publicKey }), !catchingUp(now: clock()) else { return nil }
        let g = generation.value
        let timestamp = max(clock(), tree.best.timestampMs + 1)
        let executed = await node.buildChainBlock(on: parent, excluding: pendingInChain(to: tree.best.id), timestampMs: timestamp,
                                                  difficulty: expectedDifficulty(childOf: tree.best), proposer: signer.publicKey.address)
        job = (g, executed)
        return (g, executed.block.header)
    }

    private func minedBlock(generation g: UInt64, nonce: UInt64) async {
        guard var j = job, j.generation == g, g == generation.value else { return }
        job = nil
        j.block.block.header.powNonce = nonce
        guard ProofOfWork.meets(j.block.block.header.hash, j.block.block.header.difficultyTarget) else { return }
        blocksProduced += 1
        await add(Unfinalised(executed: j.block, seal: nil, bytes: j.block.block.canonicalBytes), relay: true)
    }

    /// The miner: searches nonces on its own thread (never the cooperative pool) in chunks,
    /// abandoning a template when the tip changes or after a block interval.
    private nonisolated func mine() async {
        let queue = DispatchQueue(label: "iomtchain.miner")
        var nonce = UInt64.random(in: 0...(UInt64.max / 2))
        let chunk: UInt64 = 4_096
        while !Task.isCancelled {
            guard let (g, header) = await miningJob() else {
                try? await Task.sleep(nanoseconds: 50_000_000)
                continue
            }
            let started = DispatchTime.now().uptimeNanoseconds
            while !Task.isCancelled, generation.value == g, DispatchTime.now().uptimeNanoseconds - started < UInt64(intervalMs) * 1_000_000 {
                let from = nonce
                let found: UInt64? = await withCheckedContinuation { c in queue.async { c.resume(returning: ProofOfWork.search(header, from: from, count: chunk)) } }
                hashes.add(found.map { $0 &- from &+ 1 } ?? chunk)
                nonce &+= chunk
                if let found {
                    events.yield(.mined(generation: g, nonce: found))
                    break
                }
            }
        }
    }

    // MARK: status

    public func info() async -> ConsensusInfo {
        let parent = await parent(tree.best.id)
        let validators = parent?.validators ?? []
        let isValidator = signer.map { k in validators.contains { $0.publicKey == k.publicKey } } ?? false
        let elapsed = Double(max(1, clock() - startedAtMs)) / 1000
        let chain = ChainInfo(finalHeight: tree.root.height, bestHeight: tree.best.height, bestHash: tree.best.id,
                              confirmationDepth: mode.confirmationDepth, unfinalisedBlocks: tree.count, reorganisations: tree.reorganisations,
                              blocksProduced: blocksProduced, invalidBlocks: invalidBlocks,
                              conflictingPeers: conflictingPeers.sorted { $0.text < $1.text },
                              difficulty: mode.kind == .pow ? expectedDifficulty(childOf: tree.best) : nil,
                              hashesPerSecond: mode.kind == .pow ? Double(hashes.value) / elapsed : nil)
        return ConsensusInfo(mode: mode.kind.rawValue, height: tree.best.height + 1, round: 0,
                             step: mode.kind == .pow ? (isValidator ? "mining" : "following") : (isValidator ? "sealing" : "following"),
                             role: isValidator ? "validator" : "observer", nodeKey: publicKey, validators: validators, lockedRound: nil,
                             evidence: [], haltReason: haltReason, peers: [], chain: chain)
    }

    public var bestHeight: UInt64 { tree.best.height }
    public var finalHeight: UInt64 { tree.root.height }
}

/// A counter read without an actor hop (the miner checks it between nonce chunks).
final class Generation: @unchecked Sendable {
    private let lock = NSLock()
    private var n: UInt64 = 0
    var value: UInt64 { lock.withLock { n } }
    func bump() { lock.withLock { n &+= 1 } }
    func add(_ k: UInt64) { lock.withLock { n &+= k } }
}
