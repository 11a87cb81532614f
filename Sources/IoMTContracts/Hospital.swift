import IoMTCore

/// The smart hospital (issue 6 §5): assets, their availability, location and malfunctions, and
/// sterilisation cycles signed by the steriliser and submitted by its operator.
enum Hospital {
    static let maxAssetsPerOrganisation = 100_000

    static func asset(_ tag: String, state: StateOverlay) throws(ContractError) -> AssetRecord {
        guard let a = try state.read(AssetRecord.self, StateKeys.asset(tag)) else { throw .invalidArgument("unknown asset \"\(tag)\"") }
        return a
    }

    static func registerAsset(_ a: RegisterAsset, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard sender.role == .memberAdmin else { throw .unauthorised("only a member-admin registers its organisation's assets") }
        guard AssetKinds.isValidTag(a.tag) else { throw .invalidArgument("tag is 1…64 letters, digits or dashes (an RFID EPC, a barcode)") }
        guard AssetKinds.kinds.contains(a.kind) else { throw .invalidArgument("kind is one of \(AssetKinds.kinds.joined(separator: ", "))") }
        do { try Devices.checkType(a.home) } catch { throw .invalidArgument("home is a place code: 1…64 lower-case letters, digits and dashes") }
        guard state.value(forKey: StateKeys.asset(a.tag)) == nil else { throw .alreadyExists("asset \"\(a.tag)\"") }
        var list = try state.read(StringList.self, StateKeys.assets(of: sender.organisation)) ?? StringList()
        guard list.places.count < maxAssetsPerOrganisation else { throw .invalidArgument("\"\(sender.organisation)\" has \(maxAssetsPerOrganisation) assets already") }
        list.places.append(a.tag)
        state.put(StateKeys.assets(of: sender.organisation), list)
        state.put(StateKeys.asset(a.tag), AssetRecord(tag: a.tag, kind: a.kind, organisation: sender.organisation, home: a.home, height: context.height))
    }

    static func setStatus(_ s: SetAssetStatus, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        var a = try asset(s.tag, state: state)
        let attested = try Patients.attestation(of: sender, state: state) != nil
        let staff = sender.role == .memberAdmin || attested
        guard staff, sender.organisation == a.organisation else { throw .unauthorised("only attested practitioners and member-admins of \"\(a.organisation)\" set its assets' status") }
        guard AssetKinds.statuses.contains(s.status) else { throw .invalidArgument("status is one of \(AssetKinds.statuses.joined(separator: ", "))") }
        if let m = s.malfunction {
            guard AssetKinds.malfunctions.contains(m) else { throw .invalidArgument("malfunction is one of \(AssetKinds.malfunctions.joined(separator: ", "))") }
            guard s.status == "out-of-service" else { throw .invalidArgument("a malfunction puts the asset out-of-service") }
            a.malfunctions += 1
        }
        a.status = s.status
        a.malfunction = s.status == "available" ? nil : (s.malfunction ?? a.malfunction)
        state.put(StateKeys.asset(s.tag), a)
    }

    static func recordLocation(_ l: RecordAssetLocation, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        try Devices.checkGateway(sender, for: l.reader, state: state, doing: "records asset locations")
        guard let reader = try state.read(DeviceRecord.self, StateKeys.device(l.reader)), reader.deviceType == "rfid-reader", let place = reader.place else {
            throw .invalidArgument("device \(l.reader) is not an RFID reader with a place")
        }
        var a = try asset(l.tag, state: state)
        guard a.organisation == sender.organisation else { throw .unauthorised("asset \"\(l.tag)\" belongs to \"\(a.organisation)\"") }
        guard l.atMs <= context.timestampMs + 300_000 else { throw .invalidArgument("atMs is in the future") }
        // An older sighting does not move the asset back.
        if let seen = a.locationMs, seen > l.atMs { return }
        a.location = place
        a.locationMs = l.atMs
        state.put(StateKeys.asset(l.tag), a)
    }

    static func sterilisation(_ s: RecordSterilisation, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let c = s.cycle
        guard let d = try state.read(DeviceRecord.self, StateKeys.device(c.steriliser)), d.deviceType == "steriliser", let key = d.publicKey else {
            throw .invalidArgument("device \(c.steriliser) is not a steriliser with a signing key")
        }
        guard d.status != .revoked else { throw .invalidArgument("steriliser \(c.steriliser) is revoked") }
        guard try Patients.attestation(of: sender, state: state) != nil, sender.organisation == d.organisation else {
            throw .unauthorised("only an attested practitioner of \"\(d.organisation)\" records its steriliser's cycles")
        }
        guard key.isValidSignature(s.steriliserSignature, for: c.message(chainID: context.chainID)) else {
            throw .invalidArgument("the steriliser's signature over this cycle does not verify: the record was altered or is not the steriliser's")
        }
        guard c.startMs < c.endMs, c.endMs <= context.timestampMs + 300_000 else { throw .invalidArgument("the cycle runs from startMs to endMs, ended by the block's time") }
        let last = try state.read(UInt64.self, StateKeys.lastCycle(c.steriliser)) ?? 0
        guard c.cycle > last else { throw .alreadyExists("cycle \(c.cycle) of steriliser \(c.steriliser) (its last recorded is \(last))") }
        let missing = c.cycle - last - 1
        state.put(StateKeys.lastCycle(c.steriliser), c.cycle)
        if missing > 0 { state.put(StateKeys.missingCycles(c.steriliser), (try state.read(UInt64.self, StateKeys.missingCycles(c.steriliser)) ?? 0) + missing) }
        state.put(StateKeys.sterilisation(c.steriliser, c.cycle), SterilisationRecord(cycle: c, operatorAccount: sender.address, organisation: d.organisation, missingBefore: missing, height: context.height))
    }
}
