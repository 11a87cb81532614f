import ArgumentParser
import Dispatch
import Foundation
import IoMTCore
import IoMTNode
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

/// `iomtchain bench-consortium`: BFT (Tendermint) with n validators as separate OS processes on
/// 127.0.0.1, driven over the HTTP API like real gateways would. In one run it measures the
/// machine's signature-verification limit, unloaded finality, committed throughput at saturation,
/// finality under that load, CPU-seconds per committed transaction of the node processes, and how
/// fast a killed and restarted validator catches up (docs/benchmarks.md).
struct BenchConsortiumCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-consortium",
        abstract: "Measure BFT throughput, finality latency, CPU per transaction and catch-up speed on a local multi-process consortium.",
        discussion: "Creates a fresh devnet in --scratch (deleted afterwards unless --keep), starts every validator as its own process, and stops them all at the end, also on failure. Exits non-zero if any phase fails or exceeds its time bound.")

    @Option(help: "Validators (separate processes).") var validators = 4
    @Option(help: "Transactions in the saturation phase.") var transactions = 20_000
    @Option(help: "Concurrent client lanes in the saturation phase, each with its own admin, sending to the validators round-robin.") var clients = 16
    @Option(help: "Transactions per POST /v1/transactions/batch.") var batch = 250
    @Option(help: "Block interval of the benchmark chain (ms): the pause after each decision.") var blockIntervalMs: UInt64 = 100
    @Option(help: "Sequential ?wait=commit transactions in the unloaded finality phase.") var unloadedTransactions = 100
    @Option(help: "Pace of the finality sampler during saturation (ms between sends; closed loop).") var samplerIntervalMs = 50
    @Option(help: "Catch-up: blocks the chain runs ahead of the killed validator before it restarts.") var catchUpBlocks: UInt64 = 300
    @Option(help: "Catch-up: at most this many seconds of lag before the restart, whatever the block count.") var catchUpSeconds = 90.0
    @Option(help: "Catch-up: offered load (tx/s) on the remaining validators while one is down.") var catchUpLoad = 500.0
    @Flag(help: "Skip the catch-up phase.") var skipCatchUp = false
    @Option(help: "Sustained phase: offered load (tx/s, open loop, spread over the lanes and validators) while finality is sampled; 0 skips it.") var sustainedRate = 0.0
    @Option(help: "Sustained phase: how long the load is offered (s).") var sustainedSeconds = 20.0
    @Option(help: "Consensus mode of the benchmark chain: bft, poa or pow (the consensus comparison).") var consensus: ConsensusMode.Kind = .bft
    @Option(help: "PoA/PoW: confirmation depth (default: poa 2, pow 6).") var confirmationDepth: UInt32?
    @Option(help: "PoW: expected hashes per block at the start (retargeted towards the block interval).") var powHashesPerBlock: UInt64 = 20_000
    @Option(help: "Upper bound (s) of the saturation phase; exceeded means failure.") var timeoutSeconds = 300.0
    @Option(help: "Scratch folder for the consortium (must not exist).") var scratch = NSTemporaryDirectory() + "iomt-bench-consortium-\(getpid())"
    @Flag(help: "Keep the scratch folder (node logs, ledgers) afterwards.") var keep = false

    func validate() throws {
        guard (1...16).contains(validators) else { throw ValidationError("--validators must be 1…16") }
        guard clients >= 1, transactions >= clients else { throw ValidationError("--clients must be ≥ 1 and ≤ --transactions") }
        guard (1...5_000).contains(batch) else { throw ValidationError("--batch must be 1…5000 (the API's batch limit)") }
        guard samplerIntervalMs >= 1, unloadedTransactions >= 1 else { throw ValidationError("--sampler-interval-ms and --unloaded-transactions must be ≥ 1") }
    }

    func run() async throws {
        guard !FileManager.default.fileExists(atPath: scratch) else { throw CLIError("--scratch \(scratch) exists; choose a new folder") }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        print("machine: \(cores) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB; load average \(loadAverage()) (1, 5, 15 min); \(validators) validators as processes, consensus \(consensus), block interval \(blockIntervalMs) ms")

        // (a) The machine limit, measured in this run before any node exists.
        let limit = try BenchCommand.parse([]).verifyRate(.ed25519)
        let hardLimit = limit.all / Double(validators)
        print(String(format: "limit: %.0f Ed25519 verifications/s on %d cores (%.0f on one); hard limit for BFT (every validator verifies every tx): %.0f tx/s at n = %d", limit.all, cores, limit.one, hardLimit, validators))
        fflush(nil)

        let devnet = try DevnetCommand.parse(["--validators", "\(validators)", "--data-dir", scratch, "--block-interval-ms", "\(blockIntervalMs)",
                                              "--consensus", consensus.rawValue, "--pow-hashes-per-block", "\(powHashesPerBlock)"]
                                             + (confirmationDepth.map { ["--confirmation-depth", "\($0)"] } ?? []))
        let manifest = try devnet.create(extraAdmins: clients + 2 * validators)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try enc.encode(manifest).write(to: URL(fileURLWithPath: scratch + "/devnet.json"), options: .atomic)
        let dir = URL(fileURLWithPath: scratch).standardizedFileURL.path
        let admins = try (0..<(clients + 2 * validators)).map { try KeyFile.load(path: dir + "/admin-\($0).key.json") }
        let cluster = try ClusterProcesses(devnet: devnet, members: manifest.members.filter { $0.role == "validator" }, chainID: manifest.chainId)

        do {
            try await cluster.startAll()
            try await runPhases(cluster, admins: admins, hardLimit: hardLimit, cores: cores)
        } catch {
            cluster.stopAll()
            if !keep { try? FileManager.default.removeItem(atPath: scratch) }
            throw error
        }
        cluster.stopAll()
        if keep { print("kept \(scratch)") } else { try? FileManager.default.removeItem(atPath: scratch) }
    }

    private func runPhases(_ cluster: ClusterProcesses, admins: [PrivateKey], hardLimit: Double, cores: Int) async throws {
        let n = validators
        let laneAdmins = Array(admins[0..<clients])
        let unloadedAdmins = Array(admins[clients..<clients + n])
        let samplerAdmins = Array(admins[clients + n..<clients + 2 * n])

        // Consensus running on every node (a few heights decided) before anything is timed.
        try await cluster.waitForHeight(3, seconds: 60)

        // (b) Unloaded finality.
        let unloaded = try await unloadedFinality(cluster, admins: unloadedAdmins)
        print(String(format: "unloaded finality: p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d sequential tx (POST ?wait=commit, send to 200 reply, validators round-robin)", unloaded.p50, unloaded.p99, unloaded.max, unloaded.count))
        fflush(nil)

        // (c), (d), (e) Saturation, finality under load and CPU per transaction.
        let sat = try await saturation(cluster, laneAdmins: laneAdmins, samplerAdmins: samplerAdmins)
        let rate = Double(transactions) / sat.seconds
        print(String(format: "saturation: %.0f committed tx/s (%.0f%% of the hard limit) — %d tx in %.2f s over %d lanes × batches of %d, heights %llu→%llu (%.0f tx/block)", rate, 100 * rate / hardLimit, transactions, sat.seconds, clients, batch, sat.heights.0, sat.heights.1, Double(transactions + sat.underLoad.count) / Double(max(1, sat.heights.1 - sat.heights.0))))
        print(String(format: "finality under load: p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d tx (one every %d ms, closed loop, validators round-robin)", sat.underLoad.p50, sat.underLoad.p99, sat.underLoad.max, sat.underLoad.count, samplerIntervalMs))
        let committed = Double(transactions + sat.underLoad.count)
        if cluster.earlyPendingReplies > 0 { print("note: \(cluster.earlyPendingReplies) ?wait=commit replies came back 202 pending before their timeout (latency taken from polling until committed)") }
        print(String(format: "cpu: node processes %.2f CPU-s for %.0f committed tx = %.0f µs per tx (%.2f of %d cores busy); this bench process %.2f CPU-s", sat.nodeCPUSeconds, committed, sat.nodeCPUSeconds / committed * 1e6, sat.nodeCPUSeconds / sat.seconds, cores, sat.benchCPUSeconds))
        fflush(nil)

        // Safety after the load: one history on every validator.
        let agreed = try await cluster.agreement()
        if agreed.hashes.count == 1 {
            print("agreement: all \(n) validators have block \(agreed.hashes.keys.first!.prefix(16))… at height \(agreed.height)")
        } else {
            print("SPLIT: at height \(agreed.height) the validators hold \(agreed.hashes.count) different final blocks: " + agreed.hashes.map { "\($0.key.prefix(16))… (\($0.value.joined(separator: ", ")))" }.sorted().joined(separator: "; "))
            fflush(nil)
            throw CLIError("the consortium split under load: the validators finalised different blocks at height \(agreed.height) (node.log: FORK BELOW FINAL HEIGHT)")
        }
        fflush(nil)

        // (d') Finality at a sustained load below capacity (open loop).
        if sustainedRate > 0 {
            let s = try await sustained(cluster, laneAdmins: laneAdmins, samplerAdmins: samplerAdmins)
            print(String(format: "sustained load: %.0f tx/s offered for %.0f s (open loop, %d lanes), %d sent, %.0f tx/s committed; finality p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d tx (one every %d ms, validators round-robin); lanes late %d times",
                         sustainedRate, sustainedSeconds, clients, s.sent, s.committedRate, s.finality.p50, s.finality.p99, s.finality.max, s.finality.count, samplerIntervalMs, s.late))
            fflush(nil)
        }

        // (f) Catch-up after kill -9.
        if skipCatchUp { print("catch-up: skipped"); return }
        guard n >= 4 else { print("catch-up: skipped (needs n ≥ 4 so that the others keep a quorum)"); return }
        let nextNonces = try await cluster.nextNonces(laneAdmins)
        let c = try await catchUp(cluster, laneAdmins: laneAdmins, nextNonces: nextNonces)
        print(String(format: "catch-up: %@ killed (kill -9) at height %llu, restarted %llu blocks behind after %.1f s; caught up %llu blocks in %.2f s = %.0f blocks/s from healthy (%.2f s, %.0f blocks/s from launch); block %llu hash identical", c.name, c.killedAt, c.behind, c.lagSeconds, c.blocks, c.secondsFromHealthy, Double(c.blocks) / c.secondsFromHealthy, c.secondsFromLaunch, Double(c.blocks) / c.secondsFromLaunch, c.checkedHeight))
    }

    // MARK: transactions

    /// Transactions per lane: `transactions` split as evenly as possible.
    func planLanes() -> [Int] { (0..<clients).map { transactions / clients + ($0 < transactions % clients ? 1 : 0) } }

    /// A signed register-account transaction for a fresh device key, from a member-admin of org-0.
    static func registerDevice(admin: PrivateKey, nonce: UInt64, chainID: String) -> SignedTransaction {
        let device = PrivateKey.generate(.ed25519)
        return Transaction(chainID: chainID, sender: admin.publicKey.address, signerKey: admin.publicKey, nonce: nonce,
                           payload: .registerAccount(RegisterAccount(publicKey: device.publicKey, role: .device, organisation: "org-0", label: "pulse oximeter")))
            .signed(with: admin)
    }

    // MARK: (b) unloaded finality

    /// Sequential single transactions with `?wait=commit`. Sender j always goes to validator j so
    /// its nonces are checked against the state that admitted the previous one.
    func unloadedFinality(_ cluster: ClusterProcesses, admins: [PrivateKey]) async throws -> Percentiles {
        var nonces = [UInt64](repeating: 0, count: admins.count)
        var latenciesMs: [Double] = []
        for k in 0..<unloadedTransactions {
            let j = k % admins.count
            let tx = Self.registerDevice(admin: admins[j], nonce: nonces[j], chainID: cluster.chainID)
            nonces[j] += 1
            let t = DispatchTime.now()
            try await cluster.submitAndWaitForCommit(tx, on: j, what: "unloaded finality, tx \(k)")
            latenciesMs.append(seconds(since: t) * 1000)
        }
        return Percentiles(latenciesMs)
    }

    // MARK: (c) saturation, (d) finality under load, (e) CPU

    struct Saturation {
        var seconds: Double
        var heights: (UInt64, UInt64)
        var underLoad: Percentiles
        var nodeCPUSeconds: Double
        var benchCPUSeconds: Double
    }

    func saturation(_ cluster: ClusterProcesses, laneAdmins: [PrivateKey], samplerAdmins: [PrivateKey]) async throws -> Saturation {
        let n = validators
        // Everything signed and encoded before the clock starts.
        let plan = planLanes()
        var bodies: [[Data]] = []
        var lastHashes: [String] = []
        for (lane, count) in plan.enumerated() {
            let txs = (0..<count).map { Self.registerDevice(admin: laneAdmins[lane], nonce: UInt64($0), chainID: cluster.chainID) }
            bodies.append(try stride(from: 0, to: count, by: batch).map { try JSONEncoder().encode(Array(txs[$0..<min($0 + batch, count)])) })
            lastHashes.append(txs[count - 1].hash.hex)
        }
        let lastTxHashes = lastHashes
        let laneCount = clients
        let board = LaneBoard(lanes: clients)
        let h0 = try await cluster.height(0)
        let cpu0 = try cluster.nodeCPUSeconds()
        let bench0 = processCPUSeconds()
        let t0 = DispatchTime.now()
        let deadline = timeoutSeconds
        let batchSize = batch
        let samplerMs = samplerIntervalMs
        let result = try await withThrowingTaskGroup(of: Phase.self) { group in
            for lane in 0..<clients {
                let node = lane % n
                let laneBodies = bodies[lane]
                group.addTask {
                    for (b, body) in laneBodies.enumerated() {
                        guard seconds(since: t0) < deadline else { throw CLIError("saturation: lane \(lane) still sending after \(deadline) s") }
                        let r = try await cluster.http.send("POST", cluster.urls[node] + "/v1/transactions/batch", body: body)
                        guard r.status == 200 else { throw CLIError("saturation: lane \(lane) batch \(b) on \(cluster.members[node].name): HTTP \(r.status) \(r.text)") }
                        let items = try JSONDecoder().decode([BatchItem].self, from: r.body)
                        if let bad = items.first(where: { $0.status == "rejected" }) {
                            throw CLIError("saturation: lane \(lane) batch \(b) (\(batchSize) tx) on \(cluster.members[node].name): rejected \(bad.error?.code ?? "?"): \(bad.error?.detail ?? "")")
                        }
                    }
                    board.markSubmitted(lane)
                    return .lane
                }
            }
            // Every lane's last transaction committed on the node it was sent to. A lane is checked
            // again only after its node's height moved, so polling stays cheap.
            group.addTask {
                var checkedAt = [UInt64](repeating: 0, count: laneCount)
                while true {
                    guard seconds(since: t0) < deadline else { throw CLIError("saturation: not every transaction committed within \(deadline) s (\(board.confirmedCount) of \(laneCount) lanes)") }
                    let open = board.openLanes()
                    if open.isEmpty && board.allSubmitted { break }
                    var heights: [Int: UInt64] = [:]
                    for lane in open {
                        let node = lane % n
                        if heights[node] == nil { heights[node] = try await cluster.height(node) }
                        guard let h = heights[node], h > checkedAt[lane] else { continue }
                        checkedAt[lane] = h
                        let r = try await cluster.http.send("GET", cluster.urls[node] + "/v1/transactions/" + lastTxHashes[lane])
                        if r.status == 200, (try? JSONDecoder().decode(BatchItem.self, from: r.body))?.status == "committed" { board.confirm(lane) }
                    }
                    try await Task.sleep(nanoseconds: 20_000_000)
                }
                let secs = seconds(since: t0)
                let cpu = try cluster.nodeCPUSeconds()
                board.finish()
                return .done(seconds: secs, nodeCPU: cpu, bench: processCPUSeconds())
            }
            // Finality under load: one sender per validator, pinned, paced every samplerMs.
            group.addTask {
                var nonces = [UInt64](repeating: 0, count: n)
                var latenciesMs: [Double] = []
                var k = 0
                while !board.finished, seconds(since: t0) < deadline {
                    let j = k % n
                    k += 1
                    let tx = Self.registerDevice(admin: samplerAdmins[j], nonce: nonces[j], chainID: cluster.chainID)
                    nonces[j] += 1
                    let t = DispatchTime.now()
                    try await cluster.submitAndWaitForCommit(tx, on: j, what: "finality sampler")
                    let ms = seconds(since: t) * 1000
                    if !board.finished { latenciesMs.append(ms) }
                    if ms < Double(samplerMs) { try await Task.sleep(nanoseconds: UInt64((Double(samplerMs) - ms) * 1e6)) }
                }
                return .sampler(latenciesMs)
            }
            var out = Saturation(seconds: 0, heights: (0, 0), underLoad: Percentiles([]), nodeCPUSeconds: 0, benchCPUSeconds: 0)
            for try await phase in group {
                switch phase {
                case .lane: break
                case .done(let s, let cpu, let bench):
                    out.seconds = s
                    out.nodeCPUSeconds = cpu - cpu0
                    out.benchCPUSeconds = bench - bench0
                case .sampler(let l): out.underLoad = Percentiles(l)
                }
            }
            return out
        }
        var out = result
        out.heights = (h0, try await cluster.height(0))
        return out
    }

    enum Phase: Sendable {
        case lane
        case done(seconds: Double, nodeCPU: Double, bench: Double)
        case sampler([Double])
    }

    struct BatchItem: Decodable {
        struct Problem: Decodable { var code: String?; var detail: String? }
        var status: String
        var error: Problem?
    }

    // MARK: (d') sustained load

    struct Sustained {
        var sent: Int
        var committedRate: Double
        var finality: Percentiles
        var late: Int
    }

    /// Offers `sustainedRate` tx/s for `sustainedSeconds`: each lane sends a small batch to its
    /// validator on a fixed schedule (open loop: a slow reply does not slow the offer, only that
    /// lane's next send, counted as late), while one sequential sender samples finality. Then waits
    /// until every lane's last transaction is committed.
    func sustained(_ cluster: ClusterProcesses, laneAdmins: [PrivateKey], samplerAdmins: [PrivateKey]) async throws -> Sustained {
        let n = validators, lanes = clients
        let perLane = sustainedRate / Double(lanes)
        let perSend = max(1, Int((perLane * 0.2).rounded()))
        let interval = Double(perSend) / perLane
        let duration = sustainedSeconds
        let laneNonces = try await cluster.nextNonces(laneAdmins)
        let samplerNonces = try await cluster.nextNonces(samplerAdmins)
        let chainID = cluster.chainID
        let samplerMs = samplerIntervalMs
        let t0 = DispatchTime.now()
        enum Out: Sendable { case lane(sent: Int, late: Int, last: String?, node: Int), sampler([Double]) }
        let outs = try await withThrowingTaskGroup(of: Out.self) { group in
            for lane in 0..<lanes {
                group.addTask {
                    var nonce = laneNonces[lane], k = 0, sent = 0, late = 0
                    var last: String?
                    let node = lane % n
                    while true {
                        let due = Double(k) * interval
                        guard due < duration else { break }
                        let now = seconds(since: t0)
                        if now < due { try await Task.sleep(nanoseconds: UInt64((due - now) * 1e9)) } else if now - due > interval { late += 1 }
                        k += 1
                        let txs = (0..<perSend).map { i in Self.registerDevice(admin: laneAdmins[lane], nonce: nonce + UInt64(i), chainID: chainID) }
                        let r = try await cluster.http.send("POST", cluster.urls[node] + "/v1/transactions/batch", body: try JSONEncoder().encode(txs))
                        guard r.status == 200 else { throw CLIError("sustained: lane \(lane) on \(cluster.members[node].name): HTTP \(r.status) \(r.text)") }
                        let items = try JSONDecoder().decode([BatchItem].self, from: r.body)
                        if let bad = items.first(where: { $0.status == "rejected" }) { throw CLIError("sustained: lane \(lane): rejected \(bad.error?.code ?? "?"): \(bad.error?.detail ?? "")") }
                        nonce += UInt64(perSend)
                        sent += perSend
                        last = txs.last?.hash.hex
                    }
                    return .lane(sent: sent, late: late, last: last, node: node)
                }
            }
            group.addTask {
                var nonces = samplerNonces
                var latencies: [Double] = []
                var k = 0
                while seconds(since: t0) < duration {
                    let j = k % n
                    k += 1
                    let tx = Self.registerDevice(admin: samplerAdmins[j], nonce: nonces[j], chainID: chainID)
                    nonces[j] += 1
                    let t = DispatchTime.now()
                    try await cluster.submitAndWaitForCommit(tx, on: j, what: "sustained finality sampler")
                    let ms = seconds(since: t) * 1000
                    latencies.append(ms)
                    if ms < Double(samplerMs) { try await Task.sleep(nanoseconds: UInt64((Double(samplerMs) - ms) * 1e6)) }
                }
                return .sampler(latencies)
            }
            var all: [Out] = []
            for try await o in group { all.append(o) }
            return all
        }
        var sent = 0, late = 0
        var finality = Percentiles([])
        var lasts: [(String, Int)] = []
        for o in outs {
            switch o {
            case .lane(let s, let l, let last, let node): sent += s; late += l; if let last { lasts.append((last, node)) }
            case .sampler(let l): finality = Percentiles(l)
            }
        }
        // Every lane's last transaction committed (each lane's are committed in nonce order).
        for (hash, node) in lasts {
            while true {
                guard seconds(since: t0) < duration + 120 else { throw CLIError("sustained: \(hash) not committed 120 s after the load stopped") }
                let r = try await cluster.http.send("GET", cluster.urls[node] + "/v1/transactions/" + hash)
                if r.status == 200, (try? JSONDecoder().decode(BatchItem.self, from: r.body))?.status == "committed" { break }
                try await Task.sleep(nanoseconds: 20_000_000)
            }
        }
        return Sustained(sent: sent, committedRate: Double(sent) / seconds(since: t0), finality: finality, late: late)
    }

    // MARK: (f) catch-up

    struct CatchUp {
        var name: String
        var killedAt: UInt64
        var behind: UInt64
        var lagSeconds: Double
        var blocks: UInt64
        var secondsFromHealthy: Double
        var secondsFromLaunch: Double
        var checkedHeight: UInt64
    }

    /// kill -9 the last validator, keep the others committing under a light load until the chain is
    /// `catchUpBlocks` ahead (or `catchUpSeconds` passed), restart it with its devnet arguments and
    /// time block sync until it reaches the others' height.
    func catchUp(_ cluster: ClusterProcesses, laneAdmins: [PrivateKey], nextNonces: [UInt64]) async throws -> CatchUp {
        let n = validators
        let victim = n - 1
        let member = cluster.members[victim]
        let killedAt = try await cluster.height(victim)
        try cluster.kill9(victim)

        // Light load from the lanes whose node is still up, in nonce order per lane.
        var nonces = nextNonces
        let liveLanes = (0..<clients).filter { $0 % n != victim }
        let perTick = max(1, Int(catchUpLoad / 5))
        let lag0 = DispatchTime.now()
        var tick = 0
        var ahead: UInt64 = 0
        while seconds(since: lag0) < catchUpSeconds {
            let tickStart = DispatchTime.now()
            let lane = liveLanes[tick % liveLanes.count]
            tick += 1
            let txs = (0..<perTick).map { i in Self.registerDevice(admin: laneAdmins[lane], nonce: nonces[lane] + UInt64(i), chainID: cluster.chainID) }
            let r = try await cluster.http.send("POST", cluster.urls[lane % n] + "/v1/transactions/batch", body: try JSONEncoder().encode(txs))
            guard r.status == 200 else { throw CLIError("catch-up load on \(cluster.members[lane % n].name): HTTP \(r.status) \(r.text)") }
            let items = try JSONDecoder().decode([BatchItem].self, from: r.body)
            if let bad = items.first(where: { $0.status == "rejected" }) { throw CLIError("catch-up load: rejected \(bad.error?.code ?? "?"): \(bad.error?.detail ?? "")") }
            nonces[lane] += UInt64(perTick)
            let h = try await cluster.height(0)
            ahead = h > killedAt ? h - killedAt : 0
            if ahead >= catchUpBlocks { break }
            let spent = seconds(since: tickStart)
            if spent < 0.2 { try await Task.sleep(nanoseconds: UInt64((0.2 - spent) * 1e9)) }
        }
        let lagSeconds = seconds(since: lag0)
        guard ahead > 0 else { throw CLIError("catch-up: the other validators committed nothing in \(Int(lagSeconds)) s with \(member.name) down") }

        // Restart with the arguments in devnet.json; time block sync.
        let launch = DispatchTime.now()
        try cluster.restart(victim)
        try await cluster.waitHealthy(victim, seconds: 60)
        let healthy = DispatchTime.now()
        let start = try await cluster.height(victim)
        var target = try await cluster.height(0)
        let behind = target > start ? target - start : 0
        var now = start
        while now < target {
            guard seconds(since: healthy) < 300 else { throw CLIError("catch-up: \(member.name) at \(now), others at \(target) after 300 s") }
            try await Task.sleep(nanoseconds: 50_000_000)
            target = try await cluster.height(0)
            now = try await cluster.height(victim)
        }
        let fromHealthy = seconds(since: healthy)
        let fromLaunch = seconds(since: launch)
        // Same block at the height it reached, on the restarted node and a live one.
        let a = try await cluster.blockHash(victim, height: now)
        let b = try await cluster.blockHash(0, height: now)
        guard a == b else { throw CLIError("catch-up: block \(now) differs: \(member.name) \(a), \(cluster.members[0].name) \(b)") }
        return CatchUp(name: member.name, killedAt: killedAt, behind: behind, lagSeconds: lagSeconds, blocks: now - start,
                       secondsFromHealthy: fromHealthy, secondsFromLaunch: fromLaunch, checkedHeight: now)
    }
}

