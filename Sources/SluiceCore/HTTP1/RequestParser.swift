// Strict HTTP/1.1 request-head parser (RFC 9112 sections 2, 3, 5 and 6; RFC 9110 5 and 7.2).
//
// Line endings: only CRLF ends a line. RFC 9112 section 2.2 allows a recipient to accept a
// bare LF as a line terminator; Sluice REJECTS a bare LF (and a bare CR) anywhere in the head,
// as `.badRequestLine` in the request line and `.badFieldValue` in the field section. A proxy
// that splits lines differently from the server behind it is how requests get smuggled, so we
// take the one reading every implementation agrees on and refuse everything else.
//
// Other deliberate strictness, beyond what the RFC requires of a recipient:
// - obs-fold, whitespace before a field's colon, and whitespace between the request line and
//   the first field are rejected (the RFC allows rejecting them);
// - a request-target may not contain `#`; absolute-form targets may not carry userinfo;
// - Host must be `host[:port]` with a non-empty host and 1 to 5 port digits;
// - Transfer-Encoding must list exactly one coding, `chunked` (empty list elements are
//   ignored as RFC 9110 5.6.1 requires); HTTP/1.0 requests may not use it at all. A final
//   coding other than chunked, and any Transfer-Encoding in HTTP/1.0, is 400 (RFC 9112 6.3);
//   other codings before a final chunked are 501 (not implemented);
// - Content-Length elements must each be 1*DIGIT, even inside a list of equal values;
// - every element of a Connection field must be a token;
// - at most `maxLeadingEmptyLines` CRLFs are skipped before the request line.

/// Parses HTTP/1.x request heads from raw bytes into a `RequestHead` of offsets.
public enum RequestParser {
    /// Most empty lines (CRLF) skipped before the request line (RFC 9112 2.2 asks for at least one).
    public static let maxLeadingEmptyLines = 4

