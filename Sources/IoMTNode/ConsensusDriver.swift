import Dispatch
import Foundation
import IoMTConsensus
import IoMTCore

/// What consortium nodes say to each other (one peer-to-peer frame each).
public enum PeerMessage: Sendable, CanonicalCodable {
    /// A proposal or vote.
    case consensus(ConsensusMessage)
    /// Transactions admitted by the sender (gossip: the receiver admits them and does not relay).
    case transactions([SignedTransaction])
    /// "I am deciding this height": a peer that has that block answers with `decision`.
    case status(height: UInt64)
    /// A decided block (as consensus carries it) with its commit certificate: block sync.
    case decision(block: [UInt8], commit: Commit)
    /// Proof that a validator equivocated.
    case evidence(Evidence)
    /// A new block of a longest-chain mode (pow, poa), relayed by every node that accepts it.
    case chainBlock(ChainBlockMessage)
    /// "Send me your best chain's blocks from this height" (longest-chain block sync).
    case chainSyncRequest(fromHeight: UInt64)
    /// One block answering `chainSyncRequest`.
    case chainSyncBlock(ChainBlockMessage)

    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case .consensus(let m): w.write(UInt8(1)); w.write(m)
        case .transactions(let t): w.write(UInt8(2)); w.write(t)
        case .status(let h): w.write(UInt8(3)); w.write(h)
        case .decision(let b, let c): w.write(UInt8(4)); w.writeBytes(b); w.write(c)
        case .evidence(let e): w.write(UInt8(5)); w.write(e)
        case .chainBlock(let b): w.write(UInt8(6)); w.write(b)
        case .chainSyncRequest(let h): w.write(UInt8(7)); w.write(h)
        case .chainSyncBlock(let b): w.write(UInt8(8)); w.write(b)
        }
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let tag: UInt8 = try r.read()
        switch tag {
        case 1: self = .consensus(try r.read())
        case 2: self = .transactions(try r.readArray())
        case 3: self = .status(height: try r.read())
        case 4: self = .decision(block: try r.readBytes(), commit: try r.read())
        case 5: self = .evidence(try r.read())
        case 6: self = .chainBlock(try r.read())
        case 7: self = .chainSyncRequest(fromHeight: try r.read())
        case 8: self = .chainSyncBlock(try r.read())
        default: throw .unknownTag(type: "PeerMessage", tag: tag)
        }
    }
}

/// A block as the longest-chain modes carry it: the block (header and transactions, as
/// `ProposedBlock`) and, for proof of authority, the authority's seal.
public struct ChainBlockMessage: Sendable, CanonicalCodable {
    public var block: [UInt8]
    public var seal: Commit?

    public init(block: [UInt8], seal: Commit?) {
        self.block = block
        self.seal = seal
    }

    public func encode(to w: inout CanonicalWriter) { w.writeBytes(block); w.write(seal) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        block = try r.readBytes()
        seal = try r.readOptional()
    }
}

/// How a node reaches its peers. The real one is the authenticated, encrypted peer-to-peer
/// network; `LoopbackNetwork` connects nodes inside one process (tests, simulations of a devnet).
public protocol PeerNetwork: Sendable {
    /// Sends to every connected peer (not to this node).
    func broadcast(_ bytes: [UInt8], from: PublicKey) async
    func send(_ bytes: [UInt8], to peer: PublicKey, from: PublicKey) async
}

