@preconcurrency import Glibc
import SluiceCore
internal import CSluiceSys

/// Messages another thread posts to a worker (control plane only; never per request).
enum WorkerMessage {
    /// Route new exchanges with this table (and record them under these metric series) from now on.
    case publish(RoutingTable, SeriesMap)
    /// Use these TLS settings for new handshakes (sent before the table of the same reload).
    case tls(TLSSet)
    /// Stop accepting, finish in-flight requests, then exit the loop.
    case drain
    /// Exit the loop now, closing everything.
    case stop
}

/// One event loop thread: its epoll instance, its listening sockets (SO_REUSEPORT), its client
/// connections, its upstream pools and its timers. This file is the loop and its mailbox; the
/// rest of the worker is in extensions, one concern each:
/// - `Worker+Accept.swift`: listeners, accepting, draining, shutdown;
/// - `Worker+Client.swift`: driving a client connection (reads, flushes, closing, lingering);
/// - `Worker+Exchange.swift`: carrying out the `ExchangeMachine`'s actions (the only place that
///   turns its decisions into IO), request heads and generated responses;
/// - `Worker+RequestBody.swift`, `Worker+Response.swift`, `Worker+Splice.swift`: moving body bytes;
/// - `Worker+Upstream.swift`: upstream pools, connects, reuse;
/// - `Worker+Tunnel.swift`: Upgrade (WebSocket) tunnels after a 101;
/// - `Worker+HTTP2.swift`, `Worker+HTTP2Stream.swift`: HTTP/2 connections and their streams;
/// - `Worker+Timers.swift`: deadlines and what their expiry means;
/// - `Worker+Accounting.swift`: the per-request record into metrics and the access log;
/// - `Compressor.swift`: gzip streams (zlib) and their per-worker pool.
///
/// `@unchecked Sendable`: the object is created on the starting thread and then used only by
/// its own loop thread, except `post(_:)`, which takes `mailboxLock`.
final class Worker: @unchecked Sendable {
    let index: Int
    let settings: ProxySettings
    /// The exchange machine's limits (from `settings`).
    let exchangeLimits: ExchangeLimits
    let epoll: Epoll
    let wake: WakeFD
    var listenerFDs: [Int32]
    var listenersActive = true
    /// What each fd's epoll events are for.
    var registrations = RegistrationTable()
    var timers = TimerHeap()
    /// `busy_poll:`: spin briefly before sleeping after a batch of events (`BusyPoll.swift`).
    var busyPoll: BusyPoll
    var now: UInt64 = 0
    var running = true
    var draining = false
    var clientCount = 0
    var acceptPausedUntil: UInt64 = 0

    var table: RoutingTable
    /// Metric series ids for `table`.
    var series: SeriesMap
    /// This worker's metrics (written only here; summed by the admin side).
    let metrics: MetricsShard
    let recordMetrics: Bool
    var balancer: BalancerState
    /// Endpoint availability shared with the other workers and the health monitor.
    let health: EndpointHealth
    /// Wakes the health monitor when a failure may eject an endpoint.
    let healthSignal: WakeFD?
    /// Pools for the current table, indexed [upstream][endpoint].
    var pools: [[EndpointPool]] = []
    /// Pools by endpoint address and, for TLS upstreams, group name (a group's TLS settings
    /// belong to its connections).
    var poolsByAddress: [PoolKey: EndpointPool] = [:]
    /// TLS settings in force (listeners by index, upstream groups by name).
    var tlsSet: TLSSet
    /// This worker's server TLS contexts, by listener index (nil: plain listener).
    var serverTLS: [ServerTLSContext?] = []
    /// This worker's client TLS contexts, by upstream group name.
    var clientTLS: [String: ClientTLSContext] = [:]
    var entropyState: UInt64
    /// Per-route retry budgets for `table` (`RetryBudget`: per worker, see its comment).
    var retryBudget = RetryBudget()
    /// Size of every connection buffer: 68 KiB, or more when `max_header_bytes` needs it (a head
    /// must fit in one buffer on either side), rounded to whole pages.
    let bufferCapacity: Int
    /// Recycled buffer blocks for connections (declared before anything that holds buffers).
    let buffers: BufferPool
    /// Free buffer blocks unused for a whole interval give their pages back (`BufferPool.trim`).
    static let trimInterval: UInt64 = 2_000_000_000
    var lastTrim: UInt64 = 0
    /// Recycled per-exchange state, so idle connections hold none and busy ones allocate none.
    let exchanges = ExchangePool(maxFree: 4096)
    /// Reused scratch for serializing heads and chunks.
    var scratch: [UInt8] = []
    /// Idle gzip streams.
    let compressors = CompressorPool()
    /// Empty pipes for splicing response bodies.
    var pipes = PipePool()
    /// Clients to drive after this event batch: those that stopped because their per-wakeup read
    /// budget ran out, and new connections from deferred listeners (their request is already there).
    var pending: [ClientConnection] = []
    /// HTTP/2 streams (pooled) and connections with output queued (`Worker+HTTP2.swift`).
    let h2 = H2Streams()
    /// HTTP/2 streams to upstreams (pooled) and upstream connections with output queued.
    let h2up = H2UpstreamStreams()

