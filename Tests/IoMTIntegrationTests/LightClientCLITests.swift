import Foundation
import IoMTCore
import Testing

/// `iomtchain light verify` against the real node binary, and the light client in-process against
/// the node's recorded JSON with bytes changed.
@Suite("Light client against a running node", .serialized)
struct LightClientCLITests {
    struct BlockJSON: Decodable { var header: BlockHeader; var commit: Commit? }
    struct TransactionJSON: Decodable { var transaction: SignedTransaction; var proof: InclusionProof; var header: BlockHeader; var commit: Commit? }

    /// Starts a dev node and commits `count` registrations; returns the node and their hashes.
    func nodeWithTransactions(_ count: Int, tag: String = #function) async throws -> (NodeProcess, [Hash]) {
        let dir = temporaryFolder(tag)
        let node = try NodeProcess(dataDir: dir)
        let dev = try DevChain(dataDir: dir)
        let http = HTTP(base: node.url)
        var hashes: [Hash] = []
        for nonce in 0..<UInt64(count) {
            let tx = dev.registration(nonce: nonce, label: "light \(nonce)")
            let r = try await http.post("/v1/transactions?wait=commit", try dev.json(tx))
            #expect(r.status == 200, "\(r.text)")
            hashes.append(tx.hash)
        }
        return (node, hashes)
    }

    func verdict(_ out: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
    }

    @Test("verifies transactions, an account, a state key and the latest header from genesis; exit 0", .timeLimit(.minutes(3)))
    func verifiesHonestNode() async throws {
        let (node, hashes) = try await nodeWithTransactions(3)
        defer { node.terminate() }
        let genesis = node.dataDir + "/genesis.json"

        for hash in hashes {
            let r = try runCLI(["light", "verify", "--node", node.url, "--genesis", genesis, "--tx", hash.hex, "--json"])
            #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
            let v = try verdict(r.stdout)
            #expect(v["verified"] as? Bool == true)
            #expect((v["transaction"] as? [String: Any])?["hash"] as? String == hash.hex)
        }
        let seq = try runCLI(["light", "verify", "--node", node.url, "--genesis", genesis, "--tx", hashes[2].hex, "--sequential"])
        #expect(seq.status == 0, "\(seq.stdout)\(seq.stderr)")
        #expect(seq.stdout.hasPrefix("VERIFIED: transaction \(hashes[2].hex)"), "\(seq.stdout)")
        #expect(seq.stdout.contains("sequential verification"))

        let admin = try DevChain(dataDir: node.dataDir).admin.publicKey.address
        let acct = try runCLI(["light", "verify", "--node", node.url, "--genesis", genesis, "--account", admin.hex, "--json"])
        #expect(acct.status == 0, "\(acct.stdout)\(acct.stderr)")
        let av = try verdict(acct.stdout)
        #expect((av["account"] as? [String: Any])?["address"] as? String == admin.hex)
        #expect((av["account"] as? [String: Any])?["nonce"] as? Int == 3)

        let key = try runCLI(["light", "verify", "--node", node.url, "--genesis", genesis, "--state-key", Hex.encode(StateKeys.validators)])
        #expect(key.status == 0, "\(key.stdout)\(key.stderr)")
        #expect(key.stdout.contains("is present"), "\(key.stdout)")
        let absent = try runCLI(["light", "verify", "--node", node.url, "--genesis", genesis, "--state-key", Hex.encode(Array("no/such/key".utf8))])
        #expect(absent.status == 0, "\(absent.stdout)\(absent.stderr)")
        #expect(absent.stdout.contains("is absent"), "\(absent.stdout)")

        let header = try runCLI(["light", "verify", "--node", node.url, "--genesis", genesis, "--height", "2"])
        #expect(header.status == 0, "\(header.stdout)\(header.stderr)")
        #expect(header.stdout.contains("VERIFIED: header 2 "), "\(header.stdout)")

        // Usage and network errors exit 1.
        #expect(try runCLI(["light", "verify", "--node", node.url, "--tx", hashes[0].hex]).status == 1)
        #expect(try runCLI(["light", "verify", "--node", node.url, "--genesis", genesis, "--tx", "xyz"]).status == 1)
        #expect(try runCLI(["light", "verify", "--node", "http://127.0.0.1:1", "--genesis", genesis, "--height", "1"]).status == 1)
    }

