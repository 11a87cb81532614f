import Foundation
import HTTPTypes
import Hummingbird
import IoMTContracts
import IoMTCore
import IoMTNode
import IoMTStore
import NIOCore

/// The node's HTTP API (Sources/IoMTAPI/openapi.yaml, compiled in and served at /openapi.yaml).
public struct API: Sendable {
    public let node: Node
    /// Largest request body accepted (a batch of transactions).
    public static let maxBodyBytes = 4 << 20
    public static let maxBatch = 5_000
    public static let maxBlockRange = 100

    /// Consensus state in consortium mode (nil for a solo node): GET /v1/consensus.
    public let consensus: (@Sendable () async -> ConsensusInfo)?
    /// Off-chain blobs this node holds or fetches from its peers (nil: no blob routes).
    public let blobs: BlobExchange?

    public init(node: Node, consensus: (@Sendable () async -> ConsensusInfo)? = nil, blobs: BlobExchange? = nil) {
        self.node = node
        self.consensus = consensus
        self.blobs = blobs
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ProblemMiddleware())
        router.post("/v1/transactions") { req, ctx in try await submit(req, ctx) }
        router.post("/v1/transactions/batch") { req, ctx in try await submitBatch(req, ctx) }
        router.get("/v1/transactions/:hash") { req, ctx in try await transaction(req, ctx) }
        router.get("/v1/blocks/latest") { _, _ in try await block(height: await node.latestHeader.height) }
        router.get("/v1/blocks/:height") { req, ctx in
            let h = try ctx.parameters.require("height")
            guard let height = UInt64(h) else { throw Problem(.badRequest, code: "invalid-height", detail: "height must be a non-negative integer, got \"\(h.prefix(40))\"") }
            return try await block(height: height)
        }
        router.get("/v1/blocks") { req, _ in try await blocks(req) }
        router.get("/v1/state/:key") { req, ctx in try await state(ctx) }
        router.get("/v1/accounts/:address") { req, ctx in try await account(ctx) }
        router.get("/v1/status") { _, _ in try json(await node.status()) }
        router.put("/v1/blobs/:cid") { req, ctx in try await putBlob(req, ctx) }
        router.get("/v1/blobs/:cid") { _, ctx in try await getBlob(ctx) }
        let consensus = self.consensus
        router.get("/v1/consensus") { _, _ in
            guard let consensus else {
                throw Problem(.notFound, code: "not-in-consortium", detail: "this node runs the single-validator dev chain; start it with --consortium")
            }
            return try json(await consensus())
        }
        patientRoutes(router)
        researchRoutes(router)
        supplyChainRoutes(router)
        tracingRoutes(router)
        supplyChainFHIRRoutes(router)
        consoleRoutes(router)
        router.get("/healthz") { _, _ in Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: "ok\n"))) }
        router.get("/metrics") { _, _ in await metrics() }
        router.get("/openapi.yaml") { _, _ in try openAPI() }
        return router
    }

    // MARK: handlers

    struct SubmitResponse: Codable {
        var hash: Hash
        var status: String
        var height: UInt64?
        var index: Int?
        var error: Problem?
    }

    private func readBody(_ req: Request, limit: Int) async throws -> Data {
        let buffer = try await req.body.collect(upTo: limit)
        return Data(buffer.readableBytesView)
    }

    private func decode<T: Decodable>(_: T.Type, _ data: Data) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: data) } catch let e as DecodingError {
            throw Problem(.badRequest, code: "invalid-json", detail: Self.describe(e))
        } catch {
            throw Problem(.badRequest, code: "invalid-json", detail: "\(error)")
        }
    }

    static func describe(_ e: DecodingError) -> String {
        func path(_ c: [any CodingKey]) -> String { c.isEmpty ? "body" : c.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".") }
        switch e {
        case .typeMismatch(let t, let c): return "\(path(c.codingPath)): expected \(t)"
        case .valueNotFound(let t, let c): return "\(path(c.codingPath)): missing \(t)"
        case .keyNotFound(let k, let c): return "\(path(c.codingPath + [k])): required field missing"
        case .dataCorrupted(let c): return "\(path(c.codingPath)): \(c.debugDescription)"
        @unknown default: return "\(e)"
        }
    }

    private func submit(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let tx = try decode(SignedTransaction.self, try await readBody(req, limit: Int(node.parameters.maxTransactionBytes) * 4 + 4096))
        let hash: Hash
        do { hash = try await node.submit(tx) } catch { throw Problem.from(error) }
        let wait = req.uri.queryParameters.get("wait")
        if wait == "commit" || wait == "true" {
            let timeout = min(Int64(req.uri.queryParameters.get("timeoutMs").flatMap { Int64($0) } ?? 10_000), 60_000)
            switch await node.awaitCommit(hash, timeoutMs: timeout) {
            case .committed(let h, let i): return try json(SubmitResponse(hash: hash, status: "committed", height: h, index: i), status: .ok)
            case .dropped(let e): throw Problem.from(e, prefix: "dropped before commit: ")
            case .timedOut: break
            }
        }
        return try json(SubmitResponse(hash: hash, status: "pending"), status: .accepted)
    }

    private func submitBatch(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let txs = try decode([SignedTransaction].self, try await readBody(req, limit: Self.maxBodyBytes))
        guard txs.count <= Self.maxBatch else { throw Problem(.contentTooLarge, code: "batch-too-large", detail: "at most \(Self.maxBatch) transactions per batch") }
        let results = await node.submit(batch: txs)
        let out = zip(txs, results).map { tx, r in
            switch r {
            case .success(let h): return SubmitResponse(hash: h, status: "pending")
            case .failure(let e): return SubmitResponse(hash: tx.hash, status: "rejected", error: Problem.from(e))
            }
        }
        return try json(out, status: .ok)
    }

    struct TransactionResponse: Codable {
        var hash: Hash
        var status: String
        var height: UInt64?
        var index: Int?
        var blockHash: Hash?
        var transaction: SignedTransaction?
        var proof: InclusionProof?
        var header: BlockHeader?
        var commit: Commit?
    }

    private func transaction(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let raw = try ctx.parameters.require("hash")
        guard let hash = Hash(hex: raw) else { throw Problem(.badRequest, code: "invalid-hash", detail: "transaction hash must be 64 hex digits") }
        func committed() throws -> Response? {
            guard let (p, index) = try node.transactionProof(hash) else { return nil }
            return try json(TransactionResponse(hash: hash, status: "committed", height: p.header.height, index: index, blockHash: p.header.hash, transaction: p.transaction, proof: p.proof, header: p.header, commit: p.commit))
        }
        if let r = try committed() { return r }
        if await node.isPending(hash) { return try json(TransactionResponse(hash: hash, status: "pending")) }
        // Its block may have become durable between the two looks (the node stops calling a
        // transaction pending only after its block is on disk), so look at the ledger once more.
        if let r = try committed() { return r }
        throw Problem(.notFound, code: "transaction-not-found", detail: "no committed or pending transaction \(hash)")
    }

    struct BlockResponse: Codable {
        var hash: Hash
        var header: BlockHeader
        var commit: Commit?
        var transactions: [TransactionSummary]
    }

    struct TransactionSummary: Codable {
        var hash: Hash
        var transaction: SignedTransaction
    }

    private func blockResponse(_ b: Block) -> BlockResponse {
        BlockResponse(hash: b.hash, header: b.header, commit: b.commit, transactions: b.transactions.map { TransactionSummary(hash: $0.hash, transaction: $0) })
    }

    private func block(height: UInt64) async throws -> Response {
        guard let b = try node.store.block(height: height) else {
            throw Problem(.notFound, code: "block-not-found", detail: "no block at height \(height); latest is \(await node.latestHeader.height)")
        }
        return try json(blockResponse(b))
    }

    private func blocks(_ req: Request) async throws -> Response {
        let latest = await node.latestHeader.height
        let q = req.uri.queryParameters
        guard let from = UInt64(q.get("from") ?? "0") else { throw Problem(.badRequest, code: "invalid-range", detail: "from must be a non-negative integer") }
        guard let limit = Int(q.get("limit") ?? "20"), limit >= 1, limit <= Self.maxBlockRange else {
            throw Problem(.badRequest, code: "invalid-range", detail: "limit must be 1…\(Self.maxBlockRange)")
        }
        var out: [BlockResponse] = []
        var h = from
        while h <= latest, out.count < limit {
            if let b = try node.store.block(height: h) { out.append(blockResponse(b)) }
            h += 1
        }
        return try json(out)
    }

    struct StateResponse: Codable {
        var key: String
        var value: String?
        var height: UInt64
        var stateRoot: Hash
        var proof: StateProof
        var header: BlockHeader
        var commit: Commit?
    }

    private func state(_ ctx: BasicRequestContext) async throws -> Response {
        let raw = try ctx.parameters.require("key")
        guard let key = Hex.decode(raw), !key.isEmpty, key.count <= 1024 else {
            throw Problem(.badRequest, code: "invalid-key", detail: "state key must be 1–1024 bytes of hex")
        }
        let (proof, header, commit) = await node.stateProof(key: key)
        return try json(StateResponse(key: Hex.encode(key), value: proof.value.map { Hex.encode($0) }, height: header.height, stateRoot: header.stateRoot, proof: proof, header: header, commit: commit))
    }

    struct AccountResponse: Codable {
        var address: Address
        var account: Account?
        var nextNonce: UInt64?
        var height: UInt64
        var proof: StateProof
        var header: BlockHeader
        var commit: Commit?
    }

    private func account(_ ctx: BasicRequestContext) async throws -> Response {
        let raw = try ctx.parameters.require("address")
        guard let address = Address(hex: raw) else { throw Problem(.badRequest, code: "invalid-address", detail: "address must be 40 hex digits") }
        let (proof, header, commit) = await node.stateProof(key: StateKeys.account(address))
        let account = try proof.value.map { try Account(canonicalBytes: $0) }
        let next = await node.nextNonce(address)
        guard account != nil || next != nil else {
            throw Problem(.notFound, code: "account-not-found", detail: "no account \(address) at height \(header.height)")
        }
        return try json(AccountResponse(address: address, account: account, nextNonce: next, height: header.height, proof: proof, header: header, commit: commit))
    }

    // MARK: blobs

    private func blobID(_ ctx: BasicRequestContext) throws -> ContentID {
        guard let id = ContentID(try ctx.parameters.require("cid")) else {
            throw Problem(.badRequest, code: "invalid-cid", detail: "a blob id is a CIDv1 (raw, sha2-256, base32: bafkrei…)")
        }
        return id
    }

    private func exchange() throws -> BlobExchange {
        guard let blobs else { throw Problem(.notFound, code: "no-blob-store", detail: "this node keeps no blobs") }
        return blobs
    }

    /// `PUT /v1/blobs/{cid}`: a gateway (or member-admin) account, by a signature over
    /// `BlobPutAuth.message`, stores a blob here and on `replicationFactor − 1` peers.
    private func putBlob(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let blobs = try exchange()
        let id = try blobID(ctx)
        guard let a = req.header("x-iomt-account"), let address = Address(hex: a), let s = req.header("x-iomt-signature"), let raw = Hex.decode(s), let signature = Signature(bytes: raw) else {
            throw Problem(.unauthorized, code: "missing-credentials", detail: "X-IoMT-Account (40 hex digits) and X-IoMT-Signature (128 hex digits, over iomtchain/blob-put/v1 ‖ chain id ‖ digest) are required")
        }
        if let refusal = await blobs.authorise(address, signature, id.digest) {
            switch refusal {
            case .unknownAccount: throw Problem(.unauthorized, code: "unknown-account", detail: refusal.description)
            case .badSignature: throw Problem(.unauthorized, code: "bad-signature", detail: refusal.description)
            case .notAllowed: throw Problem(.forbidden, code: "unauthorised", detail: refusal.description)
            }
        }
        let body = try await req.body.collect(upTo: blobs.maxBlobBytes)
        let bytes = Array(body.readableBytesView)
        let placement: BlobExchange.Placement
        do {
            placement = try await blobs.put(bytes, as: id, account: address, signature: signature)
        } catch {
            switch error {
            case .tooLarge: throw Problem(.contentTooLarge, code: "blob-too-large", detail: error.description)
            case .mismatch: throw Problem(.unprocessableContent, code: "blob-mismatch", detail: error.description)
            case .erased: throw Problem(.gone, code: "blob-erased", detail: error.description)
            case .notFound, .io: throw Problem(.internalServerError, code: "blob-store", detail: error.description)
            }
        }
        return try json(placement, status: .created)
    }

    /// `GET /v1/blobs/{cid}`: the blob, from this node or fetched from a peer that holds it; always
    /// checked against its id. `X-IoMT-Blob-Source` says where it came from.
    private func getBlob(_ ctx: BasicRequestContext) async throws -> Response {
        let blobs = try exchange()
        let id = try blobID(ctx)
        let found: (bytes: [UInt8], source: String)
        do {
            found = try await blobs.get(id)
        } catch {
            switch error {
            case .notFound: throw Problem(.notFound, code: "blob-not-found", detail: error.description)
            case .erased: throw Problem(.gone, code: "blob-erased", detail: error.description)
            default: throw Problem(.internalServerError, code: "blob-store", detail: error.description)
            }
        }
        let (bytes, source) = found
        return Response(status: .ok, headers: [.contentType: "application/octet-stream", HTTPField.Name("X-IoMT-Blob-Source")!: source],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    private func metrics() async -> Response {
        let m = await node.metrics
        let s = await node.status()
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, v) in samples { out += "\(name)\(labels) \(v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v))\n" }
        }
        metric("iomt_block_height", "gauge", "Height of the latest committed block.", [("", Double(s.height))])
        metric("iomt_mempool_transactions", "gauge", "Transactions admitted and not yet committed.", [("", Double(s.mempoolSize))])
        metric("iomt_mempool_capacity", "gauge", "Mempool bound.", [("", Double(s.mempoolCapacity))])
        metric("iomt_transactions_admitted_total", "counter", "Transactions admitted to the mempool.", [("", Double(m.admitted))])
        metric("iomt_transactions_rejected_total", "counter", "Transactions refused at admission, by code.",
               m.rejected.sorted { $0.key < $1.key }.map { ("{code=\"\($0.key)\"}", Double($0.value)) })
        metric("iomt_transactions_committed_total", "counter", "Transactions committed in blocks.", [("", Double(m.transactionsCommitted))])
        metric("iomt_transactions_dropped_total", "counter", "Admitted transactions that no longer applied at block time.", [("", Double(m.droppedAfterAdmission))])
        metric("iomt_blocks_committed_total", "counter", "Blocks committed by this node since start.", [("", Double(m.blocksCommitted))])
        metric("iomt_block_commit_seconds_total", "counter", "Time spent executing and committing blocks.", [("", m.commitSecondsTotal)])
        metric("iomt_block_commit_seconds_last", "gauge", "Time to execute and commit the latest block.", [("", m.lastBlockCommitSeconds)])
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: out)))
    }

    /// The OpenAPI document, compiled into the binary (no resource bundle to lose).
    private func openAPI() throws -> Response {
        Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: ByteBuffer(bytes: PackageResources.openapi_yaml)))
    }

    func json<T: Encodable>(_ v: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try JSON.encoder.encode(v)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
