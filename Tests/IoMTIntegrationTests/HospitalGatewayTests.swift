import Foundation
import IoMTCore
import IoMTEdge
import Testing

extension ApplicationScenarios {
    /// Issue 6 §5 on a four-validator devnet and a gateway: an RFID reader's sightings move a respirator on-chain, a
    /// malfunction takes it out of the available list, a ward's CO2 sensor raises an environment alert,
    /// and sterilisation cycles signed by the steriliser show a gap when one is missing.
    @Suite("smart hospital on a four-validator devnet and a gateway")
    struct HospitalGatewayTests {
        static func observation(system: String, code: String, value: Double, unit: String) -> [UInt8] {
            Array("""
                {"resourceType":"Observation","status":"final","code":{"coding":[{"system":"\(system)","code":"\(code)"}]},\
                "effectiveDateTime":"\(FHIRTime.format(Int64(Date().timeIntervalSince1970 * 1000)))","valueQuantity":{"value":\(value),"system":"http://unitsofmeasure.org","code":"\(unit)"}}
                """.utf8)
        }

        @Test("assets located by RFID and listed by status, a ward's CO2 alert, sterilisation cycles with a gap", .timeLimit(.minutes(3)))
        func flow() async throws {
            let dir = temporaryFolder()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let (node, http, chain) = try startConsortium()
            defer { node.terminate() }
            let gatewayKey = PrivateKey.generate(.ed25519), readerKey = PrivateKey.generate(.ed25519), co2Key = PrivateKey.generate(.ed25519)
            let sterKey = PrivateKey.generate(.ed25519), nurse = PrivateKey.generate(.ed25519)
            let gatewayPath = dir + "/gateway.key.json"
            try JSONEncoder().encode(KeyFile(gatewayKey)).write(to: URL(fileURLWithPath: gatewayPath))
            try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: gatewayKey.publicKey, role: .gateway, organisation: chain.hospital)))
            try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: nurse.publicKey, role: .practitioner, organisation: chain.hospital)))
            try await GatewayTests.commit(http, chain, .attestPractitioner(AttestPractitioner(account: nurse.publicKey.address, profession: "nurse", licenceHash: Hash.sha256([6]))))
            try await GatewayTests.commit(http, chain, .registerDevice(RegisterDevice(publicKey: readerKey.publicKey, deviceType: "rfid-reader", place: "icu-2")))
            try await GatewayTests.commit(http, chain, .registerDevice(RegisterDevice(publicKey: co2Key.publicKey, deviceType: "environment-sensor", place: "ward-5")))
            try await GatewayTests.commit(http, chain, .registerDevice(RegisterDevice(publicKey: sterKey.publicKey, deviceType: "steriliser", place: "cssd")))
            for (tag, kind) in [("RESP-0001", "respirator"), ("RESP-0002", "respirator"), ("BED-0101", "bed")] {
                try await GatewayTests.commit(http, chain, .registerAsset(RegisterAsset(tag: tag, kind: kind, home: "icu-1")))
            }
            let gw = try GatewayProcess(dataDir: dir + "/gateway", key: gatewayPath, node: node.url)
            let reader = TestDevice(key: readerKey, macKey: nil), co2 = TestDevice(key: co2Key, macKey: nil)

            var r = try await reader.upload(gw.http, chainID: chain.chainID, counter: 1, body: Self.observation(system: "urn:iomtchain:rfid", code: "RESP-0001", value: 1, unit: "{scan}"))
            #expect(r.status == 202, "\(r.text)")
            var asset: [String: Any] = [:]
            for _ in 0..<200 {
                asset = try await http.get("/v1/assets/RESP-0001").json["asset"] as? [String: Any] ?? [:]
                if asset["location"] as? String == "icu-2" { break }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            #expect(asset["location"] as? String == "icu-2", "\(asset)\n\(gw.log.suffix(800))")
            try await GatewayTests.commit(http, chain, .setAssetStatus(SetAssetStatus(tag: "RESP-0002", status: "out-of-service", malfunction: "alarm-fault")), key: nurse)
            let available = try await http.get("/v1/assets?organisation=\(chain.hospital)&kind=respirator&status=available").json["assets"] as? [[String: Any]] ?? []
            #expect(available.compactMap { $0["tag"] as? String } == ["RESP-0001"])
            let broken = try await http.get("/v1/assets?organisation=\(chain.hospital)&status=out-of-service").json["assets"] as? [[String: Any]] ?? []
            #expect(broken.first?["malfunction"] as? String == "alarm-fault" && broken.count == 1)

            // The ward's air: CO2 1,800 ppm.
            r = try await co2.upload(gw.http, chainID: chain.chainID, counter: 1, body: Self.observation(system: "urn:iomtchain:observation", code: "co2", value: 1_800, unit: "[ppm]"))
            let rules = (r.json["alerts"] as? [[String: Any]] ?? []).compactMap { ($0["event"] as? [String: Any])?["rule"] as? String }
            #expect(rules == ["co2-high"], "\(r.text)")

            // Sterilisation: cycles 1 and 3 recorded by the nurse, each signed by the steriliser; 2 is missing.
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            for n in [UInt64(1), 3] {
                let c = SterilisationCycle(steriliser: sterKey.publicKey.address, cycle: n, loadHash: Hash.sha256([UInt8(n)]), startMs: now - 3_600_000, endMs: now - 60_000,
                                           maxCentiC: 13_450, holdSeconds: 240, passed: true)
                try await GatewayTests.commit(http, chain, .recordSterilisation(RecordSterilisation(cycle: c, steriliserSignature: sterKey.sign(c.message(chainID: chain.chainID)))), key: nurse)
            }
            let cycles = try await http.get("/v1/sterilisers/\(sterKey.publicKey.address.hex)/cycles").json
            #expect(cycles["lastCycle"] as? Int == 3 && cycles["missing"] as? Int == 1, "\(cycles)")
            #expect((cycles["cycles"] as? [[String: Any]])?.compactMap { $0["missingBefore"] as? Int } == [1, 0])
            // The same from the command line.
            var cli = try runCLI(["asset", "cycles", "--node", node.url, sterKey.publicKey.address.hex])
            #expect(cli.status == 0 && cli.stdout.contains("\"missing\":1"), "\(cli.stdout) \(cli.stderr)")
            cli = try runCLI(["asset", "list", "--node", node.url, "--organisation", chain.hospital, "--kind", "respirator", "--status", "available"])
            #expect(cli.status == 0 && cli.stdout.contains("RESP-0001") && !cli.stdout.contains("RESP-0002"), "\(cli.stdout)")
            cli = try runCLI(["asset", "status", "--node", node.url, "--key", node.net.manifest.adminKey, "--tag", "RESP-0002", "--status", "available"])
            #expect(cli.status == 0, "\(cli.stderr)")
            // Every validator committed the same chain, and answers alike.
            try await node.agree()
            try await node.sameAnswer("/v1/assets?organisation=\(chain.hospital)")
            try await node.sameAnswer("/v1/sterilisers/\(sterKey.publicKey.address.hex)/cycles")
        }
    }
}
