/// xoshiro256** (Blackman and Vigna), seeded through SplitMix64. Every choice the simulator makes
/// comes from one of these, so a seed fixes the whole run.
public struct SimulationRNG: Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var sm = seed
        func splitMix() -> UInt64 {
            sm &+= 0x9E37_79B9_7F4A_7C15
            var z = sm
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = SimulationRNG.rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = SimulationRNG.rotl(s.3, 45)
        return result
    }

    /// Uniform in `0..<bound` (Lemire's multiply-shift with rejection; no modulo bias).
    public mutating func below(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0)
        while true {
            let m = next().multipliedFullWidth(by: bound)
            if m.low >= (0 &- bound) % bound { return m.high }
        }
    }

    /// Uniform in `lo...hi`.
    public mutating func between(_ lo: UInt64, _ hi: UInt64) -> UInt64 {
        precondition(lo <= hi)
        return lo + below(hi - lo + 1)
    }

    public mutating func index(_ count: Int) -> Int { Int(below(UInt64(count))) }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// True with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { unit() < p }

    public mutating func bytes(_ n: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(n + 8)
        while out.count < n {
            var w = next()
            for _ in 0..<8 { out.append(UInt8(truncatingIfNeeded: w)); w >>= 8 }
        }
        return Array(out.prefix(n))
    }
}
