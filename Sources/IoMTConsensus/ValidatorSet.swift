import IoMTCore

/// The validators of one height, with their voting power and the proposer schedule.
///
/// Quorums are weighted by `Validator.power` (docs/consensus.md, "Quorums"): a *quorum* ("2f+1")
/// is strictly more than two thirds of the total power, a *third* ("f+1") strictly more than one third.
public struct ValidatorSet: Hashable, Sendable {
    /// Total power is bounded so the proposer schedule (one slot per unit of power) stays small
    /// and power arithmetic never overflows.
    public static let maxTotalPower: UInt64 = 1 << 16

    public let validators: [Validator]
    public let totalPower: UInt64
    private let indexByKey: [PublicKey: Int]
    /// Smooth weighted round-robin: slot `k` names the proposer index for `(height + round) mod totalPower == k`.
    private let schedule: [Int]

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case empty
        case zeroPower(PublicKey)
        case duplicate(PublicKey)
        case totalPowerTooLarge(UInt64)

        public var description: String {
            switch self {
            case .empty: return "a validator set needs at least one validator"
            case .zeroPower(let k): return "validator \(k) has zero power; remove it instead"
            case .duplicate(let k): return "validator \(k) appears twice"
            case .totalPowerTooLarge(let p): return "total power \(p) exceeds \(ValidatorSet.maxTotalPower); scale the powers down"
            }
        }
    }

    public init(_ validators: [Validator]) throws(Failure) {
        guard !validators.isEmpty else { throw .empty }
        var index: [PublicKey: Int] = [:]
        var total: UInt64 = 0
        for (i, v) in validators.enumerated() {
            guard v.power > 0 else { throw .zeroPower(v.publicKey) }
            guard index[v.publicKey] == nil else { throw .duplicate(v.publicKey) }
            index[v.publicKey] = i
            total += min(v.power, ValidatorSet.maxTotalPower + 1)
            guard total <= ValidatorSet.maxTotalPower else { throw .totalPowerTooLarge(total) }
        }
        self.validators = validators
        self.totalPower = total
        self.indexByKey = index
        self.schedule = ValidatorSet.smoothWeightedRoundRobin(validators.map(\.power), total: total)
    }

    /// One cycle of smooth weighted round-robin (as nginx): each slot every validator gains its
    /// power, the one with the most credit (lowest index on ties) proposes and pays the total back.
    /// A validator with power p proposes exactly p times per cycle, spread out rather than in a run.
    static func smoothWeightedRoundRobin(_ powers: [UInt64], total: UInt64) -> [Int] {
        var credit = [Int64](repeating: 0, count: powers.count)
        var out: [Int] = []
        out.reserveCapacity(Int(total))
        for _ in 0..<total {
            var best = 0
            for i in powers.indices {
                credit[i] += Int64(powers[i])
                if credit[i] > credit[best] { best = i }
            }
            credit[best] -= Int64(total)
            out.append(best)
        }
        return out
    }

    public var count: Int { validators.count }
    public var hash: Hash { Validator.setHash(validators) }

    public func index(of key: PublicKey) -> Int? { indexByKey[key] }
    public func contains(_ key: PublicKey) -> Bool { indexByKey[key] != nil }
    public func power(of key: PublicKey) -> UInt64 { indexByKey[key].map { validators[$0].power } ?? 0 }

    /// The proposer of `round` at `height`: slot `(height + round) mod totalPower` of the schedule,
    /// so consecutive heights and consecutive rounds both move to the next slot.
    public func proposer(height: UInt64, round: UInt32) -> Validator {
        let slot = (height % totalPower + UInt64(round) % totalPower) % totalPower
        return validators[schedule[Int(slot)]]
    }

    /// More than two thirds of the total power ("2f+1").
    public func isQuorum(_ power: UInt64) -> Bool { power * 3 > totalPower * 2 }
    /// More than one third of the total power ("f+1"): at least one honest validator is among them.
    public func isOneThird(_ power: UInt64) -> Bool { power * 3 > totalPower }
}
