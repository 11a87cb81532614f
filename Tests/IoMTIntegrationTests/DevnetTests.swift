import Foundation
import IoMTCore
import IoMTNode
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `iomtchain devnet` as a user runs it: four validators, each its own OS process, BFT over the
/// encrypted peer-to-peer network on 127.0.0.1.
final class Devnet: @unchecked Sendable {
    struct Member: Decodable { var name: String; var role: String; var dataDir: String; var http: String; var nodeKey: String; var arguments: [String] }
    struct Manifest: Decodable { var chainId: String; var adminKey: String; var members: [Member] }

    let dir = temporaryFolder("devnet")
    let process = Process()
    let logPath: String
    let manifest: Manifest
    var restarted: [Process] = []

    init(validators: Int = 4, observers: Int = 0, extraArguments: [String] = []) throws {
        logPath = dir + ".log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: binaryPath)
        process.arguments = ["devnet", "--validators", "\(validators)", "--observers", "\(observers)", "--data-dir", dir + "/net", "--block-interval-ms", "100"] + extraArguments
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline, !((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").contains("stop with Ctrl-C") {
            guard process.isRunning else { throw TestFailure("devnet exited: \((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")") }
            Thread.sleep(forTimeInterval: 0.1)
        }
        manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/net/devnet.json")))
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func http(_ i: Int) -> HTTP { HTTP(base: "http://" + manifest.members[i].http) }

    func pid(_ i: Int) throws -> Int32 {
        let text = try String(contentsOfFile: manifest.members[i].dataDir + "/node.pid", encoding: .utf8)
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))!
    }

    func kill9(_ i: Int) throws {
        kill(try pid(i), SIGKILL)
        // Wait until the port is closed, so the restart does not race the dying process.
        Thread.sleep(forTimeInterval: 0.3)
    }

    /// Restarts member `i` with the exact arguments the devnet used.
    func restart(_ i: Int) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binaryPath)
        p.arguments = manifest.members[i].arguments
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: manifest.members[i].dataDir + "/node.log"))
        log.seekToEndOfFile()
        p.standardOutput = log
        p.standardError = log
        try p.run()
        try "\(p.processIdentifier)\n".write(toFile: manifest.members[i].dataDir + "/node.pid", atomically: true, encoding: .utf8)
        restarted.append(p)
    }

    func height(_ i: Int) async -> Int? {
        guard let r = try? await http(i).get("/v1/status"), r.status == 200 else { return nil }
        return r.json["height"] as? Int
    }

    func blockHash(_ i: Int, _ h: Int) async -> String? {
        guard let r = try? await http(i).get("/v1/blocks/\(h)"), r.status == 200 else { return nil }
        return r.json["hash"] as? String
    }

    func stop() {
        for p in restarted where p.isRunning { p.terminate() }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        for p in restarted { p.waitUntilExit() }
    }

    /// Waits (bounded) until `condition` holds.
    func eventually(_ what: String, seconds: Double = 60, _ condition: () async -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if await condition() { return }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw TestFailure("timed out after \(Int(seconds)) s waiting until \(what)\n\(log)")
    }
}

