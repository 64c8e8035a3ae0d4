import SluiceCore

/// What the rollout controller asks the fleet (with `cluster:`).
struct FleetHooks: Sendable {
    /// True when this replica leads the route's rollout (and etcd is reachable).
    var leads: @Sendable (String) -> Bool
    /// The fleet's windowed statistics (every replica's counters summed).
    var window: @Sendable () -> StatsWindow
    /// Keeps the fleet window long enough for the longest step.
    var extendRetention: @Sendable (UInt64) -> Void
    /// Why this replica's evaluations of the route are paused, if they are (etcd unreachable).
    var pauseReason: @Sendable (String) -> String?
}

extension RolloutController {
    /// Runs the rollouts as one fleet through `store`: only the leader of a route evaluates it,
    /// on the fleet's summed statistics; every replica publishes its own counters of the rollout
    /// routes; every replica's machines follow the fleet's snapshots (so `sluice rollout status`
    /// agrees everywhere and a new leader continues where the old one was, its step and the
    /// time spent at it kept).
    public func joinFleet(_ store: ClusterStore) {
        fleet.withLock {
            $0 = FleetHooks(leads: { store.leads($0) }, window: { store.fleetWindow },
                            extendRetention: { store.extendRetention(to: $0) },
                            pauseReason: { _ in
                                store.isConnected ? nil
                                    : "evaluations paused: the cluster store (etcd) is unreachable, so no replica can change the split"
                            })
        }
        store.feed(routes: { [weak self] in self?.state.withLock { $0.order } ?? [] },
                   counters: { [weak self] in self?.localCounters() ?? [] })
        store.observeLeadership { [weak self] route, leads in self?.leadershipChanged(route: route, leads: leads) }
        routing.observeFleetRollouts { [weak self] snapshots, node in self?.adoptFleetSnapshots(snapshots, by: node) }
        let longest = state.withLock { s in s.entries.values.map(\.machine.spec.stepDuration).max() }
        if let longest { store.extendRetention(to: longest &+ hub.sampleInterval &+ 1_000_000_000) }
        adoptFleetSnapshots(routing.rolloutSnapshots)
    }

    /// This replica's cumulative counters of the routes with a rollout.
    func localCounters() -> [FleetCounters.Series] {
        let routes = Set(state.withLock { $0.order })
        guard !routes.isEmpty else { return [] }
        let (names, totals) = hub.snapshot()
        var out: [FleetCounters.Series] = []
        for (i, labels) in names.series.enumerated() where i < totals.seriesCount && routes.contains(labels.route) && !labels.cohort.isEmpty {
            out.append(FleetCounters.Series(
                route: labels.route, cohort: labels.cohort, requests: totals.requests(series: i),
                errors: totals.serverErrors(series: i), upstreamErrors: totals.upstreamErrors(series: i),
                latency: totals.latencyBuckets(series: i).map { [UInt64($0.index), $0.count] }))
        }
        return out
    }

    /// Follows snapshots written by another replica: each machine whose state, step or share
    /// differs is restored from the fleet's snapshot (time spent at the step kept).
    func adoptFleetSnapshots(_ snapshots: [String: RolloutSnapshot], by node: String? = nil) {
        let now = clock()
        state.withLock { s in
            for route in s.order {
                guard var e = s.entries[route], let fleet = snapshots[route] else { continue }
                let mine = e.machine.snapshot(now: now)
                if mine.state == fleet.state && mine.step == fleet.step && mine.canaryWeight == fleet.canaryWeight
                    && mine.consecutiveFailures == fleet.consecutiveFailures && mine.lastDecision == fleet.lastDecision {
                    continue
                }
                let (machine, _) = RolloutMachine.restoring(spec: e.machine.spec, snapshot: fleet, now: now, after: .fleet)
                // The fleet's events: the decision another replica took, recorded here too.
                if let node, mine.lastDecision != fleet.lastDecision, !fleet.lastDecision.isEmpty {
                    routing.events.record(.rollout, oldVersion: nil, newVersion: nil, cause: "\(fleet.lastDecision) (by \(node))",
                                          details: ["route": route, "node": node, "to": fleet.state.rawValue])
                }
                e.machine = machine
                if case .progressing = machine.state { e.nextEvaluation = now &+ machine.spec.interval }
                s.entries[route] = e
            }
        }
    }

    /// The error for a rollout command whose snapshot the fleet did not take (`saveRollouts`'s
    /// warning), nil when it was taken (or there is no fleet).
    func fleetRefusal(_ warning: String?) -> ControlError? {
        guard let warning, fleet.withLock({ $0 }) != nil else { return nil }
        if warning.hasPrefix(RoutingController.staleRolloutsWarning) {
            return .conflict("stale change refused: another replica changed the fleet's rollouts meanwhile; "
                             + "this replica follows the fleet's state: look at `sluice rollout status` and decide again")
        }
        if warning.hasPrefix(RoutingController.unreachableRolloutsWarning) {
            return .clusterUnavailable(RoutingController.unreachableText(
                String(warning.dropFirst(RoutingController.unreachableRolloutsWarning.count))))
        }
        return nil
    }

    /// A leadership taken: the next evaluation one interval from now, on the machine as the
    /// fleet last saved it.
    func leadershipChanged(route: String, leads: Bool) {
        guard leads else { return }
        let now = clock()
        state.withLock { s in
            guard var e = s.entries[route], case .progressing = e.machine.state else { return }
            e.nextEvaluation = now &+ e.machine.spec.interval
            s.entries[route] = e
        }
    }
}
