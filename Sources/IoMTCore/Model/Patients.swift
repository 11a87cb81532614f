import Crypto

/// Patient-controlled data (issue 5): identities under pseudonyms, practitioner attestations,
/// consent grants, emergency access. On-chain: keys, pseudonyms, hashes, codes and policy — never a
/// name, a condition or a value.

// MARK: identities

/// A patient's pseudonym: the subject that devices, anchors, grants and audit records name.
/// It follows from the patient's account address, and a patient holds one account per organisation
/// (keys derived from one secret, `PatientSecret`), so two organisations see two unrelated
/// pseudonyms unless the patient links them (by a grant naming the other organisation).
public enum Pseudonym {
    public static func of(_ account: Address) -> Hash { Hash.domain("iomtchain/pseudonym/v1", account.bytes) }
}

/// The one secret a patient's agent (phone app, smart card) keeps. Every organisation the patient
/// is enrolled at gets its own signing key and X25519 key derived from it with HKDF-SHA256, so the
/// keys — and so the pseudonyms — of two organisations cannot be linked without the secret.
public struct PatientSecret: Sendable {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(KeyError) {
        guard bytes.count == 32 else { throw .invalidPrivateKey("a patient secret is 32 bytes, got \(bytes.count)") }
        self.bytes = bytes
    }

    private func derive(_ purpose: String, _ organisation: String) -> [UInt8] {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: bytes), salt: Array("iomtchain/patient/v1".utf8),
                               info: Array("\(purpose)/\(organisation)".utf8), outputByteCount: 32).withUnsafeBytes { Array($0) }
    }

    /// The Ed25519 key of the patient's account at `organisation`.
    public func signingKey(at organisation: String) -> PrivateKey {
        try! PrivateKey(algorithm: .ed25519, rawBytes: derive("sign", organisation))
    }

    /// The X25519 key data keys are wrapped for at `organisation`.
    public func agreementKey(at organisation: String) -> Curve25519.KeyAgreement.PrivateKey {
        try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: derive("x25519", organisation))
    }

    /// The pseudonym the patient has at `organisation`.
    public func pseudonym(at organisation: String) -> Hash { Pseudonym.of(signingKey(at: organisation).publicKey.address) }
}

/// A member-admin or practitioner enrols a patient of its organisation: the patient's signing key
/// (the account) and X25519 key (`agreementKey`), with the patient's own signature over both, this
/// chain and the organisation (so nobody can enrol a key it does not hold, or pair a patient's key
/// with an X25519 key of its own). Nothing else: the pseudonym follows from the key.
public struct RegisterPatient: Hashable, Sendable, Codable, CanonicalCodable {
    public var publicKey: PublicKey
    public var agreementKey: X25519Key
    /// The patient's signature with `publicKey` over `message(…)`.
    public var signature: Signature

    public init(publicKey: PublicKey, agreementKey: X25519Key, signature: Signature) {
        self.publicKey = publicKey; self.agreementKey = agreementKey; self.signature = signature
    }

    /// The patient's agent signs its enrolment at `organisation` on `chainID`.
    public init(signedBy key: PrivateKey, agreementKey: X25519Key, chainID: String, organisation: String) {
        self.init(publicKey: key.publicKey, agreementKey: agreementKey,
                  signature: key.sign(Self.message(chainID: chainID, organisation: organisation, publicKey: key.publicKey, agreementKey: agreementKey)))
    }

    public static func message(chainID: String, organisation: String, publicKey: PublicKey, agreementKey: X25519Key) -> [UInt8] {
        var w = CanonicalWriter()
        w.write("iomtchain/enrolment/v1"); w.write(chainID); w.write(organisation); w.write(publicKey); w.write(agreementKey)
        return w.bytes
    }