    /// Traffic mirroring: counters, caps, recycled mirror exchanges (`Worker+Mirror.swift`).
    let mirroring: MirrorState

    /// Buffered access-log lines, written by this worker in batches.
    var accessLog: AccessLogSink

    private var mailboxLock = pthread_mutex_t()
    private var mailbox: [WorkerMessage] = []

    static let readBudget = 16
    /// Spliced bodies with less than this left are read at every arriving byte (no low-water mark).
    static let lowWaterMinimum: UInt64 = 64 * 1024
    /// Longest a low-water mark may hold back bytes that arrived (a slow upstream's trickle).
    static let lowWaterWait: UInt64 = 20_000_000
    /// How long a half-closed connection reads and discards what the client still sends.
    static let lingerTime: UInt64 = 2_000_000_000

    /// The buffer size for a head limit: at least 68 KiB (a 64 KiB body plus its head in one read
    /// and one write: 64 KiB left the last few hundred bytes for a second send and a second wake-up
    /// of the client), and room for a whole head plus 16 KiB
    /// of what follows it, in whole pages.
    static func bufferCapacity(maxHeadBytes: Int) -> Int {
        let wanted = max(68 * 1024, maxHeadBytes + 16 * 1024)
        let page = BufferPool.pageSize
        return (wanted + page - 1) / page * page
    }

    init(index: Int, settings: ProxySettings, listenerFDs: [Int32], table: RoutingTable, series: SeriesMap,
         metrics: MetricsShard, health: EndpointHealth, healthSignal: WakeFD?, mirrors: MirrorBoard? = nil) throws(SyscallError) {
        self.health = health
        self.healthSignal = healthSignal
        self.mirroring = MirrorState(board: mirrors, worker: index)
        self.series = series
        self.metrics = metrics
        self.recordMetrics = settings.recordMetrics
        self.index = index
        self.settings = settings
        self.exchangeLimits = ExchangeLimits(settings.limits)
        self.busyPoll = BusyPoll(window: settings.busyPoll)
        self.bufferCapacity = Worker.bufferCapacity(maxHeadBytes: settings.limits.parser.maxHeadBytes)
        self.buffers = BufferPool(blockSize: bufferCapacity, maxFree: 4096)
        self.epoll = try Epoll()
        self.wake = try WakeFD()
        self.listenerFDs = listenerFDs
        self.table = table
        self.tlsSet = settings.tls
        self.accessLog = AccessLogSink(fd: settings.accessLogFD)
        self.balancer = BalancerState(table: table, health: health, slots: series.endpointSlots, worker: index)
        self.entropyState = Sys.monotonicNanos() ^ (UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15)
        if entropyState == 0 { entropyState = 0x1234_5678 }
        pthread_mutex_init(&mailboxLock, nil)
        scratch.reserveCapacity(64 * 1024)
        applyTLS(settings.tls)
        rebuildPools()
        retryBudget.use(table)  // and at every publish: the budget follows the serving table
        refreshMirrorIDs()
        try register(wake.fd, .wake, events: EpollMask.input)
        for (i, fd) in listenerFDs.enumerated() {
            try register(fd, .listener(Int32(i)), events: EpollMask.input)
        }
    }

    deinit {
        pthread_mutex_destroy(&mailboxLock)
    }

    // MARK: - Cross-thread

    /// Posts a message and wakes the loop. Safe from any thread.
    func post(_ message: WorkerMessage) {
        pthread_mutex_lock(&mailboxLock)
        mailbox.append(message)
        pthread_mutex_unlock(&mailboxLock)
        wake.signal()
    }

    private func takeMessages() -> [WorkerMessage] {
        pthread_mutex_lock(&mailboxLock)
        defer { pthread_mutex_unlock(&mailboxLock) }
        let m = mailbox
        mailbox.removeAll()
        return m
    }

    // MARK: - Loop

