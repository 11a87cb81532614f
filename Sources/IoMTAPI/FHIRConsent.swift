import Foundation
import IoMTContracts
import IoMTCore

/// FHIR R4 Consent (issue 5 §10): a grant exported as a Consent resource, and a Consent read
/// back as a grant. Only what a grant can say is mapped; anything else is refused by name rather
/// than silently dropped (a consent's meaning must not change on the way in).
public struct FHIRConsent: Codable, Sendable, Equatable {
    public struct Coding: Codable, Sendable, Equatable {
        public var system: String?
        public var code: String?
        public var display: String?
        public init(system: String?, code: String?, display: String? = nil) { self.system = system; self.code = code; self.display = display }
    }
    public struct CodeableConcept: Codable, Sendable, Equatable {
        public var coding: [Coding]?
        public var text: String?
        public init(_ coding: [Coding]) { self.coding = coding }
    }
    public struct Identifier: Codable, Sendable, Equatable {
        public var system: String?
        public var value: String?
    }
    public struct Reference: Codable, Sendable, Equatable {
        public var reference: String?
        public var identifier: Identifier?
        public var display: String?
        public init(reference: String? = nil, identifier: Identifier? = nil, display: String? = nil) { self.reference = reference; self.identifier = identifier; self.display = display }
    }
    public struct Period: Codable, Sendable, Equatable {
        public var start: String?
        public var end: String?
    }
    public struct Actor: Codable, Sendable, Equatable {
        public var role: CodeableConcept
        public var reference: Reference
    }
    public struct Provision: Codable, Sendable, Equatable {
        public var type: String?
        public var period: Period?
        public var actor: [Actor]?
        public var purpose: [Coding]?
        public var code: [CodeableConcept]?
        public var dataPeriod: Period?
        public var provision: [Provision]?
    }

    public var resourceType: String
    public var id: String?
    public var status: String
    public var scope: CodeableConcept?
    public var category: [CodeableConcept]?
    public var patient: Reference?
    public var dateTime: String?
    public var organization: [Reference]?
    public var policyRule: CodeableConcept?
    public var provision: Provision?

    public static let pseudonymSystem = "urn:iomtchain:pseudonym"
    public static let accountSystem = "urn:iomtchain:account"
    public static let categorySystem = "urn:iomtchain:data-category"
    static let actReason = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
    /// Purposes and their v3 ActReason codes (the first is the one exported).
    static let purposeCodes: [(purpose: String, codes: [String])] = [
        ("treatment", ["TREAT", "ETREAT"]),
        ("research", ["HRESCH", "CLINTRCH"]),
        ("public-health", ["PUBHLTH"]),
        ("family-care", ["FAMRQT"]),
    ]
}

/// Why a FHIR Consent cannot become a grant.
public struct FHIRConsentError: Error, CustomStringConvertible, Equatable {
    public var description: String
    init(_ d: String) { description = d }
}

