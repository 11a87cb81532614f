/// The application state: a persistent (immutable, path-copying) compacted sparse Merkle tree over
/// SHA-256 of the keys, 256 levels deep (docs/adr/0002-authenticated-state.md).
///
/// - A subtree holding exactly one key is stored as that leaf, at the highest level possible
///   (Diem's Jellyfish compaction), so a lookup or an update touches about log2(keys) nodes.
/// - `leaf = SHA-256(0x10 ‖ keyHash ‖ SHA-256(value))`, `internal = SHA-256(0x11 ‖ left ‖ right)`,
///   empty subtree = 32 zero bytes. The prefixes differ from RFC 6962's so no tree's node
///   can pose as another's.
/// - The shape is canonical: the same set of key/value pairs gives the same root whatever the
///   order of updates, so two nodes that differ by one byte of state have different roots.
///
/// Values live in the leaves, so a snapshot (`AuthenticatedState` is a value) is free and
/// readers never block the writer.
public struct AuthenticatedState: Sendable {
    final class Node: Sendable {
        enum Kind: Sendable {
            case leaf(keyHash: Hash, key: [UInt8], value: [UInt8])
            case `internal`(left: Node?, right: Node?)
        }

        let kind: Kind
        let hash: Hash

        init(leafKeyHash keyHash: Hash, key: [UInt8], value: [UInt8]) {
            kind = .leaf(keyHash: keyHash, key: key, value: value)
            hash = AuthenticatedState.leafHash(keyHash: keyHash, valueHash: Hash.sha256(value))
        }

        init(left: Node?, right: Node?) {
            kind = .internal(left: left, right: right)
            hash = Hash.tagged(0x11, (left?.hash ?? .zero).bytes, (right?.hash ?? .zero).bytes)
        }
    }

    private let top: Node?
    /// Number of keys held.
    public let count: Int

    public init() {
        top = nil
        count = 0
    }

    private init(top: Node?, count: Int) {
        self.top = top
        self.count = count
    }

    public var root: Hash { top?.hash ?? .zero }

    public static func leafHash(keyHash: Hash, valueHash: Hash) -> Hash {
        Hash.tagged(0x10, keyHash.bytes, valueHash.bytes)
    }

    public static func internalHash(_ left: Hash, _ right: Hash) -> Hash {
        Hash.tagged(0x11, left.bytes, right.bytes)
    }

    // MARK: reads

    public func value(forKey key: [UInt8]) -> [UInt8]? {
        let kh = Hash.sha256(key)
        var node = top
        var depth = 0
        while let n = node {
            switch n.kind {
            case .leaf(let h, _, let v):
                return h == kh ? v : nil
            case .internal(let l, let r):
                node = kh.bit(depth) ? r : l
                depth += 1
            }
        }
        return nil
    }

    /// A proof of the key's value, or of its absence, against `root`.
    public func proof(forKey key: [UInt8]) -> StateProof {
        let kh = Hash.sha256(key)
        var siblings: [Hash] = []
        var node = top
        var depth = 0
        while let n = node {
            switch n.kind {
            case .leaf(let h, _, let v):
                return StateProof(key: key, siblings: siblings, terminal: .leaf(keyHash: h, valueHash: Hash.sha256(v)), value: h == kh ? v : nil)
            case .internal(let l, let r):
                let right = kh.bit(depth)
                siblings.append((right ? l : r)?.hash ?? .zero)
                node = right ? r : l
                depth += 1
            }
        }
        return StateProof(key: key, siblings: siblings, terminal: .empty, value: nil)
    }

    /// All key/value pairs, in key-hash order. For replay checks and tests.
    public func entries() -> [(key: [UInt8], value: [UInt8])] {
        var out: [(key: [UInt8], value: [UInt8])] = []
        out.reserveCapacity(count)
        func walk(_ n: Node?) {
            guard let n else { return }
            switch n.kind {
            case .leaf(_, let k, let v): out.append((k, v))
            case .internal(let l, let r): walk(l); walk(r)
            }
        }
        walk(top)
        return out
    }

    // MARK: writes

    /// A new state with `writes` applied (nil value = delete). Hashes every touched node once,
    /// however many writes share its path.
    public func applying(_ writes: [[UInt8]: [UInt8]?]) -> AuthenticatedState {
        guard !writes.isEmpty else { return self }
        var ups: [Update] = writes.map { Update(keyHash: Hash.sha256($0.key), key: $0.key, value: $0.value) }
        ups.sort { $0.keyHash < $1.keyHash }
        var delta = 0
        let newTop = Self.update(top, depth: 0, ups[...], delta: &delta)
        return AuthenticatedState(top: newTop, count: count + delta)
    }

    /// Builds a state from scratch (restart): O(n) hashes.
    /// A key given twice keeps its last value.
    public static func build(_ pairs: [(key: [UInt8], value: [UInt8])]) -> AuthenticatedState {
        var ups = pairs.enumerated().map { (i, p) in (i, Update(keyHash: Hash.sha256(p.key), key: p.key, value: p.value)) }
        ups.sort { $0.1.keyHash == $1.1.keyHash ? $0.0 < $1.0 : $0.1.keyHash < $1.1.keyHash }
        var unique: [Update] = []
        unique.reserveCapacity(ups.count)
        for (_, u) in ups {
            if unique.last?.keyHash == u.keyHash { unique[unique.count - 1] = u } else { unique.append(u) }
        }
        let sorted = unique
        return AuthenticatedState(top: buildFresh(depth: 0, sorted[...]), count: sorted.count)
    }

    struct Update {
        var keyHash: Hash
        var key: [UInt8]
        var value: [UInt8]?
    }

