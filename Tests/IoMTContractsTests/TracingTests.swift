import IoMTContracts
import IoMTCore
import Testing

@Suite("Tracing module: venues, anchored check-ins, positive cases by medical centres only, exposures once per case and venue")
struct TracingTests {
    typealias C = Consortium
    static let doctor = C.ed25519(0x91), agencyDoctor = C.ed25519(0x92), gateway = C.ed25519(0x93), agencyGateway = C.ed25519(0x94), patient = C.ed25519(0x95)

    static func ledger() -> Ledger {
        var l = Ledger()
        l.addPractitioner(doctor, by: C.adminA, at: "st-marys", profession: "doctor")
        l.addPractitioner(agencyDoctor, by: C.adminC, at: "health-agency", profession: "doctor")
        l.apply(C.adminA, .register(gateway, .gateway, "st-marys"))
        l.apply(C.adminC, .register(agencyGateway, .gateway, "health-agency"))
        l.apply(C.adminA, .enrol(patient))
        return l
    }

    static func report(_ id: UInt8, _ l: Ledger, tokens: [Hash] = [Hash.sha256([7]), Hash.sha256([8])]) -> TransactionPayload {
        .reportPositive(ReportPositive(caseID: Hash.sha256([id]), tokenHashes: tokens, fromMs: l.context.timestampMs - 86_400_000, toMs: l.context.timestampMs))
    }

    @Test("venues: a member-admin registers its organisation's, once, with a slug id and a capacity")
    func venues() throws {
        var l = Self.ledger()
        l.reject(Self.doctor, .registerVenue(RegisterVenue(venue: "waiting-room", capacity: 40)), "unauthorised")
        l.reject(C.adminA, .registerVenue(RegisterVenue(venue: "Waiting Room", capacity: 40)), "invalid-argument")
        l.reject(C.adminA, .registerVenue(RegisterVenue(venue: "waiting-room", capacity: 0)), "invalid-argument")
        l.apply(C.adminA, .registerVenue(RegisterVenue(venue: "waiting-room", capacity: 40)))
        l.reject(C.adminC, .registerVenue(RegisterVenue(venue: "waiting-room", capacity: 10)), "already-exists")
        #expect(try l.state.read(VenueRecord.self, StateKeys.venue("waiting-room"))?.organisation == "st-marys")
    }

    @Test("only an attested practitioner of a medical centre records a positive case; a public-health agency's, a patient or a gateway cannot")
    func positiveCases() throws {
        var l = Self.ledger()
        l.reject(Self.patient, Self.report(1, l), "unauthorised")
        l.reject(Self.gateway, Self.report(1, l), "unauthorised")
        l.reject(Self.agencyDoctor, Self.report(1, l), "unauthorised")  // health-agency is not a medical centre
        l.reject(C.adminA, Self.report(1, l), "unauthorised")
        l.reject(Self.doctor, Self.report(1, l, tokens: []), "invalid-argument")
        l.reject(Self.doctor, Self.report(1, l, tokens: [Hash.sha256([7]), Hash.sha256([7])]), "invalid-argument")
        l.reject(Self.doctor, .reportPositive(ReportPositive(caseID: Hash.sha256([1]), tokenHashes: [Hash.sha256([7])], fromMs: 0, toMs: l.context.timestampMs)), "invalid-argument")  // > 21 days
        l.reject(Self.doctor, .reportPositive(ReportPositive(caseID: Hash.sha256([1]), tokenHashes: [Hash.sha256([7])], fromMs: .min, toMs: l.context.timestampMs)), "invalid-argument")
        l.reject(Self.doctor, .reportPositive(ReportPositive(caseID: Hash.sha256([1]), tokenHashes: [Hash.sha256([7])], fromMs: .min, toMs: .min + 1)), "invalid-argument")
        l.apply(Self.doctor, Self.report(1, l))
        l.reject(Self.doctor, Self.report(1, l), "already-exists")
        #expect(try l.state.read(UInt64.self, StateKeys.caseCount) == 1)
        #expect(try l.state.read(Hash.self, StateKeys.caseEntry(1)) == Hash.sha256([1]))
        #expect(try l.state.read(CaseRecord.self, StateKeys.positiveCase(Hash.sha256([1])))?.practitioner == Self.doctor.publicKey.address)
    }

