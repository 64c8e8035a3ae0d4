/// One request's access-log facts, as byte spans the IO layer already holds.
///
/// Formatting is pure: the wall-clock time is passed in, so lines are exact in tests.
public struct AccessLogRecord {
    /// Unix time of the request's start, seconds and milliseconds.
    public var unixSeconds: Int
    public var milliseconds: Int
    public var client: UnsafeRawBufferPointer
    public var method: UnsafeRawBufferPointer
    public var path: UnsafeRawBufferPointer
    public var status: Int
    public var durationNanos: UInt64
    public var bytesIn: UInt64
    public var bytesOut: UInt64
    public var route: UnsafeRawBufferPointer
    public var cohort: UnsafeRawBufferPointer
    public var upstream: UnsafeRawBufferPointer
    public var requestID: UnsafeRawBufferPointer
    public var traceparent: UnsafeRawBufferPointer
    /// The request's Host header (request head).
    public var host: UnsafeRawBufferPointer
    /// The request's protocol version as sent, e.g. `HTTP/1.1` (request head).
    public var proto: UnsafeRawBufferPointer
    /// The request's User-Agent header (request head).
    public var userAgent: UnsafeRawBufferPointer
    /// The request's Referer header (request head).
    public var referer: UnsafeRawBufferPointer
    /// The upstream response's status; 0 when no response head came (null in the line).
    public var upstreamStatus: Int = 0
    /// Time from starting the upstream connect to its completion; nil when a pooled connection
    /// was used or no connect was made.
    public var upstreamConnectNanos: UInt64?
    /// Time from the request head being written upstream to the first byte of the response; nil
    /// when no byte came.
    public var upstreamFirstByteNanos: UInt64?
    /// Why the exchange with the upstream failed; nil when it did not (a 499 with no upstream
    /// failure is written as `client_closed`).
    public var errorReason: UpstreamErrorReason?
    /// TLS version of the client connection (`TLSv1.3`); empty on plain connections, where the
    /// `tls_version` and `tls_cipher` fields are left out.
    public var tlsVersion: UnsafeRawBufferPointer
    /// The negotiated cipher suite (`TLS_AES_256_GCM_SHA384`).
    public var tlsCipher: UnsafeRawBufferPointer

    /// Attempts retried for this request (`retries`, written only when not 0).
    public var retries: Int = 0
    /// The cohort that failed before the baseline answered (`fallback_from`, written only after a
    /// fallback; `cohort` is then the baseline).
    public var fallbackFrom: UnsafeRawBufferPointer

    /// Creates a record; every byte field defaults to empty.
    public init(unixSeconds: Int, milliseconds: Int, status: Int, durationNanos: UInt64, bytesIn: UInt64, bytesOut: UInt64) {
        self.unixSeconds = unixSeconds
        self.milliseconds = milliseconds
        self.status = status
        self.durationNanos = durationNanos
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        client = empty; method = empty; path = empty; route = empty; cohort = empty
        upstream = empty; requestID = empty; traceparent = empty; tlsVersion = empty; tlsCipher = empty; fallbackFrom = empty
        host = empty; proto = empty; userAgent = empty; referer = empty
    }
}

/// Formats access-log records as JSON lines, without Foundation and without allocating once
/// the output buffer has grown to its working size.
public enum AccessLogLine {
    /// Appends one JSON object with every field (`AccessLogFormat.all`) and a newline:
    /// `{"time":"2026-11-26T23:40:00.123Z","client":"127.0.0.1","method":"GET","host":"example.com","path":"/x",`
    /// `"protocol":"HTTP/1.1","status":200,"duration_ms":1.234,"bytes_in":0,"bytes_out":120,"route":"web",`
    /// `"cohort":"canary","upstream":"127.0.0.1:9003","upstream_status":200,"upstream_connect_ms":0.210,`
    /// `"upstream_first_byte_ms":0.950,"error":null,"request_id":"…","traceparent":"…","user_agent":"curl/8.5.0",`
    /// `"referer":null}`. Empty or absent fields are `null`.
    public static func append(_ r: AccessLogRecord, to out: inout [UInt8]) {
        append(r, format: .all, to: &out)
    }

