import Crypto

/// Which consensus protocol a chain runs, chosen once in genesis (`consensusMode`; absent means
/// BFT). The ledger, transactions, contracts and API are the same in every mode; only who may
/// add a block and when it is final differ (docs/consensus.md, "Consensus modes").
///
/// - `bft`: Tendermint; a block is final when 2f+1 validators commit it (no forks).
/// - `poa`: proof of authority (Aura-style): time is cut into slots of `blockIntervalMs`; the
///   validator `validators[slot mod n]` may seal one block in its slot with its signature. Forks
///   (a late block) are resolved by the longest chain; a block is final `confirmationDepth`
///   blocks deep. Tolerates crashed authorities (their slots stay empty), not lying ones.
/// - `pow`: proof of work (Nakamoto): any validator node may append a block whose header hash is
///   at most the target encoded in `difficultyTarget` (Bitcoin's compact form); the target is
///   retargeted every `retargetInterval` blocks towards `blockIntervalMs` per block; the chain
///   with the most work wins; a block is final `confirmationDepth` blocks deep.
public struct ConsensusMode: Hashable, Sendable, Codable, CanonicalCodable {
    public enum Kind: String, Hashable, Sendable, Codable, CaseIterable {
        case bft, poa, pow
    }

    public var kind: Kind
    /// Blocks that must be built on a block before it is final (poa, pow).
    public var confirmationDepth: UInt32
    /// The compact target of block 1 (pow).
    public var initialDifficulty: UInt32
    /// Blocks between two retargets (pow).
    public var retargetInterval: UInt32

    public init(kind: Kind, confirmationDepth: UInt32? = nil, initialDifficulty: UInt32 = ProofOfWork.compact(expectedHashes: 1 << 16), retargetInterval: UInt32 = 20) {
        self.kind = kind
        self.confirmationDepth = confirmationDepth ?? (kind == .pow ? 6 : kind == .poa ? 2 : 0)
        self.initialDifficulty = initialDifficulty
        self.retargetInterval = retargetInterval
    }

    public static let bft = ConsensusMode(kind: .bft)

    public func encode(to w: inout CanonicalWriter) {
        w.write(kind.rawValue)
        w.write(confirmationDepth)
        w.write(initialDifficulty)
        w.write(retargetInterval)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let name: String = try r.read()
        guard let k = Kind(rawValue: name) else { throw .invalidValue("consensus mode \(name)") }
        kind = k
        confirmationDepth = try r.read()
        initialDifficulty = try r.read()
        retargetInterval = try r.read()
    }

    private enum Keys: String, CodingKey { case kind, confirmationDepth, initialDifficulty, retargetInterval }

    /// JSON: only `kind` is required; the rest default per kind.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init(kind: try c.decode(Kind.self, forKey: .kind),
                  confirmationDepth: try c.decodeIfPresent(UInt32.self, forKey: .confirmationDepth),
                  initialDifficulty: try c.decodeIfPresent(UInt32.self, forKey: .initialDifficulty) ?? ProofOfWork.compact(expectedHashes: 1 << 16),
                  retargetInterval: try c.decodeIfPresent(UInt32.self, forKey: .retargetInterval) ?? 20)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(confirmationDepth, forKey: .confirmationDepth)
        if kind == .pow {
            try c.encode(initialDifficulty, forKey: .initialDifficulty)
            try c.encode(retargetInterval, forKey: .retargetInterval)
        }
    }

    public func validate() throws(Genesis.Invalid) {
        switch kind {
        case .bft: return
        case .poa:
            guard (1...100).contains(confirmationDepth) else { throw Genesis.Invalid(reason: "poa confirmationDepth must be 1…100") }
        case .pow:
            guard (1...100).contains(confirmationDepth) else { throw Genesis.Invalid(reason: "pow confirmationDepth must be 1…100") }
            guard (2...10_000).contains(retargetInterval) else { throw Genesis.Invalid(reason: "pow retargetInterval must be 2…10000") }
            guard let t = ProofOfWork.target(initialDifficulty), t.contains(where: { $0 != 0 }), ProofOfWork.compact(t) == initialDifficulty else {
                throw Genesis.Invalid(reason: "pow initialDifficulty \(initialDifficulty) is not a valid compact target")
            }
        }
    }
}

/// Proof-of-work arithmetic on 256-bit targets (big-endian bytes), in Bitcoin's compact form:
/// `0xEEMMMMMM` is the target `MMMMMM × 256^(EE−3)`. Pure and exact: every node computes the
/// same target, the same retarget and the same work.
public enum ProofOfWork {
    /// The easiest target allowed (Bitcoin regtest's limit): about two hashes per block.
    public static let maximumTarget: [UInt8] = [0x7F] + [UInt8](repeating: 0xFF, count: 31)