/// Runs the Tendermint core (`IoMTConsensus`) for one node: feeds it messages, timeouts and the
/// application's answers, performs its actions against the `Node` (propose, validate, commit) and
/// the network, gossips transactions, and syncs blocks a lagging node lacks.
///
/// Events are processed one at a time, in arrival order, each to completion (its `.persist` is
/// durable before any later action): the core's contract (docs/consensus.md).
public actor ConsensusDriver {
    public nonisolated let node: Node
    public nonisolated let publicKey: PublicKey
    let network: any PeerNetwork
    let configuration: ConsensusConfiguration
    let signer: PrivateKey?
    /// Pause after a decision before starting the next height (Tendermint's `timeout_commit`):
    /// lets late precommits arrive and transactions accumulate. The chain's `blockIntervalMs`.
    let commitWaitMs: UInt64
    let tickMs: UInt64
    private var core: TendermintCore
    private var inbox: [ConsensusEvent] = []
    private var pumping = false
    private var running = false
    private var tasks: [Task<Void, Never>] = []
    private var lastMarker: String?
    private var stalledTicks: UInt64 = 0
    private var ticks: UInt64 = 0
    private var servedSync: [PublicKey: (height: UInt64, atMs: Int64)] = [:]
    private var evidenceSeen: Set<Hash> = []
    /// Decided blocks received from peers for heights we have not reached (block sync).
    private var syncBuffer: [UInt64: (ProposedValue, Commit)] = [:]
    static let syncBatch: UInt64 = 32
    static let syncWindow: UInt64 = 64
    public private(set) var evidence: [Evidence] = []
    public private(set) var haltReason: String?
    private let gossip: AsyncStream<[SignedTransaction]>.Continuation
    private let gossipStream: AsyncStream<[SignedTransaction]>
    static let inboxLimit = 20_000

    /// `signer` is the validator key (nil for an observer, which follows the chain without voting).
    public init(node: Node, network: any PeerNetwork, signer: PrivateKey?, timeouts: TimeoutSchedule = TimeoutSchedule(), tickMs: UInt64 = 200) throws {
        self.node = node
        self.network = network
        self.signer = signer
        publicKey = node.validatorKey.publicKey
        configuration = ConsensusConfiguration(chainID: node.genesis.chainId, timeouts: timeouts, valueID: { ProposedBlock.id(ofEncoded: $0) })
        commitWaitMs = node.parameters.blockIntervalMs
        self.tickMs = tickMs
        var restored: PersistedConsensusState?
        if let bytes = try node.store.loadConsensusState() { restored = try PersistedConsensusState(canonicalBytes: bytes) }
        core = TendermintCore(configuration: configuration, signer: signer, restoring: restored)
        // Not dropping: admissions are bounded by the mempool, and a dropped batch would leave
        // acknowledged transactions with this node alone (re-gossip in `tick` is the backstop).
        (gossipStream, gossip) = AsyncStream.makeStream(of: [SignedTransaction].self, bufferingPolicy: .unbounded)
    }

    /// Starts consensus at the height after the latest committed block.
    public func start() async throws {
        guard !running else { return }
        running = true
        let continuation = gossip
        await node.setAdmissionObserver { txs in continuation.yield(txs.map(\.signed)) }
        let stream = gossipStream
        let network = self.network
        let me = publicKey
        tasks.append(Task {
            for await txs in stream {
                await network.broadcast(PeerMessage.transactions(txs).canonicalBytes, from: me)
            }
        })
        tasks.append(Task { [tickMs] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: tickMs * 1_000_000)
                await self.tick()
            }
        })
        try await startHeight(await node.latestHeader.height + 1)
    }

    public func stop() async {
        running = false
        for t in tasks { t.cancel() }
        tasks = []
        gossip.finish()
        await node.setAdmissionObserver(nil)
    }

    public var height: UInt64 { core.height }
    public var round: UInt32 { core.round }

    /// What an operator wants to see (GET /v1/consensus): where consensus stands on this node.
    public func info() async -> ConsensusInfo {
        let validators = await node.currentValidators()
        return ConsensusInfo(mode: "tendermint", height: core.height, round: core.round, step: core.step.description,
                             role: signer.map { k in validators.contains { $0.publicKey == k.publicKey } ? "validator" : "observer" } ?? "observer",
                             nodeKey: publicKey, validators: validators, lockedRound: core.lockedRound,
                             evidence: evidence.map(\.id), haltReason: haltReason, peers: [])
    }

    private func startHeight(_ h: UInt64) async throws {
        let set = try ValidatorSet(await node.currentValidators())
        await submit(.startHeight(h, validators: set))
    }

    // MARK: inbound

    /// Handles one frame from `peer`. Returns false if the frame is garbage or carries invalid
    /// signatures, so the network can disconnect and ban the peer.
    @discardableResult
    public func receive(_ bytes: [UInt8], from peer: PublicKey) async -> Bool {
        guard running else { return true }
        let message: PeerMessage
        do { message = try PeerMessage(canonicalBytes: bytes, maxLength: 64 << 20) } catch { return false }
        switch message {
        case .consensus(let m):
            guard inbox.count < Self.inboxLimit else { return true }  // overloaded: gossip re-sends
            await submit(.message(m))
        case .transactions(let txs):
            let results = await node.submit(batch: txs, relay: false)
            if results.contains(where: { if case .failure(.badSignature) = $0 { return true } else { return false } }) { return false }
        case .status(let h):
            await serveSync(height: h, to: peer)
        case .decision(let block, let commit):
            guard let id = ProposedBlock.id(ofEncoded: block), id == commit.blockHash else { return false }
            guard commit.height >= core.height, commit.height < core.height + Self.syncWindow else { return true }
            syncBuffer[commit.height] = (ProposedValue(id: id, bytes: block), commit)
            let before = await node.latestHeader.height
            await drainSync()
            // Catching up: once this batch is used up, ask the same peer for more at once.
            if syncBuffer.isEmpty, await node.latestHeader.height > before {
                await network.send(PeerMessage.status(height: core.height).canonicalBytes, to: peer, from: publicKey)
            }
        case .evidence(let e):
            guard !evidenceSeen.contains(e.id) else { return true }
            guard (try? e.verify(chainID: configuration.chainID, validators: await node.currentValidators())) != nil else { return false }
            record(e)
        case .chainBlock, .chainSyncRequest, .chainSyncBlock:
            return false  // longest-chain messages on a BFT chain: a peer of another kind of chain
        }
        return true
    }

    /// Answers "I am at height h" with the decided blocks h, h+1, … (up to `syncBatch`) that this
    /// node holds, each with its commit certificate.
    private func serveSync(height h: UInt64, to peer: PublicKey) async {
        let latest = await node.latestHeader.height
        guard h >= 1, h <= latest else { return }
        let now = Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000)
        if let last = servedSync[peer], last.height == h, now - last.atMs < 100 { return }
        servedSync[peer] = (h, now)
        for height in h...min(latest, h + Self.syncBatch - 1) {
            guard let (block, commit) = try? node.decidedBlock(height: height) else { return }
            await network.send(PeerMessage.decision(block: block, commit: commit).canonicalBytes, to: peer, from: publicKey)
        }
    }

    /// Feeds buffered decided blocks for our current height to the core, which checks each
    /// commit certificate against the validator set before deciding it.
    private func drainSync() async {
        for h in syncBuffer.keys where h < core.height { syncBuffer.removeValue(forKey: h) }
        guard core.step != .commit, let (value, commit) = syncBuffer.removeValue(forKey: core.height) else { return }
        await submit(.decisionReceived(value: value, commit: commit))
    }

    private func record(_ e: Evidence) {
        guard evidenceSeen.insert(e.id).inserted else { return }
        evidence.append(e)
        FileHandle.standardError.write(Data("[iomtchain] evidence: \(e)\n".utf8))
        let network = self.network, me = publicKey, bytes = PeerMessage.evidence(e).canonicalBytes
        Task { await network.broadcast(bytes, from: me) }
        if let signer { Task { await self.report(e, signer: signer) } }
    }

    /// Puts the evidence on-chain in a `record-evidence` transaction from this validator's node
    /// account (genesis gives every validator one). Several validators may race to report the
    /// same evidence; the chain records it once and refuses the rest (`already-exists`).
    private func report(_ e: Evidence, signer: PrivateKey) async {
        let address = signer.publicKey.address
        guard let nonce = await node.nextNonce(address) else { return }  // no account: gossip only
        let tx = Transaction(chainID: configuration.chainID, sender: address, signerKey: signer.publicKey, nonce: nonce,
                             payload: .recordEvidence(RecordEvidence(evidence: e.canonicalBytes))).signed(with: signer)
        do { _ = try await node.submit(tx) } catch {
            FileHandle.standardError.write(Data("[iomtchain] evidence \(e.id) not reported: \(error)\n".utf8))
        }
    }

    // MARK: the core

    private func submit(_ event: ConsensusEvent) async {
        inbox.append(event)
        guard !pumping else { return }
        pumping = true
        defer { pumping = false }
        while running, haltReason == nil, !inbox.isEmpty {
            let e = inbox.removeFirst()
            for action in core.step(e) {
                await perform(action)
                if haltReason != nil { return }
            }
            if inbox.isEmpty, core.step != .commit, let (value, commit) = syncBuffer.removeValue(forKey: core.height) {
                inbox.append(.decisionReceived(value: value, commit: commit))
            }
        }
    }

    private func perform(_ action: ConsensusAction) async {
        switch action {
        case .persist(let state):
            let store = node.store
            let bytes = state.canonicalBytes
            if case .failure(let error) = await Node.offPool(Node.pendingQueue, { try store.saveConsensusState(bytes) }) {
                halt("consensus state could not be saved: \(error)")
            }
        case .broadcast(let m):
            await network.broadcast(PeerMessage.consensus(m).canonicalBytes, from: publicKey)
        case .scheduleTimeout(let t, let ms):
            tasks.removeAll { $0.isCancelled }
            Task {
                try? await Task.sleep(nanoseconds: ms * 1_000_000)
                await self.submit(.timeout(t))
            }
        case .requestProposal(let h, let r):
            do {
                let (id, bytes) = try await node.proposeBlock(height: h)
                inbox.append(.proposalValue(height: h, round: r, value: ProposedValue(id: id, bytes: bytes)))
            } catch {
                FileHandle.standardError.write(Data("[iomtchain] no proposal for height \(h): \(error)\n".utf8))
            }
        case .validate(let h, let v):
            let verdict = await node.validateBlock(v.bytes, height: h)
            if case .failure(let why) = verdict {
                FileHandle.standardError.write(Data("[iomtchain] rejecting proposal \(v.id) at height \(h): \(why)\n".utf8))
            }
            inbox.append(.validity(height: h, valueID: v.id, isValid: (try? verdict.get()) != nil))
        case .decide(let h, _, let v, let c):
            do { try await node.commitDecided(v.bytes, commit: c) } catch {
                halt("\(error)")
                return
            }
            if syncBuffer[h + 1] != nil {
                // Behind: go straight on to the next block sync brought, without the commit pause,
                // so a lagging node catches up at disk speed.
                do { try await startHeight(h + 1) } catch { halt("validator set: \(error)") }
                return
            }
            let wait = commitWaitMs
            Task {
                try? await Task.sleep(nanoseconds: wait * 1_000_000)
                try? await self.startHeight(h + 1)
            }
        case .evidence(let e):
            record(e)
        }
    }

    private func halt(_ why: String) {
        guard haltReason == nil else { return }
        haltReason = why
        FileHandle.standardError.write(Data("[iomtchain] consensus halted: \(why)\n".utf8))
    }

    /// Every `tickMs`: tell peers our height (they answer with blocks we lack) and, if nothing
    /// moved since the last tick, re-send what we signed at this height and what we hold for the
    /// current and valid rounds (lost messages must not stall a round forever).
    private func tick() async {
        guard running, haltReason == nil, core.height > 0 else { return }
        let marker = "\(core.height)/\(core.round)/\(core.step)"
        if marker == lastMarker {
            // No progress: re-send, backing off (1, 2, 4, 8, then every 16 ticks). Every node
            // re-sends its own messages and the votes it holds; a proposal (up to a whole block)
            // only its proposer does — re-sending every block from every node on every tick
            // overran the peers' queues under load, and the disconnects kept the round from ending.
            stalledTicks += 1
            if stalledTicks & (stalledTicks - 1) == 0 || stalledTicks % 16 == 0 {
                var rounds = [core.round]
                if let vr = core.validRound, vr != core.round { rounds.append(vr) }
                var resend = core.ownMessages
                for r in rounds {
                    resend += core.messages(inRound: r).filter { m in
                        guard m.signer != publicKey else { return false }
                        if case .proposal = m { return false }
                        return true
                    }
                }
                for m in resend { await network.broadcast(PeerMessage.consensus(m).canonicalBytes, from: publicKey) }
            }
        } else {
            stalledTicks = 0
        }
        lastMarker = marker
        await network.broadcast(PeerMessage.status(height: core.height).canonicalBytes, from: publicKey)
        // Once a second, what has waited here for 2 s or more goes out again (peers drop what they
        // hold already without checking its signature again).
        ticks += 1
        if ticks % max(1, 1_000 / max(1, tickMs)) == 0 {
            let waiting = await node.waitingTransactions(ageMs: 2_000, limit: 2_000)
            for start in stride(from: 0, to: waiting.count, by: 500) {
                await network.broadcast(PeerMessage.transactions(Array(waiting[start..<min(waiting.count, start + 500)])).canonicalBytes, from: publicKey)
            }
        }
    }
}

