import Foundation
import Synchronization
import SluiceControl
import SluiceCore
import Testing

/// The rollout controller with the real routing controller and state file, statistics recorded
/// into a real metrics hub's shard and sampled by the test, and a manual monotonic clock.
@Suite struct RolloutControllerTests {
    static let second: UInt64 = 1_000_000_000

    /// Route `web` (stable/canary, a rule sending `X-Canary: always` to the canary) with a rollout:
    /// steps 10, 50, 100; a minute per step, evaluated every 10 s; min 100 requests; error rate at most 1%.
    static func yaml(steps: String = "[10, 50, 100]", split: String = "stable: 100, canary: 0", onFailure: String = "rollback") -> String {
        """
        listeners:
          - name: public
            address: 127.0.0.1:8080
        state_file: sluice.state.json
        upstreams:
          stable: { endpoints: ["127.0.0.1:9001"] }
          canary: { endpoints: ["127.0.0.1:9003"] }
        routes:
          - name: web
            baseline: stable
            sticky: none
            rules:
              - match: { header: { name: X-Canary, value: always } }
                cohort: canary
            split: { \(split) }
            rollout:
              canary: canary
              steps: \(steps)
              step_duration: 60s
              interval: 10s
              min_requests: 100
              gates:
                - { metric: error_rate, max: 1% }
                - { metric: error_rate, relative_to_baseline: { max_increase: 1% } }
              failure_limit: 2
              on_failure: \(onFailure)
        """
    }

    /// A manual monotonic clock (seconds, as nanoseconds).
    final class Clock: Sendable {
        private let value: Mutex<UInt64>
        init(seconds: UInt64) { value = Mutex(seconds * RolloutControllerTests.second) }
        var now: UInt64 { value.withLock { $0 } }
        func set(seconds: UInt64) { value.withLock { $0 = seconds * RolloutControllerTests.second } }
    }

    /// A routing controller over the config in `dir`, a hub sampled by hand and a rollout controller.
    struct Rig {
        let base: ControllerRig
        let hub: MetricsHub
        let clock: Clock
        let rollouts: RolloutController
        var routing: RoutingController { base.controller }

        init(dir: TempDir? = nil, yaml: String = RolloutControllerTests.yaml(), startSeconds: UInt64 = 1_000) throws {
            base = try ControllerRig(yaml: yaml, dir: dir)
            hub = MetricsHub(workers: 1, listenerNames: ["public"], buildVersion: "test")
            clock = Clock(seconds: startSeconds)
            let clock = self.clock
            rollouts = RolloutController(routing: base.controller, hub: hub, clock: { clock.now },
                                         wallClock: { 1_700_000_000 * RolloutControllerTests.second + clock.now })
            hub.sample(now: clock.now)
        }

        /// `canary` and `stable` requests (with that many 500s) recorded, then the clock moved to
        /// `seconds`, a sample taken and the rollout controller ticked.
        func advance(to seconds: UInt64, canary: Int = 50, canaryErrors: Int = 0, stable: Int = 450) {
            let table = routing.table
            let map = hub.seriesMap(for: table)
            let r = table.routeIndex(named: "web")!
            let cohorts = table.routes[r].cohorts
            let shard = hub.shard(worker: 0)
            for (name, count, errors) in [("canary", canary, canaryErrors), ("stable", stable, 0)] {
                let series = map.cohortSeries[r][cohorts.firstIndex { $0.name == name }!]
                for i in 0..<count {
                    shard.recordRequest(series: series, status: i < errors ? 500 : 200, durationNanos: 2_000_000,
                                        bytesIn: 100, bytesOut: 100)
                }
            }
            clock.set(seconds: seconds)
            hub.sample(now: clock.now)
            rollouts.tick(now: clock.now)
        }

        var state: RolloutState? { rollouts.machine(route: "web")?.state }
        var rolloutEvents: [RoutingEvent] { base.events.recent().filter { $0.kind == .rollout } }
    }