    public func encode(to w: inout CanonicalWriter) { w.write(publicKey); w.write(agreementKey); w.write(signature) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { publicKey = try r.read(); agreementKey = try r.read(); signature = try r.read() }
}

/// Any account publishes (or rotates) the X25519 key that data keys are wrapped for when it reads:
/// a patient for its own data, a practitioner, researcher or family member for data granted to it.
public struct SetAgreementKey: Hashable, Sendable, Codable, CanonicalCodable {
    public var agreementKey: X25519Key

    public init(agreementKey: X25519Key) { self.agreementKey = agreementKey }

    public func encode(to w: inout CanonicalWriter) { w.write(agreementKey) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { agreementKey = try r.read() }
}

/// An account's published X25519 key. Stored under `StateKeys.agreementKey(address)`.
public struct AgreementKeyRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var key: X25519Key
    /// 1 for the first key; +1 on each rotation.
    public var epoch: UInt32
    public var height: UInt64

    public init(key: X25519Key, epoch: UInt32, height: UInt64) { self.key = key; self.epoch = epoch; self.height = height }

    public func encode(to w: inout CanonicalWriter) { w.write(key); w.write(epoch); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { key = try r.read(); epoch = try r.read(); height = try r.read() }
}

/// A patient enrolled at an organisation. Stored under `StateKeys.patient(pseudonym)`.
public struct PatientRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var pseudonym: Hash
    public var account: Address
    public var organisation: String
    public var enrolledBy: Address
    public var height: UInt64

    public init(pseudonym: Hash, account: Address, organisation: String, enrolledBy: Address, height: UInt64) {
        self.pseudonym = pseudonym; self.account = account; self.organisation = organisation; self.enrolledBy = enrolledBy; self.height = height
    }

    public func encode(to w: inout CanonicalWriter) { w.write(pseudonym); w.write(account); w.write(organisation); w.write(enrolledBy); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        pseudonym = try r.read(); account = try r.read(); organisation = try r.read(); enrolledBy = try r.read(); height = try r.read()
    }
}

/// A member-admin attests (or withdraws the attestation of) a practitioner account of its own
/// organisation: profession and the SHA-256 of the licence id — the licence id itself stays with
/// the organisation.
public struct AttestPractitioner: Hashable, Sendable, Codable, CanonicalCodable {
    public var account: Address
    /// `doctor`, `nurse`, `paramedic`, `pharmacist`, `midwife`, `technician`, `therapist`, `other`.
    public var profession: String
    public var licenceHash: Hash
    /// False withdraws the attestation.
    public var active: Bool

    public static let professions = ["doctor", "nurse", "paramedic", "pharmacist", "midwife", "technician", "therapist", "other"]

    public init(account: Address, profession: String, licenceHash: Hash, active: Bool = true) {
        self.account = account; self.profession = profession; self.licenceHash = licenceHash; self.active = active
    }

    public func encode(to w: inout CanonicalWriter) { w.write(account); w.write(profession); w.write(licenceHash); w.write(active) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        account = try r.read(); profession = try r.read(); licenceHash = try r.read(); active = try r.read()
    }
}

/// A practitioner's attestation. Stored under `StateKeys.practitioner(address)`.
public struct PractitionerRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var attestation: AttestPractitioner
    public var organisation: String
    public var attestedBy: Address
    public var height: UInt64

    public init(attestation: AttestPractitioner, organisation: String, attestedBy: Address, height: UInt64) {
        self.attestation = attestation; self.organisation = organisation; self.attestedBy = attestedBy; self.height = height
    }

    public func encode(to w: inout CanonicalWriter) { w.write(attestation); w.write(organisation); w.write(attestedBy); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        attestation = try r.read(); organisation = try r.read(); attestedBy = try r.read(); height = try r.read()
    }
}

// MARK: consent

/// Categories of a patient's data a grant covers.
public enum DataCategory {
    public static let all = ["vital-signs", "ecg", "location", "diagnoses", "laboratory", "medication", "immunization", "imaging", "notes"]
}

/// Why a grantee reads.
public enum Purpose {
    public static let all = ["treatment", "research", "public-health", "family-care"]
}

