import Foundation
import IoMTCore
import IoMTEdge
import Testing

extension ApplicationScenarios {
    /// Issue 6 §4 on a four-validator devnet and a gateway: a crowd counter's counts past the venue's capacity raise
    /// `overcrowded` (cleared at 90 %), the venue's ventilation controller is told its airflow in each
    /// upload reply as occupancy changes, its reported airflow acknowledges the command on-chain, and
    /// a clogged filter becomes an open fault technicians list and a member-admin closes.
    @Suite("venue crowding and ventilation on a four-validator devnet and a gateway")
    struct VenueGatewayTests {
        static func observation(_ code: String, _ value: Double, _ unit: String) -> [UInt8] {
            let time = FHIRTime.format(Int64(Date().timeIntervalSince1970 * 1000))
            return Array("""
                {"resourceType":"Observation","status":"final","code":{"coding":[{"system":"urn:iomtchain:observation","code":"\(code)"}]},"effectiveDateTime":"\(time)",\
                "valueQuantity":{"value":\(value),"system":"http://unitsofmeasure.org","code":"\(unit)"}}
                """.utf8)
        }

        @Test("overcrowding, airflow following occupancy with acknowledgements on-chain, a fault listed and closed", .timeLimit(.minutes(3)))
        func flow() async throws {
            let dir = temporaryFolder()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let (node, http, chain) = try startConsortium()
            defer { node.terminate() }
            let gatewayKey = PrivateKey.generate(.ed25519), counterKey = PrivateKey.generate(.ed25519), controllerKey = PrivateKey.generate(.ed25519)
            let gatewayPath = dir + "/gateway.key.json"
            try JSONEncoder().encode(KeyFile(gatewayKey)).write(to: URL(fileURLWithPath: gatewayPath))
            try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: gatewayKey.publicKey, role: .gateway, organisation: chain.hospital)))
            try await GatewayTests.commit(http, chain, .registerVenue(RegisterVenue(venue: "waiting-room", capacity: 10)))
            try await GatewayTests.commit(http, chain, .registerDevice(RegisterDevice(publicKey: counterKey.publicKey, deviceType: "crowd-counter", place: "waiting-room")))
            try await GatewayTests.commit(http, chain, .registerDevice(RegisterDevice(publicKey: controllerKey.publicKey, deviceType: "ventilation-controller", place: "waiting-room")))
            let counter = TestDevice(key: counterKey, macKey: nil), controller = TestDevice(key: controllerKey, macKey: nil)
            let gw = try GatewayProcess(dataDir: dir + "/gateway", key: gatewayPath, node: node.url)
            var n: UInt64 = 0
            func send(_ d: TestDevice, _ code: String, _ v: Double, _ unit: String) async throws -> HTTP.Reply {
                n += 1
                let r = try await d.upload(gw.http, chainID: chain.chainID, counter: n, body: Self.observation(code, v, unit))
                #expect(r.status == 202, "\(r.text)")
                return r
            }
            func setpoint(_ r: HTTP.Reply) -> [Int] { (r.json["ventilation"] as? [String: Any]).map { [$0["sequence"] as? Int ?? -1, $0["setpointM3h"] as? Int ?? -1] } ?? [] }
            func rules(_ r: HTTP.Reply) -> [String] { (r.json["alerts"] as? [[String: Any]] ?? []).compactMap { ($0["event"] as? [String: Any]).map { "\($0["rule"] as? String ?? "") \($0["state"] as? String ?? "")" } } }

            // The controller reports in: the empty venue's airflow (200 m³/h) is command 1.
            var r = try await send(controller, "airflow", 0, "m3/h")
            #expect(setpoint(r) == [1, 200], "\(r.text)")
            // 12 people: over the capacity of 10.
            r = try await send(counter, "occupancy", 12, "{persons}")
            #expect(rules(r) == ["overcrowded raised"], "\(r.text)")
            r = try await send(controller, "airflow", 200, "m3/h")  // acknowledges command 1; is told command 2
            #expect(setpoint(r) == [2, 450], "\(r.text)")  // 12 × 36 = 432 → 450
            r = try await send(controller, "airflow", 445, "m3/h")  // acknowledges command 2
            r = try await send(counter, "occupancy", 10, "{persons}")
            #expect(rules(r).isEmpty, "\(r.text)")  // 10 is not yet 90 % of capacity (the airflow follows: 360, rounded up to 400)
            r = try await send(counter, "occupancy", 8, "{persons}")
            #expect(rules(r) == ["overcrowded cleared"], "\(r.text)")
            // A clogged filter.
            _ = try await send(controller, "filter-clogged", 1, "{state}")

            var commands: [[String: Any]] = [], faults: [[String: Any]] = []
            for _ in 0..<200 {
                commands = try await http.get("/v1/ventilation/\(controller.id.hex)").json["commands"] as? [[String: Any]] ?? []
                faults = try await http.get("/v1/faults?open=true&venue=waiting-room").json["faults"] as? [[String: Any]] ?? []
                let acked = commands.filter { $0["ack"] != nil }.count
                if commands.count >= 4, acked >= 2, faults.count == 1 { break }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            // Commands 1 (200), 2 (450), 3 (10 people: 400), 4 (8 people: 300), newest first; 1 and 2
            // acknowledged with what the controller applied; 3 and 4 not yet (it has not reported since).
            let summary = commands.map { c -> String in
                let cmd = c["command"] as? [String: Any] ?? [:], ack = c["ack"] as? [String: Any]
                return "\(cmd["sequence"] as? Int ?? 0):\(cmd["setpointM3h"] as? Int ?? 0):\(ack?["appliedM3h"] as? Int ?? -1)"
            }
            #expect(summary == ["4:300:-1", "3:400:-1", "2:450:445", "1:200:200"], "\(summary)\n\(gw.log.suffix(1_500))")
            #expect(faults.count == 1 && (faults.first?["report"] as? [String: Any])?["code"] as? String == "filter-clogged", "\(faults)")
            // The same from the command line; a technician's organisation closes it; it leaves the open list.
            let listed = try runCLI(["venue", "faults", "--node", node.url, "--open", "--venue", "waiting-room"])
            #expect(listed.status == 0 && listed.stdout.contains("filter-clogged"), "\(listed.stdout) \(listed.stderr)")
            let shown = try runCLI(["venue", "ventilation", "--node", node.url, controller.id.hex])
            #expect(shown.status == 0 && shown.stdout.contains("appliedM3h"), "\(shown.stderr)")
            let closed = try runCLI(["venue", "resolve-fault", "--node", node.url, "--key", node.net.manifest.adminKey, "--n", "\(faults.first?["n"] as? Int ?? 0)"])
            #expect(closed.status == 0, "\(closed.stderr)")
            #expect((try await http.get("/v1/faults?open=true").json["faults"] as? [Any])?.isEmpty == true)
            #expect((try await http.get("/v1/faults").json["faults"] as? [Any])?.count == 1)
            // Every validator committed the same chain, and answers alike.
            try await node.agree()
            try await node.sameAnswer("/v1/faults")
            try await node.sameAnswer("/v1/ventilation/\(controller.id.hex)")
        }
    }
}
