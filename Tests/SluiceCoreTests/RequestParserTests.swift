import Testing
import SluiceCore

// MARK: Helpers

private func b(_ s: String) -> [UInt8] { Array(s.utf8) }

private func parse(_ bytes: [UInt8], limits: ParserLimits = ParserLimits()) -> (ParseStatus, RequestHead) {
    var head = RequestHead()
    let status = bytes.withUnsafeBytes { RequestParser.parse($0, into: &head, limits: limits) }
    return (status, head)
}

private func str(_ bytes: [UInt8], _ span: ByteSpan) -> String {
    String(decoding: bytes[span.range], as: UTF8.self)
}

private func limits(requestLine: Int? = nil, head: Int? = nil, fields: Int? = nil) -> ParserLimits {
    var l = ParserLimits()
    if let requestLine { l.maxRequestLine = requestLine }
    if let head { l.maxHeadBytes = head }
    if let fields { l.maxFields = fields }
    return l
}

// MARK: Valid requests

/// A well-formed request and everything the parser must report about it.
struct ValidRequestCase: Sendable, CustomTestStringConvertible {
    var name: String
    var raw: String
    var method: HTTPMethod
    var target: String
    var path: String
    var query: String
    var host: String
    var version: HTTPVersion = .http11
    var framing: BodyFraming = .none
    var keepAlive = true
    var expectContinue = false
    var testDescription: String { name }
}

