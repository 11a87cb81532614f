import Foundation
import IoMTCore
import NIOCore
import Testing

@_spi(Testing) @testable import IoMTNetwork

/// Live networking on 127.0.0.1 with free ports; each test builds and stops its own nodes. (Three
/// minutes: beside the integration suites' node, gateway and devnet processes on two cores, a test
/// that takes seconds alone once took 80 s.)
@Suite(.serialized, .timeLimit(.minutes(3)))
struct P2PNodeTests {
    @Test func threeNodesExchangeDirectAndBroadcastInOrder() async throws {
        let keyA = PrivateKey.generate(.ed25519), keyB = PrivateKey.generate(.ed25519), keyC = PrivateKey.generate(.p256)
        let admit = admitting([keyA, keyB, keyC])
        let c = P2PNode(configuration: makeConfig(keyC, admitted: admit))
        try await c.start()
        let b = P2PNode(configuration: makeConfig(keyB, admitted: admit, peers: [address(of: c, expecting: keyC.publicKey)]))
        try await b.start()
        let a = P2PNode(configuration: makeConfig(keyA, admitted: admit, peers: [address(of: b), address(of: c)]))
        try await a.start()
        let inboxA = Inbox(a), inboxB = Inbox(b), inboxC = Inbox(c)
        #expect(await eventually { [a, b, c].allSatisfy { $0.connectedPeers.count == 2 } })

        let n = 200
        for i in 0..<n {
            #expect(a.send(Envelope(kind: .consensus, payload: payload("a2b", i)), to: keyB.publicKey) == .queued)
            #expect(b.broadcast(Envelope(kind: .transactionGossip, payload: payload("b*", i))) == 2)
            #expect(c.send(Envelope(kind: .blockSyncResponse, payload: payload("c2a", i)), to: keyA.publicKey) == .queued)
        }
        let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        #expect(a.send(Envelope(kind: .blockSyncResponse, payload: big), to: keyC.publicKey) == .queued)

        #expect(await eventually { inboxB.from(keyA.publicKey).count == n && inboxA.from(keyB.publicKey).count == n })
        #expect(await eventually { inboxC.from(keyB.publicKey).count == n && inboxA.from(keyC.publicKey).count == n })
        #expect(await eventually { inboxC.from(keyA.publicKey).count == 1 })
        #expect(inboxB.from(keyA.publicKey) == (0..<n).map { Envelope(kind: .consensus, payload: payload("a2b", $0)) })
        #expect(inboxA.from(keyB.publicKey) == (0..<n).map { Envelope(kind: .transactionGossip, payload: payload("b*", $0)) })
        #expect(inboxC.from(keyB.publicKey) == (0..<n).map { Envelope(kind: .transactionGossip, payload: payload("b*", $0)) })
        #expect(inboxA.from(keyC.publicKey) == (0..<n).map { Envelope(kind: .blockSyncResponse, payload: payload("c2a", $0)) })
        #expect(inboxC.from(keyA.publicKey) == [Envelope(kind: .blockSyncResponse, payload: big)])
        #expect(a.metrics.connectionsDialled == 2 && c.metrics.connectionsAccepted == 2)
        #expect(a.metrics.framesSent >= UInt64(n + 1) && b.metrics.framesReceived >= UInt64(n))
        for node in [a, b, c] { await node.stop() }
    }

