/// Why an exchange with an upstream failed (the `reason` label of `sluice_upstream_errors_total`).
public enum UpstreamErrorReason: Int, CaseIterable, Sendable {
    /// The connection attempt was refused (ECONNREFUSED, or another immediate connect error).
    case connectRefused
    /// The connection was not established within `timeouts.upstream_connect`.
    case connectTimeout
    /// The response head did not arrive within `timeouts.upstream_response_header`.
    case responseTimeout
    /// The upstream closed or reset the connection before the response was complete.
    case reset
    /// The upstream sent a response Sluice could not parse or frame.
    case badResponse
    /// The TLS handshake with the upstream failed (certificate not verified, name mismatch, protocol error).
    case tlsHandshake
    /// A circuit breaker of the upstream group was open (`max_connections`, `max_pending`,
    /// `max_requests`): answered 503 at once, nothing sent.
    case circuitOpen

    /// The Prometheus label value: `connect_refused`, `connect_timeout`, `response_timeout`, `reset`, `bad_response`, `tls_handshake`, `circuit_open`.
    public var label: String {
        switch self {
        case .connectRefused: return "connect_refused"
        case .connectTimeout: return "connect_timeout"
        case .responseTimeout: return "response_timeout"
        case .reset: return "reset"
        case .badResponse: return "bad_response"
        case .tlsHandshake: return "tls_handshake"
        case .circuitOpen: return "circuit_open"
        }
    }
}
