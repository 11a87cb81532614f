import Foundation
import IoMTConsensus
import IoMTCore

/// Settings of a simulation run that are not drawn from the seed.
public struct SimulationOptions: Sendable {
    /// Validators (n = 3f+1 is the interesting case: 4, 7).
    public var validators: Int
    /// K: heights every honest validator must decide after global stabilisation.
    public var heights: Int
    /// Keep a human-readable line per delivered event in the report.
    public var verbose: Bool
    /// Tests only: force this many Byzantine validators with this behaviour, even beyond f.
    public var byzantineOverride: (count: Int, behaviour: ByzantineBehaviour)?
    /// A run that delivers more events than this fails (livelock guard).
    public var maxEvents: Int

    public init(validators: Int = 4, heights: Int = 3, verbose: Bool = false,
                byzantineOverride: (count: Int, behaviour: ByzantineBehaviour)? = nil, maxEvents: Int = 500_000) {
        self.validators = validators
        self.heights = heights
        self.verbose = verbose
        self.byzantineOverride = byzantineOverride
        self.maxEvents = maxEvents
    }
}

/// The properties checked during a run (docs/consensus.md, "Invariants").
public enum Invariant: String, Sendable, CaseIterable {
    /// (a) No two honest validators decide different values at one height.
    case agreement
    /// (b) Every decided block passes the application's validity check.
    case validity
    /// (c) A restarted validator never loses a decided height.
    case durability
    /// (d) After GST every honest validator decides K more heights within the bound.
    case liveness
    /// (e) Every commit certificate passes `Commit.verify` against the block header.
    case commitCertificate
    /// (f) Equivocation seen by an honest validator yields evidence that verifies.
    case evidence
    /// No honest validator signs two conflicting messages (persist-before-sign, across restarts).
    case noDoubleSign
}

public struct Violation: Sendable, CustomStringConvertible {
    public var invariant: Invariant
    /// Number of the delivered event after which the violation was found.
    public var step: Int
    public var timeMs: UInt64
    public var detail: String

    public var description: String { "\(invariant.rawValue) violated at step \(step) (t=\(timeMs)ms): \(detail)" }
}

public struct SimulationReport: Sendable {
    public var seed: UInt64
    public var scenario: Scenario
    public var violation: Violation?
    /// SHA-256 chain over every delivered event: equal seeds give equal hashes.
    public var traceHash: Hash
    public var steps: Int
    public var simulatedTimeMs: UInt64
    /// Heights decided by each validator at the end.
    public var decidedHeights: [Int]
    public var evidenceEmitted: Int
    /// Byzantine validators whose conflicting messages reached one honest validator, and how many
    /// of them an honest validator produced evidence against.
    public var exposedEquivocators: Int
    public var detectedEquivocators: Int
    public var livenessBoundMs: UInt64
    public var trace: [String]

    public var passed: Bool { violation == nil }
}

public enum Simulation {
    /// The liveness bound (d): after GST, K heights within 5 s + 3 s per height of simulated time.
    public static func livenessBoundMs(heights: Int) -> UInt64 { 5_000 + 3_000 * UInt64(max(heights, 1)) }

    /// Runs one seed. Deterministic: the same seed and options give the same report and trace hash.
    public static func run(seed: UInt64, options: SimulationOptions = SimulationOptions()) -> SimulationReport {
        let run = SimulationRun(seed: seed, options: options)
        return run.execute()
    }
}

/// Remembers signature checks within one run: every distinct signature is still verified once with
/// real Ed25519, but the n copies of a message that n validators receive are not re-verified.
final class SignatureCache: @unchecked Sendable {
    private struct Key: Hashable { var key: PublicKey; var signature: Signature; var message: [UInt8] }
    private let lock = NSLock()
    private var results: [Key: Bool] = [:]

    func verify(_ key: PublicKey, _ signature: Signature, _ message: [UInt8]) -> Bool {
        let k = Key(key: key, signature: signature, message: message)
        if let r = lock.withLock({ results[k] }) { return r }
        let r = key.isValidSignature(signature, for: message)
        lock.withLock { results[k] = r }
        return r
    }
}

