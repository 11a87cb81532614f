import IoMTCore

/// The vaccine and injectable-medicine supply chain (issue 6 §1, first part). Batches are
/// registered by manufacturers, move between organisations only with both sides' signatures, are
/// recalled by their manufacturer or public health, and are administered one unit at a time by
/// attested practitioners of the organisation holding them.
enum SupplyChain {
    static let maxUnits: UInt32 = 10_000_000
    static let year: Int64 = 365 * 86_400_000
    static let maxDerived = 4_096

    /// The sender acts for its organisation in the supply chain: a supply-chain party or a member-admin.
    static func party(_ a: Account, doing what: String) throws(ContractError) {
        guard a.role == .supplyChainParty || a.role == .memberAdmin else { throw .unauthorised("only a supply-chain party or a member-admin \(what)") }
    }

    static func batch(_ id: Hash, state: StateOverlay) throws(ContractError) -> BatchRecord {
        guard let b = try state.read(BatchRecord.self, StateKeys.batch(id)) else { throw .invalidArgument("unknown batch \(id)") }
        return b
    }

    /// The manufacturer the consortium assigned the GTIN's company prefix to, if any.
    static func brandOwner(_ gtin: String, state: StateOverlay) throws(ContractError) -> GS1PrefixRecord? {
        for p in GS1.companyPrefixCandidates(gtin) {
            if let r = try state.read(GS1PrefixRecord.self, StateKeys.gs1Prefix(p)) { return r }
        }
        return nil
    }

    static func register(_ b: RegisterBatch, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        try party(sender, doing: "registers batches")
        guard let org = try state.read(Organisation.self, StateKeys.organisation(sender.organisation)), org.kind == "manufacturer" else {
            throw .unauthorised("only an organisation of kind manufacturer registers batches; \"\(sender.organisation)\" is not one")
        }
        guard GS1.isValidGTIN(b.gtin) else { throw .invalidArgument("gtin is a GTIN-8, -12, -13 or -14 with its check digit") }
        if let owner = try brandOwner(b.gtin, state: state), owner.organisation != sender.organisation {
            throw .unauthorised("GTIN \(b.gtin) is under GS1 company prefix \(owner.prefix), assigned to \"\(owner.organisation)\"")
        }
        guard GS1.isValidLot(b.lot) else { throw .invalidArgument("lot is 1…20 letters, digits or -./_") }
        guard (1...32).contains(b.productCode.utf8.count), b.productCode.utf8.allSatisfy({ GS1.isValidLot(String(UnicodeScalar($0))) }) else {
            throw .invalidArgument("productCode is a code (1…32 letters, digits or -./_), never free text")
        }
        guard (1...maxUnits).contains(b.units) else { throw .invalidArgument("units is 1…\(maxUnits)") }
        guard b.materials.count <= RegisterBatch.maxMaterials, Set(b.materials).count == b.materials.count else {
            throw .invalidArgument("at most \(RegisterBatch.maxMaterials) distinct materials")
        }
        guard b.manufacturedMs <= context.timestampMs, b.manufacturedMs >= context.timestampMs - 20 * year,
              b.manufacturedMs < b.expiresMs, b.expiresMs > context.timestampMs, b.expiresMs <= context.timestampMs + 50 * year else {
            throw .invalidArgument("manufacturedMs is within the last 20 years, and expiresMs after it and after the block's time, within 50 years")
        }
        guard b.minCentiC < b.maxCentiC, b.minCentiC >= -9_000, b.maxCentiC <= 5_000 else { throw .invalidArgument("the storage range is min < max within −90…50 °C") }
        let id = b.id
        guard state.value(forKey: StateKeys.batch(id)) == nil else { throw .alreadyExists("batch \(b.gtin)/\(b.lot)") }
        guard try ancestors(of: b.materials, state: state).count <= maxAncestors else {
            throw .invalidArgument("a batch's materials reach at most \(maxAncestors) batches (materials of materials included)")
        }
        for m in b.materials {
            // A material is one this manufacturer holds units of, and not recalled.
            let material = try batch(m, state: state)
            guard material.recall == nil else { throw .invalidArgument("material \(m) was recalled") }
            guard (try state.read(UInt64.self, StateKeys.holding(m, sender.organisation)) ?? 0) > 0 else {
                throw .invalidArgument("\"\(sender.organisation)\" holds no unit of material \(m)")
            }
            let key = StateKeys.madeFrom(m)
            var list = try state.read(IDList.self, key) ?? IDList()
            guard list.ids.count < maxDerived else { throw .invalidArgument("material \(m) already has \(maxDerived) derived batches listed") }
            list.ids.append(id)
            state.put(key, list)
        }
        state.put(StateKeys.batch(id), BatchRecord(id: id, registration: b, manufacturer: sender.organisation, registeredBy: sender.address, height: context.height))
        state.put(StateKeys.batchHolders(id), StringList([sender.organisation]))
        state.put(StateKeys.holding(id, sender.organisation), UInt64(b.units))
    }

