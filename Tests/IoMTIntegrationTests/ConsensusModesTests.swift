import Foundation
import IoMTCore
import IoMTNode
import Testing

/// Proof of authority and proof of work on a real devnet: four validator processes, the same
/// ledger, transactions, API and peer-to-peer network as BFT; only who adds blocks and when they
/// are final differ.
@Suite("consensus modes: PoA and PoW devnets", .serialized)
struct ConsensusModesTests {
    /// Registers `count` devices through member `i`, each waiting for finality.
    static func load(_ net: Devnet, via i: Int, count: Int, nonce: inout UInt64, waitMs: Int) async throws -> [String] {
        let admin = try KeyFile.load(path: net.manifest.adminKey)
        var committed: [String] = []
        for _ in 0..<count {
            let tx = Transaction(chainID: net.manifest.chainId, sender: admin.publicKey.address, signerKey: admin.publicKey, nonce: nonce,
                                 payload: .registerAccount(RegisterAccount(publicKey: PrivateKey.generate(.ed25519).publicKey, role: .device, organisation: "org-0")))
                .signed(with: admin)
            let r = try await net.http(i).post("/v1/transactions?wait=commit&timeoutMs=\(waitMs)", try JSONEncoder().encode(tx))
            #expect(r.status == 200, "\(r.status) \(r.text)")
            nonce += 1
            if r.status == 200 { committed.append(tx.hash.hex) }
        }
        return committed
    }

    static func chain(_ net: Devnet, _ i: Int) async -> [String: Any] {
        (((try? await net.http(i).get("/v1/consensus"))?.json ?? [:])["chain"] as? [String: Any]) ?? [:]
    }

    /// Every member's ledger (final blocks only) agrees at `height`.
    static func expectAgreement(_ net: Devnet, members: [Int], at height: Int) async {
        var hashes: [String?] = []
        for i in members { hashes.append(await net.blockHash(i, height)) }
        #expect(hashes.allSatisfy { $0 != nil } && Set(hashes.compactMap { $0 }).count == 1, "height \(height): \(hashes)")
    }

    @Test("PoA: authorities seal in turn; kill -9 one and its slots stay empty while the chain goes on; restarted it catches up; every ledger verifies",
          .timeLimit(.minutes(4)))
    func proofOfAuthority() async throws {
        let net = try Devnet(extraArguments: ["--consensus", "poa"])
        defer { net.stop() }
        var nonce: UInt64 = 0
        var committed = try await Self.load(net, via: 0, count: 8, nonce: &nonce, waitMs: 10_000)
        #expect(committed.count == 8)
        let info = try await net.http(0).get("/v1/consensus").json
        #expect(info["mode"] as? String == "poa" && info["step"] as? String == "sealing")
        // Blocks come from all four authorities, in turn.
        let latest = await net.height(0) ?? 0
        var proposers: Set<String> = []
        for h in max(1, latest - 7)...latest {
            if let p = (try? await net.http(0).get("/v1/blocks/\(h)"))?.json["header"] as? [String: Any], let who = p["proposer"] as? String { proposers.insert(who) }
        }
        #expect(proposers.count == 4, "proposers of the last 8 blocks: \(proposers)")

        try net.kill9(3)
        let before = await net.height(0) ?? 0
        committed += try await Self.load(net, via: 1, count: 5, nonce: &nonce, waitMs: 10_000)
        try await net.eventually("the chain moves on without authority 3") { (await net.height(0) ?? 0) >= before + 8 }

        try net.restart(3)
        let target = await net.height(0) ?? 0
        try await net.eventually("authority 3 catches up to \(target)") { (await net.height(3) ?? 0) >= target }
        await Self.expectAgreement(net, members: [0, 1, 2, 3], at: target)
        for i in 0..<4 {
            #expect((await Self.chain(net, i))["invalidBlocks"] as? Int == 0)
            for hash in committed {
                #expect((try await net.http(i).get("/v1/transactions/\(hash)")).json["status"] as? String == "committed", "member \(i) lacks \(hash)")
            }
        }
        net.stop()
        for m in net.manifest.members {
            let v = try runCLI(["chain", "verify", "--data-dir", m.dataDir])
            #expect(v.status == 0, "\(m.name): \(v.stdout) \(v.stderr)")
        }
    }

    @Test("PoW: validators mine; transactions are final six blocks deep; all ledgers agree and verify their work; kill -9 one miner and the rest go on; a PoW chain refuses to run solo",
          .timeLimit(.minutes(4)))
    func proofOfWork() async throws {
        let net = try Devnet(extraArguments: ["--consensus", "pow", "--block-interval-ms", "250", "--pow-hashes-per-block", "4000"])
        defer { net.stop() }
        var nonce: UInt64 = 0
        let committed = try await Self.load(net, via: 0, count: 4, nonce: &nonce, waitMs: 60_000)
        #expect(committed.count == 4)
        let info = try await net.http(2).get("/v1/consensus").json
        #expect(info["mode"] as? String == "pow" && info["step"] as? String == "mining")
        let chain = await Self.chain(net, 2)
        #expect(chain["confirmationDepth"] as? Int == 6 && (chain["hashesPerSecond"] as? Double ?? 0) > 0 && chain["difficulty"] != nil)
        // Final blocks are six below the best tip, and identical everywhere.
        let final = await net.height(0) ?? 0
        try await net.eventually("all four hold final block \(final)") {
            for i in 0..<4 { if (await net.height(i) ?? 0) < final { return false } }
            return true
        }
        await Self.expectAgreement(net, members: [0, 1, 2, 3], at: final)
        let view = await Self.chain(net, 0)
        let best = view["bestHeight"] as? Int ?? 0, finalNow = view["finalHeight"] as? Int ?? 0
        #expect(finalNow >= final && best >= finalNow + 6, "best \(best), final \(finalNow)")
        // More than one miner found blocks.
        var miners: Set<String> = []
        for h in 1...final {
            if let p = (try? await net.http(0).get("/v1/blocks/\(h)"))?.json["header"] as? [String: Any], let who = p["proposer"] as? String { miners.insert(who) }
        }
        #expect(miners.count >= 2, "blocks 1…\(final) mined by \(miners)")
        for i in 0..<4 { #expect(((await Self.chain(net, i))["conflictingPeers"] as? [Any])?.isEmpty == true, "member \(i) saw a conflicting final block") }
        for hash in committed {
            #expect((try await net.http(3).get("/v1/transactions/\(hash)")).json["status"] as? String == "committed")
        }
        // kill -9 one miner: the other three go on mining (a dead peer's last announced height
        // stops counting after a few seconds, even if it was ahead when it died).
        try net.kill9(3)
        let more = try await Self.load(net, via: 1, count: 2, nonce: &nonce, waitMs: 60_000)
        #expect(more.count == 2)
        net.stop()
        for m in net.manifest.members {
            let v = try runCLI(["chain", "verify", "--data-dir", m.dataDir])
            #expect(v.status == 0, "\(m.name): \(v.stdout) \(v.stderr)")
        }
        let solo = try runCLI(["node", "run", "--data-dir", net.manifest.members[0].dataDir, "--http", "127.0.0.1:0"])
        #expect(solo.status != 0 && solo.stderr.contains("pow consensus"), "\(solo.stderr)")
    }
}
