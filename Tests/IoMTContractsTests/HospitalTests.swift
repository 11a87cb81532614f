import IoMTContracts
import IoMTCore
import Testing

@Suite("Hospital module: assets (status, malfunctions, RFID location) and sterilisation cycles signed by the steriliser")
struct HospitalTests {
    typealias C = Consortium
    static let nurse = C.ed25519(0xD3), gateway = C.ed25519(0xD4), reader = C.ed25519(0xD5), steriliser = C.ed25519(0xD6), clinicNurse = C.ed25519(0xD7), clinicGateway = C.ed25519(0xD8)
    static let tag = "E2801160600002054D3A1B7C"

    static func ledger() -> Ledger {
        var l = Ledger()
        l.addPractitioner(nurse, by: C.adminA, at: "st-marys", profession: "nurse")
        l.addPractitioner(clinicNurse, by: C.adminB, at: "city-clinic", profession: "nurse")
        l.apply(C.adminA, .register(gateway, .gateway, "st-marys"))
        l.apply(C.adminB, .register(clinicGateway, .gateway, "city-clinic"))
        l.apply(C.adminA, .registerDevice(RegisterDevice(publicKey: reader.publicKey, deviceType: "rfid-reader", place: "icu-2")))
        l.apply(C.adminA, .registerDevice(RegisterDevice(publicKey: steriliser.publicKey, deviceType: "steriliser", place: "cssd")))
        return l
    }

    @Test("assets: registered by a member-admin; status by its own staff; a malfunction puts it out of service and counts; RFID sightings move it")
    func assets() throws {
        var l = Self.ledger()
        l.reject(Self.nurse, .registerAsset(RegisterAsset(tag: Self.tag, kind: "respirator", home: "icu-1")), "unauthorised")
        l.reject(C.adminA, .registerAsset(RegisterAsset(tag: Self.tag, kind: "toaster", home: "icu-1")), "invalid-argument")
        l.reject(C.adminA, .registerAsset(RegisterAsset(tag: "tag with spaces", kind: "respirator", home: "icu-1")), "invalid-argument")
        l.apply(C.adminA, .registerAsset(RegisterAsset(tag: Self.tag, kind: "respirator", home: "icu-1")))
        l.reject(C.adminB, .registerAsset(RegisterAsset(tag: Self.tag, kind: "bed", home: "ward-3")), "already-exists")
        l.apply(Self.nurse, .setAssetStatus(SetAssetStatus(tag: Self.tag, status: "in-use")))
        l.reject(Self.clinicNurse, .setAssetStatus(SetAssetStatus(tag: Self.tag, status: "available")), "unauthorised")
        l.reject(Self.nurse, .setAssetStatus(SetAssetStatus(tag: Self.tag, status: "in-use", malfunction: "alarm-fault")), "invalid-argument")
        l.apply(Self.nurse, .setAssetStatus(SetAssetStatus(tag: Self.tag, status: "out-of-service", malfunction: "alarm-fault")))
        var a = try #require(try l.state.read(AssetRecord.self, StateKeys.asset(Self.tag)))
        #expect(a.status == "out-of-service" && a.malfunction == "alarm-fault" && a.malfunctions == 1)
        l.apply(C.adminA, .setAssetStatus(SetAssetStatus(tag: Self.tag, status: "available")))
        a = try #require(try l.state.read(AssetRecord.self, StateKeys.asset(Self.tag)))
        #expect(a.status == "available" && a.malfunction == nil && a.malfunctions == 1)
        // Seen by the ICU's reader.
        let t = l.context.timestampMs
        l.reject(Self.clinicGateway, .recordAssetLocation(RecordAssetLocation(tag: Self.tag, reader: Self.reader.publicKey.address, atMs: t)), "unauthorised")
        l.reject(Self.gateway, .recordAssetLocation(RecordAssetLocation(tag: Self.tag, reader: Self.steriliser.publicKey.address, atMs: t)), "invalid-argument")
        l.apply(Self.gateway, .recordAssetLocation(RecordAssetLocation(tag: Self.tag, reader: Self.reader.publicKey.address, atMs: t)))
        l.apply(Self.gateway, .recordAssetLocation(RecordAssetLocation(tag: Self.tag, reader: Self.reader.publicKey.address, atMs: t - 60_000)))  // older: ignored
        a = try #require(try l.state.read(AssetRecord.self, StateKeys.asset(Self.tag)))
        #expect(a.location == "icu-2" && a.locationMs == t)
        #expect(try l.state.read(StringList.self, StateKeys.assets(of: "st-marys"))?.places == [Self.tag])
    }

    @Test("sterilisation: the steriliser's signature binds the record; its counter shows a missing cycle; only its organisation's practitioners submit")
    func sterilisation() throws {
        var l = Self.ledger()
        let t = l.context.timestampMs
        func cycle(_ n: UInt64, passed: Bool = true) -> SterilisationCycle {
            SterilisationCycle(steriliser: Self.steriliser.publicKey.address, cycle: n, loadHash: Hash.sha256([UInt8(n)]), startMs: t - 3_600_000, endMs: t - 600_000,
                               maxCentiC: 13_450, holdSeconds: 240, passed: passed)
        }
        func record(_ c: SterilisationCycle, signedAs: SterilisationCycle? = nil) -> TransactionPayload {
            .recordSterilisation(RecordSterilisation(cycle: c, steriliserSignature: Self.steriliser.sign((signedAs ?? c).message(chainID: C.chainID))))
        }
        l.reject(C.adminA, record(cycle(1)), "unauthorised")  // the operator is a practitioner
        l.reject(Self.clinicNurse, record(cycle(1)), "unauthorised")
        l.reject(Self.nurse, record(cycle(1, passed: true), signedAs: cycle(1, passed: false)), "invalid-argument")  // an altered record
        l.apply(Self.nurse, record(cycle(1)))
        l.reject(Self.nurse, record(cycle(1)), "already-exists")
        l.apply(Self.nurse, record(cycle(4)))  // 2 and 3 were never recorded
        let r = try #require(try l.state.read(SterilisationRecord.self, StateKeys.sterilisation(Self.steriliser.publicKey.address, 4)))
        #expect(r.missingBefore == 2 && r.operatorAccount == Self.nurse.publicKey.address)
        #expect(try l.state.read(UInt64.self, StateKeys.missingCycles(Self.steriliser.publicKey.address)) == 2)
        l.reject(Self.nurse, record(cycle(3)), "already-exists")  // too late to fill the gap silently
    }
}
