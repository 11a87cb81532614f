import Foundation
import IoMTConsensus
import IoMTContracts
import IoMTCore
import IoMTNetwork
import IoMTNode
import IoMTStore

/// `PeerNetwork` over the authenticated, encrypted peer-to-peer layer (docs/network.md).
/// Consensus messages and evidence travel as reliable frames, transactions as droppable gossip,
/// block sync as requests and responses.
final class P2PPeerNetwork: PeerNetwork {
    let p2p: P2PNode

    init(_ p2p: P2PNode) { self.p2p = p2p }

    static func kind(of bytes: [UInt8]) -> EnvelopeKind {
        switch bytes.first {
        case 2: return .transactionGossip
        case 3, 7: return .blockSyncRequest
        case 4, 8: return .blockSyncResponse
        default: return .consensus  // consensus messages (1), evidence (5), new chain blocks (6)
        }
    }

    func broadcast(_ bytes: [UInt8], from: PublicKey) async {
        p2p.broadcast(Envelope(kind: Self.kind(of: bytes), payload: bytes))
    }

    func send(_ bytes: [UInt8], to peer: PublicKey, from: PublicKey) async {
        p2p.send(Envelope(kind: Self.kind(of: bytes), payload: bytes), to: peer)
    }
}

/// Blob messages on the peer-to-peer network, in their own envelope kind (reliable: a replica
/// request or its answer is never dropped silently).
struct P2PBlobPeers: BlobPeers {
    static let kind = EnvelopeKind(rawValue: 0x10)
    let p2p: P2PNode

    func connected() -> [PublicKey] { Array(p2p.connectedPeers) }
    func send(_ message: BlobMessage, to peer: PublicKey) async {
        p2p.send(Envelope(kind: Self.kind, payload: message.canonicalBytes), to: peer)
    }
}

/// Who may connect: validators of the latest committed state and active accounts with the `node`
/// role (observers are admitted by registering their key on-chain). Read from a snapshot of the
/// committed state that a background task refreshes, because the network asks synchronously.
final class Admission: @unchecked Sendable {
    private let lock = NSLock()
    private var state: AuthenticatedState

    init(_ state: AuthenticatedState) { self.state = state }

    func update(_ s: AuthenticatedState) { lock.withLock { state = s } }

    func admits(_ key: PublicKey) -> Bool {
        let overlay = StateOverlay(base: lock.withLock { state })
        if let validators = try? overlay.read([Validator].self, StateKeys.validators), validators.contains(where: { $0.publicKey == key }) { return true }
        guard let account = try? overlay.read(Account.self, StateKeys.account(key.address)) else { return false }
        return account.role == .node && account.status == .active && account.publicKey == key
    }
}

/// Parses `host:port` or `host:port@ed25519:<hex>` (the peer's expected node key).
func parsePeer(_ s: String) throws -> PeerAddress {
    let (addr, key) = s.contains("@") ? (String(s.split(separator: "@", maxSplits: 1)[0]), String(s.split(separator: "@", maxSplits: 1)[1])) : (s, nil)
    let parts = addr.split(separator: ":")
    guard parts.count == 2, let port = Int(parts[1]) else { throw CLIError("--peer must be host:port[@key], got \(s)") }
    var expected: PublicKey?
    if let key {
        do { expected = try PublicKey(text: key) } catch { throw CLIError("--peer \(s): \(error)") }
    }
    return PeerAddress(host: String(parts[0]), port: port, expectedKey: expected)
}

/// What runs consensus for a consortium node: the Tendermint driver (BFT) or the longest-chain
/// driver (proof of work, proof of authority), as the genesis chooses.
protocol ConsortiumEngine: Sendable {
    func start() async throws
    func stop() async
    func receive(_ bytes: [UInt8], from peer: PublicKey) async -> Bool
    func info() async -> ConsensusInfo
}

extension ConsensusDriver: ConsortiumEngine {}
extension ChainDriver: ConsortiumEngine {}