    /// Appends one JSON object with `format`'s fields in its order, and a newline.
    public static func append(_ r: AccessLogRecord, format: AccessLogFormat, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        var first = true
        for field in format.fields {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(UInt8(ascii: "\""))
            appendASCII(field.rawValue, to: &out)
            HeadWriter.appendStatic("\":", to: &out)
            switch field {
            case .time:
                out.append(UInt8(ascii: "\""))
                appendTimestamp(unixSeconds: r.unixSeconds, milliseconds: r.milliseconds, to: &out)
                out.append(UInt8(ascii: "\""))
            case .client: appendString(r.client, to: &out)
            case .method: appendString(r.method, to: &out)
            case .host: appendString(r.host, to: &out)
            case .path: appendTarget(r.path, format: format, to: &out)
            case .protocol: appendString(r.proto, to: &out)
            case .status: HeadWriter.appendDecimal(UInt64(max(0, r.status)), to: &out)
            case .durationMs: appendMillis(r.durationNanos, to: &out)
            case .bytesIn: HeadWriter.appendDecimal(r.bytesIn, to: &out)
            case .bytesOut: HeadWriter.appendDecimal(r.bytesOut, to: &out)
            case .route: appendString(r.route, to: &out)
            case .cohort: appendString(r.cohort, to: &out)
            case .upstream: appendString(r.upstream, to: &out)
            case .upstreamStatus:
                if r.upstreamStatus > 0 {
                    HeadWriter.appendDecimal(UInt64(r.upstreamStatus), to: &out)
                } else {
                    HeadWriter.appendStatic("null", to: &out)
                }
            case .upstreamConnectMs:
                if let n = r.upstreamConnectNanos { appendMillis(n, to: &out) } else { HeadWriter.appendStatic("null", to: &out) }
            case .upstreamFirstByteMs:
                if let n = r.upstreamFirstByteNanos { appendMillis(n, to: &out) } else { HeadWriter.appendStatic("null", to: &out) }
            case .error:
                if let e = r.errorReason {
                    out.append(UInt8(ascii: "\""))
                    appendASCII(e.label, to: &out)
                    out.append(UInt8(ascii: "\""))
                } else if r.status == 499 {
                    HeadWriter.appendStatic("\"client_closed\"", to: &out)
                } else {
                    HeadWriter.appendStatic("null", to: &out)
                }
            case .requestID: appendString(r.requestID, to: &out)
            case .traceparent: appendString(r.traceparent, to: &out)
            case .userAgent: appendString(r.userAgent, to: &out)
            case .referer: appendString(r.referer, to: &out)
            }
        }
        if r.retries > 0 {
            // Only requests that were retried (or fell back) carry these two fields.
            HeadWriter.appendStatic(first ? "\"retries\":" : ",\"retries\":", to: &out)
            HeadWriter.appendDecimal(UInt64(r.retries), to: &out)
            first = false
        }
        if !r.fallbackFrom.isEmpty {
            HeadWriter.appendStatic(first ? "\"fallback_from\":" : ",\"fallback_from\":", to: &out)
            appendString(r.fallbackFrom, to: &out)
            first = false
        }
        if !r.tlsVersion.isEmpty {
            // TLS listeners only: the negotiated version and cipher (left out on plain connections).
            HeadWriter.appendStatic(first ? "\"tls_version\":" : ",\"tls_version\":", to: &out)
            appendString(r.tlsVersion, to: &out)
            HeadWriter.appendStatic(",\"tls_cipher\":", to: &out)
            appendString(r.tlsCipher, to: &out)
        }
        HeadWriter.appendStatic("}\n", to: &out)
    }

