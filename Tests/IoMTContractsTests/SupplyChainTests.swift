import Foundation
import IoMTContracts
import IoMTCore
import Testing

@Suite("Supply chain module: batches, dual-signed custody, recalls, administration, trace")
struct SupplyChainTests {
    typealias C = Consortium
    static let adminM = C.ed25519(0x81), adminL = C.ed25519(0x82)
    static let maker = C.ed25519(0x83), carrier = C.ed25519(0x84), pharmacy = C.ed25519(0x85), nurse = C.ed25519(0x86)
    static let officer = C.ed25519(0x87), patient = C.ed25519(0x88), outsider = C.ed25519(0x89)
    static let genesis = Genesis(
        chainId: C.chainID, genesisTimeMs: 1_700_000_000_000,
        organisations: [C.stMarys, C.agency, Organisation(id: "pharma", name: "Pharma", kind: "manufacturer"), Organisation(id: "logistics", name: "Logistics", kind: "distributor")],
        admins: [.init(publicKey: C.adminA.publicKey, organisation: "st-marys", label: "A"), .init(publicKey: C.adminC.publicKey, organisation: "health-agency", label: "C"),
                 .init(publicKey: adminM.publicKey, organisation: "pharma", label: "M"), .init(publicKey: adminL.publicKey, organisation: "logistics", label: "L")],
        adminQuorum: 2, validators: [Validator(publicKey: C.validatorKey.publicKey, organisation: "st-marys")], consensus: ConsensusParameters())
    static let day: Int64 = 86_400_000

    static func ledger() -> Ledger {
        var l = Ledger(genesis: genesis)
        l.apply(adminM, .register(maker, .supplyChainParty, "pharma"))
        l.apply(adminL, .register(carrier, .supplyChainParty, "logistics"))
        l.apply(C.adminA, .register(pharmacy, .supplyChainParty, "st-marys"))
        l.apply(C.adminA, .register(nurse, .practitioner, "st-marys"))
        l.apply(C.adminA, .attestPractitioner(AttestPractitioner(account: nurse.publicKey.address, profession: "nurse", licenceHash: Hash.sha256([1]))))
        l.apply(C.adminC, .register(officer, .publicHealthOfficer, "health-agency"))
        l.apply(C.adminA, .enrol(patient))
        return l
    }

    static func batch(_ lot: String, units: UInt32 = 100, materials: [Hash] = [], gtin: String = "09506000134352", expires: Int64 = 1_700_000_001_000 + 365 * day) -> RegisterBatch {
        RegisterBatch(gtin: gtin, lot: lot, productCode: "CVX208", units: units, serialsRoot: MerkleTree.root(leaves: (0..<Int(units)).map { Array("\(lot)-\($0)".utf8) }),
                      materials: materials, manufacturedMs: 1_700_000_000_000, expiresMs: expires, minCentiC: 200, maxCentiC: 800)
    }

    /// A custody transfer countersigned by `receiver` (or signed by `signer` instead, to forge one).
    static func transfer(_ l: Ledger, _ id: Hash, units: UInt32, from sender: PrivateKey, to receiver: PrivateKey, signer: PrivateKey? = nil, sequence: UInt64? = nil,
                         validUntil: Int64? = nil) -> TransactionPayload {
        let seq = sequence ?? ((try? l.state.read(BatchRecord.self, StateKeys.batch(id)))??.transfers ?? 0) + 1
        let until = validUntil ?? l.context.timestampMs + day
        let message = TransferCustody.message(chainID: C.chainID, batch: id, units: units, sender: sender.publicKey.address, receiver: receiver.publicKey.address, sequence: seq, validUntilMs: until)
        return .transferCustody(TransferCustody(batch: id, units: units, receiver: receiver.publicKey.address, sequence: seq, validUntilMs: until, receiverSignature: (signer ?? receiver).sign(message)))
    }

    static func holding(_ l: Ledger, _ id: Hash, _ org: String) -> UInt64 { ((try? l.state.read(UInt64.self, StateKeys.holding(id, org))) ?? nil) ?? 0 }

    @Test("GS1 identifiers: check digits, lots, one batch id per GTIN and lot")
    func gs1() {
        #expect(GS1.isValidGTIN("09506000134352") && GS1.isValidGTIN("4006381333931") && GS1.isValidGTIN("96385074"))
        #expect(!GS1.isValidGTIN("09506000134353") && !GS1.isValidGTIN("0950600013435x") && !GS1.isValidGTIN("123"))
        #expect(GS1.isValidLot("AB-12/3.x_") && !GS1.isValidLot("") && !GS1.isValidLot("lot with spaces") && !GS1.isValidLot(String(repeating: "1", count: 21)))
        #expect(GS1.batchID(gtin: "09506000134352", lot: "A") != GS1.batchID(gtin: "09506000134352", lot: "B"))
    }

