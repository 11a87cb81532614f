import Foundation
import IoMTCore
import PropertyBased
import Testing

/// A naive recursive definition of the compacted sparse Merkle root (ADR 0002), independent of the
/// persistent tree: empty = zero, one entry = its leaf, otherwise split on the next key-hash bit.
enum ReferenceSMT {
    static func root(_ entries: [[UInt8]: [UInt8]]) -> Hash {
        let leaves = entries.map { (kh: Hash.sha256($0.key), vh: Hash.sha256($0.value)) }
        return subtree(leaves, depth: 0)
    }

    private static func subtree(_ leaves: [(kh: Hash, vh: Hash)], depth: Int) -> Hash {
        switch leaves.count {
        case 0: return .zero
        case 1: return Hash.sha256([0x10] + leaves[0].kh.bytes + leaves[0].vh.bytes)
        default:
            let left = leaves.filter { !$0.kh.bit(depth) }, right = leaves.filter { $0.kh.bit(depth) }
            return Hash.sha256([0x11] + subtree(left, depth: depth + 1).bytes + subtree(right, depth: depth + 1).bytes)
        }
    }
}

/// A random workload: writes (nil = delete) over a small key universe so keys are overwritten and
/// deleted often, plus the universe itself for absence checks.
struct Workload: Sendable, CustomStringConvertible {
    var universe: [[UInt8]]
    var writes: [(key: [UInt8], value: [UInt8]?)]
    var seed: UInt64

    /// The final key/value map (last write wins).
    var model: [[UInt8]: [UInt8]] {
        var m: [[UInt8]: [UInt8]] = [:]
        for w in writes { m[w.key] = w.value }
        return m
    }

    var description: String { "Workload(\(universe.count) keys, \(writes.count) writes, seed \(seed))" }

    static let generator = Generator<Workload, Shrink.None<Workload>> { rng in
        let universeSize = Int.random(in: 1...60, using: &rng)
        // Keys of varied length, including the empty key.
        var keys = Set<[UInt8]>()
        while keys.count < universeSize { keys.insert(rng.bytes(0...6)) }
        let universe = keys.sorted { $0.lexicographicallyPrecedes($1) }
        let deleteRate = Double.random(in: 0...0.5, using: &rng)
        let writes: [(key: [UInt8], value: [UInt8]?)] = (0..<Int.random(in: 0...120, using: &rng)).map { _ in
            let key = universe.randomElement(using: &rng)!
            return (key, Double.random(in: 0..<1, using: &rng) < deleteRate ? nil : rng.bytes(0...12))
        }
        return Workload(universe: universe, writes: writes, seed: UInt64.random(in: 0...UInt64.max, using: &rng))
    }
}

/// A small deterministic RNG (SplitMix64) for shuffles inside a property.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Authenticated state (sparse Merkle tree)")
struct AuthenticatedStateTests {
    static func oneByOne(_ writes: [(key: [UInt8], value: [UInt8]?)], from start: AuthenticatedState = AuthenticatedState()) -> AuthenticatedState {
        writes.reduce(start) { s, w in s.applying([w.key: w.value]) }
    }

    static func batch(_ writes: [(key: [UInt8], value: [UInt8]?)]) -> [[UInt8]: [UInt8]?] {
        var b: [[UInt8]: [UInt8]?] = [:]
        for w in writes { b[w.key] = .some(w.value) }
        return b
    }

    // MARK: fixed cases

    @Test("the empty state")
    func empty() {
        let s = AuthenticatedState()
        #expect(s.root == .zero)
        #expect(s.count == 0)
        #expect(s.value(forKey: []) == nil)
        #expect(s.entries().isEmpty)
        let p = s.proof(forKey: Array("k".utf8))
        #expect(p.siblings.isEmpty && p.terminal == .empty && p.value == nil)
        #expect(p.isValid(root: .zero))
        #expect(!p.isValid(root: Fixture.hash(1)))
        // Deleting from nothing, and an empty batch, change nothing.
        #expect(s.applying([Array("k".utf8): nil]).root == .zero)
        #expect(s.applying([:]).root == .zero)
    }

    @Test("one key: the root is its leaf hash")
    func singleKey() throws {
        let key = Array("acct/x".utf8), value: [UInt8] = [1, 2, 3]
        let s = AuthenticatedState().applying([key: value])
        #expect(s.count == 1)
        #expect(s.root == Hash.sha256([0x10] + Hash.sha256(key).bytes + Hash.sha256(value).bytes))
        #expect(s.root == AuthenticatedState.leafHash(keyHash: Hash.sha256(key), valueHash: Hash.sha256(value)))
        #expect(s.value(forKey: key) == value)
        let p = s.proof(forKey: key)
        #expect(p.siblings.isEmpty && p.value == value)
        try p.verify(root: s.root)
        // An empty value is a value, not an absence.
        let e = AuthenticatedState().applying([key: []])
        #expect(e.count == 1 && e.value(forKey: key) == [] && e.root != .zero)
        #expect(e.proof(forKey: key).value == [])
    }

