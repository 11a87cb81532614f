/// How a Byzantine validator misbehaves (docs/consensus.md, "Simulator").
public enum ByzantineBehaviour: String, Hashable, Sendable, CaseIterable {
    /// As proposer, sends one block to half of the honest validators and another to the rest, and
    /// (with every colluding equivocator) prevotes and precommits each half's block to that half;
    /// otherwise sends its vote to one half and a conflicting vote to the other.
    case equivocate
    /// As proposer, proposes blocks with a forged client signature.
    case invalidBlocks
    /// Never sends a vote (proposes normally).
    case withholdVotes
}

/// A network partition: validators can talk only within their group, from `startMs` to `endMs`.
public struct Partition: Hashable, Sendable {
    public var startMs: UInt64
    public var endMs: UInt64
    /// Group number of each validator.
    public var group: [Int]
}

/// A crash of one honest validator at `atMs`, restarted from its simulated disk at `restartMs`.
public struct Crash: Hashable, Sendable {
    public var node: Int
    public var atMs: UInt64
    public var restartMs: UInt64
}

/// Everything a seed decides about a run: the faults before global stabilisation (`gstMs`), the
/// clocks, the Byzantine validators and their behaviour.
public struct Scenario: Hashable, Sendable, CustomStringConvertible {
    public var validatorCount: Int
    public var powers: [UInt64]
    public var gstMs: UInt64
    public var lossRate: Double
    public var delayMinMs: UInt64
    public var delayMaxMs: UInt64
    public var duplicationRate: Double
    /// Chance that a message is held back by up to `reorderExtraMs` (so later ones overtake it).
    public var reorderRate: Double
    public var reorderExtraMs: UInt64
    public var partitions: [Partition]
    public var crashes: [Crash]
    /// Local milliseconds per simulated millisecond of each validator's clock.
    public var clockRates: [Double]
    public var clockOffsetsMs: [Int64]
    public var byzantine: [Int: ByzantineBehaviour]
    /// After GST: no loss, no partition, delays within this bound (Δ of the partial-synchrony model).
    public static let deltaMs: UInt64 = 30

    public var faultNames: [String] {
        var f: [String] = []
        if lossRate > 0 { f.append("loss \(Int(lossRate * 100))%") }
        if delayMaxMs > Scenario.deltaMs { f.append("delay \(delayMinMs)-\(delayMaxMs)ms") }
        if duplicationRate > 0 { f.append("duplication \(Int(duplicationRate * 100))%") }
        if reorderRate > 0 { f.append("reorder \(Int(reorderRate * 100))%") }
        if !partitions.isEmpty { f.append("\(partitions.count) partition(s)") }
        if !crashes.isEmpty { f.append("\(crashes.count) crash(es)") }
        if clockRates.contains(where: { $0 != 1 }) { f.append("clock skew") }
        for (i, b) in byzantine.sorted(by: { $0.key < $1.key }) { f.append("byzantine v\(i) \(b.rawValue)") }
        if powers.contains(where: { $0 != 1 }) { f.append("weighted \(powers)") }
        return f
    }

    public var description: String {
        "n=\(validatorCount) gst=\(gstMs)ms " + (faultNames.isEmpty ? "no faults" : faultNames.joined(separator: ", "))
    }

    /// Draws a scenario. Each fault is switched on independently, so seeds cover single faults
    /// and combinations. `byzantineOverride` (tests only) forces that many Byzantine validators,
    /// even beyond f, to show that the invariants can fail.
    static func make(rng: inout SimulationRNG, validatorCount n: Int, byzantineOverride: (count: Int, behaviour: ByzantineBehaviour)?) -> Scenario {
        let weighted = rng.chance(0.25)
        let powers: [UInt64] = (0..<n).map { _ in weighted ? rng.between(1, 3) : 1 }
        let total = powers.reduce(0, +)
        let faulty = rng.chance(0.85)
        let gst: UInt64 = faulty ? rng.between(500, 2_500) : 0
        var s = Scenario(validatorCount: n, powers: powers, gstMs: gst, lossRate: 0, delayMinMs: 1, delayMaxMs: Scenario.deltaMs,
                         duplicationRate: 0, reorderRate: 0, reorderExtraMs: 0, partitions: [], crashes: [],
                         clockRates: Array(repeating: 1, count: n), clockOffsetsMs: Array(repeating: 0, count: n), byzantine: [:])

        // Byzantine validators first: their power must stay below a third (f of 3f+1).
        var order = Array(0..<n)
        for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, rng.index(i + 1)) }
        if let o = byzantineOverride {
            for i in order.prefix(o.count) { s.byzantine[i] = o.behaviour }
        } else if rng.chance(0.4) {
            let want = Int(rng.between(1, UInt64(max(1, (n - 1) / 3))))
            var power: UInt64 = 0
            for i in order.prefix(want) where (power + powers[i]) * 3 < total {
                power += powers[i]
                s.byzantine[i] = ByzantineBehaviour.allCases[rng.index(ByzantineBehaviour.allCases.count)]
            }
        }
        guard faulty else { return s }

        if rng.chance(0.4) { s.lossRate = Double(rng.between(2, 30)) / 100 }
        if rng.chance(0.4) { s.delayMaxMs = rng.between(60, 400) }
        if rng.chance(0.3) { s.duplicationRate = Double(rng.between(5, 30)) / 100 }
        if rng.chance(0.3) { s.reorderRate = Double(rng.between(5, 30)) / 100; s.reorderExtraMs = rng.between(50, 500) }
        if rng.chance(0.4) {
            for _ in 0..<rng.between(1, 2) {
                let start = rng.below(gst)
                let end = min(gst, start + rng.between(200, 2_000))
                s.partitions.append(Partition(startMs: start, endMs: end, group: (0..<n).map { _ in rng.index(2) }))
            }
        }
        let honest = order.filter { s.byzantine[$0] == nil }
        if rng.chance(0.4), !honest.isEmpty {
            for _ in 0..<rng.between(1, 2) {
                let node = honest[rng.index(honest.count)]
                let at = rng.below(gst)
                let restart = min(gst, at + rng.between(50, 1_500))
                if !s.crashes.contains(where: { $0.node == node }) { s.crashes.append(Crash(node: node, atMs: at, restartMs: restart)) }
            }
        }
        if rng.chance(0.4) {
            s.clockRates = (0..<n).map { _ in Double(rng.between(90, 110)) / 100 }
            s.clockOffsetsMs = (0..<n).map { _ in Int64(rng.between(0, 10_000)) - 5_000 }
        }
        return s
    }
}