    @Test func simultaneousDialsKeepOneConnectionPerKey() async throws {
        let keyA = PrivateKey.generate(.ed25519), keyB = PrivateKey.generate(.p256)
        let admit = admitting([keyA, keyB])
        let (portA, portB) = try await twoFreePorts()
        let a = P2PNode(configuration: makeConfig(keyA, admitted: admit, peers: [PeerAddress(host: "127.0.0.1", port: portB)], port: portA))
        let b = P2PNode(configuration: makeConfig(keyB, admitted: admit, peers: [PeerAddress(host: "127.0.0.1", port: portA)], port: portB))
        try await a.start()
        try await b.start()
        let inboxA = Inbox(a), inboxB = Inbox(b)
        #expect(await eventually { a.connectedPeers == [keyB.publicKey] && b.connectedPeers == [keyA.publicKey] })
        // Let any duplicate handshake settle, then check that messages flow both ways.
        try await Task.sleep(for: .milliseconds(300))
        #expect(await eventually {
            _ = a.send(Envelope(kind: .ping, payload: [1]), to: keyB.publicKey)
            _ = b.send(Envelope(kind: .pong, payload: [2]), to: keyA.publicKey)
            return !inboxB.from(keyA.publicKey).isEmpty && !inboxA.from(keyB.publicKey).isEmpty
        })
        #expect(a.connectedPeers.count == 1 && b.connectedPeers.count == 1)
        await a.stop()
        await b.stop()
    }

    @Test func nonMemberAndOtherChainAreRefusedWithReason() async throws {
        let keyA = PrivateKey.generate(.ed25519), keyB = PrivateKey.generate(.ed25519), keyX = PrivateKey.generate(.ed25519)
        let admit = admitting([keyA, keyB])
        let logA = EventLog(), logB = EventLog()
        let a = P2PNode(configuration: makeConfig(keyA, admitted: admit, log: logA))
        try await a.start()
        // X admits everyone but is not a member: A refuses X's dial, B refuses X when B dials X.
        let x = P2PNode(configuration: makeConfig(keyX, admitted: { _ in true }, peers: [address(of: a)]))
        try await x.start()
        let b = P2PNode(configuration: makeConfig(keyB, admitted: admit, peers: [address(of: x)], log: logB))
        try await b.start()
        #expect(await eventually { a.metrics.refused(.notAdmitted) >= 1 && b.metrics.refused(.notAdmitted) >= 1 })
        #expect(a.connectedPeers.isEmpty && b.connectedPeers.isEmpty)
        #expect(logA.refusals(.notAdmitted).contains { if case .refused(_, let k, _, _) = $0 { return k == keyX.publicKey } else { return false } })
        #expect(!logB.refusals(.notAdmitted).isEmpty)
        // A member on another chain is refused as chainIDMismatch.
        let y = P2PNode(configuration: makeConfig(keyB, admitted: admit, peers: [address(of: a)], chainID: "another-chain"))
        try await y.start()
        #expect(await eventually { a.metrics.refused(.chainIDMismatch) >= 1 })
        #expect(a.connectedPeers.isEmpty)
        #expect(!logA.refusals(.chainIDMismatch).isEmpty)
        for node in [a, b, x, y] { await node.stop() }
    }

    @Test func garbageIsDisconnectedCountedAndBannedWhileMembersAreServed() async throws {
        let keyS = PrivateKey.generate(.ed25519), keyP = PrivateKey.generate(.ed25519), member = PrivateKey.generate(.ed25519)
        let admit = admitting([keyS, keyP, member])
        var config = makeConfig(keyS, admitted: admit)
        // Short enough for the truncated and slow cases below to time out quickly, long enough for
        // the member's valid handshake to finish on a loaded machine (500 ms did not, once).
        config.handshakeTimeout = .seconds(2)
        config.maxFrameBytes = 64 << 10
        let s = P2PNode(configuration: config)
        try await s.start()
        let port = try #require(s.boundPort)
        let p = P2PNode(configuration: makeConfig(keyP, admitted: admit, peers: [address(of: s)]))
        try await p.start()
        let inboxS = Inbox(s), inboxP = Inbox(p)
        #expect(await eventually { s.connectedPeers == [keyP.publicKey] })

        // 1. Random bytes before the handshake.
        let random = try await RawClient.connect(to: port, from: "127.0.0.2")
        await random.send((0..<512).map { _ in UInt8.random(in: 0...255) }.map { $0 == 0x49 ? 0 : $0 })  // never starts with "I"
        #expect(await eventually { random.isClosed })
        #expect(s.metrics.refused(.badHello) == 1)
        #expect(s.isBanned(address: "127.0.0.2"))
        // A new connection from the banned address is closed at once.
        let again = try await RawClient.connect(to: port, from: "127.0.0.2")
        #expect(await eventually { again.isClosed })
        #expect(s.metrics.refused(.banned) >= 1)

        // 2. A truncated handshake (half a hello, then silence) times out and is banned.
        let truncated = try await RawClient.connect(to: port, from: "127.0.0.3")
        await truncated.send(Array(Handshake.magic + [Handshake.version] + [UInt8](repeating: 0, count: 10)))
        #expect(await eventually { truncated.isClosed })
        #expect(s.metrics.refused(.handshakeTimeout) == 1)
        #expect(s.isBanned(address: "127.0.0.3"))

        // 2b. A whole hello but no authentication: disconnected on timeout, not banned (maybe just slow).
        let slow = try await RawClient.connect(to: port, from: "127.0.0.9")
        await slow.send(Handshake.encodeHello(chainID: testChain, ephemeralPublicKey: try Handshake.ephemeralPublicKey(of: Handshake.randomEphemeralKey())))
        #expect(await eventually { slow.isClosed })
        #expect(s.metrics.refused(.handshakeTimeout) == 2)
        #expect(!s.isBanned(address: "127.0.0.9"))

        // 3. A valid handshake by a member key, then an oversize length prefix.
        let raw = try await RawClient.connect(to: port, from: "127.0.0.4")
        let ephemeral = Handshake.randomEphemeralKey()
        await raw.send(Handshake.encodeHello(chainID: testChain, ephemeralPublicKey: try Handshake.ephemeralPublicKey(of: ephemeral)))
        let serverHello = try #require(await raw.receive(Handshake.helloByteCount))
        let keys = try Handshake.deriveKeys(
            chainID: testChain, localEphemeralPrivateKey: ephemeral,
            remoteEphemeralPublicKey: try Handshake.decodeHello(serverHello, chainID: testChain))
        var sealer = FrameSealer(key: keys.sendKey)
        await raw.send(try sealer.seal(Handshake.encodeAuth(nodeKey: member, transcript: keys.transcriptHash)))
        #expect(await eventually { s.connectedPeers.contains(member.publicKey) })
        await raw.send([0x7F, 0xFF, 0xFF, 0xFF] + [UInt8](repeating: 1, count: 64))
        #expect(await eventually { raw.isClosed })
        #expect(s.metrics.refused(.oversizeFrame) == 1)
        #expect(s.isBanned(key: member.publicKey) && s.isBanned(address: "127.0.0.4"))
        #expect(!s.connectedPeers.contains(member.publicKey))

        // The admitted peer is still served, both ways.
        #expect(await eventually { s.connectedPeers == [keyP.publicKey] && p.connectedPeers == [keyS.publicKey] })
        #expect(await eventually {
            _ = p.send(Envelope(kind: .ping, payload: [1]), to: keyS.publicKey)
            _ = s.send(Envelope(kind: .pong, payload: [2]), to: keyP.publicKey)
            return !inboxS.from(keyP.publicKey).isEmpty && !inboxP.from(keyS.publicKey).isEmpty
        })
        #expect(s.metrics.bans >= 3)
        for c in [random, again, truncated, slow, raw] { await c.close() }
        await p.stop()
        await s.stop()
    }

    /// The incremental decoder: a raw client sends its hello, authentication and two frames one byte
    /// per write; the server assembles them and delivers the envelopes intact.
    @Test func handshakeAndFramesFedByteByByte() async throws {
        let keyS = PrivateKey.generate(.ed25519), member = PrivateKey.generate(.p256)
        var config = makeConfig(keyS, admitted: admitting([keyS, member]))
        // Hundreds of one-byte writes: on a loaded machine they can take longer than the 5 s
        // default, and this test is about decoding, not the timeout.
        config.handshakeTimeout = .seconds(60)
        let s = P2PNode(configuration: config)
        try await s.start()
        let inboxS = Inbox(s)
        let raw = try await RawClient.connect(to: try #require(s.boundPort), from: "127.0.0.8")
        let ephemeral = Handshake.randomEphemeralKey()
        let hello = Handshake.encodeHello(chainID: testChain, ephemeralPublicKey: try Handshake.ephemeralPublicKey(of: ephemeral))
        for byte in hello { await raw.send([byte]) }
        let serverHello = try #require(await raw.receive(Handshake.helloByteCount))
        let keys = try Handshake.deriveKeys(
            chainID: testChain, localEphemeralPrivateKey: ephemeral,
            remoteEphemeralPublicKey: try Handshake.decodeHello(serverHello, chainID: testChain))
        // The server's authentication frame follows its hello and verifies against our transcript.
        var opener = FrameOpener(key: keys.receiveKey)
        let serverAuthLength = 4 + 1 + 32 + 64 + 16
        let serverAuth = try #require(await raw.receive(Handshake.helloByteCount + serverAuthLength))
        let authPlain = try opener.open(body: Array(serverAuth.dropFirst(Handshake.helloByteCount + 4)))
        #expect(try Handshake.verifyAuth(authPlain, transcript: keys.transcriptHash) == keyS.publicKey)
        var sealer = FrameSealer(key: keys.sendKey)
        var bytes = try sealer.seal(Handshake.encodeAuth(nodeKey: member, transcript: keys.transcriptHash))
        bytes += try sealer.seal(Envelope(kind: .consensus, payload: [1, 2, 3]).encoded)
        bytes += try sealer.seal(Envelope(kind: .blockSyncRequest, payload: []).encoded)
        for byte in bytes { await raw.send([byte]) }
        #expect(await eventually { inboxS.from(member.publicKey).count == 2 })
        #expect(inboxS.from(member.publicKey) == [Envelope(kind: .consensus, payload: [1, 2, 3]), Envelope(kind: .blockSyncRequest, payload: [])])
        #expect(s.metrics.refused.isEmpty && !raw.isClosed)
        await raw.close()
        await s.stop()
    }

    @Test func tamperedFrameDisconnectsAndBans() async throws {
        let keyS = PrivateKey.generate(.ed25519), keyP = PrivateKey.generate(.ed25519)
        let admit = admitting([keyS, keyP])
        let s = P2PNode(configuration: makeConfig(keyS, admitted: admit))
        try await s.start()
        var configP = makeConfig(keyP, admitted: admit, peers: [address(of: s)])
        configP.dialSourceHost = "127.0.0.5"
        let p = P2PNode(configuration: configP)
        try await p.start()
        let inboxS = Inbox(s)
        #expect(await eventually { s.connectedPeers == [keyP.publicKey] && p.connectedPeers == [keyS.publicKey] })  // both sides: p drops a send before its side is up
        p.send(Envelope(kind: .consensus, payload: [1]), to: keyS.publicKey)
        #expect(await eventually { inboxS.from(keyP.publicKey).count == 1 })
        #expect(p.corruptNextFrame(to: keyS.publicKey))
        p.send(Envelope(kind: .consensus, payload: [2]), to: keyS.publicKey)
        #expect(await eventually { s.metrics.refused(.badFrame) == 1 })
        #expect(s.isBanned(key: keyP.publicKey) && s.isBanned(address: "127.0.0.5"))
        #expect(await eventually { s.connectedPeers.isEmpty })
        // The tampered frame was never delivered, and re-dials are refused while banned.
        #expect(inboxS.from(keyP.publicKey) == [Envelope(kind: .consensus, payload: [1])])
        #expect(await eventually { s.metrics.refused(.banned) >= 1 })
        #expect(s.connectedPeers.isEmpty)
        await p.stop()
        await s.stop()
    }

    @Test func unknownEnvelopeKindDisconnectsAndBans() async throws {
        let keyS = PrivateKey.generate(.ed25519), keyP = PrivateKey.generate(.ed25519)
        let admit = admitting([keyS, keyP])
        let s = P2PNode(configuration: makeConfig(keyS, admitted: admit))
        try await s.start()
        var configP = makeConfig(keyP, admitted: admit, peers: [address(of: s)])
        configP.acceptedKinds.insert(EnvelopeKind(rawValue: 0x40))
        configP.dialSourceHost = "127.0.0.6"
        let p = P2PNode(configuration: configP)
        try await p.start()
        #expect(await eventually { s.connectedPeers == [keyP.publicKey] && p.connectedPeers == [keyS.publicKey] })  // both sides: p drops a send before its side is up
        p.send(Envelope(kind: EnvelopeKind(rawValue: 0x40), payload: [1]), to: keyS.publicKey)
        #expect(await eventually { s.metrics.refused(.unknownEnvelopeKind) == 1 })
        #expect(s.isBanned(key: keyP.publicKey))
        await p.stop()
        await s.stop()
    }

    @Test func misbehavedPeerIsBannedThenReadmitted() async throws {
        let keyS = PrivateKey.generate(.ed25519), keyP = PrivateKey.generate(.p256)
        let admit = admitting([keyS, keyP])
        var configS = makeConfig(keyS, admitted: admit)
        configS.banDuration = .milliseconds(1500)
        let s = P2PNode(configuration: configS)
        try await s.start()
        var configP = makeConfig(keyP, admitted: admit, peers: [address(of: s, expecting: keyS.publicKey)])
        configP.dialSourceHost = "127.0.0.7"
        configP.redialMaxDelay = .milliseconds(200)
        let p = P2PNode(configuration: configP)
        try await p.start()
        #expect(await eventually { s.connectedPeers == [keyP.publicKey] })
        let banned = ContinuousClock.now
        s.misbehaved(peer: keyP.publicKey, reason: "invalid vote signature")
        #expect(s.connectedPeers.isEmpty)
        #expect(s.isBanned(key: keyP.publicKey) && s.isBanned(address: "127.0.0.7"))
        #expect(s.metrics.refused(.misbehaved) == 1 && s.metrics.bans == 1)
        // p re-dials during the ban: refused.
        #expect(await eventually { s.metrics.refused(.banned) >= 1 })
        #expect(s.connectedPeers.isEmpty || ContinuousClock.now - banned >= .milliseconds(1500))
        // After the ban, p's re-dial is accepted.
        #expect(await eventually { s.connectedPeers == [keyP.publicKey] })
        #expect(ContinuousClock.now - banned >= .milliseconds(1400))
        await p.stop()
        await s.stop()
    }

    @Test func stoppedPeerIsRedialledAfterRestart() async throws {
        let keyA = PrivateKey.generate(.ed25519), keyB = PrivateKey.generate(.ed25519)
        let admit = admitting([keyA, keyB])
        let b1 = P2PNode(configuration: makeConfig(keyB, admitted: admit))
        try await b1.start()
        let portB = try #require(b1.boundPort)
        let a = P2PNode(configuration: makeConfig(keyA, admitted: admit, peers: [address(of: b1, expecting: keyB.publicKey)]))
        try await a.start()
        let inboxA = Inbox(a)
        #expect(await eventually { a.connectedPeers == [keyB.publicKey] })
        await b1.stop()
        #expect(await eventually { a.connectedPeers.isEmpty })
        // Down for a while: a's dials fail and back off (on a loaded machine the first re-dial
        // may come later than any fixed sleep, so wait for it).
        #expect(await eventually { a.metrics.dialFailures >= 1 })
        let b2 = P2PNode(configuration: makeConfig(keyB, admitted: admit, port: portB))
        try await b2.start()
        let inboxB = Inbox(b2)
        #expect(await eventually { a.connectedPeers == [keyB.publicKey] && b2.connectedPeers == [keyA.publicKey] })
        for i in 0..<10 {
            a.send(Envelope(kind: .consensus, payload: payload("after", i)), to: keyB.publicKey)
            b2.send(Envelope(kind: .consensus, payload: payload("back", i)), to: keyA.publicKey)
        }
        #expect(await eventually { inboxB.from(keyA.publicKey).count == 10 && inboxA.from(keyB.publicKey).count == 10 })
        #expect(inboxB.from(keyA.publicKey).map(\.payload) == (0..<10).map { payload("after", $0) })
        #expect(a.metrics.connectionsDialled == 2)
        await a.stop()
        await b2.stop()
    }

    /// Receiver stops consuming: its mailbox fills, it stops reading, TCP pushes back, and the
    /// sender's queue stays bounded — gossip is shed oldest-first, reliable overflow disconnects.
    @Test func outboundQueueIsBoundedWhenReceiverDoesNotRead() async throws {
        let keyA = PrivateKey.generate(.ed25519), keyB = PrivateKey.generate(.ed25519)
        let admit = admitting([keyA, keyB])
        var configB = makeConfig(keyB, admitted: admit)
        configB.inboundMessageLimit = 8
        let b = P2PNode(configuration: configB)  // nobody consumes b.inbound for now
        try await b.start()
        var configA = makeConfig(keyA, admitted: admit, peers: [address(of: b)])
        configA.outboundGossipLimit = 32
        configA.outboundReliableLimit = 16
        let a = P2PNode(configuration: configA)
        try await a.start()
        #expect(await eventually { a.connectedPeers == [keyB.publicKey] })

        let chunk = [UInt8](repeating: 0xAB, count: 64 << 10)
        var dropped = 0
        for i in 0..<2_000 {
            var p = chunk
            p[0] = UInt8(truncatingIfNeeded: i >> 8)
            p[1] = UInt8(truncatingIfNeeded: i)
            if a.send(Envelope(kind: .transactionGossip, payload: p), to: keyB.publicKey) == .queuedDroppingOldestGossip { dropped += 1 }
            #expect(a.queuedMessageCount(to: keyB.publicKey) <= 32)
            if i % 50 == 0 { try await Task.sleep(for: .milliseconds(5)) }
        }
        #expect(dropped > 0)
        #expect(a.metrics.gossipDropped == UInt64(dropped))
        #expect(a.queuedMessageCount(to: keyB.publicKey) <= 32)

        // Reliable messages are never dropped: when they no longer fit, the slow peer is disconnected.
        var outcome = SendOutcome.queued
        for _ in 0..<2_000 where outcome != .disconnectedSlowPeer {
            outcome = a.send(Envelope(kind: .consensus, payload: chunk), to: keyB.publicKey)
            #expect(a.queuedMessageCount(to: keyB.publicKey) <= 32 + 16)
        }
        #expect(outcome == .disconnectedSlowPeer)
        #expect(a.metrics.refused(.slowPeer) == 1)
        #expect(!a.isBanned(key: keyB.publicKey))

        // What b did receive of the gossip arrives in send order (with gaps where it was shed).
        var received: [Int] = []
        for await m in b.inbound where m.envelope.kind == .transactionGossip {
            received.append(Int(m.envelope.payload[0]) << 8 | Int(m.envelope.payload[1]))
            if received.count >= 8 { break }
        }
        #expect(received == received.sorted() && Set(received).count == received.count)
        await a.stop()
        await b.stop()
    }
}

/// Two ports that were free a moment ago (bound by throwaway nodes, then released).
func twoFreePorts() async throws -> (Int, Int) {
    let key = PrivateKey.generate(.ed25519)
    let x = P2PNode(configuration: makeConfig(key, admitted: { _ in false }))
    let y = P2PNode(configuration: makeConfig(key, admitted: { _ in false }))
    try await x.start()
    try await y.start()
    let ports = (x.boundPort ?? 0, y.boundPort ?? 0)
    await x.stop()
    await y.stop()
    return ports
}
