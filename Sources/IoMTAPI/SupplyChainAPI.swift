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
        /// Units each organisation holds in quarantine after a cold-chain excursion.
        var quarantined: [String: UInt64]
        /// Where units were stored and which logger watched them (the first 1,000).
        var storage: [StorageRecord]
        /// Cold-chain excursions (the first 1,000).
        var excursions: [ExcursionRecord]
        /// Its raw-material sources, and its release tests and clinical-trial results (the first 1,000).
        var sources: [MaterialSourceRecord]
        var tests: [BatchTestRecord]
        var height: UInt64
    }

    private func batchID(_ ctx: BasicRequestContext) throws -> Hash {
        guard let id = ctx.parameters.get("id").flatMap(Hash.init(hex:)) else { throw Problem(.badRequest, code: "invalid-id", detail: "a batch id is 64 hex digits") }
        return id
    }

    /// Every organisation that has held units of the batch (the contract's list).
    private func holders(of b: BatchRecord, in state: AuthenticatedState) throws -> [String] {
        try read(StringList.self, StateKeys.batchHolders(b.id), in: state)?.places ?? [b.manufacturer]
    }

    private func transfers(of b: BatchRecord, in state: AuthenticatedState, limit: UInt64 = 1_000) throws -> [CustodyRecord] {
        try (0..<min(b.transfers, limit)).compactMap { try read(CustodyRecord.self, StateKeys.custodyTransfer(b.id, $0 + 1), in: state) }
    }

    /// `GET /v1/batches/{id}`.
    private func batchView(_ ctx: BasicRequestContext) async throws -> Response {
        let id = try batchID(ctx)
        let (state, header) = await node.committedSnapshot()
        guard let detail = try batchDetail(id, state: state, header: header) else { throw Problem(.notFound, code: "unknown-batch", detail: "no batch \(id)") }
        return try json(detail)
    }

    /// A batch with its holdings, custody, storage, excursions, sources and tests (nil: no such batch).
    func batchDetail(_ id: Hash, state: AuthenticatedState, header: BlockHeader) throws -> BatchResponse? {
        guard let b = try read(BatchRecord.self, StateKeys.batch(id), in: state) else { return nil }
        let chain = try transfers(of: b, in: state)
        var holdings: [String: UInt64] = [:], quarantined: [String: UInt64] = [:]
        for org in try holders(of: b, in: state) {
            holdings[org] = try read(UInt64.self, StateKeys.holding(id, org), in: state) ?? 0
            if let q = try read(UInt64.self, StateKeys.quarantined(id, org), in: state), q > 0 { quarantined[org] = q }
        }
        let storageCount = try read(UInt64.self, StateKeys.storageCount(id), in: state) ?? 0
        let excursionCount = try read(UInt64.self, StateKeys.excursionCount(id), in: state) ?? 0
        let storage = try (0..<min(storageCount, 1_000)).compactMap { try read(StorageRecord.self, StateKeys.storage(id, $0 + 1), in: state) }
        let excursions = try (0..<min(excursionCount, 1_000)).compactMap { try read(ExcursionRecord.self, StateKeys.excursion(id, $0 + 1), in: state) }
        let sources = try (read(IDList.self, StateKeys.batchSources(id), in: state)?.ids ?? []).compactMap { try read(MaterialSourceRecord.self, StateKeys.materialSource($0), in: state) }
        let testCount = try read(UInt64.self, StateKeys.batchTestCount(id), in: state) ?? 0
        let tests = try (0..<min(testCount, 1_000)).compactMap { try read(BatchTestRecord.self, StateKeys.batchTest(id, $0 + 1), in: state) }
        return BatchResponse(batch: b, recalled: b.recall != nil, expired: header.timestampMs >= b.registration.expiresMs,
                             holdings: holdings, transfers: chain, transfersTruncated: b.transfers > UInt64(chain.count),
                             quarantined: quarantined, storage: storage, excursions: excursions, sources: sources, tests: tests, height: header.height)
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
        return try await longPoll(waitMs: wait) { state, header, final in
            let count = try read(UInt64.self, StateKeys.recallCount, in: state) ?? 0
            guard count > after || final else { return nil }
            var notices: [RecallNotice] = []
            var n = after
            while n < count, notices.count < 100 {
                n += 1
                guard let id = try read(Hash.self, StateKeys.recallEntry(n), in: state), let b = try read(BatchRecord.self, StateKeys.batch(id), in: state) else { continue }
                var holders: [String: UInt64] = [:]
                for org in try self.holders(of: b, in: state) {
                    let held = try read(UInt64.self, StateKeys.holding(id, org), in: state) ?? 0
                    if held > 0 { holders[org] = held }
                }
                notices.append(RecallNotice(n: n, batch: id, gtin: b.registration.gtin, lot: b.registration.lot, reasonCode: b.recall?.reasonCode ?? "",
                                            height: b.recalledHeight ?? 0, holders: holders, administrations: b.administered))
            }
            return try json(RecallsReply(recalls: notices, last: notices.last?.n ?? after, height: header.height))
        }
    }

    /// A long poll on the committed state: `attempt` answers (non-nil) when there is something new,
    /// and must answer when `final` (the wait is over); it is tried every 100 ms until then.
    func longPoll(waitMs: Int, _ attempt: (AuthenticatedState, BlockHeader, _ final: Bool) throws -> Response?) async throws -> Response {
        let deadline = ContinuousClock.now + .milliseconds(waitMs)
        while true {
            let (state, header) = await node.committedSnapshot()
            if let r = try attempt(state, header, ContinuousClock.now >= deadline) { return r }
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
        /// Cold-chain excursions of the lot, and units in quarantine after them.
        var excursions: UInt64
        var quarantinedUnits: UInt64
        /// With `serial`: the serial's proof against the batch's serials root verified (nil
        /// without a proof), and whether a unit with this serial was given already.
        var serial: String?
        var serialVerified: Bool?
        var administered: Bool?
        /// With `serial`: the number of the cold-chain excursion that quarantined this very unit
        /// (placed with a logger by serial), if one did.
        var quarantinedByExcursion: UInt64?
        /// The manufacturer the consortium assigned the GTIN's GS1 company prefix to (nil: none
        /// assigned), and the prefix.
        var brandOwner: String?
        var gs1Prefix: String?
        /// Unknown (a possible counterfeit), recalled, expired, registered by another than the
        /// GTIN's brand owner, a serial that is not the lot's, or a unit given already (a copied
        /// label): do not use.
        var flagged: Bool
        var reason: String
        var height: UInt64
    }

    /// `GET /v1/scan?gtin=&lot=[&serial=&proof=]`: what a scanner shows for a unit's GS1 data. With
    /// a serial (AI 21) it also says whether a unit with that serial was given already (a copied
    /// label); with the serial's inclusion proof (hex, from `iomtchain batch prove-serial`, as a
    /// label's QR code or the manufacturer's service carries it) whether the serial is one of the
    /// lot's at all.
    private func scan(_ req: Request) async throws -> Response {
        let q = req.uri.queryParameters
        // Either the pack's code as the scanner read it, or its GTIN, lot and serial.
        var label: GS1Label?
        if let code = q.get("code").map({ String($0) }) {
            do { label = try GS1Label.parse(code) } catch { throw Problem(.badRequest, code: "invalid-code", detail: "code: \(error)") }
            guard label?.lot != nil else { throw Problem(.badRequest, code: "invalid-code", detail: "the code carries no lot (10): the batch cannot be told") }
        }
        guard let gtin = label?.gtin ?? q.get("gtin").map({ String($0) }), GS1.isValidGTIN(gtin),
              let lot = label?.lot ?? q.get("lot").map({ String($0) }), GS1.isValidLot(lot) else {
            throw Problem(.badRequest, code: "invalid-query", detail: "code (a GS1 element string or Digital Link), or gtin (GTIN-8/12/13/14 with its check digit) and lot (1…20 letters, digits or -./_), is required")
        }
        let serial = label?.serial ?? q.get("serial").map { String($0) }
        if let serial, !GS1.isValidLot(serial) { throw Problem(.badRequest, code: "invalid-query", detail: "serial is 1…20 letters, digits or -./_") }
        var proof: InclusionProof?
        if let hex = q.get("proof").map({ String($0) }) {
            guard serial != nil, let bytes = Hex.decode(hex), let p = try? InclusionProof(canonicalBytes: bytes) else {
                throw Problem(.badRequest, code: "invalid-query", detail: "proof is the hex of a serial's inclusion proof, and needs serial")
            }
            proof = p
        }
        let id = GS1.batchID(gtin: gtin, lot: lot)
        let (state, header) = await node.committedSnapshot()
        let owner = try SupplyChainQueries.brandOwner(gtin, in: state)
        guard let b = try read(BatchRecord.self, StateKeys.batch(id), in: state) else {
            return try json(ScanResponse(gtin: gtin, lot: lot, batch: id, known: false, recalled: false, expired: false, excursions: 0, quarantinedUnits: 0, serial: serial,
                                         brandOwner: owner?.organisation, gs1Prefix: owner?.prefix,
                                         flagged: true, reason: "no such batch was registered by a manufacturer: possible counterfeit", height: header.height))
        }
        // A recalled material anywhere in the lot's ancestry (at most 64 batches).
        let recalledMaterial = try SupplyChainQueries.recalledMaterial(of: b, in: state)
        // A batch registered before its GTIN's prefix was assigned to another manufacturer.
        let foreign = owner.map { $0.organisation != b.manufacturer } ?? false
        let expired = header.timestampMs >= b.registration.expiresMs
        // A label whose expiry (17) is not the lot's registered expiry day (UTC) was not printed
        // from the manufacturer's data.
        let labelExpiryDay = label?.expiry.flatMap(GS1Label.expiryDay)
        let wrongExpiry = labelExpiryDay.map { $0 != b.registration.expiresMs - ((b.registration.expiresMs % 86_400_000) + 86_400_000) % 86_400_000 } ?? false
        let excursions = try read(UInt64.self, StateKeys.excursionCount(id), in: state) ?? 0
        var quarantined: UInt64 = 0
        if excursions > 0 {
            for n in 1...min(excursions, 1_000) {
                if let e = try read(ExcursionRecord.self, StateKeys.excursion(id, n), in: state) { quarantined += UInt64(e.quarantined) }
            }
        }
        // A failed release test of the lot (the first 1,000 results read).
        var failed: [String] = []
        let tests = try read(UInt64.self, StateKeys.batchTestCount(id), in: state) ?? 0
        if tests > 0 {
            for n in 1...min(tests, 1_000) {
                if let t = try read(BatchTestRecord.self, StateKeys.batchTest(id, n), in: state), !t.test.passed, !failed.contains(t.test.testCode) { failed.append(t.test.testCode) }
            }
        }
        let verified = serial.flatMap { s in proof.map { $0.treeSize == UInt64(b.registration.units) && $0.verify(leaf: Array(s.utf8), root: b.registration.serialsRoot) } }
        // Given already: from this lot, or from another lot of the same GTIN (serials are unique per GTIN).
        let given = try serial.map { s in try read(Hash.self, StateKeys.administeredSerial(gtin: gtin, Hash.sha256(Array(s.utf8))), in: state) != nil
                                        || read(UInt64.self, StateKeys.administeredUnit(id, Hash.sha256(Array(s.utf8))), in: state) != nil }
        let unitExcursion = try serial.flatMap { s in try read(UInt64.self, StateKeys.quarantinedUnit(id, Hash.sha256(Array(s.utf8))), in: state) }
        let reason: String
        if let r = b.recall { reason = "recalled: \(r.reasonCode)" } else if let m = recalledMaterial {
            reason = "made from batch \(m.batch), recalled (\(m.recall.reasonCode)): do not use"
        } else if expired { reason = "expired" } else if wrongExpiry {
            reason = "the label's expiry \(label?.expiry ?? "") is not the lot's registered expiry: possible counterfeit"
        } else if foreign, let owner {
            reason = "registered by \(b.manufacturer), but GS1 company prefix \(owner.prefix) belongs to \(owner.organisation): possible counterfeit"
        } else if !failed.isEmpty {
            reason = "failed its \(failed.joined(separator: ", ")) test: do not use"
        } else if verified == false {
            reason = "serial \(serial ?? "") is not one of this lot's: possible counterfeit"
        } else if let unitExcursion {
            reason = "this unit is quarantined after cold-chain excursion \(unitExcursion): do not use"
        } else if given == true {
            reason = "a unit with serial \(serial ?? "") was given already: possible copied label"
        } else if quarantined > 0 {
            reason = "registered by \(b.manufacturer); \(quarantined) units of this lot are quarantined after \(excursions) cold-chain excursion(s): check this unit's storage"
        } else {
            reason = "registered by \(b.manufacturer)"
        }
        return try json(ScanResponse(gtin: gtin, lot: lot, batch: id, known: true, recalled: b.recall != nil, expired: expired, excursions: excursions, quarantinedUnits: quarantined,
                                     serial: serial, serialVerified: verified, administered: given, quarantinedByExcursion: unitExcursion, brandOwner: owner?.organisation, gs1Prefix: owner?.prefix,
                                     flagged: b.recall != nil || recalledMaterial != nil || expired || wrongExpiry || foreign || !failed.isEmpty || verified == false || unitExcursion != nil || given == true, reason: reason, height: header.height))
    }
}
