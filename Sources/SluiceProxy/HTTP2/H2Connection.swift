import CNghttp2
import SluiceCore

/// The HTTP/2 side of one client connection: libnghttp2's server session (framing, HPACK, flow
/// control, stream states) and what Sluice adds around it: flood guards, the streams it opened,
/// and the lists its callbacks fill for the worker to act on once nghttp2 has returned.
///
/// Callbacks never drive an exchange (they run inside `nghttp2_session_mem_recv` and
/// `nghttp2_session_send`): they copy bytes, record what happened, and the worker acts after
/// (`Worker+HTTP2.swift`).
///
/// Owned by one worker loop thread.
final class H2Connection {
    /// `nghttp2_session *`.
    private(set) var session: OpaquePointer?
    /// The real (socket) connection.
    unowned let client: ClientConnection
    unowned let worker: Worker
    /// Streams with request bytes (or an end) to hand to their exchange, or a reset to act on.
    let ready = WorkList<H2Stream>()
    /// Streams whose response output buffer was drained by nghttp2: they may take more.
    let drained = WorkList<H2Stream>()
    /// Client resets and control frames, rate-limited.
    var resets: H2RateGuard
    var control: H2RateGuard
    /// DATA frames sent, and WINDOW_UPDATE frames received: a client acknowledging what it
    /// receives sends WINDOW_UPDATEs in proportion to the DATA it gets; only those beyond
    /// `windowUpdatesPerDataFrame` per DATA frame take control-frame tokens (Envoy's
    /// `max_inbound_window_update_frames_per_data_frame_sent`).
    var dataFramesSent = 0
    var windowUpdates = 0
    static let windowUpdatesPerDataFrame = 10
    /// Why the connection must end (set by a callback or the worker); nil while healthy.
    var failure: H2Failure?
    /// GOAWAY was sent for a drain: the connection closes once its streams are done.
    var draining = false
    /// GOAWAY for a client fault was sent and the socket half-closed: input is read and dropped
    /// until the client closes (at most `Worker.lingerTime`), so the close is not a reset that
    /// could destroy the GOAWAY before the client reads it.
    var lingering = false
    /// Queued in the worker's list of connections with output to send.
    var queued = false
    /// Streams opened and not yet released.
    var openStreams = 0
    /// Streams opened over the connection's life (access, tests).
    var streamsSeen = 0

    init(client: ClientConnection, worker: Worker, limits: HTTP2Limits, now: UInt64) {
        self.client = client
        self.worker = worker
        self.resets = H2RateGuard(rate: limits.maxResetsPerSecond, now: now)
        self.control = H2RateGuard(rate: limits.maxControlFramesPerSecond, now: now)
    }

    /// Creates the nghttp2 session and queues the server's SETTINGS. False when nghttp2 could
    /// not allocate.
    func start(callbacks: OpaquePointer, option: OpaquePointer, limits: HTTP2Limits, streamWindow: Int) -> Bool {
        var s: OpaquePointer?
        let me = Unmanaged.passUnretained(self).toOpaque()
        guard nghttp2_session_server_new2(&s, callbacks, me, option) == 0, let s else { return false }
        session = s
        var entries = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
                                   value: UInt32(clamping: limits.maxConcurrentStreams)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
                                   value: UInt32(clamping: streamWindow)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                                   value: UInt32(clamping: limits.maxHeaderListBytes)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
        ]
        guard nghttp2_submit_settings(s, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count) == 0 else { return false }
        // The connection window beyond the 65,535 bytes every connection starts with.
        let extra = Int32(clamping: limits.connectionWindowBytes) - 65535
        if extra > 0 { _ = nghttp2_session_set_local_window_size(s, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(clamping: limits.connectionWindowBytes)) }
        return true
    }

    /// Frees the session (the streams must have been released first).
    func close() {
        if let s = session { nghttp2_session_del(s) }
        session = nil
    }

    /// The connection object behind a callback's user data.
    @inline(__always)
    static func from(_ p: UnsafeMutableRawPointer?) -> H2Connection {
        Unmanaged<H2Connection>.fromOpaque(p!).takeUnretainedValue()
    }

    /// The stream object attached to `id`, if any.
    func stream(_ id: Int32) -> H2Stream? {
        guard let s = session, let p = nghttp2_session_get_stream_user_data(s, id) else { return nil }
        return Unmanaged<H2Stream>.fromOpaque(p).takeUnretainedValue()
    }

    /// nghttp2 has frames to send (`wantsWrite`), or still reads (`wantsRead`: false once both
    /// sides sent GOAWAY, or after a fatal error, with no stream open).
    var wantsWrite: Bool { session.map { nghttp2_session_want_write($0) != 0 } ?? false }
    var wantsRead: Bool { session.map { nghttp2_session_want_read($0) != 0 } ?? false }

    /// Asks nghttp2 to end the connection with GOAWAY(`code`) (sent by the next `send`).
    func terminate(_ code: nghttp2_error_code) {
        guard let s = session else { return }
        _ = nghttp2_session_terminate_session(s, code.rawValue)
    }

    /// Marks for the worker's end-of-batch send.
    func markReady(_ s: H2Stream) {
        guard !s.inReadyList else { return }
        s.inReadyList = true
        ready.append(s)
    }
}

/// Why an HTTP/2 connection is closed by Sluice.
enum H2Failure: Equatable {
    /// The client broke the protocol (nghttp2's verdict).
    case protocolError
    /// Stream resets faster than `max_resets_per_second` (rapid reset).
    case rapidReset
    /// Control frames faster than `max_control_frames_per_second`.
    case controlFlood
    /// A header list far over `max_header_list_size` (an HPACK bomb).
    case headerBomb
    /// Out of memory or streams.
    case internalError

    /// The GOAWAY error code for it.
    var code: nghttp2_error_code {
        switch self {
        case .protocolError: return NGHTTP2_PROTOCOL_ERROR
        case .rapidReset, .controlFlood, .headerBomb: return NGHTTP2_ENHANCE_YOUR_CALM
        case .internalError: return NGHTTP2_INTERNAL_ERROR
        }
    }

    /// The metric's reason (nil: not the client's doing).
    var reason: HTTP2CloseReason? {
        switch self {
        case .protocolError: return .protocolError
        case .rapidReset: return .rapidReset
        case .controlFlood: return .controlFlood
        case .headerBomb: return .headerBomb
        case .internalError: return nil
        }
    }
}
