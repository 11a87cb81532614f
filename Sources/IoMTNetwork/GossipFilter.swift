import IoMTCore
import NIOConcurrencyHelpers

/// A bounded de-duplication cache for gossip: remembers the last `capacity` hashes seen (a ring
/// plus a set, so memory is fixed and the oldest entry is forgotten first).
///
/// The node hashes a gossiped payload (e.g. a transaction) and re-broadcasts it only on first sight,
/// so gossip never loops. Thread-safe.
public final class GossipFilter: Sendable {
    private struct State {
        var ring: [Hash?]
        var next = 0
        var members: Set<Hash> = []
    }

    public let capacity: Int
    private let state: NIOLockedValueBox<State>

    public init(capacity: Int = 100_000) {
        precondition(capacity > 0, "GossipFilter capacity must be positive")
        self.capacity = capacity
        state = NIOLockedValueBox(State(ring: Array(repeating: nil, count: capacity)))
    }

    /// True the first time `hash` is seen (within the last `capacity` distinct hashes), and records it.
    public func firstSight(_ hash: Hash) -> Bool {
        state.withLockedValue { s in
            guard !s.members.contains(hash) else { return false }
            if let evicted = s.ring[s.next] { s.members.remove(evicted) }
            s.ring[s.next] = hash
            s.members.insert(hash)
            s.next = (s.next + 1) % s.ring.count
            return true
        }
    }

    /// Whether `hash` is currently remembered (does not record it).
    public func contains(_ hash: Hash) -> Bool { state.withLockedValue { $0.members.contains(hash) } }

    public var count: Int { state.withLockedValue { $0.members.count } }
}
