import IoMTCore
import NIOConcurrencyHelpers
import NIOCore

/// One authenticated connection and its bounded outbound queue (docs/network.md, "Outbound queues").
///
/// Two FIFO queues share one sequence so the peer receives messages in the order they were sent:
/// droppable (gossip) messages, bounded by count, whose oldest is dropped when full; and reliable
/// messages (consensus, block sync), never dropped — when they overflow, the connection is closed
/// as a slow peer instead. Messages leave the queues only while the channel is writable, so NIO's own
/// buffer holds at most one frame past its high watermark.
final class PeerConnection: Sendable {
    struct Queued {
        var sequence: UInt64
        var envelope: Envelope
    }

    struct Queues {
        var gossip = CircularBuffer<Queued>()
        var reliable = CircularBuffer<Queued>()
        var nextSequence: UInt64 = 0
        var bytes = 0
        var drainScheduled = false
        var closed = false

        var count: Int { gossip.count + reliable.count }

        mutating func popNext() -> Envelope? {
            let takeGossip: Bool
            switch (gossip.first, reliable.first) {
            case (nil, nil): return nil
            case (.some, nil): takeGossip = true
            case (nil, .some): takeGossip = false
            case (.some(let g), .some(let r)): takeGossip = g.sequence < r.sequence
            }
            let item = takeGossip ? gossip.removeFirst() : reliable.removeFirst()
            bytes -= item.envelope.payload.count
            return item.envelope
        }
    }

    enum EnqueueResult {
        case queued
        case droppedOldestGossip
        case overflow
        case closed
    }

    let key: PublicKey
    let channel: any Channel
    /// True when this node dialled the connection.
    let outbound: Bool
    let address: String
    private let queues = NIOLockedValueBox(Queues())
    /// Test hook: flip one ciphertext bit in the next frame sent.
    let corruptNextFrame = NIOLockedValueBox(false)

    init(key: PublicKey, channel: any Channel, outbound: Bool, address: String) {
        self.key = key
        self.channel = channel
        self.outbound = outbound
        self.address = address
    }

    var queuedCount: Int { queues.withLockedValue { $0.count } }

    func enqueue(_ envelope: Envelope, droppable: Bool, limits: P2PConfiguration) -> EnqueueResult {
        let (result, schedule): (EnqueueResult, Bool) = queues.withLockedValue { q in
            guard !q.closed else { return (.closed, false) }
            let item = Queued(sequence: q.nextSequence, envelope: envelope)
            q.nextSequence += 1
            var result = EnqueueResult.queued
            if droppable {
                if q.gossip.count >= limits.outboundGossipLimit, let dropped = q.gossip.popFirst() {
                    q.bytes -= dropped.envelope.payload.count
                    result = .droppedOldestGossip
                }
                q.gossip.append(item)
            } else {
                guard q.reliable.count < limits.outboundReliableLimit else { return (.overflow, false) }
                q.reliable.append(item)
            }
            q.bytes += envelope.payload.count
            // Over the byte bound: shed gossip first; if reliable messages alone exceed it, overflow.
            while q.bytes > limits.outboundByteLimit, let dropped = q.gossip.popFirst() {
                q.bytes -= dropped.envelope.payload.count
                result = .droppedOldestGossip
            }
            if q.bytes > limits.outboundByteLimit { return (.overflow, false) }
            let schedule = !q.drainScheduled
            q.drainScheduled = true
            return (result, schedule)
        }
        if schedule { scheduleDrain() }
        return result
    }

    /// Hands the unsent messages of a connection being replaced to this one.
    func adopt(_ envelopes: [(Envelope, Bool)], limits: P2PConfiguration) {
        for (envelope, droppable) in envelopes { _ = enqueue(envelope, droppable: droppable, limits: limits) }
    }

    /// Empties the queues (the connection is closing); returns what was queued, in order, with whether each was droppable.
    func takeQueued() -> [(Envelope, Bool)] {
        queues.withLockedValue { q in
            var out: [(Envelope, Bool)] = []
            while let g = q.gossip.first, let r = q.reliable.first {
                if g.sequence < r.sequence { out.append((q.gossip.removeFirst().envelope, true)) } else { out.append((q.reliable.removeFirst().envelope, false)) }
            }
            while let g = q.gossip.popFirst() { out.append((g.envelope, true)) }
            while let r = q.reliable.popFirst() { out.append((r.envelope, false)) }
            q.bytes = 0
            q.closed = true
            return out
        }
    }

    func markClosed() {
        queues.withLockedValue { q in
            q.closed = true
            q.gossip.removeAll()
            q.reliable.removeAll()
            q.bytes = 0
        }
    }

    func scheduleDrain() {
        channel.eventLoop.execute { self.drain() }
    }

    /// On the event loop: writes queued messages while the channel is writable.
    func drain() {
        channel.eventLoop.preconditionInEventLoop()
        var wrote = false
        while channel.isActive, channel.isWritable {
            guard let envelope = queues.withLockedValue({ q -> Envelope? in
                let next = q.popNext()
                if next == nil { q.drainScheduled = false }
                return next
            }) else { break }
            channel.write(envelope, promise: nil)
            wrote = true
        }
        if wrote { channel.flush() }
        // Not writable: `channelWritabilityChanged` calls drain again. Keep `drainScheduled` set
        // meanwhile so enqueue does not spin up redundant drains.
        if !channel.isWritable || !channel.isActive {
            queues.withLockedValue { $0.drainScheduled = false }
        }
    }
}
