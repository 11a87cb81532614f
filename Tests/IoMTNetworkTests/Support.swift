import Foundation
import IoMTCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import IoMTNetwork

let testChain = "iomt-net-test"

/// Polls `condition` every 20 ms until true or `timeout` passes; returns its last value.
func eventually(_ timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

/// Collects log events of one node.
final class EventLog: Sendable {
    private let events = NIOLockedValueBox<[P2PEvent]>([])
    func append(_ e: P2PEvent) { events.withLockedValue { if $0.count < 10_000 { $0.append(e) } } }
    var all: [P2PEvent] { events.withLockedValue { $0 } }

    func refusals(_ reason: RefusalReason) -> [P2PEvent] {
        all.filter { if case .refused(_, _, let r, _) = $0 { return r == reason } else { return false } }
    }
}

/// Consumes a node's inbound stream into memory.
final class Inbox: Sendable {
    private let messages = NIOLockedValueBox<[InboundMessage]>([])
    private let task: NIOLockedValueBox<Task<Void, Never>?> = NIOLockedValueBox(nil)

    init(_ node: P2PNode) {
        let t = Task { [messages] in
            for await m in node.inbound { messages.withLockedValue { $0.append(m) } }
        }
        task.withLockedValue { $0 = t }
    }

    var all: [InboundMessage] { messages.withLockedValue { $0 } }
    func from(_ key: PublicKey) -> [Envelope] { all.filter { $0.peer == key }.map(\.envelope) }
}

func makeConfig(
    _ key: PrivateKey, admitted: @escaping @Sendable (PublicKey) -> Bool, peers: [PeerAddress] = [], log: EventLog? = nil,
    chainID: String = testChain, port: Int = 0
) -> P2PConfiguration {
    var c = P2PConfiguration(chainID: chainID, nodeKey: key, admission: admitted)
    c.listenHost = "127.0.0.1"
    c.listenPort = port
    c.persistentPeers = peers
    c.handshakeTimeout = .seconds(5)
    c.redialInitialDelay = .milliseconds(50)
    c.redialMaxDelay = .milliseconds(400)
    c.connectTimeout = .seconds(1)
    if let log { c.log = { log.append($0) } }
    return c
}

func admitting(_ keys: [PrivateKey]) -> @Sendable (PublicKey) -> Bool {
    let set = Set(keys.map(\.publicKey))
    return { set.contains($0) }
}

func address(of node: P2PNode, expecting key: PublicKey? = nil) -> PeerAddress {
    PeerAddress(host: "127.0.0.1", port: node.boundPort ?? 0, expectedKey: key)
}

func payload(_ tag: String, _ i: Int) -> [UInt8] { Array("\(tag)-\(i)".utf8) }

/// A raw TCP client: sends arbitrary bytes, records what it receives and whether the server closed.
final class RawClient: Sendable {
    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = NIOLockedValueBox<[UInt8]>([])
        let closed = NIOLockedValueBox(false)
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var b = unwrapInboundIn(data)
            let bytes = b.readBytes(length: b.readableBytes) ?? []
            received.withLockedValue { $0.append(contentsOf: bytes) }
        }
        func channelInactive(context: ChannelHandlerContext) { closed.withLockedValue { $0 = true } }
    }

    let channel: any Channel
    private let collector: Collector

    private init(channel: any Channel, collector: Collector) {
        self.channel = channel
        self.collector = collector
    }

    static func connect(to port: Int, from source: String) async throws -> RawClient {
        let collector = Collector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(to: try SocketAddress(ipAddress: source, port: 0))
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(collector) } }
            .connect(host: "127.0.0.1", port: port).get()
        return RawClient(channel: channel, collector: collector)
    }

    func send(_ bytes: [UInt8]) async {
        try? await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).get()
    }

    var received: [UInt8] { collector.received.withLockedValue { $0 } }
    var isClosed: Bool { collector.closed.withLockedValue { $0 } }

    /// The first `count` received bytes, waiting up to 5 s.
    func receive(_ count: Int) async -> [UInt8]? {
        guard await eventually(.seconds(5), { self.received.count >= count }) else { return nil }
        return Array(received.prefix(count))
    }

    func close() async { try? await channel.close().get() }
}