/// Who a grant is for: one account; every practitioner, researcher or public-health officer of an
/// organisation; or accounts with given attributes (any of role, profession, organisation; each
/// one given must match).
public enum Grantee: Hashable, Sendable, CanonicalCodable, Codable {
    case account(Address)
    case organisation(String)
    case attributes(role: Role?, profession: String?, organisation: String?)

    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case .account(let a): w.write(UInt8(1)); w.write(a)
        case .organisation(let o): w.write(UInt8(2)); w.write(o)
        case .attributes(let r, let p, let o): w.write(UInt8(3)); w.write(r); w.write(p); w.write(o)
        }
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let tag: UInt8 = try r.read()
        switch tag {
        case 1: self = .account(try r.read())
        case 2: self = .organisation(try r.read())
        case 3: self = .attributes(role: try r.readOptional(), profession: try r.readOptional(), organisation: try r.readOptional())
        default: throw .unknownTag(type: "Grantee", tag: tag)
        }
    }

    private enum Keys: String, CodingKey { case account, organisation, role, profession }

    /// JSON: `{"account": "<40 hex>"}`, `{"organisation": "st-marys"}`, or any of
    /// `{"role": "practitioner", "profession": "doctor", "organisation": "st-marys"}` with a role or
    /// profession (an organisation alone is the organisation form).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        if let a = try c.decodeIfPresent(Address.self, forKey: .account) { self = .account(a); return }
        let role = try c.decodeIfPresent(Role.self, forKey: .role)
        let profession = try c.decodeIfPresent(String.self, forKey: .profession)
        let org = try c.decodeIfPresent(String.self, forKey: .organisation)
        if role == nil, profession == nil {
            guard let org else { throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "a grantee names an account, an organisation, or attributes (role, profession, organisation)")) }
            self = .organisation(org)
        } else {
            self = .attributes(role: role, profession: profession, organisation: org)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        switch self {
        case .account(let a): try c.encode(a, forKey: .account)
        case .organisation(let o): try c.encode(o, forKey: .organisation)
        case .attributes(let r, let p, let o):
            try c.encodeIfPresent(r, forKey: .role); try c.encodeIfPresent(p, forKey: .profession); try c.encodeIfPresent(o, forKey: .organisation)
        }
    }
}

/// A patient grants a grantee access to its data: which categories, data from which time window,
/// for which purposes, until when. The grant's id is the transaction's hash.
public struct GrantConsent: Hashable, Sendable, Codable, CanonicalCodable {
    public var grantee: Grantee
    public var categories: [String]
    public var purposes: [String]
    /// The window of the data covered (reading times, ms UTC), inclusive.
    public var dataFromMs: Int64
    public var dataUntilMs: Int64
    /// When the grant lapses (ms UTC, block time).
    public var expiresMs: Int64

    public init(grantee: Grantee, categories: [String], purposes: [String], dataFromMs: Int64 = 0, dataUntilMs: Int64 = .max, expiresMs: Int64) {
        self.grantee = grantee; self.categories = categories; self.purposes = purposes
        self.dataFromMs = dataFromMs; self.dataUntilMs = dataUntilMs; self.expiresMs = expiresMs
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(grantee); w.write(categories); w.write(purposes)
        w.write(UInt64(bitPattern: dataFromMs)); w.write(UInt64(bitPattern: dataUntilMs)); w.write(UInt64(bitPattern: expiresMs))
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        grantee = try r.read(); categories = try r.readArray(); purposes = try r.readArray()
        dataFromMs = Int64(bitPattern: try r.read()); dataUntilMs = Int64(bitPattern: try r.read()); expiresMs = Int64(bitPattern: try r.read())
    }
}

/// The patient revokes one of its grants. From the block that commits it, the grant answers no.
public struct RevokeConsent: Hashable, Sendable, Codable, CanonicalCodable {
    public var grant: Hash

