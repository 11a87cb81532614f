import IoMTCore
import PropertyBased
import Testing

/// A deliberately naive, recursive RFC 6962 §2.1 implementation to check `MerkleTree` against.
enum ReferenceMerkle {
    static func sha256(_ b: [UInt8]) -> Hash { Hash.sha256(b) }

    static func split(_ n: Int) -> Int {
        var k = 1
        while k * 2 < n { k *= 2 }
        return k
    }

    /// MTH(D[n]).
    static func mth(_ d: ArraySlice<[UInt8]>) -> Hash {
        switch d.count {
        case 0: return sha256([])
        case 1: return sha256([0x00] + d[d.startIndex])
        default:
            let k = split(d.count)
            return sha256([0x01] + mth(d.prefix(k)).bytes + mth(d.dropFirst(k)).bytes)
        }
    }

    /// PATH(m, D[n]).
    static func path(_ m: Int, _ d: ArraySlice<[UInt8]>) -> [Hash] {
        guard d.count > 1 else { return [] }
        let k = split(d.count)
        return m < k
            ? path(m, d.prefix(k)) + [mth(d.dropFirst(k))]
            : path(m - k, d.dropFirst(k)) + [mth(d.prefix(k))]
    }
}

@Suite("RFC 6962 Merkle tree")
struct MerkleTreeTests {
    /// The Certificate Transparency test leaves (certificate-transparency/cpp/merkletree/merkle_tree_test.cc).
    static let ctLeaves: [[UInt8]] = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"].map { Hex.decode($0)! }

