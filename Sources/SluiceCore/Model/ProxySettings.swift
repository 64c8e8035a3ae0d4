/// Timeouts, in nanoseconds, with the defaults a production user would pick.
public struct Timeouts: Sendable, Equatable {
    /// From a connection's first byte of a request (or its accept) until the whole head is in.
    public var clientHeader: UInt64 = 10_000_000_000
    /// How long an idle keep-alive client connection is kept.
    public var clientIdle: UInt64 = 60_000_000_000
    /// How long a client may leave written response data unread (no progress) before it is closed.
    public var clientSend: UInt64 = 60_000_000_000
    /// Upstream TCP connect.
    public var upstreamConnect: UInt64 = 5_000_000_000
    /// From when the whole request was sent until the final response head is in: a deadline for
    /// the whole head (a trickling head or interim 1xx responses do not extend it).
    public var upstreamResponseHeader: UInt64 = 60_000_000_000
    /// How long an idle pooled upstream connection is kept.
    public var upstreamIdle: UInt64 = 60_000_000_000
    /// On SIGTERM, how long in-flight requests may take before the process exits anyway; also how
    /// long a tunnel whose cohort or endpoint was removed by a reload stays open.
    public var drain: UInt64 = 30_000_000_000
    /// How long an Upgrade tunnel (WebSocket) may carry no byte either way before it is closed.
    public var tunnelIdle: UInt64 = 3_600_000_000_000

    /// Defaults.
    public init() {}
}

/// Resource limits, with defaults.
public struct Limits: Sendable, Equatable {
    /// Parser limits (request line, head size, field count, chunk lines, trailers).
    public var parser = ParserLimits()
    /// Largest request body accepted (413 beyond). 0 means unlimited.
    public var maxBodyBytes: UInt64 = 1 << 30
    /// Requests served on one client connection before it is closed (0 = unlimited).
    public var maxRequestsPerConnection: Int = 10_000
    /// Concurrent client connections per worker; beyond it new ones wait in the accept queue.
    public var maxConnectionsPerWorker: Int = 16_384
    /// Idle keep-alive connections kept per upstream endpoint per worker.
    public var upstreamMaxIdle: Int = 4096
    /// Content-Length response bodies with at least this many bytes left after the first read are
    /// moved upstream socket → pipe → client socket with splice(2), never copied through Sluice.
    /// 0 turns splicing off.
    public var spliceMinBody: UInt64 = 64 * 1024
    /// Request bodies of retryable requests up to this size are kept while they are sent, so a
    /// retry can send them again (`retries:`, `fallback_to_baseline:`); larger ones are not retried.
    public var retryBufferBytes: UInt64 = 64 * 1024
    /// Most mirror exchanges (`mirror:`) in flight per worker; more are dropped and counted.
    public var mirrorMaxInFlight: Int = 256
    /// Most bytes mirror exchanges may buffer per worker (request copies, kept response bytes);
    /// a copy that would go over is dropped and counted.
    public var mirrorMaxBufferedBytes: Int = 32 << 20

    /// Defaults.
    public init() {}
}

/// One listening socket the proxy accepts on.
public struct ListenerSpec: Sendable, Equatable {
    /// Name used in logs and metrics.
    public var name: String
    /// Address to bind (port 0 picks an ephemeral port, shared by all workers).
    public var address: SocketAddress
    /// A plain listener that answers every request with a 308 to its https:// URL (`redirect_https`).
    public var redirectHTTPS: Bool
    /// Accepts HTTP/2: ALPN `h2` on a TLS listener, h2c with prior knowledge on a plain one.
    public var http2: Bool
    /// TCP_DEFER_ACCEPT (`defer_accept`): the kernel hands a connection over once its first bytes
    /// have arrived (or after about a second of silence), so accepting it and reading its request
    /// are one wake-up, and a silent connection takes no worker slot for that first second.
    public var deferAccept: Bool

    /// Creates a listener spec.
    public init(name: String, address: SocketAddress, redirectHTTPS: Bool = false, http2: Bool = false, deferAccept: Bool = true) {
        self.name = name
        self.address = address
        self.redirectHTTPS = redirectHTTPS
        self.http2 = http2
        self.deferAccept = deferAccept
    }
}
