import Crypto
import Foundation
import IoMTAPI
import IoMTCore
import IoMTGateway
import Testing

/// Issue 5 against a real node over HTTP: patients enrolled under pseudonyms, practitioners
/// attested, grants by scope, revocation, expiry and emergency access, decided by the consent
/// contract at the latest committed height; FHIR Consent out and in.
@Suite("Consent over the HTTP API of a real node")
struct ConsentAPITests {
    /// Everyone in the table, at the chain's hospital.
    struct People {
        let patient: PrivateKey, pseudonym: Hash
        let relative: PrivateKey
        let doctor: PrivateKey, nurse: PrivateKey, unattested: PrivateKey, researcher: PrivateKey
        var readers: [(String, PrivateKey)] {
            [("patient", patient), ("relative", relative), ("doctor", doctor), ("nurse", nurse), ("unattested", unattested), ("researcher", researcher)]
        }
    }

    static let categories = ["vital-signs", "ecg", "laboratory", "location"]
    static let purposes = ["treatment", "research", "family-care"]

    static func agreementKey(_ secret: PatientSecret, _ org: String) throws -> X25519Key {
        try X25519Key(bytes: Array(secret.agreementKey(at: org).publicKey.rawRepresentation))
    }

    static func enrol(_ node: HTTP, _ chain: DevChain, _ secret: PatientSecret) async throws -> PrivateKey {
        let key = secret.signingKey(at: chain.hospital)
        try await GatewayTests.commit(node, chain, .registerPatient(RegisterPatient(signedBy: key, agreementKey: try agreementKey(secret, chain.hospital), chainID: chain.chainID, organisation: chain.hospital)))
        return key
    }

    static func setUp(_ node: HTTP, _ chain: DevChain) async throws -> People {
        let patient = try await enrol(node, chain, PatientSecret.generate())
        let relative = try await enrol(node, chain, PatientSecret.generate())
        let doctor = PrivateKey.generate(.ed25519), nurse = PrivateKey.generate(.p256), unattested = PrivateKey.generate(.ed25519), researcher = PrivateKey.generate(.ed25519)
        for k in [doctor, nurse, unattested] {
            try await GatewayTests.commit(node, chain, .registerAccount(RegisterAccount(publicKey: k.publicKey, role: .practitioner, organisation: chain.hospital)))
        }
        try await GatewayTests.commit(node, chain, .registerAccount(RegisterAccount(publicKey: researcher.publicKey, role: .researcher, organisation: chain.hospital)))
        for (k, p) in [(doctor, "doctor"), (nurse, "nurse")] {
            try await GatewayTests.commit(node, chain, .attestPractitioner(AttestPractitioner(account: k.publicKey.address, profession: p, licenceHash: Hash.sha256(Array("licence of \(p)".utf8)))))
        }
        return People(patient: patient, pseudonym: Pseudonym.of(patient.publicKey.address), relative: relative, doctor: doctor, nurse: nurse, unattested: unattested, researcher: researcher)
    }

