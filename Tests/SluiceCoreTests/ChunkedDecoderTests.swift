import Testing
import SluiceCore

// MARK: Helpers

private func b(_ s: String) -> [UInt8] { Array(s.utf8) }

/// What feeding a chunked body through the decoder produced.
private struct Outcome: Equatable, CustomStringConvertible {
    var data: [UInt8] = []
    /// Trailer bytes when done, nil when not done.
    var trailers: [UInt8]? = nil
    var error: HTTPParseError? = nil
    /// Bytes after the body (left unconsumed when done).
    var leftover: [UInt8] = []
    /// A broken ChunkStep contract, described.
    var contractViolation: String? = nil

    var description: String {
        "data=\(String(decoding: data, as: UTF8.self).debugDescription) trailers=\(trailers.map { String(decoding: $0, as: UTF8.self) }.debugDescription) error=\(String(describing: error)) leftover=\(leftover.count) violation=\(contractViolation ?? "none")"
    }
}

/// Feeds `pieces` as successive reads, the way the IO layer does: unconsumed bytes are kept
/// and passed again with the next read. Checks the ChunkStep contract on every step.
private func feed(_ pieces: [ArraySlice<UInt8>], limits: ParserLimits = ParserLimits()) -> Outcome {
    var decoder = ChunkedDecoder(limits: limits)
    var buffer: [UInt8] = []
    var out = Outcome()
    for (index, piece) in pieces.enumerated() {
        buffer.append(contentsOf: piece)
        loop: while true {
            let step = buffer.withUnsafeBytes { decoder.decode($0) }
            switch step {
            case .data(let offset, let count, let consumed):
                guard count > 0, offset >= 0, consumed >= offset + count, consumed <= buffer.count else {
                    out.contractViolation = "bad data step \(step) for \(buffer.count) bytes"
                    return out
                }
                out.data.append(contentsOf: buffer[offset..<offset + count])
                buffer.removeFirst(consumed)
            case .needMore(let consumed):
                guard consumed >= 0, consumed <= buffer.count else {
                    out.contractViolation = "bad needMore \(consumed) for \(buffer.count) bytes"
                    return out
                }
                buffer.removeFirst(consumed)
                break loop
            case .done(let consumed, let trailerOffset, let trailerCount):
                guard consumed <= buffer.count, trailerOffset + trailerCount <= consumed, decoder.isDone else {
                    out.contractViolation = "bad done \(step) for \(buffer.count) bytes"
                    return out
                }
                out.trailers = Array(buffer[trailerOffset..<trailerOffset + trailerCount])
                buffer.removeFirst(consumed)
                out.leftover = buffer
                for rest in pieces[(index + 1)...] { out.leftover.append(contentsOf: rest) }
                return out
            case .invalid(let error):
                out.error = error
                return out
            }
        }
    }
    out.leftover = buffer
    return out
}

/// Every way to cut `bytes` in two, and 1-byte pieces.
private func splits(_ bytes: [UInt8]) -> [[ArraySlice<UInt8>]] {
    var result: [[ArraySlice<UInt8>]] = [[bytes[...]]]
    for i in 0...bytes.count { result.append([bytes[0..<i], bytes[i...]]) }
    result.append(bytes.indices.map { bytes[$0...$0] })
    return result
}

// MARK: Valid bodies

/// A well-formed chunked body and what decoding it must give.
struct ValidChunkedCase: Sendable, CustomTestStringConvertible {
    var name: String
    var encoded: String
    var data: String
    var trailers: String = ""
    var leftover: String = ""
    var testDescription: String { name }
}