    /// The 32-byte target of a compact value; nil for a negative or overflowing encoding.
    public static func target(_ compact: UInt32) -> [UInt8]? {
        let size = Int(compact >> 24)
        let mantissa = compact & 0x007F_FFFF
        guard compact & 0x0080_0000 == 0 else { return nil }
        var out = [UInt8](repeating: 0, count: 32)
        let m = [UInt8((mantissa >> 16) & 0xFF), UInt8((mantissa >> 8) & 0xFF), UInt8(mantissa & 0xFF)]
        // The mantissa's three bytes occupy positions size-1, size-2, size-3 (from the right).
        for (i, byte) in m.enumerated() {
            let fromRight = size - 1 - i
            if fromRight < 0 { continue }  // shifted out (size < 3)
            guard fromRight < 32 else { if byte != 0 { return nil } else { continue } }
            out[31 - fromRight] = byte
        }
        return out
    }

    /// The compact form of a target (rounded down to three significant bytes).
    public static func compact(_ target: [UInt8]) -> UInt32 {
        precondition(target.count == 32)
        guard let first = target.firstIndex(where: { $0 != 0 }) else { return 0 }
        var size = 32 - first
        var m = [UInt8](repeating: 0, count: 3)
        for i in 0..<3 where first + i < 32 { m[i] = target[first + i] }
        // The top three bytes, left-aligned (a shorter number is shifted up, as Bitcoin does).
        var mantissa = UInt32(m[0]) << 16 | UInt32(m[1]) << 8 | UInt32(m[2])
        if mantissa & 0x0080_0000 != 0 { mantissa >>= 8; size += 1 }
        return UInt32(size) << 24 | mantissa
    }

    /// A target that one hash in `expectedHashes` meets (approximately: 2^256 / expectedHashes).
    public static func compact(expectedHashes: UInt64) -> UInt32 {
        let n = min(max(2, expectedHashes), UInt64(1) << 48)
        // 2^256 / n = (2^256 - 1) / n, rounded: long division of 32 bytes of 0xFF by n.
        var out = [UInt8](repeating: 0, count: 32)
        var rem: UInt64 = 0
        for i in 0..<32 {
            let cur = rem << 8 | 0xFF
            out[i] = UInt8(cur / n)
            rem = cur % n
        }
        return compact(lessOrEqual(out, maximumTarget) ? out : maximumTarget)
    }

    /// Whether a header hash meets a compact target.
    public static func meets(_ hash: Hash, _ compact: UInt32) -> Bool {
        guard let t = target(compact) else { return false }
        return lessOrEqual(hash.bytes, t)
    }

    static func lessOrEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        for i in 0..<32 where a[i] != b[i] { return a[i] < b[i] }
        return true
    }

    /// Expected hashes to find a block at this target, 2^256 / target, in integers (saturating
    /// at UInt64.max): the fork choice sums it along a chain, exactly, on every node alike.
    public static func work(_ compact: UInt32) -> UInt64 {
        let size = Int(compact >> 24)
        let mantissa = UInt128(compact & 0x007F_FFFF)
        guard mantissa > 0, compact & 0x0080_0000 == 0 else { return 0 }
        // target = mantissa × 2^(8(size−3)), so work = 2^(256 − 8(size−3)) / mantissa.
        let shift = 256 - 8 * (size - 3)
        guard shift < 127 else { return .max }
        guard shift >= 0 else { return 1 }
        let w = (UInt128(1) << shift) / mantissa
        return w > UInt128(UInt64.max) ? .max : max(1, UInt64(w))
    }

    /// The next target after a retarget window that took `actualMs` where `expectedMs` was
    /// wanted: target × actual / expected with the actual span clamped to [expected/4,
    /// expected×4] (as Bitcoin), capped at `maximumTarget`. Exact integer arithmetic.
    public static func retarget(_ bits: UInt32, actualMs: Int64, expectedMs: Int64) -> UInt32 {
        guard let t = target(bits), expectedMs > 0, expectedMs < 1 << 40 else { return bits }
        let actual = UInt64(min(max(actualMs, expectedMs / 4), expectedMs * 4))
        let expected = UInt64(expectedMs)
        // t × actual on 32 + 6 bytes (actual < 2^42), then ÷ expected by long division.
        var wide = [UInt8](repeating: 0, count: 6) + t
        var carry: UInt64 = 0
        for i in stride(from: wide.count - 1, through: 0, by: -1) {
            let p = UInt64(wide[i]) * actual + carry
            wide[i] = UInt8(p & 0xFF)
            carry = p >> 8
        }
        var rem: UInt64 = 0
        for i in wide.indices {
            let cur = rem << 8 | UInt64(wide[i])
            wide[i] = UInt8(cur / expected)
            rem = cur % expected
        }
        guard carry == 0, wide.prefix(6).allSatisfy({ $0 == 0 }) else { return compact(maximumTarget) }
        let bytes = Array(wide.suffix(32))
        return compact(lessOrEqual(bytes, maximumTarget) ? bytes : maximumTarget)
    }

    /// The compact target the block at `height` must carry: the parent's, except at a multiple
    /// of `interval`, where the window from `windowStartMs` (the block `interval` heights back)
    /// to `parentTimeMs` (R−1 block intervals) is compared with the wanted block time.
    public static func expectedDifficulty(height: UInt64, parentDifficulty: UInt32, mode: ConsensusMode, blockIntervalMs: UInt64,
                                          parentTimeMs: Int64, windowStartMs: @autoclosure () -> Int64) -> UInt32 {
        if height <= 1 { return mode.initialDifficulty }
        let r = UInt64(mode.retargetInterval)
        guard height % r == 0 else { return parentDifficulty }
        return retarget(parentDifficulty, actualMs: parentTimeMs - windowStartMs(), expectedMs: Int64(r - 1) * Int64(blockIntervalMs))
    }

    /// Searches nonces `from..<from+count` for one whose header hash meets the header's target.
    /// The header's canonical encoding ends with the nonce, so the prefix is hashed once.
    public static func search(_ header: BlockHeader, from: UInt64, count: UInt64) -> UInt64? {
        guard let t = target(header.difficultyTarget) else { return nil }
        let bytes = BlockHeader.hashDomain + header.canonicalBytes
        var prefix = SHA256()
        prefix.update(data: bytes.dropLast(8))
        var nonce = from
        let end = from &+ count
        while nonce != end {
            var h = prefix
            withUnsafeBytes(of: nonce.bigEndian) { h.update(bufferPointer: $0) }
            let digest = h.finalize()
            let ok = digest.withUnsafeBytes { d -> Bool in
                for i in 0..<32 where d[i] != t[i] { return d[i] < t[i] }
                return true
            }
            if ok { return nonce }
            nonce &+= 1
        }
        return nil
    }
}