extension FHIRConsent {
    /// The FHIR form of a grant, with its status at block time `atMs`.
    public init(_ r: ConsentRecord, atMs: Int64) {
        let g = r.grant
        resourceType = "Consent"
        id = r.id.hex
        status = r.isActive(atMs: atMs) ? "active" : "inactive"
        scope = CodeableConcept([Coding(system: "http://terminology.hl7.org/CodeSystem/consentscope", code: "patient-privacy")])
        category = [CodeableConcept([Coding(system: "http://loinc.org", code: "59284-0", display: "Patient Consent")])]
        patient = Reference(identifier: Identifier(system: Self.pseudonymSystem, value: r.subject.hex))
        dateTime = FHIRTime.format(r.grantedAtMs)
        policyRule = CodeableConcept([Coding(system: "http://terminology.hl7.org/CodeSystem/v3-ActCode", code: "OPTIN")])
        let reference: Reference
        switch g.grantee {
        case .account(let a): reference = Reference(identifier: Identifier(system: Self.accountSystem, value: a.hex))
        case .organisation(let o): reference = Reference(reference: "Organization/\(o)")
        case .attributes(let role, let profession, let o):
            reference = Reference(display: [role.map { "role=\($0.name)" }, profession.map { "profession=\($0)" }, o.map { "organisation=\($0)" }].compactMap { $0 }.joined(separator: "; "))
        }
        organization = nil
        let end = r.revokedAtMs.map { min($0, g.expiresMs) } ?? g.expiresMs
        provision = Provision(
            type: "permit",
            period: Period(start: FHIRTime.format(r.grantedAtMs), end: FHIRTime.format(end)),
            actor: [Actor(role: CodeableConcept([Coding(system: "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", code: "IRCP", display: "information recipient")]), reference: reference)],
            purpose: g.purposes.map { p in Coding(system: Self.actReason, code: Self.purposeCodes.first { $0.purpose == p }?.codes.first, display: p) },
            code: g.categories.map { CodeableConcept([Coding(system: Self.categorySystem, code: $0)]) },
            dataPeriod: (g.dataFromMs == 0 && g.dataUntilMs == .max) ? nil : Period(start: FHIRTime.format(g.dataFromMs), end: g.dataUntilMs == .max ? nil : FHIRTime.format(g.dataUntilMs)),
            provision: nil)
    }

    /// The grant this Consent asks for, as of `nowMs`. `organisation` names the consortium
    /// organisation that a FHIR `Organization/…` reference stands for (FHIR ids are not ours);
    /// without it the reference's id is taken as the organisation id.
    public func grant(nowMs: Int64, organisation: String? = nil, defaultExpiresMs: Int64? = nil) throws(FHIRConsentError) -> GrantConsent {
        guard resourceType == "Consent" else { throw FHIRConsentError("a \(resourceType) is not a Consent") }
        guard status == "active" else { throw FHIRConsentError("a consent with status \(status) grants nothing (only active ones do)") }
        let rule = policyRule?.coding?.compactMap(\.code) ?? []
        guard !rule.contains("OPTOUT"), !rule.contains("OPTOUTE") else { throw FHIRConsentError("an opt-out consent is the absence of a grant; revoke the grants it covers instead") }
        let p = provision
        guard p?.type ?? "permit" == "permit" else { throw FHIRConsentError("a deny provision cannot be a grant: grants only permit") }
        guard p?.provision?.isEmpty ?? true else { throw FHIRConsentError("nested provisions (exceptions) are not supported; split them into separate consents") }

        // Who: an actor of the provision, else the consent's organisation.
        let references = (p?.actor?.map(\.reference) ?? []) + (organization ?? [])
        guard let who = references.first else { throw FHIRConsentError("the consent names no recipient (provision.actor or organization)") }
        guard references.count == 1 || p?.actor?.count == 1 else { throw FHIRConsentError("one recipient per grant: this consent names \(references.count)") }
        let grantee: Grantee
        if let id = who.identifier, id.system == Self.accountSystem, let v = id.value, let a = Address(hex: v) {
            grantee = .account(a)
        } else if let ref = who.reference, ref.hasPrefix("Organization/") {
            grantee = .organisation(organisation ?? String(ref.dropFirst("Organization/".count)))
        } else {
            throw FHIRConsentError("recipient \(who.reference ?? who.display ?? "?") is neither an IoMTChain account (identifier \(Self.accountSystem)) nor an Organization")
        }

        // What for: purposes; none given means treatment (a patient-privacy consent for care).
        var purposes: [String] = []
        for c in p?.purpose ?? [] {
            guard let code = c.code, let m = Self.purposeCodes.first(where: { $0.codes.contains(code) }) else {
                throw FHIRConsentError("purpose \(c.code ?? "?") has no IoMTChain equivalent (TREAT, ETREAT, HRESCH, CLINTRCH, PUBHLTH, FAMRQT)")
            }
            if !purposes.contains(m.purpose) { purposes.append(m.purpose) }
        }
        if purposes.isEmpty { purposes = ["treatment"] }

        // Which data: categories by our code system; none given means all of it.
        var categories: [String] = []
        for cc in p?.code ?? [] {
            guard let codings = cc.coding, !codings.isEmpty else { throw FHIRConsentError("a provision.code without a coding (text only) cannot be mapped to data categories") }
            for c in codings {
                guard c.system == Self.categorySystem, let code = c.code, DataCategory.all.contains(code) else {
                    throw FHIRConsentError("data code \(c.system ?? "")|\(c.code ?? "") is not an IoMTChain data category (\(Self.categorySystem))")
                }
                if !categories.contains(code) { categories.append(code) }
            }
        }
        if categories.isEmpty { categories = DataCategory.all }

        // When: the provision's period bounds the grant's life, dataPeriod the data.
        let expires: Int64
        if let end = p?.period?.end {
            guard let e = FHIRTime.parse(end, endOfDay: true) else { throw FHIRConsentError("provision.period.end \(end) is not a FHIR date or dateTime") }
            expires = e
        } else if let d = defaultExpiresMs {
            expires = d
        } else {
            throw FHIRConsentError("the consent has no end (provision.period.end): give an expiry")
        }
        guard expires > nowMs else { throw FHIRConsentError("the consent lapsed on \(FHIRTime.format(expires)): a lapsed consent grants nothing") }
        if let start = p?.period?.start {
            guard let v = FHIRTime.parse(start, endOfDay: false) else { throw FHIRConsentError("provision.period.start \(start) is not a FHIR date or dateTime") }
            guard v <= nowMs else { throw FHIRConsentError("the consent starts on \(start): a grant takes effect when it commits, so grant it then") }
        }
        var from: Int64 = 0, until: Int64 = .max
        if let s = p?.dataPeriod?.start {
            guard let v = FHIRTime.parse(s, endOfDay: false) else { throw FHIRConsentError("provision.dataPeriod.start \(s) is not a FHIR date or dateTime") }
            from = v
        }
        if let e = p?.dataPeriod?.end {
            guard let v = FHIRTime.parse(e, endOfDay: true) else { throw FHIRConsentError("provision.dataPeriod.end \(e) is not a FHIR date or dateTime") }
            until = v
        }
        return GrantConsent(grantee: grantee, categories: categories, purposes: purposes, dataFromMs: from, dataUntilMs: until, expiresMs: expires)
    }
}