    /// Parses a request head from the start of `bytes` (all bytes received so far on the
    /// connection, from the head's first byte).
    ///
    /// Returns `.incomplete` while no CRLFCRLF is found and limits are not exceeded;
    /// `.complete` with `head` filled (`head.headLength` is the number of bytes the head
    /// takes, leading empty lines included); or `.invalid(error)`. `head` is reset first and
    /// its spans are only meaningful after `.complete`; they are offsets into `bytes`.
    ///
    /// For an absolute-form target (`http://authority/path?q`), `head.host` is the authority,
    /// `head.path` starts at the `/` after the authority, and has count 0 when the target has
    /// no path (the writer must then send `/`, or `*` for OPTIONS, RFC 9112 3.2.4).
    /// For `OPTIONS *`, `head.path` is the `*`. Routing should use `head.host`, which may
    /// carry a `:port`.
    ///
    /// Unsafe-pointer contract: `bytes` must stay valid and unchanged for the duration of the
    /// call only; nothing keeps a pointer to it.
    public static func parse(_ bytes: UnsafeRawBufferPointer, into head: inout RequestHead,
                             limits: ParserLimits) -> ParseStatus {
        reset(&head)
        let count = bytes.count
        guard count > 0, let raw = bytes.baseAddress else { return .incomplete }
        // The bytes are plain octets; treating them as UInt8 is how every byte parser reads.
        let base = raw.assumingMemoryBound(to: UInt8.self)
        let cls = HTTPSyntax.table
        let maxHead = max(limits.maxHeadBytes, 0)
        let end = min(count, maxHead)
        // When bytes run out at `end`: if `maxHead` bytes were available, the head is larger.
        let outOfBytes: ParseStatus = count >= maxHead ? .invalid(.headTooLarge) : .incomplete
        let cr = HTTPSyntax.cr, lf = HTTPSyntax.lf, sp = HTTPSyntax.sp

        // Leading empty lines.
        var p = 0
        var emptyLines = 0
        while p < end && base[p] == cr {
            guard p + 1 < end else { return outOfBytes }
            guard base[p + 1] == lf else { return .invalid(.badRequestLine) }
            emptyLines += 1
            if emptyLines > maxLeadingEmptyLines { return .invalid(.badRequestLine) }
            p += 2
        }

        // Request line. `lineLimit` is the first offset that a line of maxRequestLine bytes
        // plus CRLF never reaches; running out of line there means 414.
        let lineStart = p
        let lineLimit = lineStart + min(max(limits.maxRequestLine, 0), count) + 2
        let stop = min(end, lineLimit)
        let ranOut: ParseStatus = stop == lineLimit ? .invalid(.uriTooLong) : outOfBytes

        // method = token, then exactly one SP.
        while p < stop && cls.has(base[p], HTTPSyntax.tchar) { p += 1 }
        guard p < stop else { return ranOut }
        guard p > lineStart, base[p] == sp else { return .invalid(.badRequestLine) }
        let method = methodFrom(base, lineStart, p)
        // authority-form (CONNECT) is not supported: Sluice does not tunnel.
        if method == .connect { return .invalid(.badRequestLine) }
        head.method = method
        head.methodSpan = ByteSpan(start: lineStart, count: p - lineStart)
        p += 1

        // request-target: visible ASCII except `#`, then exactly one SP.
        let targetStart = p
        var queryMark = -1
        while true {
            // Eight bytes at a time while all are visible ASCII other than `#` (and `?` until
            // the first one is found), then one byte the slow way.
            while p + 8 <= stop {
                let w = HTTPSyntax.load8(base, p)
                if HTTPSyntax.hasByteBelow(w, 0x21) || w & HTTPSyntax.highsWord != 0
                    || HTTPSyntax.hasByte(w, 0x7F) || HTTPSyntax.hasByte(w, UInt8(ascii: "#"))
                    || (queryMark < 0 && HTTPSyntax.hasByte(w, UInt8(ascii: "?"))) { break }
                p += 8
            }
            guard p < stop else { break }
            let b = base[p]
            if b == sp { break }
            guard cls.has(b, HTTPSyntax.targetChar) else { return .invalid(.badRequestLine) }
            if b == UInt8(ascii: "?") && queryMark < 0 { queryMark = p }
            p += 1
        }
        guard p < stop else { return ranOut }
        let targetEnd = p
        guard targetEnd > targetStart else { return .invalid(.badRequestLine) }
        p += 1

        // HTTP-version = "HTTP/" DIGIT "." DIGIT, then CRLF; checked byte by byte so that
        // garbage is refused before the line ends.
        let versionStart = p
        let template: StaticString = "HTTP/0.0\r\n"
        let templateBytes = template.utf8Start
        var i = 0
        while i < 10 {
            guard p < stop else { return ranOut }
            let b = base[p]
            let ok = (i == 5 || i == 7) ? cls.has(b, HTTPSyntax.digit) : b == templateBytes[i]
            guard ok else { return .invalid(.badRequestLine) }
            p += 1
            i += 1
        }
        let major = base[versionStart + 5], minor = base[versionStart + 7]
        guard major == UInt8(ascii: "1"), minor == UInt8(ascii: "1") || minor == UInt8(ascii: "0")
        else { return .invalid(.unsupportedVersion) }
        let version: HTTPVersion = minor == UInt8(ascii: "1") ? .http11 : .http10
        head.version = version
        if p - 2 - lineStart > limits.maxRequestLine { return .invalid(.uriTooLong) }

        // Forms of request-target (RFC 9112 3.2).
        head.target = ByteSpan(start: targetStart, count: targetEnd - targetStart)
        let pathEnd = queryMark >= 0 ? queryMark : targetEnd
        if queryMark >= 0 {
            head.query = ByteSpan(start: queryMark + 1, count: targetEnd - queryMark - 1)
        } else {
            head.query = ByteSpan(start: targetEnd, count: 0)
        }
        var absoluteAuthority: ByteSpan? = nil
        switch base[targetStart] {
        case UInt8(ascii: "/"):
            head.path = ByteSpan(start: targetStart, count: pathEnd - targetStart)
        case UInt8(ascii: "*"):
            guard targetEnd - targetStart == 1, method == .options else {
                return .invalid(.badRequestLine)
            }
            head.path = head.target
        default:
            let authorityStart: Int
            if HTTPSyntax.equalsLowercase(base, targetStart, min(targetStart + 7, targetEnd), "http://") {
                authorityStart = targetStart + 7
            } else if HTTPSyntax.equalsLowercase(base, targetStart, min(targetStart + 8, targetEnd),
                                                 "https://") {
                authorityStart = targetStart + 8
            } else {
                return .invalid(.badRequestLine)
            }
            var authorityEnd = authorityStart
            while authorityEnd < targetEnd {
                let b = base[authorityEnd]
                if b == UInt8(ascii: "/") || b == UInt8(ascii: "?") { break }
                authorityEnd += 1
            }
            guard HTTPSyntax.isValidAuthority(base, authorityStart, authorityEnd, cls) else {
                return .invalid(.badRequestLine)
            }
            absoluteAuthority = ByteSpan(start: authorityStart, count: authorityEnd - authorityStart)
            if authorityEnd < targetEnd && base[authorityEnd] == UInt8(ascii: "/") {
                head.path = ByteSpan(start: authorityEnd, count: pathEnd - authorityEnd)
            } else {
                head.path = ByteSpan(start: authorityEnd, count: 0)
            }
        }

        // Field section.
        var summary = FieldSectionSummary()
        let headEnd: Int
        switch HTTPSyntax.parseFieldSection(base, p, end, maxFields: limits.maxFields, cls,
                                            fields: &head.fields, summary: &summary) {
        case .needMore: return outOfBytes
        case .invalid(let error): return .invalid(error)
        case .complete(let next): headEnd = next
        }

        // Host (RFC 9112 3.2): exactly one in HTTP/1.1, at most one in HTTP/1.0, always valid.
        if summary.hostCount > 1 { return .invalid(.multipleHost) }
        if summary.hostCount == 1 {
            let value = head.fields[summary.hostIndex].value
            let valueStart = Int(value.start)
            guard HTTPSyntax.isValidAuthority(base, valueStart, valueStart + Int(value.count), cls)
            else { return .invalid(.badFieldValue) }
            head.hostIndex = Int32(summary.hostIndex)
            head.host = value
        } else if version == .http11 {
            return .invalid(.missingHost)
        }
        // The authority of an absolute-form target takes precedence (RFC 9112 3.2.2).
        if let authority = absoluteAuthority { head.host = authority }

        // Connection options and the fields they name.
        var options = ConnectionOptions()
        if summary.connectionFields > 0,
           let error = HTTPSyntax.applyConnectionOptions(base, cls, fields: &head.fields,
                                                         options: &options) {
            return .invalid(error)
        }

        // Framing (RFC 9112 6.1-6.3).
        if summary.transferEncodingFields > 0 {
            if summary.hasContentLength { return .invalid(.bothContentLengthAndTransferEncoding) }
            // RFC 9112 6.3 (4): when chunked is not the final coding the body cannot be delimited
            // (400, must close); 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
            guard version == .http11, summary.lastCodingIsChunked else {
                return .invalid(.transferEncodingNotChunked)
            }
            // A final chunked after other codings (`gzip, chunked`, `chunked, chunked`): 501.
            guard summary.transferEncodingIsChunked else { return .invalid(.unsupportedTransferEncoding) }
            head.framing = .chunked
        } else if summary.hasContentLength {
            head.framing = .contentLength(summary.contentLength)
        } else {
            head.framing = .none
        }

        head.keepAlive = version == .http11 ? !options.close : (options.keepAlive && !options.close)
        // A 100-continue expectation in an HTTP/1.0 request is ignored (RFC 9110 10.1.1).
        head.expectContinue = summary.expectContinue && version == .http11
        head.headLength = headEnd
        return .complete
    }

