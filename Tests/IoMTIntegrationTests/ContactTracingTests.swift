import Foundation
import IoMTCore
import IoMTEdge
import Testing

extension ApplicationScenarios {
    /// Issue 6 §2 end to end on a four-validator devnet and a real venue gateway, driven as people would: phones
    /// (`iomtchain tracing`) check in with rotating tokens, a stale or reused token is refused, a doctor
    /// records a positive case with the token hashes the person released, the venue's gateway matches
    /// it against its anchored check-ins and records the exposures on-chain, and each phone reading the
    /// feed learns whether it was exposed.
    @Suite("contact tracing on a four-validator devnet and a venue gateway")
    struct ContactTracingTests {
        @Test("check-ins, refusals, a positive case, matching at the venue, the exposure feed and each phone's check", .timeLimit(.minutes(3)))
        func flow() async throws {
            let dir = temporaryFolder()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let (node, http, chain) = try startConsortium()
            defer { node.terminate() }
            let adminPath = node.net.manifest.adminKey
            // The hospital's venue gateway, two venues, a doctor.
            let gatewayKey = PrivateKey.generate(.ed25519), doctor = PrivateKey.generate(.ed25519)
            let gatewayPath = dir + "/gateway.key.json", doctorPath = dir + "/doctor.key.json"
            try JSONEncoder().encode(KeyFile(gatewayKey)).write(to: URL(fileURLWithPath: gatewayPath))
            try JSONEncoder().encode(KeyFile(doctor)).write(to: URL(fileURLWithPath: doctorPath))
            try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: gatewayKey.publicKey, role: .gateway, organisation: chain.hospital)))
            try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: doctor.publicKey, role: .practitioner, organisation: chain.hospital)))
            try await GatewayTests.commit(http, chain, .attestPractitioner(AttestPractitioner(account: doctor.publicKey.address, profession: "doctor", licenceHash: Hash.sha256([3]))))
            for venue in ["library", "cafe"] {
                let r = try runCLI(["tracing", "register-venue", "--node", node.url, "--key", adminPath, "--venue", venue, "--capacity", "50"])
                #expect(r.status == 0, "\(r.stderr)")
            }
            let gw = try GatewayProcess(dataDir: dir + "/gateway", key: gatewayPath, node: node.url, extraArgs: ["--check-in-batch-ms", "200", "--exposures-per-record", "1"])

            // Five phones. A, B and E stay an hour at the library, C at the café, D ten minutes at the library.
            var secrets: [String: String] = [:]
            for p in ["a", "b", "c", "d", "e"] {
                secrets[p] = dir + "/\(p).secret"
                #expect(try runCLI(["tracing", "new-secret", "--out", secrets[p]!]).status == 0)
            }
            for (p, venue, minutes) in [("a", "library", "60"), ("b", "library", "60"), ("c", "cafe", "60"), ("d", "library", "10"), ("e", "library", "60")] {
                let r = try runCLI(["tracing", "check-in", "--gateway", gw.url, "--venue", venue, "--secret", secrets[p]!, "--minutes", minutes])
                #expect(r.status == 0 && r.stdout.contains("tokenHash"), "\(r.stderr)")
            }
            // Refusals, each with its reason: a reused token, a stale one, an unknown venue, a malformed token.
            let secretA = Hex.decode(try String(contentsOfFile: secrets["a"]!, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))!
            let now = CheckInToken.interval(atMs: Int64(Date().timeIntervalSince1970 * 1000))
            func post(_ venue: String, _ token: String, _ interval: Int64) async throws -> HTTP.Reply {
                try await HTTP(base: gw.url).post("/v1/checkins", try JSONSerialization.data(withJSONObject: ["venue": venue, "token": token, "interval": interval]))
            }
            var r = try await post("library", Hex.encode(CheckInToken.token(secret: secretA, interval: now)), now)
            if r.status == 201 {
                // The interval turned between the CLI's check-in and this one: this token is new; the next post reuses it.
                r = try await post("library", Hex.encode(CheckInToken.token(secret: secretA, interval: now)), now)
            }
            #expect(r.status == 409 && r.json["code"] as? String == "duplicate-token", "\(r.text)")
            r = try await post("library", Hex.encode(CheckInToken.token(secret: secretA, interval: now - 4)), now - 4)
            #expect(r.status == 422 && r.json["code"] as? String == "stale-token", "\(r.text)")
            r = try await post("cinema", Hex.encode(CheckInToken.token(secret: secretA, interval: now + 7)), now)
            #expect(r.status == 422 && r.json["code"] as? String == "unknown-venue", "\(r.text)")
            r = try await post("library", "beef", now)
            #expect(r.status == 400 && r.json["code"] as? String == "invalid-check-in", "\(r.text)")

            // A tests positive: the phone releases its token hashes, the doctor records the case.
            let release = try runCLI(["tracing", "release", "--secret", secrets["a"]!, "--days", "1"])
            #expect(release.status == 0)
            try release.stdout.write(toFile: dir + "/a.release.json", atomically: true, encoding: .utf8)
            // A member-admin is no medical centre's practitioner (the gateway's own key would race its nonces).
            let patientTry = try runCLI(["tracing", "report-positive", "--node", node.url, "--key", adminPath, "--tokens", dir + "/a.release.json"])
            #expect(patientTry.status != 0 && patientTry.stderr.contains("unauthorised"), "\(patientTry.stderr)")
            let reported = try runCLI(["tracing", "report-positive", "--node", node.url, "--key", doctorPath, "--tokens", dir + "/a.release.json"])
            #expect(reported.status == 0, "\(reported.stderr)")
            let caseID = reported.stderr.split(separator: "\n").first { $0.hasPrefix("case ") }.map { String($0.dropFirst(5)) } ?? ""
            #expect(try await http.get("/v1/cases/\(caseID)").status == 200)

            // The venue gateway matches and records — one exposed check-in per record here
            // (--exposures-per-record 1), so B's and E's go in parts 0 and 1; the feed shows both.
            var exposures: [[String: Any]] = []
            let recordedBy = Date().addingTimeInterval(30)
            while exposures.count < 2, Date() < recordedBy {
                exposures = (try await http.get("/v1/exposures?after=0&waitMs=5000").json["exposures"] as? [[String: Any]]) ?? []
                if exposures.count < 2 { try await Task.sleep(nanoseconds: 200_000_000) }
            }
            #expect(exposures.count == 2, "\(exposures)\n\(gw.log.suffix(1_500))")
            let records = exposures.map { $0["record"] as? [String: Any] ?? [:] }
            #expect(records.allSatisfy { $0["venue"] as? String == "library" && $0["caseID"] as? String == caseID && ($0["exposed"] as? [String])?.count == 1 }, "\(records)")
            #expect(Set(records.compactMap { $0["part"] as? Int }) == [0, 1], "\(records)")
            let record = records.first { $0["part"] as? Int == 0 } ?? [:]
            #expect(exposures.first?["gateway"] as? String == gatewayKey.publicKey.address.hex)
            let alarms = try await HTTP(base: gw.url).get("/v1/venue-alarms?after=0").json["alarms"] as? [[String: Any]] ?? []
            #expect(alarms.count == 1 && alarms.first?["venue"] as? String == "library" && alarms.first?["visits"] as? Int == 1 && alarms.first?["parts"] as? Int == 2, "\(alarms)")

            // Each phone checks the feed itself: B and E were exposed; A (the case), C (elsewhere) and D (ten minutes) were not.
            for (p, expected) in [("b", Int32(3)), ("e", 3), ("a", 0), ("c", 0), ("d", 0)] {
                let check = try runCLI(["tracing", "exposures", "--node", node.url, "--secret", secrets[p]!, "--days", "1"])
                #expect(check.status == expected, "\(p): \(check.stdout) \(check.stderr)")
                if expected == 3 { #expect(check.stdout.contains("library") && check.stdout.contains(caseID)) }
            }
            // The record cannot be made again (nor by another gateway: the contract tests cover that).
            let again = Transaction(chainID: chain.chainID, sender: gatewayKey.publicKey.address, signerKey: gatewayKey.publicKey,
                                    nonce: UInt64(try await http.get("/v1/accounts/\(gatewayKey.publicKey.address.hex)").json["nextNonce"] as? Int ?? 0),
                                    payload: .recordExposures(RecordExposures(caseID: Hash(hex: caseID) ?? .zero, venue: "library", exposed: [],
                                                                              checkInRoots: (record["checkInRoots"] as? [String] ?? []).compactMap(Hash.init(hex:))))).signed(with: gatewayKey)
            r = try await http.post("/v1/transactions", try chain.json(again))
            #expect(r.status == 422 && r.json["code"] as? String == "already-exists", "\(r.text)")
            // Every validator committed the same chain, and answers alike.
            try await node.agree()
            try await node.sameAnswer("/v1/cases/\(caseID)")
            try await node.sameAnswer("/v1/exposures?after=0")
        }
    }
}
