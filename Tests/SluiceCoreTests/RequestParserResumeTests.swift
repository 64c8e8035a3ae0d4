import Testing
import SluiceCore

// The resumable parse: a head fed in pieces (each call sees all bytes so far, as a connection's
// buffer does) must end exactly as one parse of the whole head, whatever the piece size.

private func oneShot(_ bytes: [UInt8], _ limits: ParserLimits) -> (ParseStatus, RequestHead) {
    var head = RequestHead()
    let s = bytes.withUnsafeBytes { RequestParser.parse($0, into: &head, limits: limits) }
    return (s, head)
}

/// Feeds `bytes` `piece` bytes at a time; returns the first result that is not `.incomplete`
/// (or `.incomplete` after the last piece) and the head.
private func inPieces(_ bytes: [UInt8], piece: Int, _ limits: ParserLimits) -> (ParseStatus, RequestHead, calls: Int) {
    var head = RequestHead()
    var progress = RequestHeadProgress()
    var n = 0
    var calls = 0
    var status = ParseStatus.incomplete
    while n < bytes.count {
        n = min(bytes.count, n + piece)
        calls += 1
        status = bytes.withUnsafeBytes {
            RequestParser.parse(UnsafeRawBufferPointer(rebasing: $0[0..<n]), into: &head, progress: &progress, limits: limits)
        }
        if status != .incomplete { break }
    }
    return (status, head, calls)
}

private let heads: [String] = [
    "GET /index.html?x=1&y HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
    "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "POST /upload HTTP/1.1\r\nHost: api.example:8443\r\nContent-Length: 42\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n\r\n",
    "GET http://Example.COM:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    "PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "GET /" + String(repeating: "a", count: 300) + " HTTP/1.1\r\nHost: a\r\nCookie: " + String(repeating: "c=1; ", count: 200) + "\r\n\r\n",
    // Invalid ones: each must fail with the same error as a one-shot parse.
    "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
    "GET / HTTP/1.1\nHost: a\r\n\r\n",
    "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    "G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "GET / HTTP/1.1\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
    "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET /" + String(repeating: "x", count: 9000) + " HTTP/1.1\r\nHost: a\r\n\r\n",
]

@Suite("RequestParser resumes where it stopped")
struct RequestParserResumeTests {
    @Test("any piece size ends as a one-shot parse", arguments: [1, 2, 3, 7, 13, 100, 4096])
    func piecesMatchOneShot(piece: Int) {
        let limits = ParserLimits()
        for text in heads {
            let bytes = Array(text.utf8)
            let (whole, wholeHead) = oneShot(bytes, limits)
            let (status, head, _) = inPieces(bytes, piece: piece, limits)
            #expect(status == whole, "\(piece)-byte pieces of \(text.prefix(60).debugDescription)")
            if whole == .complete {
                #expect(head.method == wholeHead.method)
                #expect(head.target == wholeHead.target)
                #expect(head.path == wholeHead.path)
                #expect(head.query == wholeHead.query)
                #expect(head.host == wholeHead.host)
                #expect(head.hostIndex == wholeHead.hostIndex)
                #expect(head.fields == wholeHead.fields)
                #expect(head.framing == wholeHead.framing)
                #expect(head.keepAlive == wholeHead.keepAlive)
                #expect(head.expectContinue == wholeHead.expectContinue)
                #expect(head.headLength == wholeHead.headLength)
            }
        }
    }

    @Test("a head over the limit fails in pieces as in one go")
    func limitsInPieces() {
        var limits = ParserLimits()
        limits.maxHeadBytes = 1024
        let bytes = Array(("GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + String(repeating: "v", count: 2000) + "\r\n\r\n").utf8)
        #expect(oneShot(bytes, limits).0 == .invalid(.headTooLarge))
        for piece in [1, 10, 100, 1000] {
            #expect(inPieces(bytes, piece: piece, limits).0 == .invalid(.headTooLarge))
        }
    }

    @Test("a fresh progress resets the head; the same progress keeps it")
    func freshProgressResets() {
        let limits = ParserLimits()
        var head = RequestHead()
        var progress = RequestHeadProgress()
        let first = Array("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n".utf8)
        #expect(first.withUnsafeBytes { RequestParser.parse($0, into: &head, progress: &progress, limits: limits) } == .complete)
        #expect(head.framing == .contentLength(3))
        progress = RequestHeadProgress()
        let second = Array("GET /b HTTP/1.1\r\nHost: b\r\n\r\n".utf8)
        #expect(second.withUnsafeBytes { RequestParser.parse($0, into: &head, progress: &progress, limits: limits) } == .complete)
        #expect(head.framing == .none)
        #expect(head.fields.count == 1)
    }
}