    private static func update(_ node: Node?, depth: Int, _ ups: ArraySlice<Update>, delta: inout Int) -> Node? {
        guard !ups.isEmpty else { return node }
        guard let node else {
            let live = ups.filter { $0.value != nil }
            delta += live.count
            return buildFresh(depth: depth, live[...])
        }
        switch node.kind {
        case .leaf(let kh, let k, let v):
            // Merge the existing leaf into the updates unless one of them replaces it.
            // The old leaf leaves the count; whatever survives is counted again below.
            var merged = Array(ups)
            if !merged.contains(where: { $0.keyHash == kh }) {
                let at = merged.firstIndex(where: { kh < $0.keyHash }) ?? merged.count
                merged.insert(Update(keyHash: kh, key: k, value: v), at: at)
            }
            delta -= 1
            let live = merged.filter { $0.value != nil }
            delta += live.count
            return buildFresh(depth: depth, live[...])
        case .internal(let l, let r):
            let split = ups.firstIndex(where: { $0.keyHash.bit(depth) }) ?? ups.endIndex
            let newL = update(l, depth: depth + 1, ups[ups.startIndex..<split], delta: &delta)
            let newR = update(r, depth: depth + 1, ups[split..<ups.endIndex], delta: &delta)
            return makeInternal(newL, newR)
        }
    }

    /// Canonical subtree over sorted, distinct, live entries.
    private static func buildFresh(depth: Int, _ ups: ArraySlice<Update>) -> Node? {
        switch ups.count {
        case 0: return nil
        case 1:
            let u = ups[ups.startIndex]
            return Node(leafKeyHash: u.keyHash, key: u.key, value: u.value ?? [])
        default:
            precondition(depth < 256, "two distinct keys share a SHA-256 hash")
            let split = ups.firstIndex(where: { $0.keyHash.bit(depth) }) ?? ups.endIndex
            return makeInternal(
                buildFresh(depth: depth + 1, ups[ups.startIndex..<split]),
                buildFresh(depth: depth + 1, ups[split..<ups.endIndex]))
        }
    }

    /// Keeps the shape canonical: a subtree with one leaf is that leaf.
    private static func makeInternal(_ l: Node?, _ r: Node?) -> Node? {
        switch (l, r) {
        case (nil, nil): return nil
        case (nil, let r?): if case .leaf = r.kind { return r }
        case (let l?, nil): if case .leaf = l.kind { return l }
        default: break
        }
        return Node(left: l, right: r)
    }
}

/// Proof that a key has a value, or none, in the state whose root is in a committed header.
public struct StateProof: Hashable, Sendable, Codable {
    public enum Terminal: Hashable, Sendable, Codable {
        /// The path ends in an empty subtree.
        case empty
        /// The path ends in a leaf: the key's own (inclusion) or another key's (exclusion).
        case leaf(keyHash: Hash, valueHash: Hash)
    }

    public var key: [UInt8]
    /// Sibling hashes from the root down.
    public var siblings: [Hash]
    public var terminal: Terminal
    public var value: [UInt8]?

    public enum Failure: Error, Equatable, Sendable {
        case tooDeep
        case valueMismatch
        case leafOutsidePath
        case rootMismatch(computed: Hash)
    }

    /// Checks the proof against `root`. On success, `value` is the key's value (nil: absent).
    public func verify(root: Hash) throws(Failure) {
        guard siblings.count <= 256 else { throw .tooDeep }
        let kh = Hash.sha256(key)
        var h: Hash
        switch terminal {
        case .empty:
            guard value == nil else { throw .valueMismatch }
            h = .zero
        case .leaf(let lk, let lv):
            if let value {
                guard lk == kh, lv == Hash.sha256(value) else { throw .valueMismatch }
            } else {
                guard lk != kh else { throw .valueMismatch }
                // Another key's leaf proves absence only if it sits on this key's path.
                for i in 0..<siblings.count where lk.bit(i) != kh.bit(i) { throw .leafOutsidePath }
            }
            h = AuthenticatedState.leafHash(keyHash: lk, valueHash: lv)
        }
        for depth in stride(from: siblings.count - 1, through: 0, by: -1) {
            h = kh.bit(depth)
                ? AuthenticatedState.internalHash(siblings[depth], h)
                : AuthenticatedState.internalHash(h, siblings[depth])
        }
        guard h == root else { throw .rootMismatch(computed: h) }
    }

    public func isValid(root: Hash) -> Bool { (try? verify(root: root)) != nil }

    enum CodingKeys: String, CodingKey { case key, siblings, terminal, value }

    public init(key: [UInt8], siblings: [Hash], terminal: Terminal, value: [UInt8]?) {
        self.key = key
        self.siblings = siblings
        self.terminal = terminal
        self.value = value
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        guard let k = Hex.decode(try c.decode(String.self, forKey: .key)) else {
            throw DecodingError.dataCorruptedError(forKey: .key, in: c, debugDescription: "key must be hex")
        }
        key = k
        siblings = try c.decode([Hash].self, forKey: .siblings)
        terminal = try c.decode(Terminal.self, forKey: .terminal)
        if let v = try c.decodeIfPresent(String.self, forKey: .value) {
            guard let b = Hex.decode(v) else { throw DecodingError.dataCorruptedError(forKey: .value, in: c, debugDescription: "value must be hex") }
            value = b
        } else {
            value = nil
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Hex.encode(key), forKey: .key)
        try c.encode(siblings, forKey: .siblings)
        try c.encode(terminal, forKey: .terminal)
        try c.encode(value.map { Hex.encode($0) }, forKey: .value)
    }
}
