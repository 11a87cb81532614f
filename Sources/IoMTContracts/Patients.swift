import IoMTCore

/// Identities, consent and emergency access (issue 5): patients enrolled under pseudonyms,
/// practitioners attested by their organisation, grants by scope, break-glass access with review.
enum Patients {
    static let maxGrantsPerSubject = 256
    static let maxListed = 4096

    static func register(_ b: RegisterPatient, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let practitioner = try attestation(of: sender, state: state)
        guard sender.role == .memberAdmin || practitioner != nil else {
            throw .unauthorised("only a member-admin or an attested practitioner enrols patients")
        }
        let address = b.publicKey.address
        guard state.value(forKey: StateKeys.account(address)) == nil else { throw .alreadyExists("account \(address)") }
        let message = RegisterPatient.message(chainID: context.chainID, organisation: sender.organisation, publicKey: b.publicKey, agreementKey: b.agreementKey)
        guard b.publicKey.isValidSignature(b.signature, for: message) else {
            throw .invalidArgument("the enrolment is not signed by the patient's key for this chain and organisation (iomtchain patient enrolment)")
        }
        let pseudonym = Pseudonym.of(address)
        state.put(StateKeys.account(address), Account(address: address, publicKey: b.publicKey, role: .patient, organisation: sender.organisation, registeredAtHeight: context.height))
        state.put(StateKeys.agreementKey(address), AgreementKeyRecord(key: b.agreementKey, epoch: 1, height: context.height))
        state.put(StateKeys.patient(pseudonym), PatientRecord(pseudonym: pseudonym, account: address, organisation: sender.organisation, enrolledBy: sender.address, height: context.height))
    }

    static func setAgreementKey(_ b: SetAgreementKey, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let current = try state.read(AgreementKeyRecord.self, StateKeys.agreementKey(sender.address))
        guard current?.key != b.agreementKey else { throw .invalidArgument("this is already the account's agreement key") }
        state.put(StateKeys.agreementKey(sender.address), AgreementKeyRecord(key: b.agreementKey, epoch: (current?.epoch ?? 0) + 1, height: context.height))
    }

    static func attest(_ b: AttestPractitioner, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard sender.role == .memberAdmin else { throw .unauthorised("only a member-admin attests practitioners") }
        guard let target = try state.read(Account.self, StateKeys.account(b.account)) else { throw .unknownAccount(b.account) }
        guard target.organisation == sender.organisation else { throw .unauthorised("account \(b.account) belongs to \"\(target.organisation)\"") }
        guard target.role == .practitioner else { throw .invalidArgument("account \(b.account) is a \(target.role.name), not a practitioner") }
        guard AttestPractitioner.professions.contains(b.profession) else {
            throw .invalidArgument("profession is one of \(AttestPractitioner.professions.joined(separator: ", "))")
        }
        if !b.active, try state.read(PractitionerRecord.self, StateKeys.practitioner(b.account)) == nil {
            throw .invalidArgument("account \(b.account) has no attestation to withdraw")
        }
        state.put(StateKeys.practitioner(b.account), PractitionerRecord(attestation: b, organisation: sender.organisation, attestedBy: sender.address, height: context.height))
    }

    /// The sender's active attestation, if it is a practitioner with one from its own organisation.
    static func attestation(of a: Account, state: StateOverlay) throws(ContractError) -> PractitionerRecord? {
        guard a.role == .practitioner, a.status == .active,
              let r = try state.read(PractitionerRecord.self, StateKeys.practitioner(a.address)),
              r.attestation.active, r.organisation == a.organisation else { return nil }
        return r
    }

    /// The sender's own patient record: only an enrolled patient grants, revokes or reviews.
    static func patientRecord(of sender: Account, state: StateOverlay, doing what: String) throws(ContractError) -> PatientRecord {
        guard sender.role == .patient, let p = try state.read(PatientRecord.self, StateKeys.patient(Pseudonym.of(sender.address))) else {
            throw .unauthorised("only an enrolled patient (register-patient) \(what)")
        }
        return p
    }

    static func checkVocabulary(_ values: [String], _ vocabulary: [String], field: String) throws(ContractError) {
        guard !values.isEmpty, values.count <= vocabulary.count, Set(values).count == values.count else {
            throw .invalidArgument("\(field) must list 1…\(vocabulary.count) distinct values")
        }
        for v in values where !vocabulary.contains(v) {
            throw .invalidArgument("\(field): \"\(v.prefix(32))\" is not one of \(vocabulary.joined(separator: ", "))")
        }
    }

