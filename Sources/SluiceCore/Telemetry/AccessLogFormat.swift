/// One field of an access-log line (`access_log.fields` names them).
public enum AccessLogField: String, CaseIterable, Sendable {
    /// Start of the request, RFC 3339 UTC with milliseconds.
    case time
    /// The client's address (the peer, not X-Forwarded-For).
    case client
    /// Request method.
    case method
    /// The request's Host header.
    case host
    /// Request target: path and query, the query's redacted parameters replaced (at most 2048 bytes).
    case path
    /// The request's protocol version, e.g. `HTTP/1.1`.
    case `protocol`
    /// Status sent to the client (499: the client went away before a response was sent).
    case status
    /// From the request's first byte to the response's last, in milliseconds.
    case durationMs = "duration_ms"
    /// Bytes received from the client (head and body).
    case bytesIn = "bytes_in"
    /// Bytes sent to the client (head and body).
    case bytesOut = "bytes_out"
    /// The route that matched.
    case route
    /// The cohort chosen.
    case cohort
    /// The upstream endpoint's address.
    case upstream
    /// The status the upstream answered with (null when it did not answer).
    case upstreamStatus = "upstream_status"
    /// Time to connect to the upstream, in milliseconds (null for a pooled connection or none).
    case upstreamConnectMs = "upstream_connect_ms"
    /// From sending the request head upstream to the response's first byte, in milliseconds.
    case upstreamFirstByteMs = "upstream_first_byte_ms"
    /// Why the exchange failed: an `UpstreamErrorReason` label, or `client_closed`; null when it did not.
    case error
    /// X-Request-Id (received or generated).
    case requestID = "request_id"
    /// The W3C traceparent header.
    case traceparent
    /// The User-Agent header.
    case userAgent = "user_agent"
    /// The Referer header.
    case referer
}

/// Which fields an access-log line has, in which order, and which query parameters are redacted
/// (`access_log: { fields: [...], redact_query: [...] }`).
public struct AccessLogFormat: Sendable, Equatable {
    /// The fields, in line order.
    public var fields: [AccessLogField]
    /// Query parameter names whose values are written as `REDACTED` (ASCII lowercase; matched
    /// case-insensitively against the raw, undecoded name).
    public var redactQuery: [[UInt8]]

    /// Every field, in `AccessLogField` order, nothing redacted: the default.
    public static let all = AccessLogFormat(fields: AccessLogField.allCases, redactQuery: [])

    /// Creates a format; `redactQuery` names are lowercased.
    public init(fields: [AccessLogField], redactQuery: [String]) {
        self.fields = fields
        self.redactQuery = redactQuery.map { Array($0.utf8).map(Self.lower) }
    }

    /// The value written instead of a redacted parameter's.
    public static let redacted: StaticString = "REDACTED"

    @inline(__always)
    static func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }

    /// Whether `name` (raw bytes of a query parameter name) is to be redacted.
    func redacts(_ name: UnsafeRawBufferPointer) -> Bool {
        for candidate in redactQuery where candidate.count == name.count {
            var same = true
            for i in 0..<name.count where Self.lower(name[i]) != candidate[i] {
                same = false
                break
            }
            if same { return true }
        }
        return false
    }
}
