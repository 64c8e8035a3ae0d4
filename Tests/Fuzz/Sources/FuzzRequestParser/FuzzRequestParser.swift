// libFuzzer target: RequestParser.parse on arbitrary bytes.
//
// Besides "never crash", each input is checked for:
// - determinism: a second parse (into a reused head holding stale results) gives the same result;
// - on `.complete`: headLength <= input count and <= maxHeadBytes, the head ends with CRLFCRLF,
//   every span lies within headLength, names are tokens, values hold no CR/LF/NUL/CTL, Host and
//   framing agree with the fields, limits are respected;
// - incrementality: every shorter prefix of a complete head is `.incomplete` (the proxy parses as
//   bytes arrive), and the head alone parses to the same result;
// - resumption: fed in pieces (sizes from the input) with one `RequestHeadProgress`, as a
//   connection does, the parse ends exactly as one parse of all the bytes, valid or not (an
//   invalid byte in a last, unterminated field line is reported once its line feed arrives);
// - the upstream head that HeadWriter builds from it parses again as a valid request with the same
//   method, target, host and framing (nothing invalid is passed on).
// Both the default limits and small ones (chosen from the input length) are used.
import FuzzSupport
import SluiceCore

/// Entry point called by libFuzzer once per input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequestParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    RequestParserFuzz.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if !FUZZING
/// Replays the files given as arguments (a build without libFuzzer, for debugging).
@main
enum Replay {
    static func main() {
        replayFiles(CommandLine.arguments.dropFirst()) { RequestParserFuzz.run($0) }
    }
}
#endif

/// The checks for one input.
enum RequestParserFuzz {
    static func run(_ input: UnsafeRawBufferPointer) {
        var small = ParserLimits()
        small.maxRequestLine = 16 + input.count % 61
        small.maxHeadBytes = 48 + input.count % 203
        small.maxFields = 1 + input.count % 7
        var reused = RequestHead()
        for limits in [ParserLimits(), small] {
            check(input, limits: limits, reused: &reused)
        }
    }

    static func check(_ input: UnsafeRawBufferPointer, limits: ParserLimits, reused: inout RequestHead) {
        var head = RequestHead()
        let status = RequestParser.parse(input, into: &head, limits: limits)
        let again = RequestParser.parse(input, into: &reused, limits: limits)
        fuzzCheck(status == again, "second parse gave \(again), first \(status)")
        checkResumed(input, limits: limits, whole: status, head: head)
        guard case .complete = status else { return }
        fuzzCheck(same(head, reused), "second parse gave a different head")

        let bytes = Array(input)
        let h = head.headLength
        fuzzCheck(h >= 16 && h <= bytes.count, "headLength \(h) of \(bytes.count) bytes")
        fuzzCheck(h <= limits.maxHeadBytes, "headLength \(h) over maxHeadBytes \(limits.maxHeadBytes)")
        fuzzCheck(Array(bytes[(h - 4)..<h]) == [13, 10, 13, 10], "head does not end with CRLFCRLF")
        checkSpans(head, bytes: bytes)
        checkSemantics(head, bytes: bytes, limits: limits)

        // Incrementality.
        let head0 = head
        let step = h <= 300 ? 1 : h / 97
        var k = 0
        while k < h {
            let s = RequestParser.parse(UnsafeRawBufferPointer(rebasing: input[0..<k]), into: &head, limits: limits)
            fuzzCheck(s == .incomplete, "prefix of \(k) of a complete \(h)-byte head gave \(s)")
            k += step
        }
        let alone = RequestParser.parse(UnsafeRawBufferPointer(rebasing: input[0..<h]), into: &head, limits: limits)
        fuzzCheck(alone == .complete && same(head, head0), "the head alone parsed as \(alone)")

        checkRoundTrip(head0, input: input, bytes: bytes)
    }

