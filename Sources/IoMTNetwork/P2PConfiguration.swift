import IoMTCore
import NIOCore

/// A peer the node keeps connected: dialled at start and re-dialled with capped exponential backoff.
public struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// When set, a peer that authenticates with another key is refused (`unexpectedKey`).
    public var expectedKey: PublicKey?

    public init(host: String, port: Int, expectedKey: PublicKey? = nil) {
        self.host = host
        self.port = port
        self.expectedKey = expectedKey
    }

    public var description: String { "\(host):\(port)" }
}

/// Everything a `P2PNode` needs. Defaults suit a production consortium node; tests shorten the times.
public struct P2PConfiguration: Sendable {
    /// Peers on another chain are refused during the handshake (`chainIDMismatch`).
    public var chainID: String
    /// The node's long-term key (Ed25519 or P-256), registered on-chain; peers authenticate it.
    public var nodeKey: PrivateKey
    /// Whether a peer's node key may connect. The node answers from on-chain membership
    /// (registered node and validator keys). Called on an event-loop thread: keep it fast.
    public var admission: @Sendable (PublicKey) -> Bool
    public var listenHost: String = "127.0.0.1"
    /// 0 picks a free port; read it back from `P2PNode.boundPort`.
    public var listenPort: Int = 0
    public var persistentPeers: [PeerAddress] = []
    /// Local address outbound connections bind to (nil: chosen by the system).
    public var dialSourceHost: String? = nil
    /// Authenticated peers at most, inbound and outbound together.
    public var maxPeers: Int = 50
    /// Largest envelope (kind byte + payload) in one frame; a longer length prefix disconnects and bans.
    public var maxFrameBytes: Int = 4 << 20
    /// A connection that has not completed the handshake by then is closed (and banned if it sent
    /// only part of a hello).
    public var handshakeTimeout: Duration = .seconds(5)
    /// How long a misbehaving peer's key and IP address are refused.
    public var banDuration: Duration = .seconds(600)
    public var redialInitialDelay: Duration = .milliseconds(500)
    public var redialMaxDelay: Duration = .seconds(30)
    public var connectTimeout: Duration = .seconds(3)
    /// Kinds that may be dropped, oldest first, when a peer's gossip queue is full.
    public var droppableKinds: Set<EnvelopeKind> = [.transactionGossip]
    /// Droppable messages queued per peer at most (the oldest is dropped beyond).
    public var outboundGossipLimit: Int = 1_024
    /// Other (reliable) messages queued per peer at most; beyond, the peer is too slow and is
    /// disconnected (`slowPeer`) — a reliable message is never dropped silently.
    public var outboundReliableLimit: Int = 4_096
    /// Bytes queued per peer at most (both classes); same rule as `outboundReliableLimit`.
    public var outboundByteLimit: Int = 64 << 20
    /// Kinds a peer may send; any other kind is a protocol violation (disconnect and ban).
    public var acceptedKinds: Set<EnvelopeKind> = EnvelopeKind.builtIn
    /// Inbound messages not yet taken from `P2PNode.inbound`: at this count (or byte total) the node
    /// stops reading from its sockets (TCP backpressure) until the consumer has taken half of them.
    public var inboundMessageLimit: Int = 8_192
    public var inboundByteLimit: Int = 64 << 20
    /// Source of X25519 ephemeral private keys (32 bytes). Injected by known-answer tests.
    public var ephemeralKeySource: @Sendable () -> [UInt8] = { Handshake.randomEphemeralKey() }
    /// Receives every connection event (refusals with reasons, bans, connects, disconnects).
    public var log: @Sendable (P2PEvent) -> Void = { _ in }

    public init(chainID: String, nodeKey: PrivateKey, admission: @escaping @Sendable (PublicKey) -> Bool) {
        self.chainID = chainID
        self.nodeKey = nodeKey
        self.admission = admission
    }
}

