import Testing
import SluiceCore

/// `H2RequestHead`: the HTTP/1.1 head Sluice writes for an HTTP/2 request's decoded fields.
/// Each case gives the fields in arrival order and the exact head the exchange then parses.
@Suite struct HTTP2RequestHeadTests {
    /// Adds `fields` (name, value) to a fresh builder with `limit`, then writes the head.
    static func build(_ fields: [(String, String)], endStream: Bool, limit: Int = 32768,
                      into head: inout H2RequestHead) -> (text: String, framing: H2RequestHead.BodyFraming) {
        for (n, v) in fields {
            let name = Array(n.utf8), value = Array(v.utf8)
            name.withUnsafeBytes { nb in value.withUnsafeBytes { vb in _ = head.add(name: nb, value: vb, limit: limit) } }
        }
        var out: [UInt8] = []
        let framing = head.write(endStream: endStream, to: &out)
        return (String(decoding: out, as: UTF8.self), framing)
    }

    static func build(_ fields: [(String, String)], endStream: Bool, limit: Int = 32768)
        -> (text: String, framing: H2RequestHead.BodyFraming, head: H2RequestHead) {
        var head = H2RequestHead()
        let r = build(fields, endStream: endStream, limit: limit, into: &head)
        return (r.text, r.framing, head)
    }

    static let get: [(String, String)] = [(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "/x?y=1")]

    @Test func simpleGetBecomesRequestLineAndHost() {
        let r = Self.build(Self.get + [("accept", "*/*")], endStream: true)
        #expect(r.text == "GET /x?y=1 HTTP/1.1\r\nhost: a.test\r\naccept: */*\r\n\r\n")
        #expect(r.framing == .asSent)
        #expect(String(decoding: r.head.method, as: UTF8.self) == "GET")
        #expect(String(decoding: r.head.scheme, as: UTF8.self) == "https")
        #expect(String(decoding: r.head.authority, as: UTF8.self) == "a.test")
        #expect(!r.head.hasContentLength)
        #expect(!r.head.malformed)
    }

    /// RFC 9113 8.2.3: several `cookie` fields are joined with "; " into one, written once.
    @Test func cookieFieldsAreJoined() {
        let r = Self.build(Self.get + [("cookie", "a=1"), ("x-one", "1"), ("cookie", "b=2"), ("cookie", "sluice=xyz")],
                           endStream: true)
        #expect(r.text == "GET /x?y=1 HTTP/1.1\r\nhost: a.test\r\nx-one: 1\r\ncookie: a=1; b=2; sluice=xyz\r\n\r\n")
        let one = Self.build(Self.get + [("cookie", "only=1")], endStream: true)
        #expect(one.text.contains("\r\ncookie: only=1\r\n"))
        #expect(one.text.components(separatedBy: "cookie:").count == 2)
    }

    /// RFC 9113 8.3.1: `:authority` wins over a `host` field; `host` alone is used when there is
    /// no `:authority`; the last `host` wins; neither: no host line (the HTTP/1 parser answers 400).
    @Test func authorityWinsOverHost() {
        let both = Self.build([(":method", "GET"), (":scheme", "http"), ("host", "h.test"), (":authority", "a.test"), (":path", "/")],
                              endStream: true)
        #expect(both.text == "GET / HTTP/1.1\r\nhost: a.test\r\n\r\n")
        let hostOnly = Self.build([(":method", "GET"), (":scheme", "http"), (":path", "/"), ("host", "old.test"), ("host", "h.test")],
                                  endStream: true)
        #expect(hostOnly.text == "GET / HTTP/1.1\r\nhost: h.test\r\n\r\n")
        let neither = Self.build([(":method", "GET"), (":scheme", "http"), (":path", "/")], endStream: true)
        #expect(neither.text == "GET / HTTP/1.1\r\n\r\n")
    }

    /// A body with the client's `content-length` keeps it; a body without one becomes chunked;
    /// HEADERS with END_STREAM has no body and no framing field.
    @Test func bodyFraming() {
        let post: [(String, String)] = [(":method", "POST"), (":scheme", "http"), (":authority", "a.test"), (":path", "/up")]
        let withLength = Self.build(post + [("content-length", "300000")], endStream: false)
        #expect(withLength.text == "POST /up HTTP/1.1\r\nhost: a.test\r\ncontent-length: 300000\r\n\r\n")
        #expect(withLength.framing == .asSent)
        #expect(withLength.head.hasContentLength)
        let streaming = Self.build(post + [("content-type", "application/octet-stream")], endStream: false)
        #expect(streaming.text == "POST /up HTTP/1.1\r\nhost: a.test\r\ncontent-type: application/octet-stream\r\n"
                + "transfer-encoding: chunked\r\n\r\n")
        #expect(streaming.framing == .chunked)
        let empty = Self.build(post, endStream: true)
        #expect(empty.text == "POST /up HTTP/1.1\r\nhost: a.test\r\n\r\n")
        #expect(empty.framing == .asSent)
        // content-length 0 with END_STREAM on HEADERS: kept as sent.
        let zero = Self.build(post + [("content-length", "0")], endStream: true)
        #expect(zero.text.hasSuffix("content-length: 0\r\n\r\n"))
        #expect(zero.framing == .asSent)
    }

    /// CONNECT has `:method` and `:authority` only: the request target is the authority.
    @Test func connectUsesTheAuthorityAsTarget() {
        let r = Self.build([(":method", "CONNECT"), (":authority", "db.internal:5432")], endStream: false)
        #expect(r.text.hasPrefix("CONNECT db.internal:5432 HTTP/1.1\r\nhost: db.internal:5432\r\n"))
    }

    /// Header-list size is counted per RFC 9113 6.5.2 (name + value + 32); fields past the limit
    /// are counted and not kept.
    @Test func listSizeIsCountedAndFieldsPastTheLimitAreDropped() {
        let r = Self.build(Self.get + [("x-a", "12345"), ("x-big", String(repeating: "v", count: 200))], endStream: true, limit: 250)
        let expected = (7 + 3 + 32) + (7 + 5 + 32) + (10 + 6 + 32) + (5 + 6 + 32) + (3 + 5 + 32) + (5 + 200 + 32)
        #expect(r.head.listBytes == expected)
        #expect(r.text.contains("x-a: 12345"))
        #expect(!r.text.contains("x-big"))
    }

    /// CR, LF or NUL in a name or value, and an unknown pseudo-header, mark the head malformed.
    @Test(arguments: [("x-a", "a\r\nb"), ("x-a", "a\nb"), ("x-a", "a\u{0}b"), ("x\rb", "v"), (":protocol", "websocket")])
    func lineBreaksAndUnknownPseudoHeadersAreMalformed(name: String, value: String) {
        let r = Self.build(Self.get + [(name, value)], endStream: true)
        #expect(r.head.malformed)
    }

    /// `reset` empties everything, so a pooled builder carries nothing from its last stream.
    @Test func resetForgetsTheLastStream() {
        var head = H2RequestHead()
        _ = Self.build([(":method", "POST"), (":authority", "a.test"), (":path", "/a"), ("cookie", "c=1"), ("content-length", "3"),
                        ("x-bad", "a\nb")], endStream: false, into: &head)
        #expect(head.malformed && head.hasContentLength && head.listBytes > 0)
        head.reset()
        #expect(!head.malformed && !head.hasContentLength && head.listBytes == 0)
        let r = Self.build([(":method", "GET"), (":authority", "b.test"), (":path", "/b")], endStream: true, into: &head)
        #expect(r.text == "GET /b HTTP/1.1\r\nhost: b.test\r\n\r\n")
    }
}
