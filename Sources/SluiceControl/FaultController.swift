#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import SluiceCore
import SluiceProxy
import Synchronization

/// Runtime fault drills (`sluice fault ROUTE COHORT --abort 503 --percent 5 --for 2m`): a share of
/// a cohort's requests answered with an injected error, until the drill expires by itself.
///
/// Sits between the routing controller and the workers: every table the routing controller
/// publishes comes here (`attach`), and what the workers get is that table with the drills in
/// force applied (`RoutingTable.applyingFaults`, pure). Starting, clearing or expiring a drill
/// republishes the last table with the new set of drills (same routing version: a drill is not
/// a routing change and never enters the history or the state file, so a restart ends it).
/// Each start, clear and expiry is an event (`fault`).
///
/// Thread-safe (one lock). Lock order: the routing controller's, then this one (the routing
/// controller publishes while holding its lock; this class never calls into it while holding its own).
public final class FaultController: Sendable {
    /// One drill in force.
    public struct ActiveFault: Sendable, Codable, Equatable {
        /// What it injects.
        public var fault: RuntimeFault
        /// When it started (RFC 3339 UTC).
        public var since: String
        /// When it ends by itself (RFC 3339 UTC).
        public var expires: String
        /// Seconds left when this was read.
        public var remainingSeconds: Double
        /// Who started it.
        public var cause: String

        /// `web/canary: abort 503 for 50% of requests, 1m 30s left (until ...)`.
        public var summary: String {
            var s = "\(fault.route)/\(fault.cohort ?? "*"): \(fault.injects) of requests"
            if let h = fault.whenHeader { s += " carrying \(h)" }
            if !fault.countInGates { s += ", not counted in the rollout gates" }
            return s + ", \(Int(remainingSeconds.rounded(.up)))s left (until \(expires))"
        }

        /// JSON keys.
        enum CodingKeys: String, CodingKey {
            case fault, since, expires, remainingSeconds = "remaining_seconds", cause
        }
    }

    /// The longest a drill may run.
    public static let maxDuration: UInt64 = 24 * 3600 * 1_000_000_000
    /// The longest delay a drill may inject (the config's `delay.duration` has the same limit).
    public static let maxDelay: UInt64 = 60_000_000_000

    private struct Entry: Sendable {
        var fault: RuntimeFault
        var deadline: UInt64
        var since: String
        var expires: String
        var cause: String
    }

    private struct State: Sendable {
        var entries: [Entry] = []
        var base: RoutingTable
        var publish: (@Sendable (RoutingTable) -> Void)?
        var serving: RoutingTable
        var thread: pthread_t?
        var stop: StopSignal?
    }

    let routing: RoutingController
    private let events: EventLog
    private let monotonic: @Sendable () -> UInt64
    private let wall: @Sendable () -> UInt64
    private let state: Mutex<State>

    /// A controller for `routing`'s tables. `monotonic` and `wall` are clocks in nanoseconds (tests pass their own).
    public init(routing: RoutingController, events: EventLog,
                monotonic: @escaping @Sendable () -> UInt64 = { ControlClock.monotonicNanos() },
                wall: @escaping @Sendable () -> UInt64 = { ControlClock.unixNanos() }) {
        self.routing = routing
        self.events = events
        self.monotonic = monotonic
        self.wall = wall
        let table = routing.table
        state = Mutex(State(base: table, serving: table))
    }

    /// Publishes through `publish` (normally the proxy server): every table the routing
    /// controller makes, with the drills in force.
    public func attach(publish: @escaping @Sendable (RoutingTable) -> Void) {
        state.withLock {
            $0.publish = publish
            $0.base = routing.table
            $0.serving = $0.base.applyingFaults($0.entries.map(\.fault))
        }
        routing.attach { [weak self] table in self?.received(table) }
    }

    /// Publishes to `server`'s workers.
    public func attach(_ server: ProxyServer) {
        attach { server.publish($0) }
    }