private let validBodies: [ValidChunkedCase] = [
    .init(name: "empty body", encoded: "0\r\n\r\n", data: ""),
    .init(name: "single chunk", encoded: "5\r\nhello\r\n0\r\n\r\n", data: "hello"),
    .init(name: "many chunks", encoded: "1\r\na\r\n2\r\nbc\r\n10\r\n0123456789abcdef\r\n3\r\n\r\n\r\r\n0\r\n\r\n",
          data: "abc0123456789abcdef\r\n\r"),
    .init(name: "uppercase hex and leading zeros", encoded: "000A\r\n0123456789\r\n00\r\n\r\n", data: "0123456789"),
    .init(name: "sixteen hex digits", encoded: "000000000000000B\r\nhello world\r\n0000000000000000\r\n\r\n",
          data: "hello world"),
    .init(name: "extensions", encoded: "5;name=value\r\nhello\r\n6;a;b=c;flag\r\n world\r\n0;last\r\n\r\n",
          data: "hello world"),
    .init(name: "extensions with BWS and quoted values",
          encoded: "5 \t; a = \"q \\\"x\\\" ;=\" ;b=tok\r\nhello\r\n0 ; z=\"\"\r\n\r\n", data: "hello"),
    .init(name: "trailers", encoded: "3\r\nabc\r\n0\r\nX-Sum: abc\r\nX-Other:  1 \r\n\r\n", data: "abc",
          trailers: "X-Sum: abc\r\nX-Other:  1 \r\n"),
    .init(name: "bytes after the body are left", encoded: "2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
          data: "hi", leftover: "GET / HTTP/1.1\r\n"),
    .init(name: "trailers then next request", encoded: "0\r\nA: 1\r\n\r\nPOST", data: "", trailers: "A: 1\r\n",
          leftover: "POST"),
    .init(name: "data that looks like chunk syntax", encoded: "7\r\n0\r\n\r\n\r\n\r\n0\r\n\r\n", data: "0\r\n\r\n\r\n"),
]

@Test("valid bodies decode exactly, in every 2-piece split and in 1-byte pieces", arguments: validBodies)
func validBody(_ c: ValidChunkedCase) {
    let encoded = b(c.encoded)
    let expected = Outcome(data: b(c.data), trailers: b(c.trailers), error: nil, leftover: b(c.leftover))
    for pieces in splits(encoded) {
        let got = feed(pieces)
        #expect(got == expected, "pieces \(pieces.map(\.count))")
        if got != expected { break }
    }
}

@Test("a body of many chunks is reassembled exactly at every split")
func manyChunksEverySplit() {
    var payload: [UInt8] = []
    var encoded: [UInt8] = []
    var seed: UInt32 = 12345
    for size in [1, 15, 16, 17, 255, 256, 1000] {
        let chunk = (0..<size).map { _ -> UInt8 in
            seed = seed &* 1_103_515_245 &+ 12345
            return UInt8(truncatingIfNeeded: seed >> 16)
        }
        payload += chunk
        encoded += b(String(size, radix: 16) + (size % 2 == 0 ? ";e=\"v\"" : "") + "\r\n") + chunk + b("\r\n")
    }
    encoded += b("0\r\nDigest: x\r\n\r\n")
    let expected = Outcome(data: payload, trailers: b("Digest: x\r\n"), error: nil, leftover: [])
    for pieces in splits(encoded) {
        let got = feed(pieces)
        #expect(got == expected, "pieces \(pieces.map(\.count))")
        if got != expected { break }
    }
}

@Test("the decoder reports .data with exact offsets and never a zero-length step")
func exactSteps() {
    var decoder = ChunkedDecoder(limits: ParserLimits())
    let input = b("5\r\nhel")
    #expect(input.withUnsafeBytes { decoder.decode($0) } == .data(offset: 3, count: 3, consumed: 6))
    #expect([UInt8]().withUnsafeBytes { decoder.decode($0) } == .needMore(consumed: 0))
    let rest = b("lo\r\n0\r")
    #expect(rest.withUnsafeBytes { decoder.decode($0) } == .data(offset: 0, count: 2, consumed: 2))
    #expect(rest[2...].withUnsafeBytes { decoder.decode($0) } == .needMore(consumed: 4))
    #expect(!decoder.isDone)
    let end = b("\nT: 1\r\n")
    #expect(end.withUnsafeBytes { decoder.decode($0) } == .needMore(consumed: 1))
    let trailer = b("T: 1\r\n\r\nX")
    #expect(trailer.withUnsafeBytes { decoder.decode($0) } == .done(consumed: 8, trailerOffset: 0, trailerCount: 6))
    #expect(decoder.isDone)
    #expect(trailer[8...].withUnsafeBytes { decoder.decode($0) } == .done(consumed: 0, trailerOffset: 0, trailerCount: 0))
}

