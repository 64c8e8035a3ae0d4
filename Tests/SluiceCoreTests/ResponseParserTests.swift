import Testing
import SluiceCore

// MARK: Helpers

private func b(_ s: String) -> [UInt8] { Array(s.utf8) }

private func parse(_ bytes: [UInt8], method: HTTPMethod = .get,
                   limits: ParserLimits = ParserLimits()) -> (ParseStatus, ResponseHead) {
    var head = ResponseHead()
    let status = bytes.withUnsafeBytes {
        ResponseParser.parse($0, requestMethod: method, into: &head, limits: limits)
    }
    return (status, head)
}

private func str(_ bytes: [UInt8], _ span: ByteSpan) -> String {
    String(decoding: bytes[span.range], as: UTF8.self)
}

// MARK: Valid responses

/// A well-formed response head and everything the parser must report about it.
struct ValidResponseCase: Sendable, CustomTestStringConvertible {
    var name: String
    var raw: String
    var method: HTTPMethod = .get
    var status: Int
    var reason: String
    var version: HTTPVersion = .http11
    var framing: BodyFraming
    var keepAlive: Bool
    var testDescription: String { name }
}

private let validResponses: [ValidResponseCase] = [
    .init(name: "200 with Content-Length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n",
          status: 200, reason: "OK", framing: .contentLength(5), keepAlive: true),
    .init(name: "chunked", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
          status: 200, reason: "OK", framing: .chunked, keepAlive: true),
    .init(name: "until close", raw: "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",
          status: 200, reason: "OK", framing: .untilClose, keepAlive: false),
    .init(name: "reason with spaces and obs-text", raw: "HTTP/1.1 404 Not \tFound h\u{e9}re\r\nContent-Length: 0\r\n\r\n",
          status: 404, reason: "Not \tFound h\u{e9}re", framing: .contentLength(0), keepAlive: true),
    .init(name: "empty reason after SP", raw: "HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n",
          status: 200, reason: "", framing: .contentLength(1), keepAlive: true),
    .init(name: "no SP after status", raw: "HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n",
          status: 200, reason: "", framing: .contentLength(1), keepAlive: true),
    .init(name: "204 ignores Content-Length", raw: "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
          status: 204, reason: "No Content", framing: .none, keepAlive: true),
    .init(name: "304 ignores Transfer-Encoding", raw: "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: gzip\r\n\r\n",
          status: 304, reason: "Not Modified", framing: .none, keepAlive: true),
    .init(name: "100 Continue", raw: "HTTP/1.1 100 Continue\r\n\r\n",
          status: 100, reason: "Continue", framing: .none, keepAlive: true),
    .init(name: "103 Early Hints", raw: "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
          status: 103, reason: "Early Hints", framing: .none, keepAlive: true),
    .init(name: "reply to HEAD with Content-Length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
          method: .head, status: 200, reason: "OK", framing: .none, keepAlive: true),
    .init(name: "reply to HEAD with CL and TE", raw: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
          method: .head, status: 200, reason: "OK", framing: .none, keepAlive: true),
    .init(name: "reply to HEAD without framing keeps the connection", raw: "HTTP/1.1 200 OK\r\n\r\n",
          method: .head, status: 200, reason: "OK", framing: .none, keepAlive: true),
    .init(name: "Connection: close", raw: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
          status: 200, reason: "OK", framing: .contentLength(2), keepAlive: false),
    .init(name: "HTTP/1.0 defaults to close", raw: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
          status: 200, reason: "OK", version: .http10, framing: .contentLength(2), keepAlive: false),
    .init(name: "HTTP/1.0 with keep-alive", raw: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n",
          status: 200, reason: "OK", version: .http10, framing: .contentLength(2), keepAlive: true),
    .init(name: "HTTP/1.0 keep-alive but until close", raw: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
          status: 200, reason: "OK", version: .http10, framing: .untilClose, keepAlive: false),
    .init(name: "identical Content-Length values", raw: "HTTP/1.1 500 Oops\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n",
          status: 500, reason: "Oops", framing: .contentLength(3), keepAlive: true),
    .init(name: "599 is the highest status", raw: "HTTP/1.1 599 Custom\r\nContent-Length: 0\r\n\r\n",
          status: 599, reason: "Custom", framing: .contentLength(0), keepAlive: true),
]

