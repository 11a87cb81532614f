import Foundation
import IoMTCore
import Testing

/// Against the real binary over loopback.
@Suite("HTTP API of a running node", .serialized)
struct HTTPAPITests {
    @Test("submit, wait for commit, fetch with proof, query state, blocks, status, metrics, OpenAPI", .timeLimit(.minutes(3)))
    func happyPath() async throws {
        let dir = temporaryFolder()
        let node = try NodeProcess(dataDir: dir)
        defer { node.terminate() }
        let http = HTTP(base: node.url)
        let chain = try DevChain(dataDir: dir)

        let device = PrivateKey.generate(.p256)
        let tx = chain.registration(nonce: 0, key: device.publicKey, label: "ecg patch")
        let submitted = try await http.post("/v1/transactions?wait=commit", try chain.json(tx))
        #expect(submitted.status == 200, "\(submitted.text)")
        #expect(submitted.json["status"] as? String == "committed")
        #expect(submitted.json["hash"] as? String == tx.hash.hex)

        let fetched = try await http.get("/v1/transactions/\(tx.hash.hex)")
        #expect(fetched.status == 200)
        let proof = try JSONDecoder().decode(TransactionProof.self, from: fetched.body)
        let genesis = try JSONDecoder().decode(Genesis.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/genesis.json")))
        try proof.verify(validators: genesis.validators)
        #expect(proof.transaction == tx)

        let account = try await http.get("/v1/accounts/\(device.publicKey.address.hex)")
        #expect(account.status == 200)
        struct AccountReply: Decodable { var account: Account?; var proof: StateProof; var header: BlockHeader; var nextNonce: UInt64? }
        let reply = try JSONDecoder().decode(AccountReply.self, from: account.body)
        try reply.proof.verify(root: reply.header.stateRoot)
        #expect(reply.account?.role == .device)
        #expect(reply.account?.label == "ecg patch")
        #expect(reply.nextNonce == 0)

        let missing = try await http.get("/v1/state/\(Hex.encode(Array("acct/nobody".utf8)))")
        #expect(missing.status == 200)
        #expect(missing.json["value"] is NSNull || missing.json["value"] == nil)

        let latest = try await http.get("/v1/blocks/latest")
        #expect(latest.status == 200)
        let header = latest.json["header"] as? [String: Any]
        #expect((header?["height"] as? Int ?? 0) >= 1)
        let range = try await http.get("/v1/blocks?from=0&limit=5")
        #expect((try JSONSerialization.jsonObject(with: range.body) as? [Any])?.count ?? 0 >= 2)

        let status = try await http.get("/v1/status")
        #expect(status.json["chainId"] as? String == "iomt-dev")
        // A dev node runs no consortium consensus.
        let consensus = try await http.get("/v1/consensus")
        #expect(consensus.status == 404 && consensus.json["code"] as? String == "not-in-consortium")

        let metrics = try await http.get("/metrics")
        #expect(metrics.text.contains("iomt_transactions_committed_total 1"))
        #expect(metrics.text.contains("# TYPE iomt_block_height gauge"))

        let spec = try await http.get("/openapi.yaml")
        #expect(spec.status == 200)
        #expect(spec.text.contains("openapi:"))
        #expect(spec.text.contains("/v1/transactions"))
    }

    @Test("bad input gets a 4xx problem+json with a stable code, and changes nothing", .timeLimit(.minutes(3)))
    func badInput() async throws {
        let dir = temporaryFolder()
        let node = try NodeProcess(dataDir: dir)
        defer { node.terminate() }
        let http = HTTP(base: node.url)
        let chain = try DevChain(dataDir: dir)

        func expectProblem(_ r: HTTP.Reply, _ status: Int, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(r.status == status, "\(r.text)", sourceLocation: sourceLocation)
            #expect(r.headers["content-type"]?.hasPrefix("application/problem+json") == true, sourceLocation: sourceLocation)
            #expect(r.json["code"] as? String == code, "\(r.text)", sourceLocation: sourceLocation)
            #expect(r.json["status"] as? Int == status, sourceLocation: sourceLocation)
            #expect(r.json["type"] as? String != nil && r.json["detail"] as? String != nil, sourceLocation: sourceLocation)
        }

        expectProblem(try await http.post("/v1/transactions", Data("{not json".utf8)), 400, "invalid-json")
        expectProblem(try await http.post("/v1/transactions", Data(#"{"transaction":{"chainId":42}}"#.utf8)), 400, "invalid-json")
        expectProblem(try await http.post("/v1/transactions", Data("[]".utf8)), 400, "invalid-json")
        expectProblem(try await http.post("/v1/transactions", Data(count: 5 << 20)), 413, "body-too-large")
        expectProblem(try await http.get("/v1/nowhere"), 404, "not-found")
        expectProblem(try await http.get("/v1/blocks/-1"), 400, "invalid-height")
        expectProblem(try await http.get("/v1/blocks/99999"), 404, "block-not-found")
        expectProblem(try await http.get("/v1/transactions/xyz"), 400, "invalid-hash")
        expectProblem(try await http.get("/v1/transactions/\(Hash.zero.hex)"), 404, "transaction-not-found")
        expectProblem(try await http.get("/v1/accounts/1234"), 400, "invalid-address")
        expectProblem(try await http.get("/v1/state/zz"), 400, "invalid-key")
        expectProblem(try await http.get("/v1/blocks?limit=100000"), 400, "invalid-range")

        // A well-formed transaction with a forged signature.
        var forged = chain.registration(nonce: 0)
        forged.transaction.nonce = 1
        expectProblem(try await http.post("/v1/transactions", try chain.json(forged)), 400, "bad-signature")
        // Nonce gap, unknown payload type, unknown role.
        expectProblem(try await http.post("/v1/transactions", try chain.json(chain.registration(nonce: 3))), 422, "nonce-too-high")
        var body = String(decoding: try chain.json(chain.registration(nonce: 0)), as: UTF8.self)
        body = body.replacingOccurrences(of: "\"device\"", with: "\"wizard\"")
        expectProblem(try await http.post("/v1/transactions", Data(body.utf8)), 400, "invalid-json")

        // Then a good one is accepted: the bad ones changed nothing (its nonce is still 0).
        let good = chain.registration(nonce: 0)
        let ok = try await http.post("/v1/transactions?wait=commit", try chain.json(good))
        #expect(ok.status == 200, "\(ok.text)")
        expectProblem(try await http.post("/v1/transactions", try chain.json(good)), 409, "duplicate-transaction")
        let replay = try await http.post("/v1/transactions", try chain.json(chain.registration(nonce: 0)))
        expectProblem(replay, 409, "nonce-too-low")

        // Garbage of every shape: random bytes, truncated and bit-flipped valid transactions.
        // The template's nonce is far ahead, so even a flip that leaves it meaning the same
        // (a hex digit's case) is refused: every reply must be a 4xx.
        var rng = SystemRandomNumberGenerator()
        let valid = Array(try chain.json(chain.registration(nonce: 50)))
        for i in 0..<150 {
            var body: [UInt8]
            switch i % 3 {
            case 0: body = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1: body = Array(valid.prefix(Int.random(in: 0..<valid.count, using: &rng)))
            default:
                body = valid
                body[Int.random(in: 0..<body.count, using: &rng)] ^= UInt8(1 << Int.random(in: 0...7, using: &rng))
            }
            if i % 2 == 0 {
                let r = try await http.post("/v1/transactions", Data(body))
                #expect((400..<500).contains(r.status), "garbage body \(i) got \(r.status): \(r.text)")
            } else {
                let r = try await http.post("/v1/transactions/batch", Data(Array("[".utf8) + body + Array("]".utf8)))
                // A batch of well-formed JSON answers 200 with a result per transaction: none may be pending.
                #expect((400..<500).contains(r.status) || (r.status == 200 && !r.text.contains("\"pending\"")), "garbage batch \(i) got \(r.status): \(r.text)")
            }
        }

        let metrics = try await http.get("/metrics")
        #expect(metrics.text.contains("iomt_transactions_committed_total 1"))
        #expect(metrics.text.contains(#"iomt_transactions_rejected_total{code="bad-signature"}"#))
        // The node is still up and serving.
        #expect(try await http.get("/healthz").status == 200)
    }

    @Test("a batch is admitted with one result per transaction", .timeLimit(.minutes(3)))
    func batch() async throws {
        let dir = temporaryFolder()
        let node = try NodeProcess(dataDir: dir)
        defer { node.terminate() }
        let http = HTTP(base: node.url)
        let chain = try DevChain(dataDir: dir)
        let empty = try await http.post("/v1/transactions/batch", Data("[]".utf8))
        #expect(empty.status == 200 && empty.text == "[]", "\(empty.text)")
        var txs = (0..<200).map { chain.registration(nonce: UInt64($0)) }
        txs[150].transaction.nonce = 999  // breaks its signature
        let r = try await http.post("/v1/transactions/batch", try JSONEncoder().encode(txs))
        #expect(r.status == 200)
        let results = try #require(try JSONSerialization.jsonObject(with: r.body) as? [[String: Any]])
        #expect(results.count == 200)
        #expect(results.filter { $0["status"] as? String == "pending" }.count == 150)
        #expect((results[150]["error"] as? [String: Any])?["code"] as? String == "bad-signature")
        // 151… follow a gap: nonce-too-high.
        #expect((results[151]["error"] as? [String: Any])?["code"] as? String == "nonce-too-high")
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let s = try await http.get("/v1/accounts/\(chain.admin.publicKey.address.hex)")
            if ((s.json["account"] as? [String: Any])?["nonce"] as? Int) == 150 { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        Issue.record("150 transactions did not commit within 20 s")
    }
}