    /// An epoll_wait timeout reaching `deadline` (monotonic ns): whole milliseconds rounded up,
    /// 0 when it has passed, at most a minute (the loop computes it again at every wake-up).
    @inline(__always)
    static func millisecondsUntil(_ deadline: UInt64, from now: UInt64) -> Int32 {
        deadline <= now ? 0 : Int32(min((deadline - now + 999_999) / 1_000_000, 60_000))
    }

    /// Runs the loop on the calling thread until stopped or drained.
    func run() {
        let maxEvents: Int32 = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: Int(maxEvents))
        defer { events.deallocate() }
        while running {
            now = Sys.monotonicNanos()
            var timeout: Int32 = -1
            if !pending.isEmpty || !h2.dirty.isEmpty || !h2up.dirty.isEmpty {
                // HTTP/2 output queued after the end-of-batch send (by a timer, say) goes out now,
                // not at the next unrelated wake-up: to clients, and to upstreams (a request a
                // fault drill's delay released from `fireTimers`, a retry, a reset).
                timeout = 0
            } else if let next = timers.earliest {
                timeout = Worker.millisecondsUntil(next, from: now)
            }
            if acceptPausedUntil != 0 {
                let t = Worker.millisecondsUntil(acceptPausedUntil, from: now)
                timeout = timeout < 0 ? t : min(timeout, t)
            }
            if !accessLog.buffer.isEmpty {
                let t = Int32(AccessLogSink.flushInterval / 1_000_000)
                timeout = timeout < 0 ? t : min(timeout, t)
            }
            if buffers.warmFreeCount > 0 || h2.small.warmFreeCount > 0 {
                // Wake for the next trim only while there is something a trim could give back.
                let next = lastTrim &+ Worker.trimInterval
                let t = Worker.millisecondsUntil(next, from: now)
                timeout = timeout < 0 ? t : min(timeout, t)
            }
            let n = busyPoll.wait(epoll, events, max: maxEvents, timeoutMs: timeout, now: now)
            now = Sys.monotonicNanos()
            for i in 0..<n {
                let ev = events[i]
                dispatch(data: ev.data.u64, events: ev.events)
            }
            if !pending.isEmpty {
                let work = pending
                pending.removeAll(keepingCapacity: true)
                for c in work where c.conn.phase != .closed { drive(c) }
            }
            if !h2.dirty.isEmpty { flushQueuedHTTP2() }
            if !h2up.dirty.isEmpty { flushQueuedUpstreamSessions() }
            fireTimers()
            if acceptPausedUntil != 0 && acceptPausedUntil <= now {
                acceptPausedUntil = 0
                resumeAccepting()
            }
            if !accessLog.buffer.isEmpty && now &- accessLog.lastFlush >= AccessLogSink.flushInterval {
                accessLog.flush(now: now)
            }
            if now &- lastTrim >= Worker.trimInterval {
                lastTrim = now
                buffers.trim()
                h2.small.trim()
            }
            if draining && clientCount == 0 { running = false }
        }
        shutdownEverything()
        accessLog.flush(now: now)
    }

    private func dispatch(data: UInt64, events: UInt32) {
        let fd = Int32(truncatingIfNeeded: data & 0xffff_ffff)
        let gen = UInt32(truncatingIfNeeded: data >> 32)
        switch registrations.lookup(fd: fd, generation: gen) {
        case .none:
            return
        case .wake:
            wake.drain()
            for m in takeMessages() { handle(m) }
        case .listener(let i):
            acceptConnections(listener: Int(i))
        case .client(let c):
            c.note(events)
            drive(c)
        case .mirror(let m):
            mirrorEvent(m, events)
        case .h2upstream(let sess):
            sess.note(events)
            driveUpstreamSession(sess)
        case .upstream(let u):
            u.note(events)
            if let c = u.client {
                drive(c)
            } else if events & (EpollMask.input | EpollMask.readHangup | EpollMask.hangup | EpollMask.error) != 0 {
                // An idle pooled connection: the upstream closed it or sent something unasked.
                // (A bare EPOLLOUT edge, e.g. a late ACK freeing send space, is harmless.)
                closeUpstream(u)
            }
        }
    }

    private func handle(_ message: WorkerMessage) {
        switch message {
        case .publish(let t, let map):
            table = t
            series = map
            balancer = BalancerState(table: t, health: health, slots: map.endpointSlots, worker: index)
            retryBudget.use(t)
            rebuildPools()
            retireOrphanedTunnels()
            refreshMirrorIDs()
        case .tls(let set):
            applyTLS(set)
            rebuildPools()
        case .drain:
            beginDrain()
        case .stop:
            running = false
        }
    }

}
