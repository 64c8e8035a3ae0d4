// libFuzzer target: ResponseParser.parse on arbitrary bytes, as a reply to GET and to HEAD.
//
// Besides "never crash", each input is checked for:
// - determinism: a second parse (into a reused head holding stale results) gives the same result;
// - on `.complete`: headLength <= input count and <= maxHeadBytes, the head ends with CRLFCRLF,
//   every span lies within headLength, the status is 100...599, names are tokens, values hold no
//   CR/LF/NUL/CTL, framing follows RFC 9112 6.3 from the fields;
// - incrementality: every shorter prefix of a complete head is `.incomplete`, and the head alone
//   parses to the same result;
// - the client head that HeadWriter builds from it (as the proxy does) parses again as a valid
//   response with the same status and the framing the proxy chose.
// Both the default limits and small ones (chosen from the input length) are used.
import FuzzSupport
import SluiceCore

/// Entry point called by libFuzzer once per input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzResponseParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    ResponseParserFuzz.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if !FUZZING
/// Replays the files given as arguments (a build without libFuzzer, for debugging).
@main
enum Replay {
    static func main() {
        replayFiles(CommandLine.arguments.dropFirst()) { ResponseParserFuzz.run($0) }
    }
}
#endif

/// The checks for one input.
enum ResponseParserFuzz {
    static func run(_ input: UnsafeRawBufferPointer) {
        var small = ParserLimits()
        small.maxHeadBytes = 24 + input.count % 229
        small.maxFields = 1 + input.count % 7
        var reused = ResponseHead()
        for limits in [ParserLimits(), small] {
            for method in [HTTPMethod.get, .head] {
                check(input, method: method, limits: limits, reused: &reused)
            }
        }
    }

    static func check(_ input: UnsafeRawBufferPointer, method: HTTPMethod, limits: ParserLimits,
                      reused: inout ResponseHead) {
        var head = ResponseHead()
        let status = ResponseParser.parse(input, requestMethod: method, into: &head, limits: limits)
        let again = ResponseParser.parse(input, requestMethod: method, into: &reused, limits: limits)
        fuzzCheck(status == again, "second parse gave \(again), first \(status)")
        guard case .complete = status else { return }
        fuzzCheck(same(head, reused), "second parse gave a different head")

        let bytes = Array(input)
        let h = head.headLength
        fuzzCheck(h >= 16 && h <= bytes.count, "headLength \(h) of \(bytes.count) bytes")
        fuzzCheck(h <= limits.maxHeadBytes, "headLength \(h) over maxHeadBytes \(limits.maxHeadBytes)")
        fuzzCheck(Array(bytes[(h - 4)..<h]) == [13, 10, 13, 10], "head does not end with CRLFCRLF")
        checkHead(head, bytes: bytes, method: method, limits: limits)

        // Incrementality.
        let head0 = head
        let step = h <= 300 ? 1 : h / 97
        var k = 0
        while k < h {
            let s = ResponseParser.parse(UnsafeRawBufferPointer(rebasing: input[0..<k]), requestMethod: method,
                                         into: &head, limits: limits)
            fuzzCheck(s == .incomplete, "prefix of \(k) of a complete \(h)-byte head gave \(s)")
            k += step
        }
        let alone = ResponseParser.parse(UnsafeRawBufferPointer(rebasing: input[0..<h]), requestMethod: method,
                                         into: &head, limits: limits)
        fuzzCheck(alone == .complete && same(head, head0), "the head alone parsed as \(alone)")

        checkRoundTrip(head0, input: input, method: method)
    }

