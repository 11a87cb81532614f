import Foundation
import Hummingbird
import IoMTCore
import IoMTNode

/// FHIR R4 export of the supply chain's patient-facing records (issue 6 §1): administrations as
/// Immunization, adverse-event reports as AdverseEvent. Patients appear by pseudonym only
/// (`urn:iomtchain:pseudonym`), as on the chain.
struct FHIRImmunization: Codable {
    typealias Coding = FHIRConsent.Coding
    typealias CodeableConcept = FHIRConsent.CodeableConcept
    typealias Reference = FHIRConsent.Reference
    struct Performer: Codable { var actor: Reference }
    var resourceType = "Immunization"
    var id: String
    var status = "completed"
    var vaccineCode: CodeableConcept
    var patient: Reference
    var occurrenceDateTime: String
    var recorded: String?
    var manufacturer: Reference
    var lotNumber: String
    var expirationDate: String
    var performer: [Performer]
}

struct FHIRAdverseEvent: Codable {
    typealias CodeableConcept = FHIRConsent.CodeableConcept
    typealias Reference = FHIRConsent.Reference
    struct SuspectEntity: Codable { var instance: Reference }
    var resourceType = "AdverseEvent"
    var id: String
    var actuality = "actual"
    var event: CodeableConcept
    var subject: Reference
    var date: String
    var recordedDate: String
    var seriousness: CodeableConcept
    var severity: CodeableConcept
    var outcome: CodeableConcept?
    var recorder: Reference
    var suspectEntity: [SuspectEntity]
}

extension API {
    struct ResourceBundle<R: Codable>: Codable {
        struct Entry: Codable { var fullUrl: String; var resource: R }
        var resourceType = "Bundle"
        var type = "collection"
        var entry: [Entry]
    }

