import Foundation
import IoMTCore
import Testing

extension ApplicationScenarios {
    /// Issue 6 §1 (first part) over the HTTP API of a four-validator devnet: a manufacturer admitted by governance
    /// registers a batch, custody moves to a hospital with both signatures, a nurse gives two doses,
    /// the trace finds the hospital and both patients, a scan of an unknown lot is flagged, and after a
    /// recall the batch's scan is flagged and no dose can be given.
    @Suite("supply chain over the HTTP API of a four-validator devnet")
    struct SupplyChainAPITests {
        /// A four-validator devnet where governance admitted a manufacturer, "pharma", and its admin (the
        /// devnet's admin quorum is 1).
        static func manufacturerChain(_ dir: String) async throws -> (ScenarioConsortium, HTTP, DevChain, PrivateKey) {
            let (node, http, chain) = try startConsortium()
            let pharmaAdmin = PrivateKey.generate(.ed25519)
            do {
                try await GatewayTests.commit(http, chain, .proposeGovernance(.addOrganisation(Organisation(id: "pharma", name: "Pharma", kind: "manufacturer"))))
                try await GatewayTests.commit(http, chain, .proposeGovernance(.addAdmin(publicKey: pharmaAdmin.publicKey, organisation: "pharma", label: "pharma admin")))
            } catch {
                node.terminate()
                throw error
            }
            return (node, http, chain, pharmaAdmin)
        }

