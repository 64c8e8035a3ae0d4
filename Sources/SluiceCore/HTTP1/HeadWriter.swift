/// The scheme the client used, sent upstream as X-Forwarded-Proto.
public enum ForwardedProto: Sendable {
    case http
    case https

    /// The end of the X-Forwarded-For line and the X-Forwarded-Proto line: one static string
    /// (one append) rather than four pieces.
    var fields: StaticString {
        switch self {
        case .http: "\r\nX-Forwarded-Proto: http\r\n"
        case .https: "\r\nX-Forwarded-Proto: https\r\n"
        }
    }

    /// `fields` followed by X-Forwarded-Host's name.
    var fieldsBeforeHost: StaticString {
        switch self {
        case .http: "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: "
        case .https: "\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: "
        }
    }
}

/// Serializes heads the proxy sends: the request to the upstream and the response to the client.
///
/// Writers append to a caller-owned `[UInt8]` whose capacity is reused, so steady state allocates
/// nothing. Hop-by-hop fields (flagged by the parser) are never copied; framing fields are
/// written anew by `appendFraming`, which also ends the head.
public enum HeadWriter {
    /// Appends the request line and the end-to-end fields of `head` for an upstream.
    ///
    /// Drops hop-by-hop fields, Content-Length (re-framed) and Expect (the proxy answers
    /// 100-continue itself). X-Forwarded-*: from a trusted peer (`trustForwarded`), the client's
    /// X-Forwarded-For list is kept with `clientAddress` appended and its X-Forwarded-Proto/-Host
    /// are kept; from anyone else they are replaced (X-Forwarded-For is just `clientAddress`,
    /// Proto and Host are set here). For an absolute-form target the path is sent in origin-form and
    /// Host is set from the authority. `fallbackHost` is sent as Host when an HTTP/1.0 request has none.
    ///
    /// `policy` is the routing decision's: a client copy of its cohort header is dropped and the
    /// route's own fields are appended last. With `requestID`, every X-Request-Id the client sent is
    /// dropped and this one is sent. Forwarded and X-Real-IP are kept only from a trusted peer.
    /// `normalizingPath` (the route's `forwardNormalizedPath`) sends `PathNormalizer`'s form of the path.
    public static func appendRequestStart(
        _ head: RequestHead, bytes: UnsafeRawBufferPointer, clientAddress: UnsafeRawBufferPointer,
        forwardedProto: ForwardedProto, fallbackHost: UnsafeRawBufferPointer, trustForwarded: Bool = false,
        normalizingPath: Bool = false, policy: RoutePolicy? = nil, requestID: UnsafeRawBufferPointer? = nil,
        to out: inout [UInt8]
    ) {
        appendRequestFields(head, bytes: bytes, clientAddress: clientAddress, forwardedProto: forwardedProto,
                            fallbackHost: fallbackHost, trustForwarded: trustForwarded, normalizingPath: normalizingPath,
                            dropped: policy?.droppedRequestField ?? [], dropRequestID: requestID != nil, to: &out)
        policy?.appendRequestFields(to: &out)
        if let requestID {
            // One id, always: the client's copies were dropped above.
            appendStatic("X-Request-Id: ", to: &out)
            out.append(contentsOf: requestID)
            appendStatic("\r\n", to: &out)
        }
    }