    @Test("only a manufacturer registers a batch, once, with valid identifiers; a carrier cannot sign a manufacturer's step")
    func registration() throws {
        var l = Self.ledger()
        l.reject(Self.carrier, .registerBatch(Self.batch("L1")), "unauthorised")
        l.reject(Self.pharmacy, .registerBatch(Self.batch("L1")), "unauthorised")
        l.reject(Self.nurse, .registerBatch(Self.batch("L1")), "unauthorised")
        l.reject(Self.maker, .registerBatch(Self.batch("L1", gtin: "09506000134353")), "invalid-argument")
        l.reject(Self.maker, .registerBatch(Self.batch("L 1")), "invalid-argument")
        l.reject(Self.maker, .registerBatch(Self.batch("L1", units: 0)), "invalid-argument")
        l.reject(Self.maker, .registerBatch(Self.batch("L1", expires: 1_000)), "invalid-argument")
        l.reject(Self.maker, .registerBatch(Self.batch("L1", materials: [Hash.sha256([7])])), "invalid-argument")
        l.apply(Self.maker, .registerBatch(Self.batch("L1")))
        l.reject(Self.maker, .registerBatch(Self.batch("L1")), "already-exists")
        // The same GTIN written as 13 or 14 digits is one product.
        l.apply(Self.maker, .registerBatch(Self.batch("L2", gtin: "4006381333931")))
        l.reject(Self.maker, .registerBatch(Self.batch("L2", gtin: "04006381333931")), "already-exists")
        let id = GS1.batchID(gtin: "09506000134352", lot: "L1")
        #expect(Self.holding(l, id, "pharma") == 100)
    }

    @Test("GS1 company prefixes: the consortium assigns one to a manufacturer; then only it registers GTINs under it; prefixes do not nest")
    func companyPrefixes() throws {
        var l = Self.ledger()
        /// Proposed by one admin, approved by another (the quorum is 2).
        func govern(_ action: GovernanceAction, sourceLocation: SourceLocation = #_sourceLocation) throws -> Proposal {
            let id = l.apply(C.adminA, .proposeGovernance(action), sourceLocation: sourceLocation)
            l.apply(C.adminC, .approve(id), sourceLocation: sourceLocation)
            return try #require(l.proposal(id))
        }
        // A second manufacturer, with its admin.
        let rivalAdmin = C.ed25519(0x8A)
        #expect(try govern(.addOrganisation(Organisation(id: "rival", name: "Rival", kind: "manufacturer"))).status == .executed)
        #expect(try govern(.addAdmin(publicKey: rivalAdmin.publicKey, organisation: "rival", label: "R")).status == .executed)
        // No prefix assigned: any manufacturer may use a GTIN (as before prefixes were assigned).
        l.apply(rivalAdmin, .registerBatch(Self.batch("R1")))

        #expect(try govern(.assignGS1Prefix(prefix: "950600", organisation: "pharma")).status == .executed)
        let record = try #require(try l.state.read(GS1PrefixRecord.self, StateKeys.gs1Prefix("950600")))
        #expect(record.organisation == "pharma" && record.height == l.context.height)
        l.reject(rivalAdmin, .registerBatch(Self.batch("R2")), "unauthorised")
        l.apply(Self.maker, .registerBatch(Self.batch("P1")))
        // Refused at once when proposed: taken, nested either way, malformed, not a manufacturer.
        l.reject(C.adminA, .proposeGovernance(.assignGS1Prefix(prefix: "950600", organisation: "rival")), "already-exists")
        l.reject(C.adminA, .proposeGovernance(.assignGS1Prefix(prefix: "9506", organisation: "rival")), "already-exists")
        l.reject(C.adminA, .proposeGovernance(.assignGS1Prefix(prefix: "9506001", organisation: "rival")), "already-exists")
        l.reject(C.adminA, .proposeGovernance(.assignGS1Prefix(prefix: "123", organisation: "rival")), "invalid-argument")
        l.reject(C.adminA, .proposeGovernance(.assignGS1Prefix(prefix: "0000012", organisation: "rival")), "invalid-argument")
        l.reject(C.adminA, .proposeGovernance(.assignGS1Prefix(prefix: "40a6", organisation: "rival")), "invalid-argument")
        l.reject(C.adminA, .proposeGovernance(.assignGS1Prefix(prefix: "4006381", organisation: "health-agency")), "invalid-argument")
        l.reject(C.adminA, .proposeGovernance(.assignGS1Prefix(prefix: "4006381", organisation: "nobody")), "unknown-organisation")
        // A GTIN-13's prefix starts at its first digit; a GTIN-12's (U.P.C.) with a 0 before it.
        #expect(GS1.companyPrefixCandidates("4006381333931").contains("4006381"))
        #expect(GS1.companyPrefixCandidates("036000291452").contains("0036000"))
        #expect(try govern(.assignGS1Prefix(prefix: "4006381", organisation: "rival")).status == .executed)
        l.reject(Self.maker, .registerBatch(Self.batch("P2", gtin: "4006381333931")), "unauthorised")
        l.apply(rivalAdmin, .registerBatch(Self.batch("R3", gtin: "4006381333931")))
    }

