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

/// Reading and parsing admin requests (HTTP/1.1, one request per connection).
enum AdminHTTP {
    /// Largest request head accepted.
    static let maxHead = 16 * 1024
    /// Largest request body accepted.
    static let maxBody = 1 << 20

    /// Outcome of reading a request.
    enum ReadResult {
        case request(AdminRequest)
        case reject(AdminResponse)
        case gone
    }

    /// Reads one request from a blocking socket with timeouts set.
    static func read(from fd: Int32) -> ReadResult {
        var buffer: [UInt8] = []
        var headEnd: Int?
        while headEnd == nil {
            if buffer.count > maxHead { return .reject(.error(431, "request head larger than \(maxHead) bytes")) }
            let n = AdminSocket.readSome(fd, into: &buffer)
            if n <= 0 { return .gone }
            headEnd = find(crlfcrlf, in: buffer)
        }
        guard let end = headEnd, end <= maxHead else { return .reject(.error(431, "request head larger than \(maxHead) bytes")) }
        guard var request = parseHead(buffer[0..<end]) else { return .reject(.error(400, "malformed request")) }
        if request.header("transfer-encoding") != nil {
            return .reject(.error(501, "chunked request bodies are not supported; send Content-Length"))
        }
        var length = 0
        if let cl = request.header("content-length") {
            guard let v = Int(cl.trimmingSpaces()), v >= 0 else { return .reject(.error(400, "invalid Content-Length")) }
            guard v <= maxBody else { return .reject(.error(413, "request body larger than \(maxBody) bytes")) }
            length = v
        }
        var body = Array(buffer[(end + 4)...])
        while body.count < length {
            let n = AdminSocket.readSome(fd, into: &body)
            if n <= 0 { return .gone }
        }
        request.body = Array(body.prefix(length))
        return .request(request)
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

    /// Parses a request line and header fields (without the final empty line).
    static func parseHead(_ bytes: ArraySlice<UInt8>) -> AdminRequest? {
        let text = String(decoding: bytes, as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { return nil }
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1."), !requestLine[0].isEmpty,
              requestLine[1].hasPrefix("/") else { return nil }
        let target = requestLine[1]
        var path = target
        var query: [String: String] = [:]
        if let q = target.firstIndex(of: "?") {
            path = target[..<q]
            for pair in target[target.index(after: q)...].split(separator: "&") {
                if let eq = pair.firstIndex(of: "=") {
                    query[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
                } else {
                    query[String(pair)] = ""
                }
            }
        }
        var headers: [String: String] = [:]
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = line[..<colon].lowercased()
            guard !name.isEmpty, !name.contains(" ") else { return nil }
            let value = String(line[line.index(after: colon)...]).trimmingSpaces()
            if let old = headers[name] { headers[name] = old + ", " + value } else { headers[name] = value }
        }
        return AdminRequest(method: String(requestLine[0]), path: String(path), query: query, headers: headers)
    }
}
