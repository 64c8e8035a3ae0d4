/// HTTP/2 limits (top-level `http2:` in the config), with the defaults a production user would
/// pick. Each one bounds what one client connection can make Sluice hold or do.
public struct HTTP2Limits: Sendable, Equatable {
    /// Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused.
    public var maxConcurrentStreams: Int = 100
    /// Largest decoded header list of one request (names + values + 32 per field, RFC 9113
    /// 6.5.2), announced as SETTINGS_MAX_HEADER_LIST_SIZE. Over it: 431; over four times it (an
    /// HPACK bomb: a few bytes on the wire that decode into megabytes): the connection is closed.
    public var maxHeaderListBytes: Int = 32768
    /// Each stream's receive window (SETTINGS_INITIAL_WINDOW_SIZE): request body bytes a client
    /// may send ahead of what the upstream took. At most the connection buffer size.
    public var streamWindowBytes: Int = 65535
    /// The connection's receive window, shared by its streams.
    public var connectionWindowBytes: Int = 1 << 20
    /// Stream resets (RST_STREAM) a client may send per second, on average, with bursts of twice
    /// that: faster is the rapid-reset attack (CVE-2023-44487): GOAWAY, connection closed.
    public var maxResetsPerSecond: Int = 100
    /// PING, SETTINGS, PRIORITY, WINDOW_UPDATE and empty DATA frames a client may send per second
    /// on average (bursts of twice that): faster is a flood: GOAWAY, connection closed. Up to ten
    /// WINDOW_UPDATEs per DATA frame Sluice sent on the connection are not counted (a client
    /// acknowledging a fast download sends thousands a second).
    public var maxControlFramesPerSecond: Int = 200
    /// CONTINUATION frames after one HEADERS frame: more is a CONTINUATION flood (connection closed).
    public var maxContinuations: Int = 8

    /// Defaults.
    public init() {}
}