    @Test("custody moves only with the receiver's countersignature, to a registered party of another organisation, within what the sender holds")
    func custody() throws {
        var l = Self.ledger()
        l.apply(Self.maker, .registerBatch(Self.batch("L1")))
        let id = GS1.batchID(gtin: "09506000134352", lot: "L1")
        l.reject(Self.maker, Self.transfer(l, id, units: 10, from: Self.maker, to: Self.carrier, signer: Self.outsider), "invalid-argument")
        l.reject(Self.maker, Self.transfer(l, id, units: 10, from: Self.maker, to: Self.outsider), "unknown-account")
        l.reject(Self.maker, Self.transfer(l, id, units: 10, from: Self.maker, to: Self.nurse), "invalid-argument")
        l.reject(Self.maker, Self.transfer(l, id, units: 101, from: Self.maker, to: Self.carrier), "invalid-argument")
        l.reject(Self.maker, Self.transfer(l, id, units: 10, from: Self.maker, to: Self.carrier, sequence: 2), "invalid-argument")
        l.reject(Self.maker, Self.transfer(l, id, units: 10, from: Self.maker, to: Self.carrier, validUntil: l.context.timestampMs - 1), "invalid-argument")
        l.apply(Self.maker, Self.transfer(l, id, units: 20, from: Self.maker, to: Self.pharmacy))
        // The countersignature names the sender: the carrier's signature for the maker is no good for
        // the pharmacy (which holds units, so only the signature can refuse it).
        let forMaker = Self.transfer(l, id, units: 10, from: Self.maker, to: Self.carrier)
        l.reject(Self.pharmacy, forMaker, "invalid-argument")
        l.apply(Self.maker, Self.transfer(l, id, units: 60, from: Self.maker, to: Self.carrier))
        l.reject(Self.carrier, Self.transfer(l, id, units: 61, from: Self.carrier, to: Self.pharmacy), "invalid-argument")
        l.apply(Self.carrier, Self.transfer(l, id, units: 50, from: Self.carrier, to: Self.pharmacy))
        #expect(Self.holding(l, id, "pharma") == 20 && Self.holding(l, id, "logistics") == 10 && Self.holding(l, id, "st-marys") == 70)
        let second = try #require(try l.state.read(CustodyRecord.self, StateKeys.custodyTransfer(id, 3)))
        #expect(second.fromOrganisation == "logistics" && second.toOrganisation == "st-marys" && second.units == 50)
        // Each organisation that held units, once, in order: what the trace and recall notices read.
        #expect(try l.state.read(StringList.self, StateKeys.batchHolders(id))?.places == ["pharma", "st-marys", "logistics"])
    }