    static func transfer(_ t: TransferCustody, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        try party(sender, doing: "transfers custody")
        var b = try batch(t.batch, state: state)
        guard t.units >= 1 else { throw .invalidArgument("a transfer moves at least one unit") }
        guard context.timestampMs <= t.validUntilMs else { throw .invalidArgument("the receiver's countersignature lapsed at \(t.validUntilMs)") }
        guard t.sequence == b.transfers + 1 else { throw .invalidArgument("this is transfer \(b.transfers + 1) of batch \(t.batch), not \(t.sequence)") }
        guard let receiver = try state.read(Account.self, StateKeys.account(t.receiver)) else { throw .unknownAccount(t.receiver) }
        guard receiver.status == .active, receiver.role == .supplyChainParty || receiver.role == .memberAdmin else {
            throw .invalidArgument("account \(t.receiver) is not an active supply-chain party or member-admin")
        }
        guard receiver.organisation != sender.organisation else { throw .invalidArgument("custody moves between organisations") }
        // A recalled batch goes only back to its manufacturer.
        guard b.recall == nil || receiver.organisation == b.manufacturer else { throw .invalidArgument("batch \(t.batch) was recalled: its units go back to \"\(b.manufacturer)\" only") }
        let message = TransferCustody.message(chainID: context.chainID, batch: t.batch, units: t.units, sender: sender.address, receiver: t.receiver,
                                              sequence: t.sequence, validUntilMs: t.validUntilMs)
        guard receiver.publicKey.isValidSignature(t.receiverSignature, for: message) else {
            throw .invalidArgument("the receiver's signature over this transfer does not verify: both sides sign a custody transfer")
        }
        let fromKey = StateKeys.holding(t.batch, sender.organisation), toKey = StateKeys.holding(t.batch, receiver.organisation)
        let held = try state.read(UInt64.self, fromKey) ?? 0
        guard held >= UInt64(t.units) else { throw .invalidArgument("\"\(sender.organisation)\" holds \(held) units of batch \(t.batch), not \(t.units)") }
        state.put(fromKey, held - UInt64(t.units))
        state.put(toKey, (try state.read(UInt64.self, toKey) ?? 0) + UInt64(t.units))
        var holders = try state.read(StringList.self, StateKeys.batchHolders(t.batch)) ?? StringList([b.manufacturer])
        if !holders.places.contains(receiver.organisation) {
            holders.places.append(receiver.organisation)
            state.put(StateKeys.batchHolders(t.batch), holders)
        }
        b.transfers = t.sequence
        state.put(StateKeys.batch(t.batch), b)
        state.put(StateKeys.custodyTransfer(t.batch, t.sequence), CustodyRecord(sequence: t.sequence, fromOrganisation: sender.organisation, toOrganisation: receiver.organisation,
                                                                                sender: sender.address, receiver: t.receiver, units: t.units, atMs: context.timestampMs, height: context.height))
    }