    @Test("two keys split on their first differing key-hash bit")
    func twoKeys() throws {
        // Find two keys whose hashes differ in the first bit, so the root is one internal node.
        let a = Array("a".utf8)
        let b = try #require((0..<64).map { Array("b\($0)".utf8) }.first { Hash.sha256($0).bit(0) != Hash.sha256(a).bit(0) })
        let s = AuthenticatedState().applying([a: [1], b: [2]])
        let la = AuthenticatedState.leafHash(keyHash: Hash.sha256(a), valueHash: Hash.sha256([1]))
        let lb = AuthenticatedState.leafHash(keyHash: Hash.sha256(b), valueHash: Hash.sha256([2]))
        let (l, r) = Hash.sha256(a).bit(0) ? (lb, la) : (la, lb)
        #expect(s.root == Hash.sha256([0x11] + l.bytes + r.bytes))
        #expect(s.root == AuthenticatedState.internalHash(l, r))
        #expect(s.proof(forKey: a).siblings == [Hash.sha256(a).bit(0) ? l : r])
    }

    @Test("state hashes are domain-separated from RFC 6962 and from each other")
    func domainSeparation() {
        let x = Fixture.hash(1), y = Fixture.hash(2)
        #expect(AuthenticatedState.leafHash(keyHash: x, valueHash: y) != AuthenticatedState.internalHash(x, y))
        #expect(AuthenticatedState.internalHash(x, y) != MerkleTree.nodeHash(x, y))
        #expect(AuthenticatedState.leafHash(keyHash: x, valueHash: y) != MerkleTree.leafHash(x.bytes + y.bytes))
    }

    @Test("snapshots are values: applying writes never changes the original")
    func persistence() {
        let s1 = AuthenticatedState().applying([[1]: [1], [2]: [2], [3]: [3]])
        let root1 = s1.root
        let s2 = s1.applying([[1]: nil, [2]: [9], [4]: [4]])
        #expect(s1.root == root1 && s1.count == 3)
        #expect(s1.value(forKey: [1]) == [1] && s1.value(forKey: [2]) == [2] && s1.value(forKey: [4]) == nil)
        #expect(s2.value(forKey: [1]) == nil && s2.value(forKey: [2]) == [9] && s2.value(forKey: [4]) == [4])
        #expect(s2.count == 3 && s2.root != root1)
    }

    @Test("writing the same value again changes nothing; count tracks inserts, updates and deletes")
    func counting() {
        var s = AuthenticatedState()
        for i in 0..<50 { s = s.applying([[UInt8(i)]: [UInt8(i)]]) }
        #expect(s.count == 50)
        let root = s.root
        #expect(s.applying([[7]: [7]]).root == root)
        #expect(s.applying([[7]: [7]]).count == 50)
        #expect(s.applying([[7]: [8]]).count == 50)
        #expect(s.applying([[7]: nil, [200]: nil]).count == 49)
        #expect(s.applying([[7]: nil, [200]: [1]]).count == 50)
    }

    // MARK: properties