    /// The request line, the client's end-to-end fields (less `dropped`, a lowercased name), Host
    /// and X-Forwarded-*.
    private static func appendRequestFields(
        _ head: RequestHead, bytes: UnsafeRawBufferPointer, clientAddress: UnsafeRawBufferPointer,
        forwardedProto: ForwardedProto, fallbackHost: UnsafeRawBufferPointer, trustForwarded: Bool,
        normalizingPath: Bool, dropped: [UInt8], dropRequestID: Bool, to out: inout [UInt8]
    ) {
        // The received head goes out in as few copies as possible: the request line and every kept
        // field line that is already in the form written here are collected into one run.
        var run = VerbatimRun()
        let absoluteForm = head.path.start != head.target.start || head.target.count == 0
        let methodEnd = Int(head.methodSpan.start) + Int(head.methodSpan.count)
        let targetEnd = Int(head.target.start) + Int(head.target.count)
        let normalize = normalizingPath && head.path.count > 0
            && PathNormalizer.needsNormalization(UnsafeRawBufferPointer(rebasing: bytes[head.path.range]))
        if !absoluteForm && !normalize && Int(head.target.start) == methodEnd + 1 && bytes[methodEnd] == 0x20 {
            run.take(Int(head.methodSpan.start), targetEnd, bytes, &out)
            if head.version == .http11 && isVersionLine(bytes, targetEnd) {
                run.take(targetEnd, targetEnd + 11, bytes, &out)
            } else {
                run.flush(bytes, &out)
                appendStatic(" HTTP/1.1\r\n", to: &out)
            }
        } else {
            appendRequestLine(head, bytes: bytes, absoluteForm: absoluteForm, normalize: normalize, to: &out)
        }

        var skip: FieldFlags = trustForwarded ? [.hopByHop, .contentLength, .expect, .xForwardedFor]
            : [.hopByHop, .contentLength, .expect, .xForwardedFor, .xForwardedOther, .clientForwarding]
        if dropRequestID { skip.insert(.requestID) }
        var sawXFF = false
        var keptOther = false
        for field in head.fields {
            if !field.flags.isDisjoint(with: skip) {
                if field.flags.contains(.xForwardedFor) { sawXFF = trustForwarded }
                continue
            }
            if field.flags.contains(.xForwardedOther) { keptOther = true }
            if field.flags.contains(.host) && absoluteForm { continue }
            // As nginx (underscores_in_headers off): a name with `_` is dropped, since an upstream
            // that maps `_` to `-` (CGI-style) could read `Transfer_Encoding` as framing.
            if field.flags.contains(.underscoreName) { continue }
            // A client must not choose the cohort the upstream sees.
            if !dropped.isEmpty && field.name.count == dropped.count && nameEquals(bytes, field.name, dropped) { continue }
            appendKeptField(bytes, field, &run, to: &out)
        }
        run.flush(bytes, &out)
        if absoluteForm || (head.hostIndex < 0) {
            appendStatic("Host: ", to: &out)
            if head.host.count > 0 { append(bytes, head.host, to: &out) } else { out.append(contentsOf: fallbackHost) }
            appendStatic("\r\n", to: &out)
        }
        appendStatic("X-Forwarded-For: ", to: &out)
        if sawXFF {
            for field in head.fields where field.flags.contains(.xForwardedFor) && field.value.count > 0 {
                append(bytes, field.value, to: &out)
                appendStatic(", ", to: &out)
            }
        }
        out.append(contentsOf: clientAddress)
        if keptOther {  // a trusted proxy already set X-Forwarded-Proto/-Host
            appendStatic("\r\n", to: &out)
            return
        }
        if head.host.count > 0 {
            appendStatic(forwardedProto.fieldsBeforeHost, to: &out)
            append(bytes, head.host, to: &out)
            appendStatic("\r\n", to: &out)
        } else {
            appendStatic(forwardedProto.fields, to: &out)
        }
    }

    /// The request line rewritten: the method, the target in origin-form (`normalize`: the path
    /// in `PathNormalizer`'s form), and HTTP/1.1.
    private static func appendRequestLine(
        _ head: RequestHead, bytes: UnsafeRawBufferPointer, absoluteForm: Bool, normalize: Bool, to out: inout [UInt8]
    ) {
        append(bytes, head.methodSpan, to: &out)
        out.append(0x20)
        if normalize {
            PathNormalizer.append(normalizing: UnsafeRawBufferPointer(rebasing: bytes[head.path.range]), to: &out)
            if head.query.count > 0 {
                out.append(UInt8(ascii: "?"))
                append(bytes, head.query, to: &out)
            }
        } else if absoluteForm && head.target.count > 0 && bytes[Int(head.target.start)] != UInt8(ascii: "*") {
            if head.path.count == 0 { out.append(UInt8(ascii: "/")) } else { append(bytes, head.path, to: &out) }
            if head.query.count > 0 {
                out.append(UInt8(ascii: "?"))
                append(bytes, head.query, to: &out)
            }
        } else {
            append(bytes, head.target, to: &out)
        }
        appendStatic(" HTTP/1.1\r\n", to: &out)
    }

