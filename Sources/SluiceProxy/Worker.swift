@preconcurrency import Glibc
import SluiceCore
internal import CSluiceSys

/// Messages another thread posts to a worker (control plane only; never per request).
enum WorkerMessage {
    /// Route new exchanges with this table (and record them under these metric series) from now on.
    case publish(RoutingTable, SeriesMap)
    /// Stop accepting, finish in-flight requests, then exit the loop.
    case drain
    /// Exit the loop now, closing everything.
    case stop
}

/// What one epoll registration refers to.
///
/// 8 bytes: a 32-bit listener index leaves the tag room in the spare bits of the payloads (an
/// `Int` would make it 9, a 16-byte stride), which halves the fd-indexed `registrations` array.
enum Registration {
    case none
    case wake
    case listener(Int32)
    case client(ClientConnection)
    case upstream(UpstreamConnection)
}

/// One event loop thread: its epoll instance, its listening sockets (SO_REUSEPORT), its client
/// connections, its upstream pools and its timers.
///
/// `@unchecked Sendable`: the object is created on the starting thread and then used only by
/// its own loop thread, except `post(_:)`, which takes `mailboxLock`.
final class Worker: @unchecked Sendable {
    let index: Int
    let settings: ProxySettings
    private let epoll: Epoll
    private let wake: WakeFD
    private var listenerFDs: [Int32]
    private var listenersActive = true
    private var registrations: [Registration] = []
    private var generations: [UInt32] = []
    private var timers = TimerHeap()
    private var now: UInt64 = 0
    private var running = true
    private var draining = false
    private var clientCount = 0
    private var acceptPausedUntil: UInt64 = 0

    private var table: RoutingTable
    /// Metric series ids for `table`.
    private var series: SeriesMap
    /// This worker's metrics (written only here; summed by the admin side).
    private let metrics: MetricsShard
    private let recordMetrics: Bool
    private var balancer: BalancerState
    /// Pools for the current table, indexed [upstream][endpoint].
    private var pools: [[EndpointPool]] = []
    private var poolsByAddress: [SocketAddress: EndpointPool] = [:]
    private var entropyState: UInt64
    /// Recycled 64 KiB buffer blocks for connections (declared before anything that holds buffers).
    private let buffers = BufferPool(blockSize: Worker.bufferCapacity, maxFree: 4096)
    /// Free buffer blocks unused for a whole interval give their pages back (`BufferPool.trim`).
    private static let trimInterval: UInt64 = 2_000_000_000
    private var lastTrim: UInt64 = 0
    /// Recycled per-exchange state, so idle connections hold none and busy ones allocate none.
    private let exchanges = ExchangePool(maxFree: 4096)
    /// Reused scratch for serializing heads.
    private var scratch: [UInt8] = []
    /// Empty pipes for splicing response bodies.
    private var pipes = PipePool()
    /// Clients that stopped processing because their per-wakeup read budget ran out.
    private var pending: [ClientConnection] = []

    /// Buffered access-log lines, written by this worker in batches.
    private var accessLog: AccessLogSink

    private var mailboxLock = pthread_mutex_t()
    private var mailbox: [WorkerMessage] = []

    private static let readBudget = 16
    /// Spliced bodies with less than this left are read at every arriving byte (no low-water mark).
    private static let lowWaterMinimum: UInt64 = 64 * 1024
    /// Longest a low-water mark may hold back bytes that arrived (a slow upstream's trickle).
    private static let lowWaterWait: UInt64 = 20_000_000
    private static let bufferCapacity = 64 * 1024
    /// How long a half-closed connection reads and discards what the client still sends.
    private static let lingerTime: UInt64 = 2_000_000_000

