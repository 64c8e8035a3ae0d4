import Foundation
@preconcurrency import Glibc
import Testing

// Hostile and edge-case requests and upstream responses, table-driven (issue 6). Each case runs
// against a fresh real proxy and a fresh real upstream, and asserts both what the client got and
// exactly which bytes reached the upstream (all bytes on all upstream connections, in order; the
// only field normalised is the proxy-generated `X-Request-Id`, whose 32 random hex digits become
// `*`). Covers RFC 9112 section 6 (framing) and 11.2 (request smuggling), header syntax, limits,
// and upstream responses the proxy must not relay or reuse.

/// One thing the client does, in order.
enum HostileStep: Sendable {
    /// Send these bytes.
    case send([UInt8])
    /// Wait until the upstream has received exactly these bytes (normalised) so far.
    case waitUpstream(String)
    /// Close the client's sending side (the proxy reads EOF).
    case shutdownWrite
}

/// What the client must see.
enum HostileClientOutcome: Sendable {
    /// A complete response with this status; `closes`: the proxy says `Connection: close` and then
    /// closes the connection (nothing else follows); otherwise the connection stays open.
    case status(Int, closes: Bool)
    /// A complete, kept-alive response with this status and exactly this body.
    case response(Int, body: String)
    /// The connection is closed without a single response byte.
    case closedWithoutResponse
    /// A response head with this status, then the connection closed before the body was complete.
    case truncated(Int)
}

/// What the upstream must have received during the case.
enum HostileUpstreamOutcome: Sendable {
    /// Not one byte (a connection may have been opened and closed).
    case nothing
    /// Exactly these bytes (latin-1 text; `X-Request-Id: *` stands for the generated id);
    /// `closed`: the proxy then closed that upstream connection.
    case exactly(String, closed: Bool)
}

/// One hostile or edge case.
struct HostileCase: Sendable, CustomTestStringConvertible {
    var label: String
    var steps: [HostileStep]
    /// The upstream's reply to the case's request (later requests get `200 next`).
    var reply: UpstreamReply = .ok("ok")
    /// A YAML `limits:` block (or other top-level config) when the defaults do not suit.
    var extra: String = ""
    var client: HostileClientOutcome
    var upstream: HostileUpstreamOutcome
    /// Response fields that must be present with these values.
    var responseHas: [String: String] = [:]
    /// Response fields that must be absent.
    var responseLacks: [String] = []
    /// After the case, a normal request on a new client connection must succeed, and the
    /// upstream must then have accepted this many connections in total (1: the case's connection
    /// was reused; 2: it was closed, never reused).
    var connectionsAfterFollowUp: Int? = nil
    /// A proxy bug reported but not fixed yet: the case runs inside `withKnownIssue` (which fails
    /// once the bug is fixed, so the marker gets removed).
    var knownIssue: String? = nil

    var testDescription: String { label }
}

/// Latin-1 text to bytes (every scalar must be below 256), so cases can hold any byte.
func latin1(_ s: String) -> [UInt8] {
    s.unicodeScalars.map { scalar in
        precondition(scalar.value < 256, "not latin-1: \(scalar)")
        return UInt8(scalar.value)
    }
}

/// Bytes to latin-1 text, for readable failure messages.
func latin1Text(_ b: [UInt8]) -> String {
    String(String.UnicodeScalarView(b.map { Unicode.Scalar($0) }))
}

@Suite(.serialized)
struct HostileInputTests {
    // MARK: Building cases

    /// A request case sent in one write.
    static func request(_ label: String, _ raw: String, extra: String = "", _ client: HostileClientOutcome,
                        _ upstream: HostileUpstreamOutcome, followUp: Int? = nil) -> HostileCase {
        HostileCase(label: label, steps: [.send(latin1(raw))], extra: extra, client: client, upstream: upstream,
                    connectionsAfterFollowUp: followUp)
    }

