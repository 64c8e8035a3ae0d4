#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import SluiceCore
import Synchronization

/// Resolves the host names among upstream endpoints again every `dns_refresh` (per group), on
/// its own control-plane thread (a slow resolver never delays health checks or requests). When
/// a name's address set changed, the config file is reloaded through the routing controller
/// (the same compile, publish, history and event as any reload; the compile resolves every name
/// again), so the new endpoints arrive in one atomic table and the health of endpoints that stay
/// carries over (`EndpointHealth` keys endpoints by upstream and address). A name that fails to
/// resolve keeps its last good addresses (logged, `dns` event); nothing is reloaded for it.
///
/// `@unchecked Sendable`: `due` and `failing` are touched only by the refresher's thread (or by a
/// test calling `refresh` while the thread is not running).
public final class DNSRefresher: @unchecked Sendable {
    private let controller: RoutingController
    private let resolver: HostResolver
    private let events: EventLog?
    private let clock: @Sendable () -> UInt64
    private let log = Logger(label: "sluice")
    private let running = Mutex<(thread: pthread_t, stop: StopSignal)?>(nil)
    /// When each group is next due (by upstream name).
    private var due: [String: UInt64] = [:]
    /// Names whose last resolution failed (logged once per failure streak).
    private var failing: Set<String> = []

    /// A refresher for `controller`'s serving table, resolving with `resolver` (the one the controller compiles with).
    package init(controller: RoutingController, resolver: HostResolver = .system, events: EventLog?,
                 clock: @escaping @Sendable () -> UInt64 = { ControlClock.monotonicNanos() }) {
        self.controller = controller
        self.resolver = resolver
        self.events = events
        self.clock = clock
    }

    /// What one refresh found.
    package struct Outcome: Equatable, Sendable {
        /// Host names whose address set changed ("name: old -> new").
        package var changed: [String] = []
        /// Host names that failed to resolve (their last good addresses stay).
        package var failed: [String] = []
        /// The version the reload published, when one was made.
        package var reloadedVersion: UInt64?
    }

    /// Checks the names of every group that is due at `now` (all of them when `force`), and
    /// reloads when an address set changed.
    @discardableResult
    package func refresh(now: UInt64, force: Bool = false) -> Outcome {
        let table = controller.table
        var outcome = Outcome()
        var checked: [String: Result<[SocketAddress], HostResolver.ResolveFailure>] = [:]
        for group in table.upstreams {
            let interval = group.availability.dnsRefreshNanos
            guard interval > 0 else { continue }
            if !force, let next = due[group.name], next > now { continue }
            due[group.name] = now &+ interval
            // Endpoints by label: a host-name label's endpoints are its addresses.
            var byLabel: [String: Set<SocketAddress>] = [:]
            for e in group.endpoints { byLabel[e.label, default: []].insert(e.address) }
            for (label, current) in byLabel.sorted(by: { $0.key < $1.key }) {
                guard case .success(let hp) = ConfigValues.parseHostPort(label, allowPortZero: false), !hp.isNumeric else { continue }
                let result = checked[hp.host] ?? resolver.endpointAddresses(hp.host)
                checked[hp.host] = result
                switch result {
                case .failure(let f):
                    if !failing.contains(hp.host) {
                        failing.insert(hp.host)
                        outcome.failed.append(hp.host)
                        log.warning("dns refresh failed; keeping the last good addresses",
                                    metadata: ["upstream": "\(group.name)", "host": "\(hp.host)", "error": "\(f.message)"])
                        events?.record(.dns, oldVersion: nil, newVersion: nil, cause: "cannot resolve `\(hp.host)`: \(f.message); last good addresses kept",
                                       details: ["upstream": group.name, "host": hp.host, "action": "failed"])
                    }
                case .success(let list):
                    failing.remove(hp.host)
                    let fresh = Set(list.map { $0.with(port: hp.port) })
                    if fresh != current {
                        let old = current.map { "\($0)" }.sorted().joined(separator: ", ")
                        let new = fresh.map { "\($0)" }.sorted().joined(separator: ", ")
                        outcome.changed.append("\(label): [\(old)] -> [\(new)]")
                        events?.record(.dns, oldVersion: nil, newVersion: nil, cause: "`\(label)` of upstream \(group.name) now resolves to [\(new)] (was [\(old)])",
                                       details: ["upstream": group.name, "host": hp.host, "action": "changed", "addresses": new])
                    }
                }
            }
        }
        guard !outcome.changed.isEmpty else { return outcome }
        do {
            let result = try controller.reloadFromFile(cause: "dns refresh: " + outcome.changed.joined(separator: "; "))
            outcome.reloadedVersion = result.version
            log.notice("dns refresh: endpoints changed", metadata: ["version": "\(result.version)",
                                                                   "changes": "\(outcome.changed.joined(separator: "; "))"])
        } catch {
            log.warning("dns refresh: reload failed; the serving table stays", metadata: ["error": "\(error)"])
        }
        return outcome
    }

    /// Starts the thread: it wakes when the earliest group is due (at most every second). Idempotent.
    public func start() throws(AdminError) {
        let stop = StopSignal()
        var failure: AdminError?
        running.withLock { current in
            guard current == nil else { return }
            // The names were resolved by the load that built the serving table: first refresh one interval later.
            let now = clock()
            for g in controller.table.upstreams where g.availability.dnsRefreshNanos > 0 {
                due[g.name] = now &+ g.availability.dnsRefreshNanos
            }
            do throws(AdminError) {
                let thread = try ControlThread.spawn { [self] in
                    while !stop.sleep(nanos: self.sleepNanos()) {
                        self.refresh(now: self.clock())
                    }
                }
                current = (thread, stop)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// Time until the earliest group is due, between 10 ms and 1 s.
    private func sleepNanos() -> UInt64 {
        let now = clock()
        let next = due.values.min() ?? (now &+ 1_000_000_000)
        return next <= now ? 10_000_000 : min(max(next - now, 10_000_000), 1_000_000_000)
    }

    /// Stops the thread and waits for it. Idempotent.
    public func stop() {
        guard let r = running.withLock({ c -> (thread: pthread_t, stop: StopSignal)? in defer { c = nil }; return c }) else { return }
        r.stop.stop()
        pthread_join(r.thread, nil)
    }
}
