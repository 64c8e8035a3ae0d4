import SluiceCore

/// One request/response exchange of a client connection, from the first byte of a request head
/// until the connection is idle again (or closes). A worker keeps a pool of them (`ExchangePool`)
/// so that an idle keep-alive connection holds none of this state, while the arrays below keep
/// their capacity from one exchange to the next: a busy connection allocates nothing per request.
///
/// The decisions about it are `ExchangeMachine`'s (SluiceCore), made on `state`; this object adds
/// what the IO layer needs: the head's parse progress, the routing decision and its table, the
/// upstream connection, and byte arrays for the log.
///
/// Owned by one worker loop thread.
final class Exchange {
    /// The machine's per-request state.
    var state = ExchangeState()
    /// The request's accounting (metrics and access log).
    var record = RequestRecord()
    /// The request head; the parser resets it, keeping the capacity of its `fields`.
    var head = RequestHead()
    /// Where the head's parse stopped (the parser resumes there at the next read).
    var progress = RequestHeadProgress()
    /// The table the request was routed with (nil until routed), and what it decided.
    var table: RoutingTable?
    var decision = RouteDecision.notFound
    /// The upstream connection in use, and the endpoint's pool.
    var upstream: UpstreamConnection?
    var pool: EndpointPool?
    /// The request head as sent to the upstream, kept for one retry on a stale pooled connection.
    var upstreamHead: [UInt8] = []
    /// The client's Upgrade value when the request is forwarded with it (a tunnel may follow).
    var upgradeValue: [UInt8] = []
    /// A fault drill's delay: the routed request is held until this monotonic time (0: none).
    var delayUntil: UInt64 = 0
    /// The routing outcome reported once the delay is over.
    var delayedOutcome = RouteOutcome.notFound
    /// The copy of this request going to a mirror (`Worker+Mirror.swift`), until the request is recorded.
    var mirror: MirrorExchange?
    /// The Location of a `redirect_https` answer: `https://` + host (without its port) + target.
    var location: [UInt8] = []
    /// Endpoints of the decision's group this request tried (bit i: endpoint i), for retries.
    var triedEndpoints: UInt64 = 0
    /// The endpoint a `.retryElsewhere` goes to (found before asking the machine).
    var alternate: Int32 = -1
    /// Retries (`Worker+Retry.swift`): the route's settings (nil: only the connect-failure and
    /// stale-connection rules), the request body as sent so far when it is kept for a retry
    /// (`retryBody`, capacity kept across exchanges; only for retryable requests with a body of
    /// at most `limits.retry_buffer_bytes`), how much of it a retry has sent again, and the cause
    /// of the failure a retry answers.
    var retry: RetrySpec?
    var retryBody: [UInt8] = []
    var keepingBody = false
    var replayOffset = -1
    var retryCause: RetryCause?
    /// The cohort that failed before a fallback to the baseline (-1: none), for the access log.
    var fallbackFrom: Int32 = -1
    /// Attempts retried (access log).
    var retries = 0
    /// Upstream load counted for this request (`Worker+Load.swift`): the table's counters (nil:
    /// the group is not tracked), the group whose request count it holds (-1: none), and the flat
    /// endpoint whose in-flight count the current attempt holds (-1: none).
    var load: UpstreamLoad?
    var loadGroup = -1
    var loadFlat = -1
    /// The client accepts gzip (only looked up when the route compresses).
    var acceptsGzip = false
    /// The deflate stream of a compressed response (from the worker's pool).
    var compressor: Compressor?
    /// The deflate stream has produced its last bytes (some may still wait to be queued).
    var compressFinished = false
    /// When a tunnel whose route, cohort or endpoint a reload removed is closed (0: not retired).
    var retireAt: UInt64 = 0
    /// The request's X-Request-Id (received or generated).
    var requestID: [UInt8] = []
    /// The request-head fields of the access-log line, copied when the head is parsed (only when the log is on).
    var capture = AccessLogCapture()
    /// The client's address as text (X-Forwarded-For, access log), for the address `usePeer` was given.
    private(set) var peerText: [UInt8] = []
    /// The address `peerText` was formatted from (its port does not matter).
    private var peerTextAddress = SocketAddress.v4(0, port: 0)

