import Foundation
import Hummingbird
import IoMTContracts
import IoMTCore
import IoMTNode

/// Identities, consent and emergency access, read from the latest committed state (issue 5).
/// These routes return policy and pseudonyms only: what the chain holds anyway.
extension API {
    func patientRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/v1/access") { req, _ in try await access(req) }
        router.get("/v1/patients/:pseudonym") { _, ctx in try await patient(ctx) }
        router.get("/v1/patients/:pseudonym/consents") { req, ctx in try await consents(req, ctx) }
        router.get("/v1/patients/:pseudonym/notifications") { req, ctx in try await notifications(req, ctx) }
        router.get("/v1/practitioners/:address") { _, ctx in try await practitioner(ctx) }
        router.get("/v1/organisations/:id/emergency-accesses") { _, ctx in try await unreviewed(ctx) }
    }

    struct AccessResponse: Codable {
        var query: AccessQuery
        var allowed: Bool
        var basis: AccessDecision.Basis
        var reference: Hash?
        var reason: String
        var height: UInt64
        var blockTimeMs: Int64
    }

    /// `GET /v1/access?reader=&subject=&category=&purpose=[&from=&to=]`: the consent decision at
    /// the latest committed height.
    private func access(_ req: Request) async throws -> Response {
        let q = req.uri.queryParameters
        guard let reader = q.get("reader").flatMap(Address.init(hex:)) else { throw Problem(.badRequest, code: "invalid-query", detail: "reader must be an account address (40 hex digits)") }
        let subject = try pseudonym(q.get("subject"), field: "subject")
        guard let category = q.get("category"), let purpose = q.get("purpose") else {
            throw Problem(.badRequest, code: "invalid-query", detail: "category (\(DataCategory.all.joined(separator: ", "))) and purpose (\(Purpose.all.joined(separator: ", "))) are required")
        }
        guard let from = Int64(q.get("from") ?? "0"), let to = Int64(q.get("to") ?? String(Int64.max)) else {
            throw Problem(.badRequest, code: "invalid-query", detail: "from and to are times in ms since 1970 (UTC)")
        }
        let query = AccessQuery(reader: reader, subject: subject, category: category, purpose: purpose, dataFromMs: from, dataUntilMs: to)
        let (state, header) = await node.committedSnapshot()
        let d: AccessDecision
        do { d = try Consent.decide(query, state: state, atMs: header.timestampMs) } catch {
            throw Problem(.badRequest, code: error.code, detail: error.description)
        }
        return try json(AccessResponse(query: query, allowed: d.allowed, basis: d.basis, reference: d.reference, reason: d.reason, height: header.height, blockTimeMs: header.timestampMs))
    }

    private func pseudonym(_ raw: String?, field: String) throws -> Hash {
        guard let raw, let h = Hash(hex: raw) else { throw Problem(.badRequest, code: "invalid-pseudonym", detail: "\(field) must be a pseudonym (64 hex digits)") }
        return h
    }

    struct GrantView: Codable {
        var grant: ConsentRecord
        var active: Bool
    }

    struct PatientResponse: Codable {
        var patient: PatientRecord
        var status: AccountStatus?
        var agreementKey: AgreementKeyRecord?
        var grants: [GrantView]
        var emergencyAccesses: [EmergencyAccessRecord]
        var height: UInt64
        var blockTimeMs: Int64
    }

    func read<T: CanonicalDecodable>(_: T.Type, _ key: [UInt8], in state: AuthenticatedState) throws -> T? {
        guard let bytes = state.value(forKey: key) else { return nil }
        do { return try T(canonicalBytes: bytes, trusted: true) } catch { throw Problem(.internalServerError, code: "corrupt-state", detail: "\(T.self): \(error)") }
    }

    private func list<T: CanonicalDecodable>(_: T.Type, _ listKey: [UInt8], _ key: (Hash) -> [UInt8], in state: AuthenticatedState) throws -> [T] {
        try (read(IDList.self, listKey, in: state)?.ids ?? []).compactMap { try read(T.self, key($0), in: state) }
    }

    /// A subject's emergency accesses in commit order (those recorded after `afterHeight`).
    private func emergencies(of subject: Hash, in state: AuthenticatedState, afterHeight: UInt64 = 0) throws -> [EmergencyAccessRecord] {
        var out: [EmergencyAccessRecord] = []
        var n = try read(UInt64.self, StateKeys.emergencyCount(of: subject), in: state) ?? 0
        while n > 0, let id = try read(Hash.self, StateKeys.emergencyEntry(of: subject, n), in: state), let e = try read(EmergencyAccessRecord.self, StateKeys.emergency(id), in: state) {
            if e.height <= afterHeight { break }
            out.append(e)
            n -= 1
        }
        return out.reversed()
    }

    private func patientRecord(_ ctx: BasicRequestContext) async throws -> (PatientRecord, AuthenticatedState, BlockHeader) {
        let p = try pseudonym(ctx.parameters.get("pseudonym"), field: "pseudonym")
        let (state, header) = await node.committedSnapshot()
        guard let record = try read(PatientRecord.self, StateKeys.patient(p), in: state) else {
            throw Problem(.notFound, code: "patient-not-found", detail: "no patient is enrolled under pseudonym \(p) at height \(header.height)")
        }
        return (record, state, header)
    }

    /// `GET /v1/patients/{pseudonym}`: enrolment, X25519 key, grants (in force or not) and
    /// emergency accesses with their reviews.
    private func patient(_ ctx: BasicRequestContext) async throws -> Response {
        let (record, state, header) = try await patientRecord(ctx)
        let grants = try list(ConsentRecord.self, StateKeys.consents(of: record.pseudonym), StateKeys.consent, in: state)
        return try json(PatientResponse(
            patient: record, status: try read(Account.self, StateKeys.account(record.account), in: state)?.status,
            agreementKey: try read(AgreementKeyRecord.self, StateKeys.agreementKey(record.account), in: state),
            grants: grants.map { GrantView(grant: $0, active: $0.isActive(atMs: header.timestampMs)) },
            emergencyAccesses: try emergencies(of: record.pseudonym, in: state),
            height: header.height, blockTimeMs: header.timestampMs))
    }

    struct FHIRBundle: Codable {
        struct Entry: Codable { var fullUrl: String; var resource: FHIRConsent }
        var resourceType = "Bundle"
        var type = "collection"
        var timestamp: String
        var total: Int
        var entry: [Entry]
    }

    /// `GET /v1/patients/{pseudonym}/consents`: the patient's grants as a FHIR R4 Bundle of
    /// Consent resources (`application/fhir+json`).
    private func consents(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let (record, state, header) = try await patientRecord(ctx)
        let grants = try list(ConsentRecord.self, StateKeys.consents(of: record.pseudonym), StateKeys.consent, in: state)
        let bundle = FHIRBundle(timestamp: FHIRTime.format(header.timestampMs), total: grants.count,
                                entry: grants.map { .init(fullUrl: "urn:iomtchain:consent:\($0.id.hex)", resource: FHIRConsent($0, atMs: header.timestampMs)) })
        var r = try json(bundle)
        r.headers[.contentType] = "application/fhir+json"
        return r
    }

    struct NotificationsReply: Codable {
        var emergencyAccesses: [EmergencyAccessRecord]
        var erasure: ErasureRecord?
        var height: UInt64
    }

    /// `GET /v1/patients/{pseudonym}/notifications?afterHeight=H&waitMs=MS`: what the patient must
    /// be told — emergency accesses to its data (and an erasure) recorded after height H; with none
    /// yet the request waits up to MS (≤ 60,000) for one, so the patient's agent keeps one open.
    private func notifications(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let p = try pseudonym(ctx.parameters.get("pseudonym"), field: "pseudonym")
        let q = req.uri.queryParameters
        guard let after = UInt64(q.get("afterHeight") ?? "0"), let wait = Int(q.get("waitMs") ?? "0"), (0...60_000).contains(wait) else {
            throw Problem(.badRequest, code: "invalid-query", detail: "afterHeight is a height, waitMs 0…60000")
        }
        let deadline = ContinuousClock.now + .milliseconds(wait)
        while true {
            let (state, header) = await node.committedSnapshot()
            guard try read(PatientRecord.self, StateKeys.patient(p), in: state) != nil else {
                throw Problem(.notFound, code: "patient-not-found", detail: "no patient is enrolled under pseudonym \(p) at height \(header.height)")
            }
            let accesses = try emergencies(of: p, in: state, afterHeight: after)
            let erasure = try read(ErasureRecord.self, StateKeys.erasure(p), in: state).flatMap { $0.height > after ? $0 : nil }
            if !accesses.isEmpty || erasure != nil || ContinuousClock.now >= deadline {
                return try json(NotificationsReply(emergencyAccesses: accesses, erasure: erasure, height: header.height))
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// `GET /v1/practitioners/{address}`: the attestation of a practitioner account.
    private func practitioner(_ ctx: BasicRequestContext) async throws -> Response {
        guard let a = ctx.parameters.get("address").flatMap(Address.init(hex:)) else { throw Problem(.badRequest, code: "invalid-address", detail: "address must be 40 hex digits") }
        let (state, header) = await node.committedSnapshot()
        guard let r = try read(PractitionerRecord.self, StateKeys.practitioner(a), in: state) else {
            throw Problem(.notFound, code: "not-attested", detail: "account \(a) has no practitioner attestation at height \(header.height)")
        }
        return try json(r)
    }

    /// `GET /v1/organisations/{id}/emergency-accesses`: the emergency accesses by the
    /// organisation's practitioners still waiting for review.
    private func unreviewed(_ ctx: BasicRequestContext) async throws -> Response {
        let org = try ctx.parameters.require("id")
        let (state, _) = await node.committedSnapshot()
        return try json(try list(EmergencyAccessRecord.self, StateKeys.unreviewedEmergencies(of: org), StateKeys.emergency, in: state))
    }
}
