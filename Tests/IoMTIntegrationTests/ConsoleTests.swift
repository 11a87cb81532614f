import Foundation
import IoMTCore
import Testing

/// Issue 7, first part: the web console served by a validator of a real four-validator devnet,
/// opened in headless Chromium (Debian's package, through Playwright; `scripts/setup.sh` installs
/// both): the explorer's newest block arrives without a reload, a block shows its commit, a
/// transaction found by search shows its Merkle proof verified, the consortium page lists every
/// validator — on a desktop and on a phone-sized screen, with screenshots.
@Suite("web console in a real browser", .serialized)
struct ConsoleTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("browser/console.py").path

    @Test("explorer, block, transaction and consortium pages in headless Chromium, live blocks without reload", .timeLimit(.minutes(4)))
    func browser() async throws {
        let net = try Devnet(validators: 4)
        defer { net.stop() }
        let http = net.http(1)
        let admin = try KeyFile.load(path: net.manifest.adminKey)
        let chainID = net.manifest.chainId
        func submit() async throws -> String {
            let nonce = UInt64(try await http.get("/v1/accounts/\(admin.publicKey.address.hex)").json["nextNonce"] as? Int ?? 0)
            let tx = Transaction(chainID: chainID, sender: admin.publicKey.address, signerKey: admin.publicKey, nonce: nonce,
                                 payload: .registerAccount(RegisterAccount(publicKey: PrivateKey.generate(.ed25519).publicKey, role: .device, organisation: "org-0", label: "sensor")))
                .signed(with: admin)
            let r = try await http.post("/v1/transactions?wait=commit", try JSONEncoder().encode(tx))
            guard r.status == 200 else { throw TestFailure("submit: HTTP \(r.status) \(r.text)") }
            return tx.hash.hex
        }
        let txHash = try await submit()
        // A batch with a journey: made by the devnet's manufacturer (org-3), four units to the
        // hospital, stored with a logger, one excursion.
        let chain = DevChain(admin: admin, chainID: chainID, hospital: "org-0")
        let maker = PrivateKey.generate(.ed25519), logger = PrivateKey.generate(.ed25519)
        try await GatewayTests.commit(http, chain, .proposeGovernance(.addAdmin(publicKey: maker.publicKey, organisation: "org-3", label: "maker")))
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let batch = RegisterBatch(gtin: "09506000134352", lot: "CONSOLE-1", productCode: "CVX208", units: 10, serialsRoot: Hash.sha256([1]),
                                  manufacturedMs: now - 86_400_000, expiresMs: now + 90 * 86_400_000, minCentiC: 200, maxCentiC: 800)
        try await GatewayTests.commit(http, chain, .registerBatch(batch), key: maker)
        let until = now + 3_600_000
        let message = TransferCustody.message(chainID: chainID, batch: batch.id, units: 4, sender: maker.publicKey.address, receiver: admin.publicKey.address, sequence: 1, validUntilMs: until)
        try await GatewayTests.commit(http, chain, .transferCustody(TransferCustody(batch: batch.id, units: 4, receiver: admin.publicKey.address, sequence: 1, validUntilMs: until,
                                                                                    receiverSignature: admin.sign(message))), key: maker)
        try await GatewayTests.commit(http, chain, .registerDevice(RegisterDevice(publicKey: logger.publicKey, deviceType: "cold-chain-logger", place: "ward-fridge")))
        try await GatewayTests.commit(http, chain, .attachLogger(AttachLogger(device: logger.publicKey.address, batch: batch.id, units: 2)))
        try await GatewayTests.commit(http, chain, .reportExcursion(ReportExcursion(device: logger.publicKey.address, batch: batch.id, centiC: 1_150, atMs: now)))
        // Two respirators of the hospital, one out of service.
        try await GatewayTests.commit(http, chain, .registerAsset(RegisterAsset(tag: "RESP-1", kind: "respirator", home: "ward-3")))
        try await GatewayTests.commit(http, chain, .registerAsset(RegisterAsset(tag: "RESP-2", kind: "respirator", home: "ward-3")))
        try await GatewayTests.commit(http, chain, .setAssetStatus(SetAssetStatus(tag: "RESP-2", status: "out-of-service", malfunction: "power-failure")))
        let board = try await http.get("/console/hospital?organisation=org-0&steriliser=zz")
        #expect(board.status == 200 && board.text.contains("RESP-2") && board.text.contains("power-failure") && board.text.contains("A steriliser is a device id"), "\(board.text.prefix(300))")
        // A positive test result from the hospital's laboratory technician, at a place and hour.
        let lab = PrivateKey.generate(.ed25519)
        try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: lab.publicKey, role: .practitioner, organisation: "org-0")))
        try await GatewayTests.commit(http, chain, .attestPractitioner(AttestPractitioner(account: lab.publicKey.address, profession: "technician", licenceHash: Hash.sha256([4]))))
        try await GatewayTests.commit(http, chain, .recordTestResult(RecordTestResult(resultID: Hash.sha256([9]), place: "district-9", sampledAtMs: now - now % 3_600_000, assay: "loinc:94500-6", outcome: "positive")), key: lab)
        let health = try await http.get("/console/public-health")
        #expect(health.status == 200 && health.text.contains("district-9") && health.text.contains("1 positive"), "\(health.text.prefix(400))")
        let journey = try await http.get("/console/supply-chain?gtin=09506000134352&lot=CONSOLE-1")
        #expect(journey.status == 200 && journey.text.contains("Cold-chain excursion") && journey.text.contains("11.50"), "\(journey.status)")
        #expect(try await http.get("/console/supply-chain?batch=" + String(repeating: "cd", count: 32)).status == 404)
        #expect(try await http.get("/console/supply-chain?gtin=123&lot=x").status == 400)

        // Server side first: pages answer, escape what they show, and refuse what is not there.
        for path in ["/console/explorer", "/console/consortium", "/console/blocks/1", "/console/tx/\(txHash)", "/console/supply-chain"] {
            let r = try await http.get(path)
            #expect(r.status == 200 && r.headers["content-type"]?.hasPrefix("text/html") == true && r.text.contains("<nav>"), "\(path): \(r.status)")
            #expect(r.headers["content-security-policy"]?.contains("default-src 'self'") == true)
        }
        let hostile = try await http.get("/console/search?q=%3Cscript%3Ealert(1)%3C/script%3E")
        #expect(hostile.status == 404 && !hostile.text.contains("<script>alert") && hostile.text.contains("&lt;script&gt;"), "\(hostile.text)")
        #expect(try await http.get("/console/blocks/999999").status == 404)
        // Heights past Int64 are simply not there (they used to trap the node's store).
        for path in ["/console/blocks/18446744073709551615", "/console/search?q=18446744073709551615", "/v1/blocks/18446744073709551615"] {
            #expect(try await http.get(path).status == 404, "\(path)")
        }
        #expect(try await http.get("/healthz").status == 200)
        // Times are written in UTC, as Foundation writes them.
        let first = try await http.get("/v1/blocks/1").json["header"] as? [String: Any] ?? [:]
        let utc = DateFormatter()
        utc.dateFormat = "yyyy-MM-dd HH:mm:ss"
        utc.timeZone = TimeZone(identifier: "UTC")
        let written = utc.string(from: Date(timeIntervalSince1970: Double(first["timestampMs"] as? Int ?? 0) / 1000))
        #expect(try await http.get("/console/blocks/1").text.contains(written), "\(written)")
        // A quote followed by a combining mark is still escaped inside an attribute.
        let attribute = try await http.get("/console/hospital?organisation=%22%CC%81%20autofocus%20formaction%3D%2F%2Fevil")
        #expect(attribute.status == 200 && !attribute.text.contains("\"\u{301} autofocus") && attribute.text.contains("&quot;\u{301} autofocus"), "\(attribute.text.prefix(600))")
        #expect(attribute.headers["content-security-policy"]?.contains("form-action 'self'") == true)
        #expect(try await http.get("/console/tx/" + String(repeating: "ab", count: 32)).status == 404)

        // The browser, while transactions keep committing.
        let shots = temporaryFolder("console-screenshots")
        try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
        let load = Task {
            for _ in 0..<60 where !Task.isCancelled {
                _ = try? await submit()
                try? await Task.sleep(nanoseconds: 500_000_000)
            }
        }
        defer { load.cancel() }
        let run = try runTool("/usr/bin/env", ["python3", Self.script, "http://" + net.manifest.members[1].http, shots, txHash, batch.id.hex], timeoutSeconds: 180)
        #expect(run.status == 0, "\(run.stderr)\n\(run.stdout)")
        let seen = ((try? JSONSerialization.jsonObject(with: Data(run.stdout.utf8))) as? [String: Any]) ?? [:]
        for screen in ["desktop", "phone"] {
            let explorer = seen["\(screen)_explorer"] as? [String: Int] ?? [:]
            #expect((explorer["newest"] ?? 0) > (explorer["first"] ?? .max), "\(screen): \(seen)")
            #expect((seen["\(screen)_verdict"] as? String ?? "").contains("Verified"), "\(seen)")
            #expect(seen["\(screen)_validators"] as? Int == 4, "\(seen)")
            #expect((seen["\(screen)_block_heading"] as? String ?? "").hasPrefix("Commit: "), "\(seen)")
            #expect(seen["\(screen)_outbreak_rows"] as? Int == 1, "\(seen)")
            #expect(seen["\(screen)_out_of_service"] as? Int == 1 && seen["\(screen)_assets"] as? Int == 2, "\(seen)")
            #expect(seen["\(screen)_excursion_points"] as? Int == 1 && (seen["\(screen)_journey"] as? Int ?? 0) >= 4, "\(seen)")
        }
        for name in ["explorer", "block", "transaction", "consortium", "supply-chain", "hospital", "public-health"] {
            for screen in ["desktop", "phone"] {
                #expect(FileManager.default.fileExists(atPath: "\(shots)/\(name)-\(screen).png"), "screenshot \(name)-\(screen)")
            }
        }
    }

    @Test("an open event stream does not hold a node's exit: SIGTERM stops it within seconds", .timeLimit(.minutes(2)))
    func streamEndsOnShutdown() async throws {
        let dir = temporaryFolder()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let node = try NodeProcess(dataDir: dir + "/node")
        defer { node.terminate() }
        let out = dir + "/events.txt"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments = ["-sN", node.url + "/console/events"]
        curl.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        try curl.run()
        defer { if curl.isRunning { curl.terminate() } }
        let opened = Date().addingTimeInterval(10)
        while Date() < opened, !((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").contains("retry:") { try await Task.sleep(nanoseconds: 100_000_000) }
        #expect(((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").contains("retry:"), "the stream opened")
        kill(node.process.processIdentifier, SIGTERM)
        try waitForExit(node.process, seconds: 10, "a node with an open console stream, after SIGTERM")
    }
}
