import Testing
import SluiceCore

/// `H1ResponseReader`: the HTTP/1.1 response Sluice writes for an HTTP/2 stream, read back as
/// interim heads, the final head, body data, trailers and the end. Every case is also fed one
/// byte at a time and with a small data cap, and must give the same result.
@Suite struct HTTP2ResponseReaderTests {
    /// What the reader made of a response.
    struct Result: Equatable {
        /// (status, final, hasBody) per head, in order.
        var heads: [[Int]] = []
        var body: [UInt8] = []
        var trailers = ""
        /// An `.end` step was returned (chunked bodies).
        var endStep = false
        var done = false
        var invalid = false
        /// Bytes left unconsumed at the end.
        var left = 0
        /// Largest single data step.
        var largestData = 0
    }

    /// Feeds `text` in pieces of `piece` bytes, stepping until the reader needs more each time.
    static func read(_ text: String, method: HTTPMethod = .get, piece: Int = .max, maxData: Int = 1 << 20,
                     exchangeEnds: Bool = false) -> Result {
        var reader = H1ResponseReader(limits: ParserLimits())
        reader.reset(method: method)
        var head = ResponseHead()
        var r = Result()
        var buffer: [UInt8] = []
        let all = Array(text.utf8)
        var fed = 0
        outer: while true {
            if fed < all.count {
                let n = min(piece, all.count - fed)
                buffer += all[fed..<fed + n]
                fed += n
            }
            var steps = 0
            while steps < 10_000 {
                steps += 1
                let step = buffer.withUnsafeBytes { reader.next($0, head: &head, maxData: maxData) }
                switch step {
                case .needMore(let k):
                    buffer.removeFirst(k)
                    if k == 0 { break }
                    continue
                case .head(let k, let final, let hasBody):
                    r.heads.append([head.status, final ? 1 : 0, hasBody ? 1 : 0])
                    buffer.removeFirst(k)
                    continue
                case .data(let o, let c, let k):
                    #expect(c > 0 && c <= maxData)
                    r.largestData = max(r.largestData, c)
                    r.body += buffer[o..<o + c]
                    buffer.removeFirst(k)
                    continue
                case .end(let k, let to, let tc):
                    r.endStep = true
                    r.trailers = String(decoding: buffer[to..<to + tc], as: UTF8.self)
                    buffer.removeFirst(k)
                    continue
                case .invalid:
                    r.invalid = true
                    break outer
                }
                break
            }
            if fed == all.count { break }
        }
        if exchangeEnds {
            #expect(reader.endsWithExchange)
            reader.exchangeEnded()
        }
        r.done = reader.isDone
        r.left = buffer.count
        return r
    }

    /// `read` at whole, one byte at a time, and with data steps capped at `cap` bytes: the same
    /// heads, body, trailers and end (only the size of data steps differs).
    static func readEveryWay(_ text: String, method: HTTPMethod = .get, cap: Int = 3, exchangeEnds: Bool = false) -> Result {
        var whole = read(text, method: method, exchangeEnds: exchangeEnds)
        var bytewise = read(text, method: method, piece: 1, exchangeEnds: exchangeEnds)
        var capped = read(text, method: method, piece: 7, maxData: cap, exchangeEnds: exchangeEnds)
        #expect(capped.largestData <= cap)
        #expect(bytewise.largestData <= 1)
        whole.largestData = 0
        bytewise.largestData = 0
        capped.largestData = 0
        #expect(bytewise == whole, "one byte at a time")
        #expect(capped == whole, "capped data steps")
        return whole
    }

    @Test func contentLengthBodyStopsAtItsLength() {
        let r = Self.readEveryWay("HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-A: b\r\n\r\n0123456789EXTRA")
        #expect(r.heads == [[200, 1, 1]])
        #expect(String(decoding: r.body, as: UTF8.self) == "0123456789")
        #expect(r.done && !r.endStep && !r.invalid)
        #expect(r.left == 5)  // bytes past the length are not the body's
    }

    @Test func emptyBodiesEndWithTheHead() {
        for text in ["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n",
                     "HTTP/1.1 304 Not Modified\r\nContent-Length: 20\r\n\r\n"] {
            let r = Self.readEveryWay(text)
            #expect(r.heads.count == 1 && r.heads[0][1] == 1 && r.heads[0][2] == 0, "\(text)")
            #expect(r.body.isEmpty && r.done, "\(text)")
        }
    }