    @Test("administration: attested practitioners of a holding organisation, one unit each, to an enrolled patient; never a recalled batch")
    func administrationAndRecall() throws {
        var l = Self.ledger()
        l.apply(Self.maker, .registerBatch(Self.batch("L1")))
        let id = GS1.batchID(gtin: "09506000134352", lot: "L1")
        let subject = Pseudonym.of(Self.patient.publicKey.address)
        func dose(_ serial: String, _ s: Hash = subject) -> TransactionPayload {
            .administerDose(AdministerDose(batch: id, subject: s, serialHash: Hash.sha256(Array(serial.utf8)), atMs: l.context.timestampMs))
        }
        l.reject(Self.nurse, dose("L1-1"), "invalid-argument")  // st-marys holds none yet
        l.apply(Self.maker, Self.transfer(l, id, units: 5, from: Self.maker, to: Self.pharmacy))
        l.reject(Self.pharmacy, dose("L1-1"), "unauthorised")
        l.reject(Self.nurse, dose("L1-1", Hash.sha256([9])), "invalid-argument")
        l.apply(Self.nurse, dose("L1-1"))
        l.reject(Self.nurse, dose("L1-1"), "already-exists")
        l.apply(Self.nurse, dose("L1-2"))
        #expect(Self.holding(l, id, "st-marys") == 3)
        // Recall: only the manufacturer or public health; then no unit is given.
        l.reject(Self.carrier, .recallBatch(RecallBatch(batch: id, reasonCode: "quality-defect")), "unauthorised")
        l.reject(Self.pharmacy, .recallBatch(RecallBatch(batch: id, reasonCode: "quality-defect")), "unauthorised")
        l.reject(Self.officer, .recallBatch(RecallBatch(batch: id, reasonCode: "bad")), "invalid-argument")
        // A public-health officer registered by a hospital is not public health.
        let hospitalOfficer = C.ed25519(0x8A)
        l.apply(C.adminA, .register(hospitalOfficer, .publicHealthOfficer, "st-marys"))
        l.reject(hospitalOfficer, .recallBatch(RecallBatch(batch: id, reasonCode: "quality-defect")), "unauthorised")
        l.apply(Self.officer, .recallBatch(RecallBatch(batch: id, reasonCode: "adverse-events")))
        // Recalled units go back to the manufacturer only.
        l.reject(Self.pharmacy, Self.transfer(l, id, units: 1, from: Self.pharmacy, to: Self.carrier), "invalid-argument")
        l.apply(Self.pharmacy, Self.transfer(l, id, units: 1, from: Self.pharmacy, to: Self.maker))
        l.reject(Self.maker, .recallBatch(RecallBatch(batch: id, reasonCode: "quality-defect")), "already-exists")
        l.reject(Self.nurse, dose("L1-3"), "invalid-argument")
        let b = try #require(try l.state.read(BatchRecord.self, StateKeys.batch(id)))
        #expect(b.administered == 2 && b.recall?.reasonCode == "adverse-events" && Self.holding(l, id, "pharma") == 96)
        #expect(try l.state.read(AdministrationRecord.self, StateKeys.administration(id, 2))?.dose.subject == subject)
    }

    @Test("a serial is given once per GTIN, whatever the lot: the same serial from another lot of the product is a copied label")
    func serialOncePerGTIN() throws {
        var l = Self.ledger()
        l.apply(Self.maker, .registerBatch(Self.batch("LOT-A")))
        l.apply(Self.maker, .registerBatch(Self.batch("LOT-B")))
        l.apply(Self.maker, .registerBatch(Self.batch("LOT-C", gtin: "4006381333931")))
        let ids = ["LOT-A", "LOT-B"].map { GS1.batchID(gtin: "09506000134352", lot: $0) } + [GS1.batchID(gtin: "4006381333931", lot: "LOT-C")]
        for id in ids { l.apply(Self.maker, Self.transfer(l, id, units: 5, from: Self.maker, to: Self.pharmacy)) }
        func dose(_ batch: Hash, _ serial: String) -> TransactionPayload {
            .administerDose(AdministerDose(batch: batch, subject: Pseudonym.of(Self.patient.publicKey.address), serialHash: Hash.sha256(Array(serial.utf8)), atMs: l.context.timestampMs))
        }
        l.apply(Self.nurse, dose(ids[0], "SN-1"))
        l.reject(Self.nurse, dose(ids[1], "SN-1"), "already-exists")
        l.apply(Self.nurse, dose(ids[2], "SN-1"))  // another product: its own serials
        #expect(Self.holding(l, ids[1], "st-marys") == 5)
    }