    /// Asks the node about every reader × category × purpose and compares with `allowed`, the
    /// expected "reader category purpose" triples (everything else must be denied).
    static func checkTable(_ node: HTTP, _ p: People, state: String, allowed: Set<String>, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        var mismatches: [String] = []
        for (name, reader) in p.readers {
            for c in categories {
                for purpose in purposes {
                    let r = try await node.get("/v1/access?reader=\(reader.publicKey.address.hex)&subject=\(p.pseudonym.hex)&category=\(c)&purpose=\(purpose)&from=1000&to=2000")
                    guard r.status == 200, let got = r.json["allowed"] as? Bool else { mismatches.append("\(name) \(c) \(purpose): HTTP \(r.status) \(r.text)"); continue }
                    let want = allowed.contains("\(name) \(c) \(purpose)")
                    if got != want { mismatches.append("\(name) \(c) \(purpose): got \(got ? "allow" : "deny") (\(r.json["reason"] ?? "")), want \(want ? "allow" : "deny")") }
                    if !got, (r.json["reason"] as? String ?? "").isEmpty { mismatches.append("\(name) \(c) \(purpose): a denial without a reason") }
                }
            }
        }
        #expect(mismatches.isEmpty, "\(state): \(mismatches.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }

    /// Triples for every category and purpose of one reader.
    static func everything(_ reader: String) -> Set<String> {
        Set(categories.flatMap { c in purposes.map { "\(reader) \(c) \($0)" } })
    }

    @Test("roles × categories × purposes × consent states: none, granted, revoked and expired, emergency", .timeLimit(.minutes(3)))
    func decisionTable() async throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let node = try NodeProcess(dataDir: dir + "/node")
        defer { node.terminate() }
        let http = HTTP(base: node.url), chain = try DevChain(dataDir: dir + "/node")
        let p = try await Self.setUp(http, chain)

        // 1. No grant: only the patient reads its own data.
        try await Self.checkTable(http, p, state: "no grant", allowed: Self.everything("patient"))

        // 2. Grants: the doctor (vital signs and ECG, for treatment); the organisation (laboratory,
        //    for research: the researcher and the attested practitioners); nurses (vital signs,
        //    treatment); the relative (vital signs, family care, lapsing in seconds).
        let now = Int64(Date().timeIntervalSince1970 * 1000), day: Int64 = 86_400_000
        func grant(_ g: Grantee, _ c: [String], _ pu: [String], expires: Int64 = now + day) -> TransactionPayload {
            .grantConsent(GrantConsent(grantee: g, categories: c, purposes: pu, expiresMs: expires))
        }
        try await GatewayTests.commit(http, chain, grant(.account(p.doctor.publicKey.address), ["vital-signs", "ecg"], ["treatment"]), key: p.patient)
        try await GatewayTests.commit(http, chain, grant(.organisation("dev-hospital"), ["laboratory"], ["research"]), key: p.patient)
        try await GatewayTests.commit(http, chain, grant(.attributes(role: nil, profession: "nurse", organisation: nil), ["vital-signs"], ["treatment"]), key: p.patient)
        let lapse = Int64(Date().timeIntervalSince1970 * 1000) + 3_000
        try await GatewayTests.commit(http, chain, grant(.account(p.relative.publicKey.address), ["vital-signs"], ["family-care"], expires: lapse), key: p.patient)
        let granted = Self.everything("patient").union([
            "doctor vital-signs treatment", "doctor ecg treatment", "doctor laboratory research",
            "nurse vital-signs treatment", "nurse laboratory research",
            "researcher laboratory research",
            "relative vital-signs family-care",
        ])
        try await Self.checkTable(http, p, state: "granted", allowed: granted)

        // The grants as the patient sees them, and as FHIR Consent resources.
        let shown = try await http.get("/v1/patients/\(p.pseudonym.hex)")
        #expect(shown.status == 200 && (shown.json["grants"] as? [Any])?.count == 4)
        let fhir = try await http.get("/v1/patients/\(p.pseudonym.hex)/consents")
        #expect(fhir.status == 200 && fhir.headers["content-type"] == "application/fhir+json")
        let bundle = try JSONDecoder().decode(FHIRBundleProbe.self, from: fhir.body)
        #expect(bundle.total == 4 && bundle.entry.allSatisfy { $0.resource.status == "active" })
        // A FHIR Consent the node exported reads back as the same grant.
        let doctorConsent = try #require(bundle.entry.first { $0.resource.provision?.actor?.first?.reference.identifier?.value == p.doctor.publicKey.address.hex })
        let back = try doctorConsent.resource.grant(nowMs: Int64(Date().timeIntervalSince1970 * 1000) + 1_000)
        #expect(back.grantee == .account(p.doctor.publicKey.address) && back.categories == ["vital-signs", "ecg"] && back.purposes == ["treatment"])

        // 3. The patient revokes the doctor's grant; the relative's lapses. Both stop at once.
        let doctorGrant = try #require(Hash(hex: doctorConsent.resource.id ?? ""))
        while Int64(Date().timeIntervalSince1970 * 1000) <= lapse { try await Task.sleep(nanoseconds: 200_000_000) }
        try await GatewayTests.commit(http, chain, .revokeConsent(RevokeConsent(grant: doctorGrant)), key: p.patient)
        let revoked = granted.subtracting(["doctor vital-signs treatment", "doctor ecg treatment", "relative vital-signs family-care"])
        try await Self.checkTable(http, p, state: "revoked and lapsed", allowed: revoked)
        let after = try JSONDecoder().decode(FHIRBundleProbe.self, from: try await http.get("/v1/patients/\(p.pseudonym.hex)/consents").body)
        #expect(after.entry.filter { $0.resource.status == "inactive" }.count == 2)

        // 4. Emergency: the doctor breaks the glass for vital signs and medication. Treatment
        //    only, the declared categories only, the declaring doctor only; on the record. The
        //    patient's agent, waiting on its notifications, hears of it at once.
        let sinceHeight = (try await http.get("/v1/status").json["height"] as? Int) ?? 0
        let waiting = Task { try await http.get("/v1/patients/\(p.pseudonym.hex)/notifications?afterHeight=\(sinceHeight)&waitMs=20000") }
        let statement = "Unconscious on arrival; current medication unknown"
        try await GatewayTests.commit(http, chain, .declareEmergencyAccess(DeclareEmergencyAccess(subject: p.pseudonym, reasonCode: "unconscious", statementHash: Hash.sha256(Array(statement.utf8)), categories: ["vital-signs", "medication"], minutes: 30)), key: p.doctor)
        try await Self.checkTable(http, p, state: "emergency", allowed: revoked.union(["doctor vital-signs treatment"]))
        let notified = try await waiting.value
        let told = (notified.json["emergencyAccesses"] as? [[String: Any]]) ?? []
        #expect(notified.status == 200 && told.count == 1 && told.first?["practitioner"] as? String == p.doctor.publicKey.address.hex, "\(notified.text)")
        let listed = try await http.get("/v1/organisations/dev-hospital/emergency-accesses")
        let pending = try #require(listed.jsonArray.first)
        #expect(pending["practitioner"] as? String == p.doctor.publicKey.address.hex)
        let emergencyID = try #require(pending["id"] as? String)
        // An unattested practitioner cannot break the glass: the node refuses it with a reason.
        let refused = try await Self.submit(http, chain, .declareEmergencyAccess(DeclareEmergencyAccess(subject: p.pseudonym, reasonCode: "other", statementHash: .zero, categories: ["ecg"])), key: p.unattested)
        #expect(refused.status == 403 || refused.status == 422 || refused.status == 400, "\(refused.text)")
        #expect(refused.text.contains("unauthorised"))
        // The patient reviews it; the organisation's admin too, which takes it off the review queue.
        let accessID = try #require(Hash(hex: emergencyID))
        try await GatewayTests.commit(http, chain, .reviewEmergencyAccess(ReviewEmergencyAccess(access: accessID, verdict: "justified")), key: p.patient)
        #expect(try await http.get("/v1/organisations/dev-hospital/emergency-accesses").jsonArray.count == 1)
        try await GatewayTests.commit(http, chain, .reviewEmergencyAccess(ReviewEmergencyAccess(access: accessID, verdict: "justified")))
        #expect(try await http.get("/v1/organisations/dev-hospital/emergency-accesses").jsonArray.isEmpty)
        let record = try await http.get("/v1/patients/\(p.pseudonym.hex)")
        let reviewed = try #require((record.json["emergencyAccesses"] as? [[String: Any]])?.first)
        #expect((reviewed["patientReview"] as? [String: Any])?["verdict"] as? String == "justified")
        // Nothing the patient or the doctor wrote is on-chain, only hashes and codes.
        #expect(!record.text.contains("Unconscious on arrival"))

        // Malformed questions get a typed error.
        let bad = try await http.get("/v1/access?reader=\(p.doctor.publicKey.address.hex)&subject=\(p.pseudonym.hex)&category=genome&purpose=treatment")
        #expect(bad.status == 400 && bad.text.contains("invalid-argument"))
        #expect(try await http.get("/v1/access?reader=xyz&subject=\(p.pseudonym.hex)&category=ecg&purpose=treatment").status == 400)
        #expect(try await http.get("/v1/patients/\(Hash.sha256([1]).hex)").status == 404)
    }

