#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import SluiceCore
import SluiceProxy
import Synchronization

/// The process's one endpoint health thread (control plane, never a worker): it runs every
/// active health check (`HealthProbe`, non-blocking sockets multiplexed with poll(), so a slow
/// endpoint never delays another's check), decides passive ejections and returns with the pure
/// `OutlierPolicy`, and publishes both to the workers through `EndpointHealth`'s atomic flags
/// (the balancers read them on their next pick). Every change is an `endpoint` event.
///
/// It works on the table most recently published (`EndpointHealth.current`); workers wake it
/// through the server's health eventfd when a failure reaches a group's `consecutive_failures`.
///
/// `@unchecked Sendable`: the probes and the ejection bookkeeping are touched only by the
/// monitor's thread; `running` is a mutex.
public final class HealthMonitor: @unchecked Sendable {
    private let health: EndpointHealth
    private let signal: WakeFD?
    private let events: EventLog?
    private let tlsFor: @Sendable (String) -> UpstreamTLS?
    private let clock: @Sendable () -> UInt64
    private let log = Logger(label: "sluice")
    private let running = Mutex<pthread_t?>(nil)
    private let stopping = Mutex(false)

    private var probes: [Int32: HealthProbe] = [:]
    /// TLS contexts for checks, by group name (rebuilt when the group's settings change).
    private var tlsContexts: [String: HealthCheckTLSContext] = [:]
    private var generation: UInt64 = 0
    private var rng = SystemRandomNumberGenerator()

    /// A monitor for `server`'s endpoints, recording changes in `events`.
    public convenience init(server: ProxyServer, events: EventLog?) {
        self.init(health: server.endpointHealth, signal: server.healthSignal, events: events,
                  tlsFor: { [server] name in server.tls.upstreams[name] })
    }

    /// A monitor of `health` woken by `signal`; `tlsFor` gives a group's TLS settings (nil: plain TCP).
    package init(health: EndpointHealth, signal: WakeFD?, events: EventLog?, tlsFor: @escaping @Sendable (String) -> UpstreamTLS? = { _ in nil },
                 clock: @escaping @Sendable () -> UInt64 = { ControlClock.monotonicNanos() }) {
        self.health = health
        self.signal = signal
        self.events = events
        self.tlsFor = tlsFor
        self.clock = clock
    }

    /// Starts the thread. Idempotent.
    public func start() throws(AdminError) {
        var failure: AdminError?
        running.withLock { current in
            guard current == nil else { return }
            stopping.withLock { $0 = false }
            do throws(AdminError) {
                current = try ControlThread.spawn { [self] in self.loop() }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// Stops the thread and waits for it; closes the checks' sockets. Idempotent.
    public func stop() {
        guard let thread = running.withLock({ current -> pthread_t? in defer { current = nil }; return current }) else { return }
        stopping.withLock { $0 = true }
        signal?.signal()
        pthread_join(thread, nil)
    }

    private var isStopping: Bool { stopping.withLock { $0 } }

    // MARK: The loop

    private func loop() {
        var fds: [pollfd] = []
        var owners: [HealthProbe?] = []
        var signalled = false
        var lastOutlierPass: UInt64 = 0
        var ejectionEnd = UInt64.max
        while !isStopping {
            let now = clock()
            let assignment = health.current
            var rebuilt = false
            if let a = assignment, a.generation != generation {
                generation = a.generation
                rebuildProbes(a, now: now)
                rebuilt = true
            }
            // Due checks start; then one poll over the signal and every check in progress.
            for p in probes.values where p.phase == .idle && p.nextDue <= now {
                if let passed = p.start(now: now) { record(p, passed: passed) }
            }
            // Outlier decisions when a worker signalled, an ejection is due to end, a table
            // arrived, or at least every second (a refused ejection may become possible).
            if let a = assignment, signalled || now >= ejectionEnd || now &- lastOutlierPass >= 1_000_000_000 || rebuilt {
                ejectionEnd = decideOutliers(a, now: now)
                lastOutlierPass = now
                signalled = false
            }
            var wake = now &+ 1_000_000_000
            fds.removeAll(keepingCapacity: true)
            owners.removeAll(keepingCapacity: true)
            if let signal {
                fds.append(pollfd(fd: signal.fd, events: Int16(POLLIN), revents: 0))
                owners.append(nil)
            }
            for p in probes.values {
                if p.phase == .idle {
                    wake = min(wake, p.nextDue)
                } else {
                    wake = min(wake, p.deadline)
                    fds.append(pollfd(fd: p.fd, events: p.pollEvents, revents: 0))
                    owners.append(p)
                }
            }
            wake = min(wake, ejectionEnd)
            let after = clock()
            let timeoutMs = wake <= after ? 0 : Int32(min((wake - after + 999_999) / 1_000_000, 1000))
            let n = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), timeoutMs) }
            let later = clock()
            if n > 0 {
                for (i, f) in fds.enumerated() where f.revents != 0 {
                    if let p = owners[i] {
                        if let passed = p.advance(revents: f.revents) { record(p, passed: passed) }
                    } else {
                        signal?.drain()
                        signalled = true
                    }
                }
            }
            for p in probes.values {
                if let passed = p.checkTimeout(now: later) { record(p, passed: passed) }
            }
        }
        for p in probes.values { p.closeSocket() }
    }

