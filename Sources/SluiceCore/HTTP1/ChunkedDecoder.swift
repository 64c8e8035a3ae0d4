// Incremental, strict decoder of the chunked transfer coding (RFC 9112 section 7.1).
//
//   chunked-body = *chunk last-chunk trailer-section CRLF
//   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//   chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//
// Extensions are checked against that grammar (token names, token or quoted-string values)
// and skipped. A size line is bounded by `maxChunkLine` bytes (CRLF not counted) and may not
// contain a bare CR or LF: a lax extension parser is a known request-smuggling vector.

/// One step of decoding a chunked body.
public enum ChunkStep: Equatable, Sendable {
    /// `count` bytes of body data start at `offset` in input; `consumed` bytes of input are
    /// used up (consumed >= offset+count). `count` is never 0.
    case data(offset: Int, count: Int, consumed: Int)
    /// Need more input; `consumed` bytes (e.g. part of a size line, CRLFs) were used up and
    /// must not be passed again.
    case needMore(consumed: Int)
    /// The last chunk and the trailer section were read. `consumed` bytes used up. Trailer
    /// fields (validated header syntax, without the final empty line) are at
    /// input[trailerOffset ..< trailerOffset+trailerCount] (count 0 when none).
    case done(consumed: Int, trailerOffset: Int, trailerCount: Int)
    /// The body is malformed; the decoder stays failed and returns this again.
    case invalid(HTTPParseError)
}

/// Decodes a chunked body incrementally: size lines and CRLFs may be split across reads.
///
/// Call `decode` with the bytes not yet consumed; it returns one step. After `.data`, call
/// again with the rest; after `.needMore`, call again when more bytes have arrived, starting
/// at the first byte not consumed. After `.done` further calls return
/// `.done(consumed: 0, trailerOffset: 0, trailerCount: 0)`; after `.invalid` they return the
/// same error.
public struct ChunkedDecoder: Sendable {
    /// Where in the chunked grammar the next byte falls.
    private enum State: UInt8, Sendable {
        /// First HEXDIG of a chunk-size.
        case sizeStart
        /// More HEXDIGs, or what follows them.
        case size
        /// BWS after the size; only `;` may follow.
        case sizeBWS
        /// After `;`: BWS, then the extension name.
        case extNameStart
        /// Inside an extension name.
        case extName
        /// BWS after an extension name; `=` or `;` must follow.
        case extNameBWS
        /// After `=`: BWS, then a token or a quoted-string.
        case extValueStart
        /// Inside a token value.
        case extToken
        /// Inside a quoted-string value.
        case extQuoted
        /// After a backslash inside a quoted-string.
        case extQuotedPair
        /// After the closing quote.
        case extAfterQuote
        /// BWS after a value; only `;` may follow.
        case extValueBWS
        /// The CR of the size line was read; LF must follow.
        case sizeLF
        /// Inside chunk data.
        case data
        /// Chunk data ended; CR must follow.
        case dataCR
        /// CR after chunk data was read; LF must follow.
        case dataLF
        /// After the last chunk: the trailer section.
        case trailers
        /// The body is complete.
        case done
        /// The body was invalid (`error` says why).
        case failed
    }

    private var state: State = .sizeStart
    /// Value of the chunk-size digits read so far.
    private var size: UInt64 = 0
    /// Number of chunk-size digits read so far (at most 16).
    private var digits = 0
    /// Bytes of the current size line read so far, CRLF not counted.
    private var lineLength = 0
    /// Data bytes left in the current chunk.
    private var remaining: UInt64 = 0
    /// Why decoding failed (meaningful in `.failed`).
    private var error: HTTPParseError = .badChunkSize
    /// `ParserLimits.maxChunkLine`.
    private let maxChunkLine: Int
    /// `ParserLimits.maxTrailerBytes`.
    private let maxTrailerBytes: Int

    /// Most hex digits in a chunk-size (leading zeros included); 16 always fit in UInt64.
    public static let maxSizeDigits = 16

    /// A decoder at the start of a chunked body.
    public init(limits: ParserLimits) {
        maxChunkLine = limits.maxChunkLine
        maxTrailerBytes = limits.maxTrailerBytes
    }

    /// True once the last chunk and the trailer section were read.
    public var isDone: Bool { state == .done }

    /// Decodes from `input` (bytes not yet consumed). Returns one step; call again with the
    /// remaining bytes until `.needMore` or `.done`.
    ///
    /// Unsafe-pointer contract: `input` must stay valid for the duration of the call only;
    /// offsets in the result are relative to `input`.
    public mutating func decode(_ input: UnsafeRawBufferPointer) -> ChunkStep {
        switch state {
        case .done: return .done(consumed: 0, trailerOffset: 0, trailerCount: 0)
        case .failed: return .invalid(error)
        default: break
        }
        let n = input.count
        guard n > 0, let raw = input.baseAddress else { return .needMore(consumed: 0) }
        // The bytes are plain octets; treating them as UInt8 is how every byte parser reads.
        let base = raw.assumingMemoryBound(to: UInt8.self)
        let cls = HTTPSyntax.table
        var p = 0
        while true {
            switch state {
            case .data:
                guard p < n else { return .needMore(consumed: p) }
                let take = min(UInt64(n - p), remaining)
                remaining -= take
                if remaining == 0 { state = .dataCR }
                return .data(offset: p, count: Int(take), consumed: p + Int(take))
            case .trailers:
                return decodeTrailers(base, p, n, cls)
            case .done, .failed:
                // Not reachable: both return from the loop when entered.
                return .invalid(error)
            default:
                guard p < n else { return .needMore(consumed: p) }
                let b = base[p]
                p += 1
                if let failure = step(b, cls) { return fail(failure) }
            }
        }
    }