    @Test("a node of another genesis, or an edited genesis file, is refused with exit 2", .timeLimit(.minutes(3)))
    func refusesOtherChain() async throws {
        let (honest, hashes) = try await nodeWithTransactions(2, tag: "honest")
        defer { honest.terminate() }
        let (other, otherHashes) = try await nodeWithTransactions(2, tag: "other")
        defer { other.terminate() }
        let genesis = honest.dataDir + "/genesis.json"

        // Same chain id ("iomt-dev"), other validator and genesis: the other node's proofs are refused.
        let r = try runCLI(["light", "verify", "--node", other.url, "--genesis", genesis, "--tx", otherHashes[1].hex, "--json"])
        #expect(r.status == 2, "\(r.stdout)\(r.stderr)")
        let v = try verdict(r.stdout)
        #expect(v["verified"] as? Bool == false)
        #expect(v["error"] as? String == "genesis-mismatch")
        #expect((v["reason"] as? String)?.contains("not the trusted genesis") == true, "\(v)")
        let acct = try runCLI(["light", "verify", "--node", other.url, "--genesis", genesis, "--account", try DevChain(dataDir: other.dataDir).admin.publicKey.address.hex])
        #expect(acct.status == 2, "\(acct.stdout)\(acct.stderr)")
        #expect(acct.stdout.hasPrefix("NOT VERIFIED:"), "\(acct.stdout)")

        // An edited genesis file (one validator power changed) no longer matches the honest node.
        var g = try JSONDecoder().decode(Genesis.self, from: Data(contentsOf: URL(fileURLWithPath: genesis)))
        g.validators[0].power += 1
        let edited = honest.dataDir + "-edited-genesis.json"
        try JSONEncoder().encode(g).write(to: URL(fileURLWithPath: edited))
        let e = try runCLI(["light", "verify", "--node", honest.url, "--genesis", edited, "--tx", hashes[0].hex])
        #expect(e.status == 2, "\(e.stdout)\(e.stderr)")
    }

    @Test("in process: the node's recorded headers and proofs with one byte changed are refused", .timeLimit(.minutes(3)))
    func tamperedRecordings() async throws {
        let (node, hashes) = try await nodeWithTransactions(2)
        defer { node.terminate() }
        let http = HTTP(base: node.url)
        let genesis = try JSONDecoder().decode(Genesis.self, from: Data(contentsOf: URL(fileURLWithPath: node.dataDir + "/genesis.json")))
        let txReply = try await http.get("/v1/transactions/\(hashes[1].hex)")
        let recorded = try JSONDecoder().decode(TransactionJSON.self, from: txReply.body)
        let height = recorded.header.height
        let blockReply = try await http.get("/v1/blocks/\(height)")
        let block = try JSONDecoder().decode(BlockJSON.self, from: blockReply.body)
        let light = { (b: BlockJSON) in LightBlock(header: b.header, commit: b.commit!, validators: genesis.validators) }

        // The honest recording verifies.
        var lc = try LightClient(genesis: genesis)
        try await lc.verifyTo(targetHeight: height) { _ in light(block) }
        try lc.verify(transactionProof: TransactionProof(transaction: recorded.transaction, proof: recorded.proof, header: recorded.header, commit: recorded.commit))

        // One byte of the header's state root changed: the commit no longer signs it.
        var tampered = block
        var root = tampered.header.stateRoot.bytes
        root[0] ^= 1
        tampered.header.stateRoot = try #require(Hash(bytes: root))
        var fresh = try LightClient(genesis: genesis)
        #expect(throws: LightClientError.commit(height: height, .wrongBlock)) { try fresh.verifyTo(targetHeight: height) { _ in light(tampered) } }

        // One byte of the transaction's JSON changed (its label): the signature check fails.
        let text = txReply.text.replacingOccurrences(of: "light 1", with: "light 7")
        let forged = try JSONDecoder().decode(TransactionJSON.self, from: Data(text.utf8))
        #expect(throws: LightClientError.transactionProof(.badTransactionSignature)) {
            try lc.verify(transactionProof: TransactionProof(transaction: forged.transaction, proof: forged.proof, header: forged.header, commit: forged.commit))
        }
    }
}