    @Test("adverse events: by an attested practitioner or the patient itself, in codes, only for a patient given a unit of the batch")
    func adverseEvents() throws {
        var l = Self.ledger()
        l.apply(Self.maker, .registerBatch(Self.batch("L1")))
        let id = GS1.batchID(gtin: "09506000134352", lot: "L1")
        let subject = Pseudonym.of(Self.patient.publicKey.address)
        func report(_ code: String = "snomed:39579001", _ severity: String = "moderate", _ s: Hash = subject) -> TransactionPayload {
            .reportAdverseEvent(ReportAdverseEvent(batch: id, subject: s, reactionCode: code, severity: severity, onsetMs: l.context.timestampMs))
        }
        l.reject(Self.nurse, report(), "unauthorised")  // st-marys never received the batch
        l.apply(Self.maker, Self.transfer(l, id, units: 1, from: Self.maker, to: Self.pharmacy))
        l.reject(Self.nurse, report(), "invalid-argument")  // received, but not given to this patient yet
        l.apply(Self.nurse, .administerDose(AdministerDose(batch: id, subject: subject, serialHash: Hash.sha256([1]), atMs: l.context.timestampMs)))
        l.reject(Self.nurse, report("anaphylaxis"), "invalid-argument")
        l.reject(Self.nurse, report("snomed:12ab"), "invalid-argument")
        l.reject(Self.nurse, report("snomed:39579001", "awful"), "invalid-argument")
        l.reject(Self.pharmacy, report(), "unauthorised")
        l.reject(Self.officer, report(), "unauthorised")
        l.apply(Self.nurse, report())
        l.reject(Self.nurse, report(), "already-exists")
        l.apply(Self.patient, report("meddra:10002198", "severe"))
        // Another patient cannot report for this one; a practitioner of an organisation that never received the batch cannot either.
        let other = C.ed25519(0x8B)
        l.apply(C.adminA, .enrol(other))
        l.reject(other, report("snomed:1"), "unauthorised")
        #expect(try l.state.read(UInt64.self, StateKeys.adverseEventCount(id)) == 2)
        #expect(try l.state.read(AdverseEventRecord.self, StateKeys.adverseEvent(id, 2))?.reporterRole == "patient")
    }

    @Test("a batch made from materials is listed under each material, for the forward trace")
    func materials() throws {
        var l = Self.ledger()
        l.apply(Self.maker, .registerBatch(Self.batch("ANTIGEN-1")))
        let material = GS1.batchID(gtin: "09506000134352", lot: "ANTIGEN-1")
        // A manufacturer must hold the material it names.
        l.apply(Self.maker, Self.transfer(l, material, units: 100, from: Self.maker, to: Self.carrier))
        l.reject(Self.maker, .registerBatch(Self.batch("FILL-0", materials: [material])), "invalid-argument")
        l.apply(Self.carrier, Self.transfer(l, material, units: 10, from: Self.carrier, to: Self.maker))
        l.apply(Self.maker, .registerBatch(Self.batch("FILL-1", materials: [material])))
        l.apply(Self.maker, .registerBatch(Self.batch("FILL-2", materials: [material])))
        #expect(try l.state.read(IDList.self, StateKeys.madeFrom(material))?.ids == [GS1.batchID(gtin: "09506000134352", lot: "FILL-1"), GS1.batchID(gtin: "09506000134352", lot: "FILL-2")])
        l.reject(Self.maker, .registerBatch(Self.batch("FILL-3", materials: [material, material])), "invalid-argument")
        // A batch's ancestry is bounded (the dose index walks it): 2 intermediates of 32 raw lots each reach 66 batches.
        var intermediates: [Hash] = []
        for i in 0..<2 {
            let raws = (0..<32).map { j in Self.batch("RAW-\(i)-\(j)", units: 1) }
            for r in raws { l.apply(Self.maker, .registerBatch(r)) }
            l.apply(Self.maker, .registerBatch(Self.batch("MID-\(i)", units: 1, materials: raws.map(\.id))))
            intermediates.append(GS1.batchID(gtin: "09506000134352", lot: "MID-\(i)"))
        }
        l.apply(Self.maker, .registerBatch(Self.batch("TOP-8", materials: Array(intermediates.prefix(1)))))  // 33
        l.reject(Self.maker, .registerBatch(Self.batch("TOP-9", materials: intermediates)), "invalid-argument")
        // The recall of an ingredient reaches what was made with it: FILL-1's doses stop.
        let fill = GS1.batchID(gtin: "09506000134352", lot: "FILL-1")
        l.apply(Self.maker, Self.transfer(l, fill, units: 10, from: Self.maker, to: Self.pharmacy))
        func dose(_ s: String) -> TransactionPayload {
            .administerDose(AdministerDose(batch: fill, subject: Pseudonym.of(Self.patient.publicKey.address), serialHash: Hash.sha256(Array(s.utf8)), atMs: l.context.timestampMs))
        }
        l.apply(Self.nurse, dose("F-1"))
        l.apply(Self.maker, .recallBatch(RecallBatch(batch: material, reasonCode: "quality-defect")))
        l.reject(Self.nurse, dose("F-2"), "invalid-argument")
    }