private let validRequests: [ValidRequestCase] = [
    .init(name: "simple GET", raw: "GET /index.html?x=1&y HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
          method: .get, target: "/index.html?x=1&y", path: "/index.html", query: "x=1&y", host: "example.com"),
    .init(name: "GET without query", raw: "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
          method: .get, target: "/", path: "/", query: "", host: "a"),
    .init(name: "empty query", raw: "GET /p? HTTP/1.1\r\nHost: a\r\n\r\n",
          method: .get, target: "/p?", path: "/p", query: "", host: "a"),
    .init(name: "second ? belongs to the query", raw: "GET /p?a?b HTTP/1.1\r\nHost: a\r\n\r\n",
          method: .get, target: "/p?a?b", path: "/p", query: "a?b", host: "a"),
    .init(name: "POST with Content-Length",
          raw: "POST /upload HTTP/1.1\r\nHost: api.example:8443\r\nContent-Length: 42\r\n\r\n",
          method: .post, target: "/upload", path: "/upload", query: "", host: "api.example:8443",
          framing: .contentLength(42)),
    .init(name: "Content-Length 0", raw: "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
          method: .put, target: "/x", path: "/x", query: "", host: "a", framing: .contentLength(0)),
    .init(name: "leading zeros in Content-Length", raw: "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n",
          method: .put, target: "/x", path: "/x", query: "", host: "a", framing: .contentLength(7)),
    .init(name: "largest Content-Length",
          raw: "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n",
          method: .put, target: "/x", path: "/x", query: "", host: "a", framing: .contentLength(UInt64.max)),
    .init(name: "two identical Content-Length fields",
          raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n",
          method: .post, target: "/", path: "/", query: "", host: "a", framing: .contentLength(7)),
    .init(name: "identical Content-Length list", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7 ,7,  7\r\n\r\n",
          method: .post, target: "/", path: "/", query: "", host: "a", framing: .contentLength(7)),
    .init(name: "chunked", raw: "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
          method: .post, target: "/c", path: "/c", query: "", host: "a", framing: .chunked),
    .init(name: "chunked, any case, empty list elements ignored",
          raw: "POST /c HTTP/1.1\r\nHost: a\r\ntransfer-encoding: , CHUNKED ,\r\n\r\n",
          method: .post, target: "/c", path: "/c", query: "", host: "a", framing: .chunked),
    .init(name: "HTTP/1.0 without keep-alive", raw: "GET /old HTTP/1.0\r\n\r\n",
          method: .get, target: "/old", path: "/old", query: "", host: "", version: .http10, keepAlive: false),
    .init(name: "HTTP/1.0 with keep-alive", raw: "GET /old HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: h\r\n\r\n",
          method: .get, target: "/old", path: "/old", query: "", host: "h", version: .http10, keepAlive: true),
    .init(name: "HTTP/1.0 keep-alive and close", raw: "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
          method: .get, target: "/", path: "/", query: "", host: "", version: .http10, keepAlive: false),
    .init(name: "HTTP/1.1 Connection: close", raw: "GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n",
          method: .get, target: "/", path: "/", query: "", host: "a", keepAlive: false),
    .init(name: "HTTP/1.1 close in a second Connection field",
          raw: "GET / HTTP/1.1\r\nConnection: x-a\r\nHost: a\r\nConnection: ,close\r\nX-A: 1\r\n\r\n",
          method: .get, target: "/", path: "/", query: "", host: "a", keepAlive: false),
    .init(name: "absolute-form with port, path and query",
          raw: "GET http://example.com:8080/a/b?c=d HTTP/1.1\r\nHost: other.example\r\n\r\n",
          method: .get, target: "http://example.com:8080/a/b?c=d", path: "/a/b", query: "c=d",
          host: "example.com:8080"),
    .init(name: "absolute-form without path", raw: "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
          method: .get, target: "http://example.com", path: "", query: "", host: "example.com"),
    .init(name: "absolute-form https, IPv6, query only", raw: "HEAD HTTPS://[::1]:443?q HTTP/1.1\r\nHost: x\r\n\r\n",
          method: .head, target: "HTTPS://[::1]:443?q", path: "", query: "q", host: "[::1]:443"),
    .init(name: "absolute-form in HTTP/1.0 without Host", raw: "GET http://10.0.0.1/x HTTP/1.0\r\n\r\n",
          method: .get, target: "http://10.0.0.1/x", path: "/x", query: "", host: "10.0.0.1",
          version: .http10, keepAlive: false),
    .init(name: "OPTIONS *", raw: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
          method: .options, target: "*", path: "*", query: "", host: "a"),
    .init(name: "Expect: 100-continue", raw: "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
          method: .put, target: "/f", path: "/f", query: "", host: "a", framing: .contentLength(3), expectContinue: true),
    .init(name: "other Expect value", raw: "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n",
          method: .put, target: "/f", path: "/f", query: "", host: "a"),
    .init(name: "100-continue ignored in HTTP/1.0", raw: "PUT /f HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
          method: .put, target: "/f", path: "/f", query: "", host: "", version: .http10, keepAlive: false),
    .init(name: "leading empty lines", raw: "\r\n\r\n\r\n\r\nDELETE /r/1 HTTP/1.1\r\nHost: a\r\n\r\n",
          method: .delete, target: "/r/1", path: "/r/1", query: "", host: "a"),
    .init(name: "OWS around values, empty value", raw: "GET / HTTP/1.1\r\nHost: \t a.example \t \r\nX-Empty:\r\nX-Sp:   \r\n\r\n",
          method: .get, target: "/", path: "/", query: "", host: "a.example"),
    .init(name: "unknown method", raw: "PURGE /cache HTTP/1.1\r\nHost: a\r\n\r\n",
          method: .other, target: "/cache", path: "/cache", query: "", host: "a"),
    .init(name: "target with odd but visible characters", raw: "GET /a|b{c}%20\"d\"?x=[1] HTTP/1.1\r\nHost: a\r\n\r\n",
          method: .get, target: "/a|b{c}%20\"d\"?x=[1]", path: "/a|b{c}%20\"d\"", query: "x=[1]", host: "a"),
    .init(name: "Host IPv4 with port and percent escape", raw: "GET / HTTP/1.1\r\nHost: %41b.c:80\r\n\r\n",
          method: .get, target: "/", path: "/", query: "", host: "%41b.c:80"),
]

@Test("valid requests parse with exact results", arguments: validRequests)
func validRequest(_ c: ValidRequestCase) {
    let bytes = b(c.raw)
    let (status, head) = parse(bytes)
    #expect(status == .complete)
    #expect(head.headLength == bytes.count)
    #expect(head.method == c.method)
    #expect(str(bytes, head.target) == c.target)
    #expect(str(bytes, head.path) == c.path)
    #expect(str(bytes, head.query) == c.query)
    #expect(str(bytes, head.host) == c.host)
    #expect(head.version == c.version)
    #expect(head.framing == c.framing)
    #expect(head.keepAlive == c.keepAlive)
    #expect(head.expectContinue == c.expectContinue)
}

