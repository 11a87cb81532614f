import Crypto
import Foundation
import IoMTContracts
import IoMTCore
import Testing

@Suite("Patients module: identities, consent, emergency access")
struct PatientsTests {
    typealias C = Consortium
    static let patient = C.ed25519(0x31)
    static let otherPatient = C.ed25519(0x32)
    static let doctor = C.ed25519(0x33)
    static let nurse = C.p256(0x34)
    static let unattested = C.ed25519(0x35)
    static let clinicDoctor = C.ed25519(0x36)
    static let researcher = C.ed25519(0x37)
    static let family = C.ed25519(0x38)
    static var subject: Hash { Pseudonym.of(patient.publicKey.address) }
    static let day: Int64 = 86_400_000

    /// st-marys enrols two patients and attests a doctor and a nurse; city-clinic attests a doctor.
    static func ledger() -> Ledger {
        var l = Ledger()
        l.apply(C.adminA, .enrol(patient))
        l.apply(C.adminA, .enrol(otherPatient))
        for k in [doctor, nurse, unattested] { l.apply(C.adminA, .register(k, .practitioner, "st-marys")) }
        l.apply(C.adminA, .register(researcher, .researcher, "st-marys"))
        l.apply(C.adminA, .register(family, .supplyChainParty, "st-marys"))
        l.apply(C.adminB, .register(clinicDoctor, .practitioner, "city-clinic"))
        l.apply(C.adminA, attest(doctor, "doctor"))
        l.apply(C.adminA, attest(nurse, "nurse"))
        l.apply(C.adminB, attest(clinicDoctor, "doctor"))
        return l
    }

    static func attest(_ k: PrivateKey, _ profession: String, active: Bool = true) -> TransactionPayload {
        .attestPractitioner(AttestPractitioner(account: k.publicKey.address, profession: profession, licenceHash: Hash.sha256(Array("licence \(profession)".utf8)), active: active))
    }

    static func grant(_ grantee: Grantee, _ categories: [String] = ["vital-signs"], _ purposes: [String] = ["treatment"],
                      from: Int64 = 0, until: Int64 = .max, expires: Int64 = 1_700_000_000_000 + 30 * day) -> TransactionPayload {
        .grantConsent(GrantConsent(grantee: grantee, categories: categories, purposes: purposes, dataFromMs: from, dataUntilMs: until, expiresMs: expires))
    }

    static func decide(_ l: Ledger, _ reader: PrivateKey, _ category: String = "vital-signs", _ purpose: String = "treatment",
                       from: Int64 = 1_000, until: Int64 = 2_000, subject: Hash = subject) -> AccessDecision {
        try! Consent.decide(AccessQuery(reader: reader.publicKey.address, subject: subject, category: category, purpose: purpose, dataFromMs: from, dataUntilMs: until),
                            state: l.state.committed(), atMs: l.context.timestampMs)
    }

    @Test("an organisation enrols a patient under a pseudonym with its X25519 key; register-account cannot make a patient")
    func enrolment() throws {
        var l = Self.ledger()
        let p = try #require(try l.state.read(PatientRecord.self, StateKeys.patient(Self.subject)))
        #expect(p.account == Self.patient.publicKey.address && p.organisation == "st-marys" && p.enrolledBy == C.adminA.publicKey.address)
        #expect(l.account(Self.patient)?.role == .patient)
        #expect(try l.state.read(AgreementKeyRecord.self, StateKeys.agreementKey(Self.patient.publicKey.address))?.key == testAgreementKey(Self.patient))
        // An attested practitioner may enrol; an unattested one, a researcher or a patient may not.
        l.apply(Self.doctor, .enrol(C.ed25519(0x41)))
        l.reject(Self.unattested, .enrol(C.ed25519(0x42)), "unauthorised")
        l.reject(Self.researcher, .enrol(C.ed25519(0x42)), "unauthorised")
        l.reject(Self.patient, .enrol(C.ed25519(0x42)), "unauthorised")
        l.reject(C.adminB, .enrol(Self.patient, at: "city-clinic"), "already-exists")
        // Only the key's holder signs its enrolment: for this chain, this organisation, this X25519 key.
        let fresh = C.ed25519(0x45)
        l.reject(C.adminA, .enrol(fresh, at: "city-clinic"), "invalid-argument")
        var hijacked = RegisterPatient(signedBy: fresh, agreementKey: testAgreementKey(fresh), chainID: C.chainID, organisation: "st-marys")
        hijacked.agreementKey = testAgreementKey(Self.doctor)
        l.reject(Self.doctor, .registerPatient(hijacked), "invalid-argument")
        l.reject(C.adminA, .registerPatient(RegisterPatient(signedBy: fresh, agreementKey: testAgreementKey(fresh), chainID: "another-chain", organisation: "st-marys")), "invalid-argument")
        l.reject(C.adminA, .register(C.ed25519(0x43), .patient, "st-marys"), "invalid-argument")
        // The patient rotates its X25519 key; the epoch counts rotations.
        let next = testAgreementKey(C.ed25519(0x44))
        l.apply(Self.patient, .setAgreementKey(SetAgreementKey(agreementKey: next)))
        let rotated = try #require(try l.state.read(AgreementKeyRecord.self, StateKeys.agreementKey(Self.patient.publicKey.address)))
        #expect(rotated.key == next && rotated.epoch == 2)
        l.reject(Self.patient, .setAgreementKey(SetAgreementKey(agreementKey: next)), "invalid-argument")
    }