/// Connects nodes inside one process: every message is encoded, queued per receiver in order, and
/// decoded by the receiving driver, as over a real network. Links can be cut and restored.
public actor LoopbackNetwork: PeerNetwork {
    private var endpoints: [PublicKey: AsyncStream<(PublicKey, [UInt8])>.Continuation] = [:]
    private var isolated: Set<PublicKey> = []
    public private(set) var refusedFrames = 0

    public init() {}

    /// Connects a driver: frames addressed to its key are delivered to it in order.
    public func attach(_ driver: ConsensusDriver) {
        let (stream, continuation) = AsyncStream.makeStream(of: (PublicKey, [UInt8]).self, bufferingPolicy: .bufferingNewest(50_000))
        endpoints[driver.publicKey]?.finish()
        endpoints[driver.publicKey] = continuation
        Task {
            for await (from, bytes) in stream {
                if await !driver.receive(bytes, from: from) { self.countRefused() }
            }
        }
    }

    public func detach(_ key: PublicKey) {
        endpoints.removeValue(forKey: key)?.finish()
    }

    /// Cuts (or restores) every link of `key`: a partition of one node.
    public func isolate(_ key: PublicKey, _ on: Bool = true) {
        if on { isolated.insert(key) } else { isolated.remove(key) }
    }

    private func countRefused() { refusedFrames += 1 }

    private func linked(_ a: PublicKey, _ b: PublicKey) -> Bool { !isolated.contains(a) && !isolated.contains(b) }

    public func broadcast(_ bytes: [UInt8], from: PublicKey) async {
        for (key, endpoint) in endpoints where key != from && linked(from, key) { endpoint.yield((from, bytes)) }
    }

    public func send(_ bytes: [UInt8], to peer: PublicKey, from: PublicKey) async {
        guard linked(from, peer) else { return }
        endpoints[peer]?.yield((from, bytes))
    }
}

