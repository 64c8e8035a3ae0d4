#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SluiceCore

/// One request to the admin API, fully read.
public struct AdminRequest: Sendable {
    /// Method, as sent (`GET`).
    public var method: String
    /// Path without the query (`/admin/events`).
    public var path: String
    /// Query parameters (not percent-decoded; the last of repeated names wins).
    public var query: [String: String]
    /// Header fields by lowercased name (repeated fields joined with `, `).
    public var headers: [String: String]
    /// The body (empty without Content-Length).
    public var body: [UInt8]
    /// Values of the `{name}` segments of the endpoint's path pattern (set by the server when it
    /// routes the request; e.g. `route` for `/admin/routes/{route}/split`).
    public var pathParameters: [String: String] = [:]

    /// Creates a request.
    public init(method: String, path: String, query: [String: String] = [:], headers: [String: String] = [:], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// The value of header `name` (any case).
    public func header(_ name: String) -> String? {
        headers[name.lowercased()]
    }
}

/// A response of the admin API.
public struct AdminResponse: Sendable {
    /// Status code.
    public var status: Int
    /// `Content-Type`.
    public var contentType: String
    /// Further header fields.
    public var headers: [(name: String, value: String)]
    /// Body bytes.
    public var body: [UInt8]

    /// Creates a response.
    public init(status: Int, contentType: String, headers: [(name: String, value: String)] = [], body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }

    /// A plain text response.
    public static func text(_ text: String, status: Int = 200, contentType: String = "text/plain; charset=utf-8") -> AdminResponse {
        AdminResponse(status: status, contentType: contentType, body: Array(text.utf8))
    }

    /// A JSON response (pretty-printed, keys sorted).
    public static func json<T: Encodable>(_ value: T, status: Int = 200) -> AdminResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            var body = Array(try encoder.encode(value))
            body.append(0x0A)
            return AdminResponse(status: status, contentType: "application/json", body: body)
        } catch {
            return .error(500, "cannot encode the response: \(error)")
        }
    }

    /// A JSON error: `{"error": message, "status": status}`.
    public static func error(_ status: Int, _ message: String, headers: [(name: String, value: String)] = []) -> AdminResponse {
        var r = json(AdminErrorBody(error: message, status: status), status: status)
        r.headers = headers
        return r
    }

    /// The response as bytes on the wire (`Connection: close`; no body for HEAD).
    func serialized(headOnly: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(HeadWriter.reasonPhrase(status))\r\n"
        head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
        head += "Cache-Control: no-store\r\nConnection: close\r\n"
        for h in headers { head += "\(h.name): \(h.value)\r\n" }
        head += "\r\n"
        return headOnly ? Array(head.utf8) : Array(head.utf8) + body
    }
}

/// The body of an admin API error.
struct AdminErrorBody: Codable {
    var error: String
    var status: Int
}

/// Turning a head parsed by the strict `RequestParser` into an `AdminRequest`, and byte search for the client.
enum AdminHTTP {
    /// The request described by `head`, whose spans point into `bytes` (body left empty).
    static func request(from head: RequestHead, bytes: [UInt8]) -> AdminRequest {
        func text(_ span: ByteSpan) -> String {
            let r = span.range
            guard r.lowerBound >= 0, r.upperBound <= bytes.count else { return "" }
            return String(decoding: bytes[r], as: UTF8.self)
        }
        var path = text(head.path)
        if path.isEmpty { path = "/" }
        var query: [String: String] = [:]
        if head.query.count > 0 {
            for pair in text(head.query).split(separator: "&") {
                if let eq = pair.firstIndex(of: "=") {
                    query[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
                } else {
                    query[String(pair)] = ""
                }
            }
        }
        var headers: [String: String] = [:]
        for field in head.fields {
            let name = text(field.name).lowercased()
            let value = text(field.value)
            if let old = headers[name] { headers[name] = old + ", " + value } else { headers[name] = value }
        }
        return AdminRequest(method: text(head.methodSpan), path: path, query: query, headers: headers)
    }

    private static let crlfcrlf: [UInt8] = [13, 10, 13, 10]

    /// Index of the first occurrence of `needle` in `bytes`.
    static func find(_ needle: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        var i = 0
        while i + needle.count <= bytes.count {
            if bytes[i] == needle[0] && bytes[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