/// Why a connection was refused or closed by this node. Reasons marked "bans" ban the remote IP
/// address (and the node key once known) for `banDuration`.
public enum RefusalReason: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// The remote address or key is banned.
    case banned
    case tooManyPeers
    /// Handshake not completed in time (bans if the peer sent part of a hello).
    case handshakeTimeout
    /// Connection closed mid-handshake (bans if the peer sent part of a hello).
    case handshakeIncomplete
    /// Bytes that are not an IoMT hello (bans).
    case badHello
    case chainIDMismatch
    case unsupportedVersion
    /// Invalid or reflected X25519 key (bans).
    case invalidEphemeralKey
    /// Authentication message undecodable or too long (bans).
    case malformedAuth
    /// Node-key signature over the transcript fails (bans).
    case badSignature
    /// The admission callback rejected the node key (not a registered member).
    case notAdmitted
    /// A persistent peer authenticated with a key other than the expected one.
    case unexpectedKey
    /// We dialled ourselves.
    case selfConnection
    /// A second connection with a peer already connected (the loser of de-duplication).
    case duplicateConnection
    /// Length prefix above the maximum frame size (bans).
    case oversizeFrame
    /// AEAD authentication failed: tampering, truncation, replay or reordering (bans).
    case badFrame
    /// A frame with an empty plaintext (bans).
    case emptyFrame
    /// A kind not in `acceptedKinds` (bans).
    case unknownEnvelopeKind
    /// The application reported the peer through `misbehaved(peer:reason:)` (bans).
    case misbehaved
    /// The peer does not read fast enough: its reliable queue overflowed.
    case slowPeer

    public var description: String { rawValue }

    /// Whether this reason bans the remote.
    public var bans: Bool {
        switch self {
        case .badHello, .invalidEphemeralKey, .malformedAuth, .badSignature, .oversizeFrame, .badFrame, .emptyFrame,
             .unknownEnvelopeKind, .misbehaved, .handshakeTimeout, .handshakeIncomplete:
            return true
        case .banned, .tooManyPeers, .chainIDMismatch, .unsupportedVersion, .notAdmitted, .unexpectedKey,
             .selfConnection, .duplicateConnection, .slowPeer:
            return false
        }
    }

    init(_ error: HandshakeError) {
        switch error {
        case .badMagic: self = .badHello
        case .unsupportedVersion: self = .unsupportedVersion
        case .chainIDMismatch: self = .chainIDMismatch
        case .invalidEphemeralKey, .reflectedEphemeralKey: self = .invalidEphemeralKey
        case .malformedAuth: self = .malformedAuth
        case .badSignature: self = .badSignature
        }
    }
}

/// Counters since start. Read with `P2PNode.metrics`.
public struct P2PMetrics: Sendable, Equatable {
    /// Inbound connections that completed the handshake and were kept.
    public var connectionsAccepted = 0
    /// Outbound connections that completed the handshake and were kept.
    public var connectionsDialled = 0
    public var dialFailures = 0
    public var refused: [RefusalReason: Int] = [:]
    public var bans = 0
    public var bytesSent: UInt64 = 0
    public var bytesReceived: UInt64 = 0
    public var framesSent: UInt64 = 0
    public var framesReceived: UInt64 = 0
    /// Droppable messages discarded because a peer's gossip queue was full.
    public var gossipDropped: UInt64 = 0

    public init() {}

    public func refused(_ reason: RefusalReason) -> Int { refused[reason, default: 0] }
}

/// What happened to a connection, for the log.
public enum P2PEvent: Sendable, CustomStringConvertible {
    case listening(host: String, port: Int)
    case connected(peer: PublicKey, address: String, outbound: Bool)
    case disconnected(peer: PublicKey, address: String)
    case refused(address: String, peer: PublicKey?, reason: RefusalReason, detail: String)
    case banned(address: String?, peer: PublicKey?, reason: RefusalReason)
    case dialFailed(peer: PeerAddress, error: String)

    public var description: String {
        switch self {
        case .listening(let h, let p): return "p2p listening on \(h):\(p)"
        case .connected(let k, let a, let out): return "p2p connected \(out ? "to" : "from") \(k) at \(a)"
        case .disconnected(let k, let a): return "p2p disconnected \(k) at \(a)"
        case .refused(let a, let k, let r, let d): return "p2p refused \(k.map { "\($0) " } ?? "")at \(a): \(r) (\(d))"
        case .banned(let a, let k, let r): return "p2p banned \(k.map { "\($0) " } ?? "")\(a.map { "at \($0) " } ?? "")for \(r)"
        case .dialFailed(let p, let e): return "p2p dial \(p) failed: \(e)"
        }
    }
}

/// The result of queueing a message for one peer.
public enum SendOutcome: Sendable, Equatable {
    case queued
    /// Queued; the peer's gossip queue was full, so its oldest droppable message was discarded.
    case queuedDroppingOldestGossip
    case notConnected
    /// The peer's reliable queue overflowed: it was disconnected (it will reconnect and catch up).
    case disconnectedSlowPeer
}

extension Duration {
    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