/// Proof-of-authority schedule: slots of `blockIntervalMs` from genesis, one authority per slot.
public enum ProofOfAuthority {
    public static func slot(timestampMs: Int64, genesisTimeMs: Int64, intervalMs: UInt64) -> UInt64 {
        timestampMs <= genesisTimeMs ? 0 : UInt64(timestampMs - genesisTimeMs) / max(1, intervalMs)
    }

    /// Clique's rule (EIP-225): an authority may not seal if it sealed one of the last ⌊n/2⌋
    /// blocks. So fewer than a majority can add at most ⌊n/2⌋ blocks past the point where they
    /// were cut off, and with `confirmationDepth ≥ ⌊n/2⌋` a minority never makes a block final
    /// that the majority does not have (docs/consensus.md).
    public static func recentWindow(_ authorities: Int) -> Int { authorities / 2 }

    public static func mayNotSeal(_ a: Address, recentSigners: [Address], authorities: Int) -> Bool {
        recentSigners.prefix(recentWindow(authorities)).contains(a)
    }

    /// The validator that may seal a block in `slot` (validators in their on-chain order).
    public static func authority(slot: UInt64, validators: [Validator]) -> Validator? {
        validators.isEmpty ? nil : validators[Int(slot % UInt64(validators.count))]
    }

    /// A PoA block's seal is a one-signature `Commit` by the slot's authority over the usual
    /// commit bytes. Returns why it is not, or nil.
    /// `recentSigners` are the proposers of the parent and the blocks before it, newest first
    /// (at least `recentWindow(validators.count)` of them, fewer near genesis).
    public static func checkSeal(_ seal: Commit?, header: BlockHeader, genesisTimeMs: Int64, intervalMs: UInt64, validators: [Validator],
                                 recentSigners: [Address]) -> String? {
        guard let seal else { return "block has no authority seal" }
        let slot = slot(timestampMs: header.timestampMs, genesisTimeMs: genesisTimeMs, intervalMs: intervalMs)
        guard let authority = authority(slot: slot, validators: validators) else { return "no authorities" }
        guard header.proposer == authority.address else { return "proposer \(header.proposer) is not slot \(slot)'s authority \(authority.address)" }
        if mayNotSeal(authority.address, recentSigners: recentSigners, authorities: validators.count) {
            return "authority \(authority.address) sealed one of the last \(recentWindow(validators.count)) blocks"
        }
        guard seal.height == header.height, seal.round == 0, seal.blockHash == header.hash else { return "seal is for another block" }
        guard seal.signatures.count == 1, seal.signatures[0].validator == authority.publicKey else { return "seal must be one signature by the slot's authority" }
        let bytes = Commit.voteBytes(chainID: header.chainID, height: header.height, round: 0, blockHash: header.hash)
        guard authority.publicKey.isValidSignature(seal.signatures[0].signature, for: bytes) else { return "authority seal signature does not verify" }
        return nil
    }

    /// Seals a block as its slot's authority.
    public static func seal(_ header: BlockHeader, with key: PrivateKey) -> Commit {
        let bytes = Commit.voteBytes(chainID: header.chainID, height: header.height, round: 0, blockHash: header.hash)
        return Commit(height: header.height, round: 0, blockHash: header.hash, signatures: [CommitSignature(validator: key.publicKey, signature: key.sign(bytes))])
    }
}

extension StateKeys {
    /// The chain's `ConsensusMode` (absent: BFT).
    public static let consensusMode: [UInt8] = Array("chain/mode".utf8)
}