    static func grant(_ b: GrantConsent, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let patient = try patientRecord(of: sender, state: state, doing: "grants access to its data")
        try checkVocabulary(b.categories, DataCategory.all, field: "categories")
        try checkVocabulary(b.purposes, Purpose.all, field: "purposes")
        guard b.dataFromMs <= b.dataUntilMs else { throw .invalidArgument("dataFromMs is after dataUntilMs") }
        guard b.expiresMs > context.timestampMs else { throw .invalidArgument("expiresMs \(b.expiresMs) is not after the block's time \(context.timestampMs)") }
        switch b.grantee {
        case .account(let a):
            guard a != sender.address else { throw .invalidArgument("a patient needs no grant to read its own data") }
            guard state.value(forKey: StateKeys.account(a)) != nil else { throw .unknownAccount(a) }
        case .organisation(let o):
            guard state.value(forKey: StateKeys.organisation(o)) != nil else { throw .unknownOrganisation(o) }
        case .attributes(_, let profession, let o):
            if let profession, !AttestPractitioner.professions.contains(profession) {
                throw .invalidArgument("profession is one of \(AttestPractitioner.professions.joined(separator: ", "))")
            }
            if let o, state.value(forKey: StateKeys.organisation(o)) == nil { throw .unknownOrganisation(o) }
        }
        var list = try state.read(IDList.self, StateKeys.consents(of: patient.pseudonym)) ?? IDList()
        if list.ids.count >= maxGrantsPerSubject {
            // Lapsed and revoked grants leave the list (their records stay, readable by id).
            var kept: [Hash] = []
            for id in list.ids {
                if let g = try state.read(ConsentRecord.self, StateKeys.consent(id)), g.isActive(atMs: context.timestampMs) { kept.append(id) }
            }
            list.ids = kept
            guard list.ids.count < maxGrantsPerSubject else { throw .invalidArgument("\(maxGrantsPerSubject) grants are in force; revoke one first") }
        }
        let id = context.transactionHash
        list.ids.append(id)
        state.put(StateKeys.consents(of: patient.pseudonym), list)
        state.put(StateKeys.consent(id), ConsentRecord(id: id, subject: patient.pseudonym, grant: b, grantedAtMs: context.timestampMs, height: context.height))
    }

    static func revoke(_ b: RevokeConsent, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let patient = try patientRecord(of: sender, state: state, doing: "revokes grants")
        guard var g = try state.read(ConsentRecord.self, StateKeys.consent(b.grant)), g.subject == patient.pseudonym else {
            throw .invalidArgument("no grant \(b.grant) of this patient")
        }
        guard g.revokedAtMs == nil else { throw .invalidArgument("grant \(b.grant) is already revoked") }
        g.revokedAtMs = context.timestampMs
        state.put(StateKeys.consent(b.grant), g)
    }

    static func declareEmergency(_ b: DeclareEmergencyAccess, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard try attestation(of: sender, state: state) != nil else {
            throw .unauthorised("only a practitioner attested by its organisation declares emergency access")
        }
        guard try state.read(PatientRecord.self, StateKeys.patient(b.subject)) != nil else { throw .invalidArgument("no patient is enrolled under pseudonym \(b.subject)") }
        guard DeclareEmergencyAccess.reasonCodes.contains(b.reasonCode) else {
            throw .invalidArgument("reasonCode is one of \(DeclareEmergencyAccess.reasonCodes.joined(separator: ", "))")
        }
        try checkVocabulary(b.categories, DataCategory.all, field: "categories")
        guard (1...DeclareEmergencyAccess.maxMinutes).contains(b.minutes) else { throw .invalidArgument("minutes must be 1…\(DeclareEmergencyAccess.maxMinutes)") }
        let id = context.transactionHash
        // Numbered, not listed in one value: nothing caps how many can be declared, and the
        // decision reads only the last day's (each lasts at most 24 h).
        let n = (try state.read(UInt64.self, StateKeys.emergencyCount(of: b.subject)) ?? 0) + 1
        state.put(StateKeys.emergencyCount(of: b.subject), n)
        state.put(StateKeys.emergencyEntry(of: b.subject, n), id)
        try append(id, to: StateKeys.unreviewedEmergencies(of: sender.organisation), state: &state, what: "unreviewed emergency accesses of \"\(sender.organisation)\"")
        state.put(StateKeys.emergency(id), EmergencyAccessRecord(id: id, declaration: b, practitioner: sender.address, organisation: sender.organisation,
                                                                 startMs: context.timestampMs, untilMs: context.timestampMs + Int64(b.minutes) * 60_000, height: context.height))
    }