    @Test func chunkedBodyIsUnframedAndTrailersAreReturned() {
        let r = Self.readEveryWay("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5\r\nhello\r\n6;ext=1\r\n world\r\n40\r\n\(String(repeating: "z", count: 64))\r\n"
            + "0\r\ngrpc-status: 0\r\ngrpc-message: fine\r\n\r\n", cap: 40)
        #expect(r.heads == [[200, 1, 1]])
        #expect(String(decoding: r.body, as: UTF8.self) == "hello world" + String(repeating: "z", count: 64))
        #expect(r.endStep && r.done && r.left == 0)
        #expect(r.trailers.contains("grpc-status: 0\r\n"))
        #expect(r.trailers.contains("grpc-message: fine"))
        #expect(!r.trailers.hasSuffix("\r\n\r\n"))
        let plain = Self.readEveryWay("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        #expect(String(decoding: plain.body, as: UTF8.self) == "abc")
        #expect(plain.endStep && plain.done && plain.trailers.isEmpty)
    }

    /// 100 and 103 heads come as interim heads, then the final one with its body.
    @Test func interimHeadsThenFinal() {
        let r = Self.readEveryWay("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
            + "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
        #expect(r.heads == [[100, 0, 0], [103, 0, 0], [201, 1, 1]])
        #expect(String(decoding: r.body, as: UTF8.self) == "ok")
        #expect(r.done)
    }

    /// A response to HEAD has no body whatever its Content-Length or Transfer-Encoding says.
    @Test func headResponseHasNoBody() {
        let r = Self.readEveryWay("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", method: .head)
        #expect(r.heads == [[200, 1, 0]])
        #expect(r.body.isEmpty && r.done && r.left == 0)
        let chunked = Self.readEveryWay("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", method: .head)
        #expect(chunked.heads == [[200, 1, 0]] && chunked.done)
    }

    /// A body without length or chunking runs until the exchange ends.
    @Test func untilCloseBodyEndsWithTheExchange() {
        let r = Self.readEveryWay("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this, however long", exchangeEnds: true)
        #expect(r.heads == [[200, 1, 1]])
        #expect(String(decoding: r.body, as: UTF8.self) == "all of this, however long")
        #expect(r.done && !r.endStep)
        let open = Self.read("HTTP/1.1 200 OK\r\n\r\nabc")
        #expect(!open.done)  // not done until the exchange says so
    }

    @Test func invalidResponsesAreReportedAndStayInvalid() {
        #expect(Self.read("HTTP/1.1 abc OK\r\n\r\n").invalid)
        #expect(Self.read("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").invalid)
        var reader = H1ResponseReader(limits: ParserLimits())
        var head = ResponseHead()
        let bad = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n".utf8)
        var steps: [H1ResponseReader.Step] = []
        var offset = 0
        for _ in 0..<4 {
            let s = bad.withUnsafeBytes { reader.next(UnsafeRawBufferPointer(rebasing: $0[offset...]), head: &head, maxData: 100) }
            steps.append(s)
            if case .head(let k, _, _) = s { offset += k }
        }
        #expect(steps.suffix(2) == [.invalid, .invalid])
    }

    /// The trailer section is read whole: with less room than it needs the reader waits (consuming
    /// nothing, so the worker resumes it when the stream's output drains), then ends with more room.
    @Test func trailersWaitForRoomForTheWholeSection() {
        var reader = H1ResponseReader(limits: ParserLimits())
        var head = ResponseHead()
        let headBytes = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        guard case .head(_, true, true) = headBytes.withUnsafeBytes({ reader.next($0, head: &head, maxData: 100) }) else {
            Issue.record("no head")
            return
        }
        var tail = Array("0\r\ngrpc-status: 14\r\ngrpc-message: unavailable\r\n\r\n".utf8)
        // The last-chunk line may be taken; the fields wait.
        let first = tail.withUnsafeBytes { reader.next($0, head: &head, maxData: 16) }
        guard case .needMore(let used) = first, used <= 3 else {
            Issue.record("expected to wait, got \(first)")
            return
        }
        tail.removeFirst(used)
        #expect(tail.withUnsafeBytes { reader.next($0, head: &head, maxData: 16) } == .needMore(consumed: 0))
        #expect(!reader.isDone)
        let end = tail.withUnsafeBytes { reader.next($0, head: &head, maxData: 1024) }
        guard case .end(let k, let to, let tc) = end else {
            Issue.record("expected the end, got \(end)")
            return
        }
        #expect(k == tail.count)
        #expect(String(decoding: tail[to..<to + tc], as: UTF8.self) == "grpc-status: 14\r\ngrpc-message: unavailable\r\n")
        #expect(reader.isDone)
    }

    /// No room for data (maxData 0): nothing is consumed, and the body continues once there is room.
    @Test func noRoomMeansNoProgress() {
        var reader = H1ResponseReader(limits: ParserLimits())
        var head = ResponseHead()
        let bytes = Array("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc".utf8)
        let first = bytes.withUnsafeBytes { reader.next($0, head: &head, maxData: 0) }
        guard case .head(let k, true, true) = first else {
            Issue.record("expected a final head, got \(first)")
            return
        }
        let rest = Array(bytes[k...])
        #expect(rest.withUnsafeBytes { reader.next($0, head: &head, maxData: 0) } == .needMore(consumed: 0))
        #expect(rest.withUnsafeBytes { reader.next($0, head: &head, maxData: 2) } == .data(offset: 0, count: 2, consumed: 2))
        #expect(reader.inBody && !reader.isDone)
    }

    /// `reset` makes a used reader ready for the next stream's response.
    @Test func resetReadsTheNextResponse() {
        var reader = H1ResponseReader(limits: ParserLimits())
        var head = ResponseHead()
        let one = Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8)
        _ = one.withUnsafeBytes { reader.next($0, head: &head, maxData: 10) }
        #expect(reader.isDone)
        reader.reset(method: .get)
        #expect(!reader.isDone && !reader.inBody)
        let two = Array("HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nx".utf8)
        let s = two.withUnsafeBytes { reader.next($0, head: &head, maxData: 10) }
        #expect(head.status == 404)
        if case .head(_, let final, let hasBody) = s { #expect(final && hasBody) } else { Issue.record("got \(s)") }
    }
}
