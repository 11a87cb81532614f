import Foundation
import IoMTConsensus
import IoMTContracts
import IoMTCore
import IoMTNode
import IoMTStore
import Testing

/// Four validators, each a real `Node` on its own SQLite files, running the Tendermint driver over
/// an in-process network with real signatures and real timers.
final class Cluster: @unchecked Sendable {
    let admin = PrivateKey.generate(.ed25519)
    /// Four genesis validators and a fifth key that governance may add.
    let keys = (0..<5).map { _ in PrivateKey.generate(.ed25519) }
    let dirs = (0..<5).map { i in temporaryFolder("cluster\(i)") }
    let genesis: Genesis
    let genesisBytes: [UInt8]
    let network = LoopbackNetwork()
    var nodes: [Node?] = [nil, nil, nil, nil, nil]
    var drivers: [ConsensusDriver?] = [nil, nil, nil, nil, nil]
    var nonce: UInt64 = 0
    static let timeouts = TimeoutSchedule(proposeBaseMs: 400, proposeDeltaMs: 200, prevoteBaseMs: 200, prevoteDeltaMs: 100, precommitBaseMs: 200, precommitDeltaMs: 100)

    init() {
        genesis = Genesis(
            chainId: "iomt-cluster", genesisTimeMs: 1_700_000_000_000,
            organisations: ["hospital-a", "hospital-b", "agency", "maker"].map { Organisation(id: $0, name: $0, kind: "hospital") },
            admins: [.init(publicKey: admin.publicKey, organisation: "hospital-a")], adminQuorum: 1,
            validators: zip(keys.prefix(4), ["hospital-a", "hospital-b", "agency", "maker"]).map { Validator(publicKey: $0.publicKey, organisation: $1) },
            consensus: ConsensusParameters(maxBlockTransactions: 1_000, blockIntervalMs: 50))
        genesisBytes = [UInt8](try! JSONEncoder().encode(genesis))
    }

    func start(_ i: Int) async throws {
        let node = try Node(databasePath: dirs[i] + "/ledger.sqlite", genesis: genesis, genesisFile: genesisBytes, validatorKey: keys[i], requireValidator: i < 4)
        _ = try await node.restorePending()
        let driver = try ConsensusDriver(node: node, network: network, signer: keys[i], timeouts: Self.timeouts, tickMs: 100)
        await network.attach(driver)
        try await driver.start()
        nodes[i] = node
        drivers[i] = driver
    }

    /// kill -9 as far as one process can: the driver stops, the node is dropped without settling.
    func crash(_ i: Int) async {
        await drivers[i]?.stop()
        await network.detach(keys[i].publicKey)
        drivers[i] = nil
        nodes[i] = nil
    }

    func registrations(_ count: Int) -> [SignedTransaction] {
        defer { nonce += UInt64(count) }
        return (0..<count).map { k in
            Transaction(chainID: genesis.chainId, sender: admin.publicKey.address, signerKey: admin.publicKey, nonce: nonce + UInt64(k),
                        payload: .registerAccount(RegisterAccount(publicKey: PrivateKey.generate(.ed25519).publicKey, role: .device, organisation: "hospital-a")))
                .signed(with: admin)
        }
    }

