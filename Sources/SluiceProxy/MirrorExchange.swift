import SluiceCore

/// One mirrored request: the copy's own non-blocking connection to the mirror (connect, send,
/// read and parse the response, discard it) and, with `compare`, both sides' summaries
/// (`MirrorSide`) until they are compared.
///
/// Its socket outlives the copy when the answer allows (keep-alive, framed, nothing extra): it
/// then waits in `MirrorState.idle` (phase `pooled`) for the next copy to the same endpoint, and
/// is closed when the mirror closes it or after `MirrorState.idleTime` unused.
///
/// It has two owners that let go independently: the primary's `Exchange` (`Exchange.mirror`,
/// until the primary's request is recorded: `Worker.mirrorPrimaryEnded`) and the mirror
/// connection (until its response is complete or it fails: `Worker.finishMirror`). It goes back to
/// the worker's pool only when both have let go, so neither ever sees it reused.
///
/// Owned by one worker loop thread.
final class MirrorExchange: PolledSocket {
    /// Where the copy is.
    enum Phase {
        /// Not in use (in the pool).
        case idle
        /// Non-blocking connect in progress.
        case connecting
        /// Connected: sending the copy and reading the answer.
        case open
        /// The mirror side is over (`mirrorOK` says how); its socket may stay open for reuse.
        case finished
        /// An idle keep-alive connection to `address` in `MirrorState.idle` (its exchange fields are clear).
        case pooled
    }

    /// How far the mirror's response body got.
    enum Body {
        case awaitingHead
        case length(UInt64)
        case chunked(ChunkedDecoder)
        case untilClose
        case done
    }

    var phase = Phase.idle
    var fd: Int32 = -1
    var generation: UInt32 = 0
    var readable = false
    var writable = false
    var hangup = false
    /// Where the socket goes (the key of `MirrorState.idle`).
    var address = SocketAddress.v4(0, port: 0)
    /// The socket stays open when the copy ends (a complete, framed, keep-alive answer to a
    /// completely sent request).
    var keepSocket = false
    /// When a pooled socket is closed if unused.
    var idleUntil: UInt64 = 0
    /// The whole request was appended (`out`): no body, all of a declared length, or the last chunk.
    var requestDone = false
    /// A declared body's length (-1: chunked).
    var expectedBody = 0

    /// The table and mirror (index into `table.mirrorPlans`) it was started for.
    var table: RoutingTable?
    var plan = -1
    /// Metrics series (-1: not counted).
    var seriesID: Int32 = -1
    var compare = false
    /// Bytes of each response body kept for the first differing offset.
    var keep = 0
    /// The request's method (a HEAD response has no body).
    var method = HTTPMethod.get
    /// The request line, for the diff sample (at most 512 bytes).
    var requestLine: [UInt8] = []

    /// The copy of the request (head with `X-Sluice-Mirror: 1`, then the
    /// body as the primary sends it) and how much of it was sent.
    var out: [UInt8] = []
    var sent = 0
    /// Request body bytes appended so far, and how many were reserved against the cap at the start.
    var bodyBytes = 0
    var copiedBytes = 0
    var reservedBody = 0
    /// The mirror's answer.
    var inBuffer: IOBuffer
    var head = ResponseHead()
    var body = Body.awaitingHead
    var readEOF = false

    /// The primary still holds it (`Exchange.mirror`).
    var primaryAttached = false
    /// The primary's response was complete.
    var primaryOK = false
    /// The mirror's response was complete.
    var mirrorOK = false
    var primary = MirrorSide()
    var mirror = MirrorSide()
    /// When the copy started (mirror latency) and the primary's request started (primary latency).
    var startedAt: UInt64 = 0
    var primaryStart: UInt64 = 0
    var deadline: UInt64 = 0
    /// Bytes counted against the worker's `mirror_max_buffered_bytes`.
    var accounted = 0

    init(capacity: Int, pool: BufferPool) {
        inBuffer = IOBuffer(capacity: capacity, pool: pool)
    }

    deinit {
        inBuffer.release()
    }

    /// Clears it for the pool (keeps small arrays' capacity); with `keepingSocket`, the socket's
    /// fields (fd, generation, address) stay for reuse.
    func reset(keepingSocket: Bool = false) {
        phase = keepingSocket ? .pooled : .idle
        if !keepingSocket {
            fd = -1
            generation = 0
        }
        readable = false
        writable = keepingSocket
        hangup = false
        keepSocket = false
        idleUntil = 0
        requestDone = false
        expectedBody = 0
        table = nil
        plan = -1
        seriesID = -1
        compare = false
        keep = 0
        requestLine.removeAll(keepingCapacity: true)
        if out.capacity > 64 * 1024 { out = [] } else { out.removeAll(keepingCapacity: true) }
        sent = 0
        bodyBytes = 0
        copiedBytes = 0
        reservedBody = 0
        inBuffer.release()
        body = .awaitingHead
        readEOF = false
        primaryAttached = false
        primaryOK = false
        mirrorOK = false
        primary.reset()
        mirror.reset()
        startedAt = 0
        primaryStart = 0
        deadline = 0
        accounted = 0
    }
}

/// A worker's mirroring state: its shard, the series ids of the current table's mirrors, the
/// caps and what is in use, recycled exchanges, and a round-robin position per upstream group.
///
/// Owned by one worker loop thread.
final class MirrorState {
    let shard: MirrorShard
    let board: MirrorBoard?
    /// Series id of each of the current table's mirrors.
    var ids: [Int32] = []
    var inFlight = 0
    var buffered = 0
    var free: [MirrorExchange] = []
    /// Idle keep-alive connections to mirror endpoints, by address (most recent last).
    var idle: [SocketAddress: [MirrorExchange]] = [:]
    var roundRobin: [Int] = []

    /// Idle connections kept per mirror endpoint, and for how long.
    static let maxIdlePerEndpoint = 64
    static let idleTime: UInt64 = 4_000_000_000

    init(board: MirrorBoard?, worker: Int) {
        self.board = board
        shard = board.map { $0.shards[worker % $0.shards.count] } ?? MirrorShard()
    }
}

extension MirrorExchange {
    /// Mirror connections are plain TCP (no TLS to map readiness through).
    var tls: TLSConnection? { nil }
}