/// Timeouts of a node process. A full block (10,000 transactions, about 2 MB) must be built,
/// sent, decoded and have every signature checked by the others inside `timeout_propose`: on this
/// class of machine (2 cores shared by four validators and their clients) that takes about a
/// second, so the propose timeout starts at 1.5 s (CometBFT's default is 3 s). The core's own
/// default (300 ms) stays for the in-process cluster and the simulator.
let processTimeouts = TimeoutSchedule(proposeBaseMs: 1_500, proposeDeltaMs: 500, prevoteBaseMs: 500, prevoteDeltaMs: 250, precommitBaseMs: 500, precommitDeltaMs: 250)

/// Runs the node as a consortium member: the peer-to-peer network and the consensus driver.
/// Returns a stop function and what GET /v1/consensus serves.
func startConsortium(node: Node, nodeKey: PrivateKey, observer: Bool, listen: String, peers: [PeerAddress], blobStore: BlobStore, blobReplicas: Int, authorise: @escaping BlobExchange.Authorise) async throws
    -> (stop: @Sendable () async -> Void, info: @Sendable () async -> ConsensusInfo, blobs: BlobExchange) {
    let admission = Admission(await node.committedState)
    var config = P2PConfiguration(chainID: node.genesis.chainId, nodeKey: nodeKey, admission: { admission.admits($0) })
    let parts = listen.split(separator: ":")
    guard parts.count == 2, let port = Int(parts[1]) else { throw CLIError("--p2p must be host:port") }
    config.listenHost = String(parts[0])
    config.listenPort = port
    config.persistentPeers = peers
    config.log = { event in log("\(event)") }
    config.acceptedKinds.insert(P2PBlobPeers.kind)
    let p2p = P2PNode(configuration: config)
    try await p2p.start()
    log("p2p listening on \(config.listenHost):\(p2p.boundPort ?? port) as \(nodeKey.publicKey)")

    let network = P2PPeerNetwork(p2p)
    let signer = observer ? nil : nodeKey
    let engine: any ConsortiumEngine = node.genesis.mode.kind == .bft
        ? try ConsensusDriver(node: node, network: network, signer: signer, timeouts: processTimeouts)
        : await ChainDriver(node: node, network: network, signer: signer)
    let blobs = BlobExchange(store: blobStore, peers: P2PBlobPeers(p2p: p2p), replicationFactor: blobReplicas, maxBlobBytes: config.maxFrameBytes - 1_024, authorise: authorise)
    // Blob frames go to one worker of their own, off the consensus path (a blob being written must
    // not hold up votes), through a bounded queue: beyond 64 waiting frames new ones are dropped
    // (a fetch or replica request then times out and is retried), never piled up in memory.
    let (blobFrames, blobSink) = AsyncStream.makeStream(of: InboundMessage.self, bufferingPolicy: .bufferingOldest(64))
    let blobWorker = Task {
        for await message in blobFrames {
            if await !blobs.receive(message.envelope.payload, from: message.peer) {
                p2p.misbehaved(peer: message.peer, reason: "invalid blob message")
            }
        }
    }
    let inbound = Task {
        for await message in p2p.inbound {
            if message.envelope.kind == P2PBlobPeers.kind {
                if case .dropped = blobSink.yield(message) { log("blob frame from \(message.peer) dropped: blob queue full") }
                continue
            }
            if await !engine.receive(message.envelope.payload, from: message.peer) {
                p2p.misbehaved(peer: message.peer, reason: "invalid \(message.envelope.kind) message")
            }
        }
    }
    let refresher = Task {
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: 500_000_000)
            admission.update(await node.committedState)
        }
    }
    try await engine.start()
    let mode = node.genesis.mode.kind
    log(observer ? "following the consortium as an observer (\(mode))" : "\(mode == .bft ? "validating" : mode == .pow ? "mining" : "sealing") with the consortium (\(mode))")
    let stop: @Sendable () async -> Void = {
        inbound.cancel()
        blobSink.finish()
        blobWorker.cancel()
        refresher.cancel()
        await engine.stop()
        await p2p.stop()
    }
    let info: @Sendable () async -> ConsensusInfo = {
        var i = await engine.info()
        i.peers = p2p.connectedPeers.sorted { $0.text < $1.text }
        return i
    }
    return (stop, info, blobs)
}