    @Test("one patient secret gives each organisation its own key and pseudonym; they do not link")
    func pseudonyms() throws {
        let secret = try PatientSecret(bytes: [UInt8](repeating: 0x77, count: 32))
        let a = secret.pseudonym(at: "st-marys"), b = secret.pseudonym(at: "city-clinic")
        #expect(a != b)
        #expect(secret.signingKey(at: "st-marys").publicKey != secret.signingKey(at: "city-clinic").publicKey)
        #expect(secret.agreementKey(at: "st-marys").publicKey.rawRepresentation != secret.agreementKey(at: "city-clinic").publicKey.rawRepresentation)
        // Deterministic: the agent re-derives the same keys from the secret alone.
        #expect(try PatientSecret(bytes: secret.bytes).pseudonym(at: "st-marys") == a)
        #expect(a == Pseudonym.of(secret.signingKey(at: "st-marys").publicKey.address))
        #expect(throws: KeyError.self) { try PatientSecret(bytes: [1, 2, 3]) }
        // Enrolled at two organisations, the two records share nothing but the role.
        var l = Ledger()
        let keyA = secret.signingKey(at: "st-marys"), keyB = secret.signingKey(at: "city-clinic")
        let xA = try X25519Key(bytes: Array(secret.agreementKey(at: "st-marys").publicKey.rawRepresentation))
        let xB = try X25519Key(bytes: Array(secret.agreementKey(at: "city-clinic").publicKey.rawRepresentation))
        l.apply(C.adminA, .registerPatient(RegisterPatient(signedBy: keyA, agreementKey: xA, chainID: C.chainID, organisation: "st-marys")))
        l.apply(C.adminB, .registerPatient(RegisterPatient(signedBy: keyB, agreementKey: xB, chainID: C.chainID, organisation: "city-clinic")))
        let ra = try #require(try l.state.read(PatientRecord.self, StateKeys.patient(a))), rb = try #require(try l.state.read(PatientRecord.self, StateKeys.patient(b)))
        #expect(ra.account != rb.account && ra.pseudonym != rb.pseudonym)
    }

    @Test("a member-admin attests and withdraws practitioners of its own organisation only")
    func attestation() throws {
        var l = Self.ledger()
        let r = try #require(try l.state.read(PractitionerRecord.self, StateKeys.practitioner(Self.doctor.publicKey.address)))
        #expect(r.attestation.profession == "doctor" && r.organisation == "st-marys" && r.attestation.active)
        l.reject(C.adminB, Self.attest(Self.unattested, "doctor"), "unauthorised")
        l.reject(Self.doctor, Self.attest(Self.unattested, "doctor"), "unauthorised")
        l.reject(C.adminA, Self.attest(Self.researcher, "doctor"), "invalid-argument")
        l.reject(C.adminA, Self.attest(Self.unattested, "wizard"), "invalid-argument")
        l.reject(C.adminA, Self.attest(Self.unattested, "doctor", active: false), "invalid-argument")
        l.apply(C.adminA, Self.attest(Self.doctor, "doctor", active: false))
        #expect(try l.state.read(PractitionerRecord.self, StateKeys.practitioner(Self.doctor.publicKey.address))?.attestation.active == false)
    }

