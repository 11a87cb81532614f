import Foundation
import Hummingbird
import IoMTContracts
import IoMTNode
import NIOCore

/// An RFC 9457 problem: `application/problem+json` with a stable `code`.
public struct Problem: Error, HTTPResponseError, Codable, Sendable {
    public var type: String
    public var title: String
    public var statusCode: Int
    public var detail: String
    public var code: String

    enum CodingKeys: String, CodingKey { case type, title, statusCode = "status", detail, code }

    public var status: HTTPResponse.Status { HTTPResponse.Status(code: statusCode) }

    public init(_ status: HTTPResponse.Status, code: String, detail: String) {
        self.type = "https://iomtchain.dev/problems/\(code)"
        self.title = status.reasonPhrase
        self.statusCode = status.code
        self.detail = detail
        self.code = code
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = (try? JSON.encoder.encode(self)) ?? Data()
        return Response(status: status, headers: [.contentType: "application/problem+json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func from(_ e: AdmissionError) -> Problem {
        switch e {
        case .malformed: return Problem(.badRequest, code: e.code, detail: e.description)
        case .tooLarge: return Problem(.contentTooLarge, code: e.code, detail: e.description)
        case .badSignature: return Problem(.badRequest, code: e.code, detail: e.description)
        case .duplicate: return Problem(.conflict, code: e.code, detail: e.description)
        case .mempoolFull: return Problem(.serviceUnavailable, code: e.code, detail: e.description)
        case .storageUnavailable: return Problem(.serviceUnavailable, code: e.code, detail: e.description)
        case .rejected(let c): return from(c)
        }
    }

    /// A contract refusal: 409 for a used nonce (the transaction or one like it already counted),
    /// 422 for everything else (well-formed, but not allowed in this state).
    static func from(_ c: ContractError, prefix: String = "") -> Problem {
        Problem(c.code == "nonce-too-low" ? .conflict : .unprocessableContent, code: c.code, detail: prefix + c.description)
    }
}

/// Turns every error, including Hummingbird's own 404 and body-size errors, into problem+json.
extension Request {
    /// The value of the header `lowercased` (e.g. `x-iomt-signature`), if present.
    public func header(_ lowercased: String) -> String? {
        headers.first { $0.name.canonicalName == lowercased }?.value
    }
}

public struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let p as Problem {
            return try p.response(from: request, context: context)
        } catch is NIOTooManyBytesError {
            return try Problem(.contentTooLarge, code: "body-too-large", detail: "request body exceeds the limit").response(from: request, context: context)
        } catch let e as HTTPError {
            let code = e.status == .notFound ? "not-found" : e.status == .methodNotAllowed ? "method-not-allowed" : "http-\(e.status.code)"
            let detail = e.status == .notFound ? "no route \(request.method) \(request.uri.path)" : (e.body ?? e.status.reasonPhrase)
            return try Problem(e.status, code: code, detail: detail).response(from: request, context: context)
        } catch {
            return try Problem(.internalServerError, code: "internal", detail: "\(error)").response(from: request, context: context)
        }
    }
}

enum JSON {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()
}