    /// Puts every field of `head` back to its initial value, keeping the fields' capacity.
    @inline(__always)
    private static func reset(_ head: inout RequestHead) {
        head.method = .get
        head.methodSpan = .empty
        head.target = .empty
        head.path = .empty
        head.query = .empty
        head.version = .http11
        head.fields.removeAll(keepingCapacity: true)
        head.headLength = 0
        head.framing = .none
        head.keepAlive = true
        head.expectContinue = false
        head.hostIndex = -1
        head.host = .empty
    }

    /// The method named by the token `base[start..<end]` (methods are case-sensitive).
    @inline(__always)
    private static func methodFrom(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> HTTPMethod {
        switch end - start {
        case 3:
            if HTTPSyntax.equals(base, start, end, "GET") { return .get }
            if HTTPSyntax.equals(base, start, end, "PUT") { return .put }
        case 4:
            if HTTPSyntax.equals(base, start, end, "POST") { return .post }
            if HTTPSyntax.equals(base, start, end, "HEAD") { return .head }
        case 5:
            if HTTPSyntax.equals(base, start, end, "PATCH") { return .patch }
            if HTTPSyntax.equals(base, start, end, "TRACE") { return .trace }
        case 6:
            if HTTPSyntax.equals(base, start, end, "DELETE") { return .delete }
        case 7:
            if HTTPSyntax.equals(base, start, end, "OPTIONS") { return .options }
            if HTTPSyntax.equals(base, start, end, "CONNECT") { return .connect }
        default:
            break
        }
        return .other
    }
}