    @Test("the forward trace lists each patient once, in first-dose order, from the contract's paged index (across pages and derived batches)")
    func patientIndex() throws {
        var l = Self.ledger()
        l.apply(Self.maker, .registerBatch(Self.batch("ANTIGEN-9")))
        let material = GS1.batchID(gtin: "09506000134352", lot: "ANTIGEN-9")
        l.apply(Self.maker, .registerBatch(Self.batch("FILL-A", units: 1_000, materials: [material])))
        l.apply(Self.maker, .registerBatch(Self.batch("FILL-B", units: 1_000, materials: [material])))
        let a = GS1.batchID(gtin: "09506000134352", lot: "FILL-A"), b = GS1.batchID(gtin: "09506000134352", lot: "FILL-B")
        l.apply(Self.maker, Self.transfer(l, a, units: 1_000, from: Self.maker, to: Self.pharmacy))
        l.apply(Self.maker, Self.transfer(l, b, units: 1_000, from: Self.maker, to: Self.pharmacy))
        // 600 patients: three pages of batch A's index. Every patient gets a dose of A, the first
        // 100 a second one (not listed twice), and patients 500… one of B.
        var subjects: [Hash] = []
        for i in 0..<600 {
            var seed = [UInt8](repeating: 0x5A, count: 32)
            seed[30] = UInt8(i >> 8); seed[31] = UInt8(i & 0xFF)
            let key = try PrivateKey(algorithm: .ed25519, rawBytes: seed)
            l.apply(C.adminA, .enrol(key))
            subjects.append(Pseudonym.of(key.publicKey.address))
        }
        var serial = 0
        func dose(_ batch: Hash, _ s: Hash) {
            serial += 1
            l.apply(Self.nurse, .administerDose(AdministerDose(batch: batch, subject: s, serialHash: Hash.sha256(Array("u\(serial)".utf8)), atMs: l.context.timestampMs)))
        }
        for s in subjects { dose(a, s) }
        for s in subjects.prefix(100) { dose(a, s) }
        for s in subjects.suffix(100) { dose(b, s) }
        #expect(try l.state.read(UInt64.self, StateKeys.batchPatientCount(a)) == 600)
        #expect(try l.state.read(IDList.self, StateKeys.batchPatients(a, page: 2))?.ids == Array(subjects[512..<600]))
        let traceA = try #require(try BatchTrace.of(a, in: l.state.committed()))
        #expect(traceA.patients == subjects && traceA.administrations == 700 && traceA.materials == [material] && !traceA.truncated)
        // From the material: both derived batches, each patient once.
        let traceM = try #require(try BatchTrace.of(material, in: l.state.committed()))
        #expect(traceM.derived == [a, b] && traceM.patients == subjects && traceM.administrations == 800)
        #expect(Set(traceM.organisations) == ["pharma", "st-marys"])
        #expect(try BatchTrace.of(Hash.sha256([7]), in: l.state.committed()) == nil)
    }

