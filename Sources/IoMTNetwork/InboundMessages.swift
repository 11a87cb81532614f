import IoMTCore
import NIOConcurrencyHelpers
import NIOCore

/// One message received from an authenticated peer.
public struct InboundMessage: Sendable, Hashable {
    public var peer: PublicKey
    public var envelope: Envelope
}

/// The inbound messages of a `P2PNode`: an `AsyncStream` whose consumption is counted, so the node
/// stops reading from sockets while too many messages wait (TCP backpressure reaches the senders).
/// Single consumer. Finishes when the node stops.
public struct InboundMessages: AsyncSequence, Sendable {
    public typealias Element = InboundMessage
    let stream: AsyncStream<InboundMessage>
    let mailbox: InboundMailbox

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<InboundMessage>.AsyncIterator
        let mailbox: InboundMailbox

        public mutating func next() async -> InboundMessage? {
            let message = await base.next()
            if let message { mailbox.consumed(message) }
            return message
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: stream.makeAsyncIterator(), mailbox: mailbox)
    }
}

/// Counts delivered-but-unconsumed messages and parks channels that want to read while it is full.
final class InboundMailbox: Sendable {
    private struct State {
        var count = 0
        var bytes = 0
        var parked: [ObjectIdentifier: any Channel] = [:]
        var finished = false
    }

    private let state = NIOLockedValueBox(State())
    private let continuation: AsyncStream<InboundMessage>.Continuation
    let messageLimit: Int
    let byteLimit: Int

    private init(continuation: AsyncStream<InboundMessage>.Continuation, messageLimit: Int, byteLimit: Int) {
        self.continuation = continuation
        self.messageLimit = messageLimit
        self.byteLimit = byteLimit
    }

    static func make(messageLimit: Int, byteLimit: Int) -> (InboundMailbox, AsyncStream<InboundMessage>) {
        let (stream, continuation) = AsyncStream<InboundMessage>.makeStream(bufferingPolicy: .unbounded)
        return (InboundMailbox(continuation: continuation, messageLimit: messageLimit, byteLimit: byteLimit), stream)
    }

    func deliver(_ message: InboundMessage) {
        let finished = state.withLockedValue { s -> Bool in
            guard !s.finished else { return true }
            s.count += 1
            s.bytes += message.envelope.payload.count
            return false
        }
        guard !finished else { return }
        continuation.yield(message)
    }

    /// True when full; the channel is then parked and `read()` is issued on it once there is room.
    func parkIfFull(_ channel: any Channel) -> Bool {
        state.withLockedValue { s in
            guard !s.finished, s.count >= messageLimit || s.bytes >= byteLimit else { return false }
            s.parked[ObjectIdentifier(channel)] = channel
            return true
        }
    }

    func consumed(_ message: InboundMessage) {
        let wake: [any Channel] = state.withLockedValue { s in
            s.count -= 1
            s.bytes -= message.envelope.payload.count
            guard !s.parked.isEmpty, s.count <= messageLimit / 2, s.bytes <= byteLimit / 2 else { return [] }
            defer { s.parked.removeAll() }
            return Array(s.parked.values)
        }
        for channel in wake { channel.read() }
    }

    var pendingCount: Int { state.withLockedValue { $0.count } }

    func finish() {
        let wake: [any Channel] = state.withLockedValue { s in
            s.finished = true
            defer { s.parked.removeAll() }
            return Array(s.parked.values)
        }
        continuation.finish()
        for channel in wake { channel.read() }
    }
}