    @Test func restartMidStepResumesAtTheSameStepWithTheTimeSpent() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        do {
            let rig = try Rig(dir: dir)
            #expect(rig.state == .pending)
            let started = try rig.rollouts.command(.start, route: "web", cause: "test")
            #expect(started.decision == "started at step 1 (10%) of 3 steps")
            #expect(started.change?.split == "stable=90% canary=10%")
            #expect(rig.base.weights() == ["stable": 90, "canary": 10])
            // Healthy: held for a minute, promoted at the first evaluation at or after 60 s.
            for t in stride(from: UInt64(1_010), through: 1_050, by: 10) {
                rig.advance(to: t)
                #expect(rig.state == .progressing(step: 0), "at \(t)")
            }
            rig.advance(to: 1_060)
            #expect(rig.state == .progressing(step: 1))
            #expect(rig.base.weights() == ["stable": 50, "canary": 50])
            #expect(rig.rolloutEvents.last?.cause.hasPrefix("step 1 (10%) healthy for 1m (error_rate canary 0% <= 1%") == true,
                    "\(rig.rolloutEvents.last?.cause ?? "")")
            rig.advance(to: 1_070)
            rig.advance(to: 1_080)
            rig.clock.set(seconds: 1_085)
            rig.rollouts.stop()   // what `sluice run` does on SIGTERM: saves the snapshots
            let saved = try #require(try RuntimeStateFile.read(path: dir.file("sluice.state.json")))
            #expect(saved.rollouts["web"] == RolloutSnapshot(
                state: .progressing, step: 1, canaryWeight: 5_000, elapsedAtStep: 25 * Self.second, consecutiveFailures: 0,
                lastDecision: rig.rollouts.machine(route: "web")!.lastDecision!.summary))
            #expect(saved.overrides["web"]?.weights.map(\.weight) == [5_000, 5_000])
        }
        // A new process: another monotonic clock, no statistics yet.
        let rig = try Rig(dir: dir, startSeconds: 50)
        let version = rig.routing.version
        #expect(rig.state == .progressing(step: 1))
        #expect(rig.rollouts.machine(route: "web")!.elapsedAtStep(now: rig.clock.now) == 25 * Self.second)
        #expect(rig.base.weights() == ["stable": 50, "canary": 50], "the split came back with the override")
        let resumed = try #require(rig.rolloutEvents.last)
        #expect(resumed.cause.hasPrefix("resumed after restart at step 2 (50%) with 25s of 1m spent; before the restart: healthy at step 2"),
                "\(resumed.cause)")
        #expect(rig.rollouts.status(route: "web")?.timeAtStep == "25s")
        // 35 s more of healthy traffic finish the step: promoted at the first evaluation at or after 60 s at the step.
        for t in stride(from: UInt64(60), through: 80, by: 10) {
            rig.advance(to: t)
            #expect(rig.state == .progressing(step: 1), "at \(t)")
        }
        #expect(rig.routing.version == version, "no split was published meanwhile")
        rig.advance(to: 90)
        #expect(rig.state == .promoted)
        #expect(rig.base.weights() == ["stable": 0, "canary": 100])
        #expect(rig.rolloutEvents.last?.cause.hasSuffix("promoted to 100%") == true)
    }

    @Test func aRestartNeverRaisesTheCanarysShare() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        do {
            let rig = try Rig(dir: dir)
            _ = try rig.rollouts.command(.start, route: "web", cause: "test")
            for t in stride(from: UInt64(1_010), through: 1_060, by: 10) { rig.advance(to: t) }
            #expect(rig.state == .progressing(step: 1))
            rig.rollouts.stop()
        }
        // While stopped, the file's split changed: the file wins (the override is dropped), and
        // the rollout waits paused instead of raising the canary back to 50%.
        try dir.write("sluice.yaml", Self.yaml(split: "stable: 95, canary: 5"))
        let rig = try Rig(dir: dir, startSeconds: 10)
        #expect(rig.base.weights() == ["stable": 95, "canary": 5])
        #expect(rig.state == .paused(step: 1))
        let event = try #require(rig.rolloutEvents.last)
        #expect(event.cause.hasPrefix("resumed after restart at step 2 (50%) with 0s of 1m spent"), "\(event.cause)")
        #expect(event.cause.contains("the config file's split is in force (canary 5%, not 50%): paused"), "\(event.cause)")
        // Steps changed while stopped: resumed lower, and the split follows down.
        rig.rollouts.stop()
        try dir.write("sluice.yaml", Self.yaml(steps: "[1, 2, 100]", split: "stable: 95, canary: 5"))
        let lower = try Rig(dir: dir, startSeconds: 20)
        #expect(lower.state == .paused(step: 1))
        #expect(lower.base.weights() == ["stable": 98, "canary": 2])
    }

    @Test func breachRollsBackAfterFailureLimitEvaluationsWithTheNumbers() throws {
        let rig = try Rig()
        defer { rig.base.dir.remove() }
        _ = try rig.rollouts.command(.start, route: "web", cause: "test")
        rig.advance(to: 1_010, canary: 200, canaryErrors: 10)   // 5% > 1%
        #expect(rig.state == .progressing(step: 0))
        #expect(rig.rollouts.machine(route: "web")?.consecutiveFailures == 1)
        let first = try #require(rig.rolloutEvents.last)
        #expect(first.cause == "error_rate canary 5% > 1%, error_rate canary 5% - stable 0% = +5% > +1% (failure 1 of 2): holding step 1 (10%)")
        rig.advance(to: 1_020, canary: 200, canaryErrors: 10)
        #expect(rig.state == .rolledBack)
        // The abort path: everything to the baseline, the X-Canary rule included.
        #expect(rig.base.weights() == ["stable": 100, "canary": 0])
        #expect(rig.routing.overrides["web"]?.kind == .abort)
        #expect(rig.routing.table.ruleCohorts(route: 0) == [0], "the X-Canary rule goes to stable too")
        let event = try #require(rig.rolloutEvents.last)
        #expect(event.cause == "error_rate canary 5% > 1%, error_rate canary 5% - stable 0% = +5% > +1% for 2 evaluations: "
                + "rolled back from step 1 (10%) to 0%")
        #expect(event.details["canary"] == "400 requests, 20 errors, p99 2ms" || event.details["canary"]?.hasPrefix("400 requests, 20 errors") == true)
        #expect(event.newVersion == rig.routing.version)
        // Stays rolled back: later evaluations do nothing.
        rig.advance(to: 1_030)
        #expect(rig.state == .rolledBack)
        // Status and metrics show it.
        let status = try #require(rig.rollouts.status(route: "web"))
        #expect(status.state == "rolled_back" && status.splitCanaryWeight == "0%")
        #expect(status.gates.map(\.verdict) == ["fail", "fail"])
        #expect(status.gates[0].canaryValue == "5%" && status.gates[0].baselineValue == "0%" && status.gates[0].threshold == "1%")
        #expect(status.gates[1].value == "+5%" && status.gates[1].threshold == "+1%")
        let text = status.text(clock: { _ in "14:03:10" })
        #expect(text.contains("why: error_rate canary 5% > 1%, error_rate canary 5% - stable 0% = +5% > +1% for 2 evaluations: "
                              + "rolled back from step 1 (10%) to 0% (at 14:03:10)"), "\(text)")
        #expect(text.contains("error_rate max        5%      0%      5%     1%         fail"), "\(text)")
        let metrics = rig.rollouts.renderMetrics()
        #expect(metrics.contains("sluice_rollout_state{route=\"web\",state=\"rolled_back\"} 1"))
        #expect(metrics.contains("sluice_rollout_transitions_total{route=\"web\",from=\"progressing\",to=\"rolled_back\"} 1"))
        #expect(metrics.contains("sluice_rollout_gate_error_ratio{route=\"web\",cohort=\"canary\"} 0.05"))
        // Commands that do not apply are refused with the reason.
        #expect(throws: ControlError.self) { try rig.rollouts.command(.resume, route: "web", cause: "test") }
        // Started again: from step 1, the split override again (rules back to the canary).
        let again = try rig.rollouts.command(.start, route: "web", cause: "test")
        #expect(again.status.state == "progressing" && rig.base.weights() == ["stable": 90, "canary": 10])
        #expect(rig.routing.overrides["web"]?.kind == .split)
        #expect(rig.routing.table.ruleCohorts(route: 0) == [1])
    }

    @Test func tooLittleTrafficHoldsTheStep() throws {
        let rig = try Rig()
        defer { rig.base.dir.remove() }
        _ = try rig.rollouts.command(.start, route: "web", cause: "test")
        for t in stride(from: UInt64(1_010), through: 1_100, by: 10) { rig.advance(to: t, canary: 5) }
        #expect(rig.state == .progressing(step: 0))
        #expect(rig.rollouts.machine(route: "web")?.lastEvaluation?.summary
                == "not enough data at step 1 (10%): canary 30 of 100 requests; holding")
        #expect(rig.rollouts.status(route: "web")?.gates.map(\.verdict) == ["no_data", "no_data"])
    }

    @Test func statisticsAreSampledOftenEnoughForTheShortestInterval() throws {
        let rig = try Rig()
        defer { rig.base.dir.remove() }
        #expect(RolloutController.sampleInterval(for: rig.routing.table) == 5 * Self.second)
        let fast = try #require(mustLoad(Self.yaml().replacingOccurrences(of: "interval: 10s", with: "interval: 1s")))
        #expect(RolloutController.sampleInterval(for: fast.table) == 500_000_000)
        let none = try #require(mustLoad(controllerYAML()))
        #expect(RolloutController.sampleInterval(for: none.table) == 5 * Self.second)
        // The window is kept for the longest step (1 minute is within the default 5 minutes).
        #expect(rig.hub.retention == 300 * Self.second)
        let long = try Rig(yaml: Self.yaml().replacingOccurrences(of: "step_duration: 60s", with: "step_duration: 1h"))
        defer { long.base.dir.remove() }
        #expect(long.hub.retention == 3_600 * Self.second + 5 * Self.second + Self.second)
    }

    @Test func manualChangesPauseOrAbortAndResumeAppliesTheStepAgain() throws {
        let rig = try Rig()
        defer { rig.base.dir.remove() }
        _ = try rig.rollouts.command(.start, route: "web", cause: "test")
        rig.advance(to: 1_030)
        // A manual split pauses the rollout; the operator's split stands.
        _ = try rig.routing.setSplit(route: "web", weights: split(["stable": 97, "canary": 3]), cause: "operator")
        #expect(rig.state == .paused(step: 0))
        #expect(rig.base.weights() == ["stable": 97, "canary": 3])
        #expect(rig.rolloutEvents.last?.cause.contains("the route was changed by `split`") == true)
        // Paused: the clock stops, evaluations do nothing.
        rig.advance(to: 1_200)
        #expect(rig.state == .paused(step: 0))
        #expect(rig.rollouts.machine(route: "web")!.elapsedAtStep(now: rig.clock.now) == 30 * Self.second)
        // Resume puts the step's share back.
        let resumed = try rig.rollouts.command(.resume, route: "web", cause: "test")
        #expect(resumed.change?.split == "stable=90% canary=10%")
        #expect(rig.state == .progressing(step: 0))
        // A manual abort aborts it.
        _ = try rig.routing.abort(route: "web", cause: "operator")
        #expect(rig.state == .aborted)
        #expect(rig.routing.overrides["web"]?.kind == .abort)
        // Promote from aborted: canary 100%.
        let promoted = try rig.rollouts.command(.promote, route: "web", cause: "test")
        #expect(promoted.status.state == "promoted" && rig.base.weights() == ["stable": 0, "canary": 100])
    }

    @Test func reloadKeepsOrRestoresTheMachineAndASplitChangedByTheFilePausesIt() throws {
        let rig = try Rig()
        defer { rig.base.dir.remove() }
        _ = try rig.rollouts.command(.start, route: "web", cause: "test")
        for t in stride(from: UInt64(1_010), through: 1_060, by: 10) { rig.advance(to: t) }
        #expect(rig.state == .progressing(step: 1))
        rig.advance(to: 1_070)
        // Same spec (a comment changed): the machine is kept, time at step and all.
        try rig.base.dir.write("sluice.yaml", Self.yaml() + "\n# comment\n")
        _ = try rig.routing.reloadFromFile(cause: "test")
        #expect(rig.state == .progressing(step: 1))
        #expect(rig.rollouts.machine(route: "web")!.elapsedAtStep(now: rig.clock.now) == 10 * Self.second)
        // New steps: resumed at the highest step not above the share it had (50% → 25%), split lowered.
        try rig.base.dir.write("sluice.yaml", Self.yaml(steps: "[10, 25, 75, 100]"))
        _ = try rig.routing.reloadFromFile(cause: "test")
        #expect(rig.state == .progressing(step: 1))
        #expect(rig.base.weights() == ["stable": 75, "canary": 25])
        #expect(rig.rolloutEvents.last?.cause.hasPrefix("resumed after reload at step 2 (25%) with 0s of 1m spent "
                                                        + "(the steps changed; the persisted share was 50%)") == true,
                "\(rig.rolloutEvents.last?.cause ?? "")")
        // The file changes the route's split: the file wins and the rollout pauses.
        try rig.base.dir.write("sluice.yaml", Self.yaml(steps: "[10, 25, 75, 100]", split: "stable: 95, canary: 5"))
        _ = try rig.routing.reloadFromFile(cause: "test")
        #expect(rig.base.weights() == ["stable": 95, "canary": 5])
        #expect(rig.state == .paused(step: 1))
        #expect(rig.rolloutEvents.last?.cause.contains("the route's split was changed by a reload or rollback (canary now 5%") == true,
                "\(rig.rolloutEvents.last?.cause ?? "")")
    }

    @Test func aVersionRollbackToAnotherSplitPausesTheRollout() throws {
        let rig = try Rig()
        defer { rig.base.dir.remove() }
        _ = try rig.rollouts.command(.start, route: "web", cause: "test")
        for t in stride(from: UInt64(1_010), through: 1_060, by: 10) { rig.advance(to: t) }
        #expect(rig.state == .progressing(step: 1) && rig.base.weights()["canary"] == 50)
        // `sluice rollback`: the version before (step 1's 10%) serves again; the rollout does not fight it.
        _ = try rig.routing.rollback(cause: "operator")
        #expect(rig.base.weights() == ["stable": 90, "canary": 10])
        #expect(rig.state == .paused(step: 1))
        let version = rig.routing.version
        rig.advance(to: 1_100)
        #expect(rig.routing.version == version, "a paused rollout changes nothing")
        // Resume puts the step's share back.
        _ = try rig.rollouts.command(.resume, route: "web", cause: "test")
        #expect(rig.base.weights()["canary"] == 50)
    }

    @Test func adminEndpointsNeedTheTokenAndAnswerTheStatus() throws {
        let rig = try Rig()
        defer { rig.base.dir.remove() }
        let routing = rig.routing
        let admin = try AdminServer(address: .v4(0x7f00_0001, port: 0), token: "s3cret", hub: rig.hub, events: rig.base.events,
                                    table: { routing.table })
        routing.registerAdminEndpoints(on: admin, hub: rig.hub)
        rig.rollouts.registerAdminEndpoints(on: admin)
        try admin.start()
        defer { admin.stop() }
        func call(_ method: String, _ path: String, token: String? = nil) throws -> AdminClientResponse {
            try AdminClient.request(method, path, to: admin.boundAddress!, token: token)
        }
        for command in RolloutCommand.allCases {
            #expect(try call("POST", "/admin/routes/web/rollout/\(command.rawValue)").status == 401)
        }
        #expect(rig.state == .pending)
        let started = try call("POST", "/admin/routes/web/rollout/start", token: "s3cret")
        #expect(started.status == 200, "\(started.text)")
        let result = try JSONDecoder().decode(RolloutCommandResult.self, from: Data(started.body))
        #expect(result.line == "web: started at step 1 (10%) of 3 steps (split stable=90% canary=10%, version 2)")
        let again = try call("POST", "/admin/routes/web/rollout/start", token: "s3cret")
        #expect(again.status == 409)
        #expect(try JSONDecoder().decode(ControlErrorBody.self, from: Data(again.body)).error
                == "cannot start: already progressing at step 1 (10%); promote or abort it first")
        #expect(try call("POST", "/admin/routes/nope/rollout/pause", token: "s3cret").status == 400)
        // Issue 17: with a token set, reading a rollout's status needs it too (it used to be open).
        #expect(try call("GET", "/admin/routes/web/rollout").status == 401)
        let status = try call("GET", "/admin/routes/web/rollout", token: "s3cret")
        #expect(status.status == 200)
        let decoded = try JSONDecoder().decode(RolloutStatus.self, from: Data(status.body))
        #expect(decoded.state == "progressing" && decoded.step == 1 && decoded.stepLabel == "step 1 (10%)")
        #expect(decoded.lastDecision?.summary == "started at step 1 (10%) of 3 steps")
        #expect(decoded.lastDecision?.time.hasPrefix("2023-11-14T22:") == true, "\(decoded.lastDecision?.time ?? "")")
        let metrics = try call("GET", "/metrics").text
        #expect(metrics.contains("sluice_rollout_step{route=\"web\"} 1"))
        #expect(metrics.contains("sluice_requests_total"))
    }
}