    @Test("exposures: the venue's own gateway, a known case, anchored check-ins of that venue, once per case and venue")
    func exposures() throws {
        var l = Self.ledger()
        l.apply(C.adminA, .registerVenue(RegisterVenue(venue: "waiting-room", capacity: 40)))
        l.apply(C.adminC, .registerVenue(RegisterVenue(venue: "agency-lobby", capacity: 40)))
        let root = Hash.sha256([42]), otherRoot = Hash.sha256([43])
        l.reject(Self.agencyGateway, .anchorCheckIns(AnchorCheckIns(venue: "waiting-room", root: root, count: 3, firstMs: 1, lastMs: 2)), "unauthorised")
        l.reject(Self.gateway, .anchorCheckIns(AnchorCheckIns(venue: "cinema", root: root, count: 3, firstMs: 1, lastMs: 2)), "invalid-argument")
        l.reject(Self.gateway, .anchorCheckIns(AnchorCheckIns(venue: "waiting-room", root: root, count: 0, firstMs: 1, lastMs: 2)), "invalid-argument")
        l.apply(Self.gateway, .anchorCheckIns(AnchorCheckIns(venue: "waiting-room", root: root, count: 3, firstMs: 1, lastMs: 2)))
        l.reject(Self.gateway, .anchorCheckIns(AnchorCheckIns(venue: "waiting-room", root: root, count: 3, firstMs: 1, lastMs: 2)), "already-exists")
        l.apply(Self.agencyGateway, .anchorCheckIns(AnchorCheckIns(venue: "agency-lobby", root: otherRoot, count: 1, firstMs: 1, lastMs: 2)))
        let exposed = [Hash.sha256([9])]
        func record(_ roots: [Hash] = [root], venue: String = "waiting-room", caseID: Hash = Hash.sha256([1]), part: UInt32 = 0, exposed: [Hash] = exposed) -> TransactionPayload {
            .recordExposures(RecordExposures(caseID: caseID, venue: venue, part: part, exposed: exposed, checkInRoots: roots))
        }
        l.reject(Self.gateway, record(), "invalid-argument")  // no such case yet
        l.apply(Self.doctor, Self.report(1, l))
        l.reject(Self.agencyGateway, record(), "unauthorised")  // not the venue's gateway
        l.reject(Self.doctor, record(), "unauthorised")
        l.reject(Self.gateway, record([otherRoot]), "invalid-argument")  // another venue's anchor
        l.reject(Self.gateway, record([Hash.sha256([44])]), "invalid-argument")  // not anchored
        l.reject(Self.gateway, record([]), "invalid-argument")
        l.reject(Self.gateway, record([root, root]), "invalid-argument")  // distinct roots
        l.reject(Self.gateway, record(exposed: (0..<1_501).map { Hash.sha256(Array("t\($0)".utf8)) }), "invalid-argument")  // 1,500 a part
        l.reject(Self.gateway, record(part: 64), "invalid-argument")
        l.apply(Self.gateway, record())
        l.reject(Self.gateway, record(), "already-exists")
        // A large venue's exposures go in further parts, each once.
        l.apply(Self.gateway, record(part: 1, exposed: [Hash.sha256([10])]))
        l.reject(Self.gateway, record(part: 1, exposed: [Hash.sha256([11])]), "already-exists")
        l.apply(Self.agencyGateway, record([otherRoot], venue: "agency-lobby"))
        let first = try #require(try l.state.read(ExposureRecord.self, StateKeys.exposureEntry(1)))
        #expect(first.record.exposed == exposed && first.gateway == Self.gateway.publicKey.address && first.record.venue == "waiting-room")
        #expect(try l.state.read(UInt64.self, StateKeys.exposureCount) == 3)
        #expect(try l.state.read(ExposureRecord.self, StateKeys.exposureEntry(2))?.record.part == 1)
    }
}