@Test("the last chunk and an empty trailer section in one call")
func doneInOneCall() {
    var decoder = ChunkedDecoder(limits: ParserLimits())
    let input = b("0\r\n\r\n")
    #expect(input.withUnsafeBytes { decoder.decode($0) } == .done(consumed: 5, trailerOffset: 3, trailerCount: 0))
}

@Test("a failed decoder stays failed")
func stickyFailure() {
    var decoder = ChunkedDecoder(limits: ParserLimits())
    #expect(b("z").withUnsafeBytes { decoder.decode($0) } == .invalid(.badChunkSize))
    #expect(b("5\r\nhello\r\n").withUnsafeBytes { decoder.decode($0) } == .invalid(.badChunkSize))
    #expect(!decoder.isDone)
}

@Test("a size line of exactly maxChunkLine bytes passes, one more fails")
func chunkLineBoundary() {
    var l = ParserLimits()
    l.maxChunkLine = 8
    #expect(feed([b("1;abc=de\r\nx\r\n0\r\n\r\n")[...]], limits: l).data == b("x"))
    #expect(feed([b("1;abc=def\r\nx\r\n0\r\n\r\n")[...]], limits: l).error == .chunkLineTooLong)
}

@Test("a trailer section of exactly maxTrailerBytes passes, one more fails")
func trailerBoundary() {
    var l = ParserLimits()
    l.maxTrailerBytes = 10 // "A: 123\r\n\r\n"
    #expect(feed([b("0\r\nA: 123\r\n\r\n")[...]], limits: l).trailers == b("A: 123\r\n"))
    #expect(feed([b("0\r\nA: 1234\r\n\r\n")[...]], limits: l).error == .trailerTooLarge)
}

// MARK: Malformed bodies

/// A malformed chunked body and the error decoding must stop with.
struct BadChunkedCase: Sendable, CustomTestStringConvertible {
    var name: String
    var encoded: [UInt8]
    var error: HTTPParseError
    var limits = ParserLimits()
    var testDescription: String { name }

    init(_ name: String, _ encoded: String, _ error: HTTPParseError, limits: ParserLimits = ParserLimits()) {
        self.name = name
        self.encoded = Array(encoded.utf8)
        self.error = error
        self.limits = limits
    }

    init(_ name: String, bytes: [UInt8], _ error: HTTPParseError) {
        self.name = name
        self.encoded = bytes
        self.error = error
    }
}

private let shortLine: ParserLimits = { var l = ParserLimits(); l.maxChunkLine = 16; return l }()
private let smallTrailers: ParserLimits = { var l = ParserLimits(); l.maxTrailerBytes = 16; return l }()

