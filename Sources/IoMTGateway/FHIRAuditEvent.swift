import Foundation
import IoMTAPI
import IoMTCore

/// An audit entry as a FHIR R4 AuditEvent (issue 5 §5): a RESTful read of a patient's data by an
/// account, its outcome (0 success, 4 refused), why (purposeOfEvent; break-the-glass marked
/// BTG), what (the patient's pseudonym, the category and data window) and who recorded it (this
/// gateway).
public struct FHIRAuditEvent: Codable, Sendable {
    public struct Coding: Codable, Sendable { var system: String?; var code: String; var display: String? }
    public struct CodeableConcept: Codable, Sendable { var coding: [Coding] }
    public struct Identifier: Codable, Sendable { var system: String; var value: String }
    public struct Reference: Codable, Sendable { var identifier: Identifier }
    public struct Agent: Codable, Sendable { var who: Reference; var requestor: Bool; var policy: [String]? }
    public struct Source: Codable, Sendable { var observer: Reference; var type: [Coding] }
    public struct Detail: Codable, Sendable { var type: String; var valueString: String }
    public struct Entity: Codable, Sendable { var what: Reference; var role: Coding; var detail: [Detail] }

    public var resourceType = "AuditEvent"
    public var id: String
    public var type: Coding
    public var subtype: [Coding]
    public var action: String
    public var recorded: String
    public var outcome: String
    public var outcomeDesc: String
    public var purposeOfEvent: [CodeableConcept]
    public var agent: [Agent]
    public var source: Source
    public var entity: [Entity]

    static let actReason = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
    static let purposeCodes = ["treatment": "TREAT", "research": "HRESCH", "public-health": "PUBHLTH", "family-care": "FAMRQT"]

    public init(_ e: AuditEntry, gateway: Address) {
        id = "\(gateway.hex)-\(e.seq)"
        type = Coding(system: "http://terminology.hl7.org/CodeSystem/audit-event-type", code: "rest", display: "RESTful Operation")
        subtype = [Coding(system: "http://hl7.org/fhir/restful-interaction", code: "read", display: "read")]
        action = "R"
        recorded = FHIRTime.format(e.atMs)
        outcome = e.allowed ? "0" : "4"
        outcomeDesc = e.allowed ? "\(e.basis): \(e.batches) batch(es) re-wrapped" : e.code
        var purposes = [CodeableConcept(coding: [Coding(system: Self.actReason, code: Self.purposeCodes[e.purpose] ?? e.purpose, display: e.purpose)])]
        if e.basis == "emergency" { purposes.append(CodeableConcept(coding: [Coding(system: Self.actReason, code: "BTG", display: "break the glass")])) }
        purposeOfEvent = purposes
        agent = [Agent(who: Reference(identifier: Identifier(system: FHIRConsent.accountSystem, value: e.reader.hex)), requestor: true,
                       policy: e.reference.map { ["urn:iomtchain:\(e.basis == "emergency" ? "emergency-access" : "consent"):\($0.hex)"] })]
        source = Source(observer: Reference(identifier: Identifier(system: FHIRConsent.accountSystem, value: gateway.hex)),
                        type: [Coding(system: "http://terminology.hl7.org/CodeSystem/security-source-type", code: "4", display: "Application Server")])
        entity = [Entity(what: Reference(identifier: Identifier(system: FHIRConsent.pseudonymSystem, value: e.subject.hex)),
                         role: Coding(system: "http://terminology.hl7.org/CodeSystem/object-role", code: "1", display: "Patient"),
                         detail: [Detail(type: "category", valueString: e.category),
                                  Detail(type: "data-window", valueString: "\(FHIRTime.format(e.fromMs))/\(e.toMs == .max ? "" : FHIRTime.format(e.toMs))"),
                                  Detail(type: "request-digest", valueString: e.requestDigest.hex)])]
    }
}
