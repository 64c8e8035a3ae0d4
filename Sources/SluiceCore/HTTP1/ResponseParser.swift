// Strict HTTP/1.x response-head parser for upstream replies (RFC 9112 sections 4 and 6).
//
// The same field rules as requests apply (see RequestParser.swift): CRLF only, no obs-fold,
// no whitespace before a colon, field values of VCHAR/obs-text/SP/HTAB. Any failure becomes
// a 502 in the proxy. Unlike requests, no empty lines are skipped before the status line.

/// Parses HTTP/1.x response heads from raw bytes into a `ResponseHead` of offsets.
public enum ResponseParser {
    /// Parses an upstream response head from the start of `bytes`.
    ///
    /// `requestMethod` decides framing for HEAD: 1xx, 204, 304 and replies to HEAD have
    /// framing `.none` (their Content-Length and Transfer-Encoding are still checked for
    /// syntax, not for meaning; the Content-Length field stays in `fields`, flagged).
    /// Otherwise: Transfer-Encoding must be exactly `chunked` (else
    /// `.unsupportedTransferEncoding`, also for an HTTP/1.0 response), Transfer-Encoding with
    /// Content-Length is `.bothContentLengthAndTransferEncoding`, Content-Length gives
    /// `.contentLength`, and neither gives `.untilClose` (which sets `keepAlive` false).
    ///
    /// The status line is `HTTP/1.x SP 3DIGIT SP reason CRLF`; `HTTP/1.1 200 CRLF` and
    /// `HTTP/1.1 200CRLF` are accepted with an empty reason. A status outside 100...599 is
    /// `.badStatusLine`; a well-formed version other than 1.0 and 1.1 is `.unsupportedVersion`.
    ///
    /// Unsafe-pointer contract: `bytes` must stay valid for the duration of the call only.
    public static func parse(_ bytes: UnsafeRawBufferPointer, requestMethod: HTTPMethod,
                             into head: inout ResponseHead, limits: ParserLimits) -> ParseStatus {
        reset(&head)
        let count = bytes.count
        guard count > 0, let raw = bytes.baseAddress else { return .incomplete }
        // The bytes are plain octets; treating them as UInt8 is how every byte parser reads.
        let base = raw.assumingMemoryBound(to: UInt8.self)
        let cls = HTTPSyntax.table
        let maxHead = max(limits.maxHeadBytes, 0)
        let end = min(count, maxHead)
        let outOfBytes: ParseStatus = count >= maxHead ? .invalid(.headTooLarge) : .incomplete

        // "HTTP/" DIGIT "." DIGIT SP 3DIGIT, checked byte by byte.
        let template: StaticString = "HTTP/0.0 000"
        let templateBytes = template.utf8Start
        var p = 0
        while p < 12 {
            guard p < end else { return outOfBytes }
            let b = base[p]
            let ok: Bool
            switch p {
            case 5, 7, 9, 10, 11: ok = cls.has(b, HTTPSyntax.digit)
            default: ok = b == templateBytes[p]
            }
            guard ok else { return .invalid(.badStatusLine) }
            p += 1
        }
        guard base[5] == UInt8(ascii: "1"), base[7] == UInt8(ascii: "1") || base[7] == UInt8(ascii: "0")
        else { return .invalid(.unsupportedVersion) }
        let version: HTTPVersion = base[7] == UInt8(ascii: "1") ? .http11 : .http10
        head.version = version
        let status = Int(base[9] &- 0x30) * 100 + Int(base[10] &- 0x30) * 10 + Int(base[11] &- 0x30)
        guard status >= 100 && status <= 599 else { return .invalid(.badStatusLine) }
        head.status = status

        // [SP reason-phrase] CRLF; reason-phrase = *( HTAB / SP / VCHAR / obs-text ).
        guard p < end else { return outOfBytes }
        if base[p] == HTTPSyntax.sp {
            p += 1
            let reasonStart = p
            while p < end && cls.has(base[p], HTTPSyntax.fieldChar) { p += 1 }
            head.reason = ByteSpan(start: reasonStart, count: p - reasonStart)
        } else {
            head.reason = ByteSpan(start: p, count: 0)
        }
        guard p < end else { return outOfBytes }
        guard base[p] == HTTPSyntax.cr else { return .invalid(.badStatusLine) }
        guard p + 1 < end else { return outOfBytes }
        guard base[p + 1] == HTTPSyntax.lf else { return .invalid(.badStatusLine) }
        p += 2

        // Field section.
        var summary = FieldSectionSummary()
        let headEnd: Int
        switch HTTPSyntax.parseFieldSection(base, p, end, maxFields: limits.maxFields, cls,
                                            fields: &head.fields, summary: &summary) {
        case .needMore: return outOfBytes
        case .invalid(let error): return .invalid(error)
        case .complete(let next): headEnd = next
        }

        var options = ConnectionOptions()
        if summary.connectionIsKeepAlive {
            options.keepAlive = true
        } else if summary.connectionFields > 0,
           let error = HTTPSyntax.applyConnectionOptions(base, cls, fields: &head.fields,
                                                         options: &options) {
            return .invalid(error)
        }
        var keepAlive = version == .http11 ? !options.close : (options.keepAlive && !options.close)

        // Framing (RFC 9112 6.3).
        if requestMethod == .head || status < 200 || status == 204 || status == 304 {
            head.framing = .none
        } else if summary.transferEncodingFields > 0 {
            if summary.hasContentLength { return .invalid(.bothContentLengthAndTransferEncoding) }
            guard version == .http11, summary.transferEncodingIsChunked else {
                return .invalid(.unsupportedTransferEncoding)
            }
            head.framing = .chunked
        } else if summary.hasContentLength {
            head.framing = .contentLength(summary.contentLength)
        } else {
            head.framing = .untilClose
            keepAlive = false
        }
        head.keepAlive = keepAlive
        head.headLength = headEnd
        return .complete
    }

    /// Puts every field of `head` back to its initial value, keeping the fields' capacity.
    @inline(__always)
    private static func reset(_ head: inout ResponseHead) {
        head.version = .http11
        head.status = 0
        head.reason = .empty
        head.fields.removeAll(keepingCapacity: true)
        head.headLength = 0
        head.framing = .none
        head.keepAlive = true
    }
}
