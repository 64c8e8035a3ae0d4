import CNghttp2
import SluiceCore

/// An HTTP/2 connection to one upstream endpoint (`protocol: h2c` or `h2`): its socket, buffers,
/// libnghttp2's client session, and the streams on it. Requests of many exchanges multiplex on
/// it; each is an `H2UpstreamStream`.
///
/// Owned by one worker loop thread.
final class H2UpstreamSession: PolledSocket {
    let fd: Int32
    let generation: UInt32
    let pool: EndpointPool
    unowned let worker: Worker
    /// `nghttp2_session *` (nil once closed).
    var session: OpaquePointer?
    var tls: TLSConnection?
    var inBuffer: IOBuffer
    var outBuffer: IOBuffer
    var connected = false
    var readable = false
    var writable = false
    var readEOF = false
    var hangup = false
    var failedErrno: Int32 = 0
    /// Streams open on it (a stream counts from its request until its exchange lets it go).
    var streams = 0
    /// GOAWAY received, or failed: no new streams.
    var closing = false
    /// Streams with response bytes, an end, or a reset for their exchange.
    let ready = WorkList<H2UpstreamStream>()
    /// Streams whose request body nghttp2 took: their exchange may send more.
    let drained = WorkList<H2UpstreamStream>()
    /// Queued in the worker's list of sessions with frames to send.
    var queued = false
    var metricsUpstream: Int32 = -1
    var connectStart: UInt64 = 0
    var deadline: UInt64 = 0
    var queuedDeadline: UInt64 = 0
    var lastActive: UInt64 = 0

    init(fd: Int32, generation: UInt32, pool: EndpointPool, worker: Worker, capacity: Int, buffers: BufferPool) {
        self.fd = fd
        self.generation = generation
        self.pool = pool
        self.worker = worker
        self.inBuffer = IOBuffer(capacity: capacity, pool: buffers)
        self.outBuffer = IOBuffer(capacity: capacity, pool: buffers)
    }

    deinit {
        if let session { nghttp2_session_del(session) }
        inBuffer.release()
        outBuffer.release()
    }

    @inline(__always)
    static func from(_ p: UnsafeMutableRawPointer?) -> H2UpstreamSession {
        Unmanaged<H2UpstreamSession>.fromOpaque(p!).takeUnretainedValue()
    }

    /// The stream object attached to `id`, if any.
    func stream(_ id: Int32) -> H2UpstreamStream? {
        guard let s = session, let p = nghttp2_session_get_stream_user_data(s, id) else { return nil }
        return Unmanaged<H2UpstreamStream>.fromOpaque(p).takeUnretainedValue()
    }

    /// Takes another stream: open, not closing, under the peer's concurrent-stream limit.
    var hasRoom: Bool {
        guard let s = session, !closing, !hangup, !readEOF else { return false }
        let peerMax = Int(nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS))
        return streams < min(peerMax, 1000)
    }

    func markReady(_ s: H2UpstreamStream) {
        guard !s.inReadyList else { return }
        s.inReadyList = true
        ready.append(s)
    }
}

/// One request on an upstream HTTP/2 connection, seen by the exchange as an upstream connection
/// of its own (`upstream`, negative fd, no socket): the exchange writes an HTTP/1.1 request into
/// its output buffer (turned into HEADERS and DATA here) and reads an HTTP/1.1 response from its
/// input buffer (written here from HEADERS, DATA and trailers: chunked, trailers in the last chunk).
///
/// Pooled by the worker (`H2UpstreamStreams`). Owned by one worker loop thread.
final class H2UpstreamStream {
    let slot: Int
    let upstream: UpstreamConnection
    var session: H2UpstreamSession?
    var id: Int32 = 0

    // Request side.
    var requestHead = RequestHead()
    var requestProgress = RequestHeadProgress()
    var submitted = false
    /// Decodes the request body the exchange wrote (Content-Length or chunked).
    var bodyReader: H1ResponseReader
    /// Request body bytes waiting for nghttp2's data callback.
    var requestOut: IOBuffer
    var requestEnded = false
    var deferred = false