    @Test("the root matches the reference definition and the model, whatever the workload")
    func matchesReference() async {
        await propertyCheck(count: 150, input: Workload.generator) { w in
            let model = w.model
            let s = Self.oneByOne(w.writes)
            #expect(s.root == ReferenceSMT.root(model))
            #expect(s.count == model.count)
            for k in w.universe { #expect(s.value(forKey: k) == model[k]) }
            let entries = s.entries()
            #expect(entries.count == model.count)
            #expect(Dictionary(uniqueKeysWithValues: entries.map { ($0.key, $0.value) }) == model)
            // entries() is in key-hash order.
            let hashes = entries.map { Hash.sha256($0.key) }
            #expect(hashes == hashes.sorted())
        }
    }

    @Test("(a) the root is independent of insertion order and batching")
    func orderAndBatching() async {
        await propertyCheck(count: 150, input: Workload.generator) { w in
            var rng = SplitMix(state: w.seed)
            let model = w.model
            let sequential = Self.oneByOne(w.writes)
            let batched = AuthenticatedState().applying(Self.batch(w.writes))
            // The final map's entries, inserted one at a time in a random order.
            let shuffled = Self.oneByOne(model.map { (key: $0.key, value: Optional($0.value)) }.shuffled(using: &rng))
            // The writes in random-size chunks, each chunk one batch.
            var chunked = AuthenticatedState()
            var i = 0
            while i < w.writes.count {
                let n = Int.random(in: 1...8, using: &rng)
                chunked = chunked.applying(Self.batch(Array(w.writes[i..<min(i + n, w.writes.count)])))
                i += n
            }
            // The model's entries as one batch over a state already holding unrelated garbage, then
            // the garbage deleted.
            let garbage = (0..<5).map { [0xEE, UInt8($0)] + Array("garbage".utf8) }.filter { model[$0] == nil }
            var detour = AuthenticatedState().applying(Dictionary(uniqueKeysWithValues: garbage.map { ($0, Optional([UInt8]([1]))) }))
            detour = detour.applying(model.mapValues { Optional($0) })
            detour = detour.applying(Dictionary(uniqueKeysWithValues: garbage.map { ($0, Optional<[UInt8]>.none) }))

            for (name, s) in [("batched", batched), ("shuffled", shuffled), ("chunked", chunked), ("detour", detour)] {
                #expect(s.root == sequential.root, "\(name)")
                #expect(s.count == sequential.count, "\(name)")
                #expect(s.count == model.count, "\(name)")
            }
        }
    }

    @Test("(b) every present key has a valid inclusion proof, every absent key a valid exclusion proof")
    func proofsVerify() async {
        await propertyCheck(count: 150, input: Workload.generator) { w in
            let model = w.model
            let s = AuthenticatedState().applying(Self.batch(w.writes))
            let absentProbes = (0..<10).map { Array("absent-\($0)".utf8) }.filter { model[$0] == nil }
            for key in w.universe + absentProbes {
                let proof = s.proof(forKey: key)
                #expect(proof.key == key)
                #expect(proof.value == model[key])
                do { try proof.verify(root: s.root) } catch { Issue.record("proof for \(key) failed: \(error)") }
                // The proof never goes deeper than needed: at most the depth that separates all keys.
                #expect(proof.siblings.count <= 64)
            }
        }
    }

    @Test("(c) proofs fail against another root, with a modified value, or with a tampered sibling")
    func proofsFail() async {
        await propertyCheck(count: 150, input: Workload.generator) { w in
            let model = w.model
            let s = AuthenticatedState().applying(Self.batch(w.writes))
            let otherRoot = s.applying([Array("one more key".utf8): [1]]).root
            for key in w.universe {
                let proof = s.proof(forKey: key)
                #expect(!proof.isValid(root: otherRoot))
                #expect(!proof.isValid(root: .zero) || s.root == .zero)

                var p = proof
                if let v = model[key] {
                    // A modified value, a dropped value (claiming absence of a present key).
                    p.value = v + [0]
                    #expect(throws: StateProof.Failure.valueMismatch) { try p.verify(root: s.root) }
                    if !v.isEmpty {
                        p.value = v
                        p.value![0] ^= 0x80
                        #expect(throws: StateProof.Failure.valueMismatch) { try p.verify(root: s.root) }
                    }
                    p.value = nil
                    #expect(throws: StateProof.Failure.valueMismatch) { try p.verify(root: s.root) }
                    // The leaf rewritten to carry a different value hash: the root no longer matches.
                    p = proof
                    p.value = [9, 9, 9]
                    p.terminal = .leaf(keyHash: Hash.sha256(key), valueHash: Hash.sha256([9, 9, 9]))
                    #expect(!p.isValid(root: s.root))
                } else {
                    // Claiming a value for an absent key.
                    p.value = [1]
                    #expect(!p.isValid(root: s.root))
                    // An empty terminal swapped for a leaf of this key (or vice versa).
                    p = proof
                    if case .leaf(let lk, _) = proof.terminal {
                        p.terminal = .empty
                        #expect(!p.isValid(root: s.root))
                        // Another key's leaf is only evidence of absence on this key's path.
                        var bytes = lk.bytes
                        if !proof.siblings.isEmpty {
                            bytes[0] ^= 0x80 // flips bit 0, which every path checks
                            p = proof
                            if case .leaf(_, let lv) = proof.terminal { p.terminal = .leaf(keyHash: Hash(bytes: bytes)!, valueHash: lv) }
                            #expect(throws: StateProof.Failure.leafOutsidePath) { try p.verify(root: s.root) }
                        }
                    }
                }
                // A tampered sibling (each one in turn).
                for i in proof.siblings.indices {
                    p = proof
                    var bytes = p.siblings[i].bytes
                    bytes[Int(w.seed % 32)] ^= 0x01
                    p.siblings[i] = Hash(bytes: bytes)!
                    #expect(!p.isValid(root: s.root))
                }
                // A sibling added or removed.
                p = proof
                p.siblings.append(.zero)
                #expect(!p.isValid(root: s.root))
                if !proof.siblings.isEmpty {
                    p = proof
                    p.siblings.removeLast()
                    #expect(!p.isValid(root: s.root))
                }
                // The proof of one key presented for another.
                p = proof
                p.key = key + [0xFF]
                if model[p.key] == nil, model[key] != nil { #expect(!p.isValid(root: s.root)) }
            }
        }
    }

    @Test("(d) deleting everything returns the empty root")
    func deleteEverything() async {
        await propertyCheck(count: 150, input: Workload.generator) { w in
            var rng = SplitMix(state: w.seed)
            let s = Self.oneByOne(w.writes)
            let keys = w.model.keys.shuffled(using: &rng)
            // One at a time, in a random order.
            var t = s
            for (i, k) in keys.enumerated() {
                t = t.applying([k: nil])
                #expect(t.count == keys.count - i - 1)
            }
            #expect(t.root == .zero && t.count == 0)
            #expect(t.entries().isEmpty)
            // All at once, including keys that were never there.
            let all = Dictionary(uniqueKeysWithValues: w.universe.map { ($0, Optional<[UInt8]>.none) })
            let u = s.applying(all)
            #expect(u.root == .zero && u.count == 0)
            for k in w.universe { #expect(u.value(forKey: k) == nil) }
        }
    }

    @Test("(e) build(entries) equals the incremental result")
    func buildMatchesIncremental() async {
        await propertyCheck(count: 150, input: Workload.generator) { w in
            var rng = SplitMix(state: w.seed)
            let s = Self.oneByOne(w.writes)
            let rebuilt = AuthenticatedState.build(s.entries())
            #expect(rebuilt.root == s.root && rebuilt.count == s.count)
            let fromModel = AuthenticatedState.build(w.model.map { (key: $0.key, value: $0.value) }.shuffled(using: &rng))
            #expect(fromModel.root == s.root && fromModel.count == s.count)
            // A built state keeps working incrementally.
            let extra: [[UInt8]: [UInt8]?] = [Array("extra".utf8): [1], (w.universe.first ?? []): nil]
            #expect(rebuilt.applying(extra).root == s.applying(extra).root)
            #expect(rebuilt.applying(extra).count == s.applying(extra).count)
        }
    }

    @Test("(f) changing one byte of one value changes the root")
    func oneByteChangesRoot() async {
        await propertyCheck(count: 150, input: Workload.generator) { w in
            let model = w.model
            guard !model.isEmpty else { return }
            let s = Self.oneByOne(w.writes)
            let keys = model.keys.sorted { $0.lexicographicallyPrecedes($1) }
            let key = keys[Int(w.seed % UInt64(keys.count))]
            var value = model[key]!
            if value.isEmpty { value = [0] } else { value[Int(w.seed >> 8) % value.count] &+= 1 }
            let t = s.applying([key: value])
            #expect(t.root != s.root)
            #expect(t.count == s.count)
            #expect(t.root == ReferenceSMT.root(model.merging([key: value]) { $1 }))
            // And back again.
            #expect(t.applying([key: model[key]!]).root == s.root)
            // Changing the key instead of the value also changes the root.
            let moved = s.applying([key: nil, key + [0]: model[key]!])
            if model[key + [0]] == nil { #expect(moved.root != s.root) }
        }
    }

    @Test("a state proof survives a JSON round trip")
    func proofJSON() throws {
        let s = AuthenticatedState().applying([[1]: [10], [2]: [20], [3]: [30]])
        for key: [UInt8] in [[1], [4]] {
            let p = s.proof(forKey: key)
            let data = try JSONEncoder().encode(p)
            let back = try JSONDecoder().decode(StateProof.self, from: data)
            #expect(back == p)
            #expect(back.isValid(root: s.root))
        }
    }

    @Test("a proof deeper than 256 levels is refused")
    func tooDeep() {
        let p = StateProof(key: [1], siblings: [Hash](repeating: .zero, count: 257), terminal: .empty, value: nil)
        #expect(throws: StateProof.Failure.tooDeep) { try p.verify(root: .zero) }
    }
}

@Test("build keeps the last value of a key given twice, as applying writes in order would")
func buildWithDuplicateKeys() {
    let pairs: [(key: [UInt8], value: [UInt8])] = [(Array("a".utf8), [1]), (Array("b".utf8), [2]), (Array("a".utf8), [3])]
    let built = AuthenticatedState.build(pairs)
    let applied = AuthenticatedState().applying([Array("a".utf8): [3], Array("b".utf8): [2]])
    #expect(built.root == applied.root)
    #expect(built.count == 2)
    #expect(built.value(forKey: Array("a".utf8)) == [3])
}