    /// The table the workers serve: the routing controller's with the drills applied.
    public var table: RoutingTable {
        state.withLock { $0.serving }
    }

    /// The drills in force, soonest to end first.
    public func active() -> [ActiveFault] {
        let now = monotonic()
        return state.withLock { s in
            s.entries.sorted { $0.deadline < $1.deadline }.map {
                ActiveFault(fault: $0.fault, since: $0.since, expires: $0.expires,
                            remainingSeconds: Double($0.deadline > now ? $0.deadline - now : 0) / 1e9, cause: $0.cause)
            }
        }
    }

    /// A new table from the routing controller (called with its lock held): drills whose route
    /// or cohort is gone end (event), the others apply to it.
    private func received(_ table: RoutingTable) {
        var dropped: [Entry] = []
        state.withLock { s in
            s.base = table
            s.entries.removeAll { e in
                let fits = Self.problem(e.fault, in: table) == nil
                if !fits { dropped.append(e) }
                return !fits
            }
            s.serving = table.applyingFaults(s.entries.map(\.fault))
            s.publish?(s.serving)
        }
        for e in dropped {
            record(e.fault, action: "ended", version: table.version,
                   cause: "the route or cohort is gone from version \(table.version)", extra: ["since": e.since])
        }
    }

    /// Why `fault` does not fit `table` (nil when it does).
    static func problem(_ fault: RuntimeFault, in table: RoutingTable) -> String? {
        guard let r = table.routeIndex(named: fault.route) else {
            return RoutingChangeError.unknownRoute(fault.route, known: table.routes.map(\.name)).description
        }
        let names = table.routes[r].cohorts.map(\.name)
        guard !names.isEmpty else { return RoutingChangeError.noCohorts(route: fault.route).description }
        if let c = fault.cohort, !names.contains(c) {
            return RoutingChangeError.unknownCohort(route: fault.route, cohort: c, known: names).description
        }
        return nil
    }

    /// Starts a drill (replacing one on the same route and cohort) for `duration` nanoseconds.
    public func start(_ fault: RuntimeFault, duration: UInt64, cause: String) throws(ControlError) -> ActiveFault {
        guard fault.abortStatus != nil || fault.delayNanos != nil else {
            throw .badRequest("a drill needs an abort status or a delay (`--abort 503` or `--delay 200ms`)")
        }
        if let status = fault.abortStatus {
            guard (200...599).contains(status) else {
                throw .badRequest("abort status \(status) is not an HTTP status from 200 to 599")
            }
            guard (1...Int(StickyHash.buckets)).contains(fault.percent) else {
                throw .badRequest("percent \(CohortWeight.percentText(fault.percent)) must be above 0 and at most 100")
            }
        }
        if let delay = fault.delayNanos {
            guard delay >= 1_000_000, delay <= Self.maxDelay else {
                throw .badRequest("a delay is from 1ms to 60s (`--delay 200ms`)")
            }
            guard (1...Int(StickyHash.buckets)).contains(fault.delayPercent) else {
                throw .badRequest("delay percent \(CohortWeight.percentText(fault.delayPercent)) must be above 0 and at most 100")
            }
        }
        guard duration >= 1_000_000_000, duration <= Self.maxDuration else {
            throw .badRequest("a drill lasts from 1s to 24h (`--for 2m`)")
        }
        if let h = fault.whenHeader, !ConfigValues.isToken(h) { throw .badRequest("`\(h)` is not a valid header name") }
        let now = monotonic(), wallNow = wall()
        let entry = Entry(fault: fault, deadline: now &+ duration, since: ControlClock.rfc3339(unixNanos: wallNow),
                          expires: ControlClock.rfc3339(unixNanos: wallNow &+ duration), cause: cause)
        let version = try state.withLock { s throws(ControlError) -> UInt64 in
            if let problem = Self.problem(fault, in: s.base) { throw .badRequest(problem) }
            s.entries.removeAll { $0.fault.route == fault.route && $0.fault.cohort == fault.cohort }
            s.entries.append(entry)
            s.serving = s.base.applyingFaults(s.entries.map(\.fault))
            s.publish?(s.serving)
            return s.base.version
        }
        record(fault, action: "started", version: version, cause: cause, extra: ["expires": entry.expires])
        return ActiveFault(fault: fault, since: entry.since, expires: entry.expires, remainingSeconds: Double(duration) / 1e9,
                           cause: cause)
    }

