import SluiceCore

/// Where a client connection is in its request/response cycle.
enum ClientPhase {
    /// Waiting for (or reading) the next request head.
    case awaitingHead
    /// A request is being proxied to an upstream.
    case exchange
    /// The last response is queued; close once it is flushed.
    case closing
    /// Response sent and our side shut down; reading and discarding until the client closes.
    case lingering
    /// Closed and removed from the loop.
    case closed
}

/// How the rest of a request body arrives from the client.
enum RequestBodyState {
    case done
    case length(remaining: UInt64)
    case chunked(ChunkedDecoder)
}

/// How the rest of a response body arrives from the upstream.
enum ResponseBodyState {
    /// No response head yet.
    case awaitingHead
    case length(remaining: UInt64)
    case chunked(ChunkedDecoder)
    case untilClose
    case done
}

/// Why an upstream exchange failed; becomes a metrics label and decides 502 or 504.
enum UpstreamFailure: Equatable {
    case connectRefused
    case connectTimeout
    case responseTimeout
    case reset
    case badResponse

    /// Status sent to the client when no response byte has been sent yet.
    var status: Int {
        switch self {
        case .connectTimeout, .responseTimeout: return 504
        default: return 502
        }
    }

    /// One-line reason in the error body.
    var reason: StaticString {
        switch self {
        case .connectRefused: return "upstream refused the connection\n"
        case .connectTimeout: return "upstream connect timed out\n"
        case .responseTimeout: return "upstream did not answer in time\n"
        case .reset: return "upstream closed the connection before responding\n"
        case .badResponse: return "upstream sent an invalid response\n"
        }
    }
}

/// A client (downstream) connection: its socket, buffers, phase and timers, and the exchange in
/// progress on it, if any.
///
/// An idle keep-alive connection holds only this object: its buffers' blocks and its `Exchange`
/// go back to the worker's pools between requests. The exchange's values read as members of the
/// connection (`c.head`, `c.requestBody`, `c.bytesOut`, ...) through the `dynamicMember`
/// subscripts below, valid only while `exchange` is set.
///
/// Owned by exactly one worker loop thread; never touched by another thread.
@dynamicMemberLookup
final class ClientConnection {
    let fd: Int32
    let generation: UInt32
    let peer: SocketAddress
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
    var phase: ClientPhase = .awaitingHead
    /// Close after the current response (drain, limit, Connection: close, error).
    var closeAfterResponse = false
    var draining = false
    /// The request was answered without reading all of its body: linger before closing.
    var unreadInput = false
    let listenerIndex: Int32

    var inBuffer: IOBuffer
    var outBuffer: IOBuffer
    var requestsServed = 0
    /// The exchange in progress: set from the first byte of a request head until the connection
    /// is idle again (see `Worker.attachExchange` and `Worker.detachExchange`).
    var exchange: Exchange?

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

    /// The current exchange's values (`c.requestBody` is `c.exchange!.state.requestBody`). A key
    /// path to a stored property compiles to a direct field access.
    @inline(__always)
    subscript<T>(dynamicMember path: WritableKeyPath<ExchangeState, T>) -> T {
        get { exchange!.state[keyPath: path] }
        _modify { yield &exchange!.state[keyPath: path] }
    }

    /// The current exchange's buffers and head (`c.head` is `c.exchange!.head`).
    @inline(__always)
    subscript<T>(dynamicMember path: ReferenceWritableKeyPath<Exchange, T>) -> T {
        get { exchange![keyPath: path] }
        _modify { yield &exchange![keyPath: path] }
    }
}

/// A connection to an upstream endpoint: in use by one client exchange, or idle in a pool.
///
/// Owned by exactly one worker loop thread.
final class UpstreamConnection {
    let fd: Int32
    let generation: UInt32
    let pool: EndpointPool
    var inBuffer: IOBuffer
    var outBuffer: IOBuffer
    var connected = false
    var readable = false
    var writable = false
    var readEOF = false
    var hangup = false
    /// errno of a failed read or write.
    var failedErrno: Int32 = 0
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

    init(address: SocketAddress, maxIdle: Int) {
        self.address = address
        self.hostBytes = Array(address.description.utf8)
        self.maxIdle = maxIdle
    }
}
