@preconcurrency import Glibc
import SluiceCore
internal import CSluiceSys

/// Everything the IO layer needs to run, taken from a validated config.
public struct ProxySettings: Sendable {
    /// Worker threads (each with its own epoll loop and SO_REUSEPORT listeners).
    public var workers: Int
    /// Addresses to accept on.
    public var listeners: [ListenerSpec]
    /// Timeouts.
    public var timeouts: Timeouts
    /// Limits.
    public var limits: Limits
    /// Peers whose X-Forwarded-* headers are kept (others have them replaced).
    public var trustedProxies: [AddressPrefix]
    /// File descriptor access-log lines are appended to, or -1 for no access log. The process
    /// may `dup2` a reopened file onto it (SIGUSR1) while workers run.
    public var accessLogFD: Int32 = -1
    /// Record per-request metrics (on by default; off only to measure what recording costs).
    public var recordMetrics = true
    /// Which access-log fields are written, in which order, and which query parameters are redacted.
    public var accessLogFormat: AccessLogFormat = .all
    /// TLS settings of listeners (by index) and upstream groups at start (reloads publish new ones).
    public var tls = TLSSet()
    /// HTTP/2 limits (top-level `http2:`), for listeners with `http2` on.
    public var http2 = HTTP2Limits()
    /// How long a worker keeps polling epoll without sleeping after a batch of events, in
    /// nanoseconds (0: off, sleep at once). See `BusyPoll`.
    public var busyPoll: UInt64 = 0

    /// Creates settings.
    public init(workers: Int, listeners: [ListenerSpec], timeouts: Timeouts = Timeouts(), limits: Limits = Limits(),
                trustedProxies: [AddressPrefix] = []) {
        self.workers = workers
        self.listeners = listeners
        self.timeouts = timeouts
        self.limits = limits
        self.trustedProxies = trustedProxies
    }

    /// Number of online CPUs (the default worker count).
    public static var onlineCPUs: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}

/// The running proxy: worker threads, their listeners, and the current routing table.
///
/// Control-plane API (call from any one thread at a time): `start`, `publish`, `drain`, `stop`,
/// `wait`. `@unchecked Sendable`: mutable state (`threads`, `table`) is changed only under
/// `lock`; workers are reached only through their mailboxes.
public final class ProxyServer: @unchecked Sendable {
    /// The settings this server was started with.
    public let settings: ProxySettings
    private var workers: [Worker] = []
    private var threads: [pthread_t] = []
    private var lock = pthread_mutex_t()
    private var currentTable: RoutingTable
    private var currentTLS: TLSSet
    /// Actual bound addresses, one per listener (ephemeral ports resolved).
    public private(set) var boundAddresses: [SocketAddress] = []
    /// One metrics shard per worker (index = worker index); the admin side sums them.
    public let shards: [MetricsShard]
    /// Traffic mirroring's counters and diff samples (one shard per worker).
    public let mirrorBoard: MirrorBoard
    private let seriesMapper: @Sendable (RoutingTable) -> SeriesMap
    /// Endpoint availability shared by the workers' balancers and the health monitor.
    public let endpointHealth: EndpointHealth
    /// Workers signal it when a failure reaches a group's `consecutive_failures` (the health
    /// monitor waits on it); nil if no eventfd could be made (ejections then wait for the monitor's tick).
    package let healthSignal: WakeFD?

    /// Creates a server; nothing is bound until `start`.
    ///
    /// `shards` (one per worker) and `seriesMap` come from the metrics hub; without them the
    /// server records into shards of its own under a private registry.
    public init(settings: ProxySettings, table: RoutingTable, shards: [MetricsShard]? = nil,
                seriesMap: (@Sendable (RoutingTable) -> SeriesMap)? = nil, endpointHealth: EndpointHealth? = nil) {
        self.settings = settings
        self.endpointHealth = endpointHealth ?? EndpointHealth(workers: max(1, settings.workers))
        self.healthSignal = try? WakeFD()
        self.currentTable = table
        self.currentTLS = settings.tls
        let workers = max(1, settings.workers)
        if let shards, shards.count >= workers, let seriesMap {
            self.shards = shards
            self.seriesMapper = seriesMap
        } else {
            let registry = MetricsRegistry(listenerNames: settings.listeners.map(\.name))
            self.shards = (0..<workers).map { _ in MetricsShard() }
            self.seriesMapper = { registry.seriesMap(for: $0) }
        }
        self.mirrorBoard = MirrorBoard(workers: workers)
        pthread_mutex_init(&lock, nil)
    }

    deinit {
        if let healthSignal { Sys.close(healthSignal.fd) }
        pthread_mutex_destroy(&lock)
    }

    /// The table new requests are routed with.
    public var table: RoutingTable {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return currentTable
    }