    static func append(_ id: Hash, to key: [UInt8], state: inout StateOverlay, what: String) throws(ContractError) {
        var list = try state.read(IDList.self, key) ?? IDList()
        guard list.ids.count < maxListed else { throw .invalidArgument("\(maxListed) \(what) are listed; review them first") }
        list.ids.append(id)
        state.put(key, list)
    }

    static func review(_ b: ReviewEmergencyAccess, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard ReviewEmergencyAccess.verdicts.contains(b.verdict) else { throw .invalidArgument("verdict is justified or unjustified") }
        guard var e = try state.read(EmergencyAccessRecord.self, StateKeys.emergency(b.access)) else { throw .invalidArgument("unknown emergency access \(b.access)") }
        let isPatient = sender.role == .patient && Pseudonym.of(sender.address) == e.declaration.subject
        let isAdmin = sender.role == .memberAdmin && sender.organisation == e.organisation
        guard isPatient || isAdmin else { throw .unauthorised("only the patient or a member-admin of \"\(e.organisation)\" reviews this access") }
        // The patient and the organisation each review once, independently: one's verdict does
        // not stand for the other's.
        let review = EmergencyReview(verdict: b.verdict, noteHash: b.noteHash, reviewer: sender.address, atMs: context.timestampMs)
        if isPatient {
            guard e.patientReview == nil else { throw .invalidArgument("the patient already reviewed emergency access \(b.access)") }
            e.patientReview = review
            state.put(StateKeys.emergency(b.access), e)
            return
        }
        guard e.organisationReview == nil else { throw .invalidArgument("\"\(e.organisation)\" already reviewed emergency access \(b.access)") }
        e.organisationReview = review
        state.put(StateKeys.emergency(b.access), e)
        let key = StateKeys.unreviewedEmergencies(of: e.organisation)
        if var list = try state.read(IDList.self, key) {
            list.ids.removeAll { $0 == b.access }
            state.put(key, list)
        }
    }
}

extension Patients {
    static let maxDelegations = 16
    static let maxAuditRun: UInt64 = 100_000

    /// An enrolled patient lets a gateway account re-wrap its data keys for allowed readers, or withdraws it.
    static func delegate(_ b: SetRewrapDelegation, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let patient = try patientRecord(of: sender, state: state, doing: "delegates key re-wrapping")
        let key = StateKeys.delegations(of: patient.pseudonym)
        var set = try state.read(AddressSet.self, key) ?? AddressSet([])
        if b.active {
            guard let g = try state.read(Account.self, StateKeys.account(b.gateway)), g.role == .gateway else { throw .invalidArgument("\(b.gateway) is not a gateway account") }
            guard !set.contains(b.gateway) else { throw .invalidArgument("gateway \(b.gateway) already holds the delegation") }
            guard set.count < maxDelegations else { throw .invalidArgument("at most \(maxDelegations) gateways hold a delegation") }
            set.insert(b.gateway)
        } else {
            guard set.contains(b.gateway) else { throw .invalidArgument("gateway \(b.gateway) holds no delegation") }
            set.remove(b.gateway)
        }
        state.put(key, set)
    }

    /// A gateway anchors the next contiguous run of its audit log.
    static func anchorAudit(_ b: AnchorAudit, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard sender.role == .gateway else { throw .unauthorised("only a gateway account anchors audit logs") }
        let head = try state.read(AuditHead.self, StateKeys.auditHead(sender.address))
        let expected = (head?.lastSeq ?? 0) + 1
        guard b.firstSeq == expected else { throw .invalidArgument("the gateway's audit log continues at entry \(expected), not \(b.firstSeq)") }
        guard b.lastSeq >= b.firstSeq, b.lastSeq - b.firstSeq < maxAuditRun else { throw .invalidArgument("an audit run holds 1…\(maxAuditRun) entries") }
        state.put(StateKeys.auditHead(sender.address), AuditHead(lastSeq: b.lastSeq, root: b.root, height: context.height))
        state.put(StateKeys.auditAnchor(sender.address, firstSeq: b.firstSeq), AuditAnchorRecord(anchor: b, gateway: sender.address, height: context.height, transaction: context.transactionHash))
    }
}