    static func checkHead(_ head: ResponseHead, bytes: [UInt8], method: HTTPMethod, limits: ParserLimits) {
        let h = head.headLength
        func within(_ s: ByteSpan, _ what: String) {
            fuzzCheck(s.start >= 0 && s.count >= 0 && Int(s.start) + Int(s.count) <= h,
                      "\(what) span \(s) outside the \(h)-byte head")
        }
        within(head.reason, "reason")
        for (i, f) in head.fields.enumerated() {
            within(f.name, "field \(i) name")
            within(f.value, "field \(i) value")
        }
        fuzzCheck(Array(bytes[0..<5]) == Array("HTTP/".utf8), "status line prefix")
        let digits = bytes[9..<12].map { Int($0) - 0x30 }
        fuzzCheck(digits.allSatisfy { (0...9).contains($0) }, "status is not 3 digits")
        fuzzCheck(head.status == digits[0] * 100 + digits[1] * 10 + digits[2] && (100...599).contains(head.status),
                  "status \(head.status)")
        fuzzCheck(head.version == (bytes[7] == UInt8(ascii: "1") ? .http11 : .http10) && bytes[5] == UInt8(ascii: "1"),
                  "version")
        fuzzCheck(bytes[head.reason.range].allSatisfy(FuzzBytes.isFieldValueByte), "reason holds CR, LF, NUL or a CTL")
        fuzzCheck(head.fields.count <= limits.maxFields, "\(head.fields.count) fields over \(limits.maxFields)")

        var contentLengths: [ArraySlice<UInt8>] = []
        var transferEncodings = 0
        for (i, f) in head.fields.enumerated() {
            let name = bytes[f.name.range], value = bytes[f.value.range]
            fuzzCheck(FuzzBytes.isToken(name), "field \(i) name is not a token")
            fuzzCheck(value.allSatisfy(FuzzBytes.isFieldValueByte), "field \(i) value holds CR, LF, NUL or a CTL")
            let lower = FuzzBytes.lowercased(name)
            if lower == "content-length" { contentLengths.append(value) }
            if lower == "transfer-encoding" { transferEncodings += 1 }
            if ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "transfer-encoding"]
                .contains(lower) {
                fuzzCheck(f.flags.contains(.hopByHop), "\(lower) not flagged hop-by-hop")
            }
        }
        let bodiless = method == .head || head.status < 200 || head.status == 204 || head.status == 304
        switch head.framing {
        case .none:
            fuzzCheck(bodiless, "no body for status \(head.status)")
        case .chunked:
            fuzzCheck(!bodiless && head.version == .http11 && transferEncodings > 0 && contentLengths.isEmpty,
                      "chunked framing")
        case .contentLength(let n):
            fuzzCheck(!bodiless && transferEncodings == 0 && !contentLengths.isEmpty, "content-length framing")
            for value in contentLengths {
                for element in value.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                    let d = element.drop { $0 == 0x20 || $0 == 0x09 }.reversed().drop { $0 == 0x20 || $0 == 0x09 }
                    fuzzCheck(!d.isEmpty && d.allSatisfy { $0 >= 0x30 && $0 <= 0x39 },
                              "Content-Length element is not 1*DIGIT")
                    let text = String(decoding: d.reversed(), as: UTF8.self)
                    fuzzCheck(UInt64(text) == n, "Content-Length \(text) but framing \(n)")
                }
            }
        case .untilClose:
            fuzzCheck(!bodiless && transferEncodings == 0 && contentLengths.isEmpty && !head.keepAlive,
                      "until-close framing")
        }
    }

    /// The client head built as the proxy builds it must parse again with the same status and framing.
    static func checkRoundTrip(_ head: ResponseHead, input: UnsafeRawBufferPointer, method: HTTPMethod) {
        let out: BodyFraming
        switch head.framing {
        case .none: out = .none
        case .contentLength(let n): out = .contentLength(n)
        case .chunked, .untilClose: out = .chunked
        }
        var bytes: [UInt8] = []
        HeadWriter.appendResponseStart(head, bytes: input, keepContentLength: head.framing == .none, to: &bytes)
        HeadWriter.appendFraming(out, closeConnection: false, http10KeepAlive: false, to: &bytes)
        var wide = ParserLimits()
        wide.maxHeadBytes = 1 << 22
        wide.maxFields = 1 << 16
        var client = ResponseHead()
        let status = bytes.withUnsafeBytes {
            ResponseParser.parse($0, requestMethod: method, into: &client, limits: wide)
        }
        fuzzCheck(status == .complete,
                  "the client head does not parse: \(status): \(String(decoding: bytes, as: UTF8.self).debugDescription)")
        fuzzCheck(client.headLength == bytes.count, "the client head is \(bytes.count) bytes, parsed \(client.headLength)")
        fuzzCheck(client.status == head.status, "status changed")
        fuzzCheck(client.framing == out, "framing \(client.framing), proxy chose \(out)")
        fuzzCheck(client.keepAlive, "the client head closes the connection")
    }

    static func same(_ a: ResponseHead, _ b: ResponseHead) -> Bool {
        a.version == b.version && a.status == b.status && a.reason == b.reason && a.fields == b.fields
            && a.headLength == b.headLength && a.framing == b.framing && a.keepAlive == b.keepAlive
    }
}