    init(index: Int, settings: ProxySettings, listenerFDs: [Int32], table: RoutingTable, series: SeriesMap,
         metrics: MetricsShard) throws(SyscallError) {
        self.series = series
        self.metrics = metrics
        self.recordMetrics = settings.recordMetrics
        self.index = index
        self.settings = settings
        self.epoll = try Epoll()
        self.wake = try WakeFD()
        self.listenerFDs = listenerFDs
        self.table = table
        self.accessLog = AccessLogSink(fd: settings.accessLogFD)
        self.balancer = BalancerState(table: table)
        self.entropyState = Sys.monotonicNanos() ^ (UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15)
        if entropyState == 0 { entropyState = 0x1234_5678 }
        pthread_mutex_init(&mailboxLock, nil)
        scratch.reserveCapacity(64 * 1024)
        rebuildPools()
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

    /// Runs the loop on the calling thread until stopped or drained.
    func run() {
        let maxEvents: Int32 = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: Int(maxEvents))
        defer { events.deallocate() }
        while running {
            now = Sys.monotonicNanos()
            var timeout: Int32 = -1
            if !pending.isEmpty {
                timeout = 0
            } else if let next = timers.earliest {
                timeout = next <= now ? 0 : Int32(min((next - now + 999_999) / 1_000_000, 60_000))
            }
            if acceptPausedUntil != 0 {
                let t = acceptPausedUntil <= now ? 0 : Int32((acceptPausedUntil - now + 999_999) / 1_000_000)
                timeout = timeout < 0 ? t : min(timeout, t)
            }
            if !accessLog.buffer.isEmpty {
                let t = Int32(AccessLogSink.flushInterval / 1_000_000)
                timeout = timeout < 0 ? t : min(timeout, t)
            }
            if buffers.warmFreeCount > 0 {
                // Wake for the next trim only while there is something a trim could give back.
                let next = lastTrim &+ Worker.trimInterval
                let t = next <= now ? 0 : Int32((next - now + 999_999) / 1_000_000)
                timeout = timeout < 0 ? t : min(timeout, t)
            }
            let n = epoll.wait(events, max: maxEvents, timeoutMs: timeout)
            now = Sys.monotonicNanos()
            for i in 0..<n {
                let ev = events[i]
                dispatch(data: ev.data.u64, events: ev.events)
            }
            if !pending.isEmpty {
                let work = pending
                pending.removeAll(keepingCapacity: true)
                for c in work where c.phase != .closed { drive(c) }
            }
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
            }
            if draining && clientCount == 0 { running = false }
        }
        shutdownEverything()
        accessLog.flush(now: now)
    }

    private func dispatch(data: UInt64, events: UInt32) {
        let fd = Int32(truncatingIfNeeded: data & 0xffff_ffff)
        let gen = UInt32(truncatingIfNeeded: data >> 32)
        guard Int(fd) < registrations.count, generations[Int(fd)] == gen else { return }
        switch registrations[Int(fd)] {
        case .none:
            return
        case .wake:
            wake.drain()
            for m in takeMessages() { handle(m) }
        case .listener(let i):
            acceptConnections(listener: Int(i))
        case .client(let c):
            if events & EpollMask.input != 0 { c.readable = true }
            if events & EpollMask.output != 0 { c.writable = true }
            if events & (EpollMask.readHangup | EpollMask.hangup | EpollMask.error) != 0 {
                c.hangup = true
                c.readable = true
                c.writable = true
            }
            drive(c)
        case .upstream(let u):
            if events & EpollMask.input != 0 { u.readable = true }
            if events & EpollMask.output != 0 { u.writable = true }
            if events & (EpollMask.readHangup | EpollMask.hangup | EpollMask.error) != 0 {
                u.hangup = true
                u.readable = true
                u.writable = true
            }
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
            balancer = BalancerState(table: t)
            rebuildPools()
        case .drain:
            beginDrain()
        case .stop:
            running = false
        }
    }

    // MARK: - Registration

    private func register(_ fd: Int32, _ reg: Registration, events: UInt32) throws(SyscallError) {
        let i = Int(fd)
        if i >= registrations.count {
            let newCount = max(i + 1, registrations.count * 2, 64)
            registrations.append(contentsOf: repeatElement(.none, count: newCount - registrations.count))
            generations.append(contentsOf: repeatElement(0, count: newCount - generations.count))
        }
        registrations[i] = reg
        try epoll.add(fd, events: events, data: UInt64(generations[i]) << 32 | UInt64(UInt32(bitPattern: fd)))
    }

    /// Reserves the next generation for `fd` (call before creating its connection object).
    private func nextGeneration(_ fd: Int32) -> UInt32 {
        let i = Int(fd)
        if i >= generations.count {
            let newCount = max(i + 1, generations.count * 2, 64)
            registrations.append(contentsOf: repeatElement(.none, count: newCount - registrations.count))
            generations.append(contentsOf: repeatElement(0, count: newCount - generations.count))
        }
        generations[i] &+= 1
        return generations[i]
    }

    private func unregister(_ fd: Int32) {
        let i = Int(fd)
        registrations[i] = .none
        generations[i] &+= 1
    }

    // MARK: - Accept

    private func acceptConnections(listener: Int) {
        guard listenersActive && !draining else { return }
        let lfd = listenerFDs[listener]
        for _ in 0..<64 {
            if clientCount >= settings.limits.maxConnectionsPerWorker {
                pauseAccepting(retryAfter: 0)
                return
            }
            switch Sys.accept(lfd) {
            case .accepted(let fd, let peer):
                Sys.setNoDelay(fd)
                let gen = nextGeneration(fd)
                let c = ClientConnection(
                    fd: fd, generation: gen, peer: peer, listenerIndex: listener,
                    inCapacity: max(Worker.bufferCapacity, settings.limits.parser.maxHeadBytes + 16 * 1024),
                    outCapacity: Worker.bufferCapacity, pool: buffers)
                do {
                    try register(fd, .client(c), events: EpollMask.input | EpollMask.output | EpollMask.readHangup | EpollMask.edge)
                } catch {
                    Sys.close(fd)
                    unregister(fd)
                    continue
                }
                clientCount += 1
                if recordMetrics { metrics.connectionAccepted(listener: listener) }
                c.trusted = settings.trustedProxies.contains { $0.contains(peer) }
                c.phaseStart = now
                c.lastReadProgress = now
                c.lastWriteProgress = now
                c.readable = true
                setClientDeadline(c, now &+ settings.timeouts.clientHeader)
            case .wouldBlock, .skipped:
                return
            case .exhausted:
                // Out of descriptors: keep the listener, stop accepting for a moment.
                pauseAccepting(retryAfter: 100_000_000)
                return
            }
        }
    }

    private func pauseAccepting(retryAfter: UInt64) {
        guard listenersActive else { return }
        listenersActive = false
        for fd in listenerFDs { epoll.remove(fd) }
        if retryAfter > 0 { acceptPausedUntil = now &+ retryAfter }
    }

    private func resumeAccepting() {
        guard !listenersActive, !draining else { return }
        listenersActive = true
        for (i, fd) in listenerFDs.enumerated() {
            try? epoll.add(fd, events: EpollMask.input, data: UInt64(generations[Int(fd)]) << 32 | UInt64(UInt32(bitPattern: fd)))
            registrations[Int(fd)] = .listener(Int32(i))
            acceptConnections(listener: i)
        }
    }

    // MARK: - Drain and shutdown

    private func beginDrain() {
        guard !draining else { return }
        draining = true
        for fd in listenerFDs {
            epoll.remove(fd)
            unregister(fd)
            Sys.close(fd)
        }
        listenerFDs = []
        listenersActive = false
        for reg in registrations {
            guard case .client(let c) = reg else { continue }
            c.draining = true
            if c.phase == .awaitingHead && c.inBuffer.isEmpty && c.outBuffer.isEmpty {
                closeClient(c)
            } else {
                c.closeAfterResponse = true
            }
        }
    }

    private func shutdownEverything() {
        for reg in registrations {
            switch reg {
            case .client(let c): closeClient(c)
            case .upstream(let u): closeUpstream(u)
            default: break
            }
        }
        for fd in listenerFDs { Sys.close(fd) }
        listenerFDs = []
        pipes.closeAll()
        Sys.close(epoll.fd)
        Sys.close(wake.fd)
    }

    // MARK: - Pools

    private func rebuildPools() {
        var used = Set<SocketAddress>()
        pools = table.upstreams.map { group in
            group.endpoints.map { ep in
                used.insert(ep.address)
                if let p = poolsByAddress[ep.address] {
                    p.retired = false
                    p.maxIdle = settings.limits.upstreamMaxIdle
                    return p
                }
                let p = EndpointPool(address: ep.address, maxIdle: settings.limits.upstreamMaxIdle)
                poolsByAddress[ep.address] = p
                return p
            }
        }
        // Endpoints no longer in the table: close their idle connections; in-flight ones finish.
        for (addr, p) in poolsByAddress where !used.contains(addr) {
            p.retired = true
            for u in p.idle { closeUpstream(u) }
            p.idle.removeAll()
            if p.open == 0 { poolsByAddress[addr] = nil }
        }
    }

    // MARK: - Entropy

    @inline(__always)
    private func nextEntropy() -> UInt64 {
        // xorshift64*: per-worker, no shared state.
        var x = entropyState
        x ^= x >> 12
        x ^= x << 25
        x ^= x >> 27
        entropyState = x
        return x &* 0x2545_F491_4F6C_DD1D
    }

    // MARK: - Timers

    private func setClientDeadline(_ c: ClientConnection, _ d: UInt64) {
        c.deadline = d
        if d != 0 && (c.queuedDeadline == 0 || d < c.queuedDeadline) {
            c.queuedDeadline = d
            timers.push(.init(deadline: d, fd: c.fd, generation: c.generation))
        }
    }

    private func setUpstreamDeadline(_ u: UpstreamConnection, _ d: UInt64) {
        u.deadline = d
        if d != 0 && (u.queuedDeadline == 0 || d < u.queuedDeadline) {
            u.queuedDeadline = d
            timers.push(.init(deadline: d, fd: u.fd, generation: u.generation))
        }
    }

    private func fireTimers() {
        while let e = timers.popDue(now: now) {
            let i = Int(e.fd)
            guard i < registrations.count, generations[i] == e.generation else { continue }
            switch registrations[i] {
            case .client(let c):
                guard e.deadline == c.queuedDeadline else { continue }
                c.queuedDeadline = 0
                if c.deadline != 0 && c.deadline <= now {
                    clientTimedOut(c)
                } else if c.deadline != 0 {
                    setClientDeadline(c, c.deadline)
                }
            case .upstream(let u):
                guard e.deadline == u.queuedDeadline else { continue }
                u.queuedDeadline = 0
                if u.deadline != 0 && u.deadline <= now {
                    upstreamTimedOut(u)
                } else if u.deadline != 0 {
                    setUpstreamDeadline(u, u.deadline)
                }
            default:
                continue
            }
        }
    }

    private func clientTimedOut(_ c: ClientConnection) {
        c.deadline = 0
        switch c.phase {
        case .awaitingHead:
            if c.inBuffer.isEmpty {
                closeClient(c)  // idle keep-alive connection: close quietly, as nginx does
            } else {
                beginRequest(c, parsed: false)
                respondDirect(c, status: 408, body: "request header not received in time\n", close: true)
                drive(c)
            }
        case .exchange:
            if !c.responseStarted && c.outBuffer.isEmpty {
                // The client stopped sending its body.
                abortUpstream(c)
                respondDirect(c, status: 408, body: "request body not received in time\n", close: true)
                drive(c)
            } else {
                // The client stopped reading its response (send timeout): free everything.
                abortUpstream(c)
                closeClient(c)
            }
        case .closing, .lingering:
            closeClient(c)
        case .closed:
            break
        }
    }

    private func upstreamTimedOut(_ u: UpstreamConnection) {
        u.deadline = 0
        guard let c = u.client else {
            closeUpstream(u)  // idle timeout in the pool
            return
        }
        if u.lowWater != 0 && now &- u.lastProgress < settings.timeouts.upstreamResponseHeader {
            // Not a timeout: the low-water mark waited long enough. Lowering it makes the kernel
            // report whatever has arrived.
            setLowWater(u, 0)
            updateUpstreamTimer(u, client: c)
            return
        }
        if !u.connected {
            failExchange(c, .connectTimeout)
        } else if case .awaitingHead = c.responseBody {
            failExchange(c, .responseTimeout)
        } else {
            // Body stalled: the response is already partly sent, so the client connection must go.
            noteUpstreamError(c, .responseTimeout)
            abortUpstream(c)
            closeClient(c)
            return
        }
        drive(c)
    }

    /// Recomputes a client's deadline from its state after it made progress.
    private func updateClientTimer(_ c: ClientConnection) {
        let t = settings.timeouts
        switch c.phase {
        case .awaitingHead:
            if c.deadline == 0 {
                let base = c.inBuffer.isEmpty && c.requestsServed > 0 ? t.clientIdle : t.clientHeader
                setClientDeadline(c, c.phaseStart &+ base)
            }
        case .exchange:
            if (!c.outBuffer.isEmpty || (c.upstream?.pipe?.count ?? 0) > 0) && !c.writable {
                setClientDeadline(c, c.lastWriteProgress &+ t.clientSend)
            } else if case .done = c.requestBody {
                if c.deadline != 0 { c.deadline = 0 }
            } else if c.inBuffer.isEmpty {
                setClientDeadline(c, c.lastReadProgress &+ t.clientIdle)
            } else if c.deadline != 0 {
                c.deadline = 0
            }
        case .closing:
            setClientDeadline(c, c.lastWriteProgress &+ t.clientSend)
        case .lingering, .closed:
            break
        }
    }

    private func updateUpstreamTimer(_ u: UpstreamConnection, client c: ClientConnection) {
        let t = settings.timeouts
        if !u.connected {
            if u.deadline == 0 { setUpstreamDeadline(u, u.connectStart &+ t.upstreamConnect) }
            return
        }
        switch c.responseBody {
        case .awaitingHead:
            if u.requestSentAt != 0 {
                setUpstreamDeadline(u, max(u.requestSentAt, u.lastProgress) &+ t.upstreamResponseHeader)
            } else if u.deadline != 0 {
                u.deadline = 0
            }
        case .done:
            if u.deadline != 0 { u.deadline = 0 }
        default:
            if u.inBuffer.freeSpace == 0 || c.outBuffer.freeSpace < 1024 || ((u.pipe?.count ?? 0) > 0 && !c.writable) {
                if u.deadline != 0 { u.deadline = 0 }  // held back by the client: its send timeout applies
            } else if u.lowWater != 0 {
                setUpstreamDeadline(u, min(u.lastProgress &+ t.upstreamResponseHeader, u.lowWaterSince &+ Worker.lowWaterWait))
            } else {
                setUpstreamDeadline(u, u.lastProgress &+ t.upstreamResponseHeader)
            }
        }
    }

    // MARK: - Closing

    private func closeClient(_ c: ClientConnection) {
        guard c.phase != .closed else { return }
        if let x = c.exchange {
            if c.requestActive { endRequest(c) }
            abortUpstream(c)
            x.recycle()  // it may be anywhere in its exchange
            detachExchange(c)
        }
        c.phase = .closed
        c.deadline = 0
        unregister(c.fd)
        Sys.close(c.fd)
        c.inBuffer.release()
        c.outBuffer.release()
        clientCount -= 1
        if recordMetrics { metrics.connectionClosed(listener: Int(c.listenerIndex)) }
        if !listenersActive && !draining && acceptPausedUntil == 0 && clientCount < settings.limits.maxConnectionsPerWorker {
            resumeAccepting()
        }
    }

    private func closeUpstream(_ u: UpstreamConnection) {
        if case .upstream(let reg) = registrations[Int(u.fd)], reg === u {
            unregister(u.fd)
            Sys.close(u.fd)
            if recordMetrics { metrics.upstreamConnectionClosed(upstream: u.metricsUpstream) }
            u.pool.open -= 1
            if let i = u.pool.idle.firstIndex(where: { $0 === u }) { u.pool.idle.remove(at: i) }
            if u.pool.retired && u.pool.open == 0 && poolsByAddress[u.pool.address] === u.pool {
                poolsByAddress[u.pool.address] = nil
            }
        }
        u.client = nil
        u.deadline = 0
        u.inBuffer.release()
        u.outBuffer.release()
        if let p = u.pipe {
            u.pipe = nil
            pipes.give(p)  // closed if bytes are left in it
        }
    }

    /// Drops the exchange's upstream connection, closing it (its state is unknown).
    private func abortUpstream(_ c: ClientConnection) {
        guard let u = c.upstream else { return }
        c.upstream = nil
        u.client = nil
        closeUpstream(u)
    }

    // MARK: - Driving a client connection

    /// Advances everything that can advance on this client's connection and its upstream.
    func drive(_ c: ClientConnection) {
        var budget = Worker.readBudget
        var rounds = 0
        while c.phase != .closed {
            rounds += 1
            var progressed = false
            switch c.phase {
            case .awaitingHead:
                progressed = advanceAwaitingHead(c, budget: &budget)
            case .exchange:
                progressed = advanceExchange(c, budget: &budget)
            case .closing:
                if c.hangup && !c.outBuffer.isEmpty && !c.writable {
                    closeClient(c)
                    return
                }
            case .lingering:
                progressed = discardInput(c, budget: &budget)
            case .closed:
                return
            }
            if c.phase == .closed { return }
            if !c.outBuffer.isEmpty && c.writable {
                if flushClient(c) { progressed = true }
                if c.phase == .closed { return }
            }
            if c.phase == .closing && c.outBuffer.isEmpty {
                if c.unreadInput && !c.readEOF && !c.hangup {
                    // Unread request bytes would make close() send a reset that can destroy the
                    // response in flight: half-close and read until the client closes.
                    startLingering(c)
                    continue
                }
                closeClient(c)
                return
            }
            if !progressed { break }
            if budget <= 0 || rounds > 256 {
                // Fairness: let other connections run; continue on the next loop iteration.
                pending.append(c)
                break
            }
        }
        if c.phase != .closed {
            // Buffers with nothing pending give their blocks back to the worker's pool (they take one
            // again when bytes come): a connection waiting for a request, or for its upstream's answer,
            // holds none, so buffer memory follows the bytes in flight, not the connections open.
            c.inBuffer.releaseIfEmpty()
            c.outBuffer.releaseIfEmpty()
            let u = c.exchange?.state.upstream
            if let u {
                u.inBuffer.releaseIfEmpty()
                u.outBuffer.releaseIfEmpty()
            }
            if c.phase == .awaitingHead && c.inBuffer.isEmpty && c.outBuffer.isEmpty {
                // Idle between requests: the exchange goes back to the worker's pool too.
                detachExchange(c)
            }
            updateClientTimer(c)
            if let u { updateUpstreamTimer(u, client: c) }
        }
    }

    /// Gives `c` an exchange from the pool unless it has one: from the first byte of a request head
    /// on, the head and the request's accounting need it.
    private func attachExchange(_ c: ClientConnection) {
        guard c.exchange == nil else { return }
        let x = exchanges.take()
        x.usePeer(c.peer)
        c.exchange = x
    }

    /// Returns `c`'s exchange, if any, to the pool. Its request must be finished (`finishRequest`),
    /// or the exchange recycled (see `ExchangePool.give`).
    private func detachExchange(_ c: ClientConnection) {
        guard let x = c.exchange.take() else { return }
        exchanges.give(x)
    }

    /// Reads from the client into its input buffer. Returns true if bytes arrived.
    private func startLingering(_ c: ClientConnection) {
        _ = shutdown(c.fd, Int32(SHUT_WR))
        c.phase = .lingering
        c.inBuffer.clear()
        c.deadline = 0
        setClientDeadline(c, now &+ Worker.lingerTime)
    }

    private func discardInput(_ c: ClientConnection, budget: inout Int) -> Bool {
        if c.readEOF || (c.hangup && !c.readable) {
            closeClient(c)
            return false
        }
        c.inBuffer.clear()
        return readClient(c, budget: &budget)
    }

    private func readClient(_ c: ClientConnection, budget: inout Int) -> Bool {
        guard c.readable, !c.readEOF, budget > 0 else { return false }
        let space = c.inBuffer.writableSpace()
        guard space.count > 0 else { return false }
        budget -= 1
        switch Sys.read(c.fd, space.baseAddress!, space.count) {
        case .done(let n):
            c.inBuffer.didWrite(n)
            c.lastReadProgress = now
            if n < space.count { c.readable = c.hangup }  // short read: the kernel buffer is drained
            return true
        case .wouldBlock:
            c.readable = false
            return false
        case .eof:
            c.readEOF = true
            c.readable = false
            return true
        case .failed:
            c.readEOF = true
            c.readable = false
            c.hangup = true
            return true
        }
    }

    /// Writes queued response bytes. Returns true if any were written.
    private func flushClient(_ c: ClientConnection) -> Bool {
        var wrote = false
        while !c.outBuffer.isEmpty {
            let r = c.outBuffer.readable
            switch Sys.write(c.fd, r.baseAddress!, r.count) {
            case .done(let n):
                c.outBuffer.consume(n)
                c.lastWriteProgress = now
                wrote = true
            case .wouldBlock:
                c.writable = false
                return wrote
            case .eof, .failed:
                // The client is gone.
                abortUpstream(c)
                closeClient(c)
                return true
            }
        }
        return wrote
    }

    private func advanceAwaitingHead(_ c: ClientConnection, budget: inout Int) -> Bool {
        if !c.inBuffer.isEmpty {
            let status = RequestParser.parse(c.inBuffer.readable, into: &c.head, limits: settings.limits.parser)
            switch status {
            case .complete:
                beginRequest(c, parsed: true)
                startExchange(c)
                return true
            case .invalid(let error):
                beginRequest(c, parsed: false)
                respondDirect(c, status: error.status, body: error.reason + "\n", close: true)
                return true
            case .incomplete:
                break
            }
        }
        if c.readEOF || (c.hangup && !c.readable) {
            // Client closed between requests (or mid-head): nothing to answer.
            closeClient(c)
            return false
        }
        if c.draining && c.inBuffer.isEmpty && c.outBuffer.isEmpty {
            closeClient(c)
            return false
        }
        let wasEmpty = c.inBuffer.isEmpty
        let got = readClient(c, budget: &budget)
        if got && wasEmpty && !c.inBuffer.isEmpty {
            // First byte of a new head: the header timeout starts now.
            attachExchange(c)
            c.phaseStart = now
            setClientDeadline(c, now &+ settings.timeouts.clientHeader)
        }
        return got
    }

    /// Queues a response generated by the proxy and moves to the next request or to closing.
    private func respondDirect(_ c: ClientConnection, status: Int, body: String, close: Bool) {
        var body = body
        body.withUTF8 { b in
            respondDirect(c, status: status, contentType: "text/plain; charset=utf-8", body: UnsafeRawBufferPointer(b), close: close)
        }
    }

    private func respondDirect(_ c: ClientConnection, status: Int, contentType: StaticString, body: UnsafeRawBufferPointer, close: Bool) {
        let closing = closesAfterDirectResponse(c, close)
        scratch.removeAll(keepingCapacity: true)
        HeadWriter.appendSimpleResponse(
            status: status, contentType: contentType, body: body, closeConnection: closing,
            http10KeepAlive: c.head.version == .http10 && !closing, headOnly: c.head.method == .head, to: &scratch)
        queueScratchResponse(c, status: status, closing: closing)
    }

    /// Whether the connection closes after a response Sluice generates itself.
    private func closesAfterDirectResponse(_ c: ClientConnection, _ close: Bool) -> Bool {
        close || !c.head.keepAlive || c.closeAfterResponse || c.draining
    }

    /// Queues the whole response serialized in `scratch` and moves on to the next request (or closing).
    private func queueScratchResponse(_ c: ClientConnection, status: Int, closing: Bool) {
        if !c.outBuffer.append(scratch) {
            // No room (should not happen: generated responses are small): give up on the connection.
            closeClient(c)
            return
        }
        c.statusSent = status
        c.bytesOut &+= UInt64(scratch.count)
        finishRequest(c, close: closing)
    }

    /// After a response is queued: next request (keep-alive) or close once flushed.
    private func finishRequest(_ c: ClientConnection, close: Bool) {
        endRequest(c)
        var bodyPending = true
        if case .done = c.requestBody { bodyPending = false }
        if bodyPending || !c.inBuffer.isEmpty { c.unreadInput = true }
        c.requestsServed += 1
        c.table = nil
        c.pool = nil
        c.responseStarted = false
        c.responseBody = .awaitingHead
        c.requestBody = .done
        let limit = settings.limits.maxRequestsPerConnection
        if close || c.closeAfterResponse || c.draining || (limit > 0 && c.requestsServed >= limit) {
            c.phase = .closing
            c.readable = false
        } else {
            c.phase = .awaitingHead
            c.phaseStart = now
            c.deadline = 0
        }
    }

    private func requestBodyIsEmpty(_ head: RequestHead) -> Bool {
        switch head.framing {
        case .none, .untilClose: return true
        case .contentLength(let n): return n == 0
        case .chunked: return false
        }
    }

    // MARK: - Per-request accounting

    private static let requestIDName: [UInt8] = Array("x-request-id".utf8)
    private static let traceparentName: [UInt8] = Array("traceparent".utf8)

    /// Starts accounting for a request whose head was parsed (or rejected).
    private func beginRequest(_ c: ClientConnection, parsed: Bool) {
        c.requestActive = true
        c.requestStart = now
        c.statusSent = 0
        c.bytesOut = 0
        c.requestBodyBytes = 0
        c.bytesIn = parsed ? UInt64(c.head.headLength) : UInt64(c.inBuffer.count)
        c.decision = .notFound
        c.metricSeries = SeriesMap.unroutedSeries
        c.inFlightCounted = false
        c.pool = nil
        c.requestID.removeAll(keepingCapacity: true)
        c.requestIDGenerated = false
        let bytes = c.inBuffer.readable
        if parsed {
            Worker.requestIDName.withUnsafeBytes { name in
                if let v = c.head.fieldValue(named: name, in: bytes), v.count > 0, v.count <= 200 {
                    c.requestID.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[v.range]))
                }
            }
        }
        if c.requestID.isEmpty {
            // 128 random bits as 32 hex digits.
            StickyHash.appendHex(nextEntropy(), to: &c.requestID)
            StickyHash.appendHex(nextEntropy(), to: &c.requestID)
            c.requestIDGenerated = true
        }
        guard accessLog.enabled else { return }
        let (sec, ms) = Worker.wallClock()
        c.requestWallSeconds = sec
        c.requestWallMillis = ms
        c.logMethod.removeAll(keepingCapacity: true)
        c.logPath.removeAll(keepingCapacity: true)
        c.logTraceparent.removeAll(keepingCapacity: true)
        guard parsed else { return }
        let head = c.head
        c.logMethod.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[head.methodSpan.range]))
        c.logPath.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[head.target.range].prefix(2048)))
        Worker.traceparentName.withUnsafeBytes { name in
            if let v = head.fieldValue(named: name, in: bytes), v.count <= 256 {
                c.logTraceparent.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[v.range]))
            }
        }
    }

    /// Records a finished (or abandoned) request: metrics and the access log line.
    private func endRequest(_ c: ClientConnection) {
        guard c.requestActive else { return }
        c.requestActive = false
        // 499: the client went away before a response was sent (nginx's convention).
        let status = c.statusSent == 0 ? 499 : c.statusSent
        let duration = now &- c.requestStart
        let bytesIn = c.bytesIn &+ c.requestBodyBytes
        if recordMetrics {
            if c.inFlightCounted {
                metrics.addInFlight(series: c.metricSeries, -1)
                c.inFlightCounted = false
            }
            metrics.recordRequest(series: c.metricSeries, status: status, durationNanos: duration, bytesIn: bytesIn,
                                  bytesOut: c.bytesOut)
        }
        guard accessLog.enabled else { return }
        var record = AccessLogRecord(unixSeconds: c.requestWallSeconds, milliseconds: c.requestWallMillis, status: status,
                                     durationNanos: duration, bytesIn: bytesIn, bytesOut: c.bytesOut)
        var routeName = ""
        var cohortName = ""
        if let table = c.table, c.decision.route >= 0, Int(c.decision.route) < table.routes.count {
            let route = table.routes[Int(c.decision.route)]
            routeName = route.name
            if c.decision.cohort >= 0 && Int(c.decision.cohort) < route.cohorts.count {
                cohortName = route.cohorts[Int(c.decision.cohort)].name
            }
        }
        let upstream = c.pool?.hostBytes ?? []
        c.exchange!.peerText.withUnsafeBytes { client in
        c.logMethod.withUnsafeBytes { method in
        c.logPath.withUnsafeBytes { path in
        c.logTraceparent.withUnsafeBytes { trace in
        c.requestID.withUnsafeBytes { rid in
        upstream.withUnsafeBytes { up in
        routeName.withUTF8 { rn in
        cohortName.withUTF8 { cn in
            record.client = client
            record.method = method
            record.path = path
            record.traceparent = trace
            record.requestID = rid
            record.upstream = up
            record.route = UnsafeRawBufferPointer(rn)
            record.cohort = UnsafeRawBufferPointer(cn)
            AccessLogLine.append(record, to: &accessLog.buffer)
        }}}}}}}}
        if accessLog.buffer.count >= AccessLogSink.flushThreshold { accessLog.flush(now: now) }
    }

    /// Wall-clock time (seconds, milliseconds) for log lines.
    private static func wallClock() -> (Int, Int) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (Int(ts.tv_sec), Int(ts.tv_nsec / 1_000_000))
    }

    // MARK: - Starting an exchange

    private func startExchange(_ c: ClientConnection) {
        var head = c.head
        let limits = settings.limits
        c.requestMethod = head.method
        c.requestVersion = head.version
        let bodyless = requestBodyIsEmpty(head)
        if case .contentLength(let n) = head.framing, limits.maxBodyBytes > 0, n > limits.maxBodyBytes {
            respondDirect(c, status: 413, body: "request body larger than \(limits.maxBodyBytes) bytes\n", close: true)
            return
        }
        let table = self.table
        let bytes = c.inBuffer.readable
        let decision = table.decide(head: head, bytes: bytes, client: c.peer, entropy: nextEntropy(), balancer: &balancer)
        c.decision = decision
        c.table = table
        c.metricSeries = series.series(for: decision)
        switch decision.action {
        case .notFound:
            c.inBuffer.consume(head.headLength)
            c.unreadInput = !bodyless
            respondDirect(c, status: 404, body: "no route matches this request\n", close: !bodyless)
            return
        case .respond:
            c.inBuffer.consume(head.headLength)
            c.unreadInput = !bodyless
            let r = table.responses[Int(decision.response)]
            let closing = !bodyless
            r.body.withUnsafeBytes { body in
                queueConfiguredResponse(c, r, body: body, close: closing)
            }
            return
        case .forward:
            break
        }

        // Serialize the upstream request head now, while the head's bytes are in the buffer.
        let pool = pools[Int(decision.upstream)][Int(decision.endpoint)]
        let route = table.routes[Int(decision.route)]
        // A client must not choose the cohort the upstream sees: drop any copy of the cohort header it sent.
        route.cohortHeaderLowercased.withUnsafeBytes { name in
            var i = head.fieldIndex(named: name, in: bytes)
            while i >= 0 {
                head.fields[i].flags.insert(.hopByHop)
                i = head.fieldIndex(named: name, in: bytes, from: i + 1)
            }
        }
        // The exchange held once for the serialization (no reference counting per array access).
        let x = c.exchange!
        x.upstreamHead.removeAll(keepingCapacity: true)
        x.peerText.withUnsafeBytes { peerBytes in
            pool.hostBytes.withUnsafeBytes { host in
                HeadWriter.appendRequestStart(head, bytes: bytes, clientAddress: peerBytes, forwardedProto: "http",
                                              fallbackHost: host, trustForwarded: c.trusted, to: &x.upstreamHead)
            }
        }
        route.appendCohortHeader(cohort: decision.cohort, to: &x.upstreamHead)
        if c.requestIDGenerated {
            HeadWriter.appendStatic("X-Request-Id: ", to: &x.upstreamHead)
            x.upstreamHead.append(contentsOf: x.requestID)
            HeadWriter.appendStatic("\r\n", to: &x.upstreamHead)
        }
        let outFraming: BodyFraming
        switch head.framing {
        case .chunked:
            outFraming = .chunked
            c.requestBody = .chunked(ChunkedDecoder(limits: limits.parser))
        case .contentLength(let n) where n > 0:
            outFraming = .contentLength(n)
            c.requestBody = .length(remaining: n)
        default:
            outFraming = head.method == .post || head.method == .put || head.method == .patch ? .contentLength(0) : .none
            c.requestBody = .done
        }
        HeadWriter.appendFraming(outFraming, closeConnection: false, http10KeepAlive: false, to: &x.upstreamHead)
        c.inBuffer.consume(head.headLength)
        c.requestBodyBytes = 0
        c.table = table
        c.pool = pool
        c.attempts = 0
        c.upstreamMetricsID = series.upstream(for: decision)
        if recordMetrics {
            metrics.addInFlight(series: c.metricSeries, 1)
            c.inFlightCounted = true
        }
        c.responseBody = .awaitingHead
        c.responseStarted = false
        c.phase = .exchange
        c.deadline = 0
        c.lastReadProgress = now

        if head.expectContinue && head.version == .http11 && !bodyless && c.inBuffer.isEmpty {
            // We answer 100-continue ourselves (Expect is not forwarded), as nginx does.
            let interim: StaticString = "HTTP/1.1 100 Continue\r\n\r\n"
            c.outBuffer.append(UnsafeRawBufferPointer(start: interim.utf8Start, count: interim.utf8CodeUnitCount))
        }
        attachUpstream(c, pool: pool, allowPooled: true)
    }

    private func queueConfiguredResponse(_ c: ClientConnection, _ r: DirectResponse, body: UnsafeRawBufferPointer, close: Bool) {
        let closing = closesAfterDirectResponse(c, close)
        scratch.removeAll(keepingCapacity: true)
        HeadWriter.appendStatic("HTTP/1.1 ", to: &scratch)
        HeadWriter.appendDecimal(UInt64(r.status), to: &scratch)
        scratch.append(0x20)
        HeadWriter.appendStatic(HeadWriter.reasonPhrase(r.status), to: &scratch)
        HeadWriter.appendStatic("\r\nContent-Type: ", to: &scratch)
        scratch.append(contentsOf: r.contentType.utf8)
        HeadWriter.appendStatic("\r\n", to: &scratch)
        let noBody = c.head.method == .head || r.status == 204 || r.status == 304 || r.status < 200
        HeadWriter.appendFraming(r.status == 204 || r.status < 200 ? .none : .contentLength(UInt64(body.count)),
                                 closeConnection: closing, http10KeepAlive: c.head.version == .http10 && !closing, to: &scratch)
        if !noBody { scratch.append(contentsOf: body) }
        queueScratchResponse(c, status: r.status, closing: closing)
    }

    /// Gives the exchange an upstream connection: an idle pooled one, or a new connect.
    private func attachUpstream(_ c: ClientConnection, pool: EndpointPool, allowPooled: Bool) {
        c.attempts += 1
        var conn: UpstreamConnection?
        if allowPooled {
            while let u = pool.idle.popLast() {
                if u.hangup || u.readEOF || u.readable {
                    // Closed (or spoke) while idle: never reuse.
                    closeUpstream(u)
                    continue
                }
                conn = u
                u.reused = true
                break
            }
        }
        if conn == nil {
            conn = connectUpstream(pool, metricsID: c.upstreamMetricsID)
            if conn == nil {
                failExchange(c, .connectRefused)
                return
            }
        }
        let u = conn!
        u.client = c
        u.inBuffer.clear()
        u.outBuffer.clear()
        u.requestSentAt = 0
        u.lastProgress = now
        u.deadline = 0
        c.upstream = u
        _ = u.outBuffer.append(c.upstreamHead)
    }

    private func connectUpstream(_ pool: EndpointPool, metricsID: Int32) -> UpstreamConnection? {
        let fd: Int32
        do {
            fd = try Sys.tcpSocket(for: pool.address)
        } catch {
            return nil
        }
        Sys.setNoDelay(fd)
        let gen = nextGeneration(fd)
        let u = UpstreamConnection(fd: fd, generation: gen, pool: pool, capacity: Worker.bufferCapacity, buffers: buffers)
        u.connectStart = now
        switch Sys.connect(fd, to: pool.address) {
        case .connected:
            u.connected = true
            u.writable = true
        case .inProgress:
            break
        case .failed(let e):
            u.failedErrno = e
        }
        do {
            try register(fd, .upstream(u), events: EpollMask.input | EpollMask.output | EpollMask.readHangup | EpollMask.edge)
        } catch {
            Sys.close(fd)
            unregister(fd)
            return nil
        }
        pool.open += 1
        u.metricsUpstream = metricsID
        if recordMetrics { metrics.upstreamConnectionOpened(upstream: metricsID) }
        if u.failedErrno != 0 {
            u.hangup = true
        }
        return u
    }

    /// Fails the exchange with an upstream error: 502/504 if nothing was sent to the client yet,
    /// otherwise the client connection is closed (its response is cut short).
    private func failExchange(_ c: ClientConnection, _ failure: UpstreamFailure) {
        if c.responseStarted {
            cutResponse(c, failure)
            return
        }
        noteUpstreamError(c, failure)
        abortUpstream(c)
        var keep = false
        if case .done = c.requestBody { keep = true }
        let reason = failure.reason
        let body = UnsafeRawBufferPointer(start: reason.utf8Start, count: reason.utf8CodeUnitCount)
        respondDirect(c, status: failure.status, contentType: "text/plain; charset=utf-8", body: body, close: !keep)
    }

    /// Counts an upstream failure for the exchange's route and cohort.
    private func noteUpstreamError(_ c: ClientConnection, _ failure: UpstreamFailure) {
        guard recordMetrics else { return }
        let reason: UpstreamErrorReason
        switch failure {
        case .connectRefused: reason = .connectRefused
        case .connectTimeout: reason = .connectTimeout
        case .responseTimeout: reason = .responseTimeout
        case .reset: reason = .reset
        case .badResponse: reason = .badResponse
        }
        metrics.recordUpstreamError(series: c.metricSeries, reason: reason)
    }

    /// The upstream response was cut short after its head was sent: close the client connection.
    private func cutResponse(_ c: ClientConnection, _ failure: UpstreamFailure) {
        noteUpstreamError(c, failure)
        abortUpstream(c)
        c.closeAfterResponse = true
        c.phase = .closing
    }

    // MARK: - The exchange

    private func advanceExchange(_ c: ClientConnection, budget: inout Int) -> Bool {
        guard let u = c.upstream else { return false }
        var progressed = false

        if c.hangup {
            var bodyDone = false
            if case .done = c.requestBody { bodyDone = true }
            if bodyDone || !c.readable {
                // The client went away mid-exchange (as nginx, a half-close counts): the upstream
                // connection's state is unknown, so it is closed rather than pooled.
                abortUpstream(c)
                closeClient(c)
                return false
            }
        }

        // Connect completion.
        if !u.connected {
            if u.failedErrno != 0 || u.writable || u.hangup {
                let err = u.failedErrno != 0 ? u.failedErrno : Sys.pendingError(u.fd)
                if err != 0 || u.hangup && !u.writable {
                    failExchange(c, .connectRefused)
                    return true
                }
                u.connected = true
                u.lastProgress = now
                u.deadline = 0
                progressed = true
            } else {
                // Still connecting; buffer request body meanwhile.
                if pumpRequestBody(c, u, budget: &budget) { progressed = true }
                return progressed
            }
        }

        // Request body: client -> upstream buffer.
        if pumpRequestBody(c, u, budget: &budget) { progressed = true }
        if c.phase != .exchange { return true }

        // Flush to upstream.
        if !u.outBuffer.isEmpty && u.writable {
            while !u.outBuffer.isEmpty {
                let r = u.outBuffer.readable
                switch Sys.write(u.fd, r.baseAddress!, r.count) {
                case .done(let n):
                    u.outBuffer.consume(n)
                    progressed = true
                case .wouldBlock:
                    u.writable = false
                case .eof, .failed:
                    u.hangup = true
                    u.writable = false
                    u.outBuffer.clear()
                    if case .awaitingHead = c.responseBody, u.inBuffer.isEmpty {
                        upstreamLost(c, u)
                        return true
                    }
                }
                if !u.writable { break }
            }
        }
        if u.requestSentAt == 0, u.outBuffer.isEmpty, case .done = c.requestBody {
            u.requestSentAt = now
        }

        // Read from upstream: a long Content-Length body is spliced once nothing is buffered for it.
        if u.pipe != nil || startSplice(c, u) {
            if spliceBody(c, u, budget: &budget) { progressed = true }
            if c.phase != .exchange { return true }
        } else if u.readable && !u.readEOF && budget > 0 && u.inBuffer.freeSpace > 0 {
            let space = u.inBuffer.writableSpace()
            budget -= 1
            switch Sys.read(u.fd, space.baseAddress!, space.count) {
            case .done(let n):
                u.inBuffer.didWrite(n)
                u.lastProgress = now
                if n < space.count { u.readable = u.hangup }
                progressed = true
            case .wouldBlock:
                u.readable = false
            case .eof:
                upstreamInputEnded(u, errno: 0)
                progressed = true
            case .failed(let e):
                upstreamInputEnded(u, errno: e)
                progressed = true
            }
        }

        // Response: upstream buffer -> client buffer.
        if pumpResponse(c, u) { progressed = true }
        if c.phase != .exchange { return true }

        // Both directions complete: end the exchange.
        if case .done = c.responseBody {
            if case .done = c.requestBody {
                completeExchange(c, u)
                return true
            }
            if c.closeAfterResponse {
                // The upstream answered before the body was fully sent: close both when flushed.
                abortUpstream(c)
                c.phase = .closing
                c.requestsServed += 1
                return true
            }
        }
        return progressed
    }

    /// Takes a pipe for the rest of a Content-Length body when splicing pays: at least
    /// `splice_min_body` bytes to come, and no body bytes buffered on either side (what is
    /// buffered must reach the client first, and the pipe carries only what follows).
    private func startSplice(_ c: ClientConnection, _ u: UpstreamConnection) -> Bool {
        guard case .length(let remaining) = c.responseBody, u.readable, !u.readEOF,
              settings.limits.spliceMinBody > 0, remaining >= settings.limits.spliceMinBody,
              u.inBuffer.isEmpty, c.outBuffer.isEmpty, let p = pipes.take(now: now) else { return false }
        u.pipe = p
        return true
    }

    /// Moves Content-Length body bytes upstream socket → pipe → client socket with splice(2).
    /// A pipe the client does not empty is the backpressure: the upstream is not read while it is
    /// full. Returns true if bytes moved (or the connection ended).
    private func spliceBody(_ c: ClientConnection, _ u: UpstreamConnection, budget: inout Int) -> Bool {
        guard case .length(var remaining) = c.responseBody, var p = u.pipe else { return false }
        var progressed = false
        while true {
            var moved = false
            if p.count > 0 && c.writable {
                switch Sys.splice(from: p.readFD, to: c.fd, p.count) {
                case .done(let n):
                    p.count -= n
                    c.bytesOut &+= UInt64(n)
                    c.lastWriteProgress = now
                    moved = true
                case .wouldBlock:
                    c.writable = false
                case .eof, .failed:
                    u.pipe = p
                    abortUpstream(c)
                    closeClient(c)
                    return true
                }
            }
            if remaining > 0 && u.readable && budget > 0 && p.count < p.capacity {
                budget -= 1
                switch Sys.splice(from: u.fd, to: p.writeFD, Int(min(remaining, UInt64(p.capacity - p.count)))) {
                case .done(let n):
                    p.count += n
                    remaining -= UInt64(n)
                    u.lastProgress = now
                    moved = true
                case .wouldBlock:
                    // The socket is drained, or the pipe has no free page left: only an empty
                    // pipe tells which. (A non-empty one is retried once the client took it.)
                    if p.count == 0 {
                        u.readable = false
                        setLowWater(u, remaining >= Worker.lowWaterMinimum ? Int(min(remaining, UInt64(p.capacity))) : 0)
                    }
                case .eof:
                    upstreamInputEnded(u, errno: 0)
                    moved = true
                case .failed(let e):
                    upstreamInputEnded(u, errno: e)
                    moved = true
                }
            }
            if !moved || u.readEOF { break }
            progressed = true
        }
        if remaining == 0 && p.count == 0 {
            setLowWater(u, 0)  // the next response head must wake us at its first byte
            u.pipe = nil
            pipes.give(p)
            c.responseBody = .done
            return true
        }
        u.pipe = p
        c.responseBody = .length(remaining: remaining)
        return progressed || u.readEOF
    }

    /// A read (or splice) from the upstream met EOF, or failed with `errno`.
    private func upstreamInputEnded(_ u: UpstreamConnection, errno: Int32) {
        u.readEOF = true
        u.readable = false
        if errno != 0 { u.failedErrno = errno }
    }

    /// Sets the upstream socket's SO_RCVLOWAT (0: back to 1 byte). While a long body is spliced,
    /// a low-water mark of a pipeful means one wakeup per pipeful instead of one per arriving
    /// segment: fewer wakeups here, and fewer cross-CPU wakeups paid by the upstream's sending side.
    /// Bytes held back by it are picked up by the upstream timer after `lowWaterWait` at the latest.
    private func setLowWater(_ u: UpstreamConnection, _ bytes: Int) {
        guard bytes != u.lowWater else { return }
        Sys.setReceiveLowWater(u.fd, max(bytes, 1))
        u.lowWater = bytes
        u.lowWaterSince = now
    }

    /// The upstream connection died before any response byte.
    private func upstreamLost(_ c: ClientConnection, _ u: UpstreamConnection) {
        let bodyless: Bool
        if case .done = c.requestBody, c.requestBodyBytes == 0 { bodyless = true } else { bodyless = false }
        if u.reused && bodyless && c.attempts < 3, let pool = c.pool {
            // A pooled connection the upstream had closed: retry once on a fresh one.
            abortUpstream(c)
            attachUpstream(c, pool: pool, allowPooled: false)
            return
        }
        failExchange(c, u.connected ? .reset : .connectRefused)
    }

    /// The request body needs more bytes from the client: reads them. Returns nil when bytes (or
    /// EOF) arrived and pumping goes on, or the value `pumpRequestBody` returns: `progressed` when
    /// nothing can be read now, true when the client closed before its whole body arrived (the body
    /// is shorter than announced, so the upstream connection is closed with the client's).
    private func refillRequestBody(_ c: ClientConnection, progressed: Bool, budget: inout Int) -> Bool? {
        if c.readEOF {
            abortUpstream(c)
            closeClient(c)
            return true
        }
        return readClient(c, budget: &budget) ? nil : progressed
    }

    /// Moves request body bytes from the client buffer to the upstream buffer. Returns progress.
    private func pumpRequestBody(_ c: ClientConnection, _ u: UpstreamConnection, budget: inout Int) -> Bool {
        var progressed = false
        while true {
            switch c.requestBody {
            case .done:
                return progressed
            case .length(let remaining):
                if c.inBuffer.isEmpty {
                    if let result = refillRequestBody(c, progressed: progressed, budget: &budget) { return result }
                    progressed = true
                    continue
                }
                var n = min(Int(min(remaining, UInt64(Int.max))), c.inBuffer.count)
                if u.connected && u.writable && u.outBuffer.isEmpty && u.failedErrno == 0 {
                    // The head is already sent and nothing is queued: write straight from the client buffer.
                    let data = c.inBuffer.readable
                    switch Sys.write(u.fd, data.baseAddress!, n) {
                    case .done(let w):
                        n = w
                    case .wouldBlock:
                        u.writable = false
                        n = min(n, u.outBuffer.freeSpace)
                        u.outBuffer.append(UnsafeRawBufferPointer(rebasing: data[0..<n]))
                    case .eof:
                        u.hangup = true
                        u.writable = false
                        return progressed
                    case .failed(let e):
                        u.failedErrno = e
                        u.hangup = true
                        u.writable = false
                        return progressed
                    }
                } else {
                    n = min(n, u.outBuffer.freeSpace)
                    if n == 0 { return progressed }
                    u.outBuffer.append(UnsafeRawBufferPointer(rebasing: c.inBuffer.readable[0..<n]))
                }
                c.inBuffer.consume(n)
                c.requestBodyBytes += UInt64(n)
                progressed = true
                let left = remaining - UInt64(n)
                c.requestBody = left == 0 ? .done : .length(remaining: left)
            case .chunked(var decoder):
                let room = u.outBuffer.freeSpace - 32
                if room <= 0 { return progressed }
                if c.inBuffer.isEmpty {
                    if let result = refillRequestBody(c, progressed: progressed, budget: &budget) { return result }
                    progressed = true
                    continue
                }
                let input = UnsafeRawBufferPointer(rebasing: c.inBuffer.readable.prefix(room))
                let step = decoder.decode(input)
                switch step {
                case .data(let offset, let count, let consumed):
                    scratch.removeAll(keepingCapacity: true)
                    HeadWriter.appendChunkHeader(count, to: &scratch)
                    scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[offset..<offset + count]))
                    scratch.append(0x0D)
                    scratch.append(0x0A)
                    u.outBuffer.append(scratch)
                    c.inBuffer.consume(consumed)
                    c.requestBodyBytes += UInt64(count)
                    c.requestBody = .chunked(decoder)
                    progressed = true
                    let limit = settings.limits.maxBodyBytes
                    if limit > 0 && c.requestBodyBytes > limit {
                        abortUpstream(c)
                        if c.responseStarted {
                            closeClient(c)
                        } else {
                            respondDirect(c, status: 413, body: "request body larger than \(limit) bytes\n", close: true)
                        }
                        return true
                    }
                case .needMore(let consumed):
                    c.inBuffer.consume(consumed)
                    c.requestBody = .chunked(decoder)
                    if consumed > 0 { progressed = true; continue }
                    if c.inBuffer.freeSpace == 0 && input.count == c.inBuffer.count {
                        // Cannot happen within the limits (trailers are bounded); guard anyway.
                        abortUpstream(c)
                        respondDirect(c, status: 400, body: "malformed chunked body\n", close: true)
                        return true
                    }
                    if input.count < c.inBuffer.count { return progressed }  // waiting for upstream buffer room
                    if let result = refillRequestBody(c, progressed: progressed, budget: &budget) { return result }
                    progressed = true
                case .done(let consumed, let trailerOffset, let trailerCount):
                    scratch.removeAll(keepingCapacity: true)
                    HeadWriter.appendStatic("0\r\n", to: &scratch)
                    scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[trailerOffset..<trailerOffset + trailerCount]))
                    HeadWriter.appendStatic("\r\n", to: &scratch)
                    if scratch.count > u.outBuffer.freeSpace { return progressed }
                    u.outBuffer.append(scratch)
                    c.inBuffer.consume(consumed)
                    c.requestBody = .done
                    progressed = true
                case .invalid(let error):
                    abortUpstream(c)
                    if c.responseStarted {
                        closeClient(c)
                    } else {
                        respondDirect(c, status: error.status, body: error.reason + "\n", close: true)
                    }
                    return true
                }
            }
        }
    }

    /// Parses the response head and relays body bytes to the client buffer. Returns progress.
    private func pumpResponse(_ c: ClientConnection, _ u: UpstreamConnection) -> Bool {
        var progressed = false
        while true {
            switch c.responseBody {
            case .done:
                return progressed
            case .awaitingHead:
                if u.inBuffer.isEmpty {
                    if u.readEOF || u.failedErrno != 0 || (u.hangup && !u.readable) {
                        upstreamLost(c, u)
                        return true
                    }
                    return progressed
                }
                let status = ResponseParser.parse(u.inBuffer.readable, requestMethod: c.requestMethod,
                                                  into: &u.responseHead, limits: settings.limits.parser)
                switch status {
                case .incomplete:
                    if u.readEOF || u.failedErrno != 0 {
                        failExchange(c, u.failedErrno != 0 ? .reset : .badResponse)
                        return true
                    }
                    return progressed
                case .invalid:
                    failExchange(c, .badResponse)
                    return true
                case .complete:
                    let rh = u.responseHead
                    if rh.status < 200 {
                        if rh.status == 101 {
                            // We never ask for an upgrade, so a switch is a protocol violation.
                            failExchange(c, .badResponse)
                            return true
                        }
                        // Interim response (100 Continue, 103 Early Hints): dropped, never final.
                        u.inBuffer.consume(rh.headLength)
                        progressed = true
                        continue
                    }
                    if !startResponse(c, u, rh) { return progressed }
                    progressed = true
                }
            case .length(let remaining):
                if u.inBuffer.isEmpty {
                    if u.readEOF || u.failedErrno != 0 {
                        // Cut short: the client cannot be told; close its connection.
                        cutResponse(c, .reset)
                        return true
                    }
                    return progressed
                }
                var n = min(Int(min(remaining, UInt64(Int.max))), u.inBuffer.count)
                if c.outBuffer.isEmpty && c.writable {
                    // Nothing queued for the client: send straight from the upstream buffer (no copy).
                    let data = u.inBuffer.readable
                    switch Sys.write(c.fd, data.baseAddress!, n) {
                    case .done(let w):
                        c.lastWriteProgress = now
                        n = w
                    case .wouldBlock:
                        c.writable = false
                        n = min(n, c.outBuffer.freeSpace)
                        c.outBuffer.append(UnsafeRawBufferPointer(rebasing: data[0..<n]))
                    case .eof, .failed:
                        abortUpstream(c)
                        closeClient(c)
                        return true
                    }
                } else {
                    n = min(n, c.outBuffer.freeSpace)
                    if n == 0 { return progressed }
                    c.outBuffer.append(UnsafeRawBufferPointer(rebasing: u.inBuffer.readable[0..<n]))
                }
                c.bytesOut &+= UInt64(n)
                u.inBuffer.consume(n)
                let left = remaining - UInt64(n)
                c.responseBody = left == 0 ? .done : .length(remaining: left)
                progressed = true
            case .untilClose:
                if !u.inBuffer.isEmpty {
                    if !relayRaw(c, u) { return progressed }
                    progressed = true
                    continue
                }
                if u.readEOF {
                    if c.responseOutFraming == .chunked {
                        if c.outBuffer.freeSpace < 5 { return progressed }
                        let last: StaticString = "0\r\n\r\n"
                        c.outBuffer.append(UnsafeRawBufferPointer(start: last.utf8Start, count: last.utf8CodeUnitCount))
                        c.bytesOut &+= UInt64(last.utf8CodeUnitCount)
                    }
                    c.responseBody = .done
                    return true
                }
                return progressed
            case .chunked(var decoder):
                if u.inBuffer.isEmpty {
                    if u.readEOF || u.failedErrno != 0 {
                        cutResponse(c, .reset)
                        return true
                    }
                    return progressed
                }
                let chunkedOut = c.responseOutFraming == .chunked
                let room = c.outBuffer.freeSpace - (chunkedOut ? 32 : 0)
                if room <= 0 { return progressed }
                let input = UnsafeRawBufferPointer(rebasing: u.inBuffer.readable.prefix(room))
                switch decoder.decode(input) {
                case .data(let offset, let count, let consumed):
                    scratch.removeAll(keepingCapacity: true)
                    if chunkedOut { HeadWriter.appendChunkHeader(count, to: &scratch) }
                    scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[offset..<offset + count]))
                    if chunkedOut { scratch.append(0x0D); scratch.append(0x0A) }
                    c.outBuffer.append(scratch)
                    c.bytesOut &+= UInt64(scratch.count)
                    u.inBuffer.consume(consumed)
                    c.responseBody = .chunked(decoder)
                    progressed = true
                case .needMore(let consumed):
                    u.inBuffer.consume(consumed)
                    c.responseBody = .chunked(decoder)
                    if consumed > 0 { progressed = true; continue }
                    if input.count < u.inBuffer.count { return progressed }
                    if u.readEOF || u.failedErrno != 0 {
                        cutResponse(c, .reset)
                        return true
                    }
                    return progressed
                case .done(let consumed, let trailerOffset, let trailerCount):
                    if chunkedOut {
                        scratch.removeAll(keepingCapacity: true)
                        HeadWriter.appendStatic("0\r\n", to: &scratch)
                        scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[trailerOffset..<trailerOffset + trailerCount]))
                        HeadWriter.appendStatic("\r\n", to: &scratch)
                        if scratch.count > c.outBuffer.freeSpace { return progressed }
                        c.outBuffer.append(scratch)
                        c.bytesOut &+= UInt64(scratch.count)
                    }
                    u.inBuffer.consume(consumed)
                    c.responseBody = .done
                    return true
                case .invalid:
                    // Malformed body mid-response: the client's response is cut short.
                    cutResponse(c, .badResponse)
                    return true
                }
            }
        }
    }

    /// Copies close-delimited body bytes to the client, as chunks for HTTP/1.1 clients.
    private func relayRaw(_ c: ClientConnection, _ u: UpstreamConnection) -> Bool {
        let chunkedOut = c.responseOutFraming == .chunked
        let room = c.outBuffer.freeSpace - (chunkedOut ? 32 : 0)
        let n = min(room, u.inBuffer.count)
        if n <= 0 { return false }
        let data = UnsafeRawBufferPointer(rebasing: u.inBuffer.readable[0..<n])
        if chunkedOut {
            scratch.removeAll(keepingCapacity: true)
            HeadWriter.appendChunkHeader(n, to: &scratch)
            scratch.append(contentsOf: data)
            scratch.append(0x0D)
            scratch.append(0x0A)
            c.outBuffer.append(scratch)
            c.bytesOut &+= UInt64(scratch.count)
        } else {
            c.outBuffer.append(data)
            c.bytesOut &+= UInt64(n)
        }
        u.inBuffer.consume(n)
        return true
    }

    /// Writes the response head for the client and sets up body relaying. False if there is no room yet.
    private func startResponse(_ c: ClientConnection, _ u: UpstreamConnection, _ rh: ResponseHead) -> Bool {
        let http11Client = c.requestVersion == .http11
        var out: BodyFraming
        var inState: ResponseBodyState
        switch rh.framing {
        case .none:
            out = .none
            inState = .done
        case .contentLength(let n):
            out = .contentLength(n)
            inState = n == 0 ? .done : .length(remaining: n)
        case .chunked:
            out = http11Client ? .chunked : .untilClose
            inState = .chunked(ChunkedDecoder(limits: settings.limits.parser))
        case .untilClose:
            out = http11Client ? .chunked : .untilClose
            inState = .untilClose
        }
        var requestDone = false
        if case .done = c.requestBody { requestDone = true }
        let limit = settings.limits.maxRequestsPerConnection
        let closing = !c.head.keepAlive || out == .untilClose || c.draining || c.closeAfterResponse || !requestDone
            || (limit > 0 && c.requestsServed + 1 >= limit)
        scratch.removeAll(keepingCapacity: true)
        // Content-Length describes the representation only for HEAD replies and 304 (RFC 9110 8.6); a 204 must not carry it.
        let keepCL = c.requestMethod == .head || rh.status == 304
        HeadWriter.appendResponseStart(rh, bytes: u.inBuffer.readable, keepContentLength: keepCL, to: &scratch)
        if let table = c.table, c.decision.route >= 0 {
            let route = table.routes[Int(c.decision.route)]
            if c.decision.setStickyCookie { route.appendSetCookie(stickyKey: c.decision.stickyKey, to: &scratch) }
            if route.cohortResponseHeader { route.appendCohortHeader(cohort: c.decision.cohort, to: &scratch) }
        }
        HeadWriter.appendFraming(out, closeConnection: closing, http10KeepAlive: !http11Client && !closing, to: &scratch)
        if scratch.count > c.outBuffer.freeSpace { return false }
        c.outBuffer.append(scratch)
        c.statusSent = rh.status
        c.bytesOut &+= UInt64(scratch.count)
        u.inBuffer.consume(rh.headLength)
        c.responseOutFraming = out
        c.responseBody = inState
        c.responseStarted = true
        if closing { c.closeAfterResponse = true }
        return true
    }

    /// Both directions done: return the upstream to its pool (or close it) and move on.
    private func completeExchange(_ c: ClientConnection, _ u: UpstreamConnection) {
        c.upstream = nil
        u.client = nil
        u.requestsServed += 1
        var reusable = u.responseHead.keepAlive && u.responseHead.framing != .untilClose && !u.readEOF
            && u.failedErrno == 0 && !u.hangup && u.inBuffer.isEmpty && u.outBuffer.isEmpty
            && !u.pool.retired && u.pool.idle.count < u.pool.maxIdle && !draining
        if reusable && u.readable {
            // The last read filled the buffer exactly, so the kernel may or may not hold more:
            // ask it (once) instead of discarding a healthy connection or pooling a dirty one.
            if Sys.hasPendingInput(u.fd) { reusable = false } else { u.readable = false }
        }
        if reusable {
            u.idleSince = now
            u.reused = false
            u.inBuffer.release()
            u.outBuffer.release()
            u.pool.idle.append(u)
            setUpstreamDeadline(u, now &+ settings.timeouts.upstreamIdle)
        } else {
            closeUpstream(u)
        }
        finishRequest(c, close: c.closeAfterResponse)
    }
}
