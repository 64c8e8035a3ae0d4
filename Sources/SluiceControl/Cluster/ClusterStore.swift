#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// This replica's membership in a fleet that shares its routing state through etcd.
///
/// Keys under the prefix `P` (`cluster.etcd.prefix`):
///
/// | key | holds | written by |
/// | --- | --- | --- |
/// | `P/state` | `FleetRouting`: version, overrides, history | any replica's runtime change (txn on its mod revision) |
/// | `P/rollouts` | `FleetRollouts`: every rollout's snapshot | the route's leader, rollout commands |
/// | `P/file` | `FleetFile`: the routing file's fingerprint | a replica at start and after a reload |
/// | `P/nodes/NODE` | `FleetMember` (lease) | each replica |
/// | `P/leaders/ROUTE` | the leading node's name (lease) | the election's winner |
/// | `P/stats/NODE` | `FleetCounters` of the rollout routes (lease) | each replica, every heartbeat |
///
/// Two threads: the **sync** thread reads everything under `P/` and then watches it, handing
/// each change to the routing controller (which publishes to the workers) and to the fleet's
/// statistics; the **heartbeat** thread keeps this replica's lease alive, runs the leader
/// elections of the routes with a rollout and publishes this replica's counters. Any failure
/// to reach etcd marks the store disconnected (event, metric, status) until a call succeeds;
/// runtime changes are then refused by the routing controller, the workers keep their table.
///
/// Control plane only.
public final class ClusterStore: SharedRoutingStore, Sendable {
    /// The settings (`cluster:`).
    public let settings: ClusterSettings
    /// The etcd client.
    package let client: EtcdClient
    /// This replica's name.
    public var node: String { settings.node }

    private let events: EventLog
    private let routing = ControlLock<RoutingController?>(nil)
    /// Routes with a rollout (the elections run for them), and this replica's counters of them.
    private let rolloutRoutes: ControlLock<@Sendable () -> [String]>
    private let counters: ControlLock<@Sendable () -> [FleetCounters.Series]>
    /// Told when this replica takes or loses a route's leadership.
    private let leadershipObserver = ControlLock<(@Sendable (String, Bool) -> Void)?>(nil)

    /// Connection health and what the fleet looks like.
    struct Health: Sendable {
        var connected = false
        /// Wall-clock ns of the last change of `connected`.
        var since: UInt64 = 0
        var lastError: String?
        /// This replica's lease (0: none).
        var lease: Int64 = 0
        /// Leader of each route, as last seen (node name).
        var leaderOf: [String: String] = [:]
        /// Routes this replica leads.
        var leading: Set<String> = []
        /// Members seen under `P/nodes/`.
        var members: [String: FleetMember] = [:]
        /// The fleet's routing file.
        var fleetFile: FleetFile?
        /// Incremented to make the sync thread drop its watch and read everything again.
        var resync = 0
    }
    private let health = ControlLock(Health())
    /// This replica's routing file fingerprint.
    private let fileHash = ControlLock("")
    private let incarnation: String

    /// The fleet's summed counters, windowed like one replica's.
    private let fleetStats = ControlLock(FleetStatistics())

    private let stopping = StopSignal()
    private let threads = ControlLock<[pthread_t]>([])