    static func recall(_ r: RecallBatch, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        var b = try batch(r.batch, state: state)
        let manufacturer = (sender.role == .supplyChainParty || sender.role == .memberAdmin) && sender.organisation == b.manufacturer
        // Public health: an officer of an organisation of kind public-health-agency (any member
        // may register an officer of its own, so the role alone is not enough).
        let senderOrganisation = try state.read(Organisation.self, StateKeys.organisation(sender.organisation))
        let agency = sender.role == .publicHealthOfficer && senderOrganisation?.kind == "public-health-agency"
        guard manufacturer || agency else { throw .unauthorised("only the manufacturer \"\(b.manufacturer)\" or a public-health officer recalls a batch") }
        guard RecallBatch.reasonCodes.contains(r.reasonCode) else { throw .invalidArgument("reasonCode is one of \(RecallBatch.reasonCodes.joined(separator: ", "))") }
        guard b.recall == nil else { throw .alreadyExists("recall of batch \(r.batch)") }
        b.recall = r
        b.recalledHeight = context.height
        state.put(StateKeys.batch(r.batch), b)
        // Numbered, for the holders' and public health's notification feed.
        let n = (try state.read(UInt64.self, StateKeys.recallCount) ?? 0) + 1
        state.put(StateKeys.recallCount, n)
        state.put(StateKeys.recallEntry(n), r.batch)
    }

    static func administer(_ d: AdministerDose, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard try Patients.attestation(of: sender, state: state) != nil else { throw .unauthorised("only a practitioner attested by its organisation records an administration") }
        var b = try batch(d.batch, state: state)
        guard b.recall == nil else { throw .invalidArgument("batch \(d.batch) was recalled (\(b.recall?.reasonCode ?? "")): it must not be administered") }
        guard context.timestampMs < b.registration.expiresMs else { throw .invalidArgument("batch \(d.batch) expired") }
        guard try state.read(PatientRecord.self, StateKeys.patient(d.subject)) != nil else { throw .invalidArgument("no patient is enrolled under pseudonym \(d.subject)") }
        guard d.atMs >= b.registration.manufacturedMs, d.atMs <= context.timestampMs + 300_000 else { throw .invalidArgument("atMs is between manufacture and the block's time") }
        let unitKey = StateKeys.administeredUnit(d.batch, d.serialHash)
        guard state.value(forKey: unitKey) == nil else { throw .alreadyExists("an administration of unit \(d.serialHash) of batch \(d.batch)") }
        // A serial is unique per GTIN (GS1): one given from another lot of the product is a copy.
        let serialKey = StateKeys.administeredSerial(gtin: b.registration.gtin, d.serialHash)
        if let other = try state.read(Hash.self, serialKey) {
            throw .alreadyExists("an administration of serial \(d.serialHash) of GTIN \(b.registration.gtin) (from batch \(other)): a copied label")
        }
        if let excursion = try state.read(UInt64.self, StateKeys.quarantinedUnit(d.batch, d.serialHash)) {
            throw .invalidArgument("unit \(d.serialHash) of batch \(d.batch) is quarantined after cold-chain excursion \(excursion)")
        }
        let holdKey = StateKeys.holding(d.batch, sender.organisation)
        let held = try state.read(UInt64.self, holdKey) ?? 0
        guard held >= 1 else { throw .invalidArgument("\"\(sender.organisation)\" holds no unit of batch \(d.batch)") }
        state.put(holdKey, held - 1)
        b.administered += 1
        state.put(StateKeys.batch(d.batch), b)
        state.put(unitKey, b.administered)
        state.put(serialKey, d.batch)
        let toKey = StateKeys.administeredTo(d.batch, d.subject)
        state.put(toKey, (try state.read(UInt64.self, toKey) ?? 0) + 1)
        // A batch made from a recalled material is not given either (the recall of an ingredient
        // reaches every product made with it).
        let ancestry = try ancestors(of: b.registration.materials, state: state)
        if let (a, r) = try firstRecalled(ancestry, state: state) {
            throw .invalidArgument("batch \(d.batch) is made from batch \(a), recalled (\(r.reasonCode)): it must not be administered")
        }
        // The forward trace's index: the patient under this batch and under every batch it was
        // made from (so a material lot's trace reads its own index), once each.
        for a in [d.batch] + ancestry where state.value(forKey: StateKeys.reached(a, d.subject)) == nil {
            state.put(StateKeys.reached(a, d.subject), context.height)
            try index(d.subject, under: a, state: &state)
        }
        state.put(StateKeys.administration(d.batch, b.administered), AdministrationRecord(n: b.administered, dose: d, practitioner: sender.address, organisation: sender.organisation, height: context.height))
    }

