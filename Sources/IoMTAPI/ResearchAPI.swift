import Foundation
import Hummingbird
import IoMTCore
import IoMTNode

/// Research datasets and credits, read from the latest committed state (issue 5 §7, §8): a
/// dataset's request, seal and every charge to its privacy budget; an account's balance and every
/// movement of it. Policy, pseudonyms and amounts only.
extension API {
    func researchRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/v1/datasets/:id") { req, ctx in try await dataset(req, ctx) }
        router.get("/v1/accounts/:address/credits") { req, ctx in try await credits(req, ctx) }
    }

    struct DatasetResponse: Codable {
        var dataset: DatasetRecord
        var epsilonLeftMilli: UInt64
        /// The pseudonyms sealed into it (the patients its price was split among).
        var subjects: [Hash]
        var charges: [PrivacyCharge]
        var height: UInt64
    }

    /// `GET /v1/datasets/{id}[?afterCharge=n]`: the dataset and its privacy-budget charges (up to 1,000 after `afterCharge`).
    private func dataset(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        guard let id = ctx.parameters.get("id").flatMap(Hash.init(hex:)) else { throw Problem(.badRequest, code: "invalid-id", detail: "a dataset id is 64 hex digits") }
        guard let after = UInt64(req.uri.queryParameters.get("afterCharge") ?? "0") else { throw Problem(.badRequest, code: "invalid-query", detail: "afterCharge is a charge number") }
        let (state, header) = await node.committedSnapshot()
        guard let d = try read(DatasetRecord.self, StateKeys.dataset(id), in: state) else { throw Problem(.notFound, code: "unknown-dataset", detail: "no dataset \(id)") }
        var charges: [PrivacyCharge] = []
        var n = after
        while n < d.charges, charges.count < 1_000 {
            n += 1
            if let c = try read(PrivacyCharge.self, StateKeys.datasetCharge(id, n), in: state) { charges.append(c) }
        }
        let subjects = try read(IDList.self, StateKeys.datasetSubjects(id), in: state)?.ids ?? []
        return try json(DatasetResponse(dataset: d, epsilonLeftMilli: d.epsilonLeftMilli, subjects: subjects, charges: charges, height: header.height))
    }

    struct CreditsResponse: Codable {
        var account: Address
        var balance: UInt64
        /// How many entries the account has in all.
        var count: UInt64
        var entries: [CreditEntry]
        var height: UInt64
    }

    /// `GET /v1/accounts/{address}/credits[?after=n&limit=m]`: the balance and its entries, oldest first.
    private func credits(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        guard let a = ctx.parameters.get("address").flatMap(Address.init(hex:)) else { throw Problem(.badRequest, code: "invalid-address", detail: "an address is 40 hex digits") }
        let q = req.uri.queryParameters
        guard let after = UInt64(q.get("after") ?? "0"), let limit = Int(q.get("limit") ?? "1000"), (1...1_000).contains(limit) else {
            throw Problem(.badRequest, code: "invalid-query", detail: "after is an entry number; limit is 1…1000")
        }
        let (state, header) = await node.committedSnapshot()
        guard state.value(forKey: StateKeys.account(a)) != nil else { throw Problem(.notFound, code: "unknown-account", detail: "no account \(a)") }
        let count = try read(UInt64.self, StateKeys.creditCount(a), in: state) ?? 0
        var entries: [CreditEntry] = []
        var n = after
        while n < count, entries.count < limit {
            n += 1
            if let e = try read(CreditEntry.self, StateKeys.creditEntry(a, n), in: state) { entries.append(e) }
        }
        return try json(CreditsResponse(account: a, balance: try read(UInt64.self, StateKeys.balance(a), in: state) ?? 0, count: count, entries: entries, height: header.height))
    }
}