    /// Appends the status line and end-to-end fields of an upstream response for the client.
    /// `keepContentLength` keeps the upstream's Content-Length (for bodiless replies such as
    /// HEAD and 304, where it describes the representation, not this message).
    /// `policy` appends the routing decision's response fields (sticky Set-Cookie, cohort header).
    public static func appendResponseStart(
        _ head: ResponseHead, bytes: UnsafeRawBufferPointer, keepContentLength: Bool, policy: RoutePolicy? = nil,
        gzip: Bool = false, to out: inout [UInt8]
    ) {
        defer { policy?.appendResponseFields(to: &out) }
        var run = VerbatimRun()
        if let line = verbatimStatusLine(head, bytes) {
            run.take(line.lowerBound, line.upperBound, bytes, &out)
        } else {
            appendStatic("HTTP/1.1 ", to: &out)
            appendDecimal(UInt64(head.status), to: &out)
            out.append(0x20)
            append(bytes, head.reason, to: &out)
            appendStatic("\r\n", to: &out)
        }
        for field in head.fields {
            if field.flags.contains(.hopByHop) { continue }
            if field.flags.contains(.contentLength) && (!keepContentLength || gzip) { continue }
            if gzip && field.name.count == 4 && nameEquals(bytes, field.name, etagName)
                && field.value.count > 0 && bytes[Int(field.value.start)] == UInt8(ascii: "\"") {
                // The compressed bytes are a different representation: a strong validator becomes weak.
                run.flush(bytes, &out)
                appendStatic("ETag: W/", to: &out)
                append(bytes, field.value, to: &out)
                appendStatic("\r\n", to: &out)
                continue
            }
            appendKeptField(bytes, field, &run, to: &out)
        }
        run.flush(bytes, &out)
        if gzip { appendStatic("Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n", to: &out) }
    }

    private static let etagName: [UInt8] = Array("etag".utf8)

    /// Appends the framing field for a body, a Connection field when needed, and the empty line.
    /// `closeConnection` adds `Connection: close`; `http10KeepAlive` adds `Connection: keep-alive`.
    public static func appendFraming(
        _ framing: BodyFraming, closeConnection: Bool, http10KeepAlive: Bool, to out: inout [UInt8]
    ) {
        switch framing {
        case .contentLength(let n):
            appendStatic("Content-Length: ", to: &out)
            appendDecimal(n, to: &out)
            if !closeConnection && !http10KeepAlive {
                appendStatic("\r\n\r\n", to: &out)  // the field's end and the head's, in one append
                return
            }
            appendStatic("\r\n", to: &out)
        case .chunked:
            appendStatic("Transfer-Encoding: chunked\r\n", to: &out)
        case .none, .untilClose:
            break
        }
        if closeConnection {
            appendStatic("Connection: close\r\n", to: &out)
        } else if http10KeepAlive {
            appendStatic("Connection: keep-alive\r\n", to: &out)
        }
        appendStatic("\r\n", to: &out)
    }

    /// Appends a complete response generated by the proxy itself (errors, 404, configured
    /// `respond:` answers): the one serializer for every response Sluice makes up.
    ///
    /// A body is sent unless the request was HEAD or the status forbids one (1xx, 204, 304);
    /// Content-Length is sent except for 1xx and 204 (RFC 9110 8.6).
    public static func appendSimpleResponse(
        status: Int, contentType: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer, closeConnection: Bool,
        http10KeepAlive: Bool, headOnly: Bool, to out: inout [UInt8]
    ) {
        appendStatic("HTTP/1.1 ", to: &out)
        appendDecimal(UInt64(status), to: &out)
        out.append(0x20)
        appendStatic(reasonPhrase(status), to: &out)
        appendStatic("\r\nContent-Type: ", to: &out)
        out.append(contentsOf: contentType)
        appendStatic("\r\nServer: sluice\r\n", to: &out)
        let noLength = status < 200 || status == 204
        appendFraming(noLength ? .none : .contentLength(UInt64(body.count)), closeConnection: closeConnection,
                      http10KeepAlive: http10KeepAlive, to: &out)
        if !headOnly && !noLength && status != 304 { out.append(contentsOf: body) }
    }