    /// Published roots for the first 1…8 of those leaves.
    static let ctRoots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]

    static func leaves(_ n: Int, salt: UInt64 = 0) -> [[UInt8]] {
        (0..<n).map { i in Array("leaf-\(salt)-\(i)".utf8) }
    }

    @Test("the empty tree's root is SHA-256 of the empty string")
    func emptyRoot() {
        #expect(MerkleTree.emptyRoot.hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(MerkleTree.root(leaves: []) == MerkleTree.emptyRoot)
        #expect(MerkleTree.root(leafHashes: []) == MerkleTree.emptyRoot)
        #expect(MerkleTree.proof(leafHashes: [], index: 0) == nil)
    }

    @Test("Certificate Transparency known-answer roots for sizes 1…8", arguments: 1...8)
    func knownRoots(_ n: Int) {
        let leaves = Array(Self.ctLeaves.prefix(n))
        #expect(MerkleTree.root(leaves: leaves).hex == Self.ctRoots[n - 1])
        #expect(ReferenceMerkle.mth(leaves[...]).hex == Self.ctRoots[n - 1])
    }

    @Test("Certificate Transparency known-answer audit paths")
    func knownPaths() throws {
        let cases: [(index: Int, size: Int, path: [String])] = [
            (0, 1, []),
            (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
            (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
            (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
            (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
        ]
        for c in cases {
            let hashes = Self.ctLeaves.prefix(c.size).map(MerkleTree.leafHash)
            let proof = try #require(MerkleTree.proof(leafHashes: Array(hashes), index: c.index))
            #expect(proof.path.map(\.hex) == c.path, "PATH(\(c.index), D[\(c.size)])")
            #expect(proof.leafIndex == UInt64(c.index) && proof.treeSize == UInt64(c.size))
            #expect(proof.verify(leaf: Self.ctLeaves[c.index], root: Hash(hex: Self.ctRoots[c.size - 1])!))
        }
    }

    @Test("leaf and node hashes are domain-separated SHA-256")
    func hashes() {
        #expect(MerkleTree.leafHash([1, 2]) == Hash.sha256([0, 1, 2]))
        let a = Fixture.hash(0xAA), b = Fixture.hash(0xBB)
        #expect(MerkleTree.nodeHash(a, b) == Hash.sha256([1] + a.bytes + b.bytes))
        #expect(MerkleTree.nodeHash(a, b) != MerkleTree.nodeHash(b, a))
        // The same 64 bytes as a leaf and as a node give different hashes.
        #expect(MerkleTree.leafHash(a.bytes + b.bytes) != MerkleTree.nodeHash(a, b))
    }

    @Test("roots and every audit path match the reference for every size up to 70")
    func exhaustiveSmallTrees() throws {
        for n in 1...70 {
            let leaves = Self.leaves(n)
            let hashes = leaves.map(MerkleTree.leafHash)
            let root = MerkleTree.root(leafHashes: hashes)
            #expect(root == ReferenceMerkle.mth(leaves[...]), "n = \(n)")
            for m in 0..<n {
                let proof = try #require(MerkleTree.proof(leafHashes: hashes, index: m))
                #expect(proof.path == ReferenceMerkle.path(m, leaves[...]), "PATH(\(m), D[\(n)])")
                #expect(proof.verify(leaf: leaves[m], root: root), "m = \(m), n = \(n)")
            }
            #expect(MerkleTree.proof(leafHashes: hashes, index: n) == nil)
            #expect(MerkleTree.proof(leafHashes: hashes, index: -1) == nil)
        }
    }

    @Test("proofs verify, and fail for another leaf, index, size, root or path")
    func proofProperties() async {
        let gen = Generator<(Int, UInt64, [Int]), Shrink.None<(Int, UInt64, [Int])>> { rng in
            let n = Int.random(in: 1...300, using: &rng)
            let indices = [0, n - 1] + (0..<4).map { _ in Int.random(in: 0..<n, using: &rng) }
            return (n, UInt64.random(in: 0...UInt64.max, using: &rng), indices)
        }
        await propertyCheck(count: 80, input: gen) { n, salt, indices in
            let leaves = Self.leaves(n, salt: salt)
            let hashes = leaves.map(MerkleTree.leafHash)
            let root = MerkleTree.root(leafHashes: hashes)
            #expect(root == ReferenceMerkle.mth(leaves[...]))
            for m in indices {
                let proof = try #require(MerkleTree.proof(leafHashes: hashes, index: m))
                #expect(proof.verify(leaf: leaves[m], root: root))
                #expect(proof.rootFor(leafHash: hashes[m]) == root)
                // Another leaf's data.
                #expect(!proof.verify(leaf: leaves[(m + 1) % n] + [0], root: root))
                #expect(!proof.verify(leaf: Array("leaf-\(salt)-\(m)x".utf8), root: root))
                // Another root.
                #expect(!proof.verify(leaf: leaves[m], root: MerkleTree.root(leafHashes: hashes + [hashes[0]])))
                if n > 1 {
                    // The same path claimed for another index.
                    for other in Set([(m + 1) % n, (m + n - 1) % n, n - 1 - m]) where other != m {
                        var p = proof
                        p.leafIndex = UInt64(other)
                        #expect(!p.verify(leaf: leaves[m], root: root), "index \(m) claimed as \(other) of \(n)")
                    }
                    // A tampered path element.
                    for i in proof.path.indices {
                        var p = proof
                        var bytes = p.path[i].bytes
                        bytes[Int(salt % 32)] ^= 0x01
                        p.path[i] = Hash(bytes: bytes)!
                        #expect(!p.verify(leaf: leaves[m], root: root))
                    }
                    // A path element dropped or one too many.
                    var shorter = proof
                    shorter.path.removeLast()
                    #expect(!shorter.verify(leaf: leaves[m], root: root))
                }
                var longer = proof
                longer.path.append(root)
                #expect(!longer.verify(leaf: leaves[m], root: root))
                // A wrong tree size: RFC 6962 binds the size only through the audit path's shape
                // (its length and which side each sibling is on). A claimed size verifies exactly
                // when it gives the same shape; sizes at or below the index never verify.
                for size in Set([n - 1, n + 1, 2 * n, n + 7, m]) where size != n {
                    var p = proof
                    p.treeSize = UInt64(size)
                    let sameShape = Self.shape(index: m, size: size) == Self.shape(index: m, size: n)
                    #expect(p.verify(leaf: leaves[m], root: root) == sameShape, "index \(m): size \(n) claimed as \(size)")
                }
                var zero = proof
                zero.treeSize = UInt64(m)
                #expect(zero.rootFor(leafHash: hashes[m]) == nil)
            }
        }
    }

    /// The shape of PATH(index, D[size]) from the bottom: for each level, whether the sibling is on
    /// the left. Nil when the index is outside the tree.
    static func shape(index: Int, size: Int) -> [Bool]? {
        guard index >= 0, index < size else { return nil }
        func walk(_ m: Int, _ n: Int) -> [Bool] {
            guard n > 1 else { return [] }
            let k = ReferenceMerkle.split(n)
            return m < k ? walk(m, k) + [false] : walk(m - k, n - k) + [true]
        }
        return walk(index, size)
    }

    @Test("a specific wrong tree size: the last leaf of 5 claimed in a tree of 6")
    func wrongSize() throws {
        let leaves = Self.leaves(5)
        let hashes = leaves.map(MerkleTree.leafHash)
        let root = MerkleTree.root(leafHashes: hashes)
        var proof = try #require(MerkleTree.proof(leafHashes: hashes, index: 4))
        #expect(proof.path.count == 1)
        proof.treeSize = 6
        #expect(!proof.verify(leaf: leaves[4], root: root))
        proof.treeSize = 4
        #expect(!proof.verify(leaf: leaves[4], root: root))
        proof.treeSize = 0
        #expect(!proof.verify(leaf: leaves[4], root: root))
    }

    @Test("an interior node cannot be presented as a leaf")
    func secondPreimage() throws {
        let leaves = Self.leaves(4)
        let hashes = leaves.map(MerkleTree.leafHash)
        let root = MerkleTree.root(leafHashes: hashes)
        let left = MerkleTree.nodeHash(hashes[0], hashes[1])
        let right = MerkleTree.nodeHash(hashes[2], hashes[3])
        #expect(root == MerkleTree.nodeHash(left, right))
        // A two-leaf "tree" whose first leaf is the left interior node's preimage.
        let forged = InclusionProof(leafIndex: 0, treeSize: 2, path: [right])
        #expect(!forged.verify(leaf: hashes[0].bytes + hashes[1].bytes, root: root))
        #expect(!forged.verify(leaf: left.bytes, root: root))
        // Only skipping the leaf prefix would make it work, which `verify` never does.
        #expect(forged.rootFor(leafHash: left) == root)
        // Likewise, the root of two leaves is not the leaf hash of their concatenation.
        #expect(MerkleTree.root(leaves: [leaves[0], leaves[1]]) != MerkleTree.leafHash(hashes[0].bytes + hashes[1].bytes))
    }

    @Test("the root depends on order and on every leaf")
    func rootSensitivity() {
        let leaves = Self.leaves(9)
        let root = MerkleTree.root(leaves: leaves)
        #expect(MerkleTree.root(leaves: Array(leaves.reversed())) != root)
        #expect(MerkleTree.root(leaves: Array(leaves.dropLast())) != root)
        // Duplicating the last leaf must not give the same root (no Bitcoin-style odd-node duplication).
        #expect(MerkleTree.root(leaves: leaves + [leaves[8]]) != root)
        for i in leaves.indices {
            var l = leaves
            l[i] += [0]
            #expect(MerkleTree.root(leaves: l) != root)
        }
    }

    @Test("a proof with more than 64 path elements is refused")
    func pathTooLong() {
        let p = InclusionProof(leafIndex: 0, treeSize: .max, path: [Hash](repeating: .zero, count: 65))
        #expect(p.rootFor(leafHash: .zero) == nil)
    }
}
