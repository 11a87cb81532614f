import Foundation
import IoMTGateway
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A minimal client for the node's HTTP API.
struct NodeClient {
    var base: String

    struct Reply {
        var status: Int
        var body: Data
    }

    func request(_ method: String, _ path: String, body: Data? = nil) async throws -> Reply {
        do {
            let r = try await NodeLink(base: base).request(method, path, body: body, timeout: 70)
            return Reply(status: r.status, body: r.body)
        } catch {
            throw CLIError("\(error)")
        }
    }

    /// GETs JSON; a non-2xx reply becomes an error carrying the problem's detail.
    func get<T: Decodable>(_ path: String, as: T.Type) async throws -> T {
        let r = try await request("GET", path)
        return try decodeOK(r, T.self)
    }

    func decodeOK<T: Decodable>(_ r: Reply, _: T.Type) throws -> T {
        guard (200..<300).contains(r.status) else { throw CLIError(problemText(r)) }
        return try JSONDecoder().decode(T.self, from: r.body)
    }

    func problemText(_ r: Reply) -> String {
        if let obj = try? JSONSerialization.jsonObject(with: r.body) as? [String: Any], let code = obj["code"], let detail = obj["detail"] {
            return "HTTP \(r.status) \(code): \(detail)"
        }
        return "HTTP \(r.status): \(String(decoding: r.body.prefix(500), as: UTF8.self))"
    }
}