@Test("valid responses parse with exact results", arguments: validResponses)
func validResponse(_ c: ValidResponseCase) {
    let bytes = b(c.raw)
    let (status, head) = parse(bytes, method: c.method)
    #expect(status == .complete)
    #expect(head.headLength == bytes.count)
    #expect(head.status == c.status)
    #expect(str(bytes, head.reason) == c.reason)
    #expect(head.version == c.version)
    #expect(head.framing == c.framing)
    #expect(head.keepAlive == c.keepAlive)
}

@Test("every proper prefix of a valid response is incomplete", arguments: validResponses)
func incrementalResponse(_ c: ValidResponseCase) {
    let bytes = b(c.raw)
    var head = ResponseHead()
    for n in 0..<bytes.count {
        let status = bytes[0..<n].withUnsafeBytes {
            ResponseParser.parse($0, requestMethod: c.method, into: &head, limits: ParserLimits())
        }
        #expect(status == .incomplete, "prefix of \(n) bytes")
    }
}

@Test("100 Continue then 200 are parsed separately from one buffer")
func continueThenFinal() {
    let interim = "HTTP/1.1 100 Continue\r\n\r\n"
    let final = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: a=b\r\n\r\n"
    let bytes = b(interim + final + "hi")
    let (s1, h1) = parse(bytes, method: .post)
    #expect(s1 == .complete)
    #expect(h1.status == 100)
    #expect(h1.framing == .none)
    #expect(h1.headLength == interim.utf8.count)
    let rest = Array(bytes[h1.headLength...])
    let (s2, h2) = parse(rest, method: .post)
    #expect(s2 == .complete)
    #expect(h2.status == 200)
    #expect(h2.framing == .contentLength(2))
    #expect(h2.headLength == final.utf8.count)
    #expect(h2.fields.count == 2)
    #expect(str(rest, h2.fields[0].name) == "Content-Length")
    #expect(h2.fields[0].flags == .contentLength)
    #expect(str(rest, h2.fields[1].value) == "a=b")
    #expect(String(decoding: rest[h2.headLength...], as: UTF8.self) == "hi")
}

@Test("response fields named in Connection are hop-by-hop")
func responseConnectionFields() {
    let bytes = b("HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n")
    let (status, head) = parse(bytes)
    #expect(status == .complete)
    #expect(head.fields.map(\.flags) == [.hopByHop, .hopByHop, .hopByHop, .contentLength])
}

// A lone `Connection: keep-alive` is handled while parsing; with a second Connection field (in
// either order) every token is applied as before.
@Test("keep-alive next to another Connection field still marks the fields it names", arguments: [
    "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nConnection: X-A\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.0 200 OK\r\nConnection: X-A\r\nConnection: keep-alive\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n",
])
func keepAliveWithAnotherConnectionField(_ text: String) {
    let (status, head) = parse(b(text))
    #expect(status == .complete)
    #expect(head.keepAlive)
    #expect(head.fields.map(\.flags) == [.hopByHop, .hopByHop, .hopByHop, .contentLength])
}

@Test("a lone keep-alive keeps an HTTP/1.0 response's connection and marks nothing else")
func loneKeepAlive() {
    let (status, head) = parse(b("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n"))
    #expect(status == .complete)
    #expect(head.keepAlive)
    #expect(head.fields.map(\.flags) == [.hopByHop, [], .contentLength])
}

@Test("a reused response head is fully reset")
func reusedResponseHead() {
    var head = ResponseHead()
    let first = b("HTTP/1.0 404 Gone\r\nX: 1\r\n\r\n")
    _ = first.withUnsafeBytes { ResponseParser.parse($0, requestMethod: .get, into: &head, limits: ParserLimits()) }
    #expect(head.framing == .untilClose && !head.keepAlive)
    let second = b("HTTP/1.1 204\r\n\r\n")
    let status = second.withUnsafeBytes { ResponseParser.parse($0, requestMethod: .get, into: &head, limits: ParserLimits()) }
    #expect(status == .complete)
    #expect(head.version == .http11 && head.status == 204 && head.keepAlive && head.fields.isEmpty)
    #expect(head.reason == ByteSpan(start: 12, count: 0))
}

// MARK: Malformed responses

/// A malformed response head and the error it must produce.
struct BadResponseCase: Sendable, CustomTestStringConvertible {
    var name: String
    var bytes: [UInt8]
    var error: HTTPParseError
    var method: HTTPMethod = .get
    var limits = ParserLimits()
    var testDescription: String { name }

    init(_ name: String, _ raw: String, _ error: HTTPParseError, method: HTTPMethod = .get,
         limits: ParserLimits = ParserLimits()) {
        self.name = name
        self.bytes = Array(raw.utf8)
        self.error = error
        self.method = method
        self.limits = limits
    }