    /// Nanoseconds as milliseconds with three decimals (`1.234`).
    static func appendMillis(_ nanos: UInt64, to out: inout [UInt8]) {
        let micros = nanos / 1000
        HeadWriter.appendDecimal(micros / 1000, to: &out)
        out.append(UInt8(ascii: "."))
        let frac = micros % 1000
        out.append(UInt8(ascii: "0") + UInt8(frac / 100))
        out.append(UInt8(ascii: "0") + UInt8(frac / 10 % 10))
        out.append(UInt8(ascii: "0") + UInt8(frac % 10))
    }

    /// Appends ASCII text known to need no escaping (field names, reason labels).
    static func appendASCII(_ text: String, to out: inout [UInt8]) {
        var t = text
        t.withUTF8 { out.append(contentsOf: $0) }
    }

    /// Appends the request target as a JSON string (or `null`), with the value of every query
    /// parameter `format` redacts replaced by `REDACTED` (`/a?token=REDACTED&b=2`). Parameters are
    /// split at `&` and `;` after the first `?`; a name without `=` is kept as is.
    public static func appendTarget(_ bytes: UnsafeRawBufferPointer, format: AccessLogFormat, to out: inout [UInt8]) {
        guard !format.redactQuery.isEmpty, bytes.count > 0, let q = bytes.firstIndex(of: UInt8(ascii: "?")) else {
            appendString(bytes, to: &out)
            return
        }
        out.append(UInt8(ascii: "\""))
        appendEscaped(UnsafeRawBufferPointer(rebasing: bytes[0...q]), to: &out)
        var start = q + 1
        while start <= bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "&") && bytes[end] != UInt8(ascii: ";") { end += 1 }
            let param = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            if let eq = param.firstIndex(of: UInt8(ascii: "=")),
               format.redacts(UnsafeRawBufferPointer(rebasing: param[param.startIndex..<eq])) {
                appendEscaped(UnsafeRawBufferPointer(rebasing: param[param.startIndex...eq]), to: &out)
                HeadWriter.appendStatic(AccessLogFormat.redacted, to: &out)
            } else {
                appendEscaped(param, to: &out)
            }
            if end < bytes.count { out.append(bytes[end]) }
            start = end + 1
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Appends a JSON string (or `null` when empty). Bytes outside printable ASCII, `"` and `\`
    /// are escaped, so the line is valid JSON whatever the client sent.
    public static func appendString(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        if bytes.count == 0 {
            HeadWriter.appendStatic("null", to: &out)
            return
        }
        out.append(UInt8(ascii: "\""))
        appendEscaped(bytes, to: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// Appends bytes JSON-escaped, without quotes.
    static func appendEscaped(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        for b in bytes {
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(b)
            case 0x20..<0x7F:
                out.append(b)
            default:
                HeadWriter.appendStatic("\\u00", to: &out)
                let hex: StaticString = "0123456789abcdef"
                out.append(hex.utf8Start[Int(b >> 4)])
                out.append(hex.utf8Start[Int(b & 0xF)])
            }
        }
    }

    /// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC) for a Unix time.
    public static func appendTimestamp(unixSeconds: Int, milliseconds: Int, to out: inout [UInt8]) {
        let days = unixSeconds >= 0 ? unixSeconds / 86400 : (unixSeconds - 86399) / 86400
        let secs = unixSeconds - days * 86400
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        var year = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        if month <= 2 { year += 1 }
        appendPadded(year, 4, to: &out)
        out.append(UInt8(ascii: "-"))
        appendPadded(month, 2, to: &out)
        out.append(UInt8(ascii: "-"))
        appendPadded(day, 2, to: &out)
        out.append(UInt8(ascii: "T"))
        appendPadded(secs / 3600, 2, to: &out)
        out.append(UInt8(ascii: ":"))
        appendPadded(secs / 60 % 60, 2, to: &out)
        out.append(UInt8(ascii: ":"))
        appendPadded(secs % 60, 2, to: &out)
        out.append(UInt8(ascii: "."))
        appendPadded(milliseconds, 3, to: &out)
        out.append(UInt8(ascii: "Z"))
    }

    private static func appendPadded(_ value: Int, _ width: Int, to out: inout [UInt8]) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var v = value
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8(v / divisor % 10))
            v %= divisor
            divisor /= 10
        }
    }
}
