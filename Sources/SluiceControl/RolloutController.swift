#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// Runs the automated canary rollouts: one `RolloutMachine` per route with a `rollout:`,
/// evaluated every `interval` on the windowed statistics of `MetricsHub`, driven by operator
/// commands, and carried out through `RoutingController` (so every split it sets is a
/// versioned change with an event and a state-file write).
///
/// - **Evaluation** (`tick`, from its own thread, when an evaluation is due): for each progressing
///   rollout whose evaluation is due, the step window's figures of both cohorts go to the
///   machine; a split it decides is applied with `RoutingController.applyRollout` (a step's
///   share as a split; a rollback as an abort: everything to the baseline, rules included), and
///   the machine moves on only when that change was made. Breaches and changes are `rollout`
///   events with the numbers.
/// - **Persistence**: every rollout's snapshot is in the state file, written with the split it
///   set, after every evaluation while progressing, after every command and at `stop`. At start
///   a rollout resumes from it (event `resumed after restart at step 3 ...`); a restart never
///   raises the canary's share.
/// - **Other changes of the routing** (the controller's observer): a manual split, switch or
///   clear of a route with a progressing rollout pauses it, a manual abort aborts it; a reload
///   keeps each machine whose spec is unchanged and restores the others on the new spec; a
///   progressing rollout whose route's split is no longer its step's share (a reload or a
///   rollback changed it) is paused, never fought.
///
/// Thread-safe: one lock over all rollouts, taken before the routing controller's (never the
/// other way round: the routing controller tells its observer after releasing its locks).
/// Control plane only.
public final class RolloutController: Sendable {
    /// The routing controller whose splits the rollouts set.
    public let routing: RoutingController
    /// Where the statistics come from.
    public let hub: MetricsHub

    /// Monotonic nanoseconds (the machines' `now`).
    let clock: @Sendable () -> UInt64
    /// Wall-clock Unix nanoseconds (times shown in the status).
    private let wallClock: @Sendable () -> UInt64

    /// One route's rollout.
    struct Entry: Sendable {
        var machine: RolloutMachine
        var transitions = RolloutTransitionCounts()
        /// When the next evaluation is due (monotonic; meaningful while progressing).
        var nextEvaluation: UInt64 = 0
        /// The window (seconds) of the last evaluation.
        var lastWindowSeconds: Int?
        /// Why the last split change the rollout wanted could not be made (cleared by the next success).
        var lastError: String?
    }

    /// Everything behind the lock.
    struct State: Sendable {
        /// Rollouts by route name.
        var entries: [String: Entry] = [:]
        /// Route names in the table's order (status and metrics).
        var order: [String] = []
        /// Why the state file could not be written last time (nil when it was).
        var persistWarning: String?
    }

    let state = ControlLock(State())
    /// With `cluster:`: which routes this replica leads and the fleet's statistics (`RolloutController+Cluster.swift`).
    let fleet = ControlLock<FleetHooks?>(nil)
    private let runner = ControlLock<(thread: pthread_t, stop: StopSignal)?>(nil)

    /// Rollouts for the routes of `routing`'s table, resumed from the snapshots of its state
    /// file; statistics from `hub` (whose retention is extended to the longest step).
    public convenience init(routing: RoutingController, hub: MetricsHub) {
        self.init(routing: routing, hub: hub, clock: { ControlClock.monotonicNanos() }, wallClock: { ControlClock.unixNanos() })
    }

