import Foundation
import IoMTCore
import IoMTEdge
import Testing

extension ApplicationScenarios {
    /// Issue 6 §3 on a four-validator devnet and a gateway: a public-health officer orders a quarantine from the
    /// command line (the order and the fence's commitment on-chain, the fence to the gateway); a fence
    /// that is not the committed one is refused; the wristband leaving the fence raises a breach at
    /// once, coming back clears it, a silent wristband raises wristband-silent, and after the order
    /// is lifted nothing is raised and its fence is deleted at the gateway; two wristbands
    /// close together for the set time raise a proximity alert for each.
    @Suite("quarantine and distancing on a four-validator devnet and a gateway")
    struct QuarantineGatewayTests {
        static func position(_ x: Double, _ y: Double) -> [UInt8] {
            let time = FHIRTime.format(Int64(Date().timeIntervalSince1970 * 1000))
            let other = "urn:iomtchain:observation", ucum = "http://unitsofmeasure.org"
            return Array("""
                {"resourceType":"Observation","status":"final","code":{"coding":[{"system":"\(other)","code":"position"}]},"effectiveDateTime":"\(time)",\
                "component":[{"code":{"coding":[{"system":"\(other)","code":"x"}]},"valueQuantity":{"value":\(x),"system":"\(ucum)","code":"m"}},\
                {"code":{"coding":[{"system":"\(other)","code":"y"}]},"valueQuantity":{"value":\(y),"system":"\(ucum)","code":"m"}}]}
                """.utf8)
        }

        static func rules(_ r: HTTP.Reply) -> [String] {
            (r.json["alerts"] as? [[String: Any]] ?? []).compactMap { a in (a["event"] as? [String: Any]).map { "\($0["rule"] as? String ?? "") \($0["state"] as? String ?? "")" } }
        }