enum NetMessage {
    case consensus(ConsensusMessage)
    case status(height: UInt64)
    case decision(ProposedValue, Commit)
    case evidence(Evidence)
}

enum SimEvent {
    case deliver(from: Int, to: Int, NetMessage)
    case timer(node: Int, incarnation: Int, ConsensusTimeout)
    case tick(node: Int, incarnation: Int)
    case crash(Int)
    case restart(Int)
    case globalStabilisation
    /// The host's commit wait (CometBFT's timeout_commit) is over: start the next height.
    case nextHeight(node: Int, incarnation: Int, height: UInt64)
}

/// (signer, height, round, kind) — kind 0 proposal, 1 prevote, 2 precommit.
struct Slot: Hashable {
    var signer: PublicKey
    var height: UInt64
    var round: UInt32
    var kind: UInt8

    init(_ m: ConsensusMessage) {
        signer = m.signer; height = m.height; round = m.round
        switch m {
        case .proposal: kind = 0
        case .vote(let v): kind = v.vote.type == .prevote ? 1 : 2
        }
    }

    static func conflict(_ a: ConsensusMessage, _ b: ConsensusMessage) -> Bool {
        switch (a, b) {
        case (.proposal(let x), .proposal(let y)):
            return x.proposal.value.id != y.proposal.value.id || x.proposal.validRound != y.proposal.validRound
        case (.vote(let x), .vote(let y)):
            return x.vote.valueID != y.vote.valueID
        default:
            return false
        }
    }
}

struct SimNode {
    let index: Int
    let key: PrivateKey
    let behaviour: ByzantineBehaviour?
    var core: TendermintCore
    var up = true
    var incarnation = 0
    // The simulated disk: survives a crash.
    var savedConsensus: PersistedConsensusState?
    var chain: [SimulatedBlock] = []
    var commits: [Commit] = []
    // Memory: lost on a crash.
    var seen: Set<ConsensusMessage> = []
    var processed: [Slot: ConsensusMessage] = [:]
    var lastMarker: String?
    var lastSyncSent: [Int: (height: UInt64, atMs: UInt64)] = [:]
    var evidencePool: Set<Hash> = []

    var isHonest: Bool { behaviour == nil }
}

final class SimulationRun {
    static let chainID = "iomt-sim"
    static let tickLocalMs: UInt64 = 200
    /// Pause between deciding a height and starting the next (local ms), as a node waits for more
    /// transactions (ConsensusParameters.blockIntervalMs); it also keeps each seed's run short.
    static let commitWaitLocalMs: UInt64 = 300

    let seed: UInt64
    let options: SimulationOptions
    var rng: SimulationRNG
    let scenario: Scenario
    let validatorSet: ValidatorSet
    let configuration: ConsensusConfiguration
    let verifier: SignatureVerifier
    let clients: [PrivateKey]
    let genesisHash: Hash
    var nodes: [SimNode] = []
    var queue = EventQueue<SimEvent>()
    var now: UInt64 = 0
    var steps = 0
    var traceHash = Hash.sha256(Array("iomt/sim-trace/v1".utf8))
    var trace: [String] = []
    var violation: Violation?
    var nextNonce: UInt64 = 0

    // Global observations for the invariants.
    var decidedByHonest: [UInt64: Hash] = [:]
    var everDecided: [[Hash]]
    var signedByHonest: [Slot: ConsensusMessage] = [:]
    var exposed: Set<PublicKey> = []
    var detected: Set<PublicKey> = []
    var evidenceEmitted = 0
    var verifiedCommits: Set<Commit> = []
    var gstReached = false
    var livenessTarget = 0
    var livenessDeadline: UInt64 = 0
    // The adversary's shared knowledge: split proposals per (height, round).
    var splits: [String: (a: SignedProposal, b: SignedProposal)] = [:]
    var suppressed: Set<String> = []