    /// A rejected request: this status, `Connection: close`, connection closed, nothing upstream.
    static func rejected(_ label: String, _ raw: String, _ status: Int, extra: String = "") -> HostileCase {
        request(label, raw, extra: extra, .status(status, closes: true), .nothing)
    }

    /// An upstream reply case: a plain `GET /` that the proxy forwards, then `reply`.
    static func reply(_ label: String, _ reply: [UInt8], _ client: HostileClientOutcome, followUp: Int,
                      has: [String: String] = [:], lacks: [String] = [], close: Bool = false) -> HostileCase {
        HostileCase(label: label, steps: [.send(latin1("GET / HTTP/1.1\r\nHost: h\r\n\r\n"))],
                    reply: close ? .rawThenClose(reply) : .raw(reply), client: client,
                    upstream: .exactly(forwarded("GET / HTTP/1.1"), closed: close), responseHas: has,
                    responseLacks: lacks, connectionsAfterFollowUp: followUp)
    }

    /// Marks a case as a reported, not yet fixed proxy bug.
    static func known(_ c: HostileCase, _ issue: String) -> HostileCase {
        var c = c
        c.knownIssue = issue
        return c
    }

    /// The request head the proxy sends upstream for a client request with these end-to-end fields.
    static func forwarded(_ requestLine: String, _ fields: [String] = ["Host: h"], framing: String? = nil,
                          body: String = "", forwardedHost: String = "h") -> String {
        var s = requestLine + "\r\n"
        for f in fields { s += f + "\r\n" }
        s += "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"
        if !forwardedHost.isEmpty { s += "X-Forwarded-Host: \(forwardedHost)\r\n" }
        s += "X-Sluice-Cohort: app\r\nX-Request-Id: *\r\n"
        if let framing { s += framing + "\r\n" }
        return s + "\r\n" + body
    }

    static let ok = HostileClientOutcome.response(200, body: "ok")
    static let big = String(repeating: "a", count: 9000)
    static let smuggled = "GET /admin HTTP/1.1\r\nX: y\r\n\r\n"

    // MARK: Requests: framing (RFC 9112 section 6 and 11.2)