    @Test("a grant to one account allows exactly its categories, purposes, data window and lifetime; revocation ends it")
    func grantToAccount() throws {
        var l = Self.ledger()
        #expect(!Self.decide(l, Self.doctor).allowed)
        #expect(Self.decide(l, Self.patient).basis == .own)
        let id = l.apply(Self.patient, Self.grant(.account(Self.doctor.publicKey.address), ["vital-signs", "ecg"], ["treatment"], from: 500, until: 5_000))
        let yes = Self.decide(l, Self.doctor)
        #expect(yes.allowed && yes.basis == .grant && yes.reference == id)
        #expect(Self.decide(l, Self.doctor, "ecg").allowed)
        #expect(!Self.decide(l, Self.doctor, "location").allowed)
        #expect(!Self.decide(l, Self.doctor, "vital-signs", "research").allowed)
        #expect(!Self.decide(l, Self.doctor, from: 100, until: 2_000).allowed, "data before the window")
        #expect(!Self.decide(l, Self.doctor, from: 1_000, until: 6_000).allowed, "data after the window")
        #expect(!Self.decide(l, Self.nurse).allowed)
        #expect(!Self.decide(l, Self.doctor, subject: Pseudonym.of(Self.otherPatient.publicKey.address)).allowed, "another patient's data")
        let record = try #require(try l.state.read(ConsentRecord.self, StateKeys.consent(id)))
        #expect(record.subject == Self.subject && record.revokedAtMs == nil)
        #expect(try l.state.read(IDList.self, StateKeys.consents(of: Self.subject))?.ids == [id])
        // A suspended reader is refused whatever it was granted.
        l.apply(C.adminA, .status(Self.doctor, .suspended))
        #expect(!Self.decide(l, Self.doctor).allowed)
        l.apply(C.adminA, .status(Self.doctor, .active))
        #expect(Self.decide(l, Self.doctor).allowed)
        // Only the patient revokes, once.
        l.reject(Self.otherPatient, .revokeConsent(RevokeConsent(grant: id)), "invalid-argument")
        l.reject(Self.doctor, .revokeConsent(RevokeConsent(grant: id)), "unauthorised")
        l.apply(Self.patient, .revokeConsent(RevokeConsent(grant: id)))
        #expect(!Self.decide(l, Self.doctor).allowed)
        l.reject(Self.patient, .revokeConsent(RevokeConsent(grant: id)), "invalid-argument")
        // A grant lapses at its expiry.
        l.apply(Self.patient, Self.grant(.account(Self.family.publicKey.address), ["vital-signs"], ["family-care"], expires: l.context.timestampMs + Self.day))
        #expect(Self.decide(l, Self.family, "vital-signs", "family-care").allowed)
        l.context.timestampMs += Self.day
        #expect(!Self.decide(l, Self.family, "vital-signs", "family-care").allowed)
    }

    @Test("organisation and attribute grants follow accounts, roles and attestations")
    func grantsByAttributes() {
        var l = Self.ledger()
        l.apply(Self.patient, Self.grant(.organisation("st-marys"), ["vital-signs"], ["treatment", "research"]))
        #expect(Self.decide(l, Self.doctor).allowed && Self.decide(l, Self.nurse).allowed)
        #expect(!Self.decide(l, Self.unattested).allowed, "a practitioner without attestation")
        #expect(!Self.decide(l, Self.clinicDoctor).allowed, "another organisation")
        #expect(!Self.decide(l, Self.family).allowed, "a supply-chain party of the organisation")
        #expect(Self.decide(l, Self.researcher, "vital-signs", "research").allowed)
        // Doctors anywhere, for ECG.
        l.apply(Self.patient, Self.grant(.attributes(role: .practitioner, profession: "doctor", organisation: nil), ["ecg"]))
        #expect(Self.decide(l, Self.clinicDoctor, "ecg").allowed && Self.decide(l, Self.doctor, "ecg").allowed)
        #expect(!Self.decide(l, Self.nurse, "ecg").allowed)
        // Withdrawing the attestation withdraws what it carried.
        l.apply(C.adminB, Self.attest(Self.clinicDoctor, "doctor", active: false))
        #expect(!Self.decide(l, Self.clinicDoctor, "ecg").allowed)
    }