    /// A store for `settings`, recording events in `events`. Reads the etcd password file
    /// when authentication is configured (throws when it cannot).
    public init(settings: ClusterSettings, events: EventLog) throws(AdminError) {
        self.settings = settings
        self.events = events
        var endpoints: [EtcdClient.Endpoint] = []
        for text in settings.endpoints {
            switch EtcdClient.Endpoint.parse(text) {
            case .success(let e): endpoints.append(e)
            case .failure(let error): throw error
            }
        }
        var credentials: (user: String, password: String)?
        if let user = settings.username, let file = settings.passwordFile {
            switch ConfigLoader.readFile(file) {
            case .success(let text):
                credentials = (user, String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? ""))
            case .failure(let f):
                throw AdminError("cannot read cluster.etcd.password_file: \(f.message)")
            }
        }
        client = EtcdClient(endpoints: endpoints, timeoutMillis: 2000, credentials: credentials)
        rolloutRoutes = ControlLock({ [] })
        counters = ControlLock({ [] })
        incarnation = "\(getpid())-\(ControlClock.unixNanos())"
    }

    // MARK: Keys

    /// `P/state`: the fleet's routing document.
    var stateKey: String { settings.prefix + "/state" }
    /// `P/rollouts`: the rollouts' snapshots.
    var rolloutsKey: String { settings.prefix + "/rollouts" }
    /// `P/file`: the fleet's routing file fingerprint.
    var fileKey: String { settings.prefix + "/file" }
    /// `P/nodes/`: one key per live replica.
    var nodesPrefix: String { settings.prefix + "/nodes/" }
    /// `P/leaders/`: one key per route with a rollout, held by its leader.
    var leadersPrefix: String { settings.prefix + "/leaders/" }
    /// `P/stats/`: one key per replica with its counters.
    var statsPrefix: String { settings.prefix + "/stats/" }

    // MARK: Wiring

    /// Joins `routing` to the fleet: reads the fleet's state once (within about 2 s; when etcd
    /// cannot be reached the replica starts with its state file and catches up later) and
    /// applies it, then shares every runtime change of `routing`. Call before serving.
    public func attach(_ routing: RoutingController) {
        self.routing.withLock { $0 = routing }
        routing.attachFleet(self)
        fileHash.withLock { $0 = Self.fingerprint(routing.fileTable) }
        do throws(EtcdClient.Failure) {
            let (kvs, _) = try client.range(settings.prefix + "/", prefix: true)
            markConnected()
            for kv in kvs { dispatch(kv, deleted: false) }
        } catch {
            markDisconnected(error.description)
        }
    }

    /// Where the rollout controller gets its routes and this replica's counters.
    package func feed(routes: @escaping @Sendable () -> [String], counters: @escaping @Sendable () -> [FleetCounters.Series]) {
        rolloutRoutes.withLock { $0 = routes }
        self.counters.withLock { $0 = counters }
    }

    /// Calls `observer(route, leads)` when this replica takes or loses a route's leadership.
    package func observeLeadership(_ observer: @escaping @Sendable (String, Bool) -> Void) {
        leadershipObserver.withLock { $0 = observer }
    }

    /// Starts the sync and heartbeat threads.
    public func start() throws(AdminError) {
        let sync = try ControlThread.spawn { [self] in runSync() }
        let beat = try ControlThread.spawn { [self] in runHeartbeat() }
        threads.withLock { $0 = [sync, beat] }
    }

    /// Stops both threads, gives up leaderships and membership (revokes the lease, so another
    /// replica takes over at once), and waits for the threads.
    public func stop() {
        stopping.stop()
        for t in threads.withLock({ t -> [pthread_t] in defer { t = [] }; return t }) { pthread_join(t, nil) }
        let lease = health.withLock { h -> Int64 in defer { h.lease = 0; h.leading = [] }; return h.lease }
        if lease != 0 { try? client.revoke(lease: lease) }
    }

    // MARK: Reading

    /// True when the last call to etcd succeeded.
    public var isConnected: Bool { health.withLock { $0.connected } }

    /// True when this replica leads `route`'s rollout (and etcd is reachable).
    public func leads(_ route: String) -> Bool {
        health.withLock { $0.connected && $0.leading.contains(route) }
    }

    /// The fleet's windowed statistics (summed over every replica's published counters).
    public var fleetWindow: StatsWindow { fleetStats.withLock { $0.window } }

    /// Extends the fleet window's retention (to the longest rollout step).
    public func extendRetention(to retention: UInt64) {
        fleetStats.withLock { $0.window.extendRetention(to: retention) }
    }

    /// What `sluice status` and `GET /admin/cluster` show.
    public func status() -> ClusterStatus {
        let h = health.withLock { $0 }
        let own = fileHash.withLock { $0 }
        let view = routing.withLock { $0 }?.fleetView
        var routes: [String: ClusterStatus.Leadership] = [:]
        for route in rolloutRoutes.withLock({ $0 })() {
            routes[route] = ClusterStatus.Leadership(leader: h.leaderOf[route], leading: h.connected && h.leading.contains(route))
        }
        return ClusterStatus(
            node: node, prefix: settings.prefix, endpoints: settings.endpoints, connected: h.connected,
            since: h.since == 0 ? nil : ControlClock.rfc3339(unixNanos: h.since), lastError: h.connected ? nil : h.lastError,
            members: h.members.keys.sorted(), fileHash: own, fleetFileHash: h.fleetFile?.hash, fleetFileNode: h.fleetFile?.node,
            fileMatches: h.fleetFile.map { $0.hash == own } ?? true, routing: view, rollouts: routes)
    }

    /// `sluice_cluster_*` metric families.
    public func renderMetrics() -> String {
        let s = status()
        var out = "# HELP sluice_cluster_connected 1 when the cluster store (etcd) answered the last call.\n"
            + "# TYPE sluice_cluster_connected gauge\nsluice_cluster_connected \(s.connected ? 1 : 0)\n"
            + "# HELP sluice_cluster_members Replicas registered in the fleet (their leases alive).\n"
            + "# TYPE sluice_cluster_members gauge\nsluice_cluster_members \(s.members.count)\n"
            + "# HELP sluice_cluster_file_mismatch 1 when this replica's routing file differs from the fleet's.\n"
            + "# TYPE sluice_cluster_file_mismatch gauge\nsluice_cluster_file_mismatch \(s.fileMatches ? 0 : 1)\n"
            + "# HELP sluice_cluster_pending_local_aborts Aborts made with --local not yet shared with the fleet.\n"
            + "# TYPE sluice_cluster_pending_local_aborts gauge\n"
            + "sluice_cluster_pending_local_aborts \(s.routing?.pendingLocalAborts.count ?? 0)\n"
        if !s.rollouts.isEmpty {
            out += "# HELP sluice_cluster_leader 1 when this replica leads the route's rollout.\n# TYPE sluice_cluster_leader gauge\n"
            for (route, l) in s.rollouts.sorted(by: { $0.key < $1.key }) {
                out += "sluice_cluster_leader{route=\"\(PrometheusExposition.escapeLabel(route))\"} \(l.leading ? 1 : 0)\n"
            }
        }
        return out
    }

    // MARK: SharedRoutingStore

    /// Writes the routing document (and the rollouts') if `P/state` is still at `revision`.
    package func write(state doc: FleetRouting, basedOn revision: Int64, rollouts: FleetRollouts?) -> SharedWrite {
        var ops: [EtcdClient.Operation] = [.put(stateKey, FleetJSON.encode(doc), lease: 0)]
        if let rollouts { ops.append(.put(rolloutsKey, FleetJSON.encode(rollouts), lease: 0)) }
        return conditionalWrite(key: stateKey, revision: revision, ops: ops)
    }

    /// Writes the rollouts document if `P/rollouts` is still at `revision`.
    package func write(rollouts doc: FleetRollouts, basedOn revision: Int64) -> SharedWrite {
        conditionalWrite(key: rolloutsKey, revision: revision, ops: [.put(rolloutsKey, FleetJSON.encode(doc), lease: 0)])
    }

    private func conditionalWrite(key: String, revision: Int64, ops: [EtcdClient.Operation]) -> SharedWrite {
        do throws(EtcdClient.Failure) {
            let r = try client.txn([.modRevision(key, revision)], success: ops, failure: [.get(key)])
            markConnected()
            if r.succeeded { return .written(r.revision) }
            let current = r.reads.first?.first
            return .stale(current?.value, current?.modRevision ?? 0)
        } catch {
            switch error {
            case .unreachable:
                markDisconnected(error.description)
                return .unreachable(error.description)
            case .uncertain:
                markDisconnected(error.description)
                return .unconfirmed(error.description)
            case .refused, .protocolError:
                return .refused(error.description)
            }
        }
    }

    /// Records this replica's routing file as the fleet's (at start and after each reload).
    public func publishFile(_ table: RoutingTable) {
        let hash = Self.fingerprint(table)
        fileHash.withLock { $0 = hash }
        let doc = FleetFile(hash: hash, node: node, time: ControlClock.rfc3339(unixNanos: ControlClock.unixNanos()))
        do throws(EtcdClient.Failure) {
            try client.put(fileKey, FleetJSON.encode(doc))
            markConnected()
        } catch {
            markDisconnected(error.description)
        }
    }

    // MARK: Threads

    private func runSync() {
        var backoff: UInt64 = 100_000_000
        while !stopping.isStopped {
            do throws(EtcdClient.Failure) {
                let generation = health.withLock { $0.resync }
                let (kvs, revision) = try client.range(settings.prefix + "/", prefix: true)
                markConnected()
                backoff = 100_000_000
                for kv in kvs { dispatch(kv, deleted: false) }
                shareLocalAborts()
                try client.watch(settings.prefix + "/", prefix: true, from: revision + 1, cancelled: { [self] in
                    stopping.isStopped || health.withLock { $0.resync } != generation
                }) { events in
                    for e in events { dispatch(e.kv, deleted: e.deleted) }
                }
            } catch {
                markDisconnected(error.description)
                if stopping.sleep(nanos: backoff) { return }
                backoff = min(backoff * 2, 1_000_000_000)
            }
        }
    }

    /// Heartbeat period: a third of the lease TTL, at most 1 s, at least 100 ms.
    var heartbeatPeriod: UInt64 { min(max(settings.leaseTTL / 3, 100_000_000), 1_000_000_000) }

    private func runHeartbeat() {
        var written: String?
        repeat {
            do throws(EtcdClient.Failure) {
                try heartbeat()
                // At start and after every reload: this replica's file becomes the fleet's.
                if let table = routing.withLock({ $0 })?.fileTable, Self.fingerprint(table) != written {
                    publishFile(table)
                    written = Self.fingerprint(table)
                }
                // An abort made with `--local` while etcd answered is shared at the next heartbeat.
                shareLocalAborts()
            } catch {
                markDisconnected(error.description)
            }
            sampleFleet(now: ControlClock.monotonicNanos())
        } while !stopping.sleep(nanos: heartbeatPeriod)
    }

    /// One heartbeat: lease, membership, elections, counters.
    private func heartbeat() throws(EtcdClient.Failure) {
        var lease = health.withLock { $0.lease }
        if lease != 0 {
            if try client.keepAlive(lease: lease) <= 0 {
                // Expired (etcd was away longer than the TTL): leaderships are gone with it.
                lease = 0
                setLeading([])
            }
        }
        if lease == 0 {
            lease = try client.grantLease(ttlSeconds: Int(settings.leaseTTL / 1_000_000_000))
            health.withLock { $0.lease = lease }
            let member = FleetMember(node: node, fileHash: fileHash.withLock { $0 },
                                     since: ControlClock.rfc3339(unixNanos: ControlClock.unixNanos()))
            try client.put(nodesPrefix + node, FleetJSON.encode(member), lease: lease)
        }
        health.withLock { $0.lease = lease }
        markConnected()
        // Elections: the key exists while its holder's lease lives.
        var leading: Set<String> = []
        for route in rolloutRoutes.withLock({ $0 })() {
            let key = leadersPrefix + route
            let r = try client.txn([.createRevision(key, 0)], success: [.put(key, Array(node.utf8), lease: lease)],
                                   failure: [.get(key)])
            let holder = r.succeeded ? nil : r.reads.first?.first
            if r.succeeded || (holder.map { String(decoding: $0.value, as: UTF8.self) == node && $0.lease == lease } ?? false) {
                leading.insert(route)
            }
            let name = r.succeeded ? node : holder.map { String(decoding: $0.value, as: UTF8.self) }
            health.withLock { $0.leaderOf[route] = name }
        }
        setLeading(leading)
        let series = counters.withLock { $0 }()
        if !series.isEmpty {
            try client.put(statsPrefix + node, FleetJSON.encode(FleetCounters(node: node, incarnation: incarnation, series: series)),
                           lease: lease)
        }
    }

    private func setLeading(_ leading: Set<String>) {
        let (gained, lost) = health.withLock { h -> (Set<String>, Set<String>) in
            defer { h.leading = leading }
            return (leading.subtracting(h.leading), h.leading.subtracting(leading))
        }
        let observer = leadershipObserver.withLock { $0 }
        for route in gained.sorted() {
            events.record(.cluster, oldVersion: nil, newVersion: nil, cause: "\(node) leads the rollout of route `\(route)`",
                          details: ["route": route, "node": node])
            observer?(route, true)
        }
        for route in lost.sorted() {
            events.record(.cluster, oldVersion: nil, newVersion: nil, cause: "\(node) no longer leads the rollout of route `\(route)`",
                          details: ["route": route, "node": node])
            observer?(route, false)
        }
    }

    /// Hands one key's change to whoever follows it.
    private func dispatch(_ kv: EtcdClient.KeyValue, deleted: Bool) {
        let routing = self.routing.withLock { $0 }
        switch kv.key {
        case stateKey:
            routing?.adoptFleetState(deleted ? nil : kv.value, revision: kv.modRevision)
        case rolloutsKey:
            if !deleted { routing?.adoptFleetRollouts(kv.value, revision: kv.modRevision) }
        case fileKey:
            let file = deleted ? nil : try? FleetJSON.decode(FleetFile.self, kv.value).get()
            let own = fileHash.withLock { $0 }
            let (before, after) = health.withLock { h -> (Bool, Bool) in
                defer { h.fleetFile = file }
                return ((h.fleetFile?.hash ?? own) == own, (file?.hash ?? own) == own)
            }
            if before && !after, let file {
                events.record(.cluster, oldVersion: nil, newVersion: nil,
                              cause: "this replica's routing file differs from the fleet's (written by \(file.node) at \(file.time))",
                              details: ["fleet_hash": file.hash, "hash": own])
            }
        default:
            if kv.key.hasPrefix(nodesPrefix) {
                let name = String(kv.key.dropFirst(nodesPrefix.count))
                let member = deleted ? nil : try? FleetJSON.decode(FleetMember.self, kv.value).get()
                health.withLock { $0.members[name] = member }
            } else if kv.key.hasPrefix(leadersPrefix) {
                let route = String(kv.key.dropFirst(leadersPrefix.count))
                health.withLock { $0.leaderOf[route] = deleted ? nil : String(decoding: kv.value, as: UTF8.self) }
            } else if kv.key.hasPrefix(statsPrefix), !deleted,
                      case .success(let c) = FleetJSON.decode(FleetCounters.self, kv.value) {
                fleetStats.withLock { $0.absorb(c) }
            }
        }
    }

    private func shareLocalAborts() {
        guard let routing = routing.withLock({ $0 }), !routing.fleetView.pendingLocalAborts.isEmpty else { return }
        _ = try? routing.shareLocalAborts()
    }

    /// Adds a sample of the fleet's summed counters to the fleet window.
    private func sampleFleet(now: UInt64) {
        fleetStats.withLock { $0.sample(now: now) }
    }

    private func markConnected() {
        let changed = health.withLock { h -> Bool in
            guard !h.connected else { return false }
            h.connected = true
            h.since = ControlClock.unixNanos()
            return true
        }
        if changed {
            events.record(.cluster, oldVersion: nil, newVersion: nil, cause: "connected to the cluster store (etcd) as \(node)",
                          details: ["node": node, "endpoints": settings.endpoints.joined(separator: ",")])
        }
    }

    private func markDisconnected(_ why: String) {
        let changed = health.withLock { h -> Bool in
            h.lastError = why
            guard h.connected || h.since == 0 else { return false }
            h.connected = false
            h.since = ControlClock.unixNanos()
            h.resync += 1
            return true
        }
        if changed {
            setLeading([])
            events.record(.cluster, oldVersion: nil, newVersion: nil,
                          cause: "the cluster store (etcd) is unreachable: serving the last table, runtime changes refused, "
                              + "rollouts paused",
                          details: ["node": node, "error": why])
        }
    }

    /// The routing part of a table (upstreams and their endpoints; routes with their cohorts,
    /// upstreams, weights and baselines), FNV-1a 64 in hex: equal on replicas deployed with the
    /// same routing file even when their listeners differ.
    static func fingerprint(_ table: RoutingTable) -> String {
        var text = ""
        for u in table.upstreams { text += "u \(u.name) " + u.endpoints.map { "\($0.address)" }.joined(separator: ",") + "\n" }
        for r in table.routes {
            text += "r \(r.name) \(RoutingController.splitSignature(r.name, in: table)) rollout=\(r.rollout != nil)\n"
        }
        return String(RoutingController.contentHash(text), radix: 16)
    }
}

