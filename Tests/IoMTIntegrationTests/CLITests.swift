import Foundation
import IoMTCore
import Testing

@Suite("iomtchain CLI against a running node", .serialized)
struct CLITests {
    @Test("keys, tx build/sign/submit, tx/block/state show, proof verify, chain verify", .timeLimit(.minutes(3)))
    func workflow() async throws {
        let dir = temporaryFolder()
        let node = try NodeProcess(dataDir: dir)
        let keyPath = dir + "-device.key.json"

        // A second node on the same data folder is refused: two writers would fight over one ledger.
        let second = try runCLI(["node", "run", "--data-dir", dir, "--http", "127.0.0.1:0"])
        #expect(second.status != 0)
        #expect(second.stderr.contains("in use by another iomtchain node"), "\(second.stderr)")

        let gen = try runCLI(["keys", "generate", "--algorithm", "p256", "--out", keyPath])
        #expect(gen.status == 0, "\(gen.stderr)")
        let shown = try runCLI(["keys", "show", "--key", keyPath])
        let info = try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as! [String: String]
        let pub = try #require(info["publicKey"])
        #expect(pub.hasPrefix("p256:"))
        #expect(!shown.stdout.contains("privateKey"))
        #expect(try runCLI(["keys", "generate", "--out", keyPath]).status != 0, "must refuse to overwrite a key")

        // build → sign → submit, through files and stdin.
        let built = try runCLI(["tx", "build", "--key", dir + "/admin.key.json", "--node", node.url,
                                "--type", "register-account", "--public-key", pub, "--role", "gateway", "--organisation", "dev-hospital", "--label", "ward 3 hub"])
        #expect(built.status == 0, "\(built.stderr)")
        let unsigned = try JSONDecoder().decode(Transaction.self, from: Data(built.stdout.utf8))
        #expect(unsigned.nonce == 0)
        let signed = try runCLI(["tx", "sign", "--key", dir + "/admin.key.json"], stdin: Data(built.stdout.utf8))
        #expect(signed.status == 0, "\(signed.stderr)")
        let stx = try JSONDecoder().decode(SignedTransaction.self, from: Data(signed.stdout.utf8))
        #expect(stx.hasValidSignature())
        let submitted = try runCLI(["tx", "submit", "--node", node.url, "--wait"], stdin: Data(signed.stdout.utf8))
        #expect(submitted.status == 0, "\(submitted.stderr)")
        #expect(submitted.stdout.contains("\"committed\""))

        // One-step submit from flags, refused with a clear message: the account exists already.
        let dup = try runCLI(["tx", "submit", "--key", dir + "/admin.key.json", "--node", node.url,
                              "--type", "register-account", "--public-key", pub, "--role", "device", "--organisation", "dev-hospital", "--wait"])
        #expect(dup.status != 0)
        #expect(dup.stderr.contains("already-exists"), "\(dup.stderr)")

        let txShow = try runCLI(["tx", "show", stx.hash.hex, "--node", node.url])
        #expect(txShow.status == 0, "\(txShow.stderr)")
        let proofFile = dir + "-proof.json"
        try Data(txShow.stdout.utf8).write(to: URL(fileURLWithPath: proofFile))
        let verified = try runCLI(["proof", "verify", "--file", proofFile, "--genesis", dir + "/genesis.json"])
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(verified.stdout.contains("commit verified"))

        // A tampered proof is refused.
        let tampered = txShow.stdout.replacingOccurrences(of: "ward 3 hub", with: "ward 4 hub")
        let refused = try runCLI(["proof", "verify", "--genesis", dir + "/genesis.json"], stdin: Data(tampered.utf8))
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("INVALID"), "\(refused.stderr)")

        let block = try runCLI(["block", "show", "latest", "--node", node.url])
        #expect(block.status == 0 && block.stdout.contains("\"transactionsRoot\""))
        let state = try runCLI(["state", "show", "--account", PublicKey(text: pub).address.hex, "--node", node.url])
        #expect(state.status == 0, "\(state.stderr)")
        #expect(state.stdout.contains("\"gateway\""))

        // Governance from JSON: the dev chain's quorum is 1, so the proposal executes at once.
        let proposal = #"{"type":"propose-governance","action":"add-organisation","organisation":{"id":"st-mary-clinic","name":"St Mary Clinic","kind":"clinic"}}"#
        let proposed = try runCLI(["tx", "submit", "--key", dir + "/admin.key.json", "--node", node.url, "--payload", proposal, "--wait"])
        #expect(proposed.status == 0, "\(proposed.stderr)")
        let org = try runCLI(["state", "show", "--key", Hex.encode(StateKeys.organisation("st-mary-clinic")), "--node", node.url])
        #expect(org.status == 0, "\(org.stderr)")
        let orgValue = try #require((try JSONSerialization.jsonObject(with: Data(org.stdout.utf8)) as? [String: Any])?["value"] as? String)
        #expect(try Organisation(canonicalBytes: #require(Hex.decode(orgValue))).name == "St Mary Clinic")
        // A second identical proposal fails its dry run: the organisation exists.
        let again = try runCLI(["tx", "submit", "--key", dir + "/admin.key.json", "--node", node.url, "--payload", proposal])
        #expect(again.status != 0)
        #expect(again.stderr.contains("already-exists"), "\(again.stderr)")

        node.terminate()
        let chainOK = try runCLI(["chain", "verify", "--data-dir", dir])
        #expect(chainOK.status == 0, "\(chainOK.stdout)\(chainOK.stderr)")
        #expect(chainOK.stdout.contains("\"ok\" : true"))
    }

    @Test("chain verify exits non-zero and names the first bad block of an edited database", .timeLimit(.minutes(3)))
    func chainVerifyCatchesEdits() async throws {
        let dir = temporaryFolder()
        let node = try NodeProcess(dataDir: dir)
        let http = HTTP(base: node.url)
        let chain = try DevChain(dataDir: dir)
        for n in 0..<4 {
            let r = try await http.post("/v1/transactions?wait=commit", try chain.json(chain.registration(nonce: UInt64(n))))
            #expect(r.status == 200)
        }
        node.terminate()
        #expect(try runCLI(["chain", "verify", "--data-dir", dir]).status == 0)

        // Edit block 2's stored header with the sqlite3 tool, as an operator with disk access could.
        let sqlite = Process()
        sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        sqlite.arguments = [dir + "/ledger.sqlite", "UPDATE blocks SET header = CAST(header AS BLOB) || X'' , time_ms = time_ms + 1 WHERE height = 2; UPDATE transactions SET body = substr(body, 1, length(body) - 1) || X'00' WHERE height = 2;"]
        try sqlite.run()
        sqlite.waitUntilExit()
        #expect(sqlite.terminationStatus == 0)

        let bad = try runCLI(["chain", "verify", "--data-dir", dir])
        #expect(bad.status == 2, "\(bad.stdout)\(bad.stderr)")
        #expect(bad.stdout.contains("\"firstBadHeight\" : 2"), "\(bad.stdout)")
    }
}
