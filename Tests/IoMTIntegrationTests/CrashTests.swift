import Foundation
import IoMTCore
import Testing

/// SplitMix64: a seeded generator so a failing run can be replayed (`IOMT_CRASH_SEED`).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

@Suite("kill -9 at random moments", .serialized)
struct CrashTests {
    /// Starts the real node, loads it with transactions, kills it with SIGKILL at a random moment,
    /// restarts it, and checks that nothing it acknowledged was lost and the chain still verifies.
    @Test("nothing acknowledged is lost and the chain verifies after repeated kill -9", .timeLimit(.minutes(8)))
    func repeatedKill9() async throws {
        let iterations = Int(ProcessInfo.processInfo.environment["IOMT_CRASH_ITERATIONS"] ?? "") ?? 12
        let seed = UInt64(ProcessInfo.processInfo.environment["IOMT_CRASH_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64.max)
        print("crash test seed \(seed) (replay: IOMT_CRASH_SEED=\(seed)), \(iterations) iterations")
        var rng = SeededGenerator(state: seed)
        let dir = temporaryFolder()
        var acknowledged: [Hash] = []
        var committedHeight: UInt64 = 0

        for iteration in 0..<iterations {
            let node = try NodeProcess(dataDir: dir)
            let http = HTTP(base: node.url)
            let chain = try DevChain(dataDir: dir)

            // Everything acknowledged before earlier kills is committed or pending now.
            for hash in acknowledged {
                let r = try await http.get("/v1/transactions/\(hash.hex)")
                let status = r.json["status"] as? String
                #expect(status == "committed" || status == "pending", "iteration \(iteration), seed \(seed): acknowledged \(hash) lost (\(r.status) \(r.text))\n\(node.log)")
            }
            let statusReply = try await http.get("/v1/status")
            let height = UInt64(statusReply.json["height"] as? Int ?? -1)
            #expect(height >= committedHeight, "seed \(seed): height went back from \(committedHeight) to \(height)")
            committedHeight = max(committedHeight, height)

            let accountReply = try await http.get("/v1/accounts/\(chain.admin.publicKey.address.hex)")
            var nonce = UInt64(accountReply.json["nextNonce"] as? Int ?? 0)

            let killAfterMs = UInt64.random(in: 20...600, using: &rng)
            let waitEvery = Int.random(in: 4...20, using: &rng)
            let submitter = Task { () -> ([Hash], UInt64) in
                var acked: [Hash] = []
                var seenHeight: UInt64 = 0
                var n = 0
                while !Task.isCancelled, n < 5_000 {
                    let tx = chain.registration(nonce: nonce)
                    let wait = n % waitEvery == 0
                    guard let r = try? await http.post("/v1/transactions" + (wait ? "?wait=commit" : ""), try chain.json(tx)) else { break }
                    guard r.status == 200 || r.status == 202 else { break }
                    acked.append(tx.hash)
                    if let h = r.json["height"] as? Int { seenHeight = max(seenHeight, UInt64(h)) }
                    nonce += 1
                    n += 1
                }
                return (acked, seenHeight)
            }
            try await Task.sleep(nanoseconds: killAfterMs * 1_000_000)
            node.kill9()
            let (acked, seen) = await submitter.value
            acknowledged += acked
            committedHeight = max(committedHeight, seen)
        }

        // Finally: a clean start commits everything that was pending, and the whole chain verifies.
        let node = try NodeProcess(dataDir: dir)
        let http = HTTP(base: node.url)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, ((try await http.get("/v1/status")).json["mempoolSize"] as? Int ?? 1) > 0 {
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        for hash in acknowledged {
            let r = try await http.get("/v1/transactions/\(hash.hex)")
            #expect(r.json["status"] as? String == "committed", "seed \(seed): \(hash) not committed at the end")
        }
        node.terminate()
        let verify = try runCLI(["chain", "verify", "--data-dir", dir])
        #expect(verify.status == 0, "seed \(seed): \(verify.stdout)\(verify.stderr)")
        #expect(acknowledged.count > 0, "the load never got going")
        print("crash test: \(acknowledged.count) acknowledged transactions survived \(iterations) kill -9s; final height ≥ \(committedHeight)")
    }
}
