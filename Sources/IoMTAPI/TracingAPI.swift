import Foundation
import Hummingbird
import IoMTCore
import IoMTNode

/// Contact tracing, read from the latest committed state (issue 6 §2): venues, positive cases and
/// the exposure feed a phone reads to recognise its own token hashes (it downloads the feed rather
/// than asking about its tokens, so the node learns nothing about who checks).
extension API {
    func tracingRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/v1/venues/:id") { _, ctx in try await venueView(ctx) }
        router.get("/v1/cases/:id") { _, ctx in try await caseView(ctx) }
        router.get("/v1/exposures") { req, _ in try await exposures(req) }
        router.get("/v1/ventilation/:device") { _, ctx in try await ventilation(ctx) }
        router.get("/v1/faults") { req, _ in try await faults(req) }
        router.get("/v1/outbreak") { req, _ in try await outbreak(req) }
        router.get("/v1/assets") { req, _ in try await assets(req) }
        router.get("/v1/assets/:tag") { _, ctx in try await assetView(ctx) }
        router.get("/v1/sterilisers/:device/cycles") { req, ctx in try await cycles(req, ctx) }
        router.get("/v1/quarantine/:order") { _, ctx in try await quarantineView(ctx) }
        router.get("/v1/alert-log") { req, _ in try await alertLog(req) }
    }

    struct QuarantineResponse: Codable { var quarantine: QuarantineRecord; var active: Bool; var height: UInt64 }

    /// `GET /v1/quarantine/{order}`: a quarantine order (pseudonym, wristband, the fence's
    /// commitment, term, agency, officer, lifted) and whether it is in force at the latest block.
    private func quarantineView(_ ctx: BasicRequestContext) async throws -> Response {
        guard let id = ctx.parameters.get("order").flatMap(Hash.init(hex:)) else { throw Problem(.badRequest, code: "invalid-id", detail: "an order id is 64 hex digits") }
        let (state, header) = await node.committedSnapshot()
        guard let q = try read(QuarantineRecord.self, StateKeys.quarantineOrder(id), in: state) else { throw Problem(.notFound, code: "unknown-order", detail: "no quarantine order \(id)") }
        return try json(QuarantineResponse(quarantine: q, active: q.isActive(atMs: header.timestampMs), height: header.height))
    }

    struct AlertLogReply: Codable { var alerts: [AlertLogEntry]; var last: UInt64; var count: UInt64; var height: UInt64 }

    /// `GET /v1/alert-log?after=n&rule=&device=&limit=&waitMs=`: the gateways' alert records (device,
    /// rule, severity, raised or cleared, time — never a value) numbered after `n`, optionally of one
    /// rule (e.g. geofence-breach for a disease-control centre) or device; at most `limit` (100 by
    /// default, 1,000 at most) of the next 10,000 read, waiting up to `waitMs` for one.
    private func alertLog(_ req: Request) async throws -> Response {
        let q = req.uri.queryParameters
        guard let after = UInt64(q.get("after") ?? "0"), let limit = Int(q.get("limit") ?? "100"), (1...1_000).contains(limit),
              let wait = Int(q.get("waitMs") ?? "0"), (0...60_000).contains(wait) else {
            throw Problem(.badRequest, code: "invalid-query", detail: "after is an alert-log number, limit 1…1000, waitMs 0…60000")
        }
        let rule = q.get("rule").map { String($0) }
        var device: Address?
        if let d = q.get("device") {
            guard let a = Address(hex: String(d)) else { throw Problem(.badRequest, code: "invalid-query", detail: "device is 40 hex digits") }
            device = a
        }
        return try await longPoll(waitMs: wait) { state, header, final in
            let count = try read(UInt64.self, StateKeys.alertLogCount, in: state) ?? 0
            var list: [AlertLogEntry] = []
            var n = after
            while n < count, list.count < limit, n - after < 10_000 {
                n += 1
                guard let e = try read(AlertLogEntry.self, StateKeys.alertLogEntry(n), in: state),
                      rule.map({ e.record.alert.rule == $0 }) ?? true, device.map({ e.record.alert.device == $0 }) ?? true else { continue }
                list.append(e)
            }
            // Nothing matching yet: wait (unless the 10,000 read are worth reporting as passed).
            if list.isEmpty, !final, n - after < 10_000 { return nil }
            return try json(AlertLogReply(alerts: list, last: n, count: count, height: header.height))
        }
    }

    struct AssetResponse: Codable { var asset: AssetRecord; var height: UInt64 }

    private func assetView(_ ctx: BasicRequestContext) async throws -> Response {
        let tag = try ctx.parameters.require("tag")
        let (state, header) = await node.committedSnapshot()
        guard let a = try read(AssetRecord.self, StateKeys.asset(tag), in: state) else { throw Problem(.notFound, code: "unknown-asset", detail: "no asset \"\(tag)\"") }
        return try json(AssetResponse(asset: a, height: header.height))
    }

    struct AssetsReply: Codable { var assets: [AssetRecord]; var truncated: Bool; var next: Int; var height: UInt64 }

    /// `GET /v1/assets?organisation=&status=&kind=&after=`: an organisation's assets (1,000 matching
    /// or 10,000 read at most; `truncated` and `next` to continue), e.g. the available respirators.
    private func assets(_ req: Request) async throws -> Response {
        let q = req.uri.queryParameters
        guard let organisation = q.get("organisation").map({ String($0) }) else { throw Problem(.badRequest, code: "invalid-query", detail: "organisation is required") }
        let status = q.get("status").map { String($0) }, kind = q.get("kind").map { String($0) }
        let (state, header) = await node.committedSnapshot()
        guard let after = Int(q.get("after") ?? "0"), after >= 0 else { throw Problem(.badRequest, code: "invalid-query", detail: "after is a position in the organisation's asset list") }
        var out: [AssetRecord] = [], truncated = false, position = after
        let tags = try read(StringList.self, StateKeys.assets(of: organisation), in: state)?.places ?? []
        while position < tags.count {
            guard out.count < 1_000, position - after < 10_000 else { truncated = true; break }
            let tag = tags[position]
            position += 1
            guard let a = try read(AssetRecord.self, StateKeys.asset(tag), in: state), status.map({ a.status == $0 }) ?? true, kind.map({ a.kind == $0 }) ?? true else { continue }
            out.append(a)
        }
        return try json(AssetsReply(assets: out, truncated: truncated, next: position, height: header.height))
    }

    struct CyclesReply: Codable { var steriliser: Address; var lastCycle: UInt64; var missing: UInt64; var cycles: [SterilisationRecord]; var height: UInt64 }

    /// `GET /v1/sterilisers/{device}/cycles?before=`: the steriliser's recorded cycles, newest first
    /// (100 at most, before cycle `before`), how many of its counter's cycles have no record.
    private func cycles(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        guard let device = ctx.parameters.get("device").flatMap(Address.init(hex:)) else { throw Problem(.badRequest, code: "invalid-device", detail: "a device id is 40 hex digits") }
        let (state, header) = await node.committedSnapshot()
        let last = try read(UInt64.self, StateKeys.lastCycle(device), in: state) ?? 0
        var n = min(last, UInt64(req.uri.queryParameters.get("before") ?? "").map { $0 == 0 ? 0 : $0 - 1 } ?? last)
        var out: [SterilisationRecord] = [], reads = 0
        while n > 0, out.count < 100, reads < 10_000 {
            if let r = try read(SterilisationRecord.self, StateKeys.sterilisation(device, n), in: state) { out.append(r) }
            n -= 1; reads += 1
        }
        return try json(CyclesReply(steriliser: device, lastCycle: last, missing: try read(UInt64.self, StateKeys.missingCycles(device), in: state) ?? 0, cycles: out, height: header.height))
    }

    struct OutbreakReply: Codable { var cells: [OutbreakCell]; var fromMs: Int64; var toMs: Int64; var height: UInt64 }

    /// `GET /v1/outbreak?fromMs=&toMs=[&place=]`: fever detections and test results on the grid of
    /// place and hour, for one place or all, over at most 31 days (cells with anything in them).
    private func outbreak(_ req: Request) async throws -> Response {
        let q = req.uri.queryParameters
        guard let from = Int64(q.get("fromMs") ?? ""), let to = Int64(q.get("toMs") ?? ""), (0...4_000_000_000_000_000).contains(from), (0...4_000_000_000_000_000).contains(to),
              from <= to, to - from <= 31 * 86_400_000 else {
            throw Problem(.badRequest, code: "invalid-query", detail: "fromMs and toMs are required, at most 31 days apart")
        }
        let (state, header) = await node.committedSnapshot()
        let places = try q.get("place").map { [String($0)] } ?? (read(StringList.self, StateKeys.outbreakPlaces, in: state)?.places ?? [])
        let firstHour = from / 3_600_000, lastHour = to / 3_600_000
        guard UInt64(places.count) * UInt64(lastHour - firstHour + 1) <= 200_000 else {
            throw Problem(.badRequest, code: "query-too-large", detail: "\(places.count) places × \(lastHour - firstHour + 1) hours: name a place or narrow the window")
        }
        var cells: [OutbreakCell] = []
        for place in places.sorted() {
            for h in firstHour...lastHour {
                if let c = try read(OutbreakCell.self, StateKeys.outbreakCell(place, h), in: state) { cells.append(c) }
            }
        }
        return try json(OutbreakReply(cells: cells, fromMs: from, toMs: to, height: header.height))
    }

    struct VentilationReply: Codable { var device: Address; var commands: [VentilationRecord]; var height: UInt64 }

    /// `GET /v1/ventilation/{device}`: a controller's last 100 set-point commands, newest first, each
    /// with its acknowledgement (the airflow the controller reported applying).
    private func ventilation(_ ctx: BasicRequestContext) async throws -> Response {
        guard let device = ctx.parameters.get("device").flatMap(Address.init(hex:)) else { throw Problem(.badRequest, code: "invalid-device", detail: "a device id is 40 hex digits") }
        let (state, header) = await node.committedSnapshot()
        let last = try read(UInt64.self, StateKeys.ventilationSequence(device), in: state) ?? 0
        var commands: [VentilationRecord] = []
        var n = last
        while n > 0, commands.count < 100 {
            if let r = try read(VentilationRecord.self, StateKeys.ventilationCommand(device, n), in: state) { commands.append(r) }
            n -= 1
        }
        return try json(VentilationReply(device: device, commands: commands, height: header.height))
    }

    struct FaultsReply: Codable { var faults: [FaultRecord]; var last: UInt64; var count: UInt64; var height: UInt64 }

    /// `GET /v1/faults?after=n&open=true&venue=`: fan and filter faults numbered after `n` (100 at
    /// most, 10,000 read: continue after `last`), only the open ones or one venue's if asked: the
    /// technicians' list.
    private func faults(_ req: Request) async throws -> Response {
        let q = req.uri.queryParameters
        guard let after = UInt64(q.get("after") ?? "0") else { throw Problem(.badRequest, code: "invalid-query", detail: "after is a fault number") }
        let openOnly = q.get("open") == "true", venue = q.get("venue").map { String($0) }
        let (state, header) = await node.committedSnapshot()
        let count = try read(UInt64.self, StateKeys.faultCount, in: state) ?? 0
        var list: [FaultRecord] = [], n = after, reads = 0
        while n < count, list.count < 100, reads < 10_000 {
            n += 1; reads += 1
            guard let f = try read(FaultRecord.self, StateKeys.fault(n), in: state) else { continue }
            if openOnly, f.resolvedMs != nil { continue }
            if let venue, f.venue != venue { continue }
            list.append(f)
        }
        return try json(FaultsReply(faults: list, last: n, count: count, height: header.height))
    }

    struct VenueResponse: Codable { var venue: VenueRecord; var height: UInt64 }

    private func venueView(_ ctx: BasicRequestContext) async throws -> Response {
        let id = try ctx.parameters.require("id")
        let (state, header) = await node.committedSnapshot()
        guard let v = try read(VenueRecord.self, StateKeys.venue(id), in: state) else { throw Problem(.notFound, code: "unknown-venue", detail: "no venue \"\(id)\"") }
        return try json(VenueResponse(venue: v, height: header.height))
    }

    struct CaseResponse: Codable { var `case`: CaseRecord; var height: UInt64 }

    private func caseView(_ ctx: BasicRequestContext) async throws -> Response {
        guard let id = ctx.parameters.get("id").flatMap(Hash.init(hex:)) else { throw Problem(.badRequest, code: "invalid-id", detail: "a case id is 64 hex digits") }
        let (state, header) = await node.committedSnapshot()
        guard let c = try read(CaseRecord.self, StateKeys.positiveCase(id), in: state) else { throw Problem(.notFound, code: "unknown-case", detail: "no case \(id)") }
        return try json(CaseResponse(case: c, height: header.height))
    }

    struct ExposuresReply: Codable { var exposures: [ExposureRecord]; var last: UInt64; var count: UInt64; var height: UInt64 }

    /// `GET /v1/exposures?after=n&limit=&waitMs=`: exposure records numbered after `n` (at most
    /// `limit`, 100 by default, 1,000 at most), waiting up to `waitMs` for one.
    private func exposures(_ req: Request) async throws -> Response {
        let q = req.uri.queryParameters
        guard let after = UInt64(q.get("after") ?? "0"), let limit = Int(q.get("limit") ?? "100"), (1...1_000).contains(limit),
              let wait = Int(q.get("waitMs") ?? "0"), (0...60_000).contains(wait) else {
            throw Problem(.badRequest, code: "invalid-query", detail: "after is an exposure number, limit 1…1000, waitMs 0…60000")
        }
        return try await longPoll(waitMs: wait) { state, header, final in
            let count = try read(UInt64.self, StateKeys.exposureCount, in: state) ?? 0
            guard count > after || final else { return nil }
            var list: [ExposureRecord] = []
            var n = after
            while n < count, list.count < limit {
                n += 1
                if let e = try read(ExposureRecord.self, StateKeys.exposureEntry(n), in: state) { list.append(e) }
            }
            return try json(ExposuresReply(exposures: list, last: list.last?.n ?? after, count: count, height: header.height))
        }
    }
}
