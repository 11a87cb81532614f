import ArgumentParser
import Dispatch
import Foundation
import IoMTContracts
import IoMTCore
import IoMTNode

/// `iomtchain bench`: single-node throughput with real signatures and fsync'd commits,
/// submit-to-commit latency at half that load, proof timings, and the machine's own limit
/// (signature verifications per second on all cores) measured in the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Measure single-node throughput, latency and proof costs.")

    @Option(help: "Transactions in the throughput run.") var transactions = 40_000
    @Option(help: "Signature algorithm of the sending accounts: ed25519 or p256.") var algorithm = "ed25519"
    @Option(help: "Seconds of the half-load latency run.") var latencySeconds = 5.0
    @Option(help: "Transactions per submitted batch in the throughput run.") var batch = 250
    @Option(help: "Concurrent clients (gateways), each with its own sending accounts.") var clients = 16
    @Option(help: "Block interval of the benchmark chain (ms).") var blockIntervalMs: UInt64 = 50
    @Option(help: "Also measure latency at this offered rate (tx/s), e.g. 5000 for half of the 10,000 goal.") var offeredLatencyRate: Double?
    @Option(help: "Scratch folder (deleted afterwards).") var scratch = NSTemporaryDirectory() + "iomt-bench-\(getpid())"

    func run() async throws {
        guard let alg = SignatureAlgorithm(name: algorithm) else { throw CLIError("unknown algorithm") }
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        print("machine: \(cores) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB; algorithm \(alg)")

        let limit = verifyRate(alg)
        print(String(format: "limit: %.0f signature verifications/s on %d cores (%.0f on one)", limit.all, cores, limit.one))

        let tps = try await throughput(alg)
        print(String(format: "throughput: %.0f committed tx/s (%.0f%% of the verification limit) — %d tx in %.2f s, %d blocks; %.2f of %d cores busy, %.0f µs CPU per tx", tps.rate, 100 * tps.rate / limit.all, transactions, tps.seconds, tps.blocks, tps.cpuSeconds / tps.seconds, cores, tps.cpuSeconds / Double(transactions) * 1e6))

        let lat = try await latency(alg, rate: tps.rate / 2)
        print(String(format: "latency at %.0f tx/s offered (half of peak): p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d tx", lat.offered, lat.p50, lat.p99, lat.max, lat.count))
        if let goal = offeredLatencyRate {
            let g = try await latency(alg, rate: goal)
            print(String(format: "latency at %.0f tx/s offered (fixed): p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d tx", g.offered, g.p50, g.p99, g.max, g.count))
        }

        let proofs = proofTimings()
        print(String(format: "tx proof (10,000-leaf block): generate %.1f µs, verify %.2f µs; state proof (100,000 keys): generate %.2f µs, verify %.2f µs", proofs.txGen, proofs.txVerify, proofs.stateGen, proofs.stateVerify))
    }

    // MARK: machine limit

    func verifyRate(_ alg: SignatureAlgorithm) -> (all: Double, one: Double) {
        let key = PrivateKey.generate(alg)
        let n = 20_000
        let msgs = (0..<n).map { i in Array("message \(i) padding to a realistic transaction size".utf8) }
        let sigs = msgs.map { key.sign($0) }
        let pub = key.publicKey
        let t0 = DispatchTime.now()
        DispatchQueue.concurrentPerform(iterations: n) { i in precondition(pub.isValidSignature(sigs[i], for: msgs[i])) }
        let all = Double(n) / seconds(since: t0)
        let t1 = DispatchTime.now()
        for i in 0..<n / 4 { precondition(pub.isValidSignature(sigs[i], for: msgs[i])) }
        let one = Double(n / 4) / seconds(since: t1)
        return (all, one)
    }

    // MARK: throughput

    /// A fresh dev chain with `senders` admins so transactions come from many accounts.
    func freshNode(_ tag: String, senders: Int, alg: SignatureAlgorithm) throws -> (Node, [PrivateKey], String) {
        let dir = scratch + "/" + tag + "-" + String(UInt64(DispatchTime.now().uptimeNanoseconds), radix: 36)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let validator = PrivateKey.generate(.ed25519)
        let admins = (0..<senders).map { _ in PrivateKey.generate(alg) }
        let genesis = Genesis(
            chainId: "iomt-bench", genesisTimeMs: nowMs(), organisations: [Organisation(id: "bench-hospital", name: "Bench", kind: "hospital")],
            admins: admins.map { .init(publicKey: $0.publicKey, organisation: "bench-hospital") }, adminQuorum: 1,
            validators: [Validator(publicKey: validator.publicKey, organisation: "bench-hospital")],
            consensus: ConsensusParameters(maxBlockTransactions: 10_000, blockIntervalMs: blockIntervalMs))
        let bytes = [UInt8](try JSONEncoder().encode(genesis))
        let node = try Node(databasePath: dir + "/ledger.sqlite", genesis: genesis, genesisFile: bytes, validatorKey: validator, mempoolCapacity: 200_000)
        return (node, admins, "iomt-bench")
    }

    /// `count` signed register-account transactions, round-robin over the senders.
    func makeTransactions(_ count: Int, senders: [PrivateKey], chainID: String, alg: SignatureAlgorithm, firstNonce: [UInt64]? = nil) -> [SignedTransaction] {
        var nonces = firstNonce ?? [UInt64](repeating: 0, count: senders.count)
        var out: [SignedTransaction] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            let s = i % senders.count
            let device = PrivateKey.generate(.ed25519)
            let tx = Transaction(chainID: chainID, sender: senders[s].publicKey.address, signerKey: senders[s].publicKey, nonce: nonces[s],
                                 payload: .registerAccount(RegisterAccount(publicKey: device.publicKey, role: .device, organisation: "bench-hospital", label: "pulse oximeter")))
            nonces[s] += 1
            out.append(tx.signed(with: senders[s]))
        }
        return out
    }

    /// Peak: `clients` concurrent clients, each with its own sending accounts, each submitting
    /// batches back to back (a client waits for its batch's durable acknowledgement before the
    /// next, as a real one would). Many clients let verification, admission, block execution and
    /// the fsyncs of different batches overlap.
    func throughput(_ alg: SignatureAlgorithm) async throws -> (rate: Double, seconds: Double, blocks: UInt64, cpuSeconds: Double) {
        let (node, admins, chain) = try freshNode("tps", senders: senderCount, alg: alg)
        let lanes = clientLanes(makeTransactions(transactions, senders: admins, chainID: chain, alg: alg), senders: admins.count)
        let producer = Task { await node.runProducer(pollMs: 1) }
        defer { producer.cancel() }
        let batchSize = batch
        let cpu0 = processCPUSeconds()
        let t0 = DispatchTime.now()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in lanes {
                group.addTask {
                    var i = 0
                    while i < lane.count {
                        let chunk = Array(lane[i..<min(i + batchSize, lane.count)])
                        for r in await node.submit(batch: chunk) { if case .failure(let e) = r { throw CLIError("bench transaction refused: \(e)") } }
                        i += chunk.count
                        // A client population is throttled by the mempool bound, not unbounded.
                        while await node.mempoolCount > 30_000 { try await Task.sleep(nanoseconds: 1_000_000) }
                    }
                }
            }
            try await group.waitForAll()
        }
        while await node.metrics.transactionsCommitted < UInt64(transactions) { try await Task.sleep(nanoseconds: 1_000_000) }
        let secs = seconds(since: t0)
        let cpu = processCPUSeconds() - cpu0
        return (Double(transactions) / secs, secs, await node.metrics.blocksCommitted, cpu)
    }

    /// Four sending accounts per client, at least 16.
    var senderCount: Int { max(16, 4 * clients) }

    /// Splits transactions into per-client lanes: client c owns senders c, c+clients, … so each
    /// lane holds every transaction of its senders, in nonce order.
    func clientLanes(_ txs: [SignedTransaction], senders: Int) -> [[SignedTransaction]] {
        var lanes = [[SignedTransaction]](repeating: [], count: clients)
        for (i, tx) in txs.enumerated() { lanes[(i % senders) % clients].append(tx) }
        return lanes
    }

    // MARK: latency

    /// Offered load at `rate`, open loop: transaction j of a client is due at j / (rate / clients)
    /// seconds. Every 10 ms each client sends everything that has fallen due and not been sent, in
    /// nonce order; a client whose previous send was slow catches up with one larger batch instead
    /// of falling behind the schedule. Latency runs from each transaction's own due time to its
    /// durable commit, so time spent queued in the client counts too.
    func latency(_ alg: SignatureAlgorithm, rate: Double) async throws -> (offered: Double, p50: Double, p99: Double, max: Double, count: Int) {
        let (node, admins, chain) = try freshNode("latency", senders: senderCount, alg: alg)
        let total = Int(rate * latencySeconds)
        let lanes = clientLanes(makeTransactions(total, senders: admins, chainID: chain, alg: alg), senders: admins.count)
        let producer = Task { await node.runProducer(pollMs: 1) }
        defer { producer.cancel() }
        let laneRate = rate / Double(clients)
        let t0 = DispatchTime.now()
        var lastSendSeconds = 0.0
        let latenciesMs = try await withThrowingTaskGroup(of: (latencies: [Double], lastSend: Double).self) { group in
            for lane in lanes {
                group.addTask {
                    try await withThrowingTaskGroup(of: [Double].self) { waits in
                        var i = 0
                        var lastSend = 0.0
                        while i < lane.count {
                            let now = seconds(since: t0)
                            let due = min(lane.count, Int(now * laneRate) + 1)
                            if due <= i {
                                let next = Double(i) / laneRate
                                try await Task.sleep(nanoseconds: UInt64(max(0.001, min(0.010, next - now)) * 1e9))
                                continue
                            }
                            let range = i..<due
                            let chunk = Array(lane[range])
                            i = due
                            for r in await node.submit(batch: chunk) { if case .failure(let e) = r { throw CLIError("bench transaction refused: \(e)") } }
                            lastSend = seconds(since: t0)
                            if ProcessInfo.processInfo.environment["IOMT_BENCH_TRACE"] != nil { print(String(format: "t=%.3f sent %d (due from %.3f) ack after %.1f ms", lastSend, chunk.count, Double(range.lowerBound) / laneRate, (lastSend - now) * 1000)) }
                            waits.addTask {
                                var out: [Double] = []
                                for (j, tx) in zip(range, chunk) {
                                    guard case .committed = await node.awaitCommit(tx.hash, timeoutMs: 30_000) else { throw CLIError("transaction did not commit within 30 s") }
                                    out.append((seconds(since: t0) - Double(j) / laneRate) * 1000)
                                }
                                return out
                            }
                            if due < lane.count, Double(due) / laneRate > seconds(since: t0) {
                                try await Task.sleep(nanoseconds: 10_000_000)
                            }
                        }
                        var all: [Double] = []
                        for try await l in waits { all += l }
                        return (all, lastSend)
                    }
                }
            }
            var all: [Double] = []
            for try await l in group { all += l.latencies; lastSendSeconds = max(lastSendSeconds, l.lastSend) }
            return all.sorted()
        }
        func pct(_ p: Double) -> Double { latenciesMs[min(latenciesMs.count - 1, Int(Double(latenciesMs.count) * p))] }
        // Offered: what the clients actually managed to send, over the time they took to send it.
        return (Double(total) / max(lastSendSeconds, latencySeconds - 1 / laneRate), pct(0.5), pct(0.99), latenciesMs.last ?? 0, latenciesMs.count)
    }

    // MARK: proofs

    func proofTimings() -> (txGen: Double, txVerify: Double, stateGen: Double, stateVerify: Double) {
        let leaves = (0..<10_000).map { i in MerkleTree.leafHash(Array("tx \(i)".utf8)) }
        let root = MerkleTree.root(leafHashes: leaves)
        let idx = 6_789
        var t = DispatchTime.now()
        var proof: InclusionProof!
        for _ in 0..<20 { proof = MerkleTree.proof(leafHashes: leaves, index: idx) }
        let txGen = seconds(since: t) / 20 * 1e6
        let leaf = Array("tx \(idx)".utf8)
        t = DispatchTime.now()
        for _ in 0..<10_000 { precondition(proof.verify(leaf: leaf, root: root)) }
        let txVerify = seconds(since: t) / 10_000 * 1e6

        var writes: [[UInt8]: [UInt8]?] = [:]
        for i in 0..<100_000 { writes[Array("acct/\(i)".utf8)] = Array("value \(i)".utf8) }
        let state = AuthenticatedState().applying(writes)
        t = DispatchTime.now()
        var sp: StateProof!
        for i in 0..<10_000 { sp = state.proof(forKey: Array("acct/\(i * 7)".utf8)) }
        let stateGen = seconds(since: t) / 10_000 * 1e6
        t = DispatchTime.now()
        for _ in 0..<10_000 { precondition(sp.isValid(root: state.root)) }
        let stateVerify = seconds(since: t) / 10_000 * 1e6
        return (txGen, txVerify, stateGen, stateVerify)
    }
}

/// User + system CPU time of this process so far.
func processCPUSeconds() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
}

func seconds(since t: DispatchTime) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e9 }