@Test("every proper prefix of a valid request is incomplete", arguments: validRequests)
func incrementalRequest(_ c: ValidRequestCase) {
    let bytes = b(c.raw)
    var head = RequestHead()
    for n in 0..<bytes.count {
        let status = bytes[0..<n].withUnsafeBytes { RequestParser.parse($0, into: &head, limits: ParserLimits()) }
        #expect(status == .incomplete, "prefix of \(n) bytes")
    }
    let status = bytes.withUnsafeBytes { RequestParser.parse($0, into: &head, limits: ParserLimits()) }
    #expect(status == .complete)
    #expect(head.headLength == bytes.count)
}

@Test("method tokens map to the enum (case-sensitively)", arguments: [
    ("GET", HTTPMethod.get), ("HEAD", .head), ("POST", .post), ("PUT", .put), ("DELETE", .delete),
    ("OPTIONS", .options), ("PATCH", .patch), ("TRACE", .trace), ("get", .other), ("Post", .other),
    ("M-SEARCH", .other), ("X", .other),
])
func methodMapping(_ token: String, _ method: HTTPMethod) {
    let bytes = b("\(token) /m HTTP/1.1\r\nHost: a\r\n\r\n")
    let (status, head) = parse(bytes)
    #expect(status == .complete)
    #expect(head.method == method)
    #expect(str(bytes, head.methodSpan) == token)
}

@Test("pipelined heads: the first headLength is exact and the second parses from there")
func pipelined() {
    let first = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
    let bytes = b(first + "abc" + "GET /b?z HTTP/1.1\r\nHost: b\r\n\r\n" + "GET /c")
    let (status, head) = parse(bytes)
    #expect(status == .complete)
    #expect(head.headLength == first.utf8.count)
    #expect(head.framing == .contentLength(3))
    let rest = Array(bytes[(head.headLength + 3)...])
    let (status2, head2) = parse(rest)
    #expect(status2 == .complete)
    #expect(str(rest, head2.path) == "/b")
    #expect(str(rest, head2.query) == "z")
    #expect(str(rest, head2.host) == "b")
    #expect(head2.headLength == "GET /b?z HTTP/1.1\r\nHost: b\r\n\r\n".utf8.count)
    let (status3, _) = parse(Array(rest[head2.headLength...]))
    #expect(status3 == .incomplete)
}