    @Test("grant refusals change nothing")
    func grantRefusals() {
        var l = Self.ledger()
        let doctor = Grantee.account(Self.doctor.publicKey.address)
        l.reject(Self.doctor, Self.grant(doctor), "unauthorised")
        l.reject(C.adminA, Self.grant(doctor), "unauthorised")
        l.reject(Self.patient, Self.grant(doctor, []), "invalid-argument")
        l.reject(Self.patient, Self.grant(doctor, ["vital-signs", "vital-signs"]), "invalid-argument")
        l.reject(Self.patient, Self.grant(doctor, ["genome"]), "invalid-argument")
        l.reject(Self.patient, Self.grant(doctor, ["ecg"], ["marketing"]), "invalid-argument")
        l.reject(Self.patient, Self.grant(doctor, from: 10, until: 5), "invalid-argument")
        l.reject(Self.patient, Self.grant(doctor, expires: l.context.timestampMs), "invalid-argument")
        l.reject(Self.patient, Self.grant(.account(Self.patient.publicKey.address)), "invalid-argument")
        l.reject(Self.patient, Self.grant(.account(Address.zero)), "unknown-account")
        l.reject(Self.patient, Self.grant(.organisation("nowhere")), "unknown-organisation")
        l.reject(Self.patient, Self.grant(.attributes(role: nil, profession: "wizard", organisation: nil)), "invalid-argument")
        l.reject(Self.patient, .revokeConsent(RevokeConsent(grant: Hash.sha256([9]))), "invalid-argument")
        #expect(throws: ContractError.self) {
            try Consent.decide(AccessQuery(reader: Self.doctor.publicKey.address, subject: Self.subject, category: "genome", purpose: "treatment"), state: l.state.committed(), atMs: 0)
        }
    }

    @Test("emergency access: an attested practitioner reads for treatment for a bounded time, on the record, until reviewed")
    func emergency() throws {
        var l = Self.ledger()
        let statement = Hash.sha256(Array("Patient unconscious in A&E; allergy history needed".utf8))
        let declare = DeclareEmergencyAccess(subject: Self.subject, reasonCode: "unconscious", statementHash: statement, categories: ["vital-signs", "medication"], minutes: 60)
        l.reject(Self.unattested, .declareEmergencyAccess(declare), "unauthorised")
        l.reject(Self.researcher, .declareEmergencyAccess(declare), "unauthorised")
        var bad = declare; bad.minutes = 0
        l.reject(Self.doctor, .declareEmergencyAccess(bad), "invalid-argument")
        bad = declare; bad.reasonCode = "curious"
        l.reject(Self.doctor, .declareEmergencyAccess(bad), "invalid-argument")
        bad = declare; bad.subject = Hash.sha256([1])
        l.reject(Self.doctor, .declareEmergencyAccess(bad), "invalid-argument")
        let id = l.apply(Self.doctor, .declareEmergencyAccess(declare))
        let d = Self.decide(l, Self.doctor)
        #expect(d.allowed && d.basis == .emergency && d.reference == id)
        #expect(!Self.decide(l, Self.doctor, "vital-signs", "research").allowed)
        #expect(!Self.decide(l, Self.doctor, "ecg").allowed)
        #expect(!Self.decide(l, Self.nurse).allowed, "only the declaring practitioner")
        let record = try #require(try l.state.read(EmergencyAccessRecord.self, StateKeys.emergency(id)))
        #expect(record.practitioner == Self.doctor.publicKey.address && record.untilMs == l.context.timestampMs + 3_600_000 && record.organisationReview == nil && record.patientReview == nil)
        #expect(try l.state.read(UInt64.self, StateKeys.emergencyCount(of: Self.subject)) == 1 && (try l.state.read(Hash.self, StateKeys.emergencyEntry(of: Self.subject, 1))) == id)
        #expect(try l.state.read(IDList.self, StateKeys.unreviewedEmergencies(of: "st-marys"))?.ids == [id])
        // The statement itself is not on-chain, only its hash.
        let text = Array("unconscious in A&E".utf8)
        let bytes = record.canonicalBytes
        #expect(!(0...(bytes.count - text.count)).contains { Array(bytes[$0..<$0 + text.count]) == text })
        // Access ends with its time.
        l.context.timestampMs += 3_600_000
        #expect(!Self.decide(l, Self.doctor).allowed)
        // Reviewed once, by the patient or the practitioner's organisation.
        l.reject(C.adminB, .reviewEmergencyAccess(ReviewEmergencyAccess(access: id, verdict: "unjustified")), "unauthorised")
        l.reject(Self.otherPatient, .reviewEmergencyAccess(ReviewEmergencyAccess(access: id, verdict: "unjustified")), "unauthorised")
        l.reject(Self.patient, .reviewEmergencyAccess(ReviewEmergencyAccess(access: id, verdict: "maybe")), "invalid-argument")
        // The patient and the organisation review independently, each once.
        l.apply(Self.patient, .reviewEmergencyAccess(ReviewEmergencyAccess(access: id, verdict: "unjustified")))
        #expect(try l.state.read(EmergencyAccessRecord.self, StateKeys.emergency(id))?.patientReview?.verdict == "unjustified")
        #expect(try l.state.read(IDList.self, StateKeys.unreviewedEmergencies(of: "st-marys"))?.ids == [id], "still waiting for the organisation's review")
        l.reject(Self.patient, .reviewEmergencyAccess(ReviewEmergencyAccess(access: id, verdict: "justified")), "invalid-argument")
        l.apply(C.adminA, .reviewEmergencyAccess(ReviewEmergencyAccess(access: id, verdict: "justified")))
        let both = try l.state.read(EmergencyAccessRecord.self, StateKeys.emergency(id))
        #expect(both?.organisationReview?.reviewer == C.adminA.publicKey.address && both?.patientReview?.verdict == "unjustified")
        #expect(try l.state.read(IDList.self, StateKeys.unreviewedEmergencies(of: "st-marys"))?.ids == [])
        l.reject(C.adminA, .reviewEmergencyAccess(ReviewEmergencyAccess(access: id, verdict: "unjustified")), "invalid-argument")
        // Many accesses later, a new one still works and the decision reads only the last day's.
        for _ in 0..<30 { l.apply(Self.nurse, .declareEmergencyAccess(DeclareEmergencyAccess(subject: Self.subject, reasonCode: "other", statementHash: .zero, categories: ["ecg"], minutes: 1))) }
        l.context.timestampMs += 2 * Self.day
        l.apply(Self.doctor, .declareEmergencyAccess(declare))
        #expect(Self.decide(l, Self.doctor).basis == .emergency)
    }

    @Test("every node gives the same answer: the decision is a function of the state and the block time")
    func deterministic() {
        var l = Self.ledger()
        l.apply(Self.patient, Self.grant(.organisation("st-marys")))
        let rebuilt = AuthenticatedState.build(l.state.committed().entries())
        for reader in [Self.doctor, Self.nurse, Self.unattested, Self.clinicDoctor, Self.patient] {
            let q = AccessQuery(reader: reader.publicKey.address, subject: Self.subject, category: "vital-signs", purpose: "treatment")
            #expect(try! Consent.decide(q, state: l.state.committed(), atMs: 5) == (try! Consent.decide(q, state: rebuilt, atMs: 5)))
        }
    }

    @Test("a patient delegates key re-wrapping to gateway accounts only, and withdraws it")
    func delegation() throws {
        var l = Self.ledger()
        let gateway = C.ed25519(0x51)
        l.apply(C.adminA, .register(gateway, .gateway, "st-marys"))
        let g = gateway.publicKey.address
        l.reject(Self.doctor, .setRewrapDelegation(SetRewrapDelegation(gateway: g)), "unauthorised")
        l.reject(Self.patient, .setRewrapDelegation(SetRewrapDelegation(gateway: Self.doctor.publicKey.address)), "invalid-argument")
        l.reject(Self.patient, .setRewrapDelegation(SetRewrapDelegation(gateway: g, active: false)), "invalid-argument")
        l.apply(Self.patient, .setRewrapDelegation(SetRewrapDelegation(gateway: g)))
        #expect(try l.state.read(AddressSet.self, StateKeys.delegations(of: Self.subject))?.members == [g])
        l.reject(Self.patient, .setRewrapDelegation(SetRewrapDelegation(gateway: g)), "invalid-argument")
        l.apply(Self.patient, .setRewrapDelegation(SetRewrapDelegation(gateway: g, active: false)))
        #expect(try l.state.read(AddressSet.self, StateKeys.delegations(of: Self.subject))?.members == [])
    }

    @Test("a gateway's audit runs are anchored contiguously: a gap or an overlap is refused")
    func auditRuns() throws {
        var l = Self.ledger()
        let gateway = C.ed25519(0x52)
        l.apply(C.adminA, .register(gateway, .gateway, "st-marys"))
        let g = gateway.publicKey.address
        l.reject(Self.doctor, .anchorAudit(AnchorAudit(firstSeq: 1, lastSeq: 3, root: Hash.sha256([1]))), "unauthorised")
        l.reject(gateway, .anchorAudit(AnchorAudit(firstSeq: 2, lastSeq: 3, root: Hash.sha256([1]))), "invalid-argument")
        l.reject(gateway, .anchorAudit(AnchorAudit(firstSeq: 1, lastSeq: 0, root: Hash.sha256([1]))), "invalid-argument")
        l.apply(gateway, .anchorAudit(AnchorAudit(firstSeq: 1, lastSeq: 3, root: Hash.sha256([1]))))
        l.reject(gateway, .anchorAudit(AnchorAudit(firstSeq: 3, lastSeq: 5, root: Hash.sha256([2]))), "invalid-argument")
        l.reject(gateway, .anchorAudit(AnchorAudit(firstSeq: 5, lastSeq: 5, root: Hash.sha256([2]))), "invalid-argument")
        l.apply(gateway, .anchorAudit(AnchorAudit(firstSeq: 4, lastSeq: 4, root: Hash.sha256([2]))))
        #expect(try l.state.read(AuditHead.self, StateKeys.auditHead(g))?.lastSeq == 4)
        #expect(try l.state.read(AuditAnchorRecord.self, StateKeys.auditAnchor(g, firstSeq: 1))?.anchor.root == Hash.sha256([1]))
    }

    @Test("erasure: only the patient asks, once; from then no read is allowed and no device binds to it; gateways confirm only their own batches of that subject")
    func erasure() throws {
        var l = Self.ledger()
        let gateway = C.ed25519(0x53), otherGateway = C.ed25519(0x54)
        l.apply(C.adminA, .register(gateway, .gateway, "st-marys"))
        l.apply(C.adminA, .register(otherGateway, .gateway, "st-marys"))
        let oximeter = C.ed25519(0x55), otherDevice = C.ed25519(0x56)
        l.apply(Self.patient, .registerDevice(RegisterDevice(publicKey: oximeter.publicKey, deviceType: "pulse-oximeter", subject: Self.subject)))
        l.apply(Self.otherPatient, .registerDevice(RegisterDevice(publicKey: otherDevice.publicKey, deviceType: "pulse-oximeter", subject: Pseudonym.of(Self.otherPatient.publicKey.address))))
        func anchor(_ device: PrivateKey, _ root: UInt8) -> TransactionPayload {
            .anchorReadings(AnchorReadings(device: device.publicKey.address, batchRoot: Hash.sha256([root]), blobDigest: Hash.sha256([root, 1]), firstMs: 1, lastMs: 2, count: 5))
        }
        l.apply(gateway, anchor(oximeter, 1)); l.apply(gateway, anchor(oximeter, 2))
        l.apply(otherGateway, anchor(oximeter, 3)); l.apply(gateway, anchor(otherDevice, 4))
        l.apply(Self.patient, Self.grant(.account(Self.doctor.publicKey.address)))
        #expect(Self.decide(l, Self.doctor).allowed)
        let roots = [Hash.sha256([1]), Hash.sha256([2])]
        l.reject(gateway, .confirmErasure(ConfirmErasure(subject: Self.subject, batchRoots: roots, final: false)), "invalid-argument")

        l.reject(Self.otherPatient, .requestErasure(RequestErasure(subject: Self.subject)), "unauthorised")
        l.reject(Self.doctor, .requestErasure(RequestErasure(subject: Self.subject)), "unauthorised")
        l.apply(Self.patient, .requestErasure(RequestErasure(subject: Self.subject)))
        l.reject(Self.patient, .requestErasure(RequestErasure(subject: Self.subject)), "already-exists")
        #expect(try l.state.read(UInt64.self, StateKeys.erasureCount) == 1)
        #expect(try l.state.read(Hash.self, StateKeys.erasureEntry(1)) == Self.subject)
        let d = Self.decide(l, Self.doctor)
        #expect(!d.allowed && d.reason.contains("erased"))
        #expect(!Self.decide(l, Self.patient).allowed, "nothing is left to read, even for the patient")
        l.reject(Self.patient, .registerDevice(RegisterDevice(publicKey: C.ed25519(0x57).publicKey, deviceType: "thermometer", subject: Self.subject)), "invalid-argument")

        l.reject(Self.doctor, .confirmErasure(ConfirmErasure(subject: Self.subject, batchRoots: roots, final: true)), "unauthorised")
        l.reject(gateway, .confirmErasure(ConfirmErasure(subject: Self.subject, batchRoots: [Hash.sha256([3])], final: false)), "unauthorised")
        l.reject(gateway, .confirmErasure(ConfirmErasure(subject: Self.subject, batchRoots: [Hash.sha256([4])], final: false)), "invalid-argument")
        l.reject(gateway, .confirmErasure(ConfirmErasure(subject: Self.subject, batchRoots: [Hash.sha256([9])], final: false)), "invalid-argument")
        l.reject(gateway, .confirmErasure(ConfirmErasure(subject: Self.subject, batchRoots: [roots[0], roots[0]], final: false)), "invalid-argument")
        l.reject(gateway, .confirmErasure(ConfirmErasure(subject: Self.subject, batchRoots: [roots[0]], final: true)), "invalid-argument")
        l.apply(gateway, .confirmErasure(ConfirmErasure(subject: Self.subject, batchRoots: [roots[0]], final: false)))
        l.reject(gateway, .confirmErasure(ConfirmErasure(subject: Self.subject, batchRoots: [roots[0]], final: false)), "already-exists")
        l.apply(gateway, .confirmErasure(ConfirmErasure(subject: Self.subject, batchRoots: [roots[1]], final: true)))
        let progress = try #require(try l.state.read([ErasureProgress].self, StateKeys.erasureProgress(Self.subject)))
        #expect(progress.count == 1 && progress[0].batches == 2 && progress[0].complete && progress[0].gateway == gateway.publicKey.address)
        #expect(l.state.value(forKey: StateKeys.erasedAnchor(roots[0])) != nil && l.state.value(forKey: StateKeys.erasedAnchor(roots[1])) != nil)
        l.reject(gateway, .confirmErasure(ConfirmErasure(subject: Self.subject, batchRoots: [], final: true)), "invalid-argument")
        // A final confirmation that leaves out an anchored batch is refused: "complete" is checked on-chain.
        l.reject(otherGateway, .confirmErasure(ConfirmErasure(subject: Self.subject, batchRoots: [], final: true)), "invalid-argument")
        l.apply(otherGateway, .confirmErasure(ConfirmErasure(subject: Self.subject, batchRoots: [Hash.sha256([3])], final: true)))
    }

    @Test("a device bound to an enrolled patient is registered by the patient or its organisation, and seals only for the patient's key")
    func devicesOfPatients() {
        var l = Self.ledger()
        let k = C.ed25519(0x58).publicKey
        let own = testAgreementKey(Self.patient), stranger = testAgreementKey(C.ed25519(0x59))
        l.reject(C.adminB, .registerDevice(RegisterDevice(publicKey: k, deviceType: "pulse-oximeter", subject: Self.subject)), "unauthorised")
        l.reject(Self.clinicDoctor, .registerDevice(RegisterDevice(publicKey: k, deviceType: "pulse-oximeter", subject: Self.subject)), "unauthorised")
        l.reject(Self.otherPatient, .registerDevice(RegisterDevice(publicKey: k, deviceType: "pulse-oximeter", subject: Self.subject)), "invalid-argument")
        l.reject(C.adminA, .registerDevice(RegisterDevice(publicKey: k, deviceType: "pulse-oximeter", subject: Self.subject, recipientKey: stranger)), "invalid-argument")
        l.apply(Self.doctor, .registerDevice(RegisterDevice(publicKey: k, deviceType: "pulse-oximeter", subject: Self.subject, recipientKey: own)))
        l.apply(Self.patient, .registerDevice(RegisterDevice(publicKey: C.ed25519(0x5A).publicKey, deviceType: "thermometer", subject: Self.subject)))
    }
}