    static func submit(_ node: HTTP, _ chain: DevChain, _ payload: TransactionPayload, key: PrivateKey) async throws -> HTTP.Reply {
        let acct = try await node.get("/v1/accounts/\(key.publicKey.address.hex)").json
        let tx = Transaction(chainID: chain.chainID, sender: key.publicKey.address, signerKey: key.publicKey, nonce: UInt64(acct["nextNonce"] as? Int ?? 0), payload: payload).signed(with: key)
        return try await node.post("/v1/transactions?wait=commit", try chain.json(tx))
    }

    @Test("the CLI: a patient's secret, keys and pseudonym; enrolment; a grant from the official FHIR Consent example; access check", .timeLimit(.minutes(3)))
    func cli() async throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let node = try NodeProcess(dataDir: dir + "/node")
        defer { node.terminate() }
        let admin = dir + "/node/admin.key.json"
        func cli(_ args: [String]) throws -> [String: Any] {
            let r = try runCLI(args)
            guard r.status == 0 else { throw TestFailure("iomtchain \(args.prefix(3).joined(separator: " ")): \(r.stderr)") }
            return (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
        }
        _ = try cli(["patient", "secret", "--out", dir + "/alice.secret"])
        let keys = try cli(["patient", "keys", "--secret", dir + "/alice.secret", "--organisation", "dev-hospital", "--key-out", dir + "/alice.key.json", "--x25519-out", dir + "/alice.x25519"])
        let other = try cli(["patient", "keys", "--secret", dir + "/alice.secret", "--organisation", "city-clinic"])
        let pseudonym = try #require(keys["pseudonym"] as? String)
        #expect(pseudonym != other["pseudonym"] as? String, "two organisations, two unlinkable pseudonyms")
        #expect(FileManager.default.contents(atPath: dir + "/alice.x25519")?.count == 32)
        // The patient signs its enrolment; the organisation's admin submits it.
        let enrolment = try runCLI(["patient", "enrolment", "--secret", dir + "/alice.secret", "--organisation", "dev-hospital", "--node", node.url])
        let patientPublicKey = try #require(keys["publicKey"] as? String)
        #expect(enrolment.status == 0 && enrolment.stdout.contains(patientPublicKey), "\(enrolment.stderr)")
        _ = try cli(["tx", "submit", "--key", admin, "--node", node.url, "--wait", "--payload", enrolment.stdout])
        // The official HL7 example: an opt-in for treatment by an organisation, which lapsed in 2016.
        let example = fhirExample("consent-example.json")
        let lapsed = try runCLI(["tx", "submit", "--key", dir + "/alice.key.json", "--node", node.url, "--wait", "--type", "grant-consent", "--fhir", example, "--fhir-organisation", "dev-hospital"])
        #expect(lapsed.status != 0 && lapsed.stderr.contains("lapsed on 2016-01-01"), "\(lapsed.stderr)")
        // The same consent, still running: it becomes a grant to the organisation for treatment, all categories.
        let text = try String(contentsOfFile: example, encoding: .utf8).replacingOccurrences(of: "\"end\": \"2016-01-01\"", with: "\"end\": \"2099-01-01\"")
        try text.write(toFile: dir + "/consent.json", atomically: true, encoding: .utf8)
        _ = try cli(["tx", "submit", "--key", dir + "/alice.key.json", "--node", node.url, "--wait", "--type", "grant-consent", "--fhir", dir + "/consent.json", "--fhir-organisation", "dev-hospital"])
        let shown = try cli(["patient", "show", "--node", node.url, "--pseudonym", pseudonym])
        let g = try #require(((shown["grants"] as? [[String: Any]])?.first?["grant"] as? [String: Any])?["grant"] as? [String: Any])
        #expect((g["grantee"] as? [String: String])?["organisation"] == "dev-hospital")
        #expect((g["categories"] as? [String])?.count == DataCategory.all.count && (g["purposes"] as? [String]) == ["treatment"])
        // A practitioner of the organisation, attested through the CLI, may now read for treatment, not for research.
        let doc = try cli(["keys", "generate", "--out", dir + "/doc.key.json"])
        let docAddress = try #require(doc["address"] as? String)
        _ = try cli(["tx", "submit", "--key", admin, "--node", node.url, "--wait", "--type", "register-account", "--public-key", try #require(doc["publicKey"] as? String), "--role", "practitioner", "--organisation", "dev-hospital"])
        let before = try cli(["access", "--node", node.url, "--reader", docAddress, "--subject", pseudonym, "--category", "diagnoses", "--purpose", "treatment"])
        #expect(before["allowed"] as? Bool == false, "not attested yet")
        _ = try cli(["tx", "submit", "--key", admin, "--node", node.url, "--wait", "--type", "attest-practitioner", "--account", docAddress, "--profession", "doctor", "--licence-id", "GMC 7654321"])
        let after = try cli(["access", "--node", node.url, "--reader", docAddress, "--subject", pseudonym, "--category", "diagnoses", "--purpose", "treatment"])
        #expect(after["allowed"] as? Bool == true && after["basis"] as? String == "grant")
        #expect(try cli(["access", "--node", node.url, "--reader", docAddress, "--subject", pseudonym, "--category", "diagnoses", "--purpose", "research"])["allowed"] as? Bool == false)
        // The licence id is not on-chain: the attestation holds its hash.
        let attestation = try await HTTP(base: node.url).get("/v1/practitioners/\(docAddress)")
        #expect(attestation.status == 200 && !attestation.text.contains("7654321"))
    }

    @Test("FHIR Consent: the official example reads as a lapsed organisation opt-in; deny, opt-out and unknown codes are refused by name")
    func fhirMapping() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: fhirExample("consent-example.json")))
        let c = try JSONDecoder().decode(FHIRConsent.self, from: data)
        #expect(c.status == "active" && c.organization?.first?.reference == "Organization/f001")
        let at2015 = FHIRTime.parse("2015-06-01", endOfDay: false)!
        let g = try c.grant(nowMs: at2015)
        #expect(g.grantee == .organisation("f001") && g.purposes == ["treatment"] && g.categories == DataCategory.all)
        #expect(g.expiresMs == FHIRTime.parse("2016-01-01T23:59:59.999Z", endOfDay: false))
        #expect(throws: FHIRConsentError.self) { try c.grant(nowMs: FHIRTime.parse("2016-01-02", endOfDay: false)!) }
        var deny = c; deny.provision?.type = "deny"
        #expect(throws: FHIRConsentError.self) { try deny.grant(nowMs: at2015) }
        var optOut = c; optOut.policyRule = .init([.init(system: nil, code: "OPTOUT")])
        #expect(throws: FHIRConsentError.self) { try optOut.grant(nowMs: at2015) }
        var draft = c; draft.status = "draft"
        #expect(throws: FHIRConsentError.self) { try draft.grant(nowMs: at2015) }
        var marketing = c; marketing.provision?.purpose = [.init(system: nil, code: "HMARKT")]
        #expect(throws: FHIRConsentError.self) { try marketing.grant(nowMs: at2015) }
        #expect(FHIRTime.parse("2016-02", endOfDay: true) == FHIRTime.parse("2016-02-29T23:59:59.999Z", endOfDay: false))
        #expect(FHIRTime.parse("2016-13-01", endOfDay: false) == nil && FHIRTime.parse("yesterday", endOfDay: false) == nil)
    }
}

/// Just enough of a Bundle to read the node's FHIR export.
struct FHIRBundleProbe: Decodable {
    struct Entry: Decodable { var resource: FHIRConsent }
    var resourceType: String
    var total: Int
    var entry: [Entry]
}

/// The path of the official HL7 FHIR R4 example `name` (the copy kept with the edge tests).
func fhirExample(_ name: String) -> String { GatewayTests.examples.appendingPathComponent(name).path }