    /// Binds every listener once per worker (SO_REUSEPORT) and starts the worker threads.
    /// A port of 0 is resolved by the first bind and reused by the other workers.
    public func start() throws(SyscallError) {
        _ = csluice_block_signals()
        let count = max(1, settings.workers)
        var perWorker: [[Int32]] = Array(repeating: [], count: count)
        var resolved = settings.listeners.map(\.address)
        var probes: [Int32] = []
        defer { for p in probes { Sys.close(p) } }
        do throws(SyscallError) {
            for (li, spec) in settings.listeners.enumerated() {
                if spec.address.port == 0 {
                    let (probe, address) = try Sys.reserveEphemeralPort(like: spec.address)
                    probes.append(probe)
                    resolved[li] = address
                }
                for w in 0..<count {
                    perWorker[w].append(try Sys.listen(on: resolved[li], deferAccept: spec.deferAccept ? 1 : 0))
                }
            }
        } catch {
            for fds in perWorker { for fd in fds { Sys.close(fd) } }
            throw error
        }
        boundAddresses = resolved
        let table = self.table
        var series = seriesMapper(table)
        series.endpointSlots = endpointHealth.assign(table)
        var workerSettings = settings
        workerSettings.tls = self.tls
        for w in 0..<count {
            workers.append(try Worker(index: w, settings: workerSettings, listenerFDs: perWorker[w], table: table,
                                      series: series, metrics: shards[w], health: endpointHealth, healthSignal: healthSignal,
                                      mirrors: mirrorBoard))
        }
        for worker in workers {
            let box = Unmanaged.passRetained(worker).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { arg in
                let worker = Unmanaged<Worker>.fromOpaque(arg!).takeRetainedValue()
                worker.run()
                return nil
            }, box)
            if rc != 0 {
                Unmanaged<Worker>.fromOpaque(box).release()
                throw SyscallError("pthread_create", errno: rc)
            }
            threads.append(thread)
        }
    }

    /// Makes every worker route new requests with `table`. Requests in flight keep the table they started with.
    public func publish(_ table: RoutingTable) {
        var series = seriesMapper(table)
        pthread_mutex_lock(&lock)
        // Under the lock, so the health monitor's current assignment is the table workers get last.
        series.endpointSlots = endpointHealth.assign(table)
        currentTable = table
        pthread_mutex_unlock(&lock)
        for w in workers { w.post(.publish(table, series)) }
    }

    /// Makes every worker use `set` for new TLS handshakes (new certificates, settings, upstream
    /// trust); open connections keep their sessions. Call before publishing the table of the same reload.
    public func publishTLS(_ set: TLSSet) {
        pthread_mutex_lock(&lock)
        currentTLS = set
        let targets = workers
        pthread_mutex_unlock(&lock)
        for w in targets { w.post(.tls(set)) }
    }

    /// The TLS settings new handshakes use.
    public var tls: TLSSet {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return currentTLS
    }

    /// Stops accepting and lets in-flight requests finish; workers exit when their connections are gone.
    public func drain() {
        for w in workers { w.post(.drain) }
    }

    /// Stops every worker now, closing all connections.
    public func stop() {
        for w in workers { w.post(.stop) }
    }

    /// CPU time (user + system, nanoseconds) each running worker thread has used so far, by worker
    /// index; empty before `start` and after `wait`. Control plane and tests (e.g. that an idle
    /// worker sleeps).
    package func workerCPUTimes() -> [UInt64] {
        threads.map { thread in
            var clock = clockid_t()
            guard pthread_getcpuclockid(thread, &clock) == 0 else { return 0 }
            var ts = timespec()
            guard clock_gettime(clock, &ts) == 0 else { return 0 }
            return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
        }
    }

    /// Waits for all worker threads to exit.
    public func wait() {
        for t in threads { pthread_join(t, nil) }
        threads.removeAll()
    }

    /// Drains, waits up to `timeout` nanoseconds for in-flight requests, then stops what remains.
    public func shutdown(drainTimeout timeout: UInt64) {
        drain()
        let deadline = Sys.monotonicNanos() &+ timeout
        // Watchdog: after the deadline, force the workers to stop.
        let watchdog = WatchdogContext(server: self, deadline: deadline)
        let box = Unmanaged.passRetained(watchdog).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let ctx = Unmanaged<WatchdogContext>.fromOpaque(arg!).takeRetainedValue()
            while !ctx.finished.load() {
                if Sys.monotonicNanos() >= ctx.deadline {
                    ctx.server.stop()
                    break
                }
                usleep(20_000)
            }
            return nil
        }, box)
        wait()
        watchdog.finished.store(true)
        if rc == 0 { pthread_join(thread, nil) } else { Unmanaged<WatchdogContext>.fromOpaque(box).release() }
    }
}

/// Shared between `shutdown` and its watchdog thread.
private final class WatchdogContext: @unchecked Sendable {
    let server: ProxyServer
    let deadline: UInt64
    let finished = LockedFlag()
    init(server: ProxyServer, deadline: UInt64) {
        self.server = server
        self.deadline = deadline
    }
}

/// A Bool behind a mutex (control plane only).
final class LockedFlag: @unchecked Sendable {
    private var value = false
    private var lock = pthread_mutex_t()
    init() { pthread_mutex_init(&lock, nil) }
    deinit { pthread_mutex_destroy(&lock) }
    func load() -> Bool {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return value
    }
    func store(_ v: Bool) {
        pthread_mutex_lock(&lock)
        value = v
        pthread_mutex_unlock(&lock)
    }
}

/// Signal handling for the CLI: waits on SIGTERM/SIGINT/SIGHUP/SIGUSR1 synchronously (sigtimedwait).
public enum ProcessSignals {
    /// Signals Sluice reacts to.
    public enum Signal: Sendable {
        case terminate, interrupt, hangup, user1, user2
    }

    /// Blocks the handled signals in the calling thread and the threads it creates next. Call first in main.
    public static func blockHandledSignals() {
        _ = csluice_block_signals()
    }

    /// Waits up to `timeoutMs` for a handled signal.
    public static func wait(timeoutMs: Int32) -> Signal? {
        let s = csluice_wait_signal(timeoutMs)
        switch s {
        case SIGTERM: return .terminate
        case SIGINT: return .interrupt
        case SIGHUP: return .hangup
        case SIGUSR1: return .user1
        case SIGUSR2: return .user2
        default: return nil
        }
    }
}