/// The fleet's statistics: every replica's cumulative counters, folded into fleet-wide totals
/// that only grow (a replica's restart or departure never subtracts), sampled into a
/// `StatsWindow` at every heartbeat.
package struct FleetStatistics: Sendable {
    /// Counts of one series.
    struct Counts: Sendable, Equatable {
        var requests: UInt64 = 0
        var errors: UInt64 = 0
        var upstreamErrors: UInt64 = 0
        var latency: [Int: UInt64] = [:]
    }

    /// The windowed fleet sums.
    package var window = StatsWindow()

    /// Empty statistics.
    package init() {}
    /// Fleet totals by series, and the stable order of series (ids for the window).
    private var totals: [SeriesLabels: Counts] = [:]
    private var order: [SeriesLabels] = []
    /// Each replica's last report (incarnation, counts by series).
    private var last: [String: (incarnation: String, counts: [SeriesLabels: Counts])] = [:]

    /// Folds in one replica's report: the increase since its previous report (all of it when
    /// the replica restarted).
    package mutating func absorb(_ report: FleetCounters) {
        let previous = last[report.node]
        let fresh = previous?.incarnation != report.incarnation
        var counts: [SeriesLabels: Counts] = [:]
        for s in report.series {
            let labels = SeriesLabels(route: s.route, cohort: s.cohort)
            var c = Counts(requests: s.requests, errors: s.errors, upstreamErrors: s.upstreamErrors)
            for pair in s.latency where pair.count == 2 { c.latency[Int(pair[0])] = pair[1] }
            counts[labels] = c
            let before = fresh ? Counts() : (previous?.counts[labels] ?? Counts())
            if totals[labels] == nil { order.append(labels) }
            var t = totals[labels] ?? Counts()
            t.requests &+= Self.increase(c.requests, before.requests)
            t.errors &+= Self.increase(c.errors, before.errors)
            t.upstreamErrors &+= Self.increase(c.upstreamErrors, before.upstreamErrors)
            for (k, v) in c.latency { t.latency[k, default: 0] &+= Self.increase(v, before.latency[k] ?? 0) }
            totals[labels] = t
        }
        last[report.node] = (report.incarnation, counts)
    }

    private static func increase(_ now: UInt64, _ before: UInt64) -> UInt64 { now >= before ? now - before : now }

    /// Samples the fleet totals into the window.
    package mutating func sample(now: UInt64) {
        let labels = [SeriesLabels(route: "", cohort: "")] + order
        var m = MetricsTotals(seriesCount: labels.count, listenerCount: 0, upstreamCount: 0)
        for (i, l) in order.enumerated() {
            guard let c = totals[l] else { continue }
            m.add(series: i + 1, requests: c.requests, serverErrors: c.errors, upstreamErrors: c.upstreamErrors,
                  latency: c.latency.map { (index: $0.key, count: $0.value) })
        }
        window.record(totals: m, names: MetricsNames(series: labels, listeners: [], upstreams: []), now: now)
    }
}