    init(seed: UInt64, options: SimulationOptions) {
        self.seed = seed
        self.options = options
        var rng = SimulationRNG(seed: seed)
        let n = max(1, options.validators)
        let scenario = Scenario.make(rng: &rng, validatorCount: n, byzantineOverride: options.byzantineOverride)
        self.scenario = scenario
        let keys = (0..<n).map { _ in SimulationRun.key(&rng) }
        clients = (0..<6).map { _ in SimulationRun.key(&rng) }
        let validators = keys.enumerated().map { Validator(publicKey: $1.publicKey, organisation: "org\($0)", power: scenario.powers[$0]) }
        do { validatorSet = try ValidatorSet(validators) } catch { preconditionFailure("simulated validator set: \(error)") }
        let cache = SignatureCache()
        verifier = SignatureVerifier { cache.verify($0, $1, $2) }
        configuration = ConsensusConfiguration(chainID: SimulationRun.chainID, valueID: SimulatedBlock.valueID, verifier: verifier)
        genesisHash = Hash.domain("iomt/sim-genesis/v1", validatorSet.hash.bytes)
        everDecided = Array(repeating: [], count: n)
        self.rng = rng
        for i in 0..<n {
            nodes.append(SimNode(index: i, key: keys[i], behaviour: scenario.byzantine[i],
                                 core: TendermintCore(configuration: configuration, signer: keys[i])))
        }
    }

    static func key(_ rng: inout SimulationRNG) -> PrivateKey {
        do { return try PrivateKey(algorithm: .ed25519, rawBytes: rng.bytes(32)) } catch { preconditionFailure("a 32-byte seed is always an Ed25519 key") }
    }

    // MARK: running

    func execute() -> SimulationReport {
        for c in scenario.crashes {
            queue.push(.crash(c.node), at: c.atMs)
            queue.push(.restart(c.node), at: c.restartMs)
        }
        queue.push(.globalStabilisation, at: scenario.gstMs)
        for i in nodes.indices {
            queue.push(.tick(node: i, incarnation: 0), at: rng.between(1, SimulationRun.tickLocalMs))
            feed(i, .startHeight(1, validators: validatorSet))
        }
        loop()
        if violation == nil { checkEvidenceDetected() }
        return SimulationReport(seed: seed, scenario: scenario, violation: violation, traceHash: traceHash, steps: steps, simulatedTimeMs: now,
                                decidedHeights: nodes.map(\.chain.count), evidenceEmitted: evidenceEmitted,
                                exposedEquivocators: exposed.count, detectedEquivocators: exposed.intersection(detected).count,
                                livenessBoundMs: Simulation.livenessBoundMs(heights: options.heights), trace: trace)
    }

    private func loop() {
        while violation == nil, let (time, event) = queue.pop() {
            now = time
            if gstReached, now > livenessDeadline {
                let behind = nodes.filter { $0.isHonest && $0.chain.count < livenessTarget }.map { "v\($0.index)@\($0.chain.count)" }
                fail(.liveness, "after GST at \(scenario.gstMs)ms, honest validators \(behind.joined(separator: ", ")) had not reached height \(livenessTarget) within \(Simulation.livenessBoundMs(heights: options.heights))ms")
                return
            }
            steps += 1
            if steps > options.maxEvents {
                fail(.liveness, "event budget of \(options.maxEvents) exhausted")
                return
            }
            record(event)
            process(event)
            if violation == nil, gstReached, nodes.allSatisfy({ !$0.isHonest || $0.chain.count >= livenessTarget }) { return }
        }
        if violation == nil, !gstReached || nodes.contains(where: { $0.isHonest && $0.chain.count < livenessTarget }) {
            fail(.liveness, "the event queue ran dry")
        }
    }