extension Patients {
    /// The patient asks for its data to be erased (once).
    static func requestErasure(_ b: RequestErasure, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let patient = try patientRecord(of: sender, state: state, doing: "requests erasure of its data")
        guard b.subject == patient.pseudonym else { throw .unauthorised("a patient erases only its own data (pseudonym \(patient.pseudonym))") }
        guard state.value(forKey: StateKeys.erasure(b.subject)) == nil else { throw .alreadyExists("erasure of \(b.subject)") }
        let n = (try state.read(UInt64.self, StateKeys.erasureCount) ?? 0) + 1
        state.put(StateKeys.erasureCount, n)
        state.put(StateKeys.erasureEntry(n), b.subject)
        state.put(StateKeys.erasure(b.subject), ErasureRecord(subject: b.subject, requestedAtMs: context.timestampMs, height: context.height, sequence: n))
    }

    /// A gateway confirms erased batches of an erased subject: only batches it anchored, bound to
    /// that subject, each once.
    static func confirmErasure(_ b: ConfirmErasure, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard sender.role == .gateway else { throw .unauthorised("only a gateway confirms erasure") }
        guard state.value(forKey: StateKeys.erasure(b.subject)) != nil else { throw .invalidArgument("no erasure of \(b.subject) was requested") }
        guard b.batchRoots.count <= ConfirmErasure.maxRoots, Set(b.batchRoots).count == b.batchRoots.count else {
            throw .invalidArgument("at most \(ConfirmErasure.maxRoots) distinct batch roots per confirmation")
        }
        var progress = try state.read([ErasureProgress].self, StateKeys.erasureProgress(b.subject)) ?? []
        let i = progress.firstIndex { $0.gateway == sender.address }
        if let i, progress[i].complete { throw .invalidArgument("gateway \(sender.address) already completed the erasure of \(b.subject)") }
        for root in b.batchRoots {
            guard let a = try state.read(AnchorRecord.self, StateKeys.anchor(root)) else { throw .invalidArgument("no anchored batch \(root)") }
            guard a.gateway == sender.address else { throw .unauthorised("batch \(root) was anchored by another gateway") }
            guard let d = try state.read(DeviceRecord.self, StateKeys.device(a.anchor.device)), d.subject == b.subject else {
                throw .invalidArgument("batch \(root) is not of subject \(b.subject)")
            }
            guard state.value(forKey: StateKeys.erasedAnchor(root)) == nil else { throw .alreadyExists("erasure of batch \(root)") }
            state.put(StateKeys.erasedAnchor(root), context.height)
        }
        let total = (i.map { progress[$0].batches } ?? 0) + UInt64(b.batchRoots.count)
        if b.final {
            // Final means every batch this gateway anchored for the subject is listed.
            let anchored = try state.read(UInt64.self, StateKeys.anchorCount(b.subject, gateway: sender.address)) ?? 0
            guard total == anchored else { throw .invalidArgument("a final confirmation must cover all \(anchored) batches this gateway anchored for \(b.subject); \(total) are listed") }
        }
        if let i {
            progress[i].batches = total; progress[i].complete = b.final; progress[i].height = context.height
        } else {
            progress.append(ErasureProgress(gateway: sender.address, batches: total, complete: b.final, height: context.height))
        }
        state.put(StateKeys.erasureProgress(b.subject), progress)
    }
}

// MARK: the access decision

/// "May `reader` read `subject`'s data of `category`, from the window `dataFromMs…dataUntilMs`, for
/// `purpose`?" — asked of a committed state at its block time. Every node gives the same answer
/// at the same height: it reads only state.
public struct AccessQuery: Hashable, Sendable, Codable {
    public var reader: Address
    public var subject: Hash
    public var category: String
    public var purpose: String
    public var dataFromMs: Int64
    public var dataUntilMs: Int64

    public init(reader: Address, subject: Hash, category: String, purpose: String, dataFromMs: Int64 = 0, dataUntilMs: Int64 = .max) {
        self.reader = reader; self.subject = subject; self.category = category; self.purpose = purpose
        self.dataFromMs = dataFromMs; self.dataUntilMs = dataUntilMs
    }
}

public struct AccessDecision: Hashable, Sendable, Codable {
    public enum Basis: String, Sendable, Codable {
        /// The patient reads its own data.
        case own
        case grant
        case emergency
        case denied
    }

    public var allowed: Bool
    public var basis: Basis
    /// The grant or emergency access that allows it.
    public var reference: Hash?
    public var reason: String

    public static func deny(_ reason: String) -> AccessDecision { AccessDecision(allowed: false, basis: .denied, reference: nil, reason: reason) }
}

