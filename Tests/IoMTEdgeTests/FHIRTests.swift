import Foundation
import IoMTCore
@testable import IoMTEdge
import Testing

/// The official HL7 FHIR R4 examples (Fixtures/fhir-examples, CC0, byte-for-byte; SOURCE.md).
enum Examples {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/fhir-examples")

    static func bytes(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: folder.appendingPathComponent(name))) }

    static var all: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
    }
}

@Suite("FHIR R4 ingestion")
struct FHIRTests {
    @Test("every official HL7 example is accepted if it is an Observation and refused with a reason otherwise")
    func officialExamples() throws {
        let files = Examples.all
        #expect(files.count == 20, "fixtures: \(files)")
        var accepted = 0
        for f in files {
            let bytes = try Examples.bytes(f)
            let type = (try JSONValue.parse(bytes))["resourceType"]?.stringValue
            if type == "Observation" {
                let r = try FHIR.readings(json: bytes)
                #expect(r.count == 1, "\(f)")
                accepted += 1
            } else {
                #expect(throws: IngestError.self, "\(f) (\(type ?? "?")) must be refused") { try FHIR.readings(json: bytes) }
                do { _ = try FHIR.readings(json: bytes) } catch {
                    #expect(error.code == "not-an-observation", "\(f): \(error)")
                    #expect(error.description.contains(type == "Bundle" ? "Bundle.entry[0]" : type!), "\(f): \(error)")
                }
            }
        }
        #expect(accepted == 11)
    }

    @Test("each example becomes the reading it describes: kind, code, value, unit and time")
    func exampleContents() throws {
        func one(_ f: String) throws -> Reading { try FHIR.readings(json: try Examples.bytes(f))[0] }
        let hr = try one("observation-example-heart-rate.json")
        #expect(hr.kind == .heartRate && hr.code == .loinc("8867-4"))
        #expect(hr.values == [Measurement(code: .loinc("8867-4"), value: DecimalValue(44), unit: "/min")])
        #expect(hr.effectiveMs == 930_873_600_000) // 1999-07-02T00:00:00Z
        #expect(hr.sourceSubject == "Patient/example" && hr.sourceID == "heart-rate")

        let bp = try one("observation-example-bloodpressure.json")
        #expect(bp.kind == .bloodPressure)
        #expect(bp.values.map(\.value) == [DecimalValue(107), DecimalValue(60)])
        #expect(bp.values.map(\.unit) == ["mm[Hg]", "mm[Hg]"])

        let height = try one("observation-example-body-height.json")
        // The file says 66.899999999999991 (17 significant digits); a binary double would print 66.89999999999999.
        #expect(height.values[0].value.description == "66.899999999999991", "digits kept exactly as sent")
        #expect(height.values[0].unit == "[in_i]")

        let glucose = try one("observation-example-f001-glucose.json")
        #expect(glucose.kind == .glucose && glucose.values[0].value == DecimalValue(mantissa: 63, exponent: -1))
        #expect(glucose.effectiveMs == FHIRTime.parse("2013-04-02T08:30:10Z"), "effectivePeriod.start, +01:00 → UTC")

        let spo2 = try one("observation-example-satO2.json")
        #expect(spo2.kind == .oxygenSaturation && spo2.values[0].unit == "%")
        #expect(try one("observation-example-body-temperature.json").values[0].unit == "Cel")
        #expect(try one("observation-example.json").kind == .bodyWeight)
        #expect(try one("observation-example-bmi.json").kind == .bodyMassIndex)
        #expect(try one("observation-example-respiratory-rate.json").kind == .respiratoryRate)

        let panel = try one("observation-example-vitals-panel.json")
        #expect(panel.kind == .vitalSignsPanel && panel.values.isEmpty && panel.members.count >= 4)

        let ecg = try one("observation-example-sample-data.json")
        #expect(ecg.kind == .ecg && ecg.series.count == 3)
        #expect(ecg.series[0].periodMs == DecimalValue(10) && ecg.series[0].factor == DecimalValue(mantissa: 1612, exponent: -3))
        #expect(ecg.series[0].samples.count > 100)
        #expect(ecg.series[0].samples.prefix(2) == [.value(DecimalValue(2041)), .value(DecimalValue(2043))])
    }