    private func process(_ event: SimEvent) {
        switch event {
        case .deliver(let from, let to, let m): deliver(from: from, to: to, m)
        case .timer(let i, let inc, let t):
            guard nodes[i].up, nodes[i].incarnation == inc else { return }
            feed(i, .timeout(t))
        case .tick(let i, let inc): tick(i, incarnation: inc)
        case .crash(let i): crash(i)
        case .restart(let i): restart(i)
        case .nextHeight(let i, let inc, let h):
            guard nodes[i].up, nodes[i].incarnation == inc else { return }
            feed(i, .startHeight(h, validators: validatorSet))
        case .globalStabilisation:
            gstReached = true
            livenessTarget = (nodes.filter(\.isHonest).map(\.chain.count).max() ?? 0) + options.heights
            livenessDeadline = now + Simulation.livenessBoundMs(heights: options.heights)
        }
    }

    private func fail(_ invariant: Invariant, _ detail: String) {
        guard violation == nil else { return }
        violation = Violation(invariant: invariant, step: steps, timeMs: now, detail: detail)
        if options.verbose { trace.append("!! \(violation?.description ?? "")") }
    }

    /// Every delivered event enters the trace hash (and, verbose, the trace).
    private func record(_ event: SimEvent) {
        var w = CanonicalWriter()
        w.writeFixed(traceHash.bytes)
        w.write(now)
        var line = ""
        switch event {
        case .deliver(let from, let to, let m):
            w.write(UInt8(1)); w.write(UInt32(from)); w.write(UInt32(to))
            switch m {
            case .consensus(let c): w.write(UInt8(1)); w.write(c); if options.verbose { line = "v\(from)→v\(to) \(c)" }
            case .status(let h): w.write(UInt8(2)); w.write(h); if options.verbose { line = "v\(from)→v\(to) status(h\(h))" }
            case .decision(let v, let c): w.write(UInt8(3)); w.write(v.id); w.write(c); if options.verbose { line = "v\(from)→v\(to) decision(h\(c.height) \(v.id.hex.prefix(8)))" }
            case .evidence(let e): w.write(UInt8(4)); w.write(e); if options.verbose { line = "v\(from)→v\(to) evidence(\(e))" }
            }
        case .timer(let i, let inc, let t):
            w.write(UInt8(2)); w.write(UInt32(i)); w.write(UInt32(inc)); w.write(t.height); w.write(t.round); w.write(t.step)
            if options.verbose { line = "v\(i) \(t)" }
        case .tick(let i, let inc):
            w.write(UInt8(3)); w.write(UInt32(i)); w.write(UInt32(inc))
        case .crash(let i): w.write(UInt8(4)); w.write(UInt32(i)); if options.verbose { line = "v\(i) CRASH" }
        case .restart(let i): w.write(UInt8(5)); w.write(UInt32(i)); if options.verbose { line = "v\(i) RESTART" }
        case .globalStabilisation: w.write(UInt8(6)); if options.verbose { line = "GST" }
        case .nextHeight(let i, let inc, let h):
            w.write(UInt8(7)); w.write(UInt32(i)); w.write(UInt32(inc)); w.write(h)
            if options.verbose { line = "v\(i) starts h\(h)" }
        }
        traceHash = Hash.sha256(w.bytes)
        if options.verbose, !line.isEmpty { trace.append("#\(steps) t=\(now) \(line)") }
    }

    private func note(_ s: @autoclosure () -> String) {
        if options.verbose { trace.append("#\(steps) t=\(now)   \(s())") }
    }

    // MARK: driving one validator's core

    private func feed(_ i: Int, _ first: ConsensusEvent) {
        var pending = [first]
        while !pending.isEmpty, violation == nil {
            let event = pending.removeFirst()
            let actions = nodes[i].core.step(event)
            for a in actions where violation == nil { perform(i, a, &pending) }
        }
    }

