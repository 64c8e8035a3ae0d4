/// Renders the rollout metrics in the Prometheus text format (0.0.4), to append to
/// `PrometheusExposition.render`'s output:
///
/// ```
/// sluice_rollout_step{route="web"} 3
/// sluice_rollout_state{route="web",state="progressing"} 1
/// sluice_rollout_gate_error_ratio{route="web",cohort="canary"} 0.019
/// sluice_rollout_gate_p99_seconds{route="web",cohort="canary"} 0.25
/// sluice_rollout_transitions_total{route="web",from="progressing",to="rolled_back"} 1
/// ```
public enum RolloutExposition {
    /// One route's rollout as the metrics show it.
    public struct Entry: Sendable {
        /// The route's name.
        public var route: String
        /// Its rollout machine (state, step, spec, last evaluation).
        public var machine: RolloutMachine
        /// Its transition counts.
        public var transitions: RolloutTransitionCounts

        /// Creates an entry.
        public init(route: String, machine: RolloutMachine, transitions: RolloutTransitionCounts) {
            self.route = route
            self.machine = machine
            self.transitions = transitions
        }
    }

    /// The five families, each with HELP and TYPE, for every entry. `sluice_rollout_step` is the
    /// step number from 1 while progressing or paused, the number of steps when promoted, and 0
    /// otherwise. `sluice_rollout_state` has a series per state, 1 for the current one.
    /// `sluice_rollout_gate_error_ratio` (0 to 1) and `sluice_rollout_gate_p99_seconds` are, for
    /// routes whose gates watch that metric and per cohort (canary and baseline), the value in the
    /// last evaluation; absent before one with requests.
    public static func render(_ entries: [Entry]) -> String {
        var out = ""
        func label(_ entry: Entry) -> String { "route=\"\(PrometheusExposition.escapeLabel(entry.route))\"" }

        PrometheusExposition.family(&out, "sluice_rollout_step", "gauge",
                                    "Current rollout step of the route: from 1 while progressing or paused, the number of steps when promoted, 0 when pending, rolled back or aborted.")
        for e in entries {
            let step: Int
            switch e.machine.state {
            case .progressing(let s), .paused(let s): step = s + 1
            case .promoted: step = e.machine.spec.steps.count
            case .pending, .rolledBack, .aborted: step = 0
            }
            PrometheusExposition.sample(&out, "sluice_rollout_step", label(e), String(step))
        }

        PrometheusExposition.family(&out, "sluice_rollout_state", "gauge",
                                    "Rollout state of the route: 1 for the current state, 0 for the others.")
        for e in entries {
            for phase in RolloutPhase.allCases {
                PrometheusExposition.sample(&out, "sluice_rollout_state", "\(label(e)),state=\"\(phase.rawValue)\"",
                                            phase == e.machine.state.phase ? "1" : "0")
            }
        }

        // One family per gated metric, so each has one unit: a ratio, and seconds.
        for metric in RolloutMetric.allCases {
            let name: String
            switch metric {
            case .errorRate:
                name = "sluice_rollout_gate_error_ratio"
                PrometheusExposition.family(&out, name, "gauge",
                                            "Error ratio (5xx and upstream failures per request, 0 to 1) of a cohort in the last rollout evaluation, for routes whose gates watch it.")
            case .p99Latency:
                name = "sluice_rollout_gate_p99_seconds"
                PrometheusExposition.family(&out, name, "gauge",
                                            "p99 request duration of a cohort in seconds in the last rollout evaluation, for routes whose gates watch it.")
            }
            for e in entries {
                guard let evaluation = e.machine.lastEvaluation,
                      e.machine.spec.gates.contains(where: { $0.metric == metric }) else { continue }
                for (cohort, stats) in [(e.machine.spec.canary, evaluation.canary), (e.machine.spec.baseline, evaluation.baseline)] {
                    guard let stats, stats.requests > 0 else { continue }
                    let value: Double
                    switch metric {
                    case .errorRate: value = stats.errorRate
                    case .p99Latency:
                        guard let p99 = stats.p99 else { continue }
                        value = Double(p99) / 1e9
                    }
                    PrometheusExposition.sample(&out, name, "\(label(e)),cohort=\"\(PrometheusExposition.escapeLabel(cohort))\"",
                                                PrometheusExposition.number(value))
                }
            }
        }

        PrometheusExposition.family(&out, "sluice_rollout_transitions_total", "counter",
                                    "Rollout state changes of the route (a step promotion is progressing to progressing).")
        for e in entries {
            for t in e.transitions.counts {
                PrometheusExposition.sample(&out, "sluice_rollout_transitions_total",
                                            "\(label(e)),from=\"\(t.from.rawValue)\",to=\"\(t.to.rawValue)\"", t.count)
            }
        }
        return out
    }
}
