import IoMTCore

/// Devices (issue 4): registration by their owner, suspension and revocation, and the anchors of
/// their reading batches submitted by gateways. On-chain: keys, hashes, pseudonyms and counts only.
enum Devices {
    /// Roles that may own a device: a hospital (its member-admin), a patient, a practitioner, a
    /// gateway operator, a venue or carrier (supply-chain party), a public-health officer.
    static let ownerRoles: Set<Role> = [.memberAdmin, .patient, .practitioner, .gateway, .supplyChainParty, .publicHealthOfficer]
    static let placeBytes = 128
    static let maxBatch: UInt32 = 1_000_000

    static func register(_ b: RegisterDevice, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard ownerRoles.contains(sender.role) else { throw .unauthorised("a \(sender.role.name) account cannot own devices") }
        guard let id = b.deviceID else { throw .invalidArgument("give exactly one of publicKey and macKeyHash") }
        guard (b.subject == nil) != (b.place == nil) else { throw .invalidArgument("bind the device to exactly one of subject (a patient pseudonym) and place") }
        if sender.role == .patient, b.subject != Pseudonym.of(sender.address) {
            throw .invalidArgument("a patient's device is bound to the patient's own pseudonym \(Pseudonym.of(sender.address))")
        }
        try checkType(b.deviceType)
        if let p = b.place {
            guard !p.isEmpty, p.utf8.count <= placeBytes else { throw .invalidArgument("place must be 1…\(placeBytes) bytes") }
        }
        try Limits.check(b.label, max: Limits.labelBytes, field: "label")
        guard state.value(forKey: StateKeys.device(id)) == nil else { throw .alreadyExists("device \(id)") }
        if let s = b.subject, state.value(forKey: StateKeys.erasure(s)) != nil { throw .invalidArgument("the data of subject \(s) was erased: no device is bound to it again") }
        // A device bound to an enrolled patient is registered by the patient, or by a member-admin
        // or attested practitioner of the organisation that enrolled it, and seals for nobody but
        // the patient: its recipient key, if given, is the patient's own.
        if let s = b.subject {
            guard let patient = try state.read(PatientRecord.self, StateKeys.patient(s)) else {
                // Binding first and enrolling later would let anyone who saw the enrolment coming
                // put readings, sealed for a key of their choosing, under the patient's pseudonym.
                throw .invalidArgument("no patient is enrolled under pseudonym \(s): enrol the patient (register-patient) before binding devices to it")
            }
            let attested = try Patients.attestation(of: sender, state: state) != nil
            let ofOrg = sender.organisation == patient.organisation && (sender.role == .memberAdmin || attested)
            guard sender.address == patient.account || ofOrg else {
                throw .unauthorised("only the patient, or a member-admin or attested practitioner of \"\(patient.organisation)\", binds a device to this patient")
            }
            if let k = b.recipientKey {
                guard k == (try state.read(AgreementKeyRecord.self, StateKeys.agreementKey(patient.account)))?.key else {
                    throw .invalidArgument("recipientKey must be the patient's own X25519 key (or absent)")
                }
            }
        }
        let record = DeviceRecord(id: id, publicKey: b.publicKey, macKeyHash: b.macKeyHash, deviceType: b.deviceType, subject: b.subject, place: b.place,
                                  owner: sender.address, organisation: sender.organisation, status: .active, registeredAtHeight: context.height, label: b.label,
                                  recipientKey: b.recipientKey)
        state.put(StateKeys.device(id), record)
    }