    private func perform(_ i: Int, _ action: ConsensusAction, _ pending: inout [ConsensusEvent]) {
        switch action {
        case .persist(let s):
            nodes[i].savedConsensus = s
        case .broadcast(let m):
            if nodes[i].isHonest { checkNoDoubleSign(i, m) }
            broadcast(from: i, m)
        case .scheduleTimeout(let t, let ms):
            queue.push(.timer(node: i, incarnation: nodes[i].incarnation, t), at: now + simulatedMs(local: ms, node: i))
        case .requestProposal(let h, let r):
            pending.append(.proposalValue(height: h, round: r, value: makeBlock(i, height: h).value))
        case .validate(let h, let v):
            let ok = (try? validate(i, v.bytes, height: h)) != nil
            note("v\(i) validates \(v.id.hex.prefix(8)) at h\(h): \(ok)")
            pending.append(.validity(height: h, valueID: v.id, isValid: ok))
        case .decide(let h, let r, let v, let c):
            decide(i, height: h, round: r, value: v, commit: c)
            queue.push(.nextHeight(node: i, incarnation: nodes[i].incarnation, height: h + 1),
                       at: now + simulatedMs(local: SimulationRun.commitWaitLocalMs, node: i))
        case .evidence(let e):
            evidenceFound(i, e)
        }
    }

    private func simulatedMs(local ms: UInt64, node i: Int) -> UInt64 {
        max(1, UInt64((Double(ms) / scenario.clockRates[i]).rounded(.up)))
    }

    private func localTimeMs(_ i: Int) -> Int64 {
        1_700_000_000_000 + Int64(Double(now) * scenario.clockRates[i]) + scenario.clockOffsetsMs[i]
    }

    // MARK: the application

    private func previousHash(_ i: Int) -> Hash { nodes[i].chain.last?.header.hash ?? genesisHash }

    private func makeBlock(_ i: Int, height: UInt64) -> SimulatedBlock {
        var txs: [ClientTransaction] = []
        for _ in 0..<rng.between(0, 3) {
            txs.append(ClientTransaction(signedBy: clients[rng.index(clients.count)], nonce: nextNonce, payload: rng.bytes(Int(rng.between(4, 24)))))
            nextNonce += 1
        }
        if nodes[i].behaviour == .invalidBlocks {
            // A forged client transaction: the signature does not match.
            if txs.isEmpty {
                txs.append(ClientTransaction(signedBy: clients[0], nonce: nextNonce, payload: [1]))
                nextNonce += 1
            }
            var sig = txs[0].signature.bytes
            sig[0] ^= 0x01
            if let forged = Signature(bytes: sig) { txs[0].signature = forged }
        }
        let header = BlockHeader(chainID: SimulationRun.chainID, height: height, previousHash: previousHash(i),
                                 transactionsRoot: SimulatedBlock.transactionsRoot(txs), transactionCount: UInt32(txs.count),
                                 stateRoot: .zero, validatorsHash: validatorSet.hash, timestampMs: localTimeMs(i), proposer: nodes[i].key.publicKey.address)
        return SimulatedBlock(header: header, transactions: txs)
    }

    @discardableResult
    private func validate(_ i: Int, _ bytes: [UInt8], height: UInt64) throws(SimulatedBlock.Invalidity) -> SimulatedBlock {
        try SimulatedBlock.check(bytes, chainID: SimulationRun.chainID, height: height, previous: previousHash(i),
                                 validatorsHash: validatorSet.hash, verifier: verifier)
    }

    private func decide(_ i: Int, height h: UInt64, round r: UInt32, value v: ProposedValue, commit c: Commit) {
        note("v\(i) DECIDES h\(h) r\(r) \(v.id.hex.prefix(8)) with \(c.signatures.count) precommits")
        let block: SimulatedBlock
        do { block = try validate(i, v.bytes, height: h) } catch {
            if nodes[i].isHonest { fail(.validity, "v\(i) decided an invalid block at height \(h): \(error)") }
            return
        }
        if nodes[i].isHonest {
            // (a) agreement
            if let other = decidedByHonest[h], other != v.id {
                fail(.agreement, "v\(i) decided \(v.id.hex.prefix(12)) at height \(h), another honest validator decided \(other.hex.prefix(12))")
                return
            }
            decidedByHonest[h] = v.id
            // (e) the certificate is a Commit the existing verifier accepts
            if !verifiedCommits.contains(c) {
                do { try c.verify(header: block.header, validators: validatorSet.validators) } catch {
                    fail(.commitCertificate, "v\(i)'s commit for height \(h) fails Commit.verify: \(error)")
                    return
                }
                verifiedCommits.insert(c)
            }
        }
        nodes[i].chain.append(block)
        nodes[i].commits.append(c)
        everDecided[i].append(v.id)
        nodes[i].seen = nodes[i].seen.filter { $0.height > h }
        nodes[i].processed = nodes[i].processed.filter { $0.key.height > h }
    }