    /// Ends the drills on `route` (only `cohort`'s when given); throws when none is in force.
    public func clear(route: String, cohort: String?, cause: String) throws(ControlError) -> [RuntimeFault] {
        let (removed, version) = try state.withLock { s throws(ControlError) -> ([RuntimeFault], UInt64) in
            let matching = s.entries.filter { $0.fault.route == route && (cohort == nil || $0.fault.cohort == cohort) }
            guard !matching.isEmpty else {
                let inForce = s.entries.map { "\($0.fault.route)/\($0.fault.cohort ?? "*")" }
                throw .conflict("no fault drill on \(route)\(cohort.map { "/\($0)" } ?? "")"
                                + (inForce.isEmpty ? " (none is in force)" : " (in force: \(inForce.joined(separator: ", ")))"))
            }
            s.entries.removeAll { $0.fault.route == route && (cohort == nil || $0.fault.cohort == cohort) }
            s.serving = s.base.applyingFaults(s.entries.map(\.fault))
            s.publish?(s.serving)
            return (matching.map(\.fault), s.base.version)
        }
        for f in removed { record(f, action: "cleared", version: version, cause: cause) }
        return removed
    }

    /// Ends the drills whose time is up (the expiry thread calls this; tests call it with their clock).
    public func expire() {
        let now = monotonic()
        var ended: [Entry] = []
        let version = state.withLock { s -> UInt64 in
            ended = s.entries.filter { $0.deadline <= now }
            guard !ended.isEmpty else { return s.base.version }
            s.entries.removeAll { $0.deadline <= now }
            s.serving = s.base.applyingFaults(s.entries.map(\.fault))
            s.publish?(s.serving)
            return s.base.version
        }
        for e in ended { record(e.fault, action: "expired", version: version, cause: "the drill's time is up", extra: ["since": e.since]) }
    }

    /// Starts the expiry thread (checks every 100 ms). Idempotent.
    public func start() throws(AdminError) {
        let stop = StopSignal()
        var failure: AdminError?
        state.withLock { s in
            guard s.thread == nil else { return }
            do throws(AdminError) {
                s.thread = try ControlThread.spawn { [weak self] in
                    while !stop.sleep(nanos: 100_000_000) {
                        guard let controller = self else { return }
                        controller.expire()
                    }
                }
                s.stop = stop
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// Stops the expiry thread and waits for it. Idempotent.
    public func stop() {
        let running = state.withLock { s -> (pthread_t, StopSignal)? in
            defer { s.thread = nil; s.stop = nil }
            guard let t = s.thread, let stop = s.stop else { return nil }
            return (t, stop)
        }
        guard let (thread, stop) = running else { return }
        stop.stop()
        if pthread_equal(thread, pthread_self()) == 0 { pthread_join(thread, nil) } else { pthread_detach(thread) }
    }

    /// Records a `fault` event.
    private func record(_ f: RuntimeFault, action: String, version: UInt64, cause: String, extra: [String: String] = [:]) {
        var details = extra
        details["route"] = f.route
        details["cohort"] = f.cohort ?? "*"
        details["action"] = action
        details["fault"] = f.injects
            + (f.whenHeader.map { " of requests carrying \($0)" } ?? "") + (f.countInGates ? "" : ", not counted in the gates")
        events.record(.fault, oldVersion: version, newVersion: version, cause: cause, details: details)
    }
}