    func supplyChainFHIRRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/v1/batches/:id/immunizations") { req, ctx in try await immunizations(req, ctx) }
        router.get("/v1/batches/:id/adverse-events") { req, ctx in try await adverseEvents(req, ctx) }
    }

    private func page(_ req: Request) throws -> (after: UInt64, limit: UInt64) {
        let q = req.uri.queryParameters
        guard let after = UInt64(q.get("after") ?? "0"), let limit = UInt64(q.get("limit") ?? "1000"), (1...1_000).contains(limit) else {
            throw Problem(.badRequest, code: "invalid-query", detail: "after is a record number; limit is 1…1000")
        }
        return (after, limit)
    }

    private func fhir<R: Codable>(_ bundle: ResourceBundle<R>) throws -> Response {
        var r = try json(bundle)
        r.headers[.contentType] = "application/fhir+json"
        return r
    }

    private func batchRecord(_ ctx: BasicRequestContext, _ state: AuthenticatedState) throws -> BatchRecord {
        guard let id = ctx.parameters.get("id").flatMap(Hash.init(hex:)) else { throw Problem(.badRequest, code: "invalid-id", detail: "a batch id is 64 hex digits") }
        guard let b = try read(BatchRecord.self, StateKeys.batch(id), in: state) else { throw Problem(.notFound, code: "unknown-batch", detail: "no batch \(id)") }
        return b
    }

    /// `GET /v1/batches/{id}/immunizations[?after=&limit=]`: the batch's administrations as a FHIR Bundle of Immunization.
    private func immunizations(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let (after, limit) = try page(req)
        let (state, _) = await node.committedSnapshot()
        let b = try batchRecord(ctx, state)
        let code = b.registration.productCode
        // CVX208 or CVX-208 is CVX code 208; any other product code keeps the project's system.
        let cvx = code.uppercased().hasPrefix("CVX") ? String(code.dropFirst(3).drop { $0 == "-" }) : ""
        let vaccine = !cvx.isEmpty && cvx.allSatisfy(\.isNumber) ? FHIRConsent.Coding(system: "http://hl7.org/fhir/sid/cvx", code: cvx)
                                                                 : FHIRConsent.Coding(system: "urn:iomtchain:product-code", code: code)
        var entries: [ResourceBundle<FHIRImmunization>.Entry] = []
        var n = after
        while n < b.administered, UInt64(entries.count) < limit {
            n += 1
            guard let a = try read(AdministrationRecord.self, StateKeys.administration(b.id, n), in: state) else { continue }
            let id = "\(b.id.hex.prefix(16))-\(n)"
            entries.append(.init(fullUrl: "urn:iomtchain:immunization:\(id)", resource: FHIRImmunization(
                id: id, vaccineCode: FHIRConsent.CodeableConcept([vaccine]),
                patient: FHIRConsent.Reference(identifier: .init(system: FHIRConsent.pseudonymSystem, value: a.dose.subject.hex)),
                occurrenceDateTime: FHIRTime.format(a.dose.atMs), recorded: nil,
                manufacturer: FHIRConsent.Reference(identifier: .init(system: "urn:iomtchain:organisation", value: b.manufacturer)),
                lotNumber: b.registration.lot, expirationDate: String(FHIRTime.format(b.registration.expiresMs).prefix(10)),
                performer: [.init(actor: FHIRConsent.Reference(identifier: .init(system: FHIRConsent.accountSystem, value: a.practitioner.hex)))])))
        }
        return try fhir(ResourceBundle(entry: entries))
    }

    /// `GET /v1/batches/{id}/adverse-events[?after=&limit=]`: reports as a FHIR Bundle of AdverseEvent.
    private func adverseEvents(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let (after, limit) = try page(req)
        let (state, _) = await node.committedSnapshot()
        let b = try batchRecord(ctx, state)
        let count = try read(UInt64.self, StateKeys.adverseEventCount(b.id), in: state) ?? 0
        var entries: [ResourceBundle<FHIRAdverseEvent>.Entry] = []
        var n = after
        while n < count, UInt64(entries.count) < limit {
            n += 1
            guard let e = try read(AdverseEventRecord.self, StateKeys.adverseEvent(b.id, n), in: state) else { continue }
            let parts = e.report.reactionCode.split(separator: ":", maxSplits: 1).map(String.init)
            let system = parts.first == "snomed" ? "http://snomed.info/sct" : "http://terminology.hl7.org/CodeSystem/mdr"
            // FHIR's adverse-event-severity has mild, moderate and severe; life-threatening and
            // fatal are severe, with their seriousness (and a fatal outcome) said where FHIR says it.
            let severity = ["mild", "moderate"].contains(e.report.severity) ? e.report.severity : "severe"
            let serious = e.report.severity == "fatal" ? ("SeriousResultsInDeath", "Results in death")
                : e.report.severity == "life-threatening" ? ("SeriousIsLifeThreatening", "Is life-threatening")
                : e.report.severity == "severe" ? ("Serious", "Serious") : ("Non-serious", "Non-serious")
            let id = "\(b.id.hex.prefix(16))-ae-\(n)"
            entries.append(.init(fullUrl: "urn:iomtchain:adverse-event:\(id)", resource: FHIRAdverseEvent(
                id: id, event: FHIRConsent.CodeableConcept([FHIRConsent.Coding(system: system, code: parts.last)]),
                subject: FHIRConsent.Reference(identifier: .init(system: FHIRConsent.pseudonymSystem, value: e.report.subject.hex)),
                date: FHIRTime.format(e.report.onsetMs), recordedDate: FHIRTime.format(e.atMs),
                seriousness: FHIRConsent.CodeableConcept([FHIRConsent.Coding(system: "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness", code: serious.0, display: serious.1)]),
                severity: FHIRConsent.CodeableConcept([FHIRConsent.Coding(system: "http://terminology.hl7.org/CodeSystem/adverse-event-severity", code: severity)]),
                outcome: e.report.severity == "fatal" ? FHIRConsent.CodeableConcept([FHIRConsent.Coding(system: "http://terminology.hl7.org/CodeSystem/adverse-event-outcome", code: "fatal")]) : nil,
                recorder: FHIRConsent.Reference(identifier: .init(system: FHIRConsent.accountSystem, value: e.reporter.hex)),
                suspectEntity: [.init(instance: FHIRConsent.Reference(identifier: .init(system: "urn:iomtchain:batch", value: b.id.hex),
                                                                       display: "lot \(b.registration.lot) of GTIN \(b.registration.gtin)"))])))
        }
        return try fhir(ResourceBundle(entry: entries))
    }
}