    /// Feeds the input in pieces with one progress: the first terminal status (or `.incomplete`
    /// after the last piece) must be the whole input's status, with the same head.
    static func checkResumed(_ input: UnsafeRawBufferPointer, limits: ParserLimits, whole: ParseStatus, head: RequestHead) {
        guard !input.isEmpty else { return }
        var resumed = RequestHead()
        var progress = RequestHeadProgress()
        let piece = 1 + Int(input[0]) % 23
        var n = 0
        var status = ParseStatus.incomplete
        while n < input.count {
            n = min(input.count, n + piece)
            status = RequestParser.parse(UnsafeRawBufferPointer(rebasing: input[0..<n]), into: &resumed, progress: &progress,
                                         limits: limits)
            if status != .incomplete { break }
        }
        if status == .incomplete, case .invalid = whole {
            // A field line still incomplete is looked at again only once its line feed arrives
            // (so a long line in small pieces is not re-read per piece): the error must come then.
            let more = Array(input) + [10]
            let ended = more.withUnsafeBytes {
                RequestParser.parse($0, into: &resumed, progress: &progress, limits: limits)
            }
            if case .invalid = ended {} else {
                fuzzCheck(false, "in \(piece)-byte pieces still \(ended) after the line ended; in one go: \(whole)")
            }
            return
        }
        fuzzCheck(status == whole, "in \(piece)-byte pieces: \(status), in one go: \(whole)")
        if case .complete = whole, status == whole {
            fuzzCheck(same(resumed, head), "in \(piece)-byte pieces the head differs")
        }
    }

    static func checkSpans(_ head: RequestHead, bytes: [UInt8]) {
        let h = head.headLength
        func within(_ s: ByteSpan, _ what: String) {
            fuzzCheck(s.start >= 0 && s.count >= 0 && Int(s.start) + Int(s.count) <= h,
                      "\(what) span \(s) outside the \(h)-byte head")
        }
        within(head.methodSpan, "method")
        within(head.target, "target")
        within(head.path, "path")
        within(head.query, "query")
        within(head.host, "host")
        for (i, f) in head.fields.enumerated() {
            within(f.name, "field \(i) name")
            within(f.value, "field \(i) value")
        }
        let t = head.target.range
        fuzzCheck(!t.isEmpty, "empty target")
        if head.path.count > 0 {
            fuzzCheck(head.path.range.lowerBound >= t.lowerBound && head.path.range.upperBound <= t.upperBound,
                      "path outside target")
        }
        if head.query.count > 0 {
            fuzzCheck(head.query.range.lowerBound > t.lowerBound && head.query.range.upperBound == t.upperBound
                      && bytes[head.query.range.lowerBound - 1] == UInt8(ascii: "?"), "query not at the end after ?")
        }
    }

