import Foundation
import IoMTCore
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The gateway's client of one node's HTTP API: device records, its own account's nonce,
/// submitting anchor transactions and reading their proofs back.
public struct NodeLink: Sendable {
    public var base: String

    public init(base: String) { self.base = base.hasSuffix("/") ? String(base.dropLast()) : base }

    public struct Reply: Sendable { public var status: Int; public var body: Data }

    public func request(_ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json", headers: [String: String] = [:], timeout: TimeInterval = 10) async throws -> Reply {
        guard let url = URL(string: base + path) else { throw GatewayError.node("bad node URL \(base)") }
        var req = URLRequest(url: url)
        req.httpMethod = method
        req.timeoutInterval = timeout
        if let body {
            req.httpBody = body
            req.setValue(contentType, forHTTPHeaderField: "Content-Type")
        }
        for (k, v) in headers { req.setValue(v, forHTTPHeaderField: k) }
        do {
            let (data, resp) = try await URLSession.shared.data(for: req)
            return Reply(status: (resp as? HTTPURLResponse)?.statusCode ?? 0, body: data)
        } catch {
            throw GatewayError.node("cannot reach \(base): \(error.localizedDescription)")
        }
    }

    struct StatusReply: Decodable { var chainId: String }

    public func chainID() async throws -> String {
        let r = try await request("GET", "/v1/status")
        guard r.status == 200 else { throw GatewayError.node("GET /v1/status: HTTP \(r.status)") }
        return try JSONDecoder().decode(StatusReply.self, from: r.body).chainId
    }

    struct StateReply: Decodable { var value: String? }

    /// The device's on-chain record at the node's latest height, or nil if none.
    public func device(_ id: Address) async throws -> DeviceRecord? {
        let r = try await request("GET", "/v1/state/" + Hex.encode(StateKeys.device(id)))
        guard r.status == 200 else { throw GatewayError.node("GET state: HTTP \(r.status)") }
        guard let hex = try JSONDecoder().decode(StateReply.self, from: r.body).value else { return nil }
        guard let bytes = Hex.decode(hex) else { throw GatewayError.node("state value is not hex") }
        return try DeviceRecord(canonicalBytes: bytes)
    }

    struct AccountReply: Decodable { var account: Account?; var nextNonce: UInt64? }

    /// The account's next nonce as the node sees it (committed and pending).
    public func nextNonce(_ a: Address) async throws -> UInt64 {
        let r = try await request("GET", "/v1/accounts/" + a.hex)
        guard r.status == 200 else { throw GatewayError.node("GET account: HTTP \(r.status)") }
        let reply = try JSONDecoder().decode(AccountReply.self, from: r.body)
        guard reply.account != nil else { throw GatewayError.node("the gateway's account \(a) is not registered on the chain") }
        return reply.nextNonce ?? reply.account!.nonce
    }

    /// Submits a signed transaction; returns the HTTP status and the problem code if refused.
    public func submit(_ stx: SignedTransaction) async throws -> (status: Int, code: String?) {
        let r = try await request("POST", "/v1/transactions", body: try JSONEncoder().encode(stx))
        let code = (try? JSONSerialization.jsonObject(with: r.body) as? [String: Any])?["code"] as? String
        return (r.status, code)
    }

    struct Placement: Decodable { var holders: [String] }

    /// Puts a sealed blob on the node (which replicates it to its peers), signed by the gateway's
    /// account. Returns how many nodes hold it, or nil if the node refuses it as too large.
    public func putBlob(_ bytes: [UInt8], id: ContentID, chainID: String, account: PrivateKey) async throws -> Int? {
        let signature = account.sign(BlobPutAuth.message(chainID: chainID, digest: id.digest))
        let r = try await request("PUT", "/v1/blobs/" + id.description, body: Data(bytes), contentType: "application/octet-stream",
                                  headers: ["X-IoMT-Account": account.publicKey.address.hex, "X-IoMT-Signature": Hex.encode(signature.bytes)], timeout: 30)
        if r.status == 413 { return nil }
        guard r.status == 201 else { throw GatewayError.node("PUT blob \(id): HTTP \(r.status) \(String(decoding: r.body.prefix(300), as: UTF8.self))") }
        return try JSONDecoder().decode(Placement.self, from: r.body).holders.count
    }

    struct BatchResult: Decodable {
        struct Refusal: Decodable { var status: Int; var code: String }
        var status: String
        var error: Refusal?
    }

    /// Submits signed transactions in one request (`POST /v1/transactions/batch`); for each, the
    /// HTTP status it would have had alone (202 when admitted) and the problem code if refused.
    public func submit(batch: [SignedTransaction]) async throws -> [(status: Int, code: String?)] {
        let r = try await request("POST", "/v1/transactions/batch", body: try JSONEncoder().encode(batch), timeout: 30)
        guard r.status == 200 else { throw GatewayError.node("POST /v1/transactions/batch: HTTP \(r.status) \(String(decoding: r.body.prefix(300), as: UTF8.self))") }
        let results = try JSONDecoder().decode([BatchResult].self, from: r.body)
        guard results.count == batch.count else { throw GatewayError.node("POST /v1/transactions/batch: \(results.count) results for \(batch.count) transactions") }
        return results.map { $0.error.map { ($0.status, $0.code) } ?? (202, nil) }
    }

    public enum TxState: Sendable { case unknown, pending, committed(height: UInt64, proof: Data) }

    public func transaction(_ hash: Hash) async throws -> TxState {
        let r = try await request("GET", "/v1/transactions/" + hash.description)
        if r.status == 404 { return .unknown }
        guard r.status == 200, let obj = try JSONSerialization.jsonObject(with: r.body) as? [String: Any] else {
            throw GatewayError.node("GET transaction: HTTP \(r.status)")
        }
        if obj["status"] as? String == "committed", let header = obj["header"] as? [String: Any], let h = header["height"] as? Int {
            return .committed(height: UInt64(h), proof: r.body)
        }
        return .pending
    }
}