@Suite("devnet: four validator processes", .serialized)
struct DevnetTests {
    @Test("kill -9 one validator: commits go on; restarted it catches up; kill two: commits stop without a fork; restarted they resume; nothing committed is lost",
          .timeLimit(.minutes(5)))
    func faults() async throws {
        let net = try Devnet(observers: 1)
        defer { net.stop() }
        let admin = try KeyFile.load(path: net.manifest.adminKey)
        // The devnet registered the observer with the admin key: continue from its next nonce.
        var nonce = UInt64(try await net.http(0).get("/v1/accounts/\(admin.publicKey.address.hex)").json["nextNonce"] as? Int ?? 0)
        var committed: [String] = []

        /// Sends `count` registrations to validator 0, each waiting up to `waitMs` for its commit.
        func load(_ count: Int, waitMs: Int = 5_000) async throws -> (committed: Int, pending: Int) {
            var c = 0, p = 0
            for _ in 0..<count {
                let tx = Transaction(chainID: net.manifest.chainId, sender: admin.publicKey.address, signerKey: admin.publicKey, nonce: nonce,
                                     payload: .registerAccount(RegisterAccount(publicKey: PrivateKey.generate(.ed25519).publicKey, role: .device, organisation: "org-0")))
                    .signed(with: admin)
                let r = try await net.http(0).post("/v1/transactions?wait=commit&timeoutMs=\(waitMs)", try JSONEncoder().encode(tx))
                #expect(r.status == 200 || r.status == 202, "\(r.status) \(r.text)")
                nonce += 1
                if r.status == 200 { committed.append(tx.hash.hex); c += 1 } else { p += 1 }
            }
            return (c, p)
        }

        // Steady state: four validators commit.
        #expect(try await load(10).committed == 10)

        print("devnet test: heights \(await [net.height(0), net.height(1), net.height(2), net.height(3)])")
        // kill -9 one validator: the other three (3 of 4 > 2/3) keep committing.
        try net.kill9(3)
        let h0 = await net.height(0) ?? 0
        #expect(try await load(10).committed == 10)
        try await net.eventually("the chain moves on without validator 3") { (await net.height(0) ?? 0) >= h0 + 3 }

        print("devnet test: heights \(await [net.height(0), net.height(1), net.height(2), net.height(3)])")
        // Restart it: it catches up to identical blocks.
        try net.restart(3)
        let target = await net.height(0) ?? 0
        try await net.eventually("validator 3 catches up to height \(target)") { (await net.height(3) ?? 0) >= target }
        for h in [1, target / 2, target] where h >= 1 {
            let hashes = [await net.blockHash(0, h), await net.blockHash(1, h), await net.blockHash(2, h), await net.blockHash(3, h)]
            #expect(Set(hashes.compactMap { $0 }).count == 1 && hashes.allSatisfy { $0 != nil }, "height \(h): \(hashes)")
        }

        print("devnet test: heights \(await [net.height(0), net.height(1), net.height(2), net.height(3)])")
        // kill -9 two of four: no quorum, so no block is decided (and none can fork).
        try net.kill9(2)
        try net.kill9(3)
        try await Task.sleep(nanoseconds: 500_000_000)
        let stuck = await net.height(0) ?? 0
        let during = try await load(3, waitMs: 1_000)
        #expect(during.committed == 0, "committed without a quorum")
        #expect((await net.height(0) ?? 0) <= stuck + 1, "height moved from \(stuck) without a quorum")

        print("devnet test: heights \(await [net.height(0), net.height(1), net.height(2), net.height(3)])")
        // Restart both: commits resume, the pending transactions commit, all four agree.
        try net.restart(2)
        try net.restart(3)
        #expect(try await load(5, waitMs: 30_000).committed == 5)
        let final = await net.height(0) ?? 0
        try await net.eventually("all four reach height \(final)") {
            for i in 0..<4 { if (await net.height(i) ?? 0) < final { return false } }
            return true
        }
        let hashes = [await net.blockHash(0, final), await net.blockHash(1, final), await net.blockHash(2, final), await net.blockHash(3, final)]
        #expect(Set(hashes.compactMap { $0 }).count == 1, "height \(final): \(hashes)")

        print("devnet test: heights \(await [net.height(0), net.height(1), net.height(2), net.height(3)])")
        // The observer (registered on-chain, admitted to the network, not voting) follows the chain.
        try await net.eventually("the observer reaches height \(final)") { (await net.height(4) ?? 0) >= final }
        #expect(await net.blockHash(4, final) == hashes[0])
        let latest = try await net.http(4).get("/v1/blocks/latest")
        let signers = ((latest.json["commit"] as? [String: Any])?["signatures"] as? [[String: Any]])?.compactMap { $0["validator"] as? String } ?? []
        #expect(!signers.isEmpty && !signers.contains(net.manifest.members[4].nodeKey), "the observer must not sign: \(signers)")

        // What operators see: validator 0 votes with the three others connected; the observer does not vote.
        try await net.eventually("validator 0 sees its four peers") {
            let c = (try? await net.http(0).get("/v1/consensus"))?.json ?? [:]
            return c["role"] as? String == "validator" && (c["validators"] as? [Any])?.count == 4 && (c["peers"] as? [Any])?.count == 4
        }
        #expect((try await net.http(4).get("/v1/consensus")).json["role"] as? String == "observer")

        // Nothing reported committed was lost, on any node.
        for i in 0..<5 {
            for hash in committed {
                let r = try await net.http(i).get("/v1/transactions/\(hash)")
                #expect(r.json["status"] as? String == "committed", "validator \(i) lost \(hash): \(r.status) \(r.text)")
            }
        }
    }
}