/// Consensus as seen by one node (GET /v1/consensus).
public struct ConsensusInfo: Codable, Sendable {
    public var mode: String
    /// The height being decided (the latest committed block + 1).
    public var height: UInt64
    public var round: UInt32
    public var step: String
    /// `validator` (in the current set, voting) or `observer`.
    public var role: String
    public var nodeKey: PublicKey
    /// The set that signs `height`.
    public var validators: [Validator]
    public var lockedRound: UInt32?
    /// Ids of equivocation evidence this node detected or received.
    public var evidence: [Hash]
    /// Set when this node stopped deciding (for example a decided block did not apply here).
    public var haltReason: String?
    /// Node keys of the connected peers.
    public var peers: [PublicKey]
    /// Longest-chain modes (pow, poa): the fork choice's view.
    public var chain: ChainInfo? = nil
}

/// Where a proof-of-work or proof-of-authority node stands (GET /v1/consensus, `chain`).
public struct ChainInfo: Codable, Sendable {
    /// The last final block (durable in the ledger).
    public var finalHeight: UInt64
    /// The tip the fork choice prefers, and its hash.
    public var bestHeight: UInt64
    public var bestHash: Hash
    /// Blocks on top of a block before it is final.
    public var confirmationDepth: UInt32
    /// Unfinalised blocks held (on every fork).
    public var unfinalisedBlocks: Int
    /// Times the best tip moved to a chain that did not extend it.
    public var reorganisations: Int
    /// Blocks this node mined or sealed.
    public var blocksProduced: Int
    /// Blocks received that were invalid (bad work, seal or execution).
    public var invalidBlocks: Int
    /// Peers that sent a block conflicting with one of this node's final blocks: the consortium
    /// has split (probabilistic finality failed); an operator must act.
    public var conflictingPeers: [PublicKey]
    /// The compact target of the next block (pow).
    public var difficulty: UInt32?
    /// Hashes this node computed per second, over its life (pow).
    public var hashesPerSecond: Double?
}
