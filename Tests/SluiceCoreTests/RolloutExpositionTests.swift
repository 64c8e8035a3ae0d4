import Foundation
import Testing
@testable import SluiceCore

/// Rollout metrics lines, number formats and the snapshot's JSON form.
struct RolloutExpositionTests {
    @Test func rendersTheFiveFamiliesOneUnitEach() {
        let spec = RolloutMachineTests.spec(failureLimit: 1)
        var machine = RolloutMachine(spec: spec)
        var transitions = RolloutTransitionCounts()
        let ms = RolloutMachineTests.ms
        transitions.record(machine.handle(.start, now: 0))
        transitions.record(machine.evaluate(now: 60 * RolloutMachineTests.second, canary: RolloutMachineTests.healthyCanary,
                                            baseline: RolloutMachineTests.healthyBaseline))
        transitions.record(machine.evaluate(now: 70 * RolloutMachineTests.second,
                                            canary: RolloutStats(requests: 1_000, errors: 19, p99: 250 * ms),
                                            baseline: RolloutStats(requests: 4_000, errors: 4, p99: 200 * ms)))
        #expect(transitions.count(from: .progressing, to: .progressing) == 1)
        let pending = RolloutMachine(spec: RolloutSpec(canary: "green", baseline: "blue"))
        let text = RolloutExposition.render([
            RolloutExposition.Entry(route: "web", machine: machine, transitions: transitions),
            RolloutExposition.Entry(route: "api", machine: pending, transitions: RolloutTransitionCounts()),
        ])
        #expect(text == """
            # HELP sluice_rollout_step Current rollout step of the route: from 1 while progressing or paused, the number of steps when promoted, 0 when pending, rolled back or aborted.
            # TYPE sluice_rollout_step gauge
            sluice_rollout_step{route="web"} 0
            sluice_rollout_step{route="api"} 0
            # HELP sluice_rollout_state Rollout state of the route: 1 for the current state, 0 for the others.
            # TYPE sluice_rollout_state gauge
            sluice_rollout_state{route="web",state="pending"} 0
            sluice_rollout_state{route="web",state="progressing"} 0
            sluice_rollout_state{route="web",state="paused"} 0
            sluice_rollout_state{route="web",state="promoted"} 0
            sluice_rollout_state{route="web",state="rolled_back"} 1
            sluice_rollout_state{route="web",state="aborted"} 0
            sluice_rollout_state{route="api",state="pending"} 1
            sluice_rollout_state{route="api",state="progressing"} 0
            sluice_rollout_state{route="api",state="paused"} 0
            sluice_rollout_state{route="api",state="promoted"} 0
            sluice_rollout_state{route="api",state="rolled_back"} 0
            sluice_rollout_state{route="api",state="aborted"} 0
            # HELP sluice_rollout_gate_error_ratio Error ratio (5xx and upstream failures per request, 0 to 1) of a cohort in the last rollout evaluation, for routes whose gates watch it.
            # TYPE sluice_rollout_gate_error_ratio gauge
            sluice_rollout_gate_error_ratio{route="web",cohort="canary"} 0.019
            sluice_rollout_gate_error_ratio{route="web",cohort="stable"} 0.001
            # HELP sluice_rollout_gate_p99_seconds p99 request duration of a cohort in seconds in the last rollout evaluation, for routes whose gates watch it.
            # TYPE sluice_rollout_gate_p99_seconds gauge
            sluice_rollout_gate_p99_seconds{route="web",cohort="canary"} 0.25
            sluice_rollout_gate_p99_seconds{route="web",cohort="stable"} 0.2
            # HELP sluice_rollout_transitions_total Rollout state changes of the route (a step promotion is progressing to progressing).
            # TYPE sluice_rollout_transitions_total counter
            sluice_rollout_transitions_total{route="web",from="pending",to="progressing"} 1
            sluice_rollout_transitions_total{route="web",from="progressing",to="progressing"} 1
            sluice_rollout_transitions_total{route="web",from="progressing",to="rolled_back"} 1

            """)
    }

    @Test func stepGaugeFollowsTheState() {
        var machine = RolloutMachine(spec: RolloutMachineTests.spec())
        _ = machine.handle(.start, now: 0)
        _ = machine.evaluate(now: 60 * RolloutMachineTests.second, canary: RolloutMachineTests.healthyCanary,
                             baseline: RolloutMachineTests.healthyBaseline)
        let entry = { (m: RolloutMachine) in [RolloutExposition.Entry(route: "web", machine: m, transitions: RolloutTransitionCounts())] }
        #expect(RolloutExposition.render(entry(machine)).contains("sluice_rollout_step{route=\"web\"} 2\n"))
        _ = machine.handle(.promote, now: 61)
        #expect(RolloutExposition.render(entry(machine)).contains("sluice_rollout_step{route=\"web\"} 6\n"))
    }

    @Test func numberFormats() {
        #expect(RolloutFormat.percent(0.019) == "1.9%")
        #expect(RolloutFormat.percent(1.0 / 3) == "33.33%")
        #expect(RolloutFormat.percent(0) == "0%")
        #expect(RolloutFormat.percent(0.000042) == "0.0042%")
        #expect(RolloutFormat.percent(-0.002) == "-0.2%")
        #expect(RolloutFormat.millionthsPercent(5_000) == "0.5%")
        #expect(RolloutFormat.millionthsPercent(1_000_000) == "100%")
        #expect(RolloutFormat.millionthsPercent(1_250) == "0.125%")
        #expect(RolloutFormat.millionthsPercent(1) == "0.0001%")
        #expect(RolloutFormat.duration(nanos: 250_000) == "250us")
        #expect(RolloutFormat.duration(nanos: 412_500_000) == "412.5ms")
        #expect(RolloutFormat.duration(nanos: 1_250_000_000) == "1.25s")
        #expect(RolloutFormat.duration(nanos: 200_000_000_000) == "3m20s")
        #expect(RolloutFormat.duration(nanos: 600_000_000_000) == "10m")
        #expect(RolloutFormat.duration(nanos: 3_900_000_000_000) == "1h5m")
        #expect(RolloutFormat.fixed(1.7333, decimals: 2) == "1.73")
        #expect(RolloutFormat.fixed(1.25, decimals: 2) == "1.25")
        #expect(RolloutFormat.fixed(2, decimals: 2) == "2")
        #expect(RolloutFormat.fixed(0.05, decimals: 2) == "0.05")
    }

    @Test func snapshotJSONUsesPlainKeys() throws {
        let snapshot = RolloutSnapshot(state: .rolledBack, step: 0, canaryWeight: 0, elapsedAtStep: 0, consecutiveFailures: 0,
                                       lastDecision: "error_rate canary 1.9% > 0.5% for 2 evaluations: rolled back")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(snapshot), as: UTF8.self)
        #expect(json == #"{"canary_weight":0,"consecutive_failures":0,"elapsed_at_step_ns":0,"last_decision":"error_rate canary 1.9% > 0.5% for 2 evaluations: rolled back","state":"rolled_back","step":0}"#)
        #expect(try JSONDecoder().decode(RolloutSnapshot.self, from: Data(json.utf8)) == snapshot)
    }
}
