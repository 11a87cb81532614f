import Foundation
import Hummingbird
import IoMTAPI
import IoMTCore
import IoMTStore
import IoMTEdge
import NIOCore

/// The gateway's HTTP API (docs/gateway.md).
///
/// `POST /v1/readings` takes one upload: FHIR R4 JSON (`application/fhir+json` or
/// `application/json`: an Observation or a Bundle of them) or vendor CSV (`text/csv`), with
/// `X-IoMT-Device` (the device id), `X-IoMT-Counter` (its upload counter) and `X-IoMT-Signature`
/// (hex: the device's signature or HMAC over `UploadAuth.message`). 202 means durably queued.
public struct GatewayAPI: Sendable {
    public let gateway: Gateway

    public init(gateway: Gateway) { self.gateway = gateway }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ProblemMiddleware())
        router.post("/v1/readings") { req, _ in try await upload(req) }
        router.get("/v1/readings/:seq/proof") { req, ctx in try await proof(req, ctx) }
        router.get("/v1/blobs/:cid") { _, ctx in try await blob(ctx) }
        router.get("/v1/alerts") { req, _ in try await alerts(req) }
        router.get("/v1/patients/:pseudonym/data") { req, ctx in try await data(req, ctx) }
        router.get("/v1/patients/:pseudonym/audit") { req, ctx in try await audit(req, ctx) }
        router.get("/v1/patients/:pseudonym/timeline") { req, ctx in try await timeline(req, ctx) }
        router.get("/v1/patients/:pseudonym/erasure") { _, ctx in try json(try gateway.store.erasureReport(try pseudonym(ctx))) }
        router.get("/v1/patients/:pseudonym/erasure/blobs") { _, ctx in
            // The content ids of the subject's batches (hashes), so anyone can check that no node serves them.
            struct Held: Codable { var cids: [String] }
            return try json(Held(cids: try gateway.store.cids(of: try pseudonym(ctx))))
        }
        router.get("/v1/datasets/:id/rows") { req, ctx in try await datasetRows(req, ctx) }
        router.post("/v1/datasets/:id/query") { req, ctx in try await datasetQuery(req, ctx) }
        router.get("/v1/datasets/:id/queries/:n") { req, ctx in try await datasetQueryResult(req, ctx) }
        router.post("/v1/checkins") { req, ctx in try await checkIn(req, ctx) }
        router.get("/v1/venue-alarms") { req, _ in try await venueAlarms(req) }
        router.post("/v1/quarantine/fences") { req, ctx in try await addFence(req, ctx) }
        router.get("/v1/status") { _, _ in try json(try await gateway.status()) }
        router.get("/healthz") { _, _ in Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: "ok\n"))) }
        return router
    }

    func json<T: Encodable>(_ v: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try e.encode(v))))
    }

    func upload(_ req: Request) async throws -> Response {
        func missing(_ s: String) -> Problem { Problem(.unauthorized, code: "missing-credentials", detail: UploadRefusal.missingCredentials(s).description) }
        guard let d = req.header("x-iomt-device"), let device = Address(hex: d) else { throw missing("X-IoMT-Device (40 hex digits)") }
        guard let c = req.header("x-iomt-counter"), let counter = UInt64(c) else { throw missing("X-IoMT-Counter (an unsigned integer)") }
        guard let s = req.header("x-iomt-signature"), let tag = Hex.decode(s) else { throw missing("X-IoMT-Signature (hex)") }
        let contentType = req.headers[.contentType] ?? ""
        let buffer = try await req.body.collect(upTo: gateway.configuration.maxUploadBytes)
        switch await gateway.uploadResult(device: device, counter: counter, contentType: contentType, tag: tag, body: Array(buffer.readableBytesView)) {
        case .success(let a): return try json(a, status: .accepted)
        case .failure(let e): throw Self.problem(e)
        }
    }

    static func problem(_ e: Gateway.UploadError) -> Problem {
        switch e {
        case .refused(let r):
            switch r {
            case .deviceNotActive: return Problem(.forbidden, code: r.code, detail: r.description)
            case .replay: return Problem(.conflict, code: r.code, detail: r.description)
            case .subjectErased: return Problem(.gone, code: r.code, detail: r.description)
            default: return Problem(.unauthorized, code: r.code, detail: r.description)
            }
        case .invalid(let i):
            switch i {
            case .malformed: return Problem(.badRequest, code: i.code, detail: i.description)
            case .tooLarge: return Problem(.contentTooLarge, code: i.code, detail: i.description)
            default: return Problem(.unprocessableContent, code: i.code, detail: i.description)
            }
        case .unsupportedMediaType: return Problem(.unsupportedMediaType, code: e.code, detail: e.description)
        case .overloaded, .unavailable: return Problem(.serviceUnavailable, code: e.code, detail: e.description)
        case .erased: return Problem(.gone, code: e.code, detail: e.description)
        }
    }

    /// `POST /v1/checkins` `{venue, token, interval, minutes?}`: a person checks in at a venue with
    /// their phone's current token (what the QR code at the door leads the phone to send).
    func checkIn(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let body: Gateway.CheckInRequest
        do { body = try await req.decode(as: Gateway.CheckInRequest.self, context: ctx) } catch {
            throw Problem(.badRequest, code: "invalid-check-in", detail: "the body is {venue, token (32 hex digits), interval, minutes?}")
        }
        let receipt: Gateway.CheckInReceipt
        do throws(Gateway.CheckInError) {
            receipt = try await gateway.checkIn(body)
        } catch {
            switch error {
            case .invalid: throw Problem(.badRequest, code: error.code, detail: error.description)
            case .staleToken, .unknownVenue: throw Problem(.unprocessableContent, code: error.code, detail: error.description)
            case .duplicateToken: throw Problem(.conflict, code: error.code, detail: error.description)
            case .unavailable: throw Problem(.serviceUnavailable, code: error.code, detail: error.description)
            }
        }
        return try json(receipt, status: .created)
    }

    /// `POST /v1/quarantine/fences` `{order, xM, yM, radiusM, salt}`: the geofence of a quarantine
    /// order, accepted only if it is the one the order on the chain committed to.
    func addFence(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let body: Gateway.FenceRequest
        do { body = try await req.decode(as: Gateway.FenceRequest.self, context: ctx) } catch {
            throw Problem(.badRequest, code: "invalid-fence", detail: "the body is {order, xM, yM, radiusM, salt}")
        }
        do throws(Gateway.FenceError) {
            try await gateway.addFence(body)
        } catch {
            switch error {
            case .invalid: throw Problem(.badRequest, code: error.code, detail: error.description)
            case .unknownOrder: throw Problem(.notFound, code: error.code, detail: error.description)
            case .mismatch, .ended: throw Problem(.unprocessableContent, code: error.code, detail: error.description)
            case .unavailable: throw Problem(.serviceUnavailable, code: error.code, detail: error.description)
            }
        }
        return try json(["order": body.order.hex], status: .created)
    }

    struct VenueAlarmsReply: Codable { var alarms: [GatewayStore.ExposureReport]; var last: Int64 }

    /// `GET /v1/venue-alarms?after=ID`: the positive cases that visited this gateway's venues, with
    /// the exposed check-ins' token hashes and whether the chain committed the record.
    func venueAlarms(_ req: Request) async throws -> Response {
        guard let after = Int64(req.uri.queryParameters.get("after") ?? "0"), after >= 0 else { throw Problem(.badRequest, code: "invalid-after", detail: "after is an alarm id (≥ 0)") }
        let list = try gateway.store.exposureReports(after: after)
        return try json(VenueAlarmsReply(alarms: list, last: list.last?.id ?? after))
    }

    struct AlertsReply: Codable { var alerts: [GatewayStore.StoredAlert]; var last: Int64; var redacted: Bool }

    /// `GET /v1/alerts?after=ID&waitMs=MS`: alerts after ID, oldest first; with none yet, the request
    /// waits up to MS (≤ 60,000) for the next one — a subscriber keeps one such request open.
    /// Signed by the gateway organisation's staff (a practitioner or member-admin of it), the
    /// alerts are whole; unsigned, they are redacted to what the chain's alert log shows (rule,
    /// severity, state, device, time: no patient pseudonym, no value).
    func alerts(_ req: Request) async throws -> Response {
        let q = req.uri.queryParameters
        guard let after = Int64(q.get("after") ?? "0"), after >= 0 else { throw Problem(.badRequest, code: "invalid-after", detail: "after is an alert id (≥ 0)") }
        guard let wait = Int(q.get("waitMs") ?? "0"), (0...60_000).contains(wait) else { throw Problem(.badRequest, code: "invalid-wait", detail: "waitMs is 0…60000") }
        let parts = signedParts(req)
        var whole = false
        if parts.account != nil || parts.signature != nil {
            do throws(Gateway.ReadRefusal) { try await gateway.checkStaff(parts) } catch { throw Self.problem(error) }
            whole = true
        }
        var list = try await gateway.alerts(after: after, waitMs: wait)
        if !whole {
            for i in list.indices { list[i].event.subject = nil; list[i].event.value = ""; list[i].event.unit = "" }
        }
        return try json(AlertsReply(alerts: list, last: list.last?.id ?? after, redacted: !whole))
    }

    func proof(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        guard let seq = Int64(try ctx.parameters.require("seq")), seq > 0 else { throw Problem(.badRequest, code: "invalid-sequence", detail: "a reading's sequence number is a positive integer") }
        do {
            return try json(try await gateway.protectedProof(sequence: seq, request: signedParts(req), purpose: req.uri.queryParameters.get("purpose").map { String($0) } ?? "treatment"))
        } catch let e as Gateway.ReadRefusal {
            throw Self.problem(e)
        } catch Gateway.ProofError.unknown {
            throw Problem(.notFound, code: "reading-not-found", detail: "no reading \(seq) at this gateway")
        } catch Gateway.ProofError.notAnchored(let why) {
            throw Problem(.conflict, code: "not-anchored-yet", detail: why)
        } catch let e as GatewayError {
            throw Problem(.serviceUnavailable, code: "node-unavailable", detail: "the anchor's proof comes from the node: \(e)")
        }
    }

    func blob(_ ctx: BasicRequestContext) async throws -> Response {
        guard let id = ContentID(try ctx.parameters.require("cid")) else { throw Problem(.badRequest, code: "invalid-cid", detail: "a blob id is a CIDv1 (raw, sha2-256, base32: bafkrei…)") }
        do {
            let bytes = try gateway.blobs.get(id)
            return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        } catch .notFound {
            throw Problem(.notFound, code: "blob-not-found", detail: "no blob \(id) here")
        } catch .erased {
            throw Problem(.gone, code: "blob-erased", detail: "blob \(id) was erased at its patient's request")
        } catch {
            throw Problem(.internalServerError, code: "blob-tampered", detail: error.description)
        }
    }

    // MARK: reads (issue 5)

    func signedParts(_ req: Request) -> Gateway.SignedRequestParts {
        Gateway.SignedRequestParts(method: req.method.rawValue, target: req.uri.string, account: req.header("x-iomt-account"), timestamp: req.header("x-iomt-timestamp"),
                                   nonce: req.header("x-iomt-nonce"), signature: req.header("x-iomt-signature"))
    }

    func pseudonym(_ ctx: BasicRequestContext) throws -> Hash {
        guard let p = Hash(hex: try ctx.parameters.require("pseudonym")) else { throw Problem(.badRequest, code: "invalid-pseudonym", detail: "a pseudonym is 64 hex digits") }
        return p
    }

    static func problem(_ r: Gateway.ReadRefusal) -> Problem {
        Problem(HTTPResponse.Status(code: r.status), code: r.code, detail: r.description)
    }

    /// `GET /v1/patients/{pseudonym}/data?category=&purpose=[&from=&to=]`, signed by the reader:
    /// the data keys of the patient's anchored batches it may read, wrapped for its X25519 key.
    func data(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let subject = try pseudonym(ctx)
        let q = req.uri.queryParameters
        guard let category = q.get("category"), let purpose = q.get("purpose") else {
            throw Problem(.badRequest, code: "invalid-query", detail: "category and purpose are required")
        }
        guard let from = Int64(q.get("from") ?? "0"), let to = Int64(q.get("to") ?? String(Int64.max)), from <= to else {
            throw Problem(.badRequest, code: "invalid-query", detail: "from and to are times in ms since 1970, from ≤ to")
        }
        // Checked before anything is logged: a patient's audit log holds only well-formed questions.
        guard DataCategory.all.contains(category), Purpose.all.contains(purpose) else {
            throw Problem(.badRequest, code: "invalid-query", detail: "category is one of \(DataCategory.all.joined(separator: ", ")); purpose one of \(Purpose.all.joined(separator: ", "))")
        }
        let reply: Gateway.DataReply
        do { reply = try await gateway.readData(signedParts(req), Gateway.DataQuery(subject: subject, category: category, purpose: purpose, fromMs: from, toMs: to)) } catch {
            throw Self.problem(error)
        }
        return try json(reply)
    }

    /// `GET /v1/patients/{pseudonym}/timeline?purpose=&from=&to=`, signed: vitals, alerts and their
    /// acknowledgements (issue 6 §7), for a reader the patient's consent allows.
    func timeline(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let subject = try pseudonym(ctx)
        let q = req.uri.queryParameters
        guard let purpose = q.get("purpose").map({ String($0) }), Purpose.all.contains(purpose),
              let from = Int64(q.get("from") ?? "0"), let to = Int64(q.get("to") ?? String(Int64.max)), from <= to else {
            throw Problem(.badRequest, code: "invalid-query", detail: "purpose is one of \(Purpose.all.joined(separator: ", ")); from ≤ to in ms since 1970")
        }
        let reply: Gateway.TimelineReply
        do { reply = try await gateway.timeline(signedParts(req), subject: subject, purpose: purpose, fromMs: from, toMs: to) } catch {
            throw Self.problem(error)
        }
        return try json(reply)
    }

    // MARK: research datasets (issue 5 §7)

    func datasetID(_ ctx: BasicRequestContext) throws -> Hash {
        guard let id = Hash(hex: try ctx.parameters.require("id")) else { throw Problem(.badRequest, code: "invalid-id", detail: "a dataset id is 64 hex digits") }
        return id
    }

    /// `GET /v1/datasets/{id}/rows`, signed by the researcher.
    func datasetRows(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let id = try datasetID(ctx)
        let export: Gateway.DatasetExport
        do { export = try await gateway.exportDataset(signedParts(req), id: id) } catch { throw Self.problem(error) }
        return try json(export)
    }

    /// `POST /v1/datasets/{id}/query[?waitMs=]`, signed by the researcher over its JSON body.
    func datasetQuery(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let id = try datasetID(ctx)
        guard let wait = Int(req.uri.queryParameters.get("waitMs") ?? "20000"), (0...60_000).contains(wait) else {
            throw Problem(.badRequest, code: "invalid-wait", detail: "waitMs is 0…60000")
        }
        var parts = signedParts(req)
        parts.body = Array(try await req.body.collect(upTo: 16 << 10).readableBytesView)
        let reply: Gateway.QueryReply
        do { reply = try await gateway.queryDataset(parts, id: id, waitMs: wait) } catch { throw Self.problem(error) }
        return try json(reply, status: reply.status == "pending" ? .accepted : .ok)
    }

    /// `GET /v1/datasets/{id}/queries/{n}`, signed by the researcher.
    func datasetQueryResult(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let id = try datasetID(ctx)
        guard let n = Int64(try ctx.parameters.require("n")), n > 0 else { throw Problem(.badRequest, code: "invalid-query", detail: "a query number is a positive integer") }
        let reply: Gateway.QueryReply
        do { reply = try await gateway.datasetQuery(signedParts(req), id: id, query: n) } catch { throw Self.problem(error) }
        return try json(reply, status: reply.status == "pending" ? .accepted : .ok)
    }

    struct AuditReply: Codable { var gateway: Address; var entries: [GatewayStore.AuditRecord] }
    struct AuditBundle: Codable {
        struct Entry: Codable { var fullUrl: String; var resource: FHIRAuditEvent }
        var resourceType = "Bundle"
        var type = "collection"
        var total: Int
        var entry: [Entry]
    }

    /// `GET /v1/patients/{pseudonym}/audit?after=&limit=[&format=fhir]`, signed by the patient or
    /// a member-admin of the gateway's organisation: every read of the patient's data, each with
    /// the Merkle proof of its anchored run; or a FHIR Bundle of AuditEvent resources.
    func audit(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let subject = try pseudonym(ctx)
        let q = req.uri.queryParameters
        guard let afterSigned = Int64(q.get("after") ?? "0"), afterSigned >= 0, let limit = Int(q.get("limit") ?? "1000"), (1...10_000).contains(limit) else {
            throw Problem(.badRequest, code: "invalid-query", detail: "after is an entry number (≥ 0), limit 1…10000")
        }
        let records: [GatewayStore.AuditRecord]
        do { records = try await gateway.auditLog(signedParts(req), subject: subject, after: UInt64(afterSigned), limit: limit) } catch { throw Self.problem(error) }
        let me = gateway.account.publicKey.address
        if q.get("format") == "fhir" {
            let bundle = AuditBundle(total: records.count, entry: records.map { .init(fullUrl: "urn:iomtchain:audit:\(me.hex):\($0.entry.seq)", resource: FHIRAuditEvent($0.entry, gateway: me)) })
            var r = try json(bundle)
            r.headers[.contentType] = "application/fhir+json"
            return r
        }
        return try json(AuditReply(gateway: me, entries: records))
    }
}