    init(_ name: String, bytes: [UInt8], _ error: HTTPParseError) {
        self.name = name
        self.bytes = bytes
        self.error = error
    }
}

private let smallHead: ParserLimits = { var l = ParserLimits(); l.maxHeadBytes = 64; return l }()
private let twoFields: ParserLimits = { var l = ParserLimits(); l.maxFields = 2; return l }()

private let badResponses: [BadResponseCase] = [
    .init("two-digit status", "HTTP/1.1 20 OK\r\n\r\n", .badStatusLine),
    .init("four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", .badStatusLine),
    .init("status 099", "HTTP/1.1 099 Low\r\n\r\n", .badStatusLine),
    .init("status 600", "HTTP/1.1 600 High\r\n\r\n", .badStatusLine),
    .init("status 999", "HTTP/1.1 999 High\r\n\r\n", .badStatusLine),
    .init("letters in status", "HTTP/1.1 2O0 OK\r\n\r\n", .badStatusLine),
    .init("lowercase version", "http/1.1 200 OK\r\n\r\n", .badStatusLine),
    .init("two spaces before status", "HTTP/1.1  200 OK\r\n\r\n", .badStatusLine),
    .init("tab before status", "HTTP/1.1\t200 OK\r\n\r\n", .badStatusLine),
    .init("not HTTP", "ICY 200 OK\r\n\r\n", .badStatusLine),
    .init("leading empty line", "\r\nHTTP/1.1 200 OK\r\n\r\n", .badStatusLine),
    .init("bare LF after the status line", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", .badStatusLine),
    .init("bare CR in the reason", "HTTP/1.1 200 O\rK\r\n\r\n", .badStatusLine),
    .init("NUL in the reason", bytes: b("HTTP/1.1 200 O") + [0] + b("K\r\n\r\n"), .badStatusLine),
    .init("HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", .unsupportedVersion),
    .init("HTTP/0.9", "HTTP/0.9 200 OK\r\n\r\n", .unsupportedVersion),
    .init("Content-Length and Transfer-Encoding", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
          .bothContentLengthAndTransferEncoding),
    .init("conflicting Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
          .conflictingContentLength),
    .init("conflicting Content-Length on a 204 (syntax still checked)", "HTTP/1.1 204 No\r\nContent-Length: 3, 4\r\n\r\n",
          .conflictingContentLength),
    .init("bad Content-Length on a reply to HEAD", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
          .badContentLength, method: .head),
    .init("Content-Length with sign", "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n", .badContentLength),
    .init("Transfer-Encoding gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", .unsupportedTransferEncoding),
    .init("Transfer-Encoding gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
          .unsupportedTransferEncoding),
    .init("Transfer-Encoding in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
          .unsupportedTransferEncoding),
    .init("obs-fold", "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\n\r\n", .obsFold),
    .init("space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n", .spaceBeforeColon),
    .init("bare LF in fields", "HTTP/1.1 200 OK\r\nX-A: 1\n\r\n", .badFieldValue),
    .init("bad field name", "HTTP/1.1 200 OK\r\nX/A: 1\r\n\r\n", .badFieldName),
    .init("Connection element not a token", "HTTP/1.1 200 OK\r\nConnection: a b\r\n\r\n", .badFieldValue),
    .init("head too large", "HTTP/1.1 200 OK\r\nX-Pad: " + String(repeating: "x", count: 100) + "\r\n\r\n",
          .headTooLarge, limits: smallHead),
    .init("head too large while incomplete", "HTTP/1.1 200 OK\r\nX-Pad: " + String(repeating: "x", count: 100),
          .headTooLarge, limits: smallHead),
    .init("too many fields", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", .tooManyFields, limits: twoFields),
]

@Test("malformed responses are rejected with the exact error", arguments: badResponses)
func badResponse(_ c: BadResponseCase) {
    let (status, _) = parse(c.bytes, method: c.method, limits: c.limits)
    #expect(status == .invalid(c.error))
    var head = ResponseHead()
    for n in 0..<c.bytes.count {
        let partial = c.bytes[0..<n].withUnsafeBytes {
            ResponseParser.parse($0, requestMethod: c.method, into: &head, limits: c.limits)
        }
        #expect(partial != .complete, "prefix of \(n) bytes")
        if case .invalid(let error) = partial { #expect(error == c.error, "prefix of \(n) bytes") }
    }
}
