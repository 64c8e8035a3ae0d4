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

/// Where a request head's parse stopped, so the next call resumes there instead of at byte 0.
///
/// One per head being received (the exchange owns it); `RequestHeadProgress()` starts a new head.
/// Its fields are the parser's: offsets into the head's bytes, and what the field lines said so far.
public struct RequestHeadProgress: Sendable {
    enum Stage: UInt8, Sendable { case leading, method, target, version, fields }
    var stage = Stage.leading
    /// Offset of the first byte not yet accepted (the start of the unfinished token or line).
    var p = 0
    var emptyLines = 0
    var lineStart = 0
    var targetStart = 0
    var queryMark = -1
    var versionStart = 0
    /// The authority of an absolute-form target (start -1: none).
    var absoluteAuthority = ByteSpan(start: -1, count: 0)
    /// The field section is known to hold no line feed before this offset beyond `p`.
    var lfScan = 0
    var summary = FieldSectionSummary()

    /// A fresh parse: the next call starts at the head's first byte.
    public init() {}
}

/// Parses HTTP/1.x request heads from raw bytes into a `RequestHead` of offsets.
public enum RequestParser {
    /// Most empty lines (CRLF) skipped before the request line (RFC 9112 2.2 asks for at least one).
    public static let maxLeadingEmptyLines = 4

    /// Parses a request head from the start of `bytes` in one go (a fresh `RequestHeadProgress`).
    ///
    /// Same contract as `parse(_:into:progress:limits:)`; kept for callers that have the whole
    /// head at once (tests, fuzzers, the demo backend).
    public static func parse(_ bytes: UnsafeRawBufferPointer, into head: inout RequestHead,
                             limits: ParserLimits) -> ParseStatus {
        var progress = RequestHeadProgress()
        return parse(bytes, into: &head, progress: &progress, limits: limits)
    }