@Test("a reused head is fully reset")
func reusedHead() {
    var head = RequestHead()
    let first = b("POST http://x/y?q HTTP/1.1\r\nHost: a\r\nConnection: close\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
    #expect(first.withUnsafeBytes { RequestParser.parse($0, into: &head, limits: ParserLimits()) } == .complete)
    #expect(head.framing == .chunked && !head.keepAlive && head.expectContinue)
    let second = b("GET / HTTP/1.0\r\n\r\n")
    #expect(second.withUnsafeBytes { RequestParser.parse($0, into: &head, limits: ParserLimits()) } == .complete)
    #expect(head.method == .get)
    #expect(head.fields.isEmpty)
    #expect(head.framing == .none)
    #expect(head.expectContinue == false)
    #expect(head.hostIndex == -1)
    #expect(head.host == .empty)
    #expect(head.query == ByteSpan(start: 5, count: 0))
    #expect(head.headLength == second.count)
}

// MARK: Field spans and flags

@Test("field spans and flags are exact")
func fieldSpansAndFlags() {
    let raw = "GET / HTTP/1.1\r\n"
        + "Host: h.example\r\n"
        + "Connection: keep-alive\r\n"
        + "Keep-Alive: timeout=5\r\n"
        + "TE: trailers\r\n"
        + "Content-Length: 0\r\n"
        + "Expect: 100-continue\r\n"
        + "X-Forwarded-For: 1.2.3.4\r\n"
        + "x-forwarded-proto: https\r\n"
        + "X-FORWARDED-HOST: h\r\n"
        + "Cookie: a=b; c=d\r\n"
        + "Upgrade: websocket\r\n"
        + "Proxy-Connection: x\r\n"
        + "Trailer: X-Sum\r\n"
        + "Accept:  */*  \r\n"
        + "X-Obs: caf\u{e9}\r\n"
        + "\r\n"
    let bytes = b(raw)
    let (status, head) = parse(bytes)
    #expect(status == .complete)
    let expected: [(String, String, FieldFlags)] = [
        ("Host", "h.example", .host),
        ("Connection", "keep-alive", .hopByHop),
        ("Keep-Alive", "timeout=5", .hopByHop),
        ("TE", "trailers", .hopByHop),
        ("Content-Length", "0", .contentLength),
        ("Expect", "100-continue", .expect),
        ("X-Forwarded-For", "1.2.3.4", .xForwardedFor),
        ("x-forwarded-proto", "https", .xForwardedOther),
        ("X-FORWARDED-HOST", "h", .xForwardedOther),
        ("Cookie", "a=b; c=d", .cookie),
        ("Upgrade", "websocket", .hopByHop),
        ("Proxy-Connection", "x", .hopByHop),
        ("Trailer", "X-Sum", .hopByHop),
        ("Accept", "*/*", []),
        ("X-Obs", "caf\u{e9}", []),
    ]
    #expect(head.fields.count == expected.count)
    for (field, want) in zip(head.fields, expected) {
        #expect(str(bytes, field.name) == want.0)
        #expect(str(bytes, field.value) == want.1)
        #expect(field.flags == want.2, "flags of \(want.0)")
    }
    #expect(head.hostIndex == 0)
    #expect(head.host == head.fields[0].value)
    #expect(head.expectContinue)
    // Spans are offsets into the buffer: check one by hand.
    #expect(head.fields[0].name == ByteSpan(start: 16, count: 4))
    #expect(head.fields[0].value == ByteSpan(start: 22, count: 9))
}

@Test("fields named in Connection are marked hop-by-hop (not Host)")
func connectionListedFields() {
    let raw = "GET / HTTP/1.1\r\n"
        + "X-Before: 0\r\n"
        + "Host: a\r\n"
        + "Connection: x-a , X-Before,\tx-B\r\n"
        + "Connection: host, Cookie\r\n"
        + "X-A: 1\r\n"
        + "x-b: 2\r\n"
        + "X-C: 3\r\n"
        + "cookie: k=v\r\n"
        + "X-A: again\r\n"
        + "\r\n"
    let bytes = b(raw)
    let (status, head) = parse(bytes)
    #expect(status == .complete)
    let flags = head.fields.map { (str(bytes, $0.name), $0.flags) }
    let want: [(String, FieldFlags)] = [
        ("X-Before", .hopByHop), ("Host", .host), ("Connection", .hopByHop), ("Connection", .hopByHop),
        ("X-A", .hopByHop), ("x-b", .hopByHop), ("X-C", []), ("cookie", [.cookie, .hopByHop]),
        ("X-A", .hopByHop),
    ]
    #expect(flags.count == want.count)
    for (got, w) in zip(flags, want) {
        #expect(got.0 == w.0)
        #expect(got.1 == w.1, "flags of \(w.0)")
    }
    #expect(head.keepAlive)
}

// MARK: Limits at their boundaries

@Test("request line of exactly maxRequestLine bytes passes, one more is 414")
func requestLineBoundary() {
    let line = "GET /" + String(repeating: "a", count: 20) + " HTTP/1.1" // 34 bytes
    let raw = b(line + "\r\nHost: a\r\n\r\n")
    #expect(parse(raw, limits: limits(requestLine: 34)).0 == .complete)
    #expect(parse(raw, limits: limits(requestLine: 33)).0 == .invalid(.uriTooLong))
    // Leading empty lines do not count toward the request line.
    #expect(parse(b("\r\n") + raw, limits: limits(requestLine: 34)).0 == .complete)
}

@Test("head of exactly maxHeadBytes passes, one byte over is 431")
func headBoundary() {
    let raw = b("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: 0123456789\r\n\r\n")
    #expect(parse(raw, limits: limits(head: raw.count)).0 == .complete)
    #expect(parse(raw, limits: limits(head: raw.count - 1)).0 == .invalid(.headTooLarge))
    // Still incomplete while under the limit.
    #expect(parse(Array(raw.dropLast()), limits: limits(head: raw.count)).0 == .incomplete)
}

@Test("exactly maxFields fields pass, one more is 431")
func fieldCountBoundary() {
    let raw = b("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n")
    #expect(parse(raw, limits: limits(fields: 3)).0 == .complete)
    let (status, _) = parse(raw, limits: limits(fields: 2))
    #expect(status == .invalid(.tooManyFields))
    #expect(HTTPParseError.tooManyFields.status == 431)
}

// MARK: Malformed requests

/// A malformed (or over-limit) request and the error it must produce.
struct BadRequestCase: Sendable, CustomTestStringConvertible {
    var name: String
    var bytes: [UInt8]
    var error: HTTPParseError
    var status: Int
    var limits = ParserLimits()
    var testDescription: String { name }

    init(_ name: String, _ raw: String, _ error: HTTPParseError, _ status: Int, limits: ParserLimits = ParserLimits()) {
        self.name = name
        self.bytes = Array(raw.utf8)
        self.error = error
        self.status = status
        self.limits = limits
    }

    init(_ name: String, bytes: [UInt8], _ error: HTTPParseError, _ status: Int) {
        self.name = name
        self.bytes = bytes
        self.error = error
        self.status = status
    }
}

private let get = "GET / HTTP/1.1\r\nHost: a\r\n"
private let post = "POST / HTTP/1.1\r\nHost: a\r\n"

private let badRequests: [BadRequestCase] = [
    // Framing
    .init("Content-Length and Transfer-Encoding", post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
          .bothContentLengthAndTransferEncoding, 400),
    .init("Transfer-Encoding then Content-Length", post + "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
          .bothContentLengthAndTransferEncoding, 400),
    .init("two differing Content-Length fields", post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
          .conflictingContentLength, 400),
    .init("differing Content-Length list", post + "Content-Length: 5, 6\r\n\r\n", .conflictingContentLength, 400),
    .init("Content-Length +5", post + "Content-Length: +5\r\n\r\n", .badContentLength, 400),
    .init("Content-Length -5", post + "Content-Length: -5\r\n\r\n", .badContentLength, 400),
    .init("Content-Length 0x10", post + "Content-Length: 0x10\r\n\r\n", .badContentLength, 400),
    .init("Content-Length ' 5 5'", post + "Content-Length:  5 5\r\n\r\n", .badContentLength, 400),
    .init("Content-Length overflow", post + "Content-Length: 18446744073709551616\r\n\r\n", .badContentLength, 400),
    .init("Content-Length empty", post + "Content-Length:\r\n\r\n", .badContentLength, 400),
    .init("Content-Length empty list element", post + "Content-Length: 5,\r\n\r\n", .badContentLength, 400),
    .init("Content-Length 1e3", post + "Content-Length: 1e3\r\n\r\n", .badContentLength, 400),
    .init("Transfer-Encoding gzip, chunked", post + "Transfer-Encoding: gzip, chunked\r\n\r\n",
          .unsupportedTransferEncoding, 501),
    .init("Transfer-Encoding chunked, chunked", post + "Transfer-Encoding: chunked, chunked\r\n\r\n",
          .unsupportedTransferEncoding, 501),
    .init("chunked in two Transfer-Encoding fields", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
          .unsupportedTransferEncoding, 501),
    .init("Transfer-Encoding identity", post + "Transfer-Encoding: identity\r\n\r\n", .transferEncodingNotChunked, 400),
    .init("Transfer-Encoding empty", post + "Transfer-Encoding: \r\n\r\n", .transferEncodingNotChunked, 400),
    .init("Transfer-Encoding chunked with a parameter", post + "Transfer-Encoding: chunked;q=1\r\n\r\n",
          .transferEncodingNotChunked, 400),
    .init("Transfer-Encoding chunked then gzip", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
          .transferEncodingNotChunked, 400),
    .init("Transfer-Encoding xchunked", post + "Transfer-Encoding: xchunked\r\n\r\n", .transferEncodingNotChunked, 400),
    .init("Transfer-Encoding gzip", post + "Transfer-Encoding: gzip\r\n\r\n", .transferEncodingNotChunked, 400),
    .init("Transfer-Encoding chunked, gzip", post + "Transfer-Encoding: chunked, gzip\r\n\r\n", .transferEncodingNotChunked, 400),
    .init("Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
          .transferEncodingNotChunked, 400),
    // Field syntax
    .init("obs-fold", get + "X-A: 1\r\n  continued\r\n\r\n", .obsFold, 400),
    .init("obs-fold with HTAB", get + "X-A: 1\r\n\tcontinued\r\n\r\n", .obsFold, 400),
    .init("whitespace before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", .obsFold, 400),
    .init("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", .spaceBeforeColon, 400),
    .init("tab before colon", get + "Content-Length\t: 5\r\n\r\n", .spaceBeforeColon, 400),
    .init("NUL in value", bytes: b(get + "X-A: a") + [0] + b("b\r\n\r\n"), .badFieldValue, 400),
    .init("CR in value", get + "X-A: a\rb\r\n\r\n", .badFieldValue, 400),
    .init("bare LF ends a field line", get + "X-A: a\nX-B: b\r\n\r\n", .badFieldValue, 400),
    .init("DEL in value", bytes: b(get + "X-A: a") + [0x7F] + b("\r\n\r\n"), .badFieldValue, 400),
    .init("control character in value", bytes: b(get + "X-A: a") + [0x01] + b("\r\n\r\n"), .badFieldValue, 400),
    .init("ESC in value", bytes: b(get + "X-A: ") + [0x1B] + b("[0m\r\n\r\n"), .badFieldValue, 400),
    .init("bare LF as the final empty line", get + "X-A: a\r\n\n", .badFieldValue, 400),
    .init("bare CR as the final empty line", get + "\rX", .badFieldValue, 400),
    .init("non-token name", get + "X(A): 1\r\n\r\n", .badFieldName, 400),
    .init("space inside name", get + "X A: 1\r\n\r\n", .badFieldName, 400),
    .init("empty name", get + ": value\r\n\r\n", .badFieldName, 400),
    .init("line without colon", get + "Just-A-Name\r\n\r\n", .badFieldName, 400),
    .init("non-ASCII in name", bytes: b(get + "X-\u{e9}: 1\r\n\r\n"), .badFieldName, 400),
    .init("Connection element not a token", get + "Connection: close;x\r\n\r\n", .badFieldValue, 400),
    // Line endings and the request line
    .init("bare LF line endings", "GET / HTTP/1.1\nHost: a\n\n", .badRequestLine, 400),
    .init("bare CR ends the request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", .badRequestLine, 400),
    .init("bare LF as a leading empty line", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("bare CR as a leading empty line", "\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("too many leading empty lines", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("two spaces after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("two spaces after target", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("tab as separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("leading space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("non-token method", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("missing version", "GET /\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("lowercase http/1.1", "GET / http/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("version HTTP/1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("version HTTP/1", "GET / HTTP/1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("version HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", .unsupportedVersion, 505),
    .init("version HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", .unsupportedVersion, 505),
    .init("version HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", .unsupportedVersion, 505),
    .init("CONNECT (authority-form)", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
          .badRequestLine, 400),
    // Request-target
    .init("control character in target", "GET /a\u{01}b HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("DEL in target", "GET /a\u{7F} HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("NUL in target", bytes: b("GET /a") + [0] + b(" HTTP/1.1\r\nHost: a\r\n\r\n"), .badRequestLine, 400),
    .init("non-ASCII in target", "GET /caf\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("fragment in target", "GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("relative target", "GET index.html HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("asterisk for GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("asterisk with more", "OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("unknown scheme", "GET ftp://a/b HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("userinfo in absolute-form", "GET http://user:pw@a/b HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    .init("empty authority", "GET http:///b HTTP/1.1\r\nHost: a\r\n\r\n", .badRequestLine, 400),
    // Host
    .init("missing Host in HTTP/1.1", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", .missingHost, 400),
    .init("missing Host with absolute-form", "GET http://a/ HTTP/1.1\r\n\r\n", .missingHost, 400),
    .init("two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", .multipleHost, 400),
    .init("two Host fields in HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", .multipleHost, 400),
    .init("empty Host", "GET / HTTP/1.1\r\nHost: \r\n\r\n", .badFieldValue, 400),
    .init("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", .badFieldValue, 400),
    .init("Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", .badFieldValue, 400),
    .init("Host with empty port", "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", .badFieldValue, 400),
    .init("Host with long port", "GET / HTTP/1.1\r\nHost: a:123456\r\n\r\n", .badFieldValue, 400),
    .init("Host port not digits", "GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", .badFieldValue, 400),
    .init("Host only a port", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", .badFieldValue, 400),
    .init("Host unclosed IPv6", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", .badFieldValue, 400),
    .init("Host bad percent escape", "GET / HTTP/1.1\r\nHost: a%2\r\n\r\n", .badFieldValue, 400),
    .init("Host with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", .badFieldValue, 400),
    // Limits
    .init("over-long request line", "GET /" + String(repeating: "a", count: 100) + " HTTP/1.1\r\nHost: a\r\n\r\n",
          .uriTooLong, 414, limits: limits(requestLine: 64)),
    .init("over-long request line while incomplete", "GET /" + String(repeating: "a", count: 100),
          .uriTooLong, 414, limits: limits(requestLine: 64)),
    .init("over-large head", get + "X-Pad: " + String(repeating: "p", count: 200) + "\r\n\r\n",
          .headTooLarge, 431, limits: limits(head: 128)),
    .init("over-large head while incomplete", get + "X-Pad: " + String(repeating: "p", count: 200),
          .headTooLarge, 431, limits: limits(head: 128)),
    .init("too many fields", get + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", .tooManyFields, 431, limits: limits(fields: 3)),
]

@Test("malformed requests are rejected with the exact error and status", arguments: badRequests)
func badRequest(_ c: BadRequestCase) {
    let (status, _) = parse(c.bytes, limits: c.limits)
    #expect(status == .invalid(c.error))
    #expect(c.error.status == c.status)
}

@Test("an error stays an error as more bytes arrive (no prefix completes)", arguments: badRequests)
func badRequestPrefixes(_ c: BadRequestCase) {
    var head = RequestHead()
    for n in 0...c.bytes.count {
        let status = c.bytes[0..<n].withUnsafeBytes { RequestParser.parse($0, into: &head, limits: c.limits) }
        #expect(status != .complete, "prefix of \(n) bytes")
        if case .invalid(let error) = status { #expect(error == c.error, "prefix of \(n) bytes") }
    }
}

// MARK: Every byte position (the scanners read eight bytes at a time)

@Test("a forbidden byte anywhere in a long field value is rejected", arguments: [0x00, 0x01, 0x0A, 0x0D, 0x1F, 0x7F] as [UInt8])
func forbiddenValueByteAtEveryPosition(_ bad: UInt8) {
    for position in 0..<40 {
        var value = [UInt8](repeating: UInt8(ascii: "v"), count: 40)
        value[position] = bad
        let bytes = b(get + "X-Long: a") + value + b("z\r\n\r\n")
        #expect(parse(bytes).0 == .invalid(.badFieldValue), "byte \(bad) at \(position)")
    }
}

@Test("obs-text, HTAB and SP anywhere in a long field value are kept; OWS at the ends is trimmed")
func allowedValueBytesAtEveryPosition() {
    for allowed in [0x80, 0xFF, 0x09, 0x20, 0x7E, 0x21] as [UInt8] {
        for position in 0..<40 {
            var value = [UInt8](repeating: UInt8(ascii: "v"), count: 40)
            value[position] = allowed
            let bytes = b(get + "X-Long:\t") + value + b(" \t \r\n\r\n")
            let (status, head) = parse(bytes)
            #expect(status == .complete, "byte \(allowed) at \(position)")
            if status == .complete {
                let isOWS = { (c: UInt8) in c == 0x20 || c == 0x09 }
                let trimmed = Array(value.drop(while: isOWS).reversed().drop(while: isOWS).reversed())
                #expect(Array(bytes[head.fields[1].value.range]) == trimmed, "byte \(allowed) at \(position)")
            }
        }
    }
}

@Test("a forbidden byte anywhere in a long target is rejected", arguments: [0x00, 0x09, 0x0A, 0x0D, 0x1F, 0x7F, 0x80, 0xFF, 0x23] as [UInt8])
func forbiddenTargetByteAtEveryPosition(_ bad: UInt8) {
    for position in 1..<40 {
        var target = [UInt8](repeating: UInt8(ascii: "t"), count: 40)
        target[0] = UInt8(ascii: "/")
        target[position] = bad
        let bytes = b("GET ") + target + b(" HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(parse(bytes).0 == .invalid(.badRequestLine), "byte \(bad) at \(position)")
    }
}

@Test("the first ? splits path and query wherever it is")
func queryMarkAtEveryPosition() {
    for position in 1..<40 {
        var target = [UInt8](repeating: UInt8(ascii: "t"), count: 40)
        target[0] = UInt8(ascii: "/")
        target[position] = UInt8(ascii: "?")
        if position + 5 < 40 { target[position + 5] = UInt8(ascii: "?") }
        let bytes = b("GET ") + target + b(" HTTP/1.1\r\nHost: a\r\n\r\n")
        let (status, head) = parse(bytes)
        #expect(status == .complete)
        #expect(head.path == ByteSpan(start: 4, count: position), "? at \(position)")
        #expect(head.query == ByteSpan(start: 4 + position + 1, count: 40 - position - 1), "? at \(position)")
    }
}

// MARK: Mutated inputs (fixed seed)

@Test("mutated requests never complete with spans outside the head")
func mutatedRequests() {
    var seed: UInt64 = 0x5EED
    func next() -> Int {
        seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Int(truncatingIfNeeded: seed >> 33)
    }
    let alphabet = b(" \t\r\n:,;/?#%@[]\"\\0aZ") + [0x00, 0x7F, 0x80, 0xFF]
    var completed = 0
    for c in validRequests {
        let original = b(c.raw)
        for _ in 0..<200 {
            var bytes = original
            for _ in 0..<(1 + next() % 3) {
                let i = next() % bytes.count
                switch next() % 3 {
                case 0: bytes[i] = alphabet[next() % alphabet.count]
                case 1: bytes.insert(alphabet[next() % alphabet.count], at: i)
                default: bytes.remove(at: i)
                }
            }
            let (status, head) = parse(bytes)
            guard status == .complete else { continue }
            completed += 1
            #expect(head.headLength <= bytes.count)
            var spans = [head.methodSpan, head.target, head.path, head.query, head.host]
            for f in head.fields { spans += [f.name, f.value] }
            for s in spans {
                #expect(s.start >= 0 && s.count >= 0 && Int(s.start) + Int(s.count) <= head.headLength)
            }
            // A completed head re-parses to the same result from exactly its own bytes.
            let (again, headAgain) = parse(Array(bytes[..<head.headLength]))
            #expect(again == .complete)
            #expect(headAgain.fields == head.fields && headAgain.framing == head.framing)
        }
    }
    #expect(completed > 0)
}

// A lone `Connection: keep-alive` is handled while parsing; with a second Connection field (in
// either order) every token is applied as before.
@Test("keep-alive next to another Connection field still marks the fields it names", arguments: [
    "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: X-A\r\nX-A: 1\r\nHost: h\r\n\r\n",
    "GET / HTTP/1.0\r\nConnection: X-A\r\nConnection: keep-alive\r\nX-A: 1\r\nHost: h\r\n\r\n",
])
func requestKeepAliveWithAnotherConnectionField(_ text: String) {
    let (status, head) = parse(b(text))
    #expect(status == .complete)
    #expect(head.keepAlive)
    #expect(head.fields.map(\.flags) == [.hopByHop, .hopByHop, .hopByHop, .host])
}