    // MARK: invariants on signing and evidence

    private func checkNoDoubleSign(_ i: Int, _ m: ConsensusMessage) {
        let slot = Slot(m)
        if let earlier = signedByHonest[slot] {
            if Slot.conflict(earlier, m) { fail(.noDoubleSign, "honest v\(i) signed \(earlier) and then \(m)") }
        } else {
            signedByHonest[slot] = m
        }
    }

    private func evidenceFound(_ i: Int, _ e: Evidence) {
        evidenceEmitted += 1
        note("v\(i) EVIDENCE \(e)")
        guard nodes[i].isHonest else { return }
        do { try e.verify(chainID: SimulationRun.chainID, validators: validatorSet.validators, verifier: verifier) } catch {
            fail(.evidence, "v\(i) emitted evidence that does not verify: \(error)")
            return
        }
        if let offender = validatorSet.index(of: e.offender), nodes[offender].isHonest {
            fail(.evidence, "v\(i) produced evidence against honest v\(offender): \(e)")
            return
        }
        detected.insert(e.offender)
        nodes[i].evidencePool.insert(e.id)
        sendToAll(from: i, .evidence(e))
    }

    private func checkEvidenceDetected() {
        let missed = exposed.subtracting(detected)
        guard missed.isEmpty else {
            let names = missed.compactMap { validatorSet.index(of: $0) }.sorted().map { "v\($0)" }
            fail(.evidence, "equivocation by \(names.joined(separator: ", ")) reached an honest validator but no honest validator produced evidence")
            return
        }
    }

    // MARK: network

    private func partitioned(_ a: Int, _ b: Int) -> Bool {
        scenario.partitions.contains { $0.startMs <= now && now < $0.endMs && $0.group[a] != $0.group[b] }
    }

    private func send(from: Int, to: Int, _ m: NetMessage) {
        guard from != to, nodes[from].up, !partitioned(from, to) else { return }
        let beforeGST = now < scenario.gstMs
        if beforeGST, scenario.lossRate > 0, rng.chance(scenario.lossRate) { return }
        var delay = beforeGST ? rng.between(scenario.delayMinMs, scenario.delayMaxMs) : rng.between(1, Scenario.deltaMs)
        if beforeGST, scenario.reorderRate > 0, rng.chance(scenario.reorderRate) { delay += rng.between(0, scenario.reorderExtraMs) }
        queue.push(.deliver(from: from, to: to, m), at: now + delay)
        if scenario.duplicationRate > 0, rng.chance(scenario.duplicationRate) {
            queue.push(.deliver(from: from, to: to, m), at: now + rng.between(1, beforeGST ? scenario.delayMaxMs : Scenario.deltaMs))
        }
    }

    private func sendToAll(from i: Int, _ m: NetMessage, except: Int? = nil) {
        for j in nodes.indices where j != i && j != except { send(from: i, to: j, m) }
    }