    /// A holder puts a cold-chain logger of its own with units it holds (a storage record), or
    /// takes it off (`units: 0`). A logger watches one batch's units at a time: attaching it
    /// elsewhere ends its current storage record.
    static func attachLogger(_ a: AttachLogger, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        try party(sender, doing: "places cold-chain loggers")
        guard let device = try state.read(DeviceRecord.self, StateKeys.device(a.device)) else { throw .invalidArgument("unknown device \(a.device)") }
        guard device.deviceType == "cold-chain-logger" else { throw .invalidArgument("device \(a.device) is a \(device.deviceType), not a cold-chain-logger") }
        guard device.organisation == sender.organisation else { throw .unauthorised("logger \(a.device) belongs to \"\(device.organisation)\"") }
        guard device.status == .active else { throw .invalidArgument("logger \(a.device) is \(device.status.rawValue)") }
        let b = try batch(a.batch, state: state)
        let current = try state.read(StorageRecord.self, StateKeys.loggerAttachment(a.device))
        if a.units == 0 {
            guard let current, current.batch == a.batch else { throw .invalidArgument("logger \(a.device) is not with batch \(a.batch)") }
            try endStorage(current, atMs: context.timestampMs, state: &state)
            state.delete(StateKeys.loggerAttachment(a.device))
            return
        }
        guard b.recall == nil else { throw .invalidArgument("batch \(a.batch) was recalled") }
        let held = try state.read(UInt64.self, StateKeys.holding(a.batch, sender.organisation)) ?? 0
        guard held >= UInt64(a.units) else { throw .invalidArgument("\"\(sender.organisation)\" holds \(held) units of batch \(a.batch), not \(a.units)") }
        if !a.serialHashes.isEmpty {
            guard a.serialHashes.count == Int(a.units), a.serialHashes.count <= AttachLogger.maxSerials, Set(a.serialHashes).count == a.serialHashes.count else {
                throw .invalidArgument("serialHashes are the units' distinct serial hashes, one per unit, at most \(AttachLogger.maxSerials)")
            }
            for h in a.serialHashes where state.value(forKey: StateKeys.administeredUnit(a.batch, h)) != nil {
                throw .invalidArgument("unit \(h) of batch \(a.batch) was given already")
            }
        }
        if let current { try endStorage(current, atMs: context.timestampMs, state: &state) }
        let n = (try state.read(UInt64.self, StateKeys.storageCount(a.batch)) ?? 0) + 1
        let record = StorageRecord(n: n, batch: a.batch, device: a.device, organisation: sender.organisation, place: device.place, units: a.units,
                                   sinceMs: context.timestampMs, height: context.height)
        state.put(StateKeys.storageCount(a.batch), n)
        state.put(StateKeys.storage(a.batch, n), record)
        state.put(StateKeys.loggerAttachment(a.device), record)
        if !a.serialHashes.isEmpty { state.put(StateKeys.storageSerials(a.batch, n), IDList(a.serialHashes)) }
    }

    private static func endStorage(_ r: StorageRecord, atMs: Int64, state: inout StateOverlay) throws(ContractError) {
        var ended = try state.read(StorageRecord.self, StateKeys.storage(r.batch, r.n)) ?? r
        ended.untilMs = atMs
        state.put(StateKeys.storage(r.batch, r.n), ended)
    }

