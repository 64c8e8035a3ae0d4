/// Why Sluice ended a client's HTTP/2 connection with GOAWAY (`sluice_http2_connections_closed_total`).
public enum HTTP2CloseReason: UInt8, CaseIterable, Sendable {
    /// The client broke the protocol (nghttp2's verdict), a CONTINUATION flood included.
    case protocolError = 0
    /// Stream resets faster than `http2.max_resets_per_second` (CVE-2023-44487).
    case rapidReset = 1
    /// PING, SETTINGS, PRIORITY, WINDOW_UPDATE or empty DATA frames faster than `http2.max_control_frames_per_second`.
    case controlFlood = 2
    /// A header list more than four times `http2.max_header_list_size` (an HPACK bomb).
    case headerBomb = 3

    /// The `reason` label.
    public var label: String {
        switch self {
        case .protocolError: return "protocol_error"
        case .rapidReset: return "rapid_reset"
        case .controlFlood: return "control_flood"
        case .headerBomb: return "header_bomb"
        }
    }
}