// MARK: - helpers

/// p50 / p99 / max of a sample, nearest-rank on the sorted values (milliseconds here).
struct Percentiles: Sendable {
    var p50: Double
    var p99: Double
    var max: Double
    var count: Int

    init(_ values: [Double]) {
        let s = values.sorted()
        count = s.count
        p50 = Self.percentile(s, 0.50)
        p99 = Self.percentile(s, 0.99)
        max = s.last ?? 0
    }

    /// Nearest rank: the smallest value with at least `p` of the sample at or below it.
    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((p * Double(sorted.count)).rounded(.up))
        return sorted[Swift.min(sorted.count - 1, Swift.max(0, rank - 1))]
    }
}

/// Which saturation lanes have sent everything and which have been seen committed.
final class LaneBoard: @unchecked Sendable {
    private let lock = NSLock()
    private var submitted: [Bool]
    private var confirmed: [Bool]
    private var done = false

    init(lanes: Int) {
        submitted = Array(repeating: false, count: lanes)
        confirmed = Array(repeating: false, count: lanes)
    }

    func markSubmitted(_ lane: Int) { lock.withLock { submitted[lane] = true } }
    func confirm(_ lane: Int) { lock.withLock { confirmed[lane] = true } }
    func finish() { lock.withLock { done = true } }
    var finished: Bool { lock.withLock { done } }
    var allSubmitted: Bool { lock.withLock { !submitted.contains(false) } }
    var confirmedCount: Int { lock.withLock { confirmed.filter { $0 }.count } }
    /// Lanes that have sent everything and are not yet seen committed.
    func openLanes() -> [Int] { lock.withLock { submitted.indices.filter { submitted[$0] && !confirmed[$0] } } }
}