    @Test("the canonical encoding of a reading round-trips and is stable")
    func canonical() throws {
        for f in Examples.all where f.hasPrefix("observation") {
            let r = try FHIR.readings(json: try Examples.bytes(f))[0]
            let back = try Reading(canonicalBytes: r.canonicalBytes)
            #expect(back == r, "\(f)")
            #expect(back.canonicalBytes == r.canonicalBytes)
        }
    }

    /// Edits one example's JSON text and returns the error it now gets.
    func refusal(_ file: String, _ edit: (inout [String: Any]) -> Void) throws -> IngestError? {
        var obj = try JSONSerialization.jsonObject(with: Data(try Examples.bytes(file))) as! [String: Any]
        edit(&obj)
        let data = try JSONSerialization.data(withJSONObject: obj)
        do { _ = try FHIR.readings(json: Array(data)); return nil } catch { return error }
    }

    @Test("malformed, unit-less, out-of-range, mis-timed and incomplete observations are refused with a clear error")
    func refusals() throws {
        let hr = "observation-example-heart-rate.json"
        #expect(try refusal(hr) { $0["valueQuantity"] = ["value": 44, "unit": "beats/minute"] }?.code == "missing-unit")
        #expect(try refusal(hr) { $0["valueQuantity"] = ["value": 44] }?.code == "missing-unit")
        #expect(try refusal(hr) { $0["valueQuantity"] = ["value": 44, "system": "http://unitsofmeasure.org", "code": "Cel"] }?.code == "wrong-unit")
        #expect(try refusal(hr) { $0["valueQuantity"] = ["value": 900, "system": "http://unitsofmeasure.org", "code": "/min"] }?.code == "out-of-range")
        #expect(try refusal(hr) { $0["valueQuantity"] = ["value": -1, "system": "http://unitsofmeasure.org", "code": "/min"] }?.code == "out-of-range")
        #expect(try refusal(hr) { $0["valueQuantity"] = ["value": "44", "system": "http://unitsofmeasure.org", "code": "/min"] }?.code == "malformed")
        #expect(try refusal(hr) { $0.removeValue(forKey: "effectiveDateTime") }?.code == "missing-field")
        #expect(try refusal(hr) { $0["effectiveDateTime"] = "2020-02-30" }?.code == "invalid-time")
        #expect(try refusal(hr) { $0["effectiveDateTime"] = "2020-02-03T10:00:00" }?.code == "invalid-time", "a time needs a zone")
        #expect(try refusal(hr) { $0.removeValue(forKey: "status") }?.code == "missing-field")
        #expect(try refusal(hr) { $0["status"] = "entered-in-error" }?.code == "unsupported")
        #expect(try refusal(hr) { $0.removeValue(forKey: "code") }?.code == "missing-field")
        #expect(try refusal(hr) { $0.removeValue(forKey: "valueQuantity") }?.code == "missing-field")
        #expect(try refusal(hr) { $0.removeValue(forKey: "valueQuantity"); $0["valueString"] = "fast" }?.code == "unsupported")
        #expect(try refusal("observation-example-bloodpressure.json") { o in
            var c = o["component"] as! [[String: Any]]; c.removeLast(); o["component"] = c
        }?.code == "missing-field", "blood pressure without its diastolic component")
        #expect(try refusal("observation-example-sample-data.json") { o in
            var c = o["component"] as! [[String: Any]]
            var sd = c[0]["valueSampledData"] as! [String: Any]; sd["data"] = "1 2 x 4"; c[0]["valueSampledData"] = sd
            o["component"] = c
        }?.code == "malformed")

        #expect(throws: IngestError.malformed("invalid JSON at byte 1: expected a member name")) { try FHIR.readings(json: Array("{,}".utf8)) }
        var duplicate: IngestError?
        do { _ = try FHIR.readings(json: Array(#"{"resourceType":"Observation","resourceType":"Patient"}"#.utf8)) } catch { duplicate = error }
        #expect(duplicate?.code == "malformed" && duplicate!.description.contains("duplicate"))
    }

    @Test("a Bundle of Observations gives them all; one non-Observation entry refuses the whole Bundle")
    func bundles() throws {
        let hr = String(decoding: try Examples.bytes("observation-example-heart-rate.json"), as: UTF8.self)
        let t = String(decoding: try Examples.bytes("observation-example-body-temperature.json"), as: UTF8.self)
        let patient = String(decoding: try Examples.bytes("patient-example.json"), as: UTF8.self)
        let ok = #"{"resourceType":"Bundle","type":"batch","entry":[{"resource":\#(hr)},{"resource":\#(t)}]}"#
        #expect(try FHIR.readings(json: Array(ok.utf8)).map(\.kind) == [.heartRate, .bodyTemperature])
        let mixed = #"{"resourceType":"Bundle","type":"batch","entry":[{"resource":\#(hr)},{"resource":\#(patient)}]}"#
        #expect(throws: IngestError.notAnObservation(resourceType: "Patient", where: "Bundle.entry[1]")) { try FHIR.readings(json: Array(mixed.utf8)) }
    }
}

@Suite("edge values: decimals, FHIR time, CSV, content ids")
struct EdgeValueTests {
    @Test("decimals keep the digits sent, normalise trailing zeros and refuse what does not fit")
    func decimals() {
        #expect(DecimalValue(parsing: "36.50")?.description == "36.5")
        #expect(DecimalValue(parsing: "36.50") == DecimalValue(parsing: "3.65e1"))
        #expect(DecimalValue(parsing: "-0.001")?.description == "-0.001")
        #expect(DecimalValue(parsing: "1200")?.description == "1200")
        #expect(DecimalValue(parsing: "0") == DecimalValue(0))
        #expect(DecimalValue(parsing: "1.") == nil && DecimalValue(parsing: ".5") == nil && DecimalValue(parsing: "1e") == nil)
        #expect(DecimalValue(parsing: "12345678901234567890") == nil, "20 significant digits do not fit exactly")
        #expect(DecimalValue(parsing: "66.899999999999991")?.double == 66.899999999999991)
    }

    @Test("FHIR dateTime and instant convert to UTC milliseconds")
    func times() {
        #expect(FHIRTime.parse("1970-01-01T00:00:00Z") == 0)
        #expect(FHIRTime.parse("2015-02-19T09:30:35+01:00") == 1_424_334_635_000)
        #expect(FHIRTime.parse("2015-02-19T09:30:35.123456-00:30") == 1_424_340_035_123)
        #expect(FHIRTime.parse("2024-02-29") == 1_709_164_800_000)
        #expect(FHIRTime.parse("2023-02-29") == nil)
        #expect(FHIRTime.parse("2024") == 1_704_067_200_000)
        #expect(FHIRTime.parse("2024-13") == nil)
        #expect(FHIRTime.parse("2024-01-01T24:00:00Z") == nil)
        #expect(FHIRTime.parse("2024-01-01T10:00:00+15:00") == nil)
        #expect(FHIRTime.parse("2024-01-01 10:00:00Z") == nil)
        for ms: Int64 in [0, 1, 999, 86_399_999, 951_782_400_000, 1_709_164_800_123, 1_764_651_600_001, 4_102_444_799_999] {
            #expect(FHIRTime.parse(FHIRTime.format(ms)) == ms, "\(ms) → \(FHIRTime.format(ms))")
        }
        #expect(FHIRTime.format(1_424_334_635_000) == "2015-02-19T08:30:35.000Z")
    }

    @Test("vendor CSV: rows become readings; a bad row refuses the file and names its line")
    func csv() throws {
        let good = """
        time,code,value,unit,id
        2024-05-01T10:00:00Z,8867-4,72,/min,a
        1714557600000,2708-6,97,%,b
        "2024-05-01T10:00:02Z",,"120/80",mm[Hg],c\r
        """
        var text = good.replacingOccurrences(of: ",,\"120/80\"", with: ",85354-9,\"120/80\"")
        let r = try VendorCSV.readings(Array(text.utf8))
        #expect(r.map(\.kind) == [.heartRate, .oxygenSaturation, .bloodPressure])
        #expect(r[1].effectiveMs == 1_714_557_600_000 && r[0].effectiveMs == 1_714_557_600_000)
        #expect(r[2].values.map(\.value) == [DecimalValue(120), DecimalValue(80)])

        let named = "kind,time,value,unit\nbody-temperature,2024-05-01T10:00:00Z,38.4,Cel\n"
        #expect(try VendorCSV.readings(Array(named.utf8))[0].code == .loinc("8310-5"))

        func code(_ csv: String) -> String? { do { _ = try VendorCSV.readings(Array(csv.utf8)); return nil } catch { return error.code } }
        #expect(code("time,code,value,unit\n2024-05-01T10:00:00Z,8867-4,72,\n") == "missing-unit")
        #expect(code("time,code,value,unit\n2024-05-01T10:00:00Z,8867-4,720,/min\n") == "out-of-range")
        #expect(code("time,code,value,unit\n2024-05-01T10:00:00Z,8867-4,72,Cel\n") == "wrong-unit")
        #expect(code("time,code,value\n2024-05-01T10:00:00Z,8867-4,72\n") == "missing-field")
        #expect(code("time,code,value,unit\nyesterday,8867-4,72,/min\n") == "invalid-time")
        #expect(code("time,code,value,unit\n2024-05-01T10:00:00Z,8867-4,72\n") == "malformed")
        #expect(code("time,code,value,unit\n2024-05-01T10:00:00Z,8867-4,\"72,/min\n") == "malformed")
        text = "time,code,value,unit\n2024-05-01T10:00:00Z,8867-4,72,/min\n2024-05-01T10:00:00Z,8867-4,72,/min\n2024-05-01T10:00:00Z,8867-4,7x2,/min\n"
        do { _ = try VendorCSV.readings(Array(text.utf8)); Issue.record("accepted a bad row") } catch {
            #expect(error.description.contains("line 4"), "\(error)")
        }
    }

    @Test("content ids agree with Debian's ipfs-cid tool (files of one chunk, dag-pb), byte for byte", arguments: [0, 1, 12, 1_000, 65_536, 262_144])
    func ipfsTool(size: Int) throws {
        let tool = "/usr/bin/ipfs_cid"
        try #require(FileManager.default.isExecutableFile(atPath: tool), "ipfs-cid is not installed: run scripts/setup.sh")
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ $0 >> 8) }
        let path = NSTemporaryDirectory() + "iomt-cid-\(UUID().uuidString)"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let out = NSTemporaryDirectory() + "iomt-cid-out-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: out) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = [path]
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        let text = try String(contentsOfFile: out, encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("{") }, "no JSON from ipfs_cid: \(text)")
        let reply = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: String]
        #expect(ContentID.unixFSFileID(bytes) == reply["CIDv1"], "\(size) bytes")
    }

    @Test("CIDv1 raw sha2-256 base32: IPFS's known ids, round trip, refusal of other forms")
    func contentIDs() {
        // Known ids: the empty block and "hello world\n" as raw IPFS blocks.
        #expect(ContentID(of: []).description == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
        #expect(ContentID(of: Array("hello world\n".utf8)).description == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")
        let id = ContentID(of: Array("x".utf8))
        #expect(ContentID(id.description) == id)
        #expect(id.matches(Array("x".utf8)) && !id.matches(Array("y".utf8)))
        #expect(ContentID("Qmabc") == nil)
        #expect(ContentID("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi") == nil, "dag-pb codec is not a raw blob id")
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base32.decode(Base32.encode(bytes)) == bytes)
        }
    }
}
