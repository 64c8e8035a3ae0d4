#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceProxy
import Synchronization

/// Owns everything metrics outside the workers: the id registry, one shard per worker, and the
/// sampler thread that feeds the windowed statistics every `sampleInterval`.
///
/// Wiring: create the hub, give `shard(worker: i)` to worker i, call `seriesMap(for:)` for every
/// table before publishing it (and publish the map with it), `startSampler()`, then serve the
/// admin API (`AdminServer`). Thread-safe; control plane only.
public final class MetricsHub: Sendable {
    /// Series and upstream ids.
    public let registry: MetricsRegistry
    /// One shard per worker, by worker index.
    public let shards: [MetricsShard]
    /// The release reported by `sluice_build_info`.
    public let buildVersion: String
    /// Time between two samples of the windowed statistics, in nanoseconds.
    public let sampleInterval: UInt64

    private let window: Mutex<StatsWindow>
    private let events = Mutex<EventLog?>(nil)
    private let endpointHealth = Mutex<EndpointHealth?>(nil)
    /// (listener, certificate name, notAfter) of every listener certificate now serving.
    private let certificates = Mutex<[(listener: String, name: String, notAfter: Int64)]>([])
    private let sampler = Mutex<(thread: pthread_t, stop: StopSignal)?>(nil)
    /// More families appended to the exposition (traffic mirroring's, `attach(mirrors:)`).
    private let mirrors = Mutex<MirrorBoard?>(nil)

    /// A hub with `workers` shards.
    /// - Parameters:
    ///   - listenerNames: the config's listener names, in order (the `listener` index of the shard API).
    ///   - retention: the longest window `stats` can answer, in nanoseconds (default 5 minutes).
    public init(workers: Int, listenerNames: [String], buildVersion: String, capacity: MetricsCapacity = MetricsCapacity(),
                sampleInterval: UInt64 = 5_000_000_000, retention: UInt64 = 300_000_000_000) {
        registry = MetricsRegistry(capacity: capacity, listenerNames: listenerNames)
        shards = (0..<max(1, workers)).map { _ in MetricsShard(capacity: capacity) }
        self.buildVersion = buildVersion
        self.sampleInterval = max(1, sampleInterval)
        window = Mutex(StatsWindow(retention: retention))
    }

    deinit {
        stopSampler()
    }

    /// The shard of worker `index`.
    public func shard(worker index: Int) -> MetricsShard {
        shards[index]
    }

    /// The ids of `table`'s routes, cohorts and upstreams (stable across reloads). Call before
    /// publishing the table, and hand the map to the workers with it.
    public func seriesMap(for table: RoutingTable) -> SeriesMap {
        registry.seriesMap(for: table)
    }

    /// The names and summed values of every shard, read now.
    public func snapshot() -> (names: MetricsNames, totals: MetricsTotals) {
        let names = registry.names
        let totals = MetricsTotals.sum(of: shards, seriesCount: names.series.count, listenerCount: names.listeners.count,
                                       upstreamCount: names.upstreams.count)
        return (names, totals)
    }

    /// Adds the reload counters of `log` (its `start`, `reload` and `reload_rejected` events) to
    /// the exposition: `sluice_config_reloads_total` and `sluice_config_last_reload_*`.
    public func attach(events log: EventLog) {
        events.withLock { $0 = log }
    }

    /// Adds the endpoint availability families of `health` to the exposition (`EndpointExposition`).
    public func attach(endpointHealth health: EndpointHealth) {
        endpointHealth.withLock { $0 = health }
    }

    /// The Prometheus exposition (format 0.0.4), with the weights and version of `table`, the
    /// reload counters of the attached event log, and this process's `process_*` metrics.
    public func renderMetrics(table: RoutingTable) -> String {
        let (names, totals) = snapshot()
        let reloads = events.withLock { $0 }?.reloadCounters
        return PrometheusExposition.render(totals: totals, names: names, table: table, buildVersion: buildVersion,
                                           reloads: reloads, process: ProcessStatsReader.read())
            + renderCertificates()
            + (endpointHealth.withLock { $0 }.map { EndpointExposition.render($0) } ?? "")
            + (mirrors.withLock { $0 }?.renderMetrics() ?? "")
    }

    /// Adds traffic mirroring's `sluice_mirror_*` families to the exposition.
    public func attach(mirrors board: MirrorBoard) {
        mirrors.withLock { $0 = board }
    }

