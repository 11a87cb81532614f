import Foundation
import IoMTCore
import IoMTEdge
import IoMTGateway
import Testing

/// A deterministic generator for checking the noise (SplitMix64).
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("differential privacy: discrete Laplace noise and per-patient aggregates")
struct DifferentialPrivacyTests {
    @Test("the two-sided geometric has mean 0 and variance 2q/(1−q)² for q = exp(−1/scale)")
    func noiseDistribution() {
        var rng = SplitMix(state: 7)
        for scale in [0.5, 2.0, 10.0] {
            let n = 40_000
            let xs = (0..<n).map { _ in Double(DiscreteLaplace.sample(scale: scale, using: &rng)) }
            let mean = xs.reduce(0, +) / Double(n)
            let variance = xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
            let q = exp(-1 / scale), expected = 2 * q / ((1 - q) * (1 - q))
            #expect(abs(mean) < 4 * (expected / Double(n)).squareRoot() + 0.01, "scale \(scale): mean \(mean)")
            #expect(abs(variance - expected) / expected < 0.08, "scale \(scale): variance \(variance), expected \(expected)")
        }
    }

    static func row(_ p: String, _ v: String, kind: VitalKind = .oxygenSaturation, code: String = "2708-6", unit: String = "%") -> Gateway.DatasetRow {
        Gateway.DatasetRow(pseudonym: p, category: "vital-signs", kind: kind.name, code: "LOINC \(code)", minuteMs: 0,
                           values: [.init(code: "LOINC \(code)", value: v, unit: unit)], series: [])
    }

    @Test("each patient contributes one value (its own mean), components of a panel count, other units and kinds do not")
    func perPatientValues() {
        let bp = Gateway.DatasetRow(pseudonym: "c", category: "vital-signs", kind: "blood-pressure", code: "LOINC 85354-9", minuteMs: 0,
                                    values: [.init(code: "LOINC 8480-6", value: "120", unit: "mm[Hg]"), .init(code: "LOINC 8462-4", value: "80", unit: "mm[Hg]")], series: [])
        let rows = [Self.row("a", "90"), Self.row("a", "100"), Self.row("a", "98"), Self.row("b", "80"), Self.row("b", "70", kind: .heartRate, code: "8867-4", unit: "/min"), bp]
        #expect(Gateway.patientMeans(rows, kind: .oxygenSaturation, unit: "%").sorted() == [80, 96])
        #expect(Gateway.patientMeans(rows, kind: .systolicPressure, unit: "mm[Hg]") == [120])
        #expect(Gateway.patientMeans(rows, kind: .heartRate, unit: "/min") == [70])
        #expect(Gateway.patientMeans(rows, kind: .bodyTemperature, unit: "Cel").isEmpty)
    }

