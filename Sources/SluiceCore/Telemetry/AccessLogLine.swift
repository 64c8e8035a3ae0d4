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
    /// TLS version of the client connection (`TLSv1.3`); empty on plain connections, where the
    /// `tls_version` and `tls_cipher` fields are left out.
    public var tlsVersion: UnsafeRawBufferPointer
    /// The negotiated cipher suite (`TLS_AES_256_GCM_SHA384`).
    public var tlsCipher: UnsafeRawBufferPointer

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
        upstream = empty; requestID = empty; traceparent = empty; tlsVersion = empty; tlsCipher = empty
    }
}

/// Formats access-log records as JSON lines, without Foundation and without allocating once
/// the output buffer has grown to its working size.
public enum AccessLogLine {
    /// Appends one JSON object and a newline:
    /// `{"time":"2026-11-26T23:40:00.123Z","client":"127.0.0.1","method":"GET","path":"/x","status":200,`
    /// `"duration_ms":1.234,"bytes_in":0,"bytes_out":120,"route":"web","cohort":"canary",`
    /// `"upstream":"127.0.0.1:9003","request_id":"…","traceparent":"…"}`. Empty optional fields are `null`.
    public static func append(_ r: AccessLogRecord, to out: inout [UInt8]) {
        HeadWriter.appendStatic("{\"time\":\"", to: &out)
        appendTimestamp(unixSeconds: r.unixSeconds, milliseconds: r.milliseconds, to: &out)
        HeadWriter.appendStatic("\",\"client\":", to: &out)
        appendString(r.client, to: &out)
        HeadWriter.appendStatic(",\"method\":", to: &out)
        appendString(r.method, to: &out)
        HeadWriter.appendStatic(",\"path\":", to: &out)
        appendString(r.path, to: &out)
        HeadWriter.appendStatic(",\"status\":", to: &out)
        HeadWriter.appendDecimal(UInt64(max(0, r.status)), to: &out)
        HeadWriter.appendStatic(",\"duration_ms\":", to: &out)
        let micros = r.durationNanos / 1000
        HeadWriter.appendDecimal(micros / 1000, to: &out)
        out.append(UInt8(ascii: "."))
        let frac = micros % 1000
        out.append(UInt8(ascii: "0") + UInt8(frac / 100))
        out.append(UInt8(ascii: "0") + UInt8(frac / 10 % 10))
        out.append(UInt8(ascii: "0") + UInt8(frac % 10))
        HeadWriter.appendStatic(",\"bytes_in\":", to: &out)
        HeadWriter.appendDecimal(r.bytesIn, to: &out)
        HeadWriter.appendStatic(",\"bytes_out\":", to: &out)
        HeadWriter.appendDecimal(r.bytesOut, to: &out)
        HeadWriter.appendStatic(",\"route\":", to: &out)
        appendString(r.route, to: &out)
        HeadWriter.appendStatic(",\"cohort\":", to: &out)
        appendString(r.cohort, to: &out)
        HeadWriter.appendStatic(",\"upstream\":", to: &out)
        appendString(r.upstream, to: &out)
        HeadWriter.appendStatic(",\"request_id\":", to: &out)
        appendString(r.requestID, to: &out)
        HeadWriter.appendStatic(",\"traceparent\":", to: &out)
        appendString(r.traceparent, to: &out)
        if !r.tlsVersion.isEmpty {
            HeadWriter.appendStatic(",\"tls_version\":", to: &out)
            appendString(r.tlsVersion, to: &out)
            HeadWriter.appendStatic(",\"tls_cipher\":", to: &out)
            appendString(r.tlsCipher, to: &out)
        }
        HeadWriter.appendStatic("}\n", to: &out)
    }

    /// Appends a JSON string (or `null` when empty). Bytes outside printable ASCII, `"` and `\`
    /// are escaped, so the line is valid JSON whatever the client sent.
    public static func appendString(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        if bytes.count == 0 {
            HeadWriter.appendStatic("null", to: &out)
            return
        }
        out.append(UInt8(ascii: "\""))
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
        out.append(UInt8(ascii: "\""))
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