    @Test("cold chain: a holder places its own logger with units it holds; an excursion beyond the batch's range quarantines them (not given, not moved)")
    func coldChain() throws {
        var l = Self.ledger()
        l.apply(Self.maker, .registerBatch(Self.batch("COLD-1")))
        let id = GS1.batchID(gtin: "09506000134352", lot: "COLD-1")
        l.apply(Self.maker, Self.transfer(l, id, units: 40, from: Self.maker, to: Self.carrier))
        let logger = C.ed25519(0x8C), counter = C.ed25519(0x8D), gateway = C.ed25519(0x8E), hospitalGateway = C.ed25519(0x8F)
        l.apply(Self.adminL, .registerDevice(RegisterDevice(publicKey: logger.publicKey, deviceType: "cold-chain-logger", place: "truck-7")))
        l.apply(Self.adminL, .registerDevice(RegisterDevice(publicKey: counter.publicKey, deviceType: "crowd-counter", place: "depot")))
        l.apply(Self.adminL, .register(gateway, .gateway, "logistics"))
        l.apply(C.adminA, .register(hospitalGateway, .gateway, "st-marys"))
        let device = logger.publicKey.address
        func excursion(_ centiC: Int32) -> TransactionPayload { .reportExcursion(ReportExcursion(device: device, batch: id, centiC: centiC, atMs: l.context.timestampMs)) }
        l.reject(gateway, excursion(1_200), "invalid-argument")  // not placed yet
        l.reject(Self.carrier, .attachLogger(AttachLogger(device: device, batch: id, units: 50)), "invalid-argument")  // holds 40
        l.reject(Self.pharmacy, .attachLogger(AttachLogger(device: device, batch: id, units: 1)), "unauthorised")  // another organisation's logger
        l.reject(Self.carrier, .attachLogger(AttachLogger(device: counter.publicKey.address, batch: id, units: 1)), "invalid-argument")  // not a logger
        l.reject(Self.nurse, .attachLogger(AttachLogger(device: device, batch: id, units: 1)), "unauthorised")
        l.apply(Self.carrier, .attachLogger(AttachLogger(device: device, batch: id, units: 30)))
        #expect(try l.state.read(StorageRecord.self, StateKeys.storage(id, 1))?.place == "truck-7")
        l.reject(gateway, excursion(500), "invalid-argument")  // within 2–8 °C
        l.reject(hospitalGateway, excursion(1_200), "unauthorised")  // not the logger's organisation
        l.reject(Self.pharmacy, excursion(1_200), "unauthorised")
        l.apply(gateway, excursion(1_200))
        #expect(Self.holding(l, id, "logistics") == 10)
        #expect(try l.state.read(UInt64.self, StateKeys.quarantined(id, "logistics")) == 30)
        let first = try #require(try l.state.read(ExcursionRecord.self, StateKeys.excursion(id, 1)))
        #expect(first.quarantined == 30 && first.place == "truck-7" && first.organisation == "logistics" && first.reporter == gateway.publicKey.address)
        // A second excursion of the same storage is recorded; nothing more to quarantine.
        l.apply(Self.carrier, excursion(-150))
        #expect(try l.state.read(ExcursionRecord.self, StateKeys.excursion(id, 2))?.quarantined == 0)
        #expect(try l.state.read(StorageRecord.self, StateKeys.storage(id, 1))?.excursions == 2)
        // Quarantined units are not moved.
        l.reject(Self.carrier, Self.transfer(l, id, units: 20, from: Self.carrier, to: Self.pharmacy), "invalid-argument")
        l.apply(Self.carrier, Self.transfer(l, id, units: 10, from: Self.carrier, to: Self.pharmacy))
        // Taken off: the storage record ends, and the logger reports no more for the batch.
        l.apply(Self.carrier, .attachLogger(AttachLogger(device: device, batch: id, units: 0)))
        #expect(try l.state.read(StorageRecord.self, StateKeys.storage(id, 1))?.untilMs == l.context.timestampMs)
        l.reject(gateway, excursion(1_300), "invalid-argument")
        l.reject(Self.carrier, .attachLogger(AttachLogger(device: device, batch: id, units: 0)), "invalid-argument")
    }

    @Test("cold chain by serial: units placed with a logger by serial are quarantined one by one at an excursion; a dose of one is refused, of another not")
    func coldChainBySerial() throws {
        var l = Self.ledger()
        l.apply(Self.maker, .registerBatch(Self.batch("VIAL-1")))
        let id = GS1.batchID(gtin: "09506000134352", lot: "VIAL-1")
        l.apply(Self.maker, Self.transfer(l, id, units: 10, from: Self.maker, to: Self.pharmacy))
        let fridge = C.ed25519(0x90)
        l.apply(C.adminA, .registerDevice(RegisterDevice(publicKey: fridge.publicKey, deviceType: "cold-chain-logger", place: "pharmacy-fridge")))
        let subject = Pseudonym.of(Self.patient.publicKey.address)
        func serial(_ s: String) -> Hash { Hash.sha256(Array(s.utf8)) }
        func dose(_ s: String) -> TransactionPayload { .administerDose(AdministerDose(batch: id, subject: subject, serialHash: serial(s), atMs: l.context.timestampMs)) }
        func place(_ serials: [String], units: UInt32? = nil) -> TransactionPayload {
            .attachLogger(AttachLogger(device: fridge.publicKey.address, batch: id, units: units ?? UInt32(serials.count), serialHashes: serials.map(serial)))
        }
        l.apply(Self.nurse, dose("S-4"))
        l.reject(Self.pharmacy, place(["S-1", "S-2"], units: 3), "invalid-argument")      // one hash per unit
        l.reject(Self.pharmacy, place(["S-1", "S-1", "S-2"]), "invalid-argument")         // distinct
        l.reject(Self.pharmacy, place(["S-1", "S-2", "S-4"]), "invalid-argument")         // S-4 was given
        l.apply(Self.pharmacy, place(["S-1", "S-2", "S-3"]))
        #expect(try l.state.read(IDList.self, StateKeys.storageSerials(id, 1))?.ids == ["S-1", "S-2", "S-3"].map(serial))
        l.apply(Self.nurse, dose("S-3"))  // given before any excursion: fine
        l.apply(Self.pharmacy, .reportExcursion(ReportExcursion(device: fridge.publicKey.address, batch: id, centiC: 1_150, atMs: l.context.timestampMs)))
        #expect(try l.state.read(UInt64.self, StateKeys.quarantinedUnit(id, serial("S-1"))) == 1)
        #expect(try l.state.read(UInt64.self, StateKeys.quarantinedUnit(id, serial("S-2"))) == 1)
        #expect(l.state.value(forKey: StateKeys.quarantinedUnit(id, serial("S-3"))) == nil)  // given already
        l.reject(Self.nurse, dose("S-1"), "invalid-argument")
        l.apply(Self.nurse, dose("S-5"))
        // Held 10: two given before, the two still there quarantined, one more given.
        #expect(Self.holding(l, id, "st-marys") == 10 - 2 - 2 - 1)
        #expect(try l.state.read(UInt64.self, StateKeys.quarantined(id, "st-marys")) == 2)
        #expect(try l.state.read(ExcursionRecord.self, StateKeys.excursion(id, 1))?.quarantined == 2)
    }