    /// Records `failure` and returns it as a step.
    private mutating func fail(_ failure: HTTPParseError) -> ChunkStep {
        state = .failed
        error = failure
        return .invalid(failure)
    }

    /// Consumes one byte of a size line or of the CRLF after chunk data.
    @inline(__always)
    private mutating func step(_ b: UInt8, _ cls: ByteClassTable) -> HTTPParseError? {
        let cr = HTTPSyntax.cr, lf = HTTPSyntax.lf
        let semicolon = UInt8(ascii: ";"), equals = UInt8(ascii: "="), quote = UInt8(ascii: "\"")
        let isWS = cls.has(b, HTTPSyntax.whitespace)
        let isTchar = cls.has(b, HTTPSyntax.tchar)
        switch state {
        case .sizeLF:
            guard b == lf else { return .badChunkSize }
            if size == 0 {
                state = .trailers
            } else {
                remaining = size
                state = .data
            }
            return nil
        case .dataCR:
            guard b == cr else { return .badChunkTerminator }
            state = .dataLF
            return nil
        case .dataLF:
            guard b == lf else { return .badChunkTerminator }
            state = .sizeStart
            return nil
        default:
            break
        }

        // A byte of the size line.
        if b != cr {
            lineLength += 1
            if lineLength > maxChunkLine { return .chunkLineTooLong }
        }
        switch state {
        case .sizeStart:
            guard cls.has(b, HTTPSyntax.hexDigit) else { return .badChunkSize }
            size = HTTPSyntax.hexValue(b)
            digits = 1
            state = .size
        case .size:
            if cls.has(b, HTTPSyntax.hexDigit) {
                digits += 1
                if digits > Self.maxSizeDigits { return .chunkSizeOverflow }
                size = size << 4 | HTTPSyntax.hexValue(b)
            } else if b == cr {
                state = .sizeLF
            } else if b == semicolon {
                state = .extNameStart
            } else if isWS {
                state = .sizeBWS
            } else {
                return .badChunkSize
            }
        case .sizeBWS:
            if b == semicolon { state = .extNameStart } else if !isWS { return .badChunkSize }
        case .extNameStart:
            if isTchar { state = .extName } else if !isWS { return .badChunkSize }
        case .extName:
            if isTchar {
            } else if b == cr {
                state = .sizeLF
            } else if b == semicolon {
                state = .extNameStart
            } else if b == equals {
                state = .extValueStart
            } else if isWS {
                state = .extNameBWS
            } else {
                return .badChunkSize
            }
        case .extNameBWS:
            if b == semicolon {
                state = .extNameStart
            } else if b == equals {
                state = .extValueStart
            } else if !isWS {
                return .badChunkSize
            }
        case .extValueStart:
            if isTchar {
                state = .extToken
            } else if b == quote {
                state = .extQuoted
            } else if !isWS {
                return .badChunkSize
            }
        case .extToken:
            if isTchar {
            } else if b == cr {
                state = .sizeLF
            } else if b == semicolon {
                state = .extNameStart
            } else if isWS {
                state = .extValueBWS
            } else {
                return .badChunkSize
            }
        case .extQuoted:
            if b == quote {
                state = .extAfterQuote
            } else if b == UInt8(ascii: "\\") {
                state = .extQuotedPair
            } else if !cls.has(b, HTTPSyntax.qdtext) {
                return .badChunkSize
            }
        case .extQuotedPair:
            guard cls.has(b, HTTPSyntax.fieldChar) else { return .badChunkSize }
            state = .extQuoted
        case .extAfterQuote:
            if b == cr {
                state = .sizeLF
            } else if b == semicolon {
                state = .extNameStart
            } else if isWS {
                state = .extValueBWS
            } else {
                return .badChunkSize
            }
        case .extValueBWS:
            if b == semicolon { state = .extNameStart } else if !isWS { return .badChunkSize }
        case .sizeLF, .dataCR, .dataLF, .data, .trailers, .done, .failed:
            // Handled above or by the caller; never passed here.
            return .badChunkSize
        }
        if state == .sizeLF { lineLength = 0 }
        return nil
    }

    /// Reads the trailer section from `start`: waits (consuming nothing of it) until the whole
    /// section is in `base[start..<n]`, bounded by `maxTrailerBytes`.
    private mutating func decodeTrailers(_ base: UnsafePointer<UInt8>, _ start: Int, _ n: Int,
                                         _ cls: ByteClassTable) -> ChunkStep {
        let available = n - start
        let limitEnd = start + min(max(maxTrailerBytes, 0), available)
        var p = start
        while true {
            switch HTTPSyntax.scanFieldLine(base, p, limitEnd, cls) {
            case .needMore:
                // Having maxTrailerBytes bytes without the end means the section is larger.
                if available >= maxTrailerBytes { return fail(.trailerTooLarge) }
                return .needMore(consumed: start)
            case .invalid:
                return fail(.badTrailer)
            case .endOfSection(let next):
                state = .done
                return .done(consumed: next, trailerOffset: start, trailerCount: next - 2 - start)
            case .field(let line):
                p = line.next
            }
        }
    }
}
