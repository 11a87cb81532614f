/// The binary Merkle tree of RFC 6962 §2.1 (Certificate Transparency), used for the transactions
/// of a block and, from the gateway on, for batches of readings.
///
/// Leaves and interior nodes are domain-separated so that no leaf can pose as a node:
/// `leaf = SHA-256(0x00 ‖ data)`, `node = SHA-256(0x01 ‖ left ‖ right)`, and the empty tree's
/// root is `SHA-256("")`. A tree of n > 1 leaves splits at the largest power of two below n.
public enum MerkleTree {
    public static let emptyRoot = Hash.sha256([UInt8]())

    public static func leafHash(_ data: [UInt8]) -> Hash { Hash.tagged(0x00, data) }
    public static func nodeHash(_ left: Hash, _ right: Hash) -> Hash { Hash.tagged(0x01, left.bytes, right.bytes) }

    /// Root over leaf data.
    public static func root(leaves: [[UInt8]]) -> Hash { root(leafHashes: leaves.map(leafHash)) }

    /// Root over already-hashed leaves (`leafHash` of each datum).
    public static func root(leafHashes: [Hash]) -> Hash {
        guard !leafHashes.isEmpty else { return emptyRoot }
        // Bottom-up: pair neighbours; an odd last node is promoted unchanged. This yields exactly
        // RFC 6962's MTH, whose left subtree is always the largest full power-of-two tree.
        var level = leafHashes
        while level.count > 1 {
            var next: [Hash] = []
            next.reserveCapacity((level.count + 1) / 2)
            var i = 0
            while i + 1 < level.count {
                next.append(nodeHash(level[i], level[i + 1]))
                i += 2
            }
            if i < level.count { next.append(level[i]) }
            level = next
        }
        return level[0]
    }

    /// The audit path PATH(m, D[n]) of RFC 6962 §2.1.1 for leaf `index`.
    public static func proof(leafHashes: [Hash], index: Int) -> InclusionProof? {
        guard index >= 0, index < leafHashes.count else { return nil }
        var path: [Hash] = []
        auditPath(index, leafHashes[...], into: &path)
        return InclusionProof(leafIndex: UInt64(index), treeSize: UInt64(leafHashes.count), path: path)
    }

    private static func auditPath(_ m: Int, _ d: ArraySlice<Hash>, into path: inout [Hash]) {
        let n = d.count
        guard n > 1 else { return }
        let k = largestPowerOfTwo(below: n)
        if m < k {
            auditPath(m, d.prefix(k), into: &path)
            path.append(root(leafHashes: Array(d.dropFirst(k))))
        } else {
            auditPath(m - k, d.dropFirst(k), into: &path)
            path.append(root(leafHashes: Array(d.prefix(k))))
        }
    }

    static func largestPowerOfTwo(below n: Int) -> Int {
        var k = 1
        while k << 1 < n { k <<= 1 }
        return k
    }
}

/// An inclusion proof: the leaf's index, the tree size and the audit path, bottom-up.
public struct InclusionProof: Hashable, Sendable, Codable, CanonicalCodable {
    public var leafIndex: UInt64
    public var treeSize: UInt64
    public var path: [Hash]

    public init(leafIndex: UInt64, treeSize: UInt64, path: [Hash]) {
        self.leafIndex = leafIndex
        self.treeSize = treeSize
        self.path = path
    }

    /// RFC 9162 §2.1.3.2: recomputes the root from the leaf and the path.
    public func rootFor(leafHash: Hash) -> Hash? {
        guard leafIndex < treeSize, path.count <= 64 else { return nil }
        var fn = leafIndex
        var sn = treeSize - 1
        var r = leafHash
        for p in path {
            guard sn != 0 else { return nil }
            if fn & 1 == 1 || fn == sn {
                r = MerkleTree.nodeHash(p, r)
                while fn & 1 == 0 && fn != 0 {
                    fn >>= 1
                    sn >>= 1
                }
            } else {
                r = MerkleTree.nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 ? r : nil
    }

    public func verify(leaf data: [UInt8], root: Hash) -> Bool {
        rootFor(leafHash: MerkleTree.leafHash(data)) == root
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(leafIndex)
        w.write(treeSize)
        w.write(path)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        leafIndex = try r.read()
        treeSize = try r.read()
        path = try r.readArray()
    }
}