    public init(grant: Hash) { self.grant = grant }

    public func encode(to w: inout CanonicalWriter) { w.write(grant) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { grant = try r.read() }
}

/// A grant as held in state (`StateKeys.consent(id)`).
public struct ConsentRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var id: Hash
    public var subject: Hash
    public var grant: GrantConsent
    public var grantedAtMs: Int64
    public var height: UInt64
    /// Set when revoked (block time).
    public var revokedAtMs: Int64?

    public init(id: Hash, subject: Hash, grant: GrantConsent, grantedAtMs: Int64, height: UInt64, revokedAtMs: Int64? = nil) {
        self.id = id; self.subject = subject; self.grant = grant; self.grantedAtMs = grantedAtMs; self.height = height; self.revokedAtMs = revokedAtMs
    }

    /// In force at block time `atMs`.
    public func isActive(atMs: Int64) -> Bool { revokedAtMs == nil && atMs < grant.expiresMs }

    public func encode(to w: inout CanonicalWriter) {
        w.write(id); w.write(subject); w.write(grant); w.write(UInt64(bitPattern: grantedAtMs)); w.write(height); w.write(revokedAtMs.map { UInt64(bitPattern: $0) })
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        id = try r.read(); subject = try r.read(); grant = try r.read(); grantedAtMs = Int64(bitPattern: try r.read()); height = try r.read()
        let revoked: UInt64? = try r.readOptional()
        revokedAtMs = revoked.map { Int64(bitPattern: $0) }
    }
}

// MARK: emergency access

/// A practitioner reads a patient's data without consent (break-glass). The reason is a code plus
/// the SHA-256 of the practitioner's written statement, which the organisation keeps and shows the
/// patient and reviewers: a free-text reason would be a condition, and conditions stay off-chain.
public struct DeclareEmergencyAccess: Hashable, Sendable, Codable, CanonicalCodable {
    public var subject: Hash
    /// One of `reasonCodes`.
    public var reasonCode: String
    public var statementHash: Hash
    public var categories: [String]
    /// How long access lasts from the block's time, at most `maxMinutes`.
    public var minutes: UInt32

    public static let reasonCodes = ["unconscious", "life-threatening", "unable-to-consent", "public-health-emergency", "other"]
    public static let maxMinutes: UInt32 = 24 * 60

    public init(subject: Hash, reasonCode: String, statementHash: Hash, categories: [String], minutes: UInt32 = 240) {
        self.subject = subject; self.reasonCode = reasonCode; self.statementHash = statementHash; self.categories = categories; self.minutes = minutes
    }

    public func encode(to w: inout CanonicalWriter) { w.write(subject); w.write(reasonCode); w.write(statementHash); w.write(categories); w.write(minutes) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        subject = try r.read(); reasonCode = try r.read(); statementHash = try r.read(); categories = try r.readArray(); minutes = try r.read()
    }
}

/// The patient, or a member-admin of the practitioner's organisation, reviews an emergency access.
public struct ReviewEmergencyAccess: Hashable, Sendable, Codable, CanonicalCodable {
    public var access: Hash
    /// `justified` or `unjustified`.
    public var verdict: String
    public var noteHash: Hash?

    public static let verdicts = ["justified", "unjustified"]

    public init(access: Hash, verdict: String, noteHash: Hash? = nil) { self.access = access; self.verdict = verdict; self.noteHash = noteHash }

    public func encode(to w: inout CanonicalWriter) { w.write(access); w.write(verdict); w.write(noteHash) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { access = try r.read(); verdict = try r.read(); noteHash = try r.readOptional() }
}

/// A review as recorded.
public struct EmergencyReview: Hashable, Sendable, Codable, CanonicalCodable {
    public var verdict: String
    public var noteHash: Hash?
    public var reviewer: Address
    public var atMs: Int64

