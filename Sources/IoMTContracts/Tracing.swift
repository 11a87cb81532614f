import IoMTCore

/// Location sharing and contact tracing (issue 6 §2): venues, anchored check-ins, positive cases
/// recorded by medical centres only, and the exposures each venue's gateway found, once per case and
/// venue (the notification feed phones read).
enum Tracing {
    static func venue(_ id: String, state: StateOverlay) throws(ContractError) -> VenueRecord {
        guard let v = try state.read(VenueRecord.self, StateKeys.venue(id)) else { throw .invalidArgument("unknown venue \"\(id)\"") }
        return v
    }

    /// A gateway account of the venue's organisation.
    static func checkVenueGateway(_ sender: Account, venue: VenueRecord, doing what: String) throws(ContractError) {
        guard sender.role == .gateway else { throw .unauthorised("only a gateway account \(what)") }
        guard sender.organisation == venue.organisation else { throw .unauthorised("venue \"\(venue.venue)\" belongs to \"\(venue.organisation)\"; this gateway to \"\(sender.organisation)\"") }
    }

    static func registerVenue(_ v: RegisterVenue, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard sender.role == .memberAdmin else { throw .unauthorised("only a member-admin registers its organisation's venues") }
        do { try Devices.checkType(v.venue) } catch { throw .invalidArgument("venue \"\(v.venue)\" must be 1…64 lower-case letters, digits and dashes") }
        guard v.capacity >= 1 else { throw .invalidArgument("capacity is at least 1") }
        guard state.value(forKey: StateKeys.venue(v.venue)) == nil else { throw .alreadyExists("venue \"\(v.venue)\"") }
        state.put(StateKeys.venue(v.venue), VenueRecord(venue: v.venue, organisation: sender.organisation, capacity: v.capacity, height: context.height))
    }

    static func anchorCheckIns(_ a: AnchorCheckIns, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        try checkVenueGateway(sender, venue: try venue(a.venue, state: state), doing: "anchors check-ins")
        guard (1...100_000).contains(a.count), a.firstMs <= a.lastMs else { throw .invalidArgument("count is 1…100000 and firstMs not after lastMs") }
        guard state.value(forKey: StateKeys.checkInAnchor(a.root)) == nil else { throw .alreadyExists("check-in anchor \(a.root)") }
        state.put(StateKeys.checkInAnchor(a.root), CheckInAnchorRecord(anchor: a, gateway: sender.address, height: context.height))
    }

    /// Only an attested practitioner of a medical centre (an organisation of kind hospital, clinic,
    /// laboratory or medical-centre) records a positive assessment.
    static func reportPositive(_ p: ReportPositive, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let org = try state.read(Organisation.self, StateKeys.organisation(sender.organisation))
        guard try Patients.attestation(of: sender, state: state) != nil, let kind = org?.kind, ReportPositive.medicalKinds.contains(kind) else {
            throw .unauthorised("only an attested practitioner of a medical centre (\(ReportPositive.medicalKinds.sorted().joined(separator: ", "))) records a positive case")
        }
        guard (1...ReportPositive.maxTokens).contains(p.tokenHashes.count), Set(p.tokenHashes).count == p.tokenHashes.count else {
            throw .invalidArgument("1…\(ReportPositive.maxTokens) distinct token hashes")
        }
        // (Bounds first, then the span: an overflow on untrusted times would stop the node.)
        guard p.fromMs < p.toMs, p.toMs <= context.timestampMs + 86_400_000, p.toMs > context.timestampMs - 365 * 86_400_000, p.fromMs >= p.toMs - 21 * 86_400_000 else {
            throw .invalidArgument("the infectious window is at most 21 days, ending within the last year and no later than a day after the block")
        }
        guard state.value(forKey: StateKeys.positiveCase(p.caseID)) == nil else { throw .alreadyExists("case \(p.caseID)") }
        let n = (try state.read(UInt64.self, StateKeys.caseCount) ?? 0) + 1
        state.put(StateKeys.caseCount, n)
        state.put(StateKeys.caseEntry(n), p.caseID)
        state.put(StateKeys.positiveCase(p.caseID), CaseRecord(n: n, report: p, organisation: sender.organisation, practitioner: sender.address, height: context.height))
    }

    static func recordExposures(_ e: RecordExposures, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let v = try venue(e.venue, state: state)
        try checkVenueGateway(sender, venue: v, doing: "records exposures")
        guard try state.read(CaseRecord.self, StateKeys.positiveCase(e.caseID)) != nil else { throw .invalidArgument("unknown case \(e.caseID)") }
        guard e.part < RecordExposures.maxParts else { throw .invalidArgument("part is 0…\(RecordExposures.maxParts - 1)") }
        guard e.exposed.count <= RecordExposures.maxExposed, Set(e.exposed).count == e.exposed.count else { throw .invalidArgument("at most \(RecordExposures.maxExposed) distinct exposed token hashes per part") }
        guard (1...RecordExposures.maxRoots).contains(e.checkInRoots.count), Set(e.checkInRoots).count == e.checkInRoots.count else {
            throw .invalidArgument("1…\(RecordExposures.maxRoots) distinct anchored check-in roots per part")
        }
        for root in e.checkInRoots {
            guard let a = try state.read(CheckInAnchorRecord.self, StateKeys.checkInAnchor(root)), a.anchor.venue == e.venue else {
                throw .invalidArgument("check-in root \(root) is not an anchor of venue \"\(e.venue)\"")
            }
        }
        let key = StateKeys.exposuresRecorded(e.caseID, e.venue, part: e.part)
        guard state.value(forKey: key) == nil else { throw .alreadyExists("exposures of case \(e.caseID) at \"\(e.venue)\" (part \(e.part))") }
        let n = (try state.read(UInt64.self, StateKeys.exposureCount) ?? 0) + 1
        state.put(key, n)
        state.put(StateKeys.exposureCount, n)
        state.put(StateKeys.exposureEntry(n), ExposureRecord(n: n, record: e, gateway: sender.address, atMs: context.timestampMs, height: context.height))
    }
}