    /// Waits (bounded) until `condition` holds.
    func eventually(_ what: String, seconds: Double = 60, _ condition: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await condition() { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        Issue.record("timed out waiting until \(what)")
        throw CancellationError()
    }

    func heights() async -> [UInt64?] {
        var out: [UInt64?] = []
        for n in nodes { out.append(await n?.latestHeader.height) }
        return out
    }

    /// Every running node holds the same block at every height they share, and verifies its chain.
    func checkAgreement() async throws {
        let running = nodes.compactMap { $0 }
        var minHeight = UInt64.max
        for n in running { minHeight = min(minHeight, await n.latestHeader.height) }
        for h in 1...max(1, minHeight) where minHeight >= 1 {
            let hashes = Set(try running.map { try $0.store.header(height: h)?.header.hash })
            #expect(hashes.count == 1, "nodes disagree at height \(h)")
        }
        for n in running {
            let report = try ChainVerifier.verify(store: n.store)
            #expect(report.ok, "\(report)")
        }
    }
}

@Suite("BFT consortium of four nodes (in-process network, real storage and signatures)", .serialized)
struct ConsensusClusterTests {
    @Test("transactions submitted to one node commit on all four with identical blocks and 3-of-4 commit certificates", .timeLimit(.minutes(2)))
    func commitsEverywhere() async throws {
        let c = Cluster()
        for i in 0..<4 { try await c.start(i) }
        let txs = c.registrations(40)
        for r in await c.nodes[0]!.submit(batch: txs) { _ = try r.get() }
        try await c.eventually("every node committed all 40") {
            for n in c.nodes.compactMap({ $0 }) { if await n.metrics.transactionsCommitted < 40 { return false } }
            return true
        }
        try await c.checkAgreement()
        let node = c.nodes[2]!
        let latest = await node.latestHeader
        let commit = try #require(try node.store.header(height: latest.height)?.commit)
        #expect(commit.signatures.count >= 3)
        try commit.verify(header: latest, validators: c.genesis.validators)
        // The transaction sent to node 0 is provable from node 2's ledger.
        #expect(try node.transactionProof(txs[39].hash) != nil)
        for i in 0..<5 { await c.crash(i) }
    }