    public init(verdict: String, noteHash: Hash?, reviewer: Address, atMs: Int64) { self.verdict = verdict; self.noteHash = noteHash; self.reviewer = reviewer; self.atMs = atMs }

    public func encode(to w: inout CanonicalWriter) { w.write(verdict); w.write(noteHash); w.write(reviewer); w.write(UInt64(bitPattern: atMs)) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        verdict = try r.read(); noteHash = try r.readOptional(); reviewer = try r.read(); atMs = Int64(bitPattern: try r.read())
    }
}

/// An emergency access as held in state (`StateKeys.emergency(id)`); its id is the declaring
/// transaction's hash.
public struct EmergencyAccessRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var id: Hash
    public var declaration: DeclareEmergencyAccess
    public var practitioner: Address
    public var organisation: String
    public var startMs: Int64
    public var untilMs: Int64
    public var height: UInt64
    /// The review by a member-admin of the practitioner's organisation (its privacy officer).
    public var organisationReview: EmergencyReview?
    /// The patient's own review, independent of the organisation's.
    public var patientReview: EmergencyReview?

    public init(id: Hash, declaration: DeclareEmergencyAccess, practitioner: Address, organisation: String, startMs: Int64, untilMs: Int64, height: UInt64,
                organisationReview: EmergencyReview? = nil, patientReview: EmergencyReview? = nil) {
        self.id = id; self.declaration = declaration; self.practitioner = practitioner; self.organisation = organisation
        self.startMs = startMs; self.untilMs = untilMs; self.height = height; self.organisationReview = organisationReview; self.patientReview = patientReview
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(id); w.write(declaration); w.write(practitioner); w.write(organisation)
        w.write(UInt64(bitPattern: startMs)); w.write(UInt64(bitPattern: untilMs)); w.write(height); w.write(organisationReview); w.write(patientReview)
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        id = try r.read(); declaration = try r.read(); practitioner = try r.read(); organisation = try r.read()
        startMs = Int64(bitPattern: try r.read()); untilMs = Int64(bitPattern: try r.read()); height = try r.read()
        organisationReview = try r.readOptional(); patientReview = try r.readOptional()
    }
}

/// Ids listed under a subject or an organisation (grants, emergency accesses), oldest first.
public struct IDList: Hashable, Sendable, Codable, CanonicalCodable {
    public var ids: [Hash]

    public init(_ ids: [Hash] = []) { self.ids = ids }

    public func encode(to w: inout CanonicalWriter) { w.write(ids) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { ids = try r.readArray() }
}

extension StateKeys {
    public static func patient(_ pseudonym: Hash) -> [UInt8] { Array("patient/".utf8) + pseudonym.bytes }
    public static func agreementKey(_ a: Address) -> [UInt8] { Array("xkey/".utf8) + a.bytes }
    public static func practitioner(_ a: Address) -> [UInt8] { Array("practitioner/".utf8) + a.bytes }
    public static func consent(_ id: Hash) -> [UInt8] { Array("consent/".utf8) + id.bytes }
    /// The grants of a subject (`IDList`), newest last.
    public static func consents(of subject: Hash) -> [UInt8] { Array("consents-of/".utf8) + subject.bytes }
    public static func emergency(_ id: Hash) -> [UInt8] { Array("emergency/".utf8) + id.bytes }
    /// How many emergency accesses to a subject's data were declared (`UInt64`); the n-th
    /// (1-based, in commit order) is `emergencyEntry(subject, n)` (its id).
    public static func emergencyCount(of subject: Hash) -> [UInt8] { Array("emergencies-of/".utf8) + subject.bytes }
    public static func emergencyEntry(of subject: Hash, _ n: UInt64) -> [UInt8] { Array("emergencies-of/".utf8) + subject.bytes + n.canonicalBytes }
    /// The emergency accesses by an organisation's practitioners still waiting for review (`IDList`).
    public static func unreviewedEmergencies(of organisation: String) -> [UInt8] { Array("emergencies-unreviewed/".utf8) + Array(organisation.utf8) }
}

// MARK: reads: delegation, signed requests, audit

/// The patient lets a gateway re-wrap the data keys of its batches for the grantees the consent
/// contract allows (`active` true), or withdraws that (false). Without it the gateway serves no
/// reader but the patient; the patient's own agent can still re-wrap.
public struct SetRewrapDelegation: Hashable, Sendable, Codable, CanonicalCodable {
    public var gateway: Address
    public var active: Bool