    static func checkSemantics(_ head: RequestHead, bytes: [UInt8], limits: ParserLimits) {
        let method = bytes[head.methodSpan.range]
        fuzzCheck(FuzzBytes.isToken(method), "method is not a token")
        let expected: HTTPMethod
        switch String(decoding: method, as: UTF8.self) {
        case "GET": expected = .get
        case "HEAD": expected = .head
        case "POST": expected = .post
        case "PUT": expected = .put
        case "DELETE": expected = .delete
        case "OPTIONS": expected = .options
        case "PATCH": expected = .patch
        case "TRACE": expected = .trace
        case "CONNECT": expected = .connect
        default: expected = .other
        }
        fuzzCheck(head.method == expected && head.method != .connect, "method \(head.method) for \(method)")
        fuzzCheck(bytes[head.target.range].allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "#") },
                  "target holds a byte that may not be sent")
        let lineLength = head.methodSpan.range.count + 1 + head.target.range.count + 9
        fuzzCheck(lineLength <= limits.maxRequestLine, "request line \(lineLength) over \(limits.maxRequestLine)")
        fuzzCheck(head.fields.count <= limits.maxFields, "\(head.fields.count) fields over \(limits.maxFields)")

        var hosts: [Int] = []
        var contentLengths: [ArraySlice<UInt8>] = []
        var transferEncodings = 0
        for (i, f) in head.fields.enumerated() {
            let name = bytes[f.name.range], value = bytes[f.value.range]
            fuzzCheck(FuzzBytes.isToken(name), "field \(i) name is not a token")
            fuzzCheck(value.allSatisfy(FuzzBytes.isFieldValueByte), "field \(i) value holds CR, LF, NUL or a CTL")
            if let first = value.first, let last = value.last {
                fuzzCheck(first != 0x20 && first != 0x09 && last != 0x20 && last != 0x09, "field \(i) value not trimmed")
            }
            let lower = FuzzBytes.lowercased(name)
            switch lower {
            case "host": hosts.append(i)
            case "content-length": contentLengths.append(value)
            case "transfer-encoding": transferEncodings += 1
            default: break
            }
            if ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "transfer-encoding"]
                .contains(lower) {
                fuzzCheck(f.flags.contains(.hopByHop), "\(lower) not flagged hop-by-hop")
            }
            fuzzCheck(f.flags.contains(.host) == (lower == "host"), "host flag on field \(i)")
            fuzzCheck(f.flags.contains(.contentLength) == (lower == "content-length"), "content-length flag on \(i)")
        }
        fuzzCheck(hosts.count <= 1, "\(hosts.count) Host fields accepted")
        if head.version == .http11 { fuzzCheck(hosts.count == 1, "HTTP/1.1 without Host accepted") }
        if let i = hosts.first {
            fuzzCheck(Int(head.hostIndex) == i, "hostIndex \(head.hostIndex), Host is field \(i)")
        } else {
            fuzzCheck(head.hostIndex == -1, "hostIndex \(head.hostIndex) without a Host field")
        }
        switch head.framing {
        case .chunked:
            fuzzCheck(head.version == .http11 && contentLengths.isEmpty && transferEncodings > 0, "chunked framing")
        case .contentLength(let n):
            fuzzCheck(transferEncodings == 0 && !contentLengths.isEmpty, "content-length framing")
            for value in contentLengths {
                for element in value.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                    let digits = element.drop { $0 == 0x20 || $0 == 0x09 }.reversed().drop { $0 == 0x20 || $0 == 0x09 }
                    fuzzCheck(!digits.isEmpty && digits.allSatisfy { $0 >= 0x30 && $0 <= 0x39 },
                              "Content-Length element is not 1*DIGIT")
                    let text = String(decoding: digits.reversed(), as: UTF8.self)
                    fuzzCheck(UInt64(text) == n, "Content-Length \(text) but framing \(n)")
                }
            }
        case .none:
            fuzzCheck(transferEncodings == 0 && contentLengths.isEmpty, "no framing with framing fields")
        case .untilClose:
            fuzzCheck(false, "a request framed until close")
        }
        if head.expectContinue { fuzzCheck(head.version == .http11, "100-continue in HTTP/1.0") }
    }

    /// The upstream head built from a valid request must itself be a valid request that means the same.
    static func checkRoundTrip(_ head: RequestHead, input: UnsafeRawBufferPointer, bytes: [UInt8]) {
        var out: [UInt8] = []
        let client: [UInt8] = Array("192.0.2.1".utf8)
        let fallback: [UInt8] = Array("127.0.0.1:8080".utf8)
        let trust = bytes.count % 2 == 0
        client.withUnsafeBytes { c in
            fallback.withUnsafeBytes { f in
                HeadWriter.appendRequestStart(head, bytes: input, clientAddress: c, forwardedProto: .http,
                                              fallbackHost: f, trustForwarded: trust, to: &out)
            }
        }
        HeadWriter.appendFraming(head.framing, closeConnection: false, http10KeepAlive: false, to: &out)
        var wide = ParserLimits()
        wide.maxRequestLine = 1 << 20
        wide.maxHeadBytes = 1 << 22
        wide.maxFields = 1 << 16
        var up = RequestHead()
        let status = out.withUnsafeBytes { RequestParser.parse($0, into: &up, limits: wide) }
        fuzzCheck(status == .complete, "the upstream head does not parse: \(status): \(String(decoding: out, as: UTF8.self).debugDescription)")
        fuzzCheck(up.headLength == out.count, "the upstream head is \(out.count) bytes, parsed \(up.headLength)")
        fuzzCheck(out[up.methodSpan.range] == bytes[head.methodSpan.range], "method changed")
        fuzzCheck(up.framing == head.framing, "framing changed from \(head.framing) to \(up.framing)")
        fuzzCheck(up.version == .http11, "upstream version")
        let sentHost = out[up.host.range]
        if head.host.count > 0 {
            fuzzCheck(sentHost == bytes[head.host.range], "host changed")
        } else {
            fuzzCheck(Array(sentHost) == fallback, "fallback host not sent")
        }
        let absolute = head.path.start != head.target.start
        if !absolute {
            fuzzCheck(out[up.target.range] == bytes[head.target.range], "origin-form target changed")
        } else {
            fuzzCheck(out[up.path.range] == bytes[head.path.range] || (head.path.count == 0 && up.path.count == 1),
                      "absolute-form path changed")
            fuzzCheck(out[up.query.range] == bytes[head.query.range], "absolute-form query changed")
        }
        fuzzCheck(!up.expectContinue, "Expect forwarded")
    }

    static func same(_ a: RequestHead, _ b: RequestHead) -> Bool {
        a.method == b.method && a.methodSpan == b.methodSpan && a.target == b.target && a.path == b.path
            && a.query == b.query && a.version == b.version && a.fields == b.fields && a.headLength == b.headLength
            && a.framing == b.framing && a.keepAlive == b.keepAlive && a.expectContinue == b.expectContinue
            && a.hostIndex == b.hostIndex && a.host == b.host
    }
}
