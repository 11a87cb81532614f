import IoMTCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The consortium's peer-to-peer node (docs/network.md): listens, dials its persistent peers,
/// authenticates every connection with the node keys, and carries typed envelopes over encrypted
/// frames. One connection per peer key.
///
/// ```swift
/// let p2p = P2PNode(configuration: config)
/// try await p2p.start()
/// Task { for await message in p2p.inbound { handle(message.peer, message.envelope) } }
/// p2p.broadcast(Envelope(kind: .consensus, payload: bytes))
/// await p2p.stop()
/// ```
///
/// Single use: `start()` once, `stop()` once. Thread-safe.
public final class P2PNode: Sendable {
    public let configuration: P2PConfiguration
    /// Messages from authenticated peers, in order per peer. Single consumer; finishes on `stop()`.
    public let inbound: InboundMessages
    let mailbox: InboundMailbox
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())

    private enum Lifecycle { case idle, running, stopped }

    private struct State {
        var lifecycle = Lifecycle.idle
        var server: (any Channel)?
        var boundPort: Int?
        var peers: [PublicKey: PeerConnection] = [:]
        var channels: [ObjectIdentifier: any Channel] = [:]
        var keyBans: [PublicKey: NIODeadline] = [:]
        var addressBans: [String: NIODeadline] = [:]
        var metrics = P2PMetrics()
        var dialers: [Task<Void, Never>] = []
    }

    /// Connections not yet authenticated, at most (bounds handshake work and memory).
    private var maxPendingConnections: Int { configuration.maxPeers + 64 }
    /// Ban entries kept at most per map (the soonest to expire are forgotten first beyond it).
    static let maxBanEntries = 10_000

    public init(configuration: P2PConfiguration, eventLoopGroup: (any EventLoopGroup)? = nil) {
        precondition(configuration.maxFrameBytes >= 1 && configuration.maxFrameBytes <= Int(UInt32.max) - 64, "maxFrameBytes out of range")
        precondition(configuration.maxPeers > 0 && configuration.outboundGossipLimit > 0 && configuration.outboundReliableLimit > 0, "limits must be positive")
        self.configuration = configuration
        self.group = eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        let (mailbox, stream) = InboundMailbox.make(messageLimit: configuration.inboundMessageLimit, byteLimit: configuration.inboundByteLimit)
        self.mailbox = mailbox
        self.inbound = InboundMessages(stream: stream, mailbox: mailbox)
    }

    // MARK: lifecycle

    /// Binds the listener and starts dialling the persistent peers.
    public func start() async throws {
        let starting = state.withLockedValue { s -> Bool in
            guard s.lifecycle == .idle else { return false }
            s.lifecycle = .running
            return true
        }
        precondition(starting, "P2PNode.start() called twice")
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
            .childChannelInitializer { channel in
                self.initialize(channel, outbound: false, expectedKey: nil, authenticated: nil)
            }
            .bind(host: configuration.listenHost, port: configuration.listenPort).get()
        let port = server.localAddress?.port ?? configuration.listenPort
        state.withLockedValue { s in
            s.server = server
            s.boundPort = port
        }
        configuration.log(.listening(host: configuration.listenHost, port: port))
        let dialers = configuration.persistentPeers.map { peer in Task { await self.dialLoop(peer) } }
        state.withLockedValue { $0.dialers = dialers }
    }

    /// Stops dialling, closes the listener and every connection, and finishes `inbound`.
    public func stop() async {
        let (server, channels, dialers) = state.withLockedValue { s -> ((any Channel)?, [any Channel], [Task<Void, Never>]) in
            s.lifecycle = .stopped
            defer {
                s.server = nil
                s.dialers = []
            }
            return (s.server, Array(s.channels.values), s.dialers)
        }
        for dialer in dialers { dialer.cancel() }
        try? await server?.close().get()
        for channel in channels { try? await channel.close().get() }
        for dialer in dialers { await dialer.value }
        mailbox.finish()
    }

    /// The port the listener is bound to (after `start()`).
    public var boundPort: Int? { state.withLockedValue { $0.boundPort } }

    private var isRunning: Bool { state.withLockedValue { $0.lifecycle == .running } }

    // MARK: sending

    /// Queues `envelope` for `peer`. Droppable kinds (`configuration.droppableKinds`) may push out
    /// the oldest queued gossip; a reliable message is never dropped — if the peer's reliable queue
    /// is full, the peer is disconnected as too slow.
    @discardableResult
    public func send(_ envelope: Envelope, to peer: PublicKey) -> SendOutcome {
        guard let connection = state.withLockedValue({ $0.peers[peer] }) else { return .notConnected }
        return enqueue(envelope, on: connection)
    }

    /// Queues `envelope` for every connected peer; returns how many peers it was queued for.
    @discardableResult
    public func broadcast(_ envelope: Envelope) -> Int {
        let connections = state.withLockedValue { Array($0.peers.values) }
        var queued = 0
        for connection in connections {
            switch enqueue(envelope, on: connection) {
            case .queued, .queuedDroppingOldestGossip: queued += 1
            case .notConnected, .disconnectedSlowPeer: break
            }
        }
        return queued
    }

    private func enqueue(_ envelope: Envelope, on connection: PeerConnection) -> SendOutcome {
        switch connection.enqueue(envelope, droppable: configuration.droppableKinds.contains(envelope.kind), limits: configuration) {
        case .queued:
            return .queued
        case .droppedOldestGossip:
            state.withLockedValue { $0.metrics.gossipDropped += 1 }
            return .queuedDroppingOldestGossip
        case .closed:
            return .notConnected
        case .overflow:
            unregister(connection)
            recordRefusal(address: connection.address, key: connection.key, reason: .slowPeer, detail: "outbound queue overflowed", ban: false)
            connection.channel.close(promise: nil)
            return .disconnectedSlowPeer
        }
    }

    // MARK: peers

    /// Node keys of the peers connected and authenticated now.
    public var connectedPeers: Set<PublicKey> { state.withLockedValue { Set($0.peers.keys) } }

    /// Messages queued for `peer` and not yet handed to its socket.
    public func queuedMessageCount(to peer: PublicKey) -> Int {
        state.withLockedValue { $0.peers[peer] }?.queuedCount ?? 0
    }

    /// The application caught `peer` misbehaving (invalid signatures, undecodable messages):
    /// disconnect it and ban its key and address for `banDuration`.
    public func misbehaved(peer: PublicKey, reason: String) {
        let connection = state.withLockedValue { $0.peers[peer] }
        if let connection { unregister(connection) }
        recordRefusal(address: connection?.address ?? "unknown", key: peer, reason: .misbehaved, detail: reason, ban: true, banAddress: connection != nil)
        connection?.channel.close(promise: nil)
    }

    public var metrics: P2PMetrics { state.withLockedValue { $0.metrics } }

    public func isBanned(key: PublicKey) -> Bool {
        state.withLockedValue { s in s.keyBans[key].map { $0 > .now() } ?? false }
    }

    public func isBanned(address: String) -> Bool {
        state.withLockedValue { s in s.addressBans[address].map { $0 > .now() } ?? false }
    }

    /// Test hook: flips one ciphertext bit of the next frame sent to `peer` (the peer must then
    /// refuse it as `badFrame`). False when not connected.
    @_spi(Testing)
    public func corruptNextFrame(to peer: PublicKey) -> Bool {
        guard let connection = state.withLockedValue({ $0.peers[peer] }) else { return false }
        connection.corruptNextFrame.withLockedValue { $0 = true }
        return true
    }

    // MARK: connections (called by PeerChannelHandler)

    private func initialize(_ channel: any Channel, outbound: Bool, expectedKey: PublicKey?, authenticated: EventLoopPromise<PublicKey>?) -> EventLoopFuture<Void> {
        let admitted = state.withLockedValue { s -> Bool in
            guard s.lifecycle == .running, s.channels.count < maxPendingConnections + s.peers.count else { return false }
            s.channels[ObjectIdentifier(channel)] = channel
            return true
        }
        guard admitted else {
            authenticated?.fail(ConnectionRefused(reason: .tooManyPeers))
            recordRefusal(address: channel.remoteAddress?.ipAddress ?? "unknown", key: nil, reason: .tooManyPeers, detail: "too many open connections", ban: false)
            return channel.close()
        }
        channel.closeFuture.whenComplete { _ in
            self.state.withLockedValue { _ = $0.channels.removeValue(forKey: ObjectIdentifier(channel)) }
        }
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(
                PeerChannelHandler(node: self, outbound: outbound, expectedKey: expectedKey, authenticated: authenticated))
        }
    }

    struct Refusal: Error { var reason: RefusalReason }

    /// Makes an authenticated connection the one for its key. De-duplication: of two connections
    /// with one peer, both sides keep the one dialled by the lower node key (canonical bytes);
    /// two dialled by the same side: the newer one (the older is presumed dead).
    func register(key: PublicKey, channel: any Channel, outbound: Bool, address: String) -> Result<PeerConnection, Refusal> {
        let connection = PeerConnection(key: key, channel: channel, outbound: outbound, address: address)
        let own = configuration.nodeKey.publicKey
        let result = state.withLockedValue { s -> Result<PeerConnection?, Refusal> in
            guard s.lifecycle == .running else { return .failure(Refusal(reason: .tooManyPeers)) }
            if let banned = s.keyBans[key], banned > .now() { return .failure(Refusal(reason: .banned)) }
            if let existing = s.peers[key] {
                let dialler = { (c: PeerConnection) in c.outbound ? own : key }
                let keepNew: Bool
                if dialler(existing) == dialler(connection) {
                    keepNew = true
                } else {
                    keepNew = dialler(connection).canonicalBytes.lexicographicallyPrecedes(dialler(existing).canonicalBytes)
                }
                guard keepNew else { return .failure(Refusal(reason: .duplicateConnection)) }
                s.peers[key] = connection
                s.metrics.refused[.duplicateConnection, default: 0] += 1
                return .success(existing)
            }
            guard s.peers.count < configuration.maxPeers else { return .failure(Refusal(reason: .tooManyPeers)) }
            s.peers[key] = connection
            if outbound { s.metrics.connectionsDialled += 1 } else { s.metrics.connectionsAccepted += 1 }
            return .success(nil)
        }
        switch result {
        case .failure(let refusal):
            return .failure(refusal)
        case .success(let replaced):
            if let replaced {
                connection.adopt(replaced.takeQueued(), limits: configuration)
                replaced.channel.close(promise: nil)
            }
            configuration.log(.connected(peer: key, address: address, outbound: outbound))
            return .success(connection)
        }
    }

    func unregister(_ connection: PeerConnection) {
        let removed = state.withLockedValue { s -> Bool in
            guard let current = s.peers[connection.key], current === connection else { return false }
            s.peers[connection.key] = nil
            return true
        }
        connection.markClosed()
        if removed { configuration.log(.disconnected(peer: connection.key, address: connection.address)) }
    }

    func recordRefusal(address: String, key: PublicKey?, reason: RefusalReason, detail: String, ban: Bool, banAddress: Bool = true) {
        let until = NIODeadline.now() + configuration.banDuration.timeAmount
        state.withLockedValue { s in
            s.metrics.refused[reason, default: 0] += 1
            guard ban else { return }
            s.metrics.bans += 1
            if banAddress, address != "unknown" { Self.insertBan(&s.addressBans, address, until) }
            if let key { Self.insertBan(&s.keyBans, key, until) }
        }
        configuration.log(.refused(address: address, peer: key, reason: reason, detail: detail))
        if ban { configuration.log(.banned(address: banAddress ? address : nil, peer: key, reason: reason)) }
    }

    private static func insertBan<K: Hashable>(_ bans: inout [K: NIODeadline], _ key: K, _ until: NIODeadline) {
        if bans.count >= maxBanEntries {
            let now = NIODeadline.now()
            bans = bans.filter { $0.value > now }
            while bans.count >= maxBanEntries, let soonest = bans.min(by: { $0.value < $1.value }) { bans[soonest.key] = nil }
        }
        bans[key] = until
    }

    func recordReceived(bytes: Int) {
        state.withLockedValue { $0.metrics.bytesReceived += UInt64(bytes) }
    }

    func recordFrameReceived() {
        state.withLockedValue { $0.metrics.framesReceived += 1 }
    }

    func recordSent(bytes: Int, frame: Bool = true) {
        state.withLockedValue { s in
            s.metrics.bytesSent += UInt64(bytes)
            if frame { s.metrics.framesSent += 1 }
        }
    }

    private func connection(for key: PublicKey) -> PeerConnection? { state.withLockedValue { $0.peers[key] } }

    // MARK: dialling

    /// Keeps one persistent peer connected: dial, wait for the connection to end, back off
    /// (doubling from `redialInitialDelay` up to `redialMaxDelay`; reset after a successful handshake).
    private func dialLoop(_ peer: PeerAddress) async {
        var delay = configuration.redialInitialDelay
        var knownKey = peer.expectedKey
        while isRunning, !Task.isCancelled {
            if let key = knownKey, let existing = connection(for: key) {
                // Connected (perhaps by the peer's own dial): wait until that connection ends.
                try? await existing.channel.closeFuture.get()
                delay = configuration.redialInitialDelay
            } else if await dialOnce(peer, knownKey: &knownKey) {
                delay = configuration.redialInitialDelay
            }
            guard isRunning, !Task.isCancelled else { return }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, configuration.redialMaxDelay)
        }
    }

    /// One connection attempt, kept until it closes. True when its handshake succeeded.
    private func dialOnce(_ peer: PeerAddress, knownKey: inout PublicKey?) async -> Bool {
        let authenticated = group.next().makePromise(of: PublicKey.self)
        var bootstrap = ClientBootstrap(group: group)
            .connectTimeout(configuration.connectTimeout.timeAmount)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                self.initialize(channel, outbound: true, expectedKey: peer.expectedKey, authenticated: authenticated)
            }
        if let source = configuration.dialSourceHost, let address = try? SocketAddress(ipAddress: source, port: 0) {
            bootstrap = bootstrap.bind(to: address)
        }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: peer.host, port: peer.port).get()
        } catch {
            authenticated.fail(error)
            state.withLockedValue { $0.metrics.dialFailures += 1 }
            configuration.log(.dialFailed(peer: peer, error: "\(error)"))
            return false
        }
        let key = try? await authenticated.futureResult.get()
        if let key { knownKey = key }
        try? await channel.closeFuture.get()
        authenticated.fail(ChannelError.ioOnClosedChannel)  // no-op once completed
        return key != nil
    }
}
