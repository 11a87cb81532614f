import Crypto
import Foundation
import IoMTCore
import IoMTEdge
import Testing

/// Off-chain blobs across the consortium (issue 4 §3): a gateway puts each sealed batch on its
/// node before anchoring it; the node keeps it on 3 of the 4 nodes; any node serves it, fetching
/// from a peer when it holds none; a tampered copy is detected, set aside and healed.
@Suite("blob replication on a four-validator devnet", .serialized)
struct BlobReplicationTests {
    @Test("a gateway's blob is held by exactly three of four nodes; the fourth fetches it from a peer and verifies it; a tampered replica is refused and healed; puts need a gateway's signature",
          .timeLimit(.minutes(5)))
    func replication() async throws {
        let net = try Devnet()
        defer { net.stop() }
        let admin = try KeyFile.load(path: net.manifest.adminKey)
        let chainID = net.manifest.chainId
        let node0 = net.http(0)
        func commit(_ payload: TransactionPayload, by key: PrivateKey) async throws {
            let nonce = UInt64(try await node0.get("/v1/accounts/\(key.publicKey.address.hex)").json["nextNonce"] as? Int ?? 0)
            let tx = Transaction(chainID: chainID, sender: key.publicKey.address, signerKey: key.publicKey, nonce: nonce, payload: payload).signed(with: key)
            let r = try await node0.post("/v1/transactions?wait=commit&timeoutMs=20000", try JSONEncoder().encode(tx))
            guard r.status == 200 else { throw TestFailure("\(payload.kind): HTTP \(r.status) \(r.text)") }
        }
        let dir = temporaryFolder("blobs")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        // A gateway account of org-0, a researcher (not allowed to put blobs), a patient's X25519 key, an oximeter.
        let gatewayKey = PrivateKey.generate(.ed25519), researcher = PrivateKey.generate(.ed25519)
        let keyPath = dir + "/gateway.key.json"
        try JSONEncoder().encode(KeyFile(gatewayKey)).write(to: URL(fileURLWithPath: keyPath))
        try await commit(.registerAccount(RegisterAccount(publicKey: gatewayKey.publicKey, role: .gateway, organisation: "org-0")), by: admin)
        try await commit(.registerAccount(RegisterAccount(publicKey: researcher.publicKey, role: .researcher, organisation: "org-0")), by: admin)
        let patientKeyPath = dir + "/patient.x25519"
        let made = try runCLI(["keys", "x25519", "--out", patientKeyPath])
        let patient = try X25519Key(hex: (try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as? [String: String])?["publicKey"] ?? "")
        let oximeter = TestDevice(key: PrivateKey.generate(.ed25519), macKey: nil)
        let patientAccount = PrivateKey.generate(.ed25519)
        try await commit(.registerPatient(RegisterPatient(signedBy: patientAccount, agreementKey: patient, chainID: chainID, organisation: "org-0")), by: admin)
        try await commit(.registerDevice(RegisterDevice(publicKey: oximeter.key!.publicKey, deviceType: "pulse-oximeter", subject: Pseudonym.of(patientAccount.publicKey.address), recipientKey: patient)), by: admin)

        // Uploads through a gateway in front of node 0; the reading's proof names its blob.
        let gw = try GatewayProcess(dataDir: dir + "/gateway", key: keyPath, node: node0.base, extraArgs: ["--batch-ms", "200"])
        let r = try await oximeter.upload(gw.http, chainID: chainID, counter: 1, body: try GatewayTests.spo2(97))
        #expect(r.status == 202, "\(r.text)")
        let proof = try await GatewayTests.waitForProof(gw.http, Int64(r.json["firstSequence"] as? Int ?? 0), seconds: 60, signer: admin, chainID: chainID)
        let cid = try #require(ContentID(proof.json["blob"] as? String ?? ""))

        // Exactly three of the four nodes hold it (node 0 and the two peers rendezvous hashing picks).
        func holders() -> [Int] {
            (0..<4).filter { i in
                guard let d = FileManager.default.contents(atPath: net.manifest.members[i].dataDir + "/blobs/\(cid)") else { return false }
                return cid.matches(Array(d))
            }
        }
        let placed = holders()
        #expect(placed.count == 3 && placed.contains(0), "holders \(placed)")
        let lacking = try #require((0..<4).first { !placed.contains($0) })
        print("blob test: \(cid) held by nodes \(placed); node \(lacking) fetches it")

        // The node without it fetches it from a peer, checks it, and keeps it.
        var got = try await net.http(lacking).get("/v1/blobs/\(cid)")
        #expect(got.status == 200 && cid.matches(Array(got.body)), "\(got.status) \(got.text.prefix(300))")
        #expect(got.headers["x-iomt-blob-source"].map { $0 != "self" && $0.hasPrefix("ed25519:") } == true, "\(got.headers)")
        #expect(holders().count == 4)
        got = try await net.http(lacking).get("/v1/blobs/\(cid)")
        #expect(got.headers["x-iomt-blob-source"] == "self")

        // The patient opens it from any node with their own key.
        let opened = try runCLI(["blob", "open", "--key", patientKeyPath, "--from", net.http(2).base, "--cid", cid.description])
        #expect(opened.status == 0 && opened.stdout.contains(#""values":["97 %"]"#), "\(opened.stdout)\(opened.stderr)")

        // A replica changed on a node's disk is detected, set aside, and replaced from a peer.
        let victim = placed.first { $0 != 0 }!
        let path = net.manifest.members[victim].dataDir + "/blobs/\(cid)"
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count / 2] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        got = try await net.http(victim).get("/v1/blobs/\(cid)")
        #expect(got.status == 200 && cid.matches(Array(got.body)) && got.headers["x-iomt-blob-source"] != "self", "\(got.status) \(got.headers)")
        #expect(cid.matches(Array(try Data(contentsOf: URL(fileURLWithPath: path)))), "healed on disk")
        let setAside = try FileManager.default.contentsOfDirectory(atPath: net.manifest.members[victim].dataDir + "/blobs").filter { $0.hasPrefix("\(cid).tampered-") }
        #expect(setAside.count == 1)