    public init(gateway: Address, active: Bool = true) { self.gateway = gateway; self.active = active }

    public func encode(to w: inout CanonicalWriter) { w.write(gateway); w.write(active) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { gateway = try r.read(); active = try r.read() }
}

/// A gateway anchors the next run of its audit log: entries `firstSeq…lastSeq` under one Merkle
/// root (RFC 6962 over the entries' canonical bytes). Runs are contiguous per gateway, so a
/// dropped or rewritten entry is evident.
public struct AnchorAudit: Hashable, Sendable, Codable, CanonicalCodable {
    public var firstSeq: UInt64
    public var lastSeq: UInt64
    public var root: Hash

    public init(firstSeq: UInt64, lastSeq: UInt64, root: Hash) { self.firstSeq = firstSeq; self.lastSeq = lastSeq; self.root = root }

    public func encode(to w: inout CanonicalWriter) { w.write(firstSeq); w.write(lastSeq); w.write(root) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { firstSeq = try r.read(); lastSeq = try r.read(); root = try r.read() }
}

/// An anchored audit run. Stored under `StateKeys.auditAnchor(gateway, firstSeq)`.
public struct AuditAnchorRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var anchor: AnchorAudit
    public var gateway: Address
    public var height: UInt64
    public var transaction: Hash

    public init(anchor: AnchorAudit, gateway: Address, height: UInt64, transaction: Hash) { self.anchor = anchor; self.gateway = gateway; self.height = height; self.transaction = transaction }

    public func encode(to w: inout CanonicalWriter) { w.write(anchor); w.write(gateway); w.write(height); w.write(transaction) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { anchor = try r.read(); gateway = try r.read(); height = try r.read(); transaction = try r.read() }
}

/// One read of patient data, granted or refused, as a gateway logs it. Pseudonyms, codes and
/// hashes only: the log may be shown to the patient and anchored without revealing anything.
public struct AuditEntry: Hashable, Sendable, Codable, CanonicalCodable {
    public var seq: UInt64
    /// Its number among this subject's entries (1, 2, 3, …): a patient listing its log sees any
    /// entry left out of the middle as a gap.
    public var subjectSeq: UInt64
    public var atMs: Int64
    /// The account the request claimed (zero when it named none).
    public var reader: Address
    public var subject: Hash
    public var category: String
    public var purpose: String
    public var fromMs: Int64
    public var toMs: Int64
    public var allowed: Bool
    /// `own`, `grant`, `emergency`, or `denied`.
    public var basis: String
    /// The grant or emergency access relied on.
    public var reference: Hash?
    /// `granted`, or why not (`bad-signature`, `replayed-request`, `access-denied`, …).
    public var code: String
    /// Batches whose keys were re-wrapped for the reader.
    public var batches: UInt32
    /// SHA-256 of the signed request message (identifies the request without repeating it).
    public var requestDigest: Hash