    // Response side.
    var status = 0
    /// Fields of the head being received, as `name: value CRLF`.
    var fields: [UInt8] = []
    var hasContentLength = false
    /// The final head was written to the exchange's input.
    var headWritten = false
    /// Head bytes waiting for room in the exchange's input.
    var pendingHead: [UInt8] = []
    /// The body is written chunked (no content-length).
    var chunked = false
    var bodyIn: IOBuffer
    var unacked = 0
    /// END_STREAM arrived; the last chunk (and trailers) follow the body.
    var ended = false
    var endWritten = false
    var trailers: [UInt8] = []
    /// nghttp2 closed the stream (and with what error code).
    var closed = false
    var closeError: UInt32 = 0
    var inReadyList = false

    init(slot: Int, capacity: Int, buffers: BufferPool, pool: EndpointPool, limits: ParserLimits) {
        self.slot = slot
        self.upstream = UpstreamConnection(fd: H2UpstreamStreams.fd(slot: slot), generation: 0, pool: pool, capacity: capacity,
                                           buffers: buffers)
        self.requestOut = IOBuffer(capacity: capacity, pool: buffers)
        self.bodyIn = IOBuffer(capacity: capacity, pool: buffers)
        self.bodyReader = H1ResponseReader(limits: limits)
        upstream.h2 = self
    }

    deinit {
        requestOut.release()
        bodyIn.release()
    }

    /// Prepares the pooled stream for a request on `session`.
    func open(on session: H2UpstreamSession) {
        self.session = session
        id = 0
        requestProgress = RequestHeadProgress()
        submitted = false
        requestEnded = false
        deferred = false
        status = 0
        fields.removeAll(keepingCapacity: true)
        hasContentLength = false
        headWritten = false
        pendingHead.removeAll(keepingCapacity: true)
        chunked = false
        unacked = 0
        ended = false
        endWritten = false
        trailers.removeAll(keepingCapacity: true)
        closed = false
        closeError = 0
        inReadyList = false
        let u = upstream
        u.generation &+= 1
        u.pool = session.pool
        u.connected = session.connected
        u.writable = session.connected
        u.readable = false
        u.readEOF = false
        u.hangup = false
        u.failedErrno = 0
        u.reused = false
        u.requestsServed = 0
        u.deadline = 0
        u.queuedDeadline = 0
        u.load = nil
        u.loadGroup = -1
        u.pendingCounted = false
    }

    /// Response bytes, an end or a reset are held here for the exchange, and its input has the
    /// room (`freeSpace`) to take the next piece (`Worker.feedUpstreamStream`).
    func canFeed(freeSpace: Int) -> Bool {
        if !pendingHead.isEmpty { return freeSpace >= pendingHead.count }
        if !bodyIn.isEmpty { return freeSpace > (chunked ? 24 : 0) }
        if ended && !endWritten && headWritten { return !chunked || freeSpace >= 5 + trailers.count }
        return false
    }

    func release() {
        session = nil
        id = 0
        upstream.client = nil
        upstream.inBuffer.release()
        upstream.outBuffer.release()
        requestOut.release()
        bodyIn.release()
    }
}

/// Upstream-side HTTP/2 streams (`H2UpstreamStream`; fds from `fdBase` down).
final class H2UpstreamStreams: H2StreamTable<H2UpstreamStream, H2UpstreamSession> {
    /// Stream fds are `fdBase - slot` (below every client stream's fd).
    static let fdBase: Int32 = -(1 << 30)
    static func fd(slot: Int) -> Int32 { fdBase - Int32(slot) }

    func take(capacity: Int, buffers: BufferPool, pool: EndpointPool, limits: ParserLimits) -> H2UpstreamStream {
        take { H2UpstreamStream(slot: $0, capacity: capacity, buffers: buffers, pool: pool, limits: limits) }
    }

    func lookup(fd: Int32, generation: UInt32) -> H2UpstreamStream? {
        guard let s = slot(Int(H2UpstreamStreams.fdBase) - Int(fd)), s.session != nil, s.upstream.generation == generation else {
            return nil
        }
        return s
    }
}