        @Test("a geofence breach, its clearing, lifting; proximity between two wristbands", .timeLimit(.minutes(3)))
        func flow() async throws {
            let dir = temporaryFolder()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let (node, http, chain) = try startConsortium()
            defer { node.terminate() }
            // A public-health agency, its admin and an officer.
            let agencyAdmin = PrivateKey.generate(.ed25519), officer = PrivateKey.generate(.ed25519)
            try await GatewayTests.commit(http, chain, .proposeGovernance(.addOrganisation(Organisation(id: "agency", name: "Disease Control", kind: "public-health-agency"))))
            try await GatewayTests.commit(http, chain, .proposeGovernance(.addAdmin(publicKey: agencyAdmin.publicKey, organisation: "agency", label: "agency admin")))
            try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: officer.publicKey, role: .publicHealthOfficer, organisation: "agency")), key: agencyAdmin)
            let officerPath = dir + "/officer.key.json"
            try JSONEncoder().encode(KeyFile(officer)).write(to: URL(fileURLWithPath: officerPath))
            // The hospital's gateway; two patients, each with a wristband.
            let gatewayKey = PrivateKey.generate(.ed25519)
            let gatewayPath = dir + "/gateway.key.json"
            try JSONEncoder().encode(KeyFile(gatewayKey)).write(to: URL(fileURLWithPath: gatewayPath))
            try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: gatewayKey.publicKey, role: .gateway, organisation: chain.hospital)))
            var bands: [TestDevice] = [], subjects: [Hash] = []
            for _ in 0..<2 {
                let patient = try await ConsentAPITests.enrol(http, chain, PatientSecret.generate())
                let subject = Pseudonym.of(patient.publicKey.address), key = PrivateKey.generate(.ed25519)
                try await GatewayTests.commit(http, chain, .registerDevice(RegisterDevice(publicKey: key.publicKey, deviceType: "wristband", subject: subject)))
                bands.append(TestDevice(key: key, macKey: nil)); subjects.append(subject)
            }
            let gw = try GatewayProcess(dataDir: dir + "/gateway", key: gatewayPath, node: node.url, extraArgs: ["--proximity-metres", "2", "--proximity-seconds", "1", "--quarantine-silence-seconds", "3"])

            // The order: home is a 20 m disc around (10, 10).
            let ordered = try runCLI(["quarantine", "order", "--node", node.url, "--gateway", gw.url, "--key", officerPath, "--subject", subjects[0].hex,
                                      "--device", bands[0].id.hex, "--x", "10", "--y", "10", "--radius", "20", "--days", "14"])
            #expect(ordered.status == 0, "\(ordered.stderr)")
            let order = ordered.stderr.split(separator: "\n").first { $0.hasPrefix("order ") }.map { String($0.dropFirst(6)) } ?? ""
            // Another fence for the same order is refused: the order committed to the first.
            let forged = try JSONSerialization.data(withJSONObject: ["order": order, "xM": 500, "yM": 500, "radiusM": 1000, "salt": String(repeating: "ab", count: 32)])
            var r = try await HTTP(base: gw.url).post("/v1/quarantine/fences", forged)
            #expect(r.status == 422 && r.json["code"] as? String == "fence-mismatch", "\(r.text)")
            // A hospital's member-admin cannot order one.
            let adminTry = try runCLI(["quarantine", "order", "--node", node.url, "--gateway", gw.url, "--key", node.net.manifest.adminKey, "--subject", subjects[0].hex,
                                       "--device", bands[0].id.hex, "--x", "0", "--y", "0", "--radius", "5"])
            #expect(adminTry.status != 0 && adminTry.stderr.contains("unauthorised"), "\(adminTry.stderr)")

            var counter: UInt64 = 0
            func report(_ band: Int, _ x: Double, _ y: Double) async throws -> HTTP.Reply {
                counter += 1
                return try await bands[band].upload(gw.http, chainID: chain.chainID, counter: counter, body: Self.position(x, y))
            }
            // The wristband has not reported since the order: silent for 3 s under quarantine, it
            // raises wristband-silent (critical); its first position clears it.
            var silent = false
            let silenceBy = Date().addingTimeInterval(20)
            while !silent, Date() < silenceBy {
                let alerts = try await gw.http.get("/v1/alerts?after=0&waitMs=1000").json["alerts"] as? [[String: Any]] ?? []
                silent = alerts.contains { a in
                    let e = a["event"] as? [String: Any] ?? [:]
                    return e["rule"] as? String == "wristband-silent" && e["state"] as? String == "raised" && e["device"] as? String == bands[0].id.hex
                }
                if !silent { try await Task.sleep(nanoseconds: 200_000_000) }
            }
            #expect(silent, "no wristband-silent alert\n\(gw.log.suffix(1_000))")
            r = try await report(0, 12, 15)
            #expect(r.status == 202 && Self.rules(r) == ["wristband-silent cleared"], "\(r.text)")
            r = try await report(0, 60, 10)  // 30 m beyond the fence's edge
            #expect(Self.rules(r) == ["geofence-breach raised"], "\(r.text)")
            r = try await report(0, 70, 10)
            #expect(Self.rules(r).isEmpty)
            r = try await report(0, 12, 12)
            #expect(Self.rules(r) == ["geofence-breach cleared"], "\(r.text)")
            // The breach reached the chain as an alert record (device, rule, time; no position).
            var onChain = false
            for _ in 0..<100 where !onChain {
                onChain = try await http.get("/v1/state/" + Hex.encode(StateKeys.alert(bands[0].id, rule: "geofence-breach"))).json["value"] as? String != nil
                if !onChain { try await Task.sleep(nanoseconds: 100_000_000) }
            }
            #expect(onChain)
            // Lifted: leaving is no longer a breach.
            let lifted = try runCLI(["quarantine", "lift", "--node", node.url, "--key", officerPath, "--order", order])
            #expect(lifted.status == 0, "\(lifted.stderr)")
            try await Task.sleep(nanoseconds: 2_500_000_000)  // the gateway's cache of the order (2 s)
            r = try await report(0, 90, 90)
            #expect(!Self.rules(r).contains("geofence-breach raised"), "\(r.text)")
            // The disease-control centre's view: the order, no longer in force, and the log of its
            // breaches (raised and cleared, never a position).
            let shown = try runCLI(["quarantine", "show", "--node", node.url, "--order", order])
            #expect(shown.status == 0 && shown.stdout.contains("\"active\":false") && shown.stdout.contains(subjects[0].hex), "\(shown.stdout) \(shown.stderr)")
            var breaches: [[String: Any]] = []
            for _ in 0..<50 {
                let cli = try runCLI(["quarantine", "breaches", "--node", node.url])
                breaches = ((try? JSONSerialization.jsonObject(with: Data(cli.stdout.utf8))) as? [String: Any])?["alerts"] as? [[String: Any]] ?? []
                if breaches.count >= 2 { break }
                try await Task.sleep(nanoseconds: 200_000_000)
            }
            let states = breaches.compactMap { (($0["record"] as? [String: Any])?["alert"] as? [String: Any]).map { "\($0["device"] as? String ?? "") \($0["raised"] as? Bool ?? false)" } }
            #expect(states == ["\(bands[0].id.hex) true", "\(bands[0].id.hex) false"], "\(breaches)")
            // Its fence (the person's home) is deleted at the gateway, and not taken again.
            #expect(gw.log.contains("is over: its geofence is deleted"), "\(gw.log.suffix(1_000))")
            r = try await HTTP(base: gw.url).post("/v1/quarantine/fences", forged)
            #expect(r.status == 422 && r.json["code"] as? String == "quarantine-over", "\(r.text)")

            // Proximity: the second wearer comes within a metre and a half and stays over a second.
            r = try await report(1, 89, 90)
            try await Task.sleep(nanoseconds: 1_200_000_000)
            r = try await report(0, 90.5, 90)
            r = try await report(1, 89.5, 90.2)
            let proximity = Self.rules(r).filter { $0.hasPrefix("proximity") }
            let all = try await HTTP(base: gw.url).get("/v1/alerts?after=0").json["alerts"] as? [[String: Any]] ?? []
            let raisedFor = Set(all.compactMap { a -> String? in
                guard let e = a["event"] as? [String: Any], e["rule"] as? String == "proximity", e["state"] as? String == "raised" else { return nil }
                return e["device"] as? String
            })
            #expect(raisedFor == Set(bands.map(\.id.hex)), "\(proximity) \(all)")
            r = try await report(1, 40, 40)
            #expect(Self.rules(r).filter { $0 == "proximity cleared" }.count == 2, "\(r.text)")
            // Every validator committed the same chain, and answers alike.
            try await node.agree()
            try await node.sameState(StateKeys.alert(bands[0].id, rule: "geofence-breach"))
        }
    }
}