    /// Remembers the listener certificates of `set` for `sluice_tls_certificate_expiry_timestamp_seconds`
    /// (called at start and by every reload; `listenerNames` by listener index).
    public func recordCertificates(_ set: TLSSet, listenerNames: [String]) {
        var rows: [(listener: String, name: String, notAfter: Int64)] = []
        for (i, l) in set.listeners.enumerated() {
            guard let l, i < listenerNames.count else { continue }
            for c in l.certificates { rows.append((listenerNames[i], c.displayName, c.notAfter)) }
        }
        certificates.withLock { $0 = rows }
    }

    /// The certificate expiry gauge family (empty without TLS listeners).
    private func renderCertificates() -> String {
        let rows = certificates.withLock { $0 }
        guard !rows.isEmpty else { return "" }
        var out = "# HELP sluice_tls_certificate_expiry_timestamp_seconds When a listener certificate expires "
            + "(notAfter, Unix time), by listener and certificate name (its first SAN).\n"
            + "# TYPE sluice_tls_certificate_expiry_timestamp_seconds gauge\n"
        for r in rows {
            out += "sluice_tls_certificate_expiry_timestamp_seconds{listener=\"\(PrometheusExposition.escapeLabel(r.listener))\","
                + "name=\"\(PrometheusExposition.escapeLabel(r.name))\"} \(r.notAfter)\n"
        }
        return out
    }

    /// Takes one sample for the windowed statistics (the sampler does this every `sampleInterval`;
    /// tests call it with their own clock).
    public func sample(now: UInt64 = ControlClock.monotonicNanos()) {
        let (names, totals) = snapshot()
        window.withLock { $0.record(totals: totals, names: names, now: now) }
    }

    /// Rate, errors and latency of (route, cohort) over the last `window` seconds (at most the
    /// retention); nil when the pair is unknown or fewer than two samples were taken. Cohort ""
    /// is the route's direct responses.
    public func stats(route: String, cohort: String, window seconds: Int) -> CohortStats? {
        window.withLock { $0.stats(route: route, cohort: cohort, window: seconds) }
    }

    /// How long the windowed statistics are kept, in nanoseconds (the longest window `stats` answers).
    public var retention: UInt64 {
        window.withLock { $0.retention }
    }

    /// Keeps the windowed statistics for at least `retention` nanoseconds from now on (never
    /// shortens it); the rollout controller asks for its longest step plus a sample interval.
    public func extendRetention(to retention: UInt64) {
        window.withLock { $0.extendRetention(to: retention) }
    }

    /// A copy of the windowed statistics plus the interval in progress: the counters now against
    /// the latest sample, so `sluice status` shows the traffic of the first seconds after a start
    /// (or since the last sample) instead of zeros. The in-progress interval is added only when the
    /// latest sample is at most two sample intervals old (the sampler is running on this clock).
    /// For display; the rollout controller judges complete samples (`statsWindow`).
    public func liveStatsWindow(now: UInt64 = ControlClock.monotonicNanos()) -> StatsWindow {
        var copy = statsWindow
        guard let latest = copy.latestSampleTime, now > latest, now - latest <= 2 * sampleInterval else { return copy }
        let (names, totals) = snapshot()
        copy.record(totals: totals, names: names, now: now)
        return copy
    }

    /// A copy of the windowed statistics, to query several series consistently.
    public var statsWindow: StatsWindow {
        window.withLock { $0 }
    }

    /// Starts the sampler thread: a sample now, then one every `sampleInterval`. Idempotent.
    public func startSampler() throws(AdminError) {
        let stop = StopSignal()
        let interval = sampleInterval
        var failure: AdminError?
        sampler.withLock { current in
            guard current == nil else { return }
            sample()
            do throws(AdminError) {
                // The thread holds the hub weakly, so dropping the hub ends the sampling too.
                let thread = try ControlThread.spawn { [weak self] in
                    while !stop.sleep(nanos: interval) {
                        guard let hub = self else { return }
                        hub.sample()
                    }
                }
                current = (thread, stop)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// Stops the sampler thread and waits for it. Idempotent.
    public func stopSampler() {
        let running = sampler.withLock { current -> (thread: pthread_t, stop: StopSignal)? in
            defer { current = nil }
            return current
        }
        guard let running else { return }
        running.stop.stop()
        if pthread_equal(running.thread, pthread_self()) == 0 {
            pthread_join(running.thread, nil)
        } else {
            pthread_detach(running.thread)
        }
    }
}
