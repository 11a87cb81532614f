import IoMTContracts
import IoMTCore
import Testing

@Suite("Outbreak module: fever detections from a place's cameras by their gateway, test results by practitioners of medical institutions, one grid")
struct OutbreakTests {
    typealias C = Consortium
    static let gateway = C.ed25519(0xC3), camera = C.ed25519(0xC4), oximeter = C.ed25519(0xC5), labTech = C.ed25519(0xC6), clinicDoc = C.ed25519(0xC7), agencyDoc = C.ed25519(0xC8)

    static func ledger() -> Ledger {
        var l = Ledger()
        l.apply(C.adminA, .register(gateway, .gateway, "st-marys"))
        l.apply(C.adminA, .registerDevice(RegisterDevice(publicKey: camera.publicKey, deviceType: "thermal-camera", place: "station-3")))
        l.apply(C.adminA, .registerDevice(RegisterDevice(publicKey: oximeter.publicKey, deviceType: "pulse-oximeter", place: "station-3")))
        l.addPractitioner(labTech, by: C.adminA, at: "st-marys", profession: "technician")
        l.addPractitioner(clinicDoc, by: C.adminB, at: "city-clinic", profession: "doctor")
        l.addPractitioner(agencyDoc, by: C.adminC, at: "health-agency", profession: "doctor")
        return l
    }

    @Test("fevers and test results from two institutions add up in the place's hour; the wrong device, sender or values are refused")
    func grid() throws {
        var l = Self.ledger()
        let t = l.context.timestampMs / 3_600_000 * 3_600_000  // the grid's hour
        func fever(_ c: Int32, _ d: PrivateKey = Self.camera) -> TransactionPayload { .recordFeverDetection(RecordFeverDetection(device: d.publicKey.address, atMs: t, centiC: c)) }
        func result(_ id: UInt8, _ outcome: String = "positive", place: String = "station-3", assay: String = "loinc:94500-6") -> TransactionPayload {
            .recordTestResult(RecordTestResult(resultID: Hash.sha256([id]), place: place, sampledAtMs: t, assay: assay, outcome: outcome))
        }
        l.reject(Self.gateway, fever(3_700), "invalid-argument")  // 37.0 °C is no fever
        l.reject(Self.gateway, .recordFeverDetection(RecordFeverDetection(device: Self.camera.publicKey.address, atMs: t + 61_000, centiC: 3_850)), "invalid-argument")  // an exact time
        l.reject(Self.gateway, fever(3_850, Self.oximeter), "invalid-argument")
        l.reject(C.adminA, fever(3_850), "unauthorised")
        l.apply(Self.gateway, fever(3_850))
        l.apply(Self.gateway, fever(3_910))
        l.reject(Self.agencyDoc, result(1), "unauthorised")  // a public-health agency is not a testing institution
        l.reject(C.adminA, result(1), "unauthorised")
        l.reject(Self.labTech, result(1, "maybe"), "invalid-argument")
        l.reject(Self.labTech, result(1, place: "Station 3"), "invalid-argument")
        l.reject(Self.labTech, result(1, assay: "pcr"), "invalid-argument")
        l.apply(Self.labTech, result(1))
        l.reject(Self.labTech, result(1), "already-exists")
        l.apply(Self.clinicDoc, result(2, "negative"))
        l.apply(Self.clinicDoc, result(3, "positive", place: "district-9"))
        let cell = try #require(try l.state.read(OutbreakCell.self, StateKeys.outbreakCell("station-3", t / 3_600_000)))
        #expect(cell.fevers == 2 && cell.maxCentiC == 3_910 && cell.positives == 1 && cell.negatives == 1 && cell.institutions == ["city-clinic", "st-marys"])
        #expect(try l.state.read(StringList.self, StateKeys.outbreakPlaces)?.places == ["station-3", "district-9"])
    }
}
