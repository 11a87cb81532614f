import IoMTConsensus
import IoMTCore
import Testing

/// Four (or more) validators with fixed keys, and values that are real block headers, so a
/// decided commit can be checked with `Commit.verify`.
struct Harness {
    static let chainID = "iomt-test"
    let keys: [PrivateKey]
    let set: ValidatorSet
    let configuration: ConsensusConfiguration

    init(powers: [UInt64] = [1, 1, 1, 1]) {
        keys = powers.indices.map { i in try! PrivateKey(algorithm: .ed25519, rawBytes: [UInt8](repeating: UInt8(0x40 + i), count: 32)) }
        set = try! ValidatorSet(keys.enumerated().map { Validator(publicKey: $1.publicKey, organisation: "org\($0)", power: powers[$0]) })
        configuration = ConsensusConfiguration(chainID: Harness.chainID, valueID: { bytes in
            (try? BlockHeader(canonicalBytes: bytes)).map(\.hash)
        })
    }

    func header(_ tag: Int64, height: UInt64 = 1) -> BlockHeader {
        BlockHeader(chainID: Harness.chainID, height: height, previousHash: .zero, transactionsRoot: MerkleTree.root(leafHashes: []),
                    transactionCount: 0, stateRoot: .zero, validatorsHash: set.hash, timestampMs: tag, proposer: keys[0].publicKey.address)
    }

    func value(_ tag: Int64, height: UInt64 = 1) -> ProposedValue {
        let h = header(tag, height: height)
        return ProposedValue(id: h.hash, bytes: h.canonicalBytes)
    }

    /// Index of the validator proposing `round` at `height`.
    func proposer(_ height: UInt64, _ round: UInt32) -> Int {
        set.index(of: set.proposer(height: height, round: round).publicKey) ?? -1
    }

    /// A validator that does not propose round 0 (or `round`) at `height`.
    func nonProposer(_ height: UInt64 = 1, _ round: UInt32 = 0) -> Int {
        keys.indices.first { $0 != proposer(height, round) } ?? 0
    }

    func core(_ i: Int, restoring: PersistedConsensusState? = nil) -> TendermintCore {
        TendermintCore(configuration: configuration, signer: keys[i], restoring: restoring)
    }

    func proposal(_ value: ProposedValue, height: UInt64 = 1, round: UInt32 = 0, validRound: UInt32? = nil, by i: Int? = nil) -> ConsensusEvent {
        let p = ConsensusProposal(height: height, round: round, validRound: validRound, value: value)
        return .message(.proposal(SignedProposal(signing: p, chainID: Harness.chainID, with: keys[i ?? proposer(height, round)])))
    }

    func signedVote(_ type: VoteType, _ id: Hash?, height: UInt64 = 1, round: UInt32 = 0, by i: Int) -> SignedVote {
        SignedVote(signing: Vote(type: type, height: height, round: round, valueID: id), chainID: Harness.chainID, with: keys[i])
    }

    func vote(_ type: VoteType, _ id: Hash?, height: UInt64 = 1, round: UInt32 = 0, by i: Int) -> ConsensusEvent {
        .message(.vote(signedVote(type, id, height: height, round: round, by: i)))
    }

    func others(than i: Int) -> [Int] { keys.indices.filter { $0 != i } }
}

/// A core plus every action it has produced, with the persist-before-broadcast rule checked on
/// every step.
struct Driver {
    var core: TendermintCore
    var all: [ConsensusAction] = []
    let me: PublicKey
    /// Every message any `.persist` so far (or the restored state) held.
    var persisted: Set<ConsensusMessage>

    init(_ core: TendermintCore, key: PublicKey, restored: PersistedConsensusState? = nil) {
        self.core = core
        self.me = key
        self.persisted = Set(restored?.ownMessages ?? [])
    }

    /// Feeds one event and checks that every broadcast of a message we signed comes after a
    /// `.persist` holding it (earlier in this step, in an earlier step, or in the restored state).
    @discardableResult
    mutating func step(_ e: ConsensusEvent, sourceLocation: SourceLocation = #_sourceLocation) -> [ConsensusAction] {
        let out = core.step(e)
        for a in out {
            switch a {
            case .persist(let s): persisted.formUnion(s.ownMessages)
            case .broadcast(let m) where m.signer == me:
                #expect(persisted.contains(m), "broadcast of \(m) before it was persisted", sourceLocation: sourceLocation)
            default: break
            }
        }
        all += out
        return out
    }

    var broadcasts: [ConsensusMessage] { all.compactMap { if case .broadcast(let m) = $0 { return m } else { return nil } } }

    var votes: [Vote] { broadcasts.compactMap { if case .vote(let v) = $0 { return v.vote } else { return nil } } }

    var decisions: [(height: UInt64, round: UInt32, value: ProposedValue, commit: Commit)] {
        all.compactMap { if case .decide(let h, let r, let v, let c) = $0 { return (h, r, v, c) } else { return nil } }
    }

    var evidence: [Evidence] { all.compactMap { if case .evidence(let e) = $0 { return e } else { return nil } } }

    var lastPersisted: PersistedConsensusState? {
        all.reversed().lazy.compactMap { if case .persist(let s) = $0 { return s } else { return nil } }.first
    }

    var timeouts: [(ConsensusTimeout, UInt64)] {
        all.compactMap { if case .scheduleTimeout(let t, let d) = $0 { return (t, d) } else { return nil } }
    }
}