        @Test("register, transfer, administer, trace, scan, recall", .timeLimit(.minutes(3)))
        func flow() async throws {
            let dir = temporaryFolder()
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let (node, http, chain, pharmaAdmin) = try await Self.manufacturerChain(dir)
            defer { node.terminate() }
            let id = chain.chainID
            // A nurse and two patients at the hospital.
            let nurse = PrivateKey.generate(.ed25519)
            try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: nurse.publicKey, role: .practitioner, organisation: chain.hospital)))
            try await GatewayTests.commit(http, chain, .attestPractitioner(AttestPractitioner(account: nurse.publicKey.address, profession: "nurse", licenceHash: Hash.sha256([1]))))
            let patients = [try await ConsentAPITests.enrol(http, chain, PatientSecret.generate()), try await ConsentAPITests.enrol(http, chain, PatientSecret.generate())]
            let subjects = patients.map { Pseudonym.of($0.publicKey.address) }

            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let registration = RegisterBatch(gtin: "09506000134352", lot: "COVID-7", productCode: "CVX208", units: 10, serialsRoot: Hash.sha256([2]),
                                             manufacturedMs: now - 86_400_000, expiresMs: now + 180 * 86_400_000, minCentiC: -8_000, maxCentiC: -6_000)
            try await GatewayTests.commit(http, chain, .registerBatch(registration), key: pharmaAdmin)
            let batch = registration.id
            // The hospital's admin countersigns taking 4 units.
            let until = now + 3_600_000
            let message = TransferCustody.message(chainID: id, batch: batch, units: 4, sender: pharmaAdmin.publicKey.address, receiver: chain.admin.publicKey.address, sequence: 1, validUntilMs: until)
            try await GatewayTests.commit(http, chain, .transferCustody(TransferCustody(batch: batch, units: 4, receiver: chain.admin.publicKey.address, sequence: 1,
                                                                                        validUntilMs: until, receiverSignature: chain.admin.sign(message))), key: pharmaAdmin)
            for (i, s) in subjects.enumerated() {
                try await GatewayTests.commit(http, chain, .administerDose(AdministerDose(batch: batch, subject: s, serialHash: Hash.sha256(Array("COVID-7-\(i)".utf8)), atMs: now)), key: nurse)
            }

            var r = try await http.get("/v1/batches/\(batch.hex)")
            #expect(r.status == 200, "\(r.text)")
            let holdings = r.json["holdings"] as? [String: Int]
            #expect(holdings == ["pharma": 6, chain.hospital: 2], "\(r.text)")
            #expect((r.json["transfers"] as? [Any])?.count == 1 && r.json["recalled"] as? Bool == false)
            r = try await http.get("/v1/batches/\(batch.hex)/trace")
            let trace = r.json["trace"] as? [String: Any] ?? [:]
            #expect(Set(trace["organisations"] as? [String] ?? []) == ["pharma", chain.hospital], "\(r.text)")
            #expect(Set((trace["patients"] as? [String] ?? []).compactMap(Hash.init(hex:))) == Set(subjects) && trace["administrations"] as? Int == 2)
            #expect(trace["truncated"] as? Bool == false)

            r = try await http.get("/v1/scan?gtin=09506000134352&lot=COVID-7")
            #expect(r.json["known"] as? Bool == true && r.json["flagged"] as? Bool == false, "\(r.text)")
            // The pack's code as a scanner reads it: the raw DataMatrix string (GS-separated) and a
            // Digital Link; a label whose expiry is not the lot's is flagged.
            let yymmdd = DateFormatter()
            yymmdd.dateFormat = "yyMMdd"
            yymmdd.timeZone = TimeZone(identifier: "UTC")
            let expiry = yymmdd.string(from: Date(timeIntervalSince1970: Double(registration.expiresMs) / 1000))
            let wrong = yymmdd.string(from: Date(timeIntervalSince1970: Double(registration.expiresMs) / 1000 + 40 * 86_400))
            let raw = "]d2" + "0109506000134352" + "17" + expiry + "10COVID-7" + "\u{1D}" + "21COVID-7-5"
            var scanned = try runCLI(["batch", "scan", "--node", node.url, "--code", raw])
            #expect(scanned.status == 0 && scanned.stdout.contains("\"known\":true") && scanned.stdout.contains("\"serial\":\"COVID-7-5\""), "\(scanned.stdout) \(scanned.stderr)")
            r = try await http.get("/v1/scan?code=" + "https://id.gs1.org/01/09506000134352/10/COVID-7?17=\(wrong)".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
            #expect(r.json["flagged"] as? Bool == true && (r.json["reason"] as? String ?? "").contains("expiry"), "\(r.text)")
            r = try await http.get("/v1/scan?code=%2801%2909506000134352")
            #expect(r.status == 400 && r.json["code"] as? String == "invalid-code", "\(r.text)")
            scanned = try runCLI(["batch", "scan", "--node", node.url, "--code", "(01)09506000134352(10)COVID-7(99)X"])
            #expect(scanned.status != 0 && scanned.stderr.contains("(99)"), "\(scanned.stderr)")
            r = try await http.get("/v1/scan?gtin=09506000134352&lot=FAKE-1")
            #expect(r.json["known"] as? Bool == false && r.json["flagged"] as? Bool == true && (r.json["reason"] as? String ?? "").contains("counterfeit"), "\(r.text)")
            r = try await http.get("/v1/scan?gtin=09506000134353&lot=COVID-7")
            #expect(r.status == 400 && r.json["code"] as? String == "invalid-query")
            #expect(try await http.get("/v1/batches/\(Hash.sha256([3]).hex)").status == 404)

            // The consortium assigns pharma its GS1 company prefix: scans name the brand owner, and
            // no other manufacturer registers a GTIN under it. A lot pharma registered under a
            // prefix later assigned to another manufacturer (the devnet's org-3) is flagged.
            let foreign = RegisterBatch(gtin: "5901234123457", lot: "F-1", productCode: "CVX208", units: 5, serialsRoot: Hash.sha256([5]),
                                        manufacturedMs: now - 86_400_000, expiresMs: now + 180 * 86_400_000, minCentiC: 200, maxCentiC: 800)
            try await GatewayTests.commit(http, chain, .registerBatch(foreign), key: pharmaAdmin)
            try await GatewayTests.commit(http, chain, .proposeGovernance(.assignGS1Prefix(prefix: "950600", organisation: "pharma")))
            try await GatewayTests.commit(http, chain, .proposeGovernance(.assignGS1Prefix(prefix: "590123", organisation: "org-3")))
            r = try await http.get("/v1/scan?gtin=09506000134352&lot=COVID-7")
            #expect(r.json["brandOwner"] as? String == "pharma" && r.json["gs1Prefix"] as? String == "950600" && r.json["flagged"] as? Bool == false, "\(r.text)")
            r = try await http.get("/v1/scan?gtin=5901234123457&lot=F-1")
            #expect(r.json["flagged"] as? Bool == true && (r.json["reason"] as? String ?? "").contains("belongs to org-3"), "\(r.text)")
            var again = foreign
            again.lot = "F-2"
            await #expect(throws: TestFailure.self) { try await GatewayTests.commit(http, chain, .registerBatch(again), key: pharmaAdmin) }

            // A reaction reported by the second patient; both records export as FHIR.
            try await GatewayTests.commit(http, chain, .reportAdverseEvent(ReportAdverseEvent(batch: batch, subject: subjects[1], reactionCode: "snomed:39579001",
                                                                                              severity: "severe", onsetMs: now)), key: patients[1])
            r = try await http.get("/v1/batches/\(batch.hex)/immunizations")
            let immunizations = (r.json["entry"] as? [[String: Any]] ?? []).compactMap { $0["resource"] as? [String: Any] }
            #expect(r.headers["content-type"]?.hasPrefix("application/fhir+json") == true && immunizations.count == 2, "\(r.text)")
            #expect(immunizations.allSatisfy { $0["resourceType"] as? String == "Immunization" && $0["lotNumber"] as? String == "COVID-7" && $0["status"] as? String == "completed" })
            #expect(((immunizations.first?["vaccineCode"] as? [String: Any])?["coding"] as? [[String: Any]])?.first?["code"] as? String == "208")
            r = try await http.get("/v1/batches/\(batch.hex)/adverse-events")
            let events = (r.json["entry"] as? [[String: Any]] ?? []).compactMap { $0["resource"] as? [String: Any] }
            #expect(events.count == 1 && events[0]["resourceType"] as? String == "AdverseEvent" && events[0]["actuality"] as? String == "actual", "\(r.text)")
            #expect(((events[0]["subject"] as? [String: Any])?["identifier"] as? [String: Any])?["value"] as? String == subjects[1].hex)
            #expect(((events[0]["seriousness"] as? [String: Any])?["coding"] as? [[String: Any]])?.first?["code"] as? String == "Serious")
            #expect(r.json["total"] == nil && r.json["type"] as? String == "collection")
            // From the command line: the first patient reports a reaction itself; the FHIR exports.
            let patientPath = dir + "/patient-0.key.json"
            try JSONEncoder().encode(KeyFile(patients[0])).write(to: URL(fileURLWithPath: patientPath))
            var cmd = try runCLI(["batch", "adverse-event", "--node", node.url, "--key", patientPath, "--batch", batch.hex, "--subject", subjects[0].hex,
                                  "--reaction", "meddra:10037087", "--severity", "mild", "--hours-ago", "2"])
            #expect(cmd.status == 0, "\(cmd.stderr)")
            cmd = try runCLI(["batch", "adverse-events", "--node", node.url, batch.hex])
            #expect(cmd.status == 0 && cmd.stdout.components(separatedBy: "\"resourceType\":\"AdverseEvent\"").count == 3, "\(cmd.stdout)")
            cmd = try runCLI(["batch", "immunizations", "--node", node.url, batch.hex])
            #expect(cmd.status == 0 && cmd.stdout.components(separatedBy: "\"resourceType\":\"Immunization\"").count == 3, "\(cmd.stdout)")

            // The same steps from the command line: register from a serials file, countersign, transfer, scan.
            let pharmaPath = dir + "/pharma.key.json", hospitalPath = dir + "/hospital.key.json", serials = dir + "/serials.txt"
            try JSONEncoder().encode(KeyFile(pharmaAdmin)).write(to: URL(fileURLWithPath: pharmaPath))
            try JSONEncoder().encode(KeyFile(chain.admin)).write(to: URL(fileURLWithPath: hospitalPath))
            try (1...5).map { "SN-\($0)" }.joined(separator: "\n").write(toFile: serials, atomically: true, encoding: .utf8)
            var cli = try runCLI(["batch", "register", "--node", node.url, "--key", pharmaPath, "--gtin", "4006381333931", "--lot", "CLI-1", "--product-code", "CVX207", "--serials", serials])
            #expect(cli.status == 0, "\(cli.stderr)")
            let cliBatch = GS1.batchID(gtin: "4006381333931", lot: "CLI-1")
            #expect(cli.stderr.contains(cliBatch.hex))
            cli = try runCLI(["batch", "countersign", "--node", node.url, "--key", hospitalPath, "--batch", cliBatch.hex, "--units", "3", "--sender", pharmaAdmin.publicKey.address.hex])
            #expect(cli.status == 0, "\(cli.stderr)")
            let signed = cli.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
            let signature = signed.first ?? "", validUntil = signed.count > 1 ? signed[1] : ""
            #expect(Int64(validUntil) != nil, "\(cli.stdout)")
            // Countersigned for 3 units: a transfer of 4 with it is refused.
            cli = try runCLI(["batch", "transfer", "--node", node.url, "--key", pharmaPath, "--batch", cliBatch.hex, "--units", "4", "--receiver", chain.admin.publicKey.address.hex, "--receiver-signature", signature, "--valid-until", validUntil])
            #expect(cli.status != 0 && cli.stderr.contains("signature"), "\(cli.stderr)")
            cli = try runCLI(["batch", "transfer", "--node", node.url, "--key", pharmaPath, "--batch", cliBatch.hex, "--units", "3", "--receiver", chain.admin.publicKey.address.hex, "--receiver-signature", signature, "--valid-until", validUntil])
            #expect(cli.status == 0, "\(cli.stderr)")
            cli = try runCLI(["batch", "show", "--node", node.url, cliBatch.hex])
            #expect(cli.stdout.contains("\"\(chain.hospital)\" : 3") || cli.stdout.contains("\"\(chain.hospital)\":3"), "\(cli.stdout)")
            #expect(try runCLI(["batch", "scan", "--node", node.url, "--gtin", "4006381333931", "--lot", "CLI-1"]).status == 0)
            #expect(try runCLI(["batch", "scan", "--node", node.url, "--gtin", "4006381333931", "--lot", "CLI-2"]).status == 3)

            // The batch's raw-material source and release tests; a failed test flags its lot at a scan.
            try await GatewayTests.commit(http, chain, .registerMaterialSource(RegisterMaterialSource(source: Hash.sha256([7]), materialCode: "cas:50-99-7", supplierCode: "SUP-42",
                                                                                                      originCountry: "DE", certificateHash: Hash.sha256([8]))), key: pharmaAdmin)
            try await GatewayTests.commit(http, chain, .linkMaterialSource(LinkMaterialSource(batch: batch, source: Hash.sha256([7]))), key: pharmaAdmin)
            try await GatewayTests.commit(http, chain, .recordBatchTest(RecordBatchTest(batch: batch, testCode: "sterility", passed: true, reportHash: Hash.sha256([9]), atMs: now)), key: pharmaAdmin)
            try await GatewayTests.commit(http, chain, .recordBatchTest(RecordBatchTest(batch: cliBatch, testCode: "potency", passed: false, reportHash: Hash.sha256([10]), atMs: now)), key: pharmaAdmin)
            r = try await http.get("/v1/batches/\(batch.hex)")
            #expect((r.json["sources"] as? [[String: Any]])?.first?["organisation"] as? String == "pharma" && (r.json["tests"] as? [Any])?.count == 1, "\(r.text)")
            r = try await http.get("/v1/batches/\(batch.hex)/trace")
            #expect(((r.json["trace"] as? [String: Any])?["sources"] as? [String]) == [Hash.sha256([7]).hex], "\(r.text)")
            r = try await http.get("/v1/scan?gtin=4006381333931&lot=CLI-1")
            #expect(r.json["flagged"] as? Bool == true && (r.json["reason"] as? String ?? "").contains("potency"), "\(r.text)")

            // A hospital waiting on the recall feed is told, with who holds units.
            async let notice = http.get("/v1/recalls?after=0&waitMs=20000")
            try await Task.sleep(nanoseconds: 300_000_000)
            try await GatewayTests.commit(http, chain, .recallBatch(RecallBatch(batch: batch, reasonCode: "cold-chain-excursion")), key: pharmaAdmin)
            let told = try await notice
            let first = (told.json["recalls"] as? [[String: Any]])?.first
            #expect(first?["batch"] as? String == batch.hex && first?["reasonCode"] as? String == "cold-chain-excursion", "\(told.text)")
            #expect(first?["holders"] as? [String: Int] == ["pharma": 6, chain.hospital: 2] && first?["administrations"] as? Int == 2, "\(told.text)")
            cmd = try runCLI(["batch", "recalls", "--node", node.url])
            #expect(cmd.status == 0 && cmd.stdout.contains(batch.hex) && cmd.stdout.contains("cold-chain-excursion"), "\(cmd.stdout) \(cmd.stderr)")
            r = try await http.get("/v1/scan?gtin=09506000134352&lot=COVID-7")
            #expect(r.json["recalled"] as? Bool == true && r.json["flagged"] as? Bool == true && (r.json["reason"] as? String ?? "").contains("cold-chain-excursion"), "\(r.text)")
            // A dose from a recalled batch is refused with a reason, and changes nothing.
            let tx = Transaction(chainID: id, sender: nurse.publicKey.address, signerKey: nurse.publicKey,
                                 nonce: UInt64(try await http.get("/v1/accounts/\(nurse.publicKey.address.hex)").json["nextNonce"] as? Int ?? 0),
                                 payload: .administerDose(AdministerDose(batch: batch, subject: subjects[0], serialHash: Hash.sha256([4]), atMs: now))).signed(with: nurse)
            r = try await http.post("/v1/transactions", try chain.json(tx))
            #expect(r.status == 422 && (r.json["detail"] as? String ?? "").contains("recalled"), "\(r.text)")
            #expect(try await http.get("/v1/batches/\(batch.hex)").json["holdings"] as? [String: Int] == ["pharma": 6, chain.hospital: 2])
            // Every validator committed the same chain, and answers alike.
            try await node.agree()
            try await node.sameAnswer("/v1/batches/\(batch.hex)")
            try await node.sameAnswer("/v1/batches/\(batch.hex)/trace")
        }

        /// A logger reading of the batch's fridge, in FHIR (what the simulator's loggers send).
        static func fridgeReading(_ celsius: Double, atMs: Int64) -> [UInt8] {
            let time = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(atMs) / 1000))
            return Array("""
                {"resourceType":"Observation","status":"final","code":{"coding":[{"system":"urn:iomtchain:observation","code":"storage-temperature"}]},\
                "effectiveDateTime":"\(time)","valueQuantity":{"value":\(celsius),"system":"http://unitsofmeasure.org","code":"Cel"}}
                """.utf8)
        }

        @Test("cold chain through a real gateway: a logger placed with held units reports an excursion at once, the units are quarantined and listed; serial scans catch a foreign serial and a copied label",
              .timeLimit(.minutes(3)))
        func coldChainAndSerials() async throws {
            let dir = temporaryFolder()
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let (node, http, chain, pharmaAdmin) = try await Self.manufacturerChain(dir)
            defer { node.terminate() }
            // The hospital's gateway and its pharmacy fridge's logger.
            let gatewayKey = PrivateKey.generate(.ed25519), loggerKey = PrivateKey.generate(.ed25519)
            let keyPath = dir + "/gateway.key.json"
            try JSONEncoder().encode(KeyFile(gatewayKey)).write(to: URL(fileURLWithPath: keyPath))
            try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: gatewayKey.publicKey, role: .gateway, organisation: chain.hospital)))
            try await GatewayTests.commit(http, chain, .registerDevice(RegisterDevice(publicKey: loggerKey.publicKey, deviceType: "cold-chain-logger", place: "pharmacy-fridge-2")))
            let logger = TestDevice(key: loggerKey, macKey: nil)

            let serials = (1...10).map { "SN-\($0)" }
            let serialsPath = dir + "/serials.txt"
            try serials.joined(separator: "\n").write(toFile: serialsPath, atomically: true, encoding: .utf8)
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let registration = RegisterBatch(gtin: "09506000134352", lot: "FRIDGE-1", productCode: "CVX208", units: 10, serialsRoot: MerkleTree.root(leaves: serials.map { Array($0.utf8) }),
                                             manufacturedMs: now - 86_400_000, expiresMs: now + 180 * 86_400_000, minCentiC: 200, maxCentiC: 800)
            try await GatewayTests.commit(http, chain, .registerBatch(registration), key: pharmaAdmin)
            let batch = registration.id
            let until = now + 3_600_000
            let message = TransferCustody.message(chainID: chain.chainID, batch: batch, units: 6, sender: pharmaAdmin.publicKey.address, receiver: chain.admin.publicKey.address, sequence: 1, validUntilMs: until)
            try await GatewayTests.commit(http, chain, .transferCustody(TransferCustody(batch: batch, units: 6, receiver: chain.admin.publicKey.address, sequence: 1,
                                                                                        validUntilMs: until, receiverSignature: chain.admin.sign(message))), key: pharmaAdmin)
            // The hospital's admin places the logger with 4 of its 6 units, from the command line (7 is more than it holds).
            let hospitalPath = dir + "/hospital.key.json"
            try JSONEncoder().encode(KeyFile(chain.admin)).write(to: URL(fileURLWithPath: hospitalPath))
            var placed = try runCLI(["batch", "attach-logger", "--node", node.url, "--key", hospitalPath, "--device", logger.id.hex, "--batch", batch.hex, "--units", "7"])
            #expect(placed.status != 0 && placed.stderr.contains("holds 6"), "\(placed.stderr)")
            let fridgePath = dir + "/fridge.txt"  // the four vials put in the fridge, by serial
            try ["SN-5", "SN-6", "SN-7", "SN-8"].joined(separator: "\n").write(toFile: fridgePath, atomically: true, encoding: .utf8)
            placed = try runCLI(["batch", "attach-logger", "--node", node.url, "--key", hospitalPath, "--device", logger.id.hex, "--batch", batch.hex, "--units", "4", "--serials", fridgePath])
            #expect(placed.status == 0, "\(placed.stderr)")

            let gw = try GatewayProcess(dataDir: dir + "/gateway", key: keyPath, node: node.url, extraArgs: ["--batch-ms", "200"])
            var r = try await logger.upload(gw.http, chainID: chain.chainID, counter: 1, body: Self.fridgeReading(5.1, atMs: Int64(Date().timeIntervalSince1970 * 1000)))
            #expect(r.status == 202 && (r.json["alerts"] as? [Any])?.isEmpty == true, "\(r.text)")
            r = try await logger.upload(gw.http, chainID: chain.chainID, counter: 2, body: Self.fridgeReading(12.4, atMs: Int64(Date().timeIntervalSince1970 * 1000)))
            let alerts = r.json["alerts"] as? [[String: Any]] ?? []
            #expect(r.status == 202 && alerts.count == 1, "\(r.text)")
            let event = alerts.first?["event"] as? [String: Any] ?? alerts.first ?? [:]
            #expect(event["rule"] as? String == "cold-chain-excursion" && event["value"] as? String == "12.40", "\(r.text)")
            // Still warm: no second excursion (hysteresis); the gateway reports the first on-chain.
            r = try await logger.upload(gw.http, chainID: chain.chainID, counter: 3, body: Self.fridgeReading(9.0, atMs: Int64(Date().timeIntervalSince1970 * 1000)))
            #expect((r.json["alerts"] as? [Any])?.isEmpty == true, "\(r.text)")
            var view: [String: Any] = [:]
            for _ in 0..<300 {
                view = try await http.get("/v1/batches/\(batch.hex)").json
                if (view["excursions"] as? [Any])?.isEmpty == false { break }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            #expect(view["quarantined"] as? [String: Int] == [chain.hospital: 4], "\(view)\n\(gw.log.suffix(2_000))")
            #expect((view["holdings"] as? [String: Int])?[chain.hospital] == 2)
            let excursion = (view["excursions"] as? [[String: Any]])?.first ?? [:]
            #expect(excursion["reporter"] as? String == gatewayKey.publicKey.address.hex && excursion["place"] as? String == "pharmacy-fridge-2" && excursion["quarantined"] as? Int == 4, "\(excursion)")
            #expect(((excursion["report"] as? [String: Any])?["centiC"] as? Int) == 1_240)
            let storage = (view["storage"] as? [[String: Any]])?.first ?? [:]
            #expect(storage["units"] as? Int == 0 && storage["excursions"] as? Int == 1, "\(storage)")
            // Placed by serial: each of those vials is flagged at a scan.
            r = try await http.get("/v1/scan?gtin=09506000134352&lot=FRIDGE-1&serial=SN-6")
            #expect(r.json["quarantinedByExcursion"] as? Int == 1 && r.json["flagged"] as? Bool == true && (r.json["reason"] as? String ?? "").contains("quarantined"), "\(r.text)")
            // Placed again (with 1 of the 2 units left) while the fridge is still warm: a new watch, so a new excursion.
            placed = try runCLI(["batch", "attach-logger", "--node", node.url, "--key", hospitalPath, "--device", logger.id.hex, "--batch", batch.hex, "--units", "1"])
            #expect(placed.status == 0, "\(placed.stderr)")
            try await Task.sleep(nanoseconds: 2_200_000_000)  // the gateway's cache of the logger's placement (2 s)
            r = try await logger.upload(gw.http, chainID: chain.chainID, counter: 4, body: Self.fridgeReading(10.0, atMs: Int64(Date().timeIntervalSince1970 * 1000)))
            let states = (r.json["alerts"] as? [[String: Any]] ?? []).compactMap { ($0["event"] as? [String: Any])?["state"] as? String }
            #expect(states == ["cleared", "raised"], "\(r.text)")
            for _ in 0..<300 {
                view = try await http.get("/v1/batches/\(batch.hex)").json
                if (view["excursions"] as? [Any])?.count == 2 { break }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            #expect(view["quarantined"] as? [String: Int] == [chain.hospital: 5], "\(view)")
            r = try await http.get("/v1/scan?gtin=09506000134352&lot=FRIDGE-1")
            #expect(r.json["excursions"] as? Int == 2 && r.json["quarantinedUnits"] as? Int == 5 && r.json["flagged"] as? Bool == false, "\(r.text)")

            // Serials: the manufacturer's proof of SN-3 verifies; the same proof for a serial not in the lot does not.
            var cli = try runCLI(["batch", "prove-serial", "--serials", serialsPath, "--serial", "SN-3"])
            #expect(cli.status == 0, "\(cli.stderr)")
            let proof = cli.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            r = try await http.get("/v1/scan?gtin=09506000134352&lot=FRIDGE-1&serial=SN-3&proof=\(proof)")
            #expect(r.json["serialVerified"] as? Bool == true && r.json["administered"] as? Bool == false && r.json["flagged"] as? Bool == false, "\(r.text)")
            r = try await http.get("/v1/scan?gtin=09506000134352&lot=FRIDGE-1&serial=SN-33&proof=\(proof)")
            #expect(r.json["serialVerified"] as? Bool == false && r.json["flagged"] as? Bool == true && (r.json["reason"] as? String ?? "").contains("counterfeit"), "\(r.text)")
            #expect(try await http.get("/v1/scan?gtin=09506000134352&lot=FRIDGE-1&serial=SN-3&proof=zz").status == 400)
            // SN-3 given: a second label with SN-3 is a copy.
            let nurse = PrivateKey.generate(.ed25519)
            try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: nurse.publicKey, role: .practitioner, organisation: chain.hospital)))
            try await GatewayTests.commit(http, chain, .attestPractitioner(AttestPractitioner(account: nurse.publicKey.address, profession: "nurse", licenceHash: Hash.sha256([1]))))
            let patient = try await ConsentAPITests.enrol(http, chain, PatientSecret.generate())
            try await GatewayTests.commit(http, chain, .administerDose(AdministerDose(batch: batch, subject: Pseudonym.of(patient.publicKey.address), serialHash: Hash.sha256(Array("SN-3".utf8)),
                                                                                      atMs: now)), key: nurse)
            cli = try runCLI(["batch", "scan", "--node", node.url, "--gtin", "09506000134352", "--lot", "FRIDGE-1", "--serial", "SN-3", "--proof", proof])
            #expect(cli.status == 3 && cli.stdout.contains("copied label"), "\(cli.stdout) \(cli.stderr)")
            // A vial quarantined by serial is refused as such.
            do {
                try await GatewayTests.commit(http, chain, .administerDose(AdministerDose(batch: batch, subject: Pseudonym.of(patient.publicKey.address), serialHash: Hash.sha256(Array("SN-5".utf8)),
                                                                                          atMs: now)), key: nurse)
                Issue.record("a unit quarantined by serial was given")
            } catch {
                #expect("\(error)".contains("quarantined after cold-chain excursion 1"), "\(error)")
            }
            // One usable unit was left, and it was given: the quarantined five cannot be.
            await #expect(throws: TestFailure.self) {
                try await GatewayTests.commit(http, chain, .administerDose(AdministerDose(batch: batch, subject: Pseudonym.of(patient.publicKey.address), serialHash: Hash.sha256(Array("SN-4".utf8)),
                                                                                          atMs: now)), key: nurse)
            }
            // Every validator committed the same chain, and answers alike.
            try await node.agree()
            try await node.sameAnswer("/v1/batches/\(batch.hex)")
            try await node.sameAnswer("/v1/scan?gtin=09506000134352&lot=FRIDGE-1")
        }
    }
}
