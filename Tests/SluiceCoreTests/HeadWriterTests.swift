import Testing
import SluiceCore

/// Parses `text` as a request head (the parser is tested elsewhere) and returns what the writer emits.
private func forwarded(_ text: String, client: String = "192.0.2.7", fallbackHost: String = "up:80",
                       framing: BodyFraming = .none, trusted: Bool = false, proto: ForwardedProto = .http) -> String {
    let bytes = Array(text.utf8)
    var head = RequestHead()
    var out: [UInt8] = []
    bytes.withUnsafeBytes { raw in
        let status = RequestParser.parse(raw, into: &head, limits: ParserLimits())
        precondition(status == .complete, "test input must parse: \(status)")
        Array(client.utf8).withUnsafeBytes { c in
            Array(fallbackHost.utf8).withUnsafeBytes { h in
                HeadWriter.appendRequestStart(head, bytes: raw, clientAddress: c, forwardedProto: proto, fallbackHost: h,
                                              trustForwarded: trusted, to: &out)
            }
        }
    }
    HeadWriter.appendFraming(framing, closeConnection: false, http10KeepAlive: false, to: &out)
    return String(decoding: out, as: UTF8.self)
}

private func response(_ text: String, method: HTTPMethod = .get, keepCL: Bool, framing: BodyFraming,
                      close: Bool = false, http10KeepAlive: Bool = false) -> String {
    let bytes = Array(text.utf8)
    var head = ResponseHead()
    var out: [UInt8] = []
    bytes.withUnsafeBytes { raw in
        let status = ResponseParser.parse(raw, requestMethod: method, into: &head, limits: ParserLimits())
        precondition(status == .complete, "test input must parse: \(status)")
        HeadWriter.appendResponseStart(head, bytes: raw, keepContentLength: keepCL, to: &out)
    }
    HeadWriter.appendFraming(framing, closeConnection: close, http10KeepAlive: http10KeepAlive, to: &out)
    return String(decoding: out, as: UTF8.self)
}

