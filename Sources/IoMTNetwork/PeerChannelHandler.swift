import IoMTCore
import NIOCore

/// The error a dialler's `authenticated` promise fails with when the handshake does not complete.
struct ConnectionRefused: Error {
    var reason: RefusalReason
}

/// Drives one TCP connection on its event loop: handshake, then encrypted frames both ways
/// (docs/network.md). Confined to its channel's event loop; talks to the node through its
/// thread-safe methods.
///
/// Inbound it accepts raw bytes and delivers `InboundMessage`s to the node's mailbox; outbound it
/// takes `Envelope`s (written by `PeerConnection.drain`) and writes sealed frames.
final class PeerChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Never
    typealias OutboundIn = Envelope
    typealias OutboundOut = ByteBuffer

    private enum Phase {
        case awaitingHello
        case awaitingAuth(transcript: Hash)
        case established(PeerConnection)
        case closed
    }

    private let node: P2PNode
    private let configuration: P2PConfiguration
    private let outbound: Bool
    private let expectedKey: PublicKey?
    private let authenticated: EventLoopPromise<PublicKey>?
    private var phase = Phase.awaitingHello
    private var buffer: ByteBuffer?
    private var sealer: FrameSealer?
    private var opener: FrameOpener?
    private var ephemeralPrivateKey: [UInt8] = []
    private var address = "unknown"
    private var receivedAnyByte = false
    private var handshakeTimer: Scheduled<Void>?

    init(node: P2PNode, outbound: Bool, expectedKey: PublicKey?, authenticated: EventLoopPromise<PublicKey>?) {
        self.node = node
        self.configuration = node.configuration
        self.outbound = outbound
        self.expectedKey = expectedKey
        self.authenticated = authenticated
    }

    // MARK: lifecycle

    func channelActive(context: ChannelHandlerContext) {
        address = context.channel.remoteAddress?.ipAddress ?? "unknown"
        context.fireChannelActive()
        if node.isBanned(address: address) {
            fail(context, .banned, "address \(address) is banned", ban: false)
            return
        }
        ephemeralPrivateKey = configuration.ephemeralKeySource()
        guard let ephemeralPublic = try? Handshake.ephemeralPublicKey(of: ephemeralPrivateKey) else {
            fail(context, .invalidEphemeralKey, "local ephemeral key source returned an invalid key", ban: false)
            return
        }
        let hello = Handshake.encodeHello(chainID: configuration.chainID, ephemeralPublicKey: ephemeralPublic)
        writeRaw(context, hello)
        handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.handshakeTimeout.timeAmount) {
            self.handshakeTimedOut(context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        switch phase {
        case .awaitingHello, .awaitingAuth:
            fail(context, .handshakeIncomplete, "connection closed during the handshake", ban: sentPartialHello)
        case .established(let connection):
            phase = .closed
            node.unregister(connection)
        case .closed:
            break
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Socket errors (reset, broken pipe): not the peer's fault as far as we can tell.
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .established(let connection) = phase, context.channel.isWritable { connection.drain() }
        context.fireChannelWritabilityChanged()
    }

    /// Backpressure: while the node's inbound mailbox is full, do not read from the socket.
    func read(context: ChannelHandlerContext) {
        if case .established = phase, node.mailbox.parkIfFull(context.channel) { return }
        context.read()
    }

    // MARK: inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .closed = phase { return }
        var incoming = unwrapInboundIn(data)
        guard incoming.readableBytes > 0 else { return }
        receivedAnyByte = true
        node.recordReceived(bytes: incoming.readableBytes)
        buffer.setOrWriteBuffer(&incoming)
        process(context)
        if var b = buffer, b.readerIndex > 64 << 10 {
            b.discardReadBytes()
            buffer = b
        }
    }

    private func process(_ context: ChannelHandlerContext) {
        while true {
            switch phase {
            case .closed:
                return
            case .awaitingHello:
                guard receiveHello(context) else { return }
            case .awaitingAuth(let transcript):
                guard receiveAuth(context, transcript: transcript) else { return }
            case .established(let connection):
                guard receiveFrame(context, connection) else { return }
            }
        }
    }

    /// True when the hello was consumed and the phase advanced.
    private func receiveHello(_ context: ChannelHandlerContext) -> Bool {
        guard var b = buffer else { return false }
        // Reject garbage as soon as its first bytes differ from the magic, without waiting for 69.
        let prefixCount = min(b.readableBytes, Handshake.magic.count)
        if let prefix = b.getBytes(at: b.readerIndex, length: prefixCount), prefix != Array(Handshake.magic.prefix(prefixCount)) {
            fail(context, .badHello, "first bytes are not an IoMT hello")
            return false
        }
        guard b.readableBytes >= Handshake.helloByteCount, let hello = b.readBytes(length: Handshake.helloByteCount) else { return false }
        buffer = b
        let keys: SessionKeys
        do {
            let remoteEphemeral = try Handshake.decodeHello(hello, chainID: configuration.chainID)
            keys = try Handshake.deriveKeys(
                chainID: configuration.chainID, localEphemeralPrivateKey: ephemeralPrivateKey, remoteEphemeralPublicKey: remoteEphemeral)
        } catch {
            fail(context, RefusalReason(error), error.description)
            return false
        }
        var sealer = FrameSealer(key: keys.sendKey)
        opener = FrameOpener(key: keys.receiveKey)
        do {
            writeRaw(context, try sealer.seal(Handshake.encodeAuth(nodeKey: configuration.nodeKey, transcript: keys.transcriptHash)))
        } catch {
            fail(context, .badFrame, "cannot seal the authentication message", ban: false)
            return false
        }
        self.sealer = sealer
        phase = .awaitingAuth(transcript: keys.transcriptHash)
        return true
    }

    private func receiveAuth(_ context: ChannelHandlerContext, transcript: Hash) -> Bool {
        guard let plaintext = nextFrame(context, maxPlaintext: Handshake.maxAuthByteCount, oversize: .malformedAuth) else { return false }
        let key: PublicKey
        do { key = try Handshake.verifyAuth(plaintext, transcript: transcript) } catch {
            fail(context, RefusalReason(error), error.description)
            return false
        }
        authenticated?.succeed(key)
        if key == configuration.nodeKey.publicKey {
            fail(context, .selfConnection, "dialled our own node key", key: key)
            return false
        }
        if let expectedKey, expectedKey != key {
            fail(context, .unexpectedKey, "expected \(expectedKey)", key: key)
            return false
        }
        if node.isBanned(key: key) {
            fail(context, .banned, "node key is banned", key: key, ban: false)
            return false
        }
        guard configuration.admission(key) else {
            fail(context, .notAdmitted, "node key is not an admitted member", key: key)
            return false
        }
        switch node.register(key: key, channel: context.channel, outbound: outbound, address: address) {
        case .failure(let refusal):
            fail(context, refusal.reason, "registration refused", key: key)
            return false
        case .success(let connection):
            handshakeTimer?.cancel()
            handshakeTimer = nil
            phase = .established(connection)
            connection.drain()
            return true
        }
    }

    private func receiveFrame(_ context: ChannelHandlerContext, _ connection: PeerConnection) -> Bool {
        guard let plaintext = nextFrame(context, maxPlaintext: configuration.maxFrameBytes, oversize: .oversizeFrame) else { return false }
        guard let envelope = Envelope(encoded: plaintext) else {
            fail(context, .emptyFrame, "frame without an envelope kind", key: connection.key)
            return false
        }
        guard configuration.acceptedKinds.contains(envelope.kind) else {
            fail(context, .unknownEnvelopeKind, "envelope kind \(envelope.kind.rawValue) is not accepted", key: connection.key)
            return false
        }
        node.recordFrameReceived()
        node.mailbox.deliver(InboundMessage(peer: connection.key, envelope: envelope))
        return true
    }

    /// The next decrypted frame, or nil (need more bytes, or failed and closed).
    private func nextFrame(_ context: ChannelHandlerContext, maxPlaintext: Int, oversize: RefusalReason) -> [UInt8]? {
        guard var b = buffer, var opener, let length = b.getInteger(at: b.readerIndex, as: UInt32.self) else { return nil }
        let limit = maxPlaintext + FrameFormat.tagByteCount
        guard Int(length) <= limit else {
            fail(context, oversize, "frame length \(length) exceeds \(limit)")
            return nil
        }
        guard b.readableBytes >= FrameFormat.lengthPrefixByteCount + Int(length) else { return nil }
        b.moveReaderIndex(forwardBy: FrameFormat.lengthPrefixByteCount)
        guard let body = b.readBytes(length: Int(length)) else { return nil }
        buffer = b
        do {
            let plaintext = try opener.open(body: body)
            self.opener = opener
            return plaintext
        } catch {
            fail(context, .badFrame, "frame \(opener.counter) failed authentication")
            return nil
        }
    }

    // MARK: outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let envelope = unwrapOutboundIn(data)
        guard case .established(let connection) = phase, var sealer else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        var frame: [UInt8]
        do { frame = try sealer.seal(envelope.encoded) } catch {
            promise?.fail(error)
            context.close(promise: nil)
            return
        }
        self.sealer = sealer
        if connection.corruptNextFrame.withLockedValue({ flag in defer { flag = false }; return flag }) {
            frame[FrameFormat.lengthPrefixByteCount] ^= 0x01  // first ciphertext byte
        }
        node.recordSent(bytes: frame.count)
        context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: frame)), promise: promise)
    }

    private func writeRaw(_ context: ChannelHandlerContext, _ bytes: [UInt8]) {
        node.recordSent(bytes: bytes.count, frame: false)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
    }

    // MARK: failure

    /// A truncated hello: some bytes, fewer than a hello. An honest peer writes its whole hello at
    /// once, so this is banned on timeout or close; a peer that is merely slow to authenticate
    /// (hello complete) is only disconnected.
    private var sentPartialHello: Bool {
        guard case .awaitingHello = phase else { return false }
        return receivedAnyByte
    }

    private func handshakeTimedOut(_ context: ChannelHandlerContext) {
        switch phase {
        case .awaitingHello, .awaitingAuth:
            fail(context, .handshakeTimeout, "no handshake within \(configuration.handshakeTimeout)", ban: sentPartialHello)
        case .established, .closed:
            break
        }
    }

    /// Records the refusal (and the ban, when the reason calls for one), then closes the connection.
    private func fail(_ context: ChannelHandlerContext, _ reason: RefusalReason, _ detail: String, key: PublicKey? = nil, ban: Bool? = nil) {
        let previous = phase
        if case .closed = previous { return }
        phase = .closed
        handshakeTimer?.cancel()
        handshakeTimer = nil
        authenticated?.fail(ConnectionRefused(reason: reason))
        var peerKey = key
        if case .established(let connection) = previous {
            peerKey = connection.key
            node.unregister(connection)
        }
        node.recordRefusal(address: address, key: peerKey, reason: reason, detail: detail, ban: ban ?? reason.bans)
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension PeerChannelHandler: Sendable {}