/// FHIR date and dateTime values (UTC) to and from milliseconds.
public enum FHIRTime {
    public static func format(_ ms: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    /// A FHIR date (`2016-05-11`, `2016-05`, `2016`) or dateTime. A date stands for its first
    /// millisecond, or its last with `endOfDay` (an end date includes the day).
    public static func parse(_ s: String, endOfDay: Bool) -> Int64? {
        let full = ISO8601DateFormatter()
        full.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = full.date(from: s) { return Int64((d.timeIntervalSince1970 * 1000).rounded()) }
        full.formatOptions = [.withInternetDateTime]
        if let d = full.date(from: s) { return Int64((d.timeIntervalSince1970 * 1000).rounded()) }
        let parts = s.split(separator: "-").map(String.init)
        guard (1...3).contains(parts.count), parts[0].count == 4, parts.dropFirst().allSatisfy({ $0.count == 2 }),
              let y = Int(parts[0]) else { return nil }
        let m = parts.count > 1 ? Int(parts[1]) : nil, d = parts.count > 2 ? Int(parts[2]) : nil
        if parts.count > 1, m == nil || !(1...12).contains(m!) { return nil }
        if parts.count > 2, d == nil || !(1...31).contains(d!) { return nil }
        var c = DateComponents(calendar: Calendar(identifier: .gregorian), timeZone: TimeZone(identifier: "UTC"), year: y, month: m ?? 1, day: d ?? 1)
        guard let start = c.date else { return nil }
        if !endOfDay { return Int64(start.timeIntervalSince1970 * 1000) }
        // The next day (month, year) minus one millisecond.
        if d != nil { c.day = d! + 1 } else if m != nil { c.month = m! + 1 } else { c.year = y + 1 }
        guard let next = c.date else { return nil }
        return Int64(next.timeIntervalSince1970 * 1000) - 1
    }
}