    private func deliver(from: Int, to: Int, _ m: NetMessage) {
        guard nodes[to].up else { return }
        switch m {
        case .consensus(let c): deliverConsensus(from: from, to: to, c)
        case .status(let h):
            guard nodes[to].chain.count >= Int(h), h >= 1 else { return }
            if let last = nodes[to].lastSyncSent[from], last.height == h, now - last.atMs < 100 { return }
            nodes[to].lastSyncSent[from] = (h, now)
            let idx = Int(h) - 1
            send(from: to, to: from, .decision(nodes[to].chain[idx].value, nodes[to].commits[idx]))
        case .decision(let v, let c):
            guard nodes[to].core.height == c.height, nodes[to].core.step != .commit else { return }
            feed(to, .decisionReceived(value: v, commit: c))
            if nodes[to].chain.count >= Int(c.height) { send(from: to, to: from, .status(height: c.height + 1)) }
        case .evidence(let e):
            guard nodes[to].isHonest, !nodes[to].evidencePool.contains(e.id) else { return }
            if (try? e.verify(chainID: SimulationRun.chainID, validators: validatorSet.validators, verifier: verifier)) != nil {
                nodes[to].evidencePool.insert(e.id)
            }
        }
    }

    private func deliverConsensus(from: Int, to: Int, _ c: ConsensusMessage) {
        let core = nodes[to].core
        if nodes[to].isHonest {
            // Gossip: relay what is new and current, as the paper's gossip layer does.
            if (c.height == core.height || c.height == core.height + 1), nodes[to].seen.insert(c).inserted {
                sendToAll(from: to, .consensus(c), except: from)
            }
            // Track equivocation that reaches this validator while it can still act on it.
            if c.height == core.height, core.step != .commit, UInt64(c.round) <= UInt64(core.round) + UInt64(configuration.futureRoundWindow),
               validatorSet.contains(c.signer), isFromRightProposer(c) {
                let slot = Slot(c)
                if let earlier = nodes[to].processed[slot] {
                    if Slot.conflict(earlier, c) { exposed.insert(c.signer) }
                } else {
                    nodes[to].processed[slot] = c
                }
            }
        }
        feed(to, .message(c))
    }

    private func isFromRightProposer(_ c: ConsensusMessage) -> Bool {
        guard case .proposal(let p) = c else { return true }
        return validatorSet.proposer(height: p.proposal.height, round: p.proposal.round).publicKey == p.proposer
    }

    // MARK: Byzantine middleware

    private func broadcast(from i: Int, _ m: ConsensusMessage) {
        switch nodes[i].behaviour {
        case nil, .invalidBlocks?:
            sendToAll(from: i, .consensus(m))
        case .withholdVotes?:
            if case .proposal = m { sendToAll(from: i, .consensus(m)) }
        case .equivocate?:
            equivocate(from: i, m)
        }
    }

    /// Honest validators split in two halves; colluding Byzantine validators side with the first.
    private func halves(excluding i: Int) -> (first: [Int], second: [Int]) {
        let honest = nodes.indices.filter { nodes[$0].isHonest }
        let cut = (honest.count + 1) / 2
        let byz = nodes.indices.filter { $0 != i && !nodes[$0].isHonest }
        return (Array(honest.prefix(cut)) + byz, Array(honest.dropFirst(cut)))
    }

    private func equivocate(from i: Int, _ m: ConsensusMessage) {
        let (first, second) = halves(excluding: i)
        let key = "\(m.height)/\(m.round)"
        switch m {
        case .proposal(let p):
            let split: (a: SignedProposal, b: SignedProposal)
            if let s = splits[key] {
                split = s
            } else {
                guard var other = try? SimulatedBlock(canonicalBytes: p.proposal.value.bytes, trusted: true) else { return }
                other.header.timestampMs += 1
                var q = p.proposal
                q.value = other.value
                split = (p, SignedProposal(signing: q, chainID: SimulationRun.chainID, with: nodes[i].key))
                splits[key] = split
                colludingVotes(height: m.height, round: m.round, a: split.a.proposal.value.id, b: split.b.proposal.value.id)
            }
            for j in first { send(from: i, to: j, .consensus(.proposal(split.a))) }
            for j in second { send(from: i, to: j, .consensus(.proposal(split.b))) }
        case .vote(let v):
            guard !suppressed.contains("\(i)/\(key)") else { return }
            let conflicting = Vote(type: v.vote.type, height: v.vote.height, round: v.vote.round,
                                   valueID: v.vote.valueID == nil ? Hash.domain("iomt/sim-fake/v1", Array(key.utf8)) : nil)
            let forged = SignedVote(signing: conflicting, chainID: SimulationRun.chainID, with: nodes[i].key)
            for j in first { send(from: i, to: j, .consensus(m)) }
            for j in second { send(from: i, to: j, .consensus(.vote(forged))) }
        }
    }