    static let framingCases: [HostileCase] = [
        rejected("CL then TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        rejected("TE then CL", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
        rejected("CL + TE: identity", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: identity\r\n\r\nhello", 400),
        rejected("two differing CL fields", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
        rejected("differing CL list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\nhello!", 400),
        request("two equal CL fields become one", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
                ok, .exactly(forwarded("POST / HTTP/1.1", framing: "Content-Length: 5", body: "hello"), closed: false)),
        request("CL with leading zeros and OWS", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:  005 \r\n\r\nhello",
                ok, .exactly(forwarded("POST / HTTP/1.1", framing: "Content-Length: 5", body: "hello"), closed: false)),
        rejected("CL with plus sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello", 400),
        rejected("CL negative", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400),
        rejected("CL hex", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\nhello", 400),
        rejected("CL with inner space", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 0\r\n\r\nhello", 400),
        rejected("CL empty", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400),
        rejected("CL empty list element", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,\r\n\r\nhello", 400),
        rejected("CL overflowing 64 bits", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n", 400),
        rejected("CL over max_body_bytes (default 1 GiB)", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1073741825\r\n\r\n", 413),
        rejected("TE gzip (chunked not final)", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nhello", 400),
        rejected("TE identity", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\nhello", 400),
        rejected("TE chunked, gzip (chunked not final)", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
        rejected("TE chunked then TE gzip fields", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n", 400),
        rejected("TE empty", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n0\r\n\r\n", 400),
        rejected("TE xchunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
        rejected("TE chunked with a parameter", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", 400),
        rejected("TE gzip, chunked (unsupported coding)", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        rejected("TE chunked, chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 501),
        rejected("two TE chunked fields", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
        rejected("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        request("TE \"Chunked \" (case, trailing OWS) is chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked \r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                ok, .exactly(forwarded("POST / HTTP/1.1", framing: "Transfer-Encoding: chunked", body: "3\r\nabc\r\n0\r\n\r\n"), closed: false)),
        request("TE with empty list elements is chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,\tchunked ,\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                ok, .exactly(forwarded("POST / HTTP/1.1", framing: "Transfer-Encoding: chunked", body: "3\r\nabc\r\n0\r\n\r\n"), closed: false)),
        request("chunked: extensions dropped, trailers kept", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b;c=\"x\"\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
                ok, .exactly(forwarded("POST / HTTP/1.1", framing: "Transfer-Encoding: chunked", body: "3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"), closed: false)),
        // RFC 9110 6.5.1: framing, routing, forwarding, authentication, response control and
        // Sluice's own fields never pass in a trailer section, nor names with `_` (issue 17).
        request("chunked: forbidden trailer fields dropped",
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 100\r\nTransfer-Encoding: identity\r\nX-Sluice-Cohort: canary\r\nX-Forwarded-For: 6.6.6.6\r\nHost: evil.com\r\nX_Under: 1\r\nSet-Cookie: a=b\r\nContent-Type: x\r\nX-Request-Id: forged\r\nX-T: 1\r\n\r\n",
                ok, .exactly(forwarded("POST / HTTP/1.1", framing: "Transfer-Encoding: chunked", body: "3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"), closed: false)),
        request("Forwarded and X-Real-IP from an untrusted client are dropped",
                "GET / HTTP/1.1\r\nHost: h\r\nForwarded: for=6.6.6.6;proto=https\r\nX-Real-IP: 6.6.6.6\r\n\r\n", ok,
                .exactly(forwarded("GET / HTTP/1.1"), closed: false)),
        request("an X-Request-Id over 200 bytes is replaced: the upstream gets one id",
                "GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: \(String(repeating: "r", count: 201))\r\n\r\n", ok,
                .exactly(forwarded("GET / HTTP/1.1"), closed: false)),
        request("a client's X-Request-Id is kept, once",
                "GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: abc-1\r\nX-Request-Id: def-2\r\n\r\n", ok,
                .exactly("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\nX-Sluice-Cohort: app\r\nX-Request-Id: abc-1\r\n\r\n", closed: false)),
        badChunk("chunk size not hex", "zz\r\nabc\r\n0\r\n\r\n"),
        badChunk("chunk size with 0x", "0x3\r\nabc\r\n0\r\n\r\n"),
        badChunk("chunk size negative", "-3\r\nabc\r\n0\r\n\r\n"),
        badChunk("chunk size overflowing 64 bits", "10000000000000000\r\nabc\r\n"),
        badChunk("chunk size empty", "\r\nabc\r\n0\r\n\r\n"),
        badChunk("chunk extension too long", "3;" + String(repeating: "e", count: 1100) + "\r\nabc\r\n0\r\n\r\n"),
        badChunk("chunk extension with bare CR", "3;a\rb\r\nabc\r\n0\r\n\r\n"),
        badChunk("chunk size line with bare LF", "3\nabc\r\n0\r\n\r\n"),
        badChunk("chunk data longer than its size", "3\r\nabcd\r\n0\r\n\r\n"),
        badChunk("trailer with obs-fold", "0\r\nX-T: 1\r\n folded\r\n\r\n"),
        // Body shorter than announced: the client stops sending and closes. The upstream has the
        // head and the bytes sent, then its connection is closed (never reused).
        HostileCase(label: "CL body shorter than announced, client closes",
                    steps: [.send(latin1("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello")),
                            .waitUpstream(forwarded("POST / HTTP/1.1", framing: "Content-Length: 10", body: "hello")),
                            .shutdownWrite],
                    client: .closedWithoutResponse,
                    upstream: .exactly(forwarded("POST / HTTP/1.1", framing: "Content-Length: 10", body: "hello"), closed: true),
                    connectionsAfterFollowUp: 2),
        HostileCase(label: "chunked body cut mid-chunk, client closes",
                    steps: [.send(latin1("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")),
                            .waitUpstream(forwarded("POST / HTTP/1.1", framing: "Transfer-Encoding: chunked", body: "3\r\nhel\r\n")),
                            .shutdownWrite],
                    client: .closedWithoutResponse,
                    upstream: .exactly(forwarded("POST / HTTP/1.1", framing: "Transfer-Encoding: chunked", body: "3\r\nhel\r\n"), closed: true),
                    connectionsAfterFollowUp: 2),
        // Chunked body over max_body_bytes while streaming: 413, the upstream keeps what was valid.
        HostileCase(label: "chunked body over max_body_bytes",
                    steps: [.send(latin1("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")),
                            .waitUpstream(forwarded("POST / HTTP/1.1", framing: "Transfer-Encoding: chunked", body: "3\r\nabc\r\n")),
                            .send(latin1("64\r\n" + String(repeating: "b", count: 100) + "\r\n0\r\n\r\n"))],
                    extra: "limits: { max_body_bytes: 100 }", client: .status(413, closes: true),
                    upstream: .exactly(forwarded("POST / HTTP/1.1", framing: "Transfer-Encoding: chunked", body: "3\r\nabc\r\n"), closed: true),
                    connectionsAfterFollowUp: 2),
        rejected("CL body over max_body_bytes", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n" + String(repeating: "b", count: 101),
                 413, extra: "limits: { max_body_bytes: 100 }"),
    ]

    /// A chunked request whose first chunk is valid and whose next chunk line (or trailer) is not:
    /// the upstream gets the head and the valid chunk, then its connection is closed; the client gets 400.
    static func badChunk(_ label: String, _ rest: String) -> HostileCase {
        let head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        let valid = forwarded("POST / HTTP/1.1", framing: "Transfer-Encoding: chunked", body: "2\r\nok\r\n")
        return HostileCase(label: label, steps: [.send(latin1(head + "2\r\nok\r\n")), .waitUpstream(valid), .send(latin1(rest))],
                           client: .status(400, closes: true), upstream: .exactly(valid, closed: true),
                           connectionsAfterFollowUp: 2)
    }

    // MARK: Requests: header and request-line syntax

    static let syntaxCases: [HostileCase] = [
        rejected("obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n folded\r\n\r\n", 400),
        rejected("obs-fold with tab", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\tfolded\r\n\r\n", 400),
        rejected("whitespace line before the first field", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400),
        rejected("space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
        rejected("tab before colon", "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding\t: chunked\r\n\r\n", 400),
        rejected("NUL in a value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\u{0}b\r\n\r\n", 400),
        rejected("bare CR in a value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n", 400),
        rejected("bare LF in a value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\nContent-Length: 5\r\n\r\nhello", 400),
        rejected("DEL in a value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\u{7F}\r\n\r\n", 400),
        rejected("non-token name character", "GET / HTTP/1.1\r\nHost: h\r\nX{A}: 1\r\n\r\n", 400),
        rejected("non-ASCII name", "GET / HTTP/1.1\r\nHost: h\r\nX-\u{E9}: 1\r\n\r\n", 400),
        rejected("empty name", "GET / HTTP/1.1\r\nHost: h\r\n: 1\r\n\r\n", 400),
        rejected("line without colon", "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400),
        rejected("two spaces after method", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        rejected("two spaces before version", "GET /  HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        rejected("space after version", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400),
        rejected("tab as separator", "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        rejected("space inside the target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        rejected("fragment in the target", "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        rejected("invalid method character", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        rejected("CONNECT is not tunnelled", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 400),
        rejected("lowercase version", "GET / http/1.1\r\nHost: h\r\n\r\n", 400),
        rejected("version HTTP/1.10", "GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400),
        rejected("version HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505),
        rejected("version HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
        rejected("no version (HTTP/0.9)", "GET /\r\n\r\n", 400),
        rejected("missing Host in HTTP/1.1", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400),
        rejected("two Host fields", "GET / HTTP/1.1\r\nHost: h\r\nHost: evil\r\n\r\n", 400),
        rejected("two equal Host fields", "GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", 400),
        rejected("Host with a space", "GET / HTTP/1.1\r\nHost: h evil\r\n\r\n", 400),
        rejected("Host with userinfo", "GET / HTTP/1.1\r\nHost: user@h\r\n\r\n", 400),
        rejected("Host with a path", "GET / HTTP/1.1\r\nHost: h/x\r\n\r\n", 400),
        rejected("absolute-form target with userinfo", "GET http://user@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        // Bare LF is rejected (documented in RequestParser.swift and the README).
        rejected("bare LF line endings", "GET / HTTP/1.1\nHost: h\n\n", 400),
        rejected("bare LF after the request line", "GET / HTTP/1.1\nHost: h\r\n\r\n", 400),
        rejected("bare CR line ending", "GET / HTTP/1.1\rHost: h\r\n\r\n", 400),
        rejected("Connection option that is not a token", "GET / HTTP/1.1\r\nHost: h\r\nConnection: a b\r\n\r\n", 400),
        rejected("a request pipelined after a bad one is not processed",
                 "GET /1 HTTP/1.1\r\nHost: h\r\nX-A: \u{0}\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        rejected("too many leading empty lines", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        request("two leading empty lines are skipped", "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", ok,
                .exactly(forwarded("GET / HTTP/1.1"), closed: false)),
        request("lowercase method is a distinct method, passed as is", "get / HTTP/1.1\r\nHost: h\r\n\r\n", ok,
                .exactly(forwarded("get / HTTP/1.1"), closed: false)),
        request("obs-text in a value is passed as is", "GET / HTTP/1.1\r\nHost: h\r\nX-L: caf\u{E9}\r\n\r\n", ok,
                .exactly(forwarded("GET / HTTP/1.1", ["Host: h", "X-L: caf\u{E9}"]), closed: false)),
        request("absolute-form target: origin-form and Host from the authority",
                "GET http://a.example:81/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n", ok,
                .exactly(forwarded("GET /p?q=1 HTTP/1.1", ["Host: a.example:81"], forwardedHost: "a.example:81"), closed: false)),
        request("Connection cannot hide Host", "GET / HTTP/1.1\r\nHost: h\r\nConnection: host, x-hop\r\nX-Hop: 1\r\n\r\n", ok,
                .exactly(forwarded("GET / HTTP/1.1"), closed: false)),
        request("client's X-Forwarded-* and cohort header replaced",
                "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nX-Sluice-Cohort: canary\r\n\r\n",
                ok, .exactly(forwarded("GET / HTTP/1.1"), closed: false)),
        // An h2c upgrade request is served as plain HTTP/1.1: Upgrade, Connection and the
        // HTTP2-Settings field it names are never forwarded.
        request("h2c upgrade is not forwarded",
                "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
                ok, .exactly(forwarded("GET / HTTP/1.1"), closed: false)),
        // A WebSocket upgrade is forwarded with Connection and Upgrade (issue 14); answered 200, it is a normal response.
        request("websocket upgrade is forwarded",
                "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                ok, .exactly(forwarded("GET /ws HTTP/1.1", ["Host: h", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"],
                                       framing: "Connection: upgrade\r\nUpgrade: websocket"), closed: false)),
        // A smuggling attempt by a second request hidden in a GET body: with CL the proxy reads the
        // body as a body; the upstream sees one request with a CL body.
        request("GET with a CL body that looks like a request",
                "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: \(smuggled.utf8.count)\r\n\r\n" + smuggled, ok,
                .exactly(forwarded("GET / HTTP/1.1", framing: "Content-Length: \(smuggled.utf8.count)", body: smuggled), closed: false)),
    ]

    // MARK: Requests: limits

    static let limitCases: [HostileCase] = [
        rejected("request line over 8 KiB (414)", "GET /\(big) HTTP/1.1\r\nHost: h\r\n\r\n", 414),
        rejected("request line over a small limit (414)", "GET /\(String(repeating: "p", count: 300)) HTTP/1.1\r\nHost: h\r\n\r\n", 414,
                 extra: "limits: { max_request_line: 256 }"),
        rejected("header section over 32 KiB (431)", "GET / HTTP/1.1\r\nHost: h\r\nX-Big: \(String(repeating: "v", count: 33_000))\r\n\r\n", 431),
        rejected("many small fields over 32 KiB (431)", "GET / HTTP/1.1\r\nHost: h\r\n" + String(repeating: "X-F: \(big)\r\n", count: 4) + "\r\n", 431),
        rejected("101 fields (431)", "GET / HTTP/1.1\r\nHost: h\r\n" + (1...100).map { "X-\($0): 1\r\n" }.joined() + "\r\n", 431),
        request("100 fields are fine", "GET / HTTP/1.1\r\nHost: h\r\n" + (1...99).map { "X-\($0): 1\r\n" }.joined() + "\r\n", ok,
                .exactly(forwarded("GET / HTTP/1.1", ["Host: h"] + (1...99).map { "X-\($0): 1" }), closed: false)),
        rejected("more fields than a small max_header_count (431)", "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431,
                 extra: "limits: { max_header_count: 3 }"),
    ]

    // MARK: Upstream responses

    static let responseCases: [HostileCase] = [
        reply("response with CL and TE", latin1("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
              .status(502, closes: false), followUp: 2),
        reply("response with two differing CL", latin1("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!"),
              .status(502, closes: false), followUp: 2),
        reply("response CL with sign", latin1("HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok"), .status(502, closes: false), followUp: 2),
        reply("response TE gzip", latin1("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx"), .status(502, closes: false), followUp: 2),
        reply("response TE gzip, chunked", latin1("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
              .status(502, closes: false), followUp: 2),
        reply("HTTP/1.0 response with TE chunked", latin1("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
              .status(502, closes: false), followUp: 2),
        reply("bad status line: 4-digit status", latin1("HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"), .status(502, closes: false), followUp: 2),
        reply("bad status line: 2-digit status", latin1("HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n"), .status(502, closes: false), followUp: 2),
        reply("bad status line: status 600", latin1("HTTP/1.1 600 OK\r\nContent-Length: 0\r\n\r\n"), .status(502, closes: false), followUp: 2),
        reply("bad status line: not HTTP", latin1("ICY 200 OK\r\nContent-Length: 0\r\n\r\n"), .status(502, closes: false), followUp: 2),
        reply("bad status line: bare LF", latin1("HTTP/1.1 200 OK\nContent-Length: 0\n\n"), .status(502, closes: false), followUp: 2),
        reply("response HTTP/2.0", latin1("HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"), .status(502, closes: false), followUp: 2),
        reply("response obs-fold", latin1("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n"), .status(502, closes: false), followUp: 2),
        reply("response NUL in a value", latin1("HTTP/1.1 200 OK\r\nX-A: a\u{0}b\r\nContent-Length: 0\r\n\r\n"), .status(502, closes: false), followUp: 2),
        reply("response space before colon", latin1("HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"), .status(502, closes: false), followUp: 2),
        reply("response head over 32 KiB", latin1("HTTP/1.1 200 OK\r\nX-Big: \(String(repeating: "v", count: 33_000))\r\nContent-Length: 0\r\n\r\n"),
              .status(502, closes: false), followUp: 2),
        reply("101 Switching Protocols without an upgrade", latin1("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"),
              .status(502, closes: false), followUp: 2),
        // 103 Early Hints is relayed to HTTP/1.1 clients (issue 14): ExchangeDriverTests.earlyHints.
        reply("100 Continue unasked then 200", latin1("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
              ok, followUp: 1),
        reply("Connection-named fields removed", latin1("HTTP/1.1 200 OK\r\nConnection: X-Secret, X-Other\r\nX-Secret: s\r\nX-Other: o\r\nKeep-Alive: timeout=5\r\nX-App: yes\r\nContent-Length: 2\r\n\r\nok"),
              ok, followUp: 1, has: ["X-App": "yes"], lacks: ["X-Secret", "X-Other", "Keep-Alive", "Connection"]),
        reply("Upgrade on a 200 removed", latin1("HTTP/1.1 200 OK\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nok"),
              ok, followUp: 1, lacks: ["Upgrade"]),
        reply("response with two equal CL", latin1("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"),
              ok, followUp: 1, has: ["Content-Length": "2"]),
        reply("chunked response: extensions dropped", latin1("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;x=y\r\no\r\n1\r\nk\r\n0\r\n\r\n"),
              ok, followUp: 1, has: ["Transfer-Encoding": "chunked"]),
        reply("truncated CL body", latin1("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"), .truncated(200), followUp: 2, close: true),
        reply("truncated chunked body", latin1("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"), .truncated(200), followUp: 2, close: true),
        reply("bad chunk size in the response body", latin1("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n"),
              .truncated(200), followUp: 2),
        reply("closed before any response", [], .status(502, closes: false), followUp: 2, close: true),
        reply("closed inside the head", latin1("HTTP/1.1 200 OK\r\nContent-Len"), .status(502, closes: false), followUp: 2, close: true),
        // RFC 9110 8.6: no Content-Length in a 204 (a client could wait for that many body bytes).
        reply("204 with Content-Length: the field is not relayed", latin1("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"),
              .status(204, closes: false), followUp: 1, lacks: ["Content-Length"]),
        // Bytes after a complete response are not a response: the connection must not be reused.
        reply("bytes after a 204", latin1("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nspoof"),
              .status(204, closes: false), followUp: 2),
        reply("bytes after a CL body", latin1("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nspoof"),
              ok, followUp: 2),
    ]

    static let cases: [HostileCase] = framingCases + syntaxCases + limitCases + responseCases

    @Test func atLeastFortyCases() {
        #expect(Self.cases.count >= 40)
        #expect(Set(Self.cases.map(\.label)).count == Self.cases.count, "labels must be unique")
    }

    // MARK: Running a case

    @Test(arguments: cases)
    func hostile(_ c: HostileCase) throws {
        if let issue = c.knownIssue {
            withKnownIssue(Comment(rawValue: issue)) { try run(c) }
        } else {
            try run(c)
        }
    }

    func run(_ c: HostileCase) throws {
        let served = LockedBox(0)
        let firstReply = c.reply
        let up = try TestUpstream { _ in
            var n = 0
            served.update { $0 += 1; n = $0 }
            return n == 1 ? firstReply : .ok("next")
        }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port], extra: c.extra)
        defer { proxy.stop() }

        let fd = try proxy.connect()
        defer { close(fd) }
        for step in c.steps {
            switch step {
            case .send(let bytes):
                try TestSocket.send(fd, bytes)
            case .waitUpstream(let expected):
                let arrived = eventually(5) { Self.normalized(up.received.joined()) == latin1(expected) }
                try #require(arrived, "the upstream never received the expected bytes; got \(latin1Text(Self.normalized(up.received.joined())).debugDescription)")
            case .shutdownWrite:
                shutdown(fd, Int32(SHUT_WR))
            }
        }

        try checkClient(c, fd: fd)
        try checkUpstream(c, up)

        if let expected = c.connectionsAfterFollowUp {
            let next = try proxy.request("GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
            #expect(next.status == 200, "follow-up request")
            #expect(up.connections == expected,
                    expected == 2 ? "the case's upstream connection must not be reused" : "the upstream connection should be reused")
        }
    }

    /// Checks what the client received.
    func checkClient(_ c: HostileCase, fd: Int32) throws {
        switch c.client {
        case .status(let status, let closes):
            let reader = TestReader(fd: fd)
            let m = try #require(try reader.readMessage(isResponse: true), "no response")
            #expect(m.status == status, "status; response: \(latin1Text(m.raw).debugDescription)")
            checkFields(c, m)
            if closes {
                #expect(m.header("Connection")?.lowercased() == "close")
                #expect(try reader.readMessage(isResponse: true) == nil, "the connection must close after the response")
            } else {
                #expect(m.header("Connection") == nil)
            }
        case .response(let status, let body):
            let m = try #require(try TestReader(fd: fd).readMessage(isResponse: true), "no response")
            #expect(m.status == status, "status; response: \(latin1Text(m.raw).debugDescription)")
            #expect(m.bodyText == body)
            #expect(m.header("Connection") == nil)
            checkFields(c, m)
        case .closedWithoutResponse:
            let got = try Self.readToEOF(fd)
            #expect(got.isEmpty, "expected no response, got \(latin1Text(got).debugDescription)")
        case .truncated(let status):
            let got = try Self.readToEOF(fd)
            let text = latin1Text(got)
            #expect(text.hasPrefix("HTTP/1.1 \(status) "), "response: \(text.debugDescription)")
            // The client must be able to tell the body is incomplete: parsing it hits EOF.
            let (rfd, wfd) = try Self.socketPair()
            defer { close(rfd) }
            try TestSocket.send(wfd, got)
            close(wfd)
            #expect(throws: (any Error).self, "a complete response was relayed: \(text.debugDescription)") {
                _ = try TestReader(fd: rfd).readMessage(isResponse: true)
            }
        }
    }

    func checkFields(_ c: HostileCase, _ m: TestMessage) {
        for (name, value) in c.responseHas {
            #expect(m.header(name) == value, "response field \(name)")
        }
        for name in c.responseLacks {
            #expect(m.header(name) == nil, "response field \(name) must be removed")
        }
    }

    /// Checks what the upstream received.
    func checkUpstream(_ c: HostileCase, _ up: TestUpstream) throws {
        switch c.upstream {
        case .nothing:
            usleep(100_000)  // give stray bytes time to arrive
            let got = up.received.joined()
            #expect(got.isEmpty, "the upstream received \(latin1Text(Array(got)).debugDescription)")
        case .exactly(let expected, let closed):
            let want = latin1(expected)
            _ = eventually(3) { Self.normalized(up.received.joined()) == want }
            let got = Self.normalized(up.received.joined())
            #expect(latin1Text(got) == expected, "bytes received by the upstream")
            if closed {
                #expect(eventually(3) { up.connectionsEnded == up.connections }, "the proxy must close the upstream connection")
            }
        }
    }

    // MARK: Helpers

    /// Replaces the 32 hex digits of each `X-Request-Id: ` line the proxy generated with `*`.
    static func normalized(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        var b = Array(bytes)
        let key = latin1("\r\nX-Request-Id: ")
        var i = 0
        while i + key.count + 34 <= b.count {
            if b[i..<(i + key.count)].elementsEqual(key) {
                let start = i + key.count
                let id = b[start..<(start + 32)]
                if id.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }),
                   b[start + 32] == 13, b[start + 33] == 10 {
                    b.replaceSubrange(start..<(start + 32), with: [UInt8(ascii: "*")])
                }
            }
            i += 1
        }
        return b
    }

    /// Reads until the peer closes; throws on a timeout (the connection was left open).
    static func readToEOF(_ fd: Int32) throws -> [UInt8] {
        var out: [UInt8] = []
        while true {
            let chunk = try TestSocket.recv(fd)
            if chunk.isEmpty { return out }
            out += chunk
        }
    }

    /// A connected pair of stream sockets.
    static func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { throw TestError("socketpair failed") }
        return (fds[0], fds[1])
    }
}