    /// `appendSimpleResponse` with a static content type.
    public static func appendSimpleResponse(
        status: Int, contentType: StaticString, body: UnsafeRawBufferPointer, closeConnection: Bool,
        http10KeepAlive: Bool, headOnly: Bool, to out: inout [UInt8]
    ) {
        appendSimpleResponse(status: status, contentType: UnsafeRawBufferPointer(start: contentType.utf8Start, count: contentType.utf8CodeUnitCount),
                             body: body, closeConnection: closeConnection, http10KeepAlive: http10KeepAlive,
                             headOnly: headOnly, to: &out)
    }

    /// Appends one chunk of the chunked coding: size line, `data` (not empty), CRLF. The one
    /// re-chunker: every body Sluice sends chunked goes through here.
    @inlinable
    public static func appendChunk(_ data: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        appendChunkHeader(data.count, to: &out)
        out.append(contentsOf: data)
        out.append(0x0D)
        out.append(0x0A)
    }

    /// Appends the last chunk, the trailer fields of `trailer` (complete field lines, possibly
    /// none) that `TrailerFilter` lets through (also dropping `droppedField`, a lowercased name),
    /// and the final CRLF.
    public static func appendLastChunk(trailer: UnsafeRawBufferPointer, droppedField: [UInt8] = [], to out: inout [UInt8]) {
        appendStatic("0\r\n", to: &out)
        if !trailer.isEmpty { TrailerFilter.appendAllowed(trailer, extra: droppedField, to: &out) }
        appendStatic("\r\n", to: &out)
    }

    /// Appends a chunk-size line (`<hex>\r\n`) for a chunk of `size` bytes (size > 0).
    @inlinable
    public static func appendChunkHeader(_ size: Int, to out: inout [UInt8]) {
        appendHex(UInt64(size), to: &out)
        out.append(0x0D)
        out.append(0x0A)
    }