    public init(seq: UInt64, subjectSeq: UInt64, atMs: Int64, reader: Address, subject: Hash, category: String, purpose: String, fromMs: Int64, toMs: Int64,
                allowed: Bool, basis: String, reference: Hash?, code: String, batches: UInt32, requestDigest: Hash) {
        self.seq = seq; self.subjectSeq = subjectSeq; self.atMs = atMs; self.reader = reader; self.subject = subject; self.category = category; self.purpose = purpose
        self.fromMs = fromMs; self.toMs = toMs; self.allowed = allowed; self.basis = basis; self.reference = reference; self.code = code
        self.batches = batches; self.requestDigest = requestDigest
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(seq); w.write(subjectSeq); w.write(atMs); w.write(reader); w.write(subject); w.write(category); w.write(purpose); w.write(fromMs); w.write(toMs)
        w.write(allowed); w.write(basis); w.write(reference); w.write(code); w.write(batches); w.write(requestDigest)
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        seq = try r.read(); subjectSeq = try r.read(); atMs = try r.read(); reader = try r.read(); subject = try r.read(); category = try r.read(); purpose = try r.read()
        fromMs = try r.read(); toMs = try r.read(); allowed = try r.read(); basis = try r.read(); reference = try r.readOptional(); code = try r.read()
        batches = try r.read(); requestDigest = try r.read()
    }
}

/// A gateway's latest anchored audit run. Stored under `StateKeys.auditHead(gateway)`.
public struct AuditHead: Hashable, Sendable, Codable, CanonicalCodable {
    public var lastSeq: UInt64
    public var root: Hash
    public var height: UInt64

    public init(lastSeq: UInt64, root: Hash, height: UInt64) { self.lastSeq = lastSeq; self.root = root; self.height = height }

    public func encode(to w: inout CanonicalWriter) { w.write(lastSeq); w.write(root); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { lastSeq = try r.read(); root = try r.read(); height = try r.read() }
}

/// A request signed by an account key (no shared secret): the reader proves who it is to one
/// gateway. Headers: `X-IoMT-Account`, `X-IoMT-Timestamp` (ms), `X-IoMT-Nonce` (16–64 hex
/// digits, never reused), `X-IoMT-Signature` over `message(…)`.
public enum SignedRequest {
    /// How far a request's timestamp may be from the gateway's clock.
    public static let maxSkewMs: Int64 = 300_000

    /// `audience` is the account of the gateway the request is for: a request signed for one
    /// gateway is refused by every other (it cannot be replayed there).
    public static func message(chainID: String, audience: Address, method: String, target: String, timestampMs: Int64, nonce: String, body: [UInt8]) -> [UInt8] {
        var w = CanonicalWriter()
        w.write("iomtchain/request/v1"); w.write(chainID); w.write(audience); w.write(method); w.write(target); w.write(timestampMs); w.write(nonce); w.write(Hash.sha256(body))
        return w.bytes
    }

    /// The headers that sign a request for `target` (path and query, as sent) to the gateway whose account is `audience`.
    public static func headers(key: PrivateKey, chainID: String, audience: Address, method: String, target: String, body: [UInt8] = [], nowMs: Int64, nonce: String) -> [String: String] {
        let m = message(chainID: chainID, audience: audience, method: method, target: target, timestampMs: nowMs, nonce: nonce, body: body)
        return ["X-IoMT-Account": key.publicKey.address.hex, "X-IoMT-Timestamp": String(nowMs), "X-IoMT-Nonce": nonce, "X-IoMT-Signature": Hex.encode(key.sign(m).bytes)]
    }
}

extension StateKeys {
    /// The gateways a patient lets re-wrap its data keys (`AddressSet`).
    public static func delegations(of subject: Hash) -> [UInt8] { Array("rewrap-delegations/".utf8) + subject.bytes }
    public static func auditHead(_ gateway: Address) -> [UInt8] { Array("audit-head/".utf8) + gateway.bytes }
    public static func auditAnchor(_ gateway: Address, firstSeq: UInt64) -> [UInt8] {
        var w = CanonicalWriter()
        w.write(firstSeq)
        return Array("audit-anchor/".utf8) + gateway.bytes + w.bytes
    }
}

// MARK: erasure (crypto-shredding)

/// The patient has its data made unreadable for good: from this block the consent contract
/// allows no read of it; every gateway holding its batches destroys the patient's custody key,
/// deletes the blobs and plaintext it holds and confirms on-chain; every node deletes the
/// confirmed blobs and keeps a tombstone so that no copy comes back. The chain's hashes stay.
public struct RequestErasure: Hashable, Sendable, Codable, CanonicalCodable {
    /// The patient's own pseudonym (stated, so that the request names what it erases).
    public var subject: Hash