    @Test("answers are noisy but accurate at a large ε, clamped to the range, and a histogram keeps its bins")
    func answers() throws {
        var rng = SplitMix(state: 11)
        let values = (0..<500).map { Double(85 + $0 % 15) } // 85…99
        let truth = values.reduce(0, +) / Double(values.count)
        var counts: [Int64] = [], means: [Double] = []
        for _ in 0..<50 {
            let c = Gateway.answer(.init(statistic: "count", measure: "oxygen-saturation", unit: "%", epsilonMilli: 1_000), values: values, lower: 0, upper: 100, using: &rng)
            counts.append(try #require(c.count))
            let m = Gateway.answer(.init(statistic: "mean", measure: "oxygen-saturation", unit: "%", epsilonMilli: 2_000), values: values, lower: 80, upper: 100, using: &rng)
            means.append(try #require(m.mean))
        }
        // Noise is there (not every answer is the truth) and small (scale 1/ε).
        #expect(Set(counts).count > 1 && counts.allSatisfy { abs($0 - 500) <= 15 })
        #expect(means.allSatisfy { abs($0 - truth) < 1.0 } && Set(means).count > 1)
        let h = Gateway.answer(.init(statistic: "histogram", measure: "oxygen-saturation", unit: "%", lower: 80, upper: 100, bins: 4, epsilonMilli: 5_000),
                               values: values + [150, -3], lower: 80, upper: 100, using: &rng)
        let bins = try #require(h.histogram)
        #expect(bins.count == 4 && bins.first?.from == 80 && bins.last?.to == 100 && bins.allSatisfy { $0.count >= 0 })
        // Clamping puts −3 into the first bin and 150 into the last: 85…89 ×35 each… roughly 1/3 per upper bins.
        #expect(abs(bins[0].count - 1) <= 4 && abs(bins[3].count - (Int64(values.filter { $0 >= 95 }.count) + 1)) <= 4, "\(bins)")
    }

    @Test("the noise has the scale the sensitivity calls for: 1/ε on counts and bins, range/(n·ε/2)·√2 on a mean of n patients")
    func noiseScale() throws {
        var rng = SplitMix(state: 23)
        func sd(_ xs: [Double]) -> Double {
            let m = xs.reduce(0, +) / Double(xs.count)
            return (xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count)).squareRoot()
        }
        func geometricSD(_ scale: Double) -> Double { let q = exp(-1 / scale); return (2 * q).squareRoot() / (1 - q) }
        let values = [Double](repeating: 90, count: 400)
        let counts = try (0..<3_000).map { _ in
            Double(try #require(Gateway.answer(.init(statistic: "count", measure: "oxygen-saturation", unit: "%", epsilonMilli: 500), values: values, lower: 0, upper: 100, using: &rng).count))
        }
        #expect(abs(sd(counts) / geometricSD(2) - 1) < 0.1, "count noise sd \(sd(counts)), expected \(geometricSD(2))")
        let bins = try (0..<3_000).map { _ in
            Double(try #require(Gateway.answer(.init(statistic: "histogram", measure: "oxygen-saturation", unit: "%", lower: 80, upper: 100, bins: 2, epsilonMilli: 1_000),
                                               values: values, lower: 80, upper: 100, using: &rng).histogram?[1].count))
        }
        #expect(abs(sd(bins) / geometricSD(1) - 1) < 0.1, "bin noise sd \(sd(bins))")
        // Mean over 400 patients, range 20, ε 1: sum noise scale 1000/(0.5) steps → sd ≈ 20·(√2·2000/1000)/400 ≈ 0.14.
        let means = try (0..<3_000).map { _ in
            try #require(Gateway.answer(.init(statistic: "mean", measure: "oxygen-saturation", unit: "%", lower: 80, upper: 100, epsilonMilli: 1_000),
                                        values: values, lower: 80, upper: 100, using: &rng).mean)
        }
        let expected = 20 * geometricSD(2_000) / 1_000 / 400
        #expect(abs(sd(means) / expected - 1) < 0.15, "mean noise sd \(sd(means)), expected \(expected)")
    }

    @Test("bad questions are refused before anything is computed")
    func validation() {
        func code(_ q: Gateway.AggregateQuery) -> String? {
            do { _ = try Gateway.validate(q); return nil } catch { return error.code }
        }
        #expect(code(.init(statistic: "median", measure: "heart-rate", unit: "/min", epsilonMilli: 100)) == "invalid-query")
        #expect(code(.init(statistic: "mean", measure: "ecg", unit: "mV", epsilonMilli: 100)) == "invalid-query")
        #expect(code(.init(statistic: "mean", measure: "heart-rate", unit: "%", epsilonMilli: 100)) == "invalid-query")
        #expect(code(.init(statistic: "mean", measure: "heart-rate", unit: "/min", lower: 100, upper: 50, epsilonMilli: 100)) == "invalid-query")
        #expect(code(.init(statistic: "histogram", measure: "heart-rate", unit: "/min", bins: 0, epsilonMilli: 100)) == "invalid-query")
        #expect(code(.init(statistic: "count", measure: "heart-rate", unit: "/min", epsilonMilli: 0)) == "invalid-query")
        // A range outside the physical one, or too narrow for normal bin widths (it would trap).
        #expect(code(.init(statistic: "histogram", measure: "heart-rate", unit: "/min", lower: 0, upper: 4.9e-324, bins: 2, epsilonMilli: 100)) == "invalid-query")
        #expect(code(.init(statistic: "mean", measure: "heart-rate", unit: "/min", lower: -1e300, upper: 1e300, epsilonMilli: 100)) == "invalid-query")
        #expect(code(.init(statistic: "mean", measure: "heart-rate", unit: "/min", lower: .nan, upper: 100, epsilonMilli: 100)) == "invalid-query")
        #expect(code(.init(statistic: "count", measure: "heart-rate", unit: "/min", epsilonMilli: 100)) == nil)
    }
}