    /// A logger's reading left its batch's storage range: the units it watches (as many as the
    /// organisation still holds) go into quarantine, and the excursion is numbered under the
    /// batch. Reported by a gateway of the logger's organisation or a supply-chain party of it.
    static func reportExcursion(_ e: ReportExcursion, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard let device = try state.read(DeviceRecord.self, StateKeys.device(e.device)) else { throw .invalidArgument("unknown device \(e.device)") }
        if sender.role == .gateway {
            try Devices.checkGateway(sender, for: e.device, state: state, doing: "reports excursions")
        } else {
            try party(sender, doing: "reports excursions")
            guard device.organisation == sender.organisation else { throw .unauthorised("logger \(e.device) belongs to \"\(device.organisation)\"") }
        }
        guard var storage = try state.read(StorageRecord.self, StateKeys.loggerAttachment(e.device)), storage.batch == e.batch else {
            throw .invalidArgument("logger \(e.device) is not with batch \(e.batch)")
        }
        let b = try batch(e.batch, state: state)
        guard e.centiC < b.registration.minCentiC || e.centiC > b.registration.maxCentiC else {
            throw .invalidArgument("\(e.centiC) c°C is within the batch's storage range \(b.registration.minCentiC)…\(b.registration.maxCentiC)")
        }
        // Within 5 minutes of clock skew either side (a logger's clock is not the chain's).
        guard e.atMs >= storage.sinceMs - 300_000, e.atMs <= context.timestampMs + 300_000 else { throw .invalidArgument("atMs is between the logger's placement and the block's time") }
        let holdKey = StateKeys.holding(e.batch, storage.organisation), quarantineKey = StateKeys.quarantined(e.batch, storage.organisation)
        let held = try state.read(UInt64.self, holdKey) ?? 0
        let n = (try state.read(UInt64.self, StateKeys.excursionCount(e.batch)) ?? 0) + 1
        // Units placed by serial are quarantined one by one (those not given since), and counted
        // so; units placed by count, as many as were placed.
        var placed = UInt64(storage.units)
        if storage.units > 0, let serials = try state.read(IDList.self, StateKeys.storageSerials(e.batch, storage.n)) {
            placed = 0
            for h in serials.ids where state.value(forKey: StateKeys.administeredUnit(e.batch, h)) == nil && state.value(forKey: StateKeys.quarantinedUnit(e.batch, h)) == nil {
                state.put(StateKeys.quarantinedUnit(e.batch, h), n)
                placed += 1
            }
        }
        let units = UInt32(min(placed, held))
        state.put(holdKey, held - UInt64(units))
        state.put(quarantineKey, (try state.read(UInt64.self, quarantineKey) ?? 0) + UInt64(units))
        state.put(StateKeys.excursionCount(e.batch), n)
        state.put(StateKeys.excursion(e.batch, n), ExcursionRecord(n: n, report: e, organisation: storage.organisation, place: storage.place, quarantined: units,
                                                                  reporter: sender.address, height: context.height))
        storage.units = 0
        storage.excursions += 1
        state.put(StateKeys.loggerAttachment(e.device), storage)
        var history = try state.read(StorageRecord.self, StateKeys.storage(e.batch, storage.n)) ?? storage
        history.units = 0
        history.excursions += 1
        state.put(StateKeys.storage(e.batch, storage.n), history)
    }

    static let maxSourcesPerBatch = 16, maxTestsPerBatch: UInt64 = 1_000