    static func checkType(_ t: String) throws(ContractError) {
        guard (1...64).contains(t.utf8.count), t.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }) else {
            throw .invalidArgument("deviceType \"\(t)\" must be 1…64 lower-case letters, digits and dashes (e.g. pulse-oximeter)")
        }
    }

    static func setStatus(_ b: SetDeviceStatus, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        try Limits.check(b.reason, max: Limits.reasonBytes, field: "reason")
        guard var d = try state.read(DeviceRecord.self, StateKeys.device(b.device)) else { throw .invalidArgument("unknown device \(b.device)") }
        let adminOfOrg = sender.role == .memberAdmin && sender.organisation == d.organisation
        guard sender.address == d.owner || adminOfOrg else {
            throw .unauthorised("only the device's owner or a member-admin of \"\(d.organisation)\" changes its status")
        }
        guard d.status != .revoked else { throw .invalidArgument("device \(b.device) is revoked; revocation is final") }
        guard d.status != b.status else { throw .invalidArgument("device \(b.device) is already \(b.status.name)") }
        d.status = b.status
        state.put(StateKeys.device(b.device), d)
    }

    /// The owner, or a practitioner or member-admin of the device's organisation, asks a
    /// not-revoked device for intensive (or periodic) reporting until a time at most a week ahead.
    static func setSampling(_ b: SetDeviceSampling, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        try Limits.check(b.reason, max: Limits.reasonBytes, field: "reason")
        guard SetDeviceSampling.modes.contains(b.mode) else { throw .invalidArgument("mode is intensive or periodic, not \"\(b.mode.prefix(32))\"") }
        guard var d = try state.read(DeviceRecord.self, StateKeys.device(b.device)) else { throw .invalidArgument("unknown device \(b.device)") }
        let ofOrg = (sender.role == .memberAdmin || sender.role == .practitioner) && sender.organisation == d.organisation
        guard sender.address == d.owner || ofOrg else {
            throw .unauthorised("only the device's owner, or a practitioner or member-admin of \"\(d.organisation)\", changes its sampling")
        }
        guard d.status != .revoked else { throw .invalidArgument("device \(b.device) is revoked") }
        if b.mode == "intensive" {
            guard b.untilMs > context.timestampMs else { throw .invalidArgument("untilMs \(b.untilMs) is not after the block's time \(context.timestampMs)") }
            let (span, overflow) = b.untilMs.subtractingReportingOverflow(context.timestampMs)
            guard !overflow, span <= SetDeviceSampling.maxSpanMs else { throw .invalidArgument("an intensive request lasts at most 7 days") }
        }
        d.sampling = SamplingRequest(mode: b.mode, untilMs: b.untilMs, requestedBy: sender.address, height: context.height)
        state.put(StateKeys.device(b.device), d)
    }

    /// The sender is a gateway of the device's organisation, and the device is registered and not revoked.
    static func checkGateway(_ sender: Account, for device: Address, state: StateOverlay, doing what: String) throws(ContractError) {
        guard sender.role == .gateway else { throw .unauthorised("only a gateway account \(what)") }
        guard let d = try state.read(DeviceRecord.self, StateKeys.device(device)) else { throw .invalidArgument("unknown device \(device)") }
        guard d.organisation == sender.organisation else {
            throw .unauthorised("device \(device) belongs to \"\(d.organisation)\"; this gateway to \"\(sender.organisation)\"")
        }
        guard d.status != .revoked else { throw .invalidArgument("device \(device) is revoked") }
    }

    /// A gateway of the device's organisation records an alarm raised or cleared; the latest state
    /// per device and rule is kept (a not-revoked device, as for anchors).
    static func recordAlert(_ b: RecordAlert, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        try checkGateway(sender, for: b.device, state: state, doing: "records alerts")
        do { try checkType(b.rule) } catch { throw .invalidArgument("rule \"\(b.rule)\" must be 1…64 lower-case letters, digits and dashes") }
        guard ["warning", "critical"].contains(b.severity) else { throw .invalidArgument("severity is warning or critical") }
        let record = AlertRecord(alert: b, gateway: sender.address, height: context.height, transaction: context.transactionHash)
        state.put(StateKeys.alert(b.device, rule: b.rule), record)
        let n = (try state.read(UInt64.self, StateKeys.alertLogCount) ?? 0) + 1
        state.put(StateKeys.alertLogCount, n)
        state.put(StateKeys.alertLogEntry(n), AlertLogEntry(n: n, record: record))
        if b.raised { state.put(StateKeys.alertRaised(b.device, rule: b.rule, atMs: b.atMs), n) }
    }

    /// A gateway of the device's organisation anchors a batch. A suspended device's batches are
    /// still anchored (they were accepted while it was active and a gateway queue may hold them);
    /// a revoked device's are not: revocation means its key can no longer be trusted.
    static func anchor(_ b: AnchorReadings, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        try checkGateway(sender, for: b.device, state: state, doing: "anchors readings")
        guard (1...maxBatch).contains(b.count) else { throw .invalidArgument("count must be 1…\(maxBatch)") }
        guard b.firstMs <= b.lastMs else { throw .invalidArgument("firstMs is after lastMs") }
        guard state.value(forKey: StateKeys.anchor(b.batchRoot)) == nil else { throw .alreadyExists("anchor of batch root \(b.batchRoot)") }
        state.put(StateKeys.anchor(b.batchRoot), AnchorRecord(anchor: b, gateway: sender.address, height: context.height, transaction: context.transactionHash))
        if let subject = try state.read(DeviceRecord.self, StateKeys.device(b.device))?.subject {
            let key = StateKeys.anchorCount(subject, gateway: sender.address)
            state.put(key, (try state.read(UInt64.self, key) ?? 0) + 1)
        }
    }
}