/// The validator processes of a benchmark devnet: start, kill -9, restart, stop, and their CPU time.
final class ClusterProcesses: @unchecked Sendable {
    let devnet: DevnetCommand
    let members: [DevnetMember]
    let chainID: String
    let urls: [String]
    let http = BenchHTTP()
    private let executable: String
    private let lock = NSLock()
    private var processes: [Process?]

    init(devnet: DevnetCommand, members: [DevnetMember], chainID: String) throws {
        self.devnet = devnet
        self.members = members
        self.chainID = chainID
        urls = members.map { "http://\($0.http)" }
        executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        processes = Array(repeating: nil, count: members.count)
    }

    func startAll() async throws {
        for i in members.indices { try start(i) }
        for i in members.indices { try await waitHealthy(i, seconds: 30) }
    }

    private func start(_ i: Int) throws {
        let p = try devnet.launch(executable, members[i])
        lock.withLock { processes[i] = p }
    }

    func restart(_ i: Int) throws { try start(i) }

    func waitHealthy(_ i: Int, seconds limit: Double) async throws {
        let t = DispatchTime.now()
        while seconds(since: t) < limit {
            if let r = try? await http.send("GET", urls[i] + "/healthz"), r.status == 200 { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        throw CLIError("\(members[i].name) did not answer on \(urls[i]) within \(Int(limit)) s (see \(members[i].dataDir)/node.log)")
    }

    func waitForHeight(_ h: UInt64, seconds limit: Double) async throws {
        let t = DispatchTime.now()
        for i in members.indices {
            while try await height(i) < h {
                guard seconds(since: t) < limit else { throw CLIError("\(members[i].name) did not reach height \(h) within \(Int(limit)) s (see \(members[i].dataDir)/node.log)") }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
        }
    }

    /// Replies that came back 202 "pending" although the wait had not run out; see
    /// `submitAndWaitForCommit`.
    private(set) var earlyPendingReplies = 0

    /// POST ?wait=commit, returning when the node answers 200 (committed). A 202 "pending" reply
    /// before the wait runs out (seen under load) is followed by polling GET /v1/transactions/{hash}
    /// every 20 ms, so the latency still ends at the commit the client can observe.
    func submitAndWaitForCommit(_ tx: SignedTransaction, on i: Int, what: String) async throws {
        let t = DispatchTime.now()
        let r = try await http.send("POST", urls[i] + "/v1/transactions?wait=commit&timeoutMs=60000", body: try JSONEncoder().encode(tx))
        if r.status == 200 { return }
        guard r.status == 202 else { throw CLIError("\(what) on \(members[i].name): HTTP \(r.status) \(r.text)") }
        lock.withLock { earlyPendingReplies += 1 }
        FileHandle.standardError.write(Data("[bench] \(what): 202 pending from \(members[i].name) after \(Int(seconds(since: t) * 1000)) ms; polling\n".utf8))
        while seconds(since: t) < 120 {
            let g = try await http.send("GET", urls[i] + "/v1/transactions/" + tx.hash.hex)
            if g.status == 200, (try? JSONDecoder().decode(BenchConsortiumCommand.BatchItem.self, from: g.body))?.status == "committed" { return }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        let last = try? await http.send("GET", urls[i] + "/v1/transactions/" + tx.hash.hex)
        throw CLIError("\(what) on \(members[i].name): \(tx.hash) not committed within 120 s (last reply \(last?.status ?? 0) \(last?.text ?? ""))")
    }

    struct AccountReply: Decodable { var nextNonce: UInt64? }

    /// The accounts' next nonces, from the first validator.
    func nextNonces(_ keys: [PrivateKey]) async throws -> [UInt64] {
        var out: [UInt64] = []
        for k in keys {
            let r = try await http.send("GET", urls[0] + "/v1/accounts/" + k.publicKey.address.hex)
            guard r.status == 200 else { throw CLIError("GET account on \(members[0].name): HTTP \(r.status)") }
            out.append(try JSONDecoder().decode(AccountReply.self, from: r.body).nextNonce ?? 0)
        }
        return out
    }

    struct Status: Decodable { var height: UInt64 }
    struct BlockReply: Decodable { var hash: String }

    func height(_ i: Int) async throws -> UInt64 {
        let r = try await http.send("GET", urls[i] + "/v1/status")
        guard r.status == 200 else { throw CLIError("\(members[i].name) /v1/status: HTTP \(r.status) \(r.text)") }
        return try JSONDecoder().decode(Status.self, from: r.body).height
    }

    /// Whether every member has the same block at the lowest of their heights (blocks are
    /// hash-linked, so then they agree on everything below it too). Returns (height, distinct hashes).
    func agreement() async throws -> (height: UInt64, hashes: [String: [String]]) {
        var heights: [UInt64] = []
        for i in members.indices { heights.append(try await height(i)) }
        let h = heights.min() ?? 0
        var hashes: [String: [String]] = [:]
        for i in members.indices { hashes[try await blockHash(i, height: h), default: []].append(members[i].name) }
        return (h, hashes)
    }

    func blockHash(_ i: Int, height: UInt64) async throws -> String {
        let r = try await http.send("GET", urls[i] + "/v1/blocks/\(height)")
        guard r.status == 200 else { throw CLIError("\(members[i].name) /v1/blocks/\(height): HTTP \(r.status) \(r.text)") }
        return try JSONDecoder().decode(BlockReply.self, from: r.body).hash
    }

    /// The pid devnet recorded in `<node folder>/node.pid`.
    func pid(_ i: Int) throws -> pid_t {
        let text = try String(contentsOfFile: members[i].dataDir + "/node.pid", encoding: .utf8)
        guard let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 else { throw CLIError("bad pid in \(members[i].dataDir)/node.pid") }
        return pid
    }

    /// SIGKILL, then wait (bounded) until the process is gone.
    func kill9(_ i: Int) throws {
        let p = lock.withLock { processes[i] }
        _ = kill(try pid(i), SIGKILL)
        let t = DispatchTime.now()
        while p?.isRunning == true {
            guard seconds(since: t) < 10 else { throw CLIError("\(members[i].name) still running 10 s after SIGKILL") }
            usleep(10_000)
        }
    }

    /// utime + stime of every running node process, from /proc/<pid>/stat, in seconds.
    func nodeCPUSeconds() throws -> Double {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var total = 0.0
        for p in lock.withLock({ processes }) {
            guard let p, p.isRunning else { continue }
            let stat = try String(contentsOfFile: "/proc/\(p.processIdentifier)/stat", encoding: .utf8)
            // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
            guard let close = stat.lastIndex(of: ")") else { throw CLIError("unreadable /proc/\(p.processIdentifier)/stat") }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 13, let utime = Double(fields[11]), let stime = Double(fields[12]) else { throw CLIError("unreadable /proc/\(p.processIdentifier)/stat") }
            total += (utime + stime) / ticks
        }
        return total
    }

    /// SIGTERM every node, SIGKILL what is still running after 5 s.
    func stopAll() {
        let all = lock.withLock { processes.compactMap { $0 } }
        for p in all where p.isRunning { p.terminate() }
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, all.contains(where: { $0.isRunning }) { usleep(50_000) }
        for p in all where p.isRunning { kill(p.processIdentifier, SIGKILL) }
    }
}

/// HTTP with its own session so that many lanes keep their own connections to each node.
struct BenchHTTP: @unchecked Sendable {
    let session: URLSession

    init() {
        let c = URLSessionConfiguration.ephemeral
        c.httpMaximumConnectionsPerHost = 64
        c.timeoutIntervalForRequest = 70
        session = URLSession(configuration: c)
    }

    struct Reply {
        var status: Int
        var body: Data
        var text: String { String(decoding: body.prefix(300), as: UTF8.self) }
    }

    func send(_ method: String, _ url: String, body: Data? = nil) async throws -> Reply {
        guard let u = URL(string: url) else { throw CLIError("bad URL \(url)") }
        var req = URLRequest(url: u)
        req.httpMethod = method
        if let body {
            req.httpBody = body
            req.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        do {
            let (data, resp) = try await session.data(for: req)
            return Reply(status: (resp as? HTTPURLResponse)?.statusCode ?? 0, body: data)
        } catch {
            throw CLIError("\(method) \(url): \(error.localizedDescription)")
        }
    }
}

/// `/proc/loadavg`'s first three fields.
func loadAverage() -> String {
    guard let s = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "?" }
    return s.split(separator: " ").prefix(3).joined(separator: " ")
}
