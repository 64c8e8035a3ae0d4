import SluiceCore

/// A socket the worker's epoll reports on and drives from flags: a client connection, an
/// upstream connection, an upstream HTTP/2 session. `note(_:)` turns one epoll event into them.
protocol PolledSocket: AnyObject {
    var readable: Bool { get set }
    var writable: Bool { get set }
    /// The peer hung up or the socket failed (everything is then worth one more try).
    var hangup: Bool { get set }
    var tls: TLSConnection? { get }
}

extension PolledSocket {
    /// Records what an epoll event says: input, output (mapped through TLS, which may need the
    /// other direction), and hang-ups or errors, after which reads and writes are tried once more.
    @inline(__always)
    func note(_ events: UInt32) {
        if events & EpollMask.input != 0 { readable = true }
        if events & EpollMask.output != 0 { writable = true }
        if let t = tls { t.mapReadiness(events, readable: &readable, writable: &writable) }
        if events & (EpollMask.readHangup | EpollMask.hangup | EpollMask.error) != 0 {
            hangup = true
            readable = true
            writable = true
        }
    }
}

/// A client (downstream) connection: its socket, buffers, the machine's connection state, its
/// timers, and the exchange in progress on it, if any.
///
/// An idle keep-alive connection holds only this object: its buffers' blocks and its `Exchange`
/// go back to the worker's pools between requests.
///
/// Owned by exactly one worker loop thread; never touched by another thread.
final class ClientConnection: PolledSocket {
    /// The socket; negative for an HTTP/2 stream (`H2Stream.client`), which has none of its own.
    let fd: Int32
    /// Changes when a pooled HTTP/2 stream's connection object is reused (stale timers are dropped).
    var generation: UInt32
    var peer: SocketAddress
    // Flags next to `peer` and a 32-bit listener index fill its padding: this object is what an
    // idle connection costs, so its layout is kept tight.
    /// The peer is in `trusted_proxies`: its X-Forwarded-* headers are kept.
    var trusted = false
    var readable = false
    var writable = true
    /// A read returned 0.
    var readEOF = false
    /// epoll reported EPOLLRDHUP/EPOLLHUP/EPOLLERR.
    var hangup = false
    var listenerIndex: Int32
    /// The exchange machine's connection state (phase, requests served, close decision).
    var conn = ConnectionState()

    var inBuffer: IOBuffer
    var outBuffer: IOBuffer
    /// The TLS session on a TLS listener's connection (nil on plain ones).
    var tls: TLSConnection?
    /// The exchange in progress: set from the first byte of a request head until the connection
    /// is idle again (see `Worker.attachExchange` and `Worker.detachExchange`).
    var exchange: Exchange?
    /// HTTP/2 on this connection (set when the client chose it: ALPN h2 or the h2c preface).
    var h2: H2Connection?
    /// The HTTP/2 stream this object stands for (nil on a real connection).
    var stream: H2Stream?

    // Timers.
    var deadline: UInt64 = 0
    var queuedDeadline: UInt64 = 0
    var phaseStart: UInt64 = 0
    var lastWriteProgress: UInt64 = 0
    var lastReadProgress: UInt64 = 0

    init(fd: Int32, generation: UInt32, peer: SocketAddress, listenerIndex: Int, inCapacity: Int, outCapacity: Int,
         pool: BufferPool) {
        self.fd = fd
        self.generation = generation
        self.peer = peer
        self.listenerIndex = Int32(listenerIndex)
        self.inBuffer = IOBuffer(capacity: inCapacity, pool: pool)
        self.outBuffer = IOBuffer(capacity: outCapacity, pool: pool)
    }

    deinit {
        inBuffer.release()
        outBuffer.release()
    }

    /// The client reached Sluice over TLS (for an HTTP/2 stream: its connection did).
    var isSecure: Bool { tls != nil || (stream?.secure ?? false) }

    /// The connection's phase (the machine's).
    @inline(__always)
    var phase: ConnectionPhase { conn.phase }
}