/// Issue 5 §7 and §8 with real processes: a researcher pays for a dataset; the gateway seals in only
/// the patients whose consent covers it, under pseudonyms of that dataset only; the patients are
/// paid; rows and differentially private answers are served to the researcher alone, each use in
/// the patients' audit logs; the on-chain privacy budget refuses a query once spent; a revocation
/// takes a patient out of every later download.
@Suite("research datasets and data-sharing credits on a real node and gateway", .serialized)
struct ResearchDatasetTests {
    @Test("request, seal, pay, download, query with differential privacy, budget spent, revocation", .timeLimit(.minutes(5)))
    func endToEnd() async throws {
        let dir = temporaryFolder()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let nodeDir = dir + "/node"
        let node = try NodeProcess(dataDir: nodeDir)
        defer { node.terminate() }
        let http = HTTP(base: node.url), chain = try DevChain(dataDir: nodeDir)
        let id = chain.chainID

        // Three patients with an oximeter each; a gateway; a researcher with 90 credits.
        let secrets = (0..<3).map { _ in PatientSecret.generate() }
        var patients: [PrivateKey] = []
        for s in secrets { patients.append(try await ConsentAPITests.enrol(http, chain, s)) }
        let subjects = patients.map { Pseudonym.of($0.publicKey.address) }
        let gatewayKey = PrivateKey.generate(.ed25519)
        let gatewayKeyPath = dir + "/gateway.key.json"
        try JSONEncoder().encode(KeyFile(gatewayKey)).write(to: URL(fileURLWithPath: gatewayKeyPath))
        try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: gatewayKey.publicKey, role: .gateway, organisation: "dev-hospital")))
        let researcher = PrivateKey.generate(.ed25519)
        let researcherPath = dir + "/researcher.key.json", adminPath = dir + "/admin.key.json"
        try JSONEncoder().encode(KeyFile(researcher)).write(to: URL(fileURLWithPath: researcherPath))
        try JSONEncoder().encode(KeyFile(chain.admin)).write(to: URL(fileURLWithPath: adminPath))
        try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: researcher.publicKey, role: .researcher, organisation: "dev-hospital")))
        var cli = try runCLI(["tx", "submit", "--key", adminPath, "--node", node.url, "--wait", "--type", "issue-credits", "--account", researcher.publicKey.address.hex, "--amount", "90"])
        #expect(cli.status == 0, "\(cli.stderr)")
        var devices: [TestDevice] = []
        for (i, p) in patients.enumerated() {
            let d = TestDevice(key: PrivateKey.generate(.ed25519), macKey: nil)
            try await GatewayTests.commit(http, chain, .registerDevice(RegisterDevice(publicKey: d.key!.publicKey, deviceType: "pulse-oximeter", subject: subjects[i],
                                                                                      recipientKey: try ConsentAPITests.agreementKey(secrets[i], "dev-hospital"))), key: p)
            devices.append(d)
        }
        let gw = try GatewayProcess(dataDir: dir + "/gateway", key: gatewayKeyPath, node: node.url, extraArgs: ["--batch-ms", "200"])
        defer { gw.kill9() }
        // Patient 0: 97 and 95; patient 1: 91; patient 2: 99.
        var last: Int64 = 0
        for (i, values) in [[97, 95], [91], [99]].enumerated() {
            for (c, v) in values.enumerated() {
                let r = try await devices[i].upload(gw.http, chainID: id, counter: UInt64(c + 1), body: try GatewayTests.spo2(v))
                #expect(r.status == 202, "\(r.text)")
                last = max(last, Int64(r.json["lastSequence"] as? Int ?? 0))
            }
        }
        _ = try await GatewayTests.waitForProof(gw.http, last, signer: chain.admin, chainID: id)
        // Patients 0 and 1 grant vital signs for research to the researcher and delegate to the
        // gateway; patient 2 grants treatment only.
        let day: Int64 = 86_400_000, now = Int64(Date().timeIntervalSince1970 * 1000)
        var grants: [Hash] = []
        for (i, p) in patients.enumerated() {
            let g = GrantConsent(grantee: .account(researcher.publicKey.address), categories: ["vital-signs"], purposes: [i < 2 ? "research" : "treatment"], expiresMs: now + day)
            grants.append(try await Self.commit(http, chain, .grantConsent(g), key: p))
            try await GatewayTests.commit(http, chain, .setRewrapDelegation(SetRewrapDelegation(gateway: gatewayKey.publicKey.address)), key: p)
        }

        func request(_ access: String, price: UInt64, epsilon: String) throws -> Hash {
            let r = try runCLI(["tx", "submit", "--key", researcherPath, "--node", node.url, "--wait", "--type", "request-dataset", "--gateway", gatewayKey.publicKey.address.hex,
                                "--categories", "vital-signs", "--dataset-access", access, "--price", String(price), "--epsilon", epsilon])
            #expect(r.status == 0, "\(r.stderr)")
            let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            return try #require(Hash(hex: json?["hash"] as? String ?? ""), "\(r.stdout)")
        }
        func sealed(_ dataset: Hash) async throws -> [String: Any] {
            let deadline = Date().addingTimeInterval(40)
            while Date() < deadline {
                let d = try await http.get("/v1/datasets/\(dataset.hex)").json
                if (d["dataset"] as? [String: Any])?["status"] as? String == "sealed" { return d }
                try await Task.sleep(nanoseconds: 200_000_000)
            }
            throw TestFailure("dataset \(dataset) was not sealed")
        }
        func balance(_ k: PrivateKey) throws -> Int {
            let r = try runCLI(["credits", "--node", node.url, "--account", k.publicKey.address.hex])
            return (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["balance"] as? Int ?? -1
        }

        // A rows dataset for 90 credits: held at once, then paid out to the two consenting patients.
        let first = try request("rows", price: 90, epsilon: "1.0")
        #expect(try balance(researcher) == 0)
        let record = try await sealed(first)
        let sealedSubjects = Set((record["subjects"] as? [String] ?? []).compactMap(Hash.init(hex:)))
        #expect(sealedSubjects == Set(subjects[0..<2]), "\(record)")
        #expect(try balance(patients[0]) == 45 && balance(patients[1]) == 45 && balance(patients[2]) == 0)
        cli = try runCLI(["credits", "--node", node.url, "--key", researcherPath])
        #expect(cli.stdout.contains("\"dataset-payment\"") && cli.stdout.contains("\"issued\""), "\(cli.stdout)")

        // The rows: the consenting patients' readings only, under dataset pseudonyms, checked against the sealed root.
        cli = try runCLI(["dataset", "rows", "--gateway", gw.url, "--node", node.url, "--key", researcherPath, first.hex])
        #expect(cli.status == 0, "\(cli.stderr)")
        #expect(cli.stderr.contains("3 rows of 2 patients") && cli.stderr.contains("equals the sealed root"), "\(cli.stderr)")
        let export = try JSONDecoder().decode(Gateway.DatasetExport.self, from: Data(cli.stdout.utf8))
        #expect(export.rows.flatMap { $0.values.map(\.value) }.sorted() == ["91", "95", "97"])
        let pseudonyms = Set(export.rows.map(\.pseudonym))
        #expect(pseudonyms.count == 2)
        // Nothing in it leads back to the chain: no chain pseudonym, account, device or source reference.
        for needle in subjects.map(\.hex) + patients.map(\.publicKey.address.hex) + devices.map(\.id.hex) + ["Patient/", "example"] {
            #expect(!cli.stdout.contains(needle), "the export contains \(needle)")
        }
        // Only the dataset's researcher gets it; a second download by anyone else is refused.
        var r = try await DataReadTests.signedGET(gw.http, "/v1/datasets/\(first.hex)/rows", key: patients[0], chainID: id).0
        #expect(r.status == 403 && r.json["code"] as? String == "unauthorised", "\(r.text)")

        // Differentially private answers, charged to the on-chain budget (ε 1.0) before release.
        cli = try runCLI(["dataset", "query", "--gateway", gw.url, "--node", node.url, "--key", researcherPath, "--statistic", "count",
                          "--measure", "oxygen-saturation", "--unit", "%", "--epsilon", "0.6", first.hex])
        #expect(cli.status == 0, "\(cli.stderr)")
        let answer = try JSONDecoder().decode(Gateway.QueryReply.self, from: Data(cli.stdout.utf8))
        #expect(answer.status == "released" && answer.answer?.count != nil && answer.chargeHeight != nil, "\(cli.stdout)")
        cli = try runCLI(["dataset", "query", "--gateway", gw.url, "--node", node.url, "--key", researcherPath, "--statistic", "mean",
                          "--measure", "oxygen-saturation", "--unit", "%", "--lower", "80", "--upper", "100", "--epsilon", "0.4", first.hex])
        #expect(cli.status == 0 && cli.stdout.contains("\"released\""), "\(cli.stderr) \(cli.stdout)")
        let mean = try JSONDecoder().decode(Gateway.QueryReply.self, from: Data(cli.stdout.utf8)).answer?.mean ?? -1
        #expect((80...100).contains(mean))
        cli = try runCLI(["dataset", "query", "--gateway", gw.url, "--node", node.url, "--key", researcherPath, "--statistic", "count",
                          "--measure", "oxygen-saturation", "--unit", "%", "--epsilon", "0.1", first.hex])
        #expect(cli.status != 0 && cli.stderr.contains("privacy-budget-exhausted"), "\(cli.stderr)")
        // A fresh aggregates dataset (ε 1.0): three concurrent queries of ε 0.4 — exactly two are
        // answered, the third refused at the gateway, and no charge is left for the chain to refuse.
        let fourth = try request("aggregates", price: 0, epsilon: "1.0")
        _ = try await sealed(fourth)
        let query = try JSONEncoder().encode(Gateway.AggregateQuery(statistic: "count", measure: "oxygen-saturation", unit: "%", epsilonMilli: 400))
        let audience = gatewayKey.publicKey.address
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    let target = "/v1/datasets/\(fourth.hex)/query"
                    let h = SignedRequest.headers(key: researcher, chainID: id, audience: audience, method: "POST", target: target, body: Array(query),
                                                  nowMs: Int64(Date().timeIntervalSince1970 * 1000), nonce: SignedRequest.newNonce())
                    return try await gw.http.send("POST", target, body: query, headers: h).status
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }.sorted()
        }
        #expect(statuses == [200, 200, 409], "\(statuses)")
        #expect(try await gw.http.get("/v1/status").json["refusedTransactions"] as? Int == 0)
        let spent = try await http.get("/v1/datasets/\(first.hex)").json
        #expect((spent["dataset"] as? [String: Any])?["epsilonSpentMilli"] as? Int == 1_000 && (spent["charges"] as? [Any])?.count == 2, "\(spent)")
        // The chain refuses an overspending charge even from the gateway itself. (The running
        // gateway signs with the same key — its audit runs — so a nonce may be taken meanwhile:
        // ask again.)
        for _ in 0..<20 {
            let overspend = Transaction(chainID: id, sender: gatewayKey.publicKey.address, signerKey: gatewayKey.publicKey,
                                        nonce: UInt64(try await http.get("/v1/accounts/\(gatewayKey.publicKey.address.hex)").json["nextNonce"] as? Int ?? 0),
                                        payload: .chargePrivacyBudget(ChargePrivacyBudget(dataset: first, epsilonMilli: 1, queryDigest: .zero))).signed(with: gatewayKey)
            r = try await http.post("/v1/transactions", try chain.json(overspend))
            guard ["nonce-too-low", "nonce-too-high"].contains(r.json["code"] as? String ?? "") else { break }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        #expect(r.status == 422 && r.json["code"] as? String == "privacy-budget-exhausted", "\(r.text)")

        // Each use is in the patients' audit logs, naming the dataset; patient 2's log has none (only
        // the custodian's proof read above).
        func auditCodes(_ i: Int) async throws -> [String] {
            let target = "/v1/patients/\(subjects[i].hex)/audit"
            let a = try await DataReadTests.signedGET(gw.http, target, key: patients[i], chainID: id).0
            return ((a.json["entries"] as? [[String: Any]]) ?? []).compactMap { ($0["entry"] as? [String: Any])?["code"] as? String }
        }
        #expect(try await auditCodes(0) == ["dataset-rows"] + Array(repeating: "dataset-aggregate", count: 4))
        #expect(try await auditCodes(2).allSatisfy { !$0.hasPrefix("dataset") })

        // A second dataset gives the same patients other pseudonyms; after patient 1 revokes, the
        // first dataset's download leaves patient 1 out.
        let second = try request("rows", price: 0, epsilon: "0")
        _ = try await sealed(second)
        cli = try runCLI(["dataset", "rows", "--gateway", gw.url, "--node", node.url, "--key", researcherPath, second.hex])
        let secondExport = try JSONDecoder().decode(Gateway.DatasetExport.self, from: Data(cli.stdout.utf8))
        #expect(Set(secondExport.rows.map(\.pseudonym)).isDisjoint(with: pseudonyms) && secondExport.patients == 2)
        try await GatewayTests.commit(http, chain, .revokeConsent(RevokeConsent(grant: grants[1])), key: patients[1])
        cli = try runCLI(["dataset", "rows", "--gateway", gw.url, "--node", node.url, "--key", researcherPath, first.hex])
        #expect(cli.status == 0 && cli.stderr.contains("2 rows of 1 patients") && cli.stderr.contains("1 patients withdrawn"), "\(cli.stderr)")

        // An aggregates-only dataset never gives out rows.
        let third = try request("aggregates", price: 0, epsilon: "0.5")
        _ = try await sealed(third)
        r = try await DataReadTests.signedGET(gw.http, "/v1/datasets/\(third.hex)/rows", key: researcher, chainID: id).0
        #expect(r.status == 403 && r.json["code"] as? String == "aggregates-only", "\(r.text)")
    }

    static func commit(_ node: HTTP, _ chain: DevChain, _ payload: TransactionPayload, key: PrivateKey) async throws -> Hash {
        let nonce = UInt64(try await node.get("/v1/accounts/\(key.publicKey.address.hex)").json["nextNonce"] as? Int ?? 0)
        let tx = Transaction(chainID: chain.chainID, sender: key.publicKey.address, signerKey: key.publicKey, nonce: nonce, payload: payload).signed(with: key)
        let r = try await node.post("/v1/transactions?wait=commit", try chain.json(tx))
        guard r.status == 200 else { throw TestFailure("\(payload.kind): HTTP \(r.status) \(r.text)") }
        return tx.hash
    }
}