    /// Every equivocating validator prevotes and precommits each half's block to that half.
    private func colludingVotes(height h: UInt64, round r: UInt32, a: Hash, b: Hash) {
        for j in nodes.indices where nodes[j].behaviour == .equivocate && nodes[j].up {
            suppressed.insert("\(j)/\(h)/\(r)")
            let (first, second) = halves(excluding: j)
            for type in [VoteType.prevote, .precommit] {
                let va = SignedVote(signing: Vote(type: type, height: h, round: r, valueID: a), chainID: SimulationRun.chainID, with: nodes[j].key)
                let vb = SignedVote(signing: Vote(type: type, height: h, round: r, valueID: b), chainID: SimulationRun.chainID, with: nodes[j].key)
                for k in first { send(from: j, to: k, .consensus(.vote(va))) }
                for k in second { send(from: j, to: k, .consensus(.vote(vb))) }
            }
        }
    }

    // MARK: timers, crashes, restarts

    /// Every 200 local ms: tell peers our height (they answer with decided blocks we lack) and,
    /// if we made no progress since the last tick, re-send what we signed at this height and, as
    /// an honest gossip layer, what we hold for the current round and for our valid round (so the
    /// polka behind our lock reaches everyone).
    private func tick(_ i: Int, incarnation: Int) {
        guard nodes[i].up, nodes[i].incarnation == incarnation else { return }
        let core = nodes[i].core
        let marker = "\(core.height)/\(core.round)/\(core.step)"
        if marker == nodes[i].lastMarker {
            for m in core.ownMessages { broadcast(from: i, m) }
            if nodes[i].isHonest {
                var rounds = [core.round]
                if let vr = core.validRound, vr != core.round { rounds.append(vr) }
                for r in rounds {
                    for m in core.messages(inRound: r) where m.signer != nodes[i].key.publicKey { sendToAll(from: i, .consensus(m)) }
                }
            }
        }
        nodes[i].lastMarker = marker
        sendToAll(from: i, .status(height: core.height))
        queue.push(.tick(node: i, incarnation: incarnation), at: now + simulatedMs(local: SimulationRun.tickLocalMs, node: i))
    }

    private func crash(_ i: Int) {
        guard nodes[i].up else { return }
        nodes[i].up = false
        nodes[i].incarnation += 1
        nodes[i].seen = []
        nodes[i].processed = [:]
        nodes[i].lastMarker = nil
        nodes[i].lastSyncSent = [:]
        nodes[i].evidencePool = []
        nodes[i].core = TendermintCore(configuration: configuration, signer: nil)
    }

    private func restart(_ i: Int) {
        guard !nodes[i].up else { return }
        nodes[i].up = true
        // (c) durability: what is on disk extends everything this validator ever decided.
        let onDisk = nodes[i].chain.map(\.header.hash)
        guard onDisk.count >= everDecided[i].count, Array(onDisk.prefix(everDecided[i].count)) == everDecided[i] else {
            fail(.durability, "v\(i) restarted with \(onDisk.count) blocks but had decided \(everDecided[i].count)")
            return
        }
        nodes[i].core = TendermintCore(configuration: configuration, signer: nodes[i].key, restoring: nodes[i].savedConsensus)
        feed(i, .startHeight(UInt64(nodes[i].chain.count) + 1, validators: validatorSet))
        queue.push(.tick(node: i, incarnation: nodes[i].incarnation), at: now + simulatedMs(local: SimulationRun.tickLocalMs, node: i))
    }
}