    /// A code: 1…64 letters, digits or `-./:_` (no spaces, no free text).
    static func isCode(_ s: String) -> Bool {
        (1...64).contains(s.utf8.count) && s.utf8.allSatisfy { (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || [45, 46, 47, 58, 95].contains($0) }
    }

    /// A manufacturer records a raw-material source (once per id).
    static func registerSource(_ m: RegisterMaterialSource, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        try party(sender, doing: "registers material sources")
        guard let org = try state.read(Organisation.self, StateKeys.organisation(sender.organisation)), org.kind == "manufacturer" else {
            throw .unauthorised("only an organisation of kind manufacturer registers material sources")
        }
        guard isCode(m.materialCode), isCode(m.supplierCode) else { throw .invalidArgument("materialCode and supplierCode are codes (1…64 letters, digits or -./:_), never free text") }
        guard m.originCountry.utf8.count == 2, m.originCountry.utf8.allSatisfy({ (65...90).contains($0) }) else { throw .invalidArgument("originCountry is an ISO 3166-1 alpha-2 code, e.g. DE") }
        guard state.value(forKey: StateKeys.materialSource(m.source)) == nil else { throw .alreadyExists("material source \(m.source)") }
        state.put(StateKeys.materialSource(m.source), MaterialSourceRecord(registration: m, organisation: sender.organisation, height: context.height))
    }

    /// The batch's manufacturer names a source of its own organisation the batch was made with.
    static func linkSource(_ l: LinkMaterialSource, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        try party(sender, doing: "links material sources")
        let b = try batch(l.batch, state: state)
        guard b.manufacturer == sender.organisation else { throw .unauthorised("only the manufacturer \"\(b.manufacturer)\" links sources to batch \(l.batch)") }
        guard let source = try state.read(MaterialSourceRecord.self, StateKeys.materialSource(l.source)), source.organisation == sender.organisation else {
            throw .invalidArgument("\(l.source) is not a material source of \"\(sender.organisation)\"")
        }
        var list = try state.read(IDList.self, StateKeys.batchSources(l.batch)) ?? IDList()
        guard !list.ids.contains(l.source) else { throw .alreadyExists("the link of source \(l.source) to batch \(l.batch)") }
        guard list.ids.count < maxSourcesPerBatch else { throw .invalidArgument("a batch names at most \(maxSourcesPerBatch) sources") }
        list.ids.append(l.source)
        state.put(StateKeys.batchSources(l.batch), list)
    }

    /// A release test or clinical-trial result of a batch: by its manufacturer's supply-chain party or
    /// member-admin, or an attested practitioner of a laboratory.
    static func recordTest(_ t: RecordBatchTest, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let b = try batch(t.batch, state: state)
        let manufacturer = (sender.role == .supplyChainParty || sender.role == .memberAdmin) && sender.organisation == b.manufacturer
        let org = try state.read(Organisation.self, StateKeys.organisation(sender.organisation))
        let laboratory = try Patients.attestation(of: sender, state: state) != nil && org?.kind == "laboratory"
        guard manufacturer || laboratory else { throw .unauthorised("only the manufacturer \"\(b.manufacturer)\" or a laboratory's attested practitioner records a batch's tests") }
        guard RecordBatchTest.testCodes.contains(t.testCode) else { throw .invalidArgument("testCode is one of \(RecordBatchTest.testCodes.joined(separator: ", "))") }
        guard t.atMs <= context.timestampMs + 300_000, t.atMs >= b.registration.manufacturedMs - 3 * 365 * 86_400_000 else {
            throw .invalidArgument("atMs is before the block and not long before manufacture")
        }
        let n = (try state.read(UInt64.self, StateKeys.batchTestCount(t.batch)) ?? 0) + 1
        guard n <= maxTestsPerBatch else { throw .invalidArgument("a batch has at most \(maxTestsPerBatch) test results") }
        state.put(StateKeys.batchTestCount(t.batch), n)
        state.put(StateKeys.batchTest(t.batch, n), BatchTestRecord(n: n, test: t, organisation: sender.organisation, recordedBy: sender.address, height: context.height))
    }

    /// Appends a patient to a batch's paged patient index.
    private static func index(_ subject: Hash, under batch: Hash, state: inout StateOverlay) throws(ContractError) {
        let count = try state.read(UInt64.self, StateKeys.batchPatientCount(batch)) ?? 0
        let pageKey = StateKeys.batchPatients(batch, page: count / StateKeys.batchPatientsPageSize)
        var page = try state.read(IDList.self, pageKey) ?? IDList()
        page.ids.append(subject)
        state.put(pageKey, page)
        state.put(StateKeys.batchPatientCount(batch), count + 1)
    }

    /// Each dose may write an index page under every ancestor: the ancestry is kept small.
    static let maxAncestors = 64

    /// The batches these materials are, and were made from, transitively (breadth first, each once;
    /// at most `maxAncestors`, which registration enforces).
    /// The first of `batches` that was recalled, with its recall.
    static func firstRecalled(_ batches: [Hash], state: StateOverlay) throws(ContractError) -> (Hash, RecallBatch)? {
        for a in batches { if let r = try state.read(BatchRecord.self, StateKeys.batch(a))?.recall { return (a, r) } }
        return nil
    }

    static func ancestors(of materials: [Hash], state: StateOverlay) throws(ContractError) -> [Hash] {
        var seen = Set(materials), out = materials, i = 0
        while i < out.count, out.count <= maxAncestors {
            for m in try state.read(BatchRecord.self, StateKeys.batch(out[i]))?.registration.materials ?? [] where seen.insert(m).inserted { out.append(m) }
            i += 1
        }
        return out
    }

    /// An attested practitioner, or the patient itself, reports a reaction of a patient who was
    /// given a unit of the batch.
    static func reportAdverseEvent(_ e: ReportAdverseEvent, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let isPatient = sender.role == .patient && Pseudonym.of(sender.address) == e.subject
        // A practitioner of an organisation that received the batch (it gave the dose, or holds it).
        let isPractitioner = try Patients.attestation(of: sender, state: state) != nil && state.value(forKey: StateKeys.holding(e.batch, sender.organisation)) != nil
        guard isPatient || isPractitioner else {
            throw .unauthorised("only the patient, or an attested practitioner of an organisation that received the batch, reports an adverse event")
        }
        _ = try batch(e.batch, state: state)
        guard ReportAdverseEvent.severities.contains(e.severity) else { throw .invalidArgument("severity is one of \(ReportAdverseEvent.severities.joined(separator: ", "))") }
        let parts = e.reactionCode.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, ["snomed", "meddra"].contains(parts[0]), (1...18).contains(parts[1].utf8.count), parts[1].utf8.allSatisfy({ (48...57).contains($0) }) else {
            throw .invalidArgument("reactionCode is snomed:<digits> or meddra:<digits>, never free text")
        }
        // The patient must have been given a unit of this batch.
        guard (try state.read(UInt64.self, StateKeys.administeredTo(e.batch, e.subject)) ?? 0) > 0 else { throw .invalidArgument("patient \(e.subject) was not given a unit of batch \(e.batch)") }
        let b = try batch(e.batch, state: state)
        guard e.onsetMs <= context.timestampMs, e.onsetMs >= b.registration.manufacturedMs else { throw .invalidArgument("onsetMs is between the batch's manufacture and the block's time") }
        let reported = StateKeys.adverseReported(e.batch, e.subject, e.reactionCode)
        guard state.value(forKey: reported) == nil else { throw .alreadyExists("a report of \(e.reactionCode) for this patient and batch") }
        state.put(reported, context.height)
        let count = (try state.read(UInt64.self, StateKeys.adverseEventCount(e.batch)) ?? 0) + 1
        state.put(StateKeys.adverseEventCount(e.batch), count)
        state.put(StateKeys.adverseEvent(e.batch, count), AdverseEventRecord(n: count, report: e, reporter: sender.address, reporterRole: isPatient ? "patient" : "practitioner",
                                                                             atMs: context.timestampMs, height: context.height))
    }
}

/// A batch's trace (issue 6 §1): back to its materials, forward to the batches made from it, the
/// organisations that received any of them and the patients given a unit. Read-only, on a committed
/// state: the same answer on every node at one height.
public struct BatchTrace: Sendable, Codable {
    public var batch: Hash
    /// Batches it was made from, transitively (up to 8 levels).
    public var materials: [Hash]
    /// Batches made from it, transitively (up to 8 levels).
    public var derived: [Hash]
    /// Raw-material sources of the batch and of its materials.
    public var sources: [Hash]
    public var organisations: [String]
    /// Pseudonyms of the patients given a unit of it or of a derived batch.
    public var patients: [Hash]
    public var administrations: UInt64
    /// True when a bound was reached (10,000 batches each way, 1,000,000 patients listed): the
    /// lists are then incomplete, and say so.
    public var truncated: Bool