        // Puts: only a gateway's (or member-admin's) signature over this chain and digest; bytes must match the id.
        let other = Array("not a blob".utf8)
        let otherID = ContentID(of: other)
        func put(_ body: [UInt8], as id: ContentID, by key: PrivateKey, signing digest: Hash? = nil) async throws -> HTTP.Reply {
            let sig = key.sign(BlobPutAuth.message(chainID: chainID, digest: digest ?? id.digest))
            return try await net.http(1).send("PUT", "/v1/blobs/\(id)", body: Data(body), contentType: "application/octet-stream",
                                              headers: ["X-IoMT-Account": key.publicKey.address.hex, "X-IoMT-Signature": Hex.encode(sig.bytes)])
        }
        #expect(try await put(other, as: otherID, by: researcher).json["code"] as? String == "unauthorised")
        #expect(try await put(other, as: otherID, by: gatewayKey, signing: cid.digest).json["code"] as? String == "bad-signature")
        #expect(try await put(other, as: otherID, by: PrivateKey.generate(.ed25519)).json["code"] as? String == "unknown-account")
        #expect(try await put(other, as: cid, by: gatewayKey).json["code"] as? String == "blob-mismatch")
        #expect(try await net.http(1).send("PUT", "/v1/blobs/\(otherID)", body: Data(other), contentType: "application/octet-stream").json["code"] as? String == "missing-credentials")
        #expect(try await net.http(3).get("/v1/blobs/\(otherID)").json["code"] as? String == "blob-not-found", "refused puts stored nothing anywhere")
        let ok = try await put(other, as: otherID, by: gatewayKey)
        #expect(ok.status == 201 && (ok.json["holders"] as? [Any])?.count == 3, "\(ok.text)")
    }
}
