/// The kind of an application message carried in one encrypted frame (docs/network.md, "Framing").
///
/// An *open* set: the well-known kinds are static constants, and the node may define more
/// (`EnvelopeKind(rawValue: 0x40)`) as long as it lists them in `P2PConfiguration.acceptedKinds`.
/// A frame of a kind that is not accepted is a protocol violation: the connection is closed and the
/// peer banned.
public struct EnvelopeKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// A consensus message (proposal, vote, evidence) — never dropped by the outbound queue.
    public static let consensus = EnvelopeKind(rawValue: 1)
    /// A transaction being gossiped — may be dropped (oldest first) when a peer's queue is full.
    public static let transactionGossip = EnvelopeKind(rawValue: 2)
    /// Block sync: a request for committed blocks.
    public static let blockSyncRequest = EnvelopeKind(rawValue: 3)
    /// Block sync: committed blocks with their commit certificates.
    public static let blockSyncResponse = EnvelopeKind(rawValue: 4)
    public static let ping = EnvelopeKind(rawValue: 5)
    public static let pong = EnvelopeKind(rawValue: 6)

    /// The kinds every node understands.
    public static let builtIn: Set<EnvelopeKind> = [.consensus, .transactionGossip, .blockSyncRequest, .blockSyncResponse, .ping, .pong]

    public var description: String {
        switch self {
        case .consensus: return "consensus"
        case .transactionGossip: return "transaction-gossip"
        case .blockSyncRequest: return "block-sync-request"
        case .blockSyncResponse: return "block-sync-response"
        case .ping: return "ping"
        case .pong: return "pong"
        default: return "kind-\(rawValue)"
        }
    }
}

/// One application message: a kind byte and opaque payload bytes. Its plaintext encoding inside a
/// frame is `kind:u8 ‖ payload` (the frame length already delimits the payload).
public struct Envelope: Hashable, Sendable {
    public var kind: EnvelopeKind
    public var payload: [UInt8]

    public init(kind: EnvelopeKind, payload: [UInt8]) {
        self.kind = kind
        self.payload = payload
    }

    /// `kind ‖ payload`.
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(1 + payload.count)
        out.append(kind.rawValue)
        out.append(contentsOf: payload)
        return out
    }

    /// Decodes `kind ‖ payload`; nil for an empty plaintext.
    public init?(encoded bytes: [UInt8]) {
        guard let first = bytes.first else { return nil }
        kind = EnvelopeKind(rawValue: first)
        payload = Array(bytes.dropFirst())
    }
}