    /// `init(routing:hub:)` with chosen clocks (tests: a manual monotonic clock, and samples
    /// of `hub` taken by the test with the same clock).
    package init(routing: RoutingController, hub: MetricsHub, clock: @escaping @Sendable () -> UInt64,
                 wallClock: @escaping @Sendable () -> UInt64) {
        self.routing = routing
        self.hub = hub
        self.clock = clock
        self.wallClock = wallClock
        let now = clock()
        state.withLock { s in
            let (table, overrides) = routing.snapshot()
            let saved = routing.rolloutSnapshots
            for route in table.routes {
                guard let spec = route.rollout else { continue }
                s.order.append(route.name)
                if let snapshot = saved[route.name] {
                    let (machine, output) = RolloutMachine.restoring(spec: spec, snapshot: snapshot, now: now)
                    s.entries[route.name] = Entry(machine: machine)
                    adopt(&s, route: route.name, output: output, hasOverride: overrides[route.name] != nil, now: now)
                } else {
                    s.entries[route.name] = Entry(machine: RolloutMachine(spec: spec))
                }
            }
            extendRetention(s)
            if !saved.isEmpty || !s.entries.isEmpty { persist(&s, now: now) }
        }
        routing.observe { [weak self] result, cause in self?.routingChanged(result, cause: cause) }
    }

    deinit {
        stop(persisting: false)
    }

    /// The sample interval a hub serving `table`'s rollouts needs: `standard` (5 s), or half the
    /// shortest rollout `interval` when that is shorter (at least 250 ms), so each evaluation sees
    /// new figures. Fixed when the hub is created (a reload does not change it).
    public static func sampleInterval(for table: RoutingTable, standard: UInt64 = 5_000_000_000) -> UInt64 {
        guard let shortest = table.routes.compactMap({ $0.rollout?.interval }).min() else { return standard }
        return min(standard, max(250_000_000, shortest / 2))
    }

    // MARK: Running