    @Test("raw-material sources and test results: the manufacturer's own sources linked to its own batches; tests by the manufacturer or a laboratory; the trace goes back to the sources")
    func sourcesAndTests() throws {
        var l = Self.ledger()
        let labAdmin = C.ed25519(0x8E), labTech = C.ed25519(0x8F)
        l.apply(Self.maker, .registerBatch(Self.batch("API-1")))
        let material = GS1.batchID(gtin: "09506000134352", lot: "API-1")
        l.apply(Self.maker, .registerBatch(Self.batch("FILL-9", materials: [material])))
        let fill = GS1.batchID(gtin: "09506000134352", lot: "FILL-9")
        let source = TransactionPayload.registerMaterialSource(RegisterMaterialSource(source: Hash.sha256([1]), materialCode: "cas:50-99-7", supplierCode: "SUP-42", originCountry: "DE",
                                                                                       certificateHash: Hash.sha256([2])))
        l.reject(Self.carrier, source, "unauthorised")  // a distributor
        l.reject(Self.maker, .registerMaterialSource(RegisterMaterialSource(source: Hash.sha256([1]), materialCode: "glucose from a farm", supplierCode: "SUP-42", originCountry: "DE",
                                                                            certificateHash: Hash.sha256([2]))), "invalid-argument")
        l.reject(Self.maker, .registerMaterialSource(RegisterMaterialSource(source: Hash.sha256([1]), materialCode: "cas:50-99-7", supplierCode: "SUP-42", originCountry: "Germany",
                                                                            certificateHash: Hash.sha256([2]))), "invalid-argument")
        l.apply(Self.maker, source)
        l.reject(Self.maker, source, "already-exists")
        l.reject(Self.carrier, .linkMaterialSource(LinkMaterialSource(batch: material, source: Hash.sha256([1]))), "unauthorised")
        l.reject(Self.maker, .linkMaterialSource(LinkMaterialSource(batch: material, source: Hash.sha256([9]))), "invalid-argument")
        l.apply(Self.maker, .linkMaterialSource(LinkMaterialSource(batch: material, source: Hash.sha256([1]))))
        l.reject(Self.maker, .linkMaterialSource(LinkMaterialSource(batch: material, source: Hash.sha256([1]))), "already-exists")
        let trace = try #require(try BatchTrace.of(fill, in: l.state.committed()))
        #expect(trace.sources == [Hash.sha256([1])] && trace.materials == [material])
        // Tests: the manufacturer, or a laboratory's attested practitioner; nobody else.
        let t = l.context.timestampMs
        func test(_ code: String, _ passed: Bool = true) -> TransactionPayload { .recordBatchTest(RecordBatchTest(batch: fill, testCode: code, passed: passed, reportHash: Hash.sha256([3]), atMs: t)) }
        l.apply(Self.maker, test("sterility"))
        l.reject(Self.pharmacy, test("potency"), "unauthorised")
        l.reject(Self.nurse, test("potency"), "unauthorised")  // a hospital's practitioner is not a laboratory
        l.reject(Self.maker, test("vibes"), "invalid-argument")
        l.govern(.addOrganisation(Organisation(id: "lab", name: "Lab", kind: "laboratory")), by: C.adminA, approvedBy: [C.adminC])
        l.govern(.addAdmin(publicKey: labAdmin.publicKey, organisation: "lab", label: "lab"), by: C.adminA, approvedBy: [C.adminC])
        l.addPractitioner(labTech, by: labAdmin, at: "lab", profession: "technician")
        l.apply(labTech, test("potency", false))
        #expect(try l.state.read(UInt64.self, StateKeys.batchTestCount(fill)) == 2)
        #expect(try l.state.read(BatchTestRecord.self, StateKeys.batchTest(fill, 2))?.organisation == "lab")
    }
}