/// A connection to an upstream endpoint: in use by one client exchange, or idle in a pool.
///
/// Owned by exactly one worker loop thread.
final class UpstreamConnection: PolledSocket {
    /// The socket; negative for an HTTP/2 stream to the upstream (`H2UpstreamStream.upstream`).
    let fd: Int32
    /// Changes when a pooled HTTP/2 stream's connection object is reused (stale timers are dropped).
    var generation: UInt32
    var pool: EndpointPool
    /// The HTTP/2 stream this object stands for (nil on a real connection).
    var h2: H2UpstreamStream?
    /// The upstream load this connection counts in (nil: its group is not tracked), the group,
    /// and whether it still counts as pending (connect in progress). `Worker+Load.swift`.
    var load: UpstreamLoad?
    var loadGroup = -1
    var pendingCounted = false
    var inBuffer: IOBuffer
    var outBuffer: IOBuffer
    var connected = false
    var readable = false
    var writable = false
    var readEOF = false
    var hangup = false
    /// errno of a failed read or write.
    var failedErrno: Int32 = 0
    /// The TLS session to a TLS upstream (nil on plain ones).
    var tls: TLSConnection?
    /// The client context `tls` was made with (a pooled connection is reused only while its pool still uses it).
    var tlsContext: ClientTLSContext?
    /// Taken from the pool (so it may have been closed by the upstream meanwhile).
    var reused = false
    /// The client exchange using it (nil while idle in the pool).
    var client: ClientConnection?
    var responseHead = ResponseHead()
    var requestsServed = 0
    /// Upstream id for the connection gauges (fixed when connected).
    var metricsUpstream: Int32 = -1
    /// The pipe a long Content-Length body is spliced through (nil when the body is copied).
    var pipe: SplicePipe?
    /// SO_RCVLOWAT in force while splicing (0: the default of 1 byte), and since when.
    var lowWater = 0
    var lowWaterSince: UInt64 = 0

    var deadline: UInt64 = 0
    var queuedDeadline: UInt64 = 0
    var connectStart: UInt64 = 0
    var lastProgress: UInt64 = 0
    var idleSince: UInt64 = 0
    /// When the whole request was handed to the kernel (0 while still sending).
    var requestSentAt: UInt64 = 0
    /// Last time request bytes went out (or were taken into the queue for it).
    var lastSendProgress: UInt64 = 0

    init(fd: Int32, generation: UInt32, pool: EndpointPool, capacity: Int, buffers: BufferPool) {
        self.fd = fd
        self.generation = generation
        self.pool = pool
        self.inBuffer = IOBuffer(capacity: capacity, pool: buffers)
        self.outBuffer = IOBuffer(capacity: capacity, pool: buffers)
    }

    deinit {
        inBuffer.release()
        outBuffer.release()
    }
}

/// Idle keep-alive connections to one upstream endpoint, for one worker.
final class EndpointPool {
    let address: SocketAddress
    /// Host text sent as Host when a request has none (HTTP/1.0).
    let hostBytes: [UInt8]
    var idle: [UpstreamConnection] = []
    var maxIdle: Int
    /// Connections open to this endpoint (idle and in use).
    var open = 0
    /// Removed from the routing table: no new requests; idle connections are closed.
    var retired = false
    /// The upstream group's TLS context (nil: plain TCP).
    var tls: ClientTLSContext?
    /// The endpoint's host as written in the config (SNI and verified name without `server_name`).
    var hostName: String
    /// The endpoint's latest TLS session, offered by the next connection (resumption).
    let sessionSlot = TLSSessionSlot()
    /// What the group speaks to the endpoint; for HTTP/2, its connections (streams multiplex on them).
    var wire: UpstreamProtocol = .http1
    var h2Sessions: [H2UpstreamSession] = []

    init(address: SocketAddress, maxIdle: Int, hostName: String = "") {
        self.address = address
        self.hostBytes = Array(address.description.utf8)
        self.maxIdle = maxIdle
        self.hostName = hostName
    }
}