    /// Starts the evaluation thread. Idempotent.
    public func start() throws(AdminError) {
        var failure: AdminError?
        runner.withLock { current in
            guard current == nil else { return }
            let stop = StopSignal()
            do throws(AdminError) {
                // Weak: dropping the controller ends the thread too.
                let thread = try ControlThread.spawn { [weak self] in
                    while true {
                        guard let wait = self?.untilNextEvaluation() else { return }
                        if stop.sleep(nanos: wait) { return }
                        guard let controller = self else { return }
                        controller.tick(now: controller.clock())
                    }
                }
                current = (thread, stop)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// Stops the evaluation thread, waits for it, and saves every rollout's snapshot.
    public func stop() {
        stop(persisting: true)
    }

    private func stop(persisting: Bool) {
        let running = runner.withLock { current -> (thread: pthread_t, stop: StopSignal)? in
            defer { current = nil }
            return current
        }
        if let running {
            running.stop.stop()
            if pthread_equal(running.thread, pthread_self()) == 0 {
                pthread_join(running.thread, nil)
            } else {
                pthread_detach(running.thread)
            }
        }
        if persisting {
            let now = clock()
            state.withLock { persist(&$0, now: now) }
        }
    }

    /// How long the thread sleeps: until the earliest due evaluation, between 10 and 250 ms
    /// (so a rollout started meanwhile is seen soon).
    private func untilNextEvaluation() -> UInt64 {
        let now = clock()
        let due = state.withLock { s in
            s.entries.values.compactMap { e -> UInt64? in
                if case .progressing = e.machine.state { return e.nextEvaluation }
                return nil
            }.min()
        }
        let wait = due.map { $0 > now ? $0 - now : 0 } ?? 250_000_000
        return min(max(wait, 10_000_000), 250_000_000)
    }

    /// Evaluates every progressing rollout whose evaluation is due at `now` (monotonic
    /// nanoseconds). The evaluation thread calls it; tests call it with a manual clock.
    public func tick(now: UInt64) {
        let hooks = fleet.withLock { $0 }
        state.withLock { s in
            var evaluated = false
            for route in s.order {
                guard let e = s.entries[route], case .progressing = e.machine.state, now >= e.nextEvaluation else { continue }
                // With `cluster:`, only the route's leader evaluates (the others stand by).
                if let hooks, !hooks.leads(route) { continue }
                evaluate(&s, route: route, now: now)
                evaluated = true
            }
            if evaluated { persist(&s, now: now) }
        }
    }

    // MARK: Evaluation

    /// One evaluation of `route` (progressing, due). Caller holds the lock and persists.
    private func evaluate(_ s: inout State, route: String, now: UInt64) {
        guard var e = s.entries[route] else { return }
        let (table, _) = routing.snapshot()
        guard let r = table.routeIndex(named: route) else { return }
        let spec = e.machine.spec
        if spec.canaryWeight(in: table.routes[r]) != e.machine.canaryWeight {
            pauseForForeignSplit(&s, route: route, table: table, now: now, why: "the route's split was changed outside the rollout")
            return
        }
        let seconds = e.machine.evaluationWindowSeconds(now: now)
        let window = fleet.withLock { $0 }?.window() ?? hub.statsWindow
        let canary = window.stats(route: route, cohort: spec.canary, window: seconds).map(RolloutStats.init)
        let baseline = window.stats(route: route, cohort: spec.baseline, window: seconds).map(RolloutStats.init)
        var next = e.machine
        let out = next.evaluate(now: now, canary: canary, baseline: baseline)
        var change: ChangeResult?
        if let weight = out.canaryWeight {
            do throws(ControlError) {
                change = try apply(s, route: route, machine: next, weight: weight, cause: out.splitCause(route: route, spec: spec),
                                   version: table.version, now: now)
            } catch {
                // Not carried out: the machine stays where it was and the next evaluation decides again.
                e.lastError = "could not apply \(out.splitCause(route: route, spec: spec)): \(error)"
                e.nextEvaluation = now &+ min(spec.interval, 1_000_000_000)
                s.entries[route] = e
                return
            }
        }
        e.machine = next
        e.transitions.record(out)
        e.lastWindowSeconds = seconds
        e.lastError = nil
        // Evaluations fall at the step's start + k * interval: a new step (whose clock started
        // now) realigns them, and a late tick does not shift them.
        if out.from != out.to || e.nextEvaluation &+ spec.interval <= now {
            e.nextEvaluation = now &+ spec.interval
        } else {
            e.nextEvaluation = e.nextEvaluation &+ spec.interval
        }
        s.entries[route] = e
        if out.changed || out.isBreach {
            record(route: route, out, change: change, version: table.version,
                   details: ["window": "\(seconds)s", spec.canary: Self.figures(canary), spec.baseline: Self.figures(baseline)])
        }
    }

    /// Pauses a progressing rollout whose route's split is not its step's share (someone else
    /// changed it); the split is left as it is. Caller holds the lock.
    private func pauseForForeignSplit(_ s: inout State, route: String, table: RoutingTable, now: UInt64, why: String) {
        guard var e = s.entries[route], case .progressing = e.machine.state,
              let r = table.routeIndex(named: route) else { return }
        let spec = e.machine.spec
        let current = spec.canaryWeight(in: table.routes[r]) ?? 0
        guard current != e.machine.canaryWeight else { return }
        let want = e.machine.canaryWeight ?? 0
        let out = e.machine.handle(.pause, now: now)
        e.transitions.record(out)
        s.entries[route] = e
        record(route: route, out, change: nil, version: table.version,
               note: "\(why) (\(spec.canary) now \(CohortWeight.percentText(current))%, the step's share is "
                   + "\(CohortWeight.percentText(want))%); `sluice rollout resume \(route)` applies the step's share again")
    }

    // MARK: Commands

    /// Applies an operator command to `route`'s rollout and returns what it did. Throws
    /// `.invalidChange` for an unknown route, `.conflict` (409) for a route without a rollout or a
    /// command that does not apply now (with the machine's reason), and the routing
    /// controller's errors when the split cannot be changed.
    public func command(_ command: RolloutCommand, route: String, cause: String) throws(ControlError) -> RolloutCommandResult {
        let now = clock()
        return try state.withLock { s throws(ControlError) -> RolloutCommandResult in
            let (table, overrides) = routing.snapshot()
            guard var e = s.entries[route] else {
                if table.routeIndex(named: route) == nil {
                    throw .invalidChange(.unknownRoute(route, known: table.routes.map(\.name)))
                }
                throw .conflict("route `\(route)` has no rollout (add a `rollout:` to it in the config)")
            }
            guard let r = table.routeIndex(named: route) else {
                throw .invalidChange(.unknownRoute(route, known: table.routes.map(\.name)))
            }
            let spec = e.machine.spec
            var next = e.machine
            let out = next.handle(command, now: now)
            guard out.accepted else { throw .conflict(out.decision.summary) }
            let current = spec.canaryWeight(in: table.routes[r]) ?? 0
            var change: ChangeResult?
            // The share the new state implies, when the split is not that already (a resumed
            // step whose split was changed meanwhile gets its share back).
            if let want = out.canaryWeight ?? (command == .resume ? next.canaryWeight : nil) {
                let terminal = next.state == .rolledBack || next.state == .aborted
                if want != current || (terminal && overrides[route]?.kind != .abort) {
                    change = try apply(s, route: route, machine: next, weight: want,
                                       cause: out.splitCause(route: route, spec: spec) + " (\(cause))",
                                       version: table.version, now: now)
                }
            }
            let before = s.entries[route]
            e.machine = next
            e.transitions.record(out)
            e.lastError = nil
            if case .progressing = next.state { e.nextEvaluation = now &+ spec.interval }
            s.entries[route] = e
            if change == nil {
                persist(&s, now: now)
                // With `cluster:`, a command the fleet did not take is refused, not kept here alone.
                if let refusal = fleetRefusal(s.persistWarning) {
                    s.entries[route] = before
                    throw refusal
                }
            }
            record(route: route, out, change: change, version: table.version, details: ["by": cause])
            return RolloutCommandResult(route: route, command: command.rawValue, decision: out.decision.summary,
                                        status: status(s, route: route, now: now)!, change: change)
        }
    }

    // MARK: Reading

    /// The rollout of `route` now (nil when the route has none).
    public func status(route: String) -> RolloutStatus? {
        let now = clock()
        return state.withLock { status($0, route: route, now: now) }
    }

    /// Every rollout now, in the table's route order.
    public func statuses() -> [RolloutStatus] {
        let now = clock()
        return state.withLock { s in s.order.compactMap { status(s, route: $0, now: now) } }
    }

    /// The machine of `route` (nil when the route has no rollout).
    public func machine(route: String) -> RolloutMachine? {
        state.withLock { $0.entries[route]?.machine }
    }

    /// The rollout metrics (`sluice_rollout_*`), empty without rollouts.
    public func renderMetrics() -> String {
        let entries = state.withLock { s in
            s.order.compactMap { route in
                s.entries[route].map { RolloutExposition.Entry(route: route, machine: $0.machine, transitions: $0.transitions) }
            }
        }
        return entries.isEmpty ? "" : RolloutExposition.render(entries)
    }

    private func status(_ s: State, route: String, now: UInt64) -> RolloutStatus? {
        guard let e = s.entries[route] else { return nil }
        let table = routing.table
        let current = table.routeIndex(named: route).flatMap { e.machine.spec.canaryWeight(in: table.routes[$0]) }
        let wallNow = wallClock()
        return RolloutStatus(route: route, machine: e.machine, now: now, splitCanaryWeight: current,
                             windowSeconds: e.lastWindowSeconds,
                             nextEvaluation: e.machine.state.phase == .progressing ? e.nextEvaluation : nil,
                             warnings: [e.lastError, s.persistWarning, fleet.withLock { $0 }?.pauseReason(route)].compactMap { $0 },
                             wallTime: { t in
                                 let ago = now > t ? now - t : 0
                                 return wallNow > ago ? wallNow - ago : 0
                             })
    }

    // MARK: Changes made elsewhere

    /// Told by the routing controller after each change made through its public methods.
    private func routingChanged(_ result: ChangeResult, cause: String) {
        let now = clock()
        state.withLock { s in
            switch result.kind {
            case .reload, .rollback:
                adoptConfig(&s, now: now)
            case .split, .switch, .clear, .abort:
                guard let route = result.route, var e = s.entries[route] else { break }
                let command: RolloutCommand
                switch (result.kind, e.machine.state) {
                case (.abort, .progressing), (.abort, .paused), (.abort, .promoted): command = .abort
                case (.split, .progressing), (.switch, .progressing), (.clear, .progressing): command = .pause
                default: return
                }
                // The operator's change stands: only the machine's state follows it.
                let out = e.machine.handle(command, now: now)
                guard out.accepted else { return }
                e.transitions.record(out)
                s.entries[route] = e
                record(route: route, out, change: nil, version: result.version,
                       note: "the route was changed by `\(result.kind.rawValue)` (version \(result.version), \(cause))",
                       details: ["by": cause])
            default:
                return
            }
            persist(&s, now: now)
        }
    }

    /// After a reload or rollback: rollouts for the routes of the new table (kept, restored on a
    /// changed spec, new, or gone), then a pause for every progressing rollout whose split is not
    /// its share any more. Caller holds the lock.
    private func adoptConfig(_ s: inout State, now: UInt64) {
        let (table, overrides) = routing.snapshot()
        var entries: [String: Entry] = [:]
        var order: [String] = []
        var restored: [(route: String, output: RolloutOutput)] = []
        for route in table.routes {
            guard let spec = route.rollout else { continue }
            order.append(route.name)
            if let old = s.entries[route.name], old.machine.spec == spec {
                entries[route.name] = old
            } else if let old = s.entries[route.name] {
                let (machine, output) = RolloutMachine.restoring(spec: spec, snapshot: old.machine.snapshot(now: now),
                                                                 now: now, after: .reload)
                var e = Entry(machine: machine)
                e.transitions = old.transitions
                entries[route.name] = e
                restored.append((route.name, output))
            } else {
                entries[route.name] = Entry(machine: RolloutMachine(spec: spec))
            }
        }
        for (route, old) in s.entries where entries[route] == nil && old.machine.state.phase != .pending {
            routing.events.record(.rollout, oldVersion: table.version, newVersion: nil,
                                  cause: "rollout of route `\(route)` removed from the config while \(old.machine.state); "
                                      + "the split stays as it is",
                                  details: ["route": route, "state": old.machine.state.phase.rawValue])
        }
        s.entries = entries
        s.order = order
        extendRetention(s)
        for r in restored {
            adopt(&s, route: r.route, output: r.output, hasOverride: overrides[r.route] != nil, now: now)
        }
        let serving = routing.table
        for route in order {
            pauseForForeignSplit(&s, route: route, table: serving, now: now,
                                 why: "the route's split was changed by a reload or rollback")
        }
    }

    /// Carries out a restored machine's output (at start, or on a reload that changed the spec):
    /// applies its share when that lowers the canary's (a restart never raises it), pauses a
    /// progressing rollout whose route's split is another, and records the event. Caller holds the lock.
    private func adopt(_ s: inout State, route: String, output: RolloutOutput, hasOverride: Bool, now: UInt64) {
        guard var e = s.entries[route] else { return }
        let table = routing.table
        guard let r = table.routeIndex(named: route) else { return }
        let spec = e.machine.spec
        let current = spec.canaryWeight(in: table.routes[r]) ?? 0
        var note: String?
        var change: ChangeResult?
        if let want = output.canaryWeight, want != current {
            if want < current {
                do throws(ControlError) {
                    change = try apply(s, route: route, machine: e.machine, weight: want,
                                       cause: output.splitCause(route: route, spec: spec), version: table.version, now: now)
                } catch {
                    note = "could not set \(spec.canary) to \(CohortWeight.percentText(want))%: \(error)"
                    e.lastError = note
                }
            } else {
                let why = hasOverride ? "the route's split is another" : "the config file's split is in force"
                note = "\(why) (\(spec.canary) \(CohortWeight.percentText(current))%, not \(CohortWeight.percentText(want))%)"
                if case .progressing = e.machine.state {
                    let paused = e.machine.handle(.pause, now: now)
                    e.transitions.record(paused)
                    note! += ": paused; `sluice rollout resume \(route)` applies the step's share"
                }
            }
        }
        if case .progressing = e.machine.state { e.nextEvaluation = now &+ spec.interval }
        s.entries[route] = e
        record(route: route, output, change: change, version: table.version, note: note)
    }

    // MARK: Helpers

    /// Sets `route`'s split to `weight` for `machine` (an abort when it rolled back or was
    /// aborted), with every snapshot (this route's from `machine`) in the same state-file write.
    private func apply(_ s: State, route: String, machine: RolloutMachine, weight: Int, cause: String, version: UInt64,
                       now: UInt64) throws(ControlError) -> ChangeResult {
        var snapshots = Self.snapshots(s, now: now)
        if machine.state.phase == .pending {
            snapshots[route] = nil
        } else {
            snapshots[route] = machine.snapshot(now: now)
        }
        let split: RoutingController.RolloutSplit = machine.state == .rolledBack || machine.state == .aborted
            ? .abort : .split(machine.spec.splitWeights(canaryWeight: weight))
        return try routing.applyRollout(route: route, split, cause: cause, rollouts: snapshots, ifVersion: version)
    }

    /// Every started rollout's snapshot (pending ones start pending anyway).
    private static func snapshots(_ s: State, now: UInt64) -> [String: RolloutSnapshot] {
        var out: [String: RolloutSnapshot] = [:]
        for (route, e) in s.entries where e.machine.state.phase != .pending { out[route] = e.machine.snapshot(now: now) }
        return out
    }

    /// Writes every snapshot to the state file (unless there is nothing to write or remove).
    private func persist(_ s: inout State, now: UInt64) {
        let snapshots = Self.snapshots(s, now: now)
        if snapshots.isEmpty && routing.rolloutSnapshots.isEmpty { return }
        s.persistWarning = routing.saveRollouts(snapshots)
    }

    /// Keeps the statistics for the longest step window plus a sample and a second of rounding.
    private func extendRetention(_ s: State) {
        guard let longest = s.entries.values.map(\.machine.spec.stepDuration).max() else { return }
        hub.extendRetention(to: longest &+ hub.sampleInterval &+ 1_000_000_000)
        fleet.withLock { $0 }?.extendRetention(longest &+ hub.sampleInterval &+ 1_000_000_000)
    }

    /// Records a `rollout` event for `out`: its summary (and `note`) as the cause.
    private func record(route: String, _ out: RolloutOutput, change: ChangeResult?, version: UInt64, note: String? = nil,
                        details: [String: String] = [:]) {
        var d = details
        d["route"] = route
        d["from"] = out.from.description
        d["to"] = out.to.description
        if let step = out.decision.step { d["step"] = "\(step + 1)" }
        if let change { d["split"] = change.split ?? "" }
        let cause = note.map { "\(out.decision.summary); \($0)" } ?? out.decision.summary
        routing.events.record(.rollout, oldVersion: change?.oldVersion ?? version, newVersion: change?.version,
                              cause: cause, details: d)
    }

    /// `412 requests, 3 errors, p99 12.5ms` (or `no data`).
    static func figures(_ stats: RolloutStats?) -> String {
        guard let stats else { return "no data" }
        let p99 = stats.p99.map { ", p99 " + RolloutFormat.duration(nanos: $0) } ?? ""
        return "\(stats.requests) requests, \(stats.errors) errors\(p99)"
    }
}