    /// nil if there is no such batch.
    public static func of(_ id: Hash, in state: AuthenticatedState) throws(ContractError) -> BatchTrace? {
        let s = StateOverlay(base: state)
        guard try s.read(BatchRecord.self, StateKeys.batch(id)) != nil else { return nil }
        func walk(_ next: (Hash) throws(ContractError) -> [Hash]) throws(ContractError) -> [Hash] {
            var seen: Set<Hash> = [id], out: [Hash] = [], frontier = [id]
            for _ in 0..<8 where !frontier.isEmpty {
                var level: [Hash] = []
                for h in frontier { for n in try next(h) where out.count < 10_000 && seen.insert(n).inserted { out.append(n); level.append(n) } }
                frontier = level
            }
            return out
        }
        let materials = try walk { (h: Hash) throws(ContractError) -> [Hash] in try s.read(BatchRecord.self, StateKeys.batch(h))?.registration.materials ?? [] }
        let derived = try walk { (h: Hash) throws(ContractError) -> [Hash] in try s.read(IDList.self, StateKeys.madeFrom(h))?.ids ?? [] }
        var organisations: Set<String> = [], patients: [Hash] = [], administrations: UInt64 = 0
        var truncated = materials.count >= 10_000 || derived.count >= 10_000
        for b in [id] + derived {
            guard let record = try s.read(BatchRecord.self, StateKeys.batch(b)) else { continue }
            organisations.insert(record.manufacturer)
            for o in try s.read(StringList.self, StateKeys.batchHolders(b))?.places ?? [] { organisations.insert(o) }
            administrations += record.administered
        }
        // The contract's index: the distinct patients given a unit of this batch or of any batch
        // made from it, one page per 256.
        let count = try s.read(UInt64.self, StateKeys.batchPatientCount(id)) ?? 0
        var page: UInt64 = 0
        while page * StateKeys.batchPatientsPageSize < count {
            guard patients.count < 1_000_000 else { truncated = true; break }
            patients += try s.read(IDList.self, StateKeys.batchPatients(id, page: page))?.ids ?? []
            page += 1
        }
        var sources: [Hash] = []
        for b in [id] + materials { for src in try s.read(IDList.self, StateKeys.batchSources(b))?.ids ?? [] where !sources.contains(src) { sources.append(src) } }
        return BatchTrace(batch: id, materials: materials, derived: derived, sources: sources, organisations: organisations.sorted(), patients: patients,
                          administrations: administrations, truncated: truncated)
    }
}

/// Questions the API asks of the committed state, answered by the contract's own rules (so a scan
/// and a dose never disagree).
public enum SupplyChainQueries {
    /// The manufacturer the GTIN's GS1 company prefix is assigned to, if any.
    public static func brandOwner(_ gtin: String, in state: AuthenticatedState) throws(ContractError) -> GS1PrefixRecord? {
        try SupplyChain.brandOwner(gtin, state: StateOverlay(base: state))
    }

    /// A recalled batch among those `batch` was made from (transitively), if any.
    public static func recalledMaterial(of batch: BatchRecord, in state: AuthenticatedState) throws(ContractError) -> (batch: Hash, recall: RecallBatch)? {
        let s = StateOverlay(base: state)
        return try SupplyChain.firstRecalled(try SupplyChain.ancestors(of: batch.registration.materials, state: s), state: s).map { ($0.0, $0.1) }
    }
}
