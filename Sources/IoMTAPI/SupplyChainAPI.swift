import Foundation
import Hummingbird
import IoMTContracts
import IoMTCore
import IoMTNode

/// The supply chain, read from the latest committed state (issue 6 §1): a batch with its custody
/// chain and holdings, its trace back to materials and forward to organisations and patients, and
/// the check a scanner makes of a GTIN and lot (unknown, recalled or expired: flagged).
extension API {
    func supplyChainRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/v1/batches/:id") { _, ctx in try await batchView(ctx) }
        router.get("/v1/batches/:id/trace") { _, ctx in try await trace(ctx) }
        router.get("/v1/scan") { req, _ in try await scan(req) }
        router.get("/v1/recalls") { req, _ in try await recalls(req) }
    }

    struct BatchResponse: Codable {
        var batch: BatchRecord
        var recalled: Bool
        var expired: Bool
        /// Units each organisation that has held the batch holds now.
        var holdings: [String: UInt64]
        /// The first 1,000 transfers; `transfersTruncated` says there are more (holdings still count them all).
        var transfers: [CustodyRecord]
        var transfersTruncated: Bool
        var height: UInt64
    }

    private func batchID(_ ctx: BasicRequestContext) throws -> Hash {
        guard let id = ctx.parameters.get("id").flatMap(Hash.init(hex:)) else { throw Problem(.badRequest, code: "invalid-id", detail: "a batch id is 64 hex digits") }
        return id
    }

    private func transfers(of b: BatchRecord, in state: AuthenticatedState, limit: UInt64 = 1_000) throws -> [CustodyRecord] {
        try (0..<min(b.transfers, limit)).compactMap { try read(CustodyRecord.self, StateKeys.custodyTransfer(b.id, $0 + 1), in: state) }
    }

    /// `GET /v1/batches/{id}`.
    private func batchView(_ ctx: BasicRequestContext) async throws -> Response {
        let id = try batchID(ctx)
        let (state, header) = await node.committedSnapshot()
        guard let b = try read(BatchRecord.self, StateKeys.batch(id), in: state) else { throw Problem(.notFound, code: "unknown-batch", detail: "no batch \(id)") }
        let chain = try transfers(of: b, in: state)
        var holdings: [String: UInt64] = [:]
        for org in Set([b.manufacturer] + (try transfers(of: b, in: state, limit: 100_000)).map(\.toOrganisation)) {
            holdings[org] = try read(UInt64.self, StateKeys.holding(id, org), in: state) ?? 0
        }
        return try json(BatchResponse(batch: b, recalled: b.recall != nil, expired: header.timestampMs >= b.registration.expiresMs,
                                      holdings: holdings, transfers: chain, transfersTruncated: b.transfers > UInt64(chain.count), height: header.height))
    }

    struct TraceResponse: Codable {
        var trace: BatchTrace
        var height: UInt64
    }

    /// `GET /v1/batches/{id}/trace`: back to its materials, forward to organisations and patients.
    private func trace(_ ctx: BasicRequestContext) async throws -> Response {
        let id = try batchID(ctx)
        let (state, header) = await node.committedSnapshot()
        let found: BatchTrace?
        do { found = try BatchTrace.of(id, in: state) } catch { throw Problem(.internalServerError, code: error.code, detail: error.description) }
        guard let t = found else { throw Problem(.notFound, code: "unknown-batch", detail: "no batch \(id)") }
        return try json(TraceResponse(trace: t, height: header.height))
    }

    struct RecallNotice: Codable {
        var n: UInt64
        var batch: Hash
        var gtin: String
        var lot: String
        var reasonCode: String
        var height: UInt64
        /// Organisations holding units now (they must quarantine them and reach their patients).
        var holders: [String: UInt64]
        var administrations: UInt64
    }

    struct RecallsReply: Codable { var recalls: [RecallNotice]; var last: UInt64; var height: UInt64 }

    /// `GET /v1/recalls?after=n&waitMs=`: recalls numbered after `n`, waiting up to `waitMs` for
    /// one (a long poll: how holders, hospitals and public health are notified).
    private func recalls(_ req: Request) async throws -> Response {
        let q = req.uri.queryParameters
        guard let after = UInt64(q.get("after") ?? "0"), let wait = Int(q.get("waitMs") ?? "0"), (0...60_000).contains(wait) else {
            throw Problem(.badRequest, code: "invalid-query", detail: "after is a recall number, waitMs 0…60000")
        }
        let deadline = ContinuousClock.now + .milliseconds(wait)
        while true {
            let (state, header) = await node.committedSnapshot()
            let count = try read(UInt64.self, StateKeys.recallCount, in: state) ?? 0
            if count > after || ContinuousClock.now >= deadline {
                var notices: [RecallNotice] = []
                var n = after
                while n < count, notices.count < 100 {
                    n += 1
                    guard let id = try read(Hash.self, StateKeys.recallEntry(n), in: state), let b = try read(BatchRecord.self, StateKeys.batch(id), in: state) else { continue }
                    var holders: [String: UInt64] = [:]
                    for org in Set([b.manufacturer] + (try transfers(of: b, in: state, limit: 100_000)).map(\.toOrganisation)) {
                        let held = try read(UInt64.self, StateKeys.holding(id, org), in: state) ?? 0
                        if held > 0 { holders[org] = held }
                    }
                    notices.append(RecallNotice(n: n, batch: id, gtin: b.registration.gtin, lot: b.registration.lot, reasonCode: b.recall?.reasonCode ?? "",
                                                height: b.recalledHeight ?? 0, holders: holders, administrations: b.administered))
                }
                return try json(RecallsReply(recalls: notices, last: notices.last?.n ?? after, height: header.height))
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    struct ScanResponse: Codable {
        var gtin: String
        var lot: String
        var batch: Hash
        var known: Bool
        var recalled: Bool
        var expired: Bool
        /// Unknown (a possible counterfeit), recalled or expired: do not use.
        var flagged: Bool
        var reason: String
        var height: UInt64
    }

    /// `GET /v1/scan?gtin=&lot=`: what a scanner shows for a unit's GS1 data.
    private func scan(_ req: Request) async throws -> Response {
        let q = req.uri.queryParameters
        guard let gtin = q.get("gtin").map({ String($0) }), GS1.isValidGTIN(gtin), let lot = q.get("lot").map({ String($0) }), GS1.isValidLot(lot) else {
            throw Problem(.badRequest, code: "invalid-query", detail: "gtin (GTIN-8/12/13/14 with its check digit) and lot (1…20 letters, digits or -./_) are required")
        }
        let id = GS1.batchID(gtin: gtin, lot: lot)
        let (state, header) = await node.committedSnapshot()
        guard let b = try read(BatchRecord.self, StateKeys.batch(id), in: state) else {
            return try json(ScanResponse(gtin: gtin, lot: lot, batch: id, known: false, recalled: false, expired: false, flagged: true,
                                         reason: "no such batch was registered by a manufacturer: possible counterfeit", height: header.height))
        }
        let expired = header.timestampMs >= b.registration.expiresMs
        let reason = b.recall.map { "recalled: \($0.reasonCode)" } ?? (expired ? "expired" : "registered by \(b.manufacturer)")
        return try json(ScanResponse(gtin: gtin, lot: lot, batch: id, known: true, recalled: b.recall != nil, expired: expired,
                                     flagged: b.recall != nil || expired, reason: reason, height: header.height))
    }
}