    /// Keeps the probes of endpoints still checked (their verdicts), adds probes for new ones
    /// (first check at a random point of the first interval: the jitter that spreads checks),
    /// and drops the rest.
    private func rebuildProbes(_ a: EndpointHealth.Assignment, now: UInt64) {
        var next: [Int32: HealthProbe] = [:]
        var contexts: [String: HealthCheckTLSContext] = [:]
        for (gi, group) in a.table.upstreams.enumerated() {
            guard let spec = group.availability.healthCheck else { continue }
            var tls: HealthCheckTLSContext?
            if let config = tlsFor(group.name) {
                if let c = tlsContexts[group.name], c.config === config {
                    tls = c
                } else {
                    tls = HealthCheckTLSContext(config: config)
                    if tls == nil { log.warning("cannot make a TLS context for health checks", metadata: ["upstream": "\(group.name)"]) }
                }
                contexts[group.name] = tls
            }
            for (ei, e) in group.endpoints.enumerated() {
                let slot = a.slots[a.table.flatIndex(upstream: Int32(gi), endpoint: Int32(ei))]
                guard slot >= 0, next[slot] == nil else { continue }
                if let p = probes[slot] {
                    p.update(spec: spec, tls: tls)
                    next[slot] = p
                } else {
                    let jitter = UInt64.random(in: 0..<max(1, spec.intervalNanos), using: &rng)
                    let p = HealthProbe(slot: slot, upstream: group.name, label: e.label, address: e.address, spec: spec,
                                        tls: tls, firstDue: now &+ jitter)
                    // An endpoint already marked down (kept across a reload) starts from that verdict.
                    if health.state(slot)?.downByCheck == true { p.verdict = ActiveCheckState(healthy: false) }
                    next[slot] = p
                }
            }
        }
        for (slot, p) in probes where next[slot] == nil { p.closeSocket() }
        probes = next
        tlsContexts = contexts
    }

    /// A check ended: the verdict moves, and a change is published and recorded.
    private func record(_ p: HealthProbe, passed: Bool) {
        guard p.verdict.record(passed: passed, p.spec) else { return }
        let down = !p.verdict.healthy
        _ = health.setDownByCheck(p.slot, down)
        let action = down ? "unhealthy" : "healthy"
        let cause = down
            ? "\(p.spec.unhealthy) consecutive health checks failed (\(p.lastFailure))"
            : "\(p.spec.healthy) consecutive health checks passed"
        note(action: action, upstream: p.upstream, endpoint: p.address, label: p.label, cause: cause)
    }

    // MARK: Outlier detection

    /// Ends ejections that are over and ejects endpoints whose failures reached their group's
    /// threshold, within `max_ejected_percent`. Returns when the earliest remaining ejection ends.
    private func decideOutliers(_ a: EndpointHealth.Assignment, now: UInt64) -> UInt64 {
        var earliest = UInt64.max
        for (gi, group) in a.table.upstreams.enumerated() {
            let start = a.table.flatIndex(upstream: Int32(gi), endpoint: 0)
            let slots = a.slots[start..<start + group.endpoints.count]
            var ejected = 0
            var states: [(slot: Int32, endpoint: Endpoint, state: EndpointHealth.SlotState)] = []
            for (i, slot) in slots.enumerated() {
                guard let s = health.state(slot, counters: false) else { continue }
                if s.ejected {
                    if s.ejectedUntil <= now {
                        health.endEjection(slot, now: now)
                        note(action: "returned", upstream: group.name, endpoint: group.endpoints[i].address,
                             label: group.endpoints[i].label, cause: "ejection time over")
                        continue
                    }
                    ejected += 1
                    earliest = min(earliest, s.ejectedUntil)
                }
                states.append((slot, group.endpoints[i], s))
            }
            let spec = group.availability.outlier
            guard spec.isOn else { continue }
            for (slot, endpoint, s) in states where !s.ejected && s.failures >= UInt64(spec.consecutiveFailures) {
                let times = s.returnedAt == 0 ? s.timesEjected
                    : OutlierPolicy.decayedEjections(spec, timesEjected: s.timesEjected, healthyNanos: now &- s.returnedAt)
                guard let nanos = OutlierPolicy.eject(spec, failures: s.failures, timesEjected: times, groupSize: group.endpoints.count,
                                                      alreadyEjected: ejected) else { continue }
                health.eject(slot, until: now &+ nanos, timesEjected: times + 1)
                earliest = min(earliest, now &+ nanos)
                ejected += 1
                note(action: "ejected", upstream: group.name, endpoint: endpoint.address, label: endpoint.label,
                     cause: "\(s.failures) consecutive failures; ejected for \(ConfigValues.formatDuration(nanos))")
            }
        }
        // Endpoints no longer in the table: their ejections end quietly.
        _ = health.endExpiredEjections(now: now)
        return earliest
    }

    private func note(action: String, upstream: String, endpoint: SocketAddress, label: String, cause: String) {
        let address = "\(endpoint)"
        events?.record(.endpoint, oldVersion: nil, newVersion: nil, cause: cause,
                       details: ["upstream": upstream, "endpoint": address, "label": label, "action": action])
        let metadata: Logger.Metadata = ["upstream": "\(upstream)", "endpoint": "\(address)", "cause": "\(cause)"]
        if action == "ejected" || action == "unhealthy" {
            log.warning("endpoint \(action)", metadata: metadata)
        } else {
            log.notice("endpoint \(action)", metadata: metadata)
        }
    }
}