    @Test("a validator that signs two conflicting prevotes is caught: the evidence is gossiped and recorded on-chain on every node", .timeLimit(.minutes(2)))
    func equivocationRecorded() async throws {
        let c = Cluster()
        for i in 0..<4 { try await c.start(i) }
        let liar = c.keys[3]
        var evidenceID: Hash?
        // Node 0 receives two different prevotes signed by validator 3 for the height it is deciding.
        try await c.eventually("node 0 detects the equivocation") {
            let d = c.drivers[0]!
            let h = await d.height, r = await d.round
            for value in [UInt8(1), 2] {
                let vote = SignedVote(signing: Vote(type: .prevote, height: h, round: r, valueID: Hash.sha256([value, UInt8(truncatingIfNeeded: h)])), chainID: c.genesis.chainId, with: liar)
                await d.receive(PeerMessage.consensus(.vote(vote)).canonicalBytes, from: liar.publicKey)
            }
            evidenceID = await d.evidence.first?.id
            return evidenceID != nil
        }
        let id = try #require(evidenceID)
        try await c.eventually("every node holds the evidence record in committed state") {
            for n in c.nodes.compactMap({ $0 }) {
                let (proof, _, _) = await n.stateProof(key: StateKeys.evidence(id))
                if proof.value == nil { return false }
            }
            return true
        }
        let (proof, header, _) = await c.nodes[1]!.stateProof(key: StateKeys.evidence(id))
        try proof.verify(root: header.stateRoot)
        let record = try EvidenceRecord(canonicalBytes: try #require(proof.value))
        #expect(record.offender == liar.publicKey)
        #expect(record.kind == "duplicate-vote")
        try await c.checkAgreement()
        for i in 0..<5 { await c.crash(i) }
    }

    @Test("governance adds a fifth validator: from two heights after approval it signs, and the chain needs it when one of the first four stops", .timeLimit(.minutes(2)))
    func validatorAdded() async throws {
        let c = Cluster()
        for i in 0..<5 { try await c.start(i) }  // the fifth follows as a non-validator at first
        let fifth = Validator(publicKey: c.keys[4].publicKey, organisation: "maker")
        let add = Transaction(chainID: c.genesis.chainId, sender: c.admin.publicKey.address, signerKey: c.admin.publicKey, nonce: c.nonce,
                              payload: .proposeGovernance(.addValidator(fifth))).signed(with: c.admin)
        c.nonce += 1
        _ = try await c.nodes[0]!.submit(add)
        guard case .committed(let approvedAt, _) = await c.nodes[0]!.awaitCommit(add.hash, timeoutMs: 30_000) else { Issue.record("not committed"); return }
        try await c.eventually("height \(approvedAt + 3) everywhere") {
            for n in c.nodes.compactMap({ $0 }) { if await n.latestHeader.height < approvedAt + 3 { return false } }
            return true
        }
        let node = c.nodes[1]!
        let before = try #require(try node.store.header(height: approvedAt + 1))
        let after = try #require(try node.store.header(height: approvedAt + 2))
        #expect(before.header.validatorsHash == Validator.setHash(c.genesis.validators))
        #expect(after.header.validatorsHash == Validator.setHash(c.genesis.validators + [fifth]))
        // Four of five (power 4 > 2/3 of 5) still decide only if the new validator signs.
        await c.crash(0)
        let h = await c.nodes[1]!.latestHeader.height
        for r in await c.nodes[2]!.submit(batch: c.registrations(5)) { _ = try r.get() }
        try await c.eventually("commits continue with validators 1–4") { await c.nodes[1]!.latestHeader.height >= h + 3 }
        let latest = await c.nodes[4]!.latestHeader
        let commit = try #require(try c.nodes[4]!.store.header(height: latest.height)?.commit)
        #expect(commit.signatures.contains { $0.validator == c.keys[4].publicKey })
        try commit.verify(header: latest, validators: c.genesis.validators + [fifth])
        try await c.checkAgreement()
        for i in 1..<5 { await c.crash(i) }
    }

    @Test("one validator crashes: the other three keep committing; restarted, it catches up to identical blocks", .timeLimit(.minutes(3)))
    func crashAndCatchUp() async throws {
        let c = Cluster()
        for i in 0..<4 { try await c.start(i) }
        for r in await c.nodes[0]!.submit(batch: c.registrations(10)) { _ = try r.get() }
        try await c.eventually("10 committed on node 3") { await c.nodes[3]!.metrics.transactionsCommitted >= 10 }
        await c.crash(3)
        let more = c.registrations(30)
        for r in await c.nodes[1]!.submit(batch: more) { _ = try r.get() }
        try await c.eventually("the three live nodes committed 40") {
            for i in 0..<3 { if await c.nodes[i]!.metrics.transactionsCommitted < 40 { return false } }
            return true
        }
        let target = await c.nodes[0]!.latestHeader.height
        try await c.start(3)
        try await c.eventually("node 3 caught up to height \(target)") { await c.nodes[3]!.latestHeader.height >= target }
        #expect(try c.nodes[3]!.transactionProof(more[29].hash) != nil)
        try await c.checkAgreement()
        for i in 0..<5 { await c.crash(i) }
    }

    @Test("a transaction an observer acknowledged while cut off reaches the validators once it reconnects, and commits (re-gossip)", .timeLimit(.minutes(2)))
    func observerRegossips() async throws {
        let c = Cluster()
        for i in 0..<5 { try await c.start(i) }  // node 4 is an observer: it never proposes
        for r in await c.nodes[4]!.submit(batch: c.registrations(2)) { _ = try r.get() }
        try await c.eventually("the first two commit") { await c.nodes[0]!.metrics.transactionsCommitted >= 2 }
        // Cut off, the observer acknowledges three more: their gossip is lost.
        await c.network.isolate(c.keys[4].publicKey)
        let lost = c.registrations(3)
        for r in await c.nodes[4]!.submit(batch: lost) { _ = try r.get() }
        try await Task.sleep(nanoseconds: 500_000_000)
        for i in 0..<4 { #expect(await !c.nodes[i]!.isPending(lost[0].hash)) }
        await c.network.isolate(c.keys[4].publicKey, false)
        // Only the observer held them; gossiped again, they commit on the validators.
        try await c.eventually("the three commit", seconds: 30) {
            for i in 0..<4 { if await c.nodes[i]!.metrics.transactionsCommitted < 5 { return false } }
            return true
        }
        try await c.eventually("the observer sees them committed") { await c.nodes[4]!.metrics.transactionsCommitted >= 5 }
        for i in 0..<5 { await c.crash(i) }
    }

    @Test("two of four cut off: commits stop without a fork; reconnected, they resume", .timeLimit(.minutes(3)))
    func noQuorumNoFork() async throws {
        let c = Cluster()
        for i in 0..<4 { try await c.start(i) }
        for r in await c.nodes[0]!.submit(batch: c.registrations(5)) { _ = try r.get() }
        try await c.eventually("5 committed everywhere") {
            for n in c.nodes.compactMap({ $0 }) { if await n.metrics.transactionsCommitted < 5 { return false } }
            return true
        }
        await c.network.isolate(c.keys[2].publicKey)
        await c.network.isolate(c.keys[3].publicKey)
        try await Task.sleep(nanoseconds: 300_000_000)  // let blocks already decided settle
        let stuck = await c.heights()
        let pending = c.registrations(5)
        for r in await c.nodes[0]!.submit(batch: pending) { _ = try r.get() }
        try await Task.sleep(nanoseconds: 2_000_000_000)
        let after = await c.heights()
        // Two of four hold half the power, not more than two thirds: nothing can be decided.
        for i in 0..<4 { #expect(after[i]! <= stuck.compactMap { $0 }.max()! + 1, "node \(i) went from \(stuck[i]!) to \(after[i]!) without a quorum") }
        #expect(await c.nodes[0]!.isPending(pending[4].hash))
        await c.network.isolate(c.keys[2].publicKey, false)
        await c.network.isolate(c.keys[3].publicKey, false)
        try await c.eventually("commits resume") { await c.nodes[0]!.metrics.transactionsCommitted >= 10 }
        try await c.eventually("all four reach the same height") {
            let hs = await c.heights().compactMap { $0 }
            return Set(hs).count == 1
        }
        try await c.checkAgreement()
        for i in 0..<5 { await c.crash(i) }
    }
}

@Suite("Proposal validation reuses admission's signature checks, safely")
struct ProposalSignatureCacheTests {
    @Test("a proposal with the mempool's transactions validates; the same transaction with another signature is refused")
    func forgedSignatureOfAdmittedTransactionIsRefused() async throws {
        let chain = TestChain()
        let proposer = try chain.open()
        // A second node of the same chain, with the same transactions admitted (as gossip does).
        let clock = chain.clock
        let validator = try Node(databasePath: temporaryFolder() + "/ledger.sqlite", genesis: chain.genesis, genesisFile: chain.genesisBytes,
                                 validatorKey: chain.validator, clock: { clock.now() })
        let txs = chain.registrations(from: 0, count: 3)
        for r in await proposer.submit(batch: txs) { _ = try r.get() }
        for r in await validator.submit(batch: txs) { _ = try r.get() }
        let (_, bytes) = try await proposer.proposeBlock(height: 1)
        let block = try ProposedBlock(canonicalBytes: bytes)
        #expect(block.transactions.count == 3)
        // Same transactions, the second one's signature replaced: its hash (over the unsigned
        // transaction) is still one the validator admitted, but this signature was never verified.
        var forged = block
        forged.transactions[1].signature = Signature(bytes: [UInt8](repeating: 0x42, count: 64))!
        let forgedBytes = ProposedBlock.encode(header: forged.header, transactionBytes: forged.transactions.map(\.canonicalBytes))
        guard case .failure(let e) = await validator.validateBlock(forgedBytes, height: 1) else {
            Issue.record("a forged signature on an admitted transaction was accepted")
            return
        }
        // The genuine proposal validates (its signatures come from the admission checks).
        guard case .success = await validator.validateBlock(bytes, height: 1) else {
            Issue.record("the genuine proposal was refused")
            return
        }
        #expect("\(e)".contains("signature"))
    }
}