/// `GET /admin/cluster`: this replica in its fleet.
public struct ClusterStatus: Sendable, Codable, Equatable {
    /// A route's rollout leadership.
    public struct Leadership: Sendable, Codable, Equatable {
        /// The leading replica (nil: none right now).
        public var leader: String?
        /// True when it is this replica.
        public var leading: Bool
    }

    /// This replica.
    public var node: String
    /// The fleet's key prefix.
    public var prefix: String
    /// etcd endpoints.
    public var endpoints: [String]
    /// True when etcd answered the last call.
    public var connected: Bool
    /// Since when (connected or not), RFC 3339.
    public var since: String?
    /// Why the last call failed (while disconnected).
    public var lastError: String?
    /// Replicas with a live lease.
    public var members: [String]
    /// This replica's routing file fingerprint.
    public var fileHash: String
    /// The fleet's routing file fingerprint (nil before any replica wrote one).
    public var fleetFileHash: String?
    /// The replica that wrote it.
    public var fleetFileNode: String?
    /// False when this replica's routing file differs from the fleet's.
    public var fileMatches: Bool
    /// The fleet's routing state as seen here.
    public var routing: FleetRoutingView?
    /// Rollout leadership by route.
    public var rollouts: [String: Leadership]

    enum CodingKeys: String, CodingKey {
        case node, prefix, endpoints, connected, since, lastError = "last_error", members, fileHash = "file_hash",
             fleetFileHash = "fleet_file_hash", fleetFileNode = "fleet_file_node", fileMatches = "file_matches", routing, rollouts
    }

    /// Lines for `sluice status`.
    public var text: String {
        var out = "cluster: node \(node), prefix \(prefix), "
        out += connected ? "connected to etcd" : "etcd UNREACHABLE (\(lastError ?? "?")): serving the last table, changes refused"
        if let since { out += " since \(since)" }
        out += "\n  members: \(members.isEmpty ? "none seen" : members.joined(separator: ", "))\n"
        if let r = routing {
            out += "  fleet version \(r.fleetVersion.map(String.init) ?? "none yet"), serving version \(r.servingVersion)"
            if let last = r.lastChange { out += "; last change \(last)" }
            out += "\n"
            if !r.pendingLocalAborts.isEmpty {
                out += "  local aborts not yet shared: \(r.pendingLocalAborts.joined(separator: ", "))\n"
            }
        }
        if !fileMatches {
            out += "  routing file DIFFERS from the fleet's (this \(fileHash), fleet \(fleetFileHash ?? "?") from \(fleetFileNode ?? "?"))\n"
        }
        for (route, l) in rollouts.sorted(by: { $0.key < $1.key }) {
            out += "  rollout leader of \(route): \(l.leader ?? "none")\(l.leading ? " (this replica)" : "")\n"
        }
        return out
    }
}
