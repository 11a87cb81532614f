import IoMTCore

/// The fork choice of the longest-chain modes (proof of work, proof of authority): the blocks
/// above the last final block, the best tip among them, and which blocks have become final.
///
/// Pure and deterministic. The root is the last final block: every block kept descends from it,
/// so a block that conflicts with a final one is never accepted and nothing final is ever
/// reorganised away. The best tip is the one with the most cumulative work (proof of authority:
/// one per block, so the longest chain; integers, so every node sums alike), ties broken by the lower block hash so that every node
/// that has seen the same blocks picks the same tip. A block is final once the best chain holds
/// `depth` blocks on top of it.
public struct BlockTree: Sendable {
    public struct Entry: Sendable, Equatable {
        public var id: Hash
        public var parent: Hash
        public var height: UInt64
        public var timestampMs: Int64
        public var difficulty: UInt32
        /// Work from the root to this block (the root has 0).
        public var cumulativeWork: UInt64

        public init(id: Hash, parent: Hash, height: UInt64, timestampMs: Int64, difficulty: UInt32, cumulativeWork: UInt64) {
            self.id = id
            self.parent = parent
            self.height = height
            self.timestampMs = timestampMs
            self.difficulty = difficulty
            self.cumulativeWork = cumulativeWork
        }
    }

    public enum Insertion: Equatable, Sendable {
        /// Added; `newBest` if it became the best tip, `reorganised` if the old tip is not its ancestor.
        case added(newBest: Bool, reorganised: Bool)
        case duplicate
        /// Its parent is unknown (fetch it first).
        case unknownParent
        /// At or below the final height, or not one above its parent.
        case rejected(String)
    }

    public private(set) var root: Entry
    public private(set) var best: Entry
    public let depth: UInt64
    private var entries: [Hash: Entry] = [:]
    private var children: [Hash: [Hash]] = [:]
    /// Tips replaced by a heavier chain that did not extend them.
    public private(set) var reorganisations = 0

    public init(root: Entry, depth: UInt64) {
        var r = root
        r.cumulativeWork = 0
        self.root = r
        best = r
        self.depth = depth
    }

    public var count: Int { entries.count }

    public func entry(_ id: Hash) -> Entry? { id == root.id ? root : entries[id] }

    public func contains(_ id: Hash) -> Bool { id == root.id || entries[id] != nil }

    /// Whether `a` is a better tip than `b`.
    public static func better(_ a: Entry, than b: Entry) -> Bool {
        if a.cumulativeWork != b.cumulativeWork { return a.cumulativeWork > b.cumulativeWork }
        return a.id.bytes.lexicographicallyPrecedes(b.id.bytes)
    }

    /// Adds a block whose validity the caller has checked. `work` is this block's own work.
    public mutating func insert(id: Hash, parent: Hash, height: UInt64, timestampMs: Int64, difficulty: UInt32, work: UInt64) -> Insertion {
        if contains(id) { return .duplicate }
        guard height > root.height else { return .rejected("height \(height) is at or below the final height \(root.height)") }
        guard let p = entry(parent) else { return .unknownParent }
        guard height == p.height + 1 else { return .rejected("height \(height) on a parent at \(p.height)") }
        let e = Entry(id: id, parent: parent, height: height, timestampMs: timestampMs, difficulty: difficulty, cumulativeWork: p.cumulativeWork.addingReportingOverflow(work).overflow ? .max : p.cumulativeWork + work)
        entries[id] = e
        children[parent, default: []].append(id)
        guard Self.better(e, than: best) else { return .added(newBest: false, reorganised: false) }
        let reorganised = best.id != parent
        if reorganised { reorganisations += 1 }
        best = e
        return .added(newBest: true, reorganised: reorganised)
    }

    /// The chain from the block after the root up to `tip`, oldest first.
    public func chain(to tip: Hash) -> [Entry] {
        var out: [Entry] = []
        var cur = entries[tip]
        while let e = cur {
            out.append(e)
            cur = entries[e.parent]
        }
        return out.reversed()
    }

    /// The ancestor of `id` at `height` (nil if below the root).
    public func ancestor(of id: Hash, atHeight height: UInt64) -> Entry? {
        var cur = entry(id)
        while let e = cur, e.height > height { cur = e.id == root.id ? nil : entry(e.parent) }
        return cur?.height == height ? cur : nil
    }

    /// The blocks that became final (oldest first): those with `depth` blocks on top of them on
    /// the best chain. The root moves to the last of them and every block that does not descend
    /// from it is forgotten (returned in `pruned`).
    public mutating func finalise() -> (final: [Entry], pruned: [Hash]) {
        guard best.height >= root.height + depth + 1 else { return ([], []) }
        let finalHeight = best.height - depth
        let path = chain(to: best.id)
        let final = path.filter { $0.height <= finalHeight }
        guard let newRoot = final.last else { return ([], []) }
        // Keep only descendants of the new root.
        var keep: [Hash: Entry] = [:]
        var stack = children[newRoot.id] ?? []
        while let id = stack.popLast() {
            guard let e = entries[id] else { continue }
            keep[id] = e
            stack += children[id] ?? []
        }
        let finalIDs = Set(final.map(\.id))
        let pruned = entries.keys.filter { keep[$0] == nil && !finalIDs.contains($0) }
        let rootWork = newRoot.cumulativeWork
        entries = keep.mapValues { e in var e = e; e.cumulativeWork -= rootWork; return e }
        children = children.filter { keep[$0.key] != nil || $0.key == newRoot.id }
        var r = newRoot
        r.cumulativeWork = 0
        root = r
        if let b = entries[best.id] { best = b } else { best = r }
        return (final, Array(pruned))
    }
}