    public init(subject: Hash) { self.subject = subject }

    public func encode(to w: inout CanonicalWriter) { w.write(subject) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { subject = try r.read() }
}

/// A gateway confirms that it erased batches of an erased subject: their blobs (nodes delete
/// theirs when this commits), its plaintext copies, and — with `final` — the subject's custody key.
public struct ConfirmErasure: Hashable, Sendable, Codable, CanonicalCodable {
    public var subject: Hash
    /// Roots of batches this gateway anchored for the subject (at most 1,000 per transaction).
    public var batchRoots: [Hash]
    /// The last confirmation: every batch is listed and the custody key is destroyed.
    public var final: Bool

    public static let maxRoots = 1_000

    public init(subject: Hash, batchRoots: [Hash], final: Bool) { self.subject = subject; self.batchRoots = batchRoots; self.final = final }

    public func encode(to w: inout CanonicalWriter) { w.write(subject); w.write(batchRoots); w.write(final) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { subject = try r.read(); batchRoots = try r.readArray(); final = try r.read() }
}

/// An erasure request as recorded (`StateKeys.erasure(subject)`).
public struct ErasureRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var subject: Hash
    public var requestedAtMs: Int64
    public var height: UInt64
    /// Its position in the chain's list of erasures (`StateKeys.erasureEntry`).
    public var sequence: UInt64

    public init(subject: Hash, requestedAtMs: Int64, height: UInt64, sequence: UInt64) { self.subject = subject; self.requestedAtMs = requestedAtMs; self.height = height; self.sequence = sequence }

    public func encode(to w: inout CanonicalWriter) { w.write(subject); w.write(requestedAtMs); w.write(height); w.write(sequence) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { subject = try r.read(); requestedAtMs = try r.read(); height = try r.read(); sequence = try r.read() }
}

/// One gateway's erasure of a subject's batches so far.
public struct ErasureProgress: Hashable, Sendable, Codable, CanonicalCodable {
    public var gateway: Address
    public var batches: UInt64
    /// Set by the final confirmation: every batch listed, the custody key destroyed.
    public var complete: Bool
    public var height: UInt64

    public init(gateway: Address, batches: UInt64, complete: Bool, height: UInt64) { self.gateway = gateway; self.batches = batches; self.complete = complete; self.height = height }

    public func encode(to w: inout CanonicalWriter) { w.write(gateway); w.write(batches); w.write(complete); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { gateway = try r.read(); batches = try r.read(); complete = try r.read(); height = try r.read() }
}

extension StateKeys {
    public static func erasure(_ subject: Hash) -> [UInt8] { Array("erasure/".utf8) + subject.bytes }
    /// How many erasures were requested (`UInt64`); entry n (1-based) is `erasureEntry(n)`.
    public static let erasureCount: [UInt8] = Array("erasures/count".utf8)
    public static func erasureEntry(_ n: UInt64) -> [UInt8] { Array("erasures/".utf8) + n.canonicalBytes }
    /// Each gateway's progress (`[ErasureProgress]`).
    public static func erasureProgress(_ subject: Hash) -> [UInt8] { Array("erasure-progress/".utf8) + subject.bytes }
    /// How many batches of `subject` a gateway anchored (`UInt64`): a final erasure confirmation
    /// must have listed that many.
    public static func anchorCount(_ subject: Hash, gateway: Address) -> [UInt8] { Array("anchor-count/".utf8) + subject.bytes + gateway.bytes }
    /// Set (to the height) when a batch's blob was confirmed erased.
    public static func erasedAnchor(_ root: Hash) -> [UInt8] { Array("erased-anchor/".utf8) + root.bytes }
}
