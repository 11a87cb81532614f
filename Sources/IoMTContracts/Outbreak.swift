import IoMTCore

/// Outbreak-origin tracing (issue 6 §6): fever detections recorded by the gateway of a thermal
/// camera or heat sensor at a place, and nucleic-acid test results recorded by attested
/// practitioners of laboratories, hospitals and clinics, both counted on one grid of place and hour.
enum Outbreak {
    static let maxPlaces = 10_000

    static func hour(_ ms: Int64) -> Int64 { ms >= 0 ? ms / 3_600_000 : (ms - 3_599_999) / 3_600_000 }

    /// Updates a cell, listing its place the first time.
    static func update(_ place: String, atMs: Int64, institution: String, state: inout StateOverlay, _ change: (inout OutbreakCell) -> Void) throws(ContractError) {
        let h = hour(atMs), key = StateKeys.outbreakCell(place, h)
        var cell = try state.read(OutbreakCell.self, key) ?? OutbreakCell(place: place, hour: h)
        change(&cell)
        if !cell.institutions.contains(institution) { cell.institutions = (cell.institutions + [institution]).sorted() }
        state.put(key, cell)
        // A place is listed once: its marker spares reading the list on every record.
        if state.value(forKey: StateKeys.outbreakPlace(place)) == nil {
            var places = try state.read(StringList.self, StateKeys.outbreakPlaces) ?? StringList()
            guard places.places.count < maxPlaces else { throw .invalidArgument("\(maxPlaces) places are listed already") }
            places.places.append(place)
            state.put(StateKeys.outbreakPlaces, places)
            state.put(StateKeys.outbreakPlace(place), UInt64(places.places.count))
        }
    }

    static func fever(_ f: RecordFeverDetection, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        try Devices.checkGateway(sender, for: f.device, state: state, doing: "records fever detections")
        guard let d = try state.read(DeviceRecord.self, StateKeys.device(f.device)), ["thermal-camera", "heat-sensor"].contains(d.deviceType), let place = d.place else {
            throw .invalidArgument("device \(f.device) is not a thermal camera or heat sensor with a place")
        }
        guard f.centiC >= RecordFeverDetection.thresholdCentiC, f.centiC <= 4_600 else { throw .invalidArgument("a fever is 37.3…46 °C (3730…4600 c°C)") }
        guard f.atMs % 3_600_000 == 0 else { throw .invalidArgument("atMs is the start of the hour (the grid's resolution: no exact time of a person at a place)") }
        guard f.atMs <= context.timestampMs + 300_000, f.atMs > context.timestampMs - 30 * 86_400_000 - 3_600_000 else { throw .invalidArgument("atMs is within the last 30 days") }
        try update(place, atMs: f.atMs, institution: sender.organisation, state: &state) { cell in
            cell.fevers += 1
            cell.maxCentiC = max(cell.maxCentiC, f.centiC)
        }
    }

    static func testResult(_ t: RecordTestResult, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let org = try state.read(Organisation.self, StateKeys.organisation(sender.organisation))
        guard try Patients.attestation(of: sender, state: state) != nil, let kind = org?.kind, ReportPositive.medicalKinds.contains(kind) else {
            throw .unauthorised("only an attested practitioner of a laboratory, hospital, clinic or medical centre records a test result")
        }
        do { try Devices.checkType(t.place) } catch { throw .invalidArgument("place is a code of 1…64 lower-case letters, digits and dashes") }
        let parts = t.assay.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, parts[0] == "loinc", (3...10).contains(parts[1].utf8.count), parts[1].utf8.allSatisfy({ (48...57).contains($0) || $0 == 45 }) else {
            throw .invalidArgument("assay is loinc:<code>, e.g. loinc:94500-6")
        }
        guard RecordTestResult.outcomes.contains(t.outcome) else { throw .invalidArgument("outcome is one of \(RecordTestResult.outcomes.joined(separator: ", "))") }
        guard t.sampledAtMs % 3_600_000 == 0 else { throw .invalidArgument("sampledAtMs is the start of the hour the sample was taken (the grid's resolution)") }
        guard t.sampledAtMs <= context.timestampMs + 300_000, t.sampledAtMs > context.timestampMs - 90 * 86_400_000 else { throw .invalidArgument("sampledAtMs is within the last 90 days") }
        guard state.value(forKey: StateKeys.testResult(t.resultID)) == nil else { throw .alreadyExists("test result \(t.resultID)") }
        state.put(StateKeys.testResult(t.resultID), context.height)
        try update(t.place, atMs: t.sampledAtMs, institution: sender.organisation, state: &state) { cell in
            switch t.outcome {
            case "positive": cell.positives += 1
            case "negative": cell.negatives += 1
            default: cell.inconclusive += 1
            }
        }
    }
}