public enum Consent {
    /// Decides `q` on `state` at block time `atMs`. Throws only for a malformed query.
    public static func decide(_ q: AccessQuery, state: AuthenticatedState, atMs: Int64) throws(ContractError) -> AccessDecision {
        try decide(q, overlay: StateOverlay(base: state), atMs: atMs)
    }

    /// `decide` on a state with pending writes (a contract asks it mid-block).
    static func decide(_ q: AccessQuery, overlay s: StateOverlay, atMs: Int64) throws(ContractError) -> AccessDecision {
        guard DataCategory.all.contains(q.category) else { throw .invalidArgument("category is one of \(DataCategory.all.joined(separator: ", "))") }
        guard Purpose.all.contains(q.purpose) else { throw .invalidArgument("purpose is one of \(Purpose.all.joined(separator: ", "))") }
        guard q.dataFromMs <= q.dataUntilMs else { throw .invalidArgument("dataFromMs is after dataUntilMs") }
        guard let reader = try s.read(Account.self, StateKeys.account(q.reader)) else { return .deny("reader \(q.reader) is not an account") }
        guard reader.status == .active else { return .deny("reader \(q.reader) is \(reader.status.name)") }
        guard let patient = try s.read(PatientRecord.self, StateKeys.patient(q.subject)) else { return .deny("no patient is enrolled under pseudonym \(q.subject)") }
        if let e = try s.read(ErasureRecord.self, StateKeys.erasure(q.subject)) { return .deny("the patient's data was erased at its request (height \(e.height))") }
        if reader.address == patient.account { return AccessDecision(allowed: true, basis: .own, reference: nil, reason: "the patient's own data") }
        // A suspended or revoked patient account cannot revoke its grants: none of them count
        // until it is active again (emergency access still can).
        let patientActive = try s.read(Account.self, StateKeys.account(patient.account))?.status == .active
        let attested = try Patients.attestation(of: reader, state: s)
        for id in patientActive ? (try s.read(IDList.self, StateKeys.consents(of: q.subject))?.ids ?? []) : [] {
            guard let g = try s.read(ConsentRecord.self, StateKeys.consent(id)), g.isActive(atMs: atMs) else { continue }
            let scope = g.grant
            guard scope.categories.contains(q.category), scope.purposes.contains(q.purpose),
                  scope.dataFromMs <= q.dataFromMs, q.dataUntilMs <= scope.dataUntilMs,
                  matches(scope.grantee, reader: reader, attestation: attested) else { continue }
            return AccessDecision(allowed: true, basis: .grant, reference: id, reason: "grant \(id)")
        }
        if q.purpose == "treatment", attested != nil {
            // Newest first; entries are in commit order and last at most a day, so the scan stops at
            // the first one declared more than a day before.
            var n = try s.read(UInt64.self, StateKeys.emergencyCount(of: q.subject)) ?? 0
            let horizon = atMs - Int64(DeclareEmergencyAccess.maxMinutes) * 60_000
            while n > 0 {
                guard let id = try s.read(Hash.self, StateKeys.emergencyEntry(of: q.subject, n)),
                      let e = try s.read(EmergencyAccessRecord.self, StateKeys.emergency(id)) else { break }
                if e.startMs < horizon { break }
                if e.practitioner == reader.address, e.startMs <= atMs, atMs < e.untilMs, e.declaration.categories.contains(q.category) {
                    return AccessDecision(allowed: true, basis: .emergency, reference: id, reason: "emergency access \(id) until \(e.untilMs)")
                }
                n -= 1
            }
        }
        return .deny("no grant in force covers \(q.category) data of this window for \(q.purpose) by \(q.reader)")
    }

    /// Whether a grantee clause names `reader`. An organisation grant covers its attested
    /// practitioners, researchers and public-health officers; attributes must all match, and a
    /// profession (or the practitioner role) needs an attestation in force.
    static func matches(_ grantee: Grantee, reader: Account, attestation: PractitionerRecord?) -> Bool {
        switch grantee {
        case .account(let a):
            return reader.address == a
        case .organisation(let o):
            guard reader.organisation == o else { return false }
            switch reader.role {
            case .practitioner: return attestation != nil
            case .researcher, .publicHealthOfficer: return true
            default: return false
            }
        case .attributes(let role, let profession, let o):
            if let role, reader.role != role { return false }
            if let o, reader.organisation != o { return false }
            if reader.role == .practitioner, attestation == nil { return false }
            if let profession, attestation?.attestation.profession != profession { return false }
            return true
        }
    }
}