    /// Standard reason phrase for the statuses the proxy and its admin API generate.
    public static func reasonPhrase(_ status: Int) -> StaticString {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 304: return "Not Modified"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 417: return "Expectation Failed"
        case 422: return "Unprocessable Content"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Status"
        }
    }

    // MARK: - Verbatim runs

    /// A range of the received head that goes out unchanged. Consecutive pieces extend it, so the
    /// lines of a head in the form Sluice writes anyway (`name: value\r\n`, `HTTP/1.1` request
    /// and status lines) are appended with one copy instead of several per line.
    struct VerbatimRun {
        var start = 0
        var end = 0

        /// Adds `s..<e`: extends the run if it starts where the run ends, else starts a new one.
        @inline(__always)
        mutating func take(_ s: Int, _ e: Int, _ bytes: UnsafeRawBufferPointer, _ out: inout [UInt8]) {
            if s != end { flush(bytes, &out); start = s }
            end = e
        }

        /// Appends the run (before anything not taken from the received bytes).
        @inline(__always)
        mutating func flush(_ bytes: UnsafeRawBufferPointer, _ out: inout [UInt8]) {
            if end > start { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<end])) }
            start = end
        }
    }

    /// A kept field: its received line when that is exactly `name: value\r\n` (what `appendField`
    /// would write), else rewritten by `appendField`.
    @inline(__always)
    static func appendKeptField(_ bytes: UnsafeRawBufferPointer, _ field: FieldSpan, _ run: inout VerbatimRun, to out: inout [UInt8]) {
        let colon = Int(field.name.start) + Int(field.name.count)
        let valueEnd = Int(field.value.start) + Int(field.value.count)
        if field.value.count > 0 && Int(field.value.start) == colon + 2 && valueEnd + 2 <= bytes.count
            && bytes[colon] == UInt8(ascii: ":") && bytes[colon + 1] == 0x20 && bytes[valueEnd] == 0x0D && bytes[valueEnd + 1] == 0x0A {
            run.take(Int(field.name.start), valueEnd + 2, bytes, &out)
        } else {
            run.flush(bytes, &out)
            appendField(bytes, field, to: &out)
        }
    }

    /// True when the 11 bytes at `offset` are ` HTTP/1.1\r\n`.
    @inline(__always)
    static func isVersionLine(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> Bool {
        guard offset >= 0, offset + 11 <= bytes.count else { return false }
        // " HTTP/1." read as a little-endian word, then "1\r\n".
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) == 0x2E31_2F50_5454_4820
            && bytes[offset + 8] == UInt8(ascii: "1") && bytes[offset + 9] == 0x0D && bytes[offset + 10] == 0x0A
    }

    /// The received status line when it is exactly `HTTP/1.1 <status> <reason>\r\n` with a
    /// non-empty reason (what `appendResponseStart` would write), else nil.
    @inline(__always)
    static func verbatimStatusLine(_ head: ResponseHead, _ bytes: UnsafeRawBufferPointer) -> Range<Int>? {
        let r = Int(head.reason.start)
        let reasonEnd = r + Int(head.reason.count)
        guard head.reason.count > 0, r >= 13, reasonEnd + 2 <= bytes.count, head.status >= 100, head.status <= 999,
              bytes[reasonEnd] == 0x0D, bytes[reasonEnd + 1] == 0x0A, bytes[r - 1] == 0x20, bytes[r - 5] == 0x20,
              // "HTTP/1.1" read as a little-endian word
              UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: r - 13, as: UInt64.self)) == 0x312E_312F_5054_5448
        else { return nil }
        let d0 = bytes[r - 4] &- 0x30, d1 = bytes[r - 3] &- 0x30, d2 = bytes[r - 2] &- 0x30
        guard d0 < 10, d1 < 10, d2 < 10, Int(d0) * 100 + Int(d1) * 10 + Int(d2) == head.status else { return nil }
        return (r - 13)..<(reasonEnd + 2)
    }

    // MARK: - Byte helpers


    @inline(__always)
    static func append(_ bytes: UnsafeRawBufferPointer, _ span: ByteSpan, to out: inout [UInt8]) {
        if span.count > 0 {
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[span.range]))
        }
    }

    /// True when the field name at `span` equals `lowercased` ignoring ASCII case (same length assumed).
    @inline(__always)
    static func nameEquals(_ bytes: UnsafeRawBufferPointer, _ span: ByteSpan, _ lowercased: [UInt8]) -> Bool {
        var i = Int(span.start)
        for b in lowercased {
            var c = bytes[i]
            if c >= 0x41 && c <= 0x5A { c |= 0x20 }
            if c != b { return false }
            i += 1
        }
        return true
    }

    @inline(__always)
    static func appendField(_ bytes: UnsafeRawBufferPointer, _ field: FieldSpan, to out: inout [UInt8]) {
        append(bytes, field.name, to: &out)
        out.append(UInt8(ascii: ":"))
        out.append(0x20)
        append(bytes, field.value, to: &out)
        out.append(0x0D)
        out.append(0x0A)
    }

    /// Appends the bytes of a static string.
    @inlinable
    public static func appendStatic(_ s: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// Appends an unsigned integer in decimal.
    @inlinable
    public static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        // Digits from the right into 20 bytes on the stack (a UInt64 has at most 20), appended at
        // once: one append instead of one per digit, and division by the constant 10 only.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { b in
            var v = value
            var i = 20
            repeat {
                i -= 1
                b.initializeElement(at: i, to: UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v % 10))
                v /= 10
            } while v > 0
            out.append(contentsOf: UnsafeBufferPointer(rebasing: b[i...]))
        }
    }

    /// Appends an unsigned integer in lowercase hex.
    @inlinable
    public static func appendHex(_ value: UInt64, to out: inout [UInt8]) {
        if value == 0 { out.append(UInt8(ascii: "0")); return }
        var shift = (63 - value.leadingZeroBitCount) / 4 * 4
        while shift >= 0 {
            let nibble = UInt8((value >> UInt64(shift)) & 0xF)
            out.append(nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10)
            shift -= 4
        }
    }
}