    /// The route policy of the decision (header edits, names for the log); nil until routed.
    var policy: RoutePolicy? {
        guard let table else { return nil }
        return table.policy(for: decision)
    }

    /// Sets `location` to the https URL of the request `head` (spans into `bytes`): the host
    /// without a port (the https listener's own port is the default one), then the target in
    /// origin form.
    func redirectLocation(head: RequestHead, bytes: UnsafeRawBufferPointer) {
        location.removeAll(keepingCapacity: true)
        HeadWriter.appendStatic("https://", to: &location)
        var host = UnsafeRawBufferPointer(rebasing: bytes[head.host.range])
        if let colon = host.lastIndex(of: UInt8(ascii: ":")), !host.contains(UInt8(ascii: "]")) || host.last != UInt8(ascii: "]") {
            host = UnsafeRawBufferPointer(rebasing: host[host.startIndex..<colon])
        }
        location.append(contentsOf: host)
        if head.path.start != head.target.start {
            // absolute-form: the path (or `/`) and the query
            if head.path.count == 0 { location.append(UInt8(ascii: "/")) } else {
                location.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[head.path.range]))
            }
            if head.query.count > 0 {
                location.append(UInt8(ascii: "?"))
                location.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[head.query.range]))
            }
        } else {
            location.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[head.target.range]))
        }
    }

    /// Makes `peerText` the text of `peer`'s address. Formats only when the address differs from
    /// the last one (many exchanges in a row serve the same client address).
    func usePeer(_ peer: SocketAddress) {
        // Compared here rather than with `SocketAddress.==` (not inlinable across modules, and it
        // compares the ports): this runs once per request.
        switch (peer, peerTextAddress) {
        case (.v4(let a, _), .v4(let b, _)) where a == b && !peerText.isEmpty: return
        case (.v6(let ah, let al, _), .v6(let bh, let bl, _)) where ah == bh && al == bl: return
        default: break
        }
        peerText.removeAll(keepingCapacity: true)
        peer.appendHostText(to: &peerText)
        peerTextAddress = peer
    }

    /// Ready for a new head: parse progress, routing and accounting back to their start (the
    /// arrays are cleared by their writers). Drops the references to table, pool and upstream.
    func reset() {
        state = ExchangeState()
        record = RequestRecord()
        progress = RequestHeadProgress()
        table = nil
        decision = .notFound
        upstream = nil
        pool = nil
        retireAt = 0
        delayUntil = 0
        mirror = nil
        triedEndpoints = 0
        alternate = -1
        retry = nil
        load = nil
        loadGroup = -1
        loadFlat = -1
        keepingBody = false
        replayOffset = -1
        retryCause = nil
        fallbackFrom = -1
        retries = 0
        acceptsGzip = false
        compressor = nil
    }
}

/// A worker's free list of exchanges: a client connection takes one when a request head starts
/// and gives it back when it is idle again, so steady-state keep-alive traffic allocates none.
///
/// Owned by one worker loop.
final class ExchangePool {
    /// Exchanges kept for reuse at most (beyond that, given-back exchanges are freed).
    let maxFree: Int
    private var free: [Exchange] = []

    init(maxFree: Int) {
        self.maxFree = maxFree
    }

    /// An exchange ready for a request (recycled when one is free).
    @inline(__always)
    func take() -> Exchange {
        free.popLast() ?? Exchange()
    }

    /// Free exchanges that keep their retry body's capacity: the top of the stack, taken again
    /// first. An exchange pushed below them drops it, so a burst of concurrent requests with kept
    /// bodies does not leave `maxFree × limits.retry_buffer_bytes` allocated for good (64 KiB ×
    /// 4096 = 256 MiB per worker at the defaults), while steady traffic keeps reusing its buffers.
    static let warmRetryBodies = 64

    /// Returns an exchange no connection uses any more (reset when it is taken again).
    @inline(__always)
    func give(_ exchange: consuming Exchange) {
        guard free.count < maxFree else { return }
        if free.count >= Self.warmRetryBodies {
            let cold = free[free.count - Self.warmRetryBodies]
            if cold.retryBody.capacity > 0 { cold.retryBody = [] }
        }
        free.append(exchange)
    }

    /// Bytes of retry-body capacity the free exchanges hold (tests).
    var retainedRetryBodyBytes: Int { free.reduce(0) { $0 + $1.retryBody.capacity } }
}