struct HeadWriterTests {
    @Test func plainRequestGetsForwardedHeaders() {
        #expect(forwarded("GET /p?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n") ==
            "GET /p?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-Forwarded-For: 192.0.2.7\r\n"
            + "X-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\n\r\n")
    }

    @Test func hopByHopAndFramingFieldsAreDroppedAndRewritten() {
        let text = "POST /u HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\nKeep-Alive: 5\r\n"
            + "TE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nTrailer: T\r\nExpect: 100-continue\r\n"
            + "Content-Length: 10\r\nX-Keep: yes\r\n\r\n"
        #expect(forwarded(text, framing: .contentLength(10)) ==
            "POST /u HTTP/1.1\r\nHost: h\r\nX-Keep: yes\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"
            + "X-Forwarded-Host: h\r\nContent-Length: 10\r\n\r\n")
    }

    @Test func headerNamesWithUnderscoresAreDropped() {
        #expect(forwarded("POST / HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\nX_Custom: 1\r\nX-Ok: 2\r\nContent-Length: 0\r\n\r\n",
                          framing: .contentLength(0)) ==
            "POST / HTTP/1.1\r\nHost: h\r\nX-Ok: 2\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"
            + "X-Forwarded-Host: h\r\nContent-Length: 0\r\n\r\n")
    }

    @Test func chunkedRequestIsReframed() {
        let out = forwarded("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", framing: .chunked)
        #expect(out.hasSuffix("X-Forwarded-Host: h\r\nTransfer-Encoding: chunked\r\n\r\n"))
        #expect(out.split(separator: "\r\n").filter { $0.hasPrefix("Transfer-Encoding") }.count == 1)
    }

    @Test func untrustedForwardedHeadersAreReplaced() {
        let out = forwarded("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2, 10.0.0.3\r\n"
            + "X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n\r\n")
        #expect(out == "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 192.0.2.7\r\n"
            + "X-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n")
    }

    @Test func trustedForwardedHeadersAreExtendedAndKept() {
        let out = forwarded("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2, 10.0.0.3\r\n"
            + "X-Forwarded-Proto: https\r\nX-Forwarded-Host: public\r\n\r\n", trusted: true)
        #expect(out == "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: public\r\n"
            + "X-Forwarded-For: 10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7\r\n\r\n")
        // A trusted peer that sent no X-Forwarded-* still gets ours.
        #expect(forwarded("GET / HTTP/1.1\r\nHost: h\r\n\r\n", trusted: true) ==
            "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n")
    }

    @Test func absoluteFormBecomesOriginFormWithHostFromAuthority() {
        #expect(forwarded("GET http://api.example:8080/v1/x?y=2 HTTP/1.1\r\nHost: other\r\n\r\n") ==
            "GET /v1/x?y=2 HTTP/1.1\r\nHost: api.example:8080\r\nX-Forwarded-For: 192.0.2.7\r\n"
            + "X-Forwarded-Proto: http\r\nX-Forwarded-Host: api.example:8080\r\n\r\n")
        #expect(forwarded("GET http://api.example HTTP/1.1\r\nHost: api.example\r\n\r\n").hasPrefix("GET / HTTP/1.1\r\nHost: api.example\r\n"))
    }

    @Test func http10WithoutHostGetsTheEndpointAsHost() {
        #expect(forwarded("GET / HTTP/1.0\r\n\r\n", fallbackHost: "127.0.0.1:9001") ==
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n\r\n")
    }

    @Test func responseHeadDropsHopByHopAndReframes() {
        let text = "HTTP/1.1 200 OK\r\nConnection: X-Up\r\nX-Up: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 3\r\nETag: \"e\"\r\n\r\n"
        #expect(response(text, keepCL: false, framing: .contentLength(3)) ==
            "HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 3\r\n\r\n")
        #expect(response(text, keepCL: false, framing: .contentLength(3), close: true) ==
            "HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 3\r\nConnection: close\r\n\r\n")
        #expect(response(text, keepCL: false, framing: .contentLength(3), http10KeepAlive: true) ==
            "HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n")
    }

    @Test func headResponseKeepsItsContentLength() {
        #expect(response("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", method: .head, keepCL: true, framing: .none) ==
            "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
    }

    @Test func closeDelimitedResponseBecomesChunked() {
        #expect(response("HTTP/1.1 200 OK\r\nServer: up\r\n\r\n", keepCL: false, framing: .chunked) ==
            "HTTP/1.1 200 OK\r\nServer: up\r\nTransfer-Encoding: chunked\r\n\r\n")
    }

    @Test func emptyReasonPhraseIsKept() {
        #expect(response("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", keepCL: false, framing: .contentLength(0)) ==
            "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n")
    }

    // Lines already in the form the writer produces are copied as one run; every other form is
    // rewritten. Both must give the same bytes, wherever a run starts or stops.
    @Test func fieldLinesInOtherFormsAreRewrittenAroundVerbatimRuns() {
        let text = "GET /a?b HTTP/1.1\r\nHost: h\r\nA:1\r\nB:  2 \t\r\nC: 3\r\nX_D: 4\r\nE: 5\r\nF:\r\nG: 7\r\n"
            + "Connection: close\r\nH:\t8\r\nI: 9 \r\n\r\n"
        #expect(forwarded(text) ==
            "GET /a?b HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nE: 5\r\nF: \r\nG: 7\r\nH: 8\r\nI: 9\r\n"
            + "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n")
    }

    @Test func httpsClientsAreForwardedAsHttpsWithAndWithoutHost() {
        #expect(forwarded("GET / HTTP/1.1\r\nHost: h\r\n\r\n", proto: .https) ==
            "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: h\r\n\r\n")
        #expect(forwarded("GET / HTTP/1.0\r\n\r\n", proto: .https) ==
            "GET / HTTP/1.1\r\nHost: up:80\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n\r\n")
    }

    @Test func http10RequestLineIsRewrittenAndItsFieldsKept() {
        #expect(forwarded("GET /x HTTP/1.0\r\nHost: h\r\nA: 1\r\n\r\n") ==
            "GET /x HTTP/1.1\r\nHost: h\r\nA: 1\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"
            + "X-Forwarded-Host: h\r\n\r\n")
    }

    @Test(arguments: [
        ("HTTP/1.1 404 Not Found\r\nA: 1\r\nB:2\r\nC: 3\r\n\r\n", "HTTP/1.1 404 Not Found\r\nA: 1\r\nB: 2\r\nC: 3\r\n"),
        ("HTTP/1.0 200 OK\r\nA: 1\r\n\r\n", "HTTP/1.1 200 OK\r\nA: 1\r\n"),
        ("HTTP/1.1 299 x\r\nTransfer-Encoding: chunked\r\nA: 1\r\n\r\n", "HTTP/1.1 299 x\r\nA: 1\r\n"),
        ("HTTP/1.1 200 OK\r\nA: 1 \r\nB: 2\r\n\r\n", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n"),
    ])
    func statusLinesAndFieldsInSeveralForms(text: String, expected: String) {
        #expect(response(text, keepCL: false, framing: .none) == expected + "\r\n")
    }

    @Test func simpleResponses() {
        var out: [UInt8] = []
        Array("nope\n".utf8).withUnsafeBytes { body in
            HeadWriter.appendSimpleResponse(status: 404, contentType: "text/plain", body: body, closeConnection: true,
                                            http10KeepAlive: false, headOnly: false, to: &out)
        }
        #expect(String(decoding: out, as: UTF8.self) ==
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nServer: sluice\r\nContent-Length: 5\r\nConnection: close\r\n\r\nnope\n")
        out.removeAll()
        Array("nope\n".utf8).withUnsafeBytes { body in
            HeadWriter.appendSimpleResponse(status: 502, contentType: "text/plain", body: body, closeConnection: false,
                                            http10KeepAlive: false, headOnly: true, to: &out)
        }
        #expect(String(decoding: out, as: UTF8.self) ==
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nServer: sluice\r\nContent-Length: 5\r\n\r\n")
    }

    @Test(arguments: [(0, "0"), (1, "1"), (15, "f"), (16, "10"), (65536, "10000"), (Int(UInt32.max), "ffffffff")])
    func chunkHeaders(size: Int, hex: String) {
        var out: [UInt8] = []
        HeadWriter.appendChunkHeader(size, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == hex + "\r\n")
    }

    @Test(arguments: [UInt64(0), 7, 10, 99, 100, 12345, 1 << 40, UInt64.max])
    func decimals(value: UInt64) {
        var out: [UInt8] = []
        HeadWriter.appendDecimal(value, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == String(value))
    }
}