private let badBodies: [BadChunkedCase] = [
    .init("non-hex size", "g\r\n", .badChunkSize),
    .init("empty size", "\r\nhello\r\n0\r\n\r\n", .badChunkSize),
    .init("negative size", "-1\r\n", .badChunkSize),
    .init("0x prefix", "0x5\r\nhello\r\n", .badChunkSize),
    .init("leading space", " 5\r\nhello\r\n", .badChunkSize),
    .init("whitespace without extension", "5 \r\nhello\r\n", .badChunkSize),
    .init("bare LF after size", "5\nhello\r\n0\r\n\r\n", .badChunkSize),
    .init("bare CR after size", "5\rhello\r\n", .badChunkSize),
    .init("NUL in size line", bytes: b("5") + [0] + b("\r\n"), .badChunkSize),
    .init("17 hex digits", "10000000000000000\r\n", .chunkSizeOverflow),
    .init("18 f digits", "ffffffffffffffffff\r\n", .chunkSizeOverflow),
    .init("17 digits with leading zeros", "00000000000000001\r\nx\r\n", .chunkSizeOverflow),
    .init("missing CRLF after data", "5\r\nhelloX\r\n0\r\n\r\n", .badChunkTerminator),
    .init("bare LF after data", "5\r\nhello\n0\r\n\r\n", .badChunkTerminator),
    .init("CR without LF after data", "5\r\nhello\r0\r\n\r\n", .badChunkTerminator),
    .init("data longer than the size", "3\r\nhello\r\n0\r\n\r\n", .badChunkTerminator),
    .init("empty extension name", "5;\r\nhello\r\n", .badChunkSize),
    .init("extension name not a token", "5;a(b)\r\nhello\r\n", .badChunkSize),
    .init("extension without value after =", "5;a=\r\nhello\r\n", .badChunkSize),
    .init("extension with trailing BWS", "5;a=b \r\nhello\r\n", .badChunkSize),
    .init("bare LF in extension", "5;a\nb\r\nhello\r\n", .badChunkSize),
    .init("bare CR in extension", "5;a\rb\r\nhello\r\n", .badChunkSize),
    .init("NUL in extension", bytes: b("5;a=b") + [0] + b("\r\nhello\r\n"), .badChunkSize),
    .init("CR inside quoted extension", "5;a=\"x\r\nhello\r\n", .badChunkSize),
    .init("DEL in extension", "5;a=b\u{7F}\r\nhello\r\n", .badChunkSize),
    .init("too-long extension", "5;" + String(repeating: "a", count: 40) + "\r\nhello\r\n0\r\n\r\n", .chunkLineTooLong,
          limits: shortLine),
    .init("too-long extension, line incomplete", "5;" + String(repeating: "a", count: 40), .chunkLineTooLong,
          limits: shortLine),
    .init("too-long size line of zeros", String(repeating: "0", count: 20) + "\r\n", .chunkLineTooLong,
          limits: shortLine),
    .init("too-large trailers", "0\r\nX-Long: " + String(repeating: "a", count: 40) + "\r\n\r\n", .trailerTooLarge,
          limits: smallTrailers),
    .init("too-large trailers, incomplete", "0\r\nX-Long: " + String(repeating: "a", count: 40), .trailerTooLarge,
          limits: smallTrailers),
    .init("bad trailer name", "0\r\nBad Name: x\r\n\r\n", .badTrailer),
    .init("folded trailer", "0\r\nA: 1\r\n folded\r\n\r\n", .badTrailer),
    .init("NUL in trailer", bytes: b("0\r\nA: x") + [0] + b("\r\n\r\n"), .badTrailer),
    .init("bare LF ends the trailers", "0\r\n\n", .badTrailer),
    .init("bare LF after a trailer", "0\r\nA: 1\n\r\n", .badTrailer),
    .init("space before colon in trailer", "0\r\nA : 1\r\n\r\n", .badTrailer),
    .init("bare LF after the last chunk", "0\n\r\n", .badChunkSize),
]

@Test("malformed bodies fail with the exact error at every split", arguments: badBodies)
func badBody(_ c: BadChunkedCase) {
    for pieces in splits(c.encoded) {
        let got = feed(pieces, limits: c.limits)
        #expect(got.error == c.error, "pieces \(pieces.map(\.count)): \(got)")
        #expect(got.contractViolation == nil)
        if got.error != c.error { break }
    }
    #expect(c.error.status == 400)
}

@Test("mutated bodies never break the ChunkStep contract")
func mutatedBodies() {
    var seed: UInt64 = 0xC0FFEE
    func next() -> Int {
        seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Int(truncatingIfNeeded: seed >> 33)
    }
    let alphabet = b(" \t\r\n;=\"\\0aFf") + [0x00, 0x7F, 0x80]
    for c in validBodies {
        let original = b(c.encoded)
        for _ in 0..<300 {
            var bytes = original
            for _ in 0..<(1 + next() % 2) {
                let i = next() % bytes.count
                if next() % 2 == 0 { bytes[i] = alphabet[next() % alphabet.count] } else { bytes.insert(alphabet[next() % alphabet.count], at: i) }
            }
            let cut = next() % (bytes.count + 1)
            let got = feed([bytes[..<cut], bytes[cut...]])
            #expect(got.contractViolation == nil, "\(bytes)")
        }
    }
}
