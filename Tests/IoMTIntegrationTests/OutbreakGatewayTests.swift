import Foundation
import IoMTCore
import IoMTEdge
import Testing

extension ApplicationScenarios {
    /// Issue 6 §6 on a four-validator devnet and a gateway: a thermal camera's screenings go through the gateway,
    /// fevers (and only fevers) are recorded, and with two institutions' test results they come back
    /// together from `GET /v1/outbreak` by place and time.
    @Suite("outbreak-origin tracing on a four-validator devnet and a gateway")
    struct OutbreakGatewayTests {
        /// A screening: a body temperature (LOINC 8310-5) taken now.
        static func temperature(_ celsius: Double) -> [UInt8] {
            Array("""
                {"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8310-5"}]},\
                "effectiveDateTime":"\(FHIRTime.format(Int64(Date().timeIntervalSince1970 * 1000)))","valueQuantity":{"value":\(celsius),"system":"http://unitsofmeasure.org","code":"Cel"}}
                """.utf8)
        }

        @Test("a camera's fevers and two institutions' test results, queried together by place and time", .timeLimit(.minutes(3)))
        func flow() async throws {
            let dir = temporaryFolder()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let (node, http, chain) = try startConsortium()
            defer { node.terminate() }
            let gatewayKey = PrivateKey.generate(.ed25519), cameraKey = PrivateKey.generate(.ed25519), lab = PrivateKey.generate(.ed25519)
            let gatewayPath = dir + "/gateway.key.json"
            try JSONEncoder().encode(KeyFile(gatewayKey)).write(to: URL(fileURLWithPath: gatewayPath))
            try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: gatewayKey.publicKey, role: .gateway, organisation: chain.hospital)))
            try await GatewayTests.commit(http, chain, .registerDevice(RegisterDevice(publicKey: cameraKey.publicKey, deviceType: "thermal-camera", place: "station-3")))
            try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: lab.publicKey, role: .practitioner, organisation: chain.hospital)))
            try await GatewayTests.commit(http, chain, .attestPractitioner(AttestPractitioner(account: lab.publicKey.address, profession: "technician", licenceHash: Hash.sha256([4]))))
            // A second institution: a laboratory admitted by governance.
            let labAdmin = PrivateKey.generate(.ed25519), other = PrivateKey.generate(.ed25519)
            try await GatewayTests.commit(http, chain, .proposeGovernance(.addOrganisation(Organisation(id: "city-lab", name: "City Laboratory", kind: "laboratory"))))
            try await GatewayTests.commit(http, chain, .proposeGovernance(.addAdmin(publicKey: labAdmin.publicKey, organisation: "city-lab", label: "lab admin")))
            try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: other.publicKey, role: .practitioner, organisation: "city-lab")), key: labAdmin)
            try await GatewayTests.commit(http, chain, .attestPractitioner(AttestPractitioner(account: other.publicKey.address, profession: "technician", licenceHash: Hash.sha256([5]))), key: labAdmin)

            let gw = try GatewayProcess(dataDir: dir + "/gateway", key: gatewayPath, node: node.url)
            let camera = TestDevice(key: cameraKey, macKey: nil)
            let start = Int64(Date().timeIntervalSince1970 * 1000) / 3_600_000 * 3_600_000  // the hour
            for (i, t) in [36.6, 38.4, 37.0, 39.1].enumerated() {
                let r = try await camera.upload(gw.http, chainID: chain.chainID, counter: UInt64(i + 1), body: Self.temperature(t))
                #expect(r.status == 202, "\(r.text)")
            }
            try await GatewayTests.commit(http, chain, .recordTestResult(RecordTestResult(resultID: Hash.sha256([1]), place: "station-3", sampledAtMs: start, assay: "loinc:94500-6", outcome: "positive")), key: lab)
            try await GatewayTests.commit(http, chain, .recordTestResult(RecordTestResult(resultID: Hash.sha256([2]), place: "station-3", sampledAtMs: start, assay: "loinc:94500-6", outcome: "negative")), key: other)
            try await GatewayTests.commit(http, chain, .recordTestResult(RecordTestResult(resultID: Hash.sha256([3]), place: "district-9", sampledAtMs: start, assay: "loinc:94500-6", outcome: "positive")), key: other)

            var cells: [[String: Any]] = []
            for _ in 0..<200 {
                cells = try await http.get("/v1/outbreak?fromMs=\(start - 3_600_000)&toMs=\(start + 3_600_000)").json["cells"] as? [[String: Any]] ?? []
                if cells.reduce(0, { $0 + ($1["fevers"] as? Int ?? 0) }) >= 1 { break }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            let station = cells.filter { $0["place"] as? String == "station-3" }
            // 38.4 and 39.1 °C within a minute from one camera are one detection (a febrile person in
            // several frames, or a sensor stuck high, must not count many times).
            #expect(station.reduce(0) { $0 + ($1["fevers"] as? Int ?? 0) } == 1, "\(cells)\n\(gw.log.suffix(1_000))")
            #expect(station.map { $0["maxCentiC"] as? Int ?? 0 }.max() == 3_840)
            #expect(station.reduce(0) { $0 + ($1["positives"] as? Int ?? 0) } == 1 && station.reduce(0) { $0 + ($1["negatives"] as? Int ?? 0) } == 1)
            #expect(Set(station.flatMap { $0["institutions"] as? [String] ?? [] }) == [chain.hospital, "city-lab"])
            #expect(cells.contains { $0["place"] as? String == "district-9" && $0["positives"] as? Int == 1 })
            // One place only; and a window too wide is refused.
            let one = try await http.get("/v1/outbreak?place=district-9&fromMs=\(start - 3_600_000)&toMs=\(start + 3_600_000)").json["cells"] as? [[String: Any]] ?? []
            #expect(one.count == 1)
            let cli = try runCLI(["outbreak", "grid", "--node", node.url, "--place", "district-9", "--hours", "2"])
            #expect(cli.status == 0 && cli.stdout.contains("district-9") && cli.stdout.contains("city-lab"), "\(cli.stdout) \(cli.stderr)")
            #expect(try await http.get("/v1/outbreak?fromMs=0&toMs=\(start)").status == 400)
            #expect(try await http.get("/v1/outbreak?fromMs=-9223372036854775808&toMs=0").status == 400)  // refused, not overflowed
            #expect(try await http.get("/healthz").status == 200)
            // Every validator committed the same chain, and answers alike.
            try await node.agree()
            try await node.sameAnswer("/v1/outbreak?fromMs=\(start - 3_600_000)&toMs=\(start + 3_600_000)")
        }
    }
}