    /// Parses a request head from the start of `bytes` (all bytes received so far on the
    /// connection, from the head's first byte), resuming where the previous call with the same
    /// `progress` stopped.
    ///
    /// A connection keeps one `RequestHeadProgress` per head: start it fresh (`RequestHeadProgress()`)
    /// for a new head, and call again with the same `head` and `progress` when more bytes arrived
    /// (the earlier bytes unchanged at the same offsets). Every byte is examined once, so a head that
    /// arrives in N pieces costs O(its length), not O(N x length). A field line still incomplete is
    /// looked at again only once its line feed has arrived (or the head limit is reached).
    ///
    /// Returns `.incomplete` while no CRLFCRLF is found and limits are not exceeded;
    /// `.complete` with `head` filled (`head.headLength` is the number of bytes the head
    /// takes, leading empty lines included); or `.invalid(error)`. `head` is reset by the first
    /// call of a fresh `progress`; its spans are only meaningful after `.complete`; they are
    /// offsets into `bytes`.
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
                             progress: inout RequestHeadProgress, limits: ParserLimits) -> ParseStatus {
        if progress.stage == .leading && progress.p == 0 { reset(&head) }
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
        var p = progress.p

        if progress.stage == .leading {
            // Leading empty lines.
            while p < end && base[p] == cr {
                guard p + 1 < end else { progress.p = p; return outOfBytes }
                guard base[p + 1] == lf else { return .invalid(.badRequestLine) }
                progress.emptyLines += 1
                if progress.emptyLines > maxLeadingEmptyLines { return .invalid(.badRequestLine) }
                p += 2
            }
            guard p < end else { progress.p = p; return outOfBytes }
            progress.lineStart = p
            progress.stage = .method
        }

        if progress.stage != .fields {
            // Request line. `lineLimit` is the first offset that a line of maxRequestLine bytes
            // plus CRLF never reaches; running out of line there means 414.
            let lineStart = progress.lineStart
            let lineLimit = lineStart + min(max(limits.maxRequestLine, 0), count) + 2
            let stop = min(end, lineLimit)
            let ranOut: ParseStatus = stop == lineLimit ? .invalid(.uriTooLong) : outOfBytes

            if progress.stage == .method {
                // method = token, then exactly one SP.
                while p < stop && cls.has(base[p], HTTPSyntax.tchar) { p += 1 }
                guard p < stop else { progress.p = p; return ranOut }
                guard p > lineStart, base[p] == sp else { return .invalid(.badRequestLine) }
                let method = methodFrom(base, lineStart, p)
                // authority-form (CONNECT) is not supported: Sluice does not tunnel.
                if method == .connect { return .invalid(.badRequestLine) }
                head.method = method
                head.methodSpan = ByteSpan(start: lineStart, count: p - lineStart)
                p += 1
                progress.targetStart = p
                progress.stage = .target
            }

            if progress.stage == .target {
                // request-target: visible ASCII except `#`, then exactly one SP.
                var queryMark = progress.queryMark
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
                progress.queryMark = queryMark
                guard p < stop else { progress.p = p; return ranOut }
                guard p > progress.targetStart else { return .invalid(.badRequestLine) }
                p += 1
                progress.versionStart = p
                progress.stage = .version
            }

            // HTTP-version = "HTTP/" DIGIT "." DIGIT, then CRLF; checked byte by byte so that
            // garbage is refused before the line ends.
            let versionStart = progress.versionStart
            let template: StaticString = "HTTP/0.0\r\n"
            let templateBytes = template.utf8Start
            var i = p - versionStart
            while i < 10 {
                guard p < stop else { progress.p = p; return ranOut }
                let b = base[p]
                let ok = (i == 5 || i == 7) ? cls.has(b, HTTPSyntax.digit) : b == templateBytes[i]
                guard ok else { return .invalid(.badRequestLine) }
                p += 1
                i += 1
            }
            let major = base[versionStart + 5], minor = base[versionStart + 7]
            guard major == UInt8(ascii: "1"), minor == UInt8(ascii: "1") || minor == UInt8(ascii: "0")
            else { return .invalid(.unsupportedVersion) }
            head.version = minor == UInt8(ascii: "1") ? .http11 : .http10
            if p - 2 - lineStart > limits.maxRequestLine { return .invalid(.uriTooLong) }
            if let error = finishTarget(base, cls, &head, &progress) { return .invalid(error) }
            progress.stage = .fields
            progress.lfScan = p
        }

        // Field section. A line that was incomplete at the previous call is scanned again only
        // once a line feed has arrived after what was seen then (so a long line arriving in
        // small pieces is not re-read per piece).
        if progress.lfScan > p && end < maxHead {
            let from = progress.lfScan
            if !HTTPSyntax.containsByte(base, from, end, lf) {
                progress.p = p
                progress.lfScan = end
                return outOfBytes
            }
        }
        let headEnd: Int
        switch HTTPSyntax.parseFieldSection(base, p, end, maxFields: limits.maxFields, cls,
                                            fields: &head.fields, summary: &progress.summary) {
        case .needMore(let resumeAt):
            progress.p = resumeAt
            progress.lfScan = end
            return outOfBytes
        case .invalid(let error): return .invalid(error)
        case .complete(let next): headEnd = next
        }
        return finishHead(base, cls, headEnd: headEnd, &head, &progress)
    }

    /// Sets the target, path and query spans once the request line is complete, and finds the
    /// authority of an absolute-form target. Returns the error when the target is invalid.
    private static func finishTarget(_ base: UnsafePointer<UInt8>, _ cls: ByteClassTable,
                                     _ head: inout RequestHead, _ progress: inout RequestHeadProgress) -> HTTPParseError? {
        // Forms of request-target (RFC 9112 3.2).
        let targetStart = progress.targetStart
        let targetEnd = progress.versionStart - 1
        let queryMark = progress.queryMark
        head.target = ByteSpan(start: targetStart, count: targetEnd - targetStart)
        let pathEnd = queryMark >= 0 ? queryMark : targetEnd
        if queryMark >= 0 {
            head.query = ByteSpan(start: queryMark + 1, count: targetEnd - queryMark - 1)
        } else {
            head.query = ByteSpan(start: targetEnd, count: 0)
        }
        switch base[targetStart] {
        case UInt8(ascii: "/"):
            head.path = ByteSpan(start: targetStart, count: pathEnd - targetStart)
        case UInt8(ascii: "*"):
            guard targetEnd - targetStart == 1, head.method == .options else { return .badRequestLine }
            head.path = head.target
        default:
            let authorityStart: Int
            if HTTPSyntax.equalsLowercase(base, targetStart, min(targetStart + 7, targetEnd), "http://") {
                authorityStart = targetStart + 7
            } else if HTTPSyntax.equalsLowercase(base, targetStart, min(targetStart + 8, targetEnd),
                                                 "https://") {
                authorityStart = targetStart + 8
            } else {
                return .badRequestLine
            }
            var authorityEnd = authorityStart
            while authorityEnd < targetEnd {
                let b = base[authorityEnd]
                if b == UInt8(ascii: "/") || b == UInt8(ascii: "?") { break }
                authorityEnd += 1
            }
            guard HTTPSyntax.isValidAuthority(base, authorityStart, authorityEnd, cls) else { return .badRequestLine }
            progress.absoluteAuthority = ByteSpan(start: authorityStart, count: authorityEnd - authorityStart)
            if authorityEnd < targetEnd && base[authorityEnd] == UInt8(ascii: "/") {
                head.path = ByteSpan(start: authorityEnd, count: pathEnd - authorityEnd)
            } else {
                head.path = ByteSpan(start: authorityEnd, count: 0)
            }
        }
        return nil
    }

    /// Checks Host, Connection and framing once the field section is complete.
    private static func finishHead(_ base: UnsafePointer<UInt8>, _ cls: ByteClassTable, headEnd: Int,
                                   _ head: inout RequestHead, _ progress: inout RequestHeadProgress) -> ParseStatus {
        let summary = progress.summary
        let version = head.version
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
        if progress.absoluteAuthority.start >= 0 { head.host = progress.absoluteAuthority }

        // Connection options and the fields they name.
        var options = ConnectionOptions()
        if summary.connectionIsKeepAlive {
            options.keepAlive = true
        } else if summary.connectionFields > 0,
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
        if options.upgrade && version == .http11 && summary.upgradeIndex >= 0 {
            head.upgrade = head.fields[summary.upgradeIndex].value
        }
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
        head.upgrade = .empty
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
