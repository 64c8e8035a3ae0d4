import SluiceCore

/// A route's rollout as `GET /admin/routes/{route}/rollout` and `sluice rollout status` show
/// it: state, step, time at the step, failures, each gate's values for both cohorts against its
/// threshold in the last evaluation, and the last decision with its numbers.
public struct RolloutStatus: Sendable, Codable, Equatable {
    /// The route.
    public var route: String
    /// `pending`, `progressing`, `paused`, `promoted`, `rolled_back` or `aborted`.
    public var state: String
    /// The current step, from 1 (progressing and paused only).
    public var step: Int?
    /// `step 2 (25%)` (progressing and paused only).
    public var stepLabel: String?
    /// The canary's share at each step: `["10%", "25%", "50%", "100%"]`.
    public var steps: [String]
    /// The cohort rolled out.
    public var canary: String
    /// The cohort it takes its share from.
    public var baseline: String
    /// The canary's share the rollout's state implies (`25%`; nil while pending).
    public var canaryWeight: String?
    /// The canary's share in the route's split now (`25%`; nil when the route has no such cohort).
    public var splitCanaryWeight: String?
    /// Time spent at the step, paused time not counted, in nanoseconds.
    public var timeAtStepNs: UInt64
    /// The same, for people: `1m20s`.
    public var timeAtStep: String
    /// `step_duration` in nanoseconds.
    public var stepDurationNs: UInt64
    /// `step_duration` for people.
    public var stepDuration: String
    /// `interval` for people.
    public var interval: String
    /// `min_requests`.
    public var minRequests: UInt64
    /// Consecutive failed evaluations at the step.
    public var consecutiveFailures: Int
    /// `failure_limit`.
    public var failureLimit: Int
    /// `on_failure`: `rollback` or `pause`.
    public var onFailure: String
    /// Nanoseconds until the next evaluation (progressing only).
    public var nextEvaluationInNs: UInt64?
    /// The last evaluation of the gates (nil before the first since start or restart).
    public var lastEvaluation: Evaluation?
    /// Every gate, with its values in the last evaluation.
    public var gates: [Gate]
    /// The last decision (nil before the first).
    public var lastDecision: Decision?
    /// Problems to know about: a split the rollout could not set, a state file it could not write.
    public var warnings: [String]

    /// One cohort's figures in an evaluation window.
    public struct Figures: Sendable, Codable, Equatable {
        /// Requests in the window.
        public var requests: UInt64
        /// 5xx responses and upstream failures in the window.
        public var errors: UInt64
        /// `errors / requests`.
        public var errorRate: Double
        /// 99th percentile latency in seconds (nil without requests).
        public var p99Seconds: Double?

        /// JSON keys.
        enum CodingKeys: String, CodingKey {
            case requests, errors, errorRate = "error_rate", p99Seconds = "p99_seconds"
        }
    }

    /// An evaluation: when, over which window, with which figures.
    public struct Evaluation: Sendable, Codable, Equatable {
        /// When, RFC 3339 UTC.
        public var time: String
        /// When, Unix milliseconds.
        public var unixMillis: UInt64
        /// The step window in seconds.
        public var windowSeconds: Int?
        /// The canary's figures (nil: none yet).
        public var canary: Figures?
        /// The baseline's figures (nil: none yet).
        public var baseline: Figures?
        /// The evaluation's outcome, e.g. `healthy`, `insufficient_data`, `breached`.
        public var outcome: String

        /// JSON keys.
        enum CodingKeys: String, CodingKey {
            case time, unixMillis = "unix_ms", windowSeconds = "window_seconds", canary, baseline, outcome
        }
    }

    /// One gate in the last evaluation.
    public struct Gate: Sendable, Codable, Equatable {
        /// `error_rate` or `p99_latency`.
        public var metric: String
        /// `max` or `relative_to_baseline`.
        public var kind: String
        /// The threshold as written: `0.5%`, `400ms`, `+0.2%`, `1.25`.
        public var threshold: String
        /// The metric's value for the canary: `1.9%`, `412ms` (nil without data).
        public var canaryValue: String?
        /// The metric's value for the baseline (nil without data).
        public var baselineValue: String?
        /// The value compared with the threshold: the canary's for `max`, the increase or the
        /// ratio for `relative_to_baseline` (nil without data).
        public var value: String?
        /// `pass`, `fail`, `no_data`, or `not_evaluated` (no evaluation yet).
        public var verdict: String
        /// The machine's one-line verdict: `error_rate canary 1.9% > 0.5%`.
        public var text: String?

        /// JSON keys.
        enum CodingKeys: String, CodingKey {
            case metric, kind, threshold, canaryValue = "canary_value", baselineValue = "baseline_value", value, verdict, text
        }
    }

    /// A decision and why, in numbers.
    public struct Decision: Sendable, Codable, Equatable {
        /// When, RFC 3339 UTC.
        public var time: String
        /// When, Unix milliseconds.
        public var unixMillis: UInt64
        /// What was decided: `started`, `step_promoted`, `rolled_back`, ...
        public var reason: String
        /// `error_rate canary 1.9% > 0.5% for 2 evaluations: rolled back from step 3 (50%) to 0%`.
        public var summary: String

        /// JSON keys.
        enum CodingKeys: String, CodingKey {
            case time, unixMillis = "unix_ms", reason, summary
        }
    }

    /// JSON keys.
    enum CodingKeys: String, CodingKey {
        case route, state, step, stepLabel = "step_label", steps, canary, baseline, canaryWeight = "canary_weight"
        case splitCanaryWeight = "split_canary_weight", timeAtStepNs = "time_at_step_ns", timeAtStep = "time_at_step"
        case stepDurationNs = "step_duration_ns", stepDuration = "step_duration", interval, minRequests = "min_requests"
        case consecutiveFailures = "consecutive_failures", failureLimit = "failure_limit", onFailure = "on_failure"
        case nextEvaluationInNs = "next_evaluation_in_ns", lastEvaluation = "last_evaluation", gates
        case lastDecision = "last_decision", warnings
    }

    /// The status of `machine` at `now` (monotonic). `splitCanaryWeight`: the canary's share in
    /// the route's split; `nextEvaluation`: when it is due (monotonic); `wallTime` turns a
    /// monotonic time into Unix nanoseconds.
    init(route: String, machine m: RolloutMachine, now: UInt64, splitCanaryWeight: Int?, windowSeconds: Int?,
         nextEvaluation: UInt64?, warnings: [String], wallTime: (UInt64) -> UInt64) {
        let spec = m.spec
        self.route = route
        state = m.state.phase.rawValue
        step = m.state.step.map { $0 + 1 }
        stepLabel = m.state.step.map { spec.stepLabel($0) }
        steps = spec.steps.map { CohortWeight.percentText($0) + "%" }
        canary = spec.canary
        baseline = spec.baseline
        canaryWeight = m.canaryWeight.map { CohortWeight.percentText($0) + "%" }
        self.splitCanaryWeight = splitCanaryWeight.map { CohortWeight.percentText($0) + "%" }
        timeAtStepNs = m.elapsedAtStep(now: now)
        timeAtStep = RolloutFormat.duration(nanos: timeAtStepNs)
        stepDurationNs = spec.stepDuration
        stepDuration = RolloutFormat.duration(nanos: spec.stepDuration)
        interval = RolloutFormat.duration(nanos: spec.interval)
        minRequests = spec.minRequests
        consecutiveFailures = m.consecutiveFailures
        failureLimit = spec.failureLimit
        onFailure = spec.onFailure.rawValue
        nextEvaluationInNs = nextEvaluation.map { $0 > now ? $0 - now : 0 }
        self.warnings = warnings

        func time(_ monotonic: UInt64) -> (String, UInt64) {
            let wall = wallTime(monotonic)
            return (ControlClock.rfc3339(unixNanos: wall), wall / 1_000_000)
        }
        let evaluation = m.lastEvaluation
        if let e = evaluation {
            let (text, ms) = time(e.time)
            lastEvaluation = Evaluation(time: text, unixMillis: ms, windowSeconds: windowSeconds,
                                        canary: e.canary.map(Self.figures), baseline: e.baseline.map(Self.figures),
                                        outcome: Self.reasonName(e.reason))
        }
        if let d = m.lastDecision {
            let (text, ms) = time(d.time)
            lastDecision = Decision(time: text, unixMillis: ms, reason: Self.reasonName(d.reason), summary: d.summary)
        }
        gates = spec.gates.enumerated().map { i, gate in
            let result = evaluation.flatMap { $0.gates.indices.contains(i) ? $0.gates[i] : nil }
            let metric = gate.metric
            func metricValue(_ stats: RolloutStats?) -> String? {
                guard let stats, stats.requests > 0 else { return nil }
                switch metric {
                case .errorRate: return RolloutFormat.percent(stats.errorRate)
                case .p99Latency: return stats.p99.map { RolloutFormat.duration(nanos: $0) }
                }
            }
            let verdict: String
            switch result?.verdict {
            case .pass: verdict = "pass"
            case .fail: verdict = "fail"
            case .noData: verdict = "no_data"
            case nil: verdict = "not_evaluated"
            }
            return Gate(metric: metric.rawValue, kind: gate.isRelative ? "relative_to_baseline" : "max",
                        threshold: gate.thresholdText, canaryValue: metricValue(evaluation?.canary),
                        baselineValue: metricValue(evaluation?.baseline),
                        value: result?.value.map { Self.valueText($0, gate: gate) }, verdict: verdict, text: result?.text)
        }
    }

    /// A gate's compared value as its threshold is written.
    static func valueText(_ value: Double, gate: RolloutGate) -> String {
        switch gate {
        case .maxErrorRate: return RolloutFormat.percent(value)
        case .maxP99: return RolloutFormat.duration(seconds: value)
        case .maxErrorRateIncrease: return (value >= 0 ? "+" : "") + RolloutFormat.percent(value)
        case .maxP99Ratio: return RolloutFormat.fixed(value, decimals: 2)
        }
    }

    /// A cohort's figures as the status shows them.
    static func figures(_ stats: RolloutStats) -> Figures {
        Figures(requests: stats.requests, errors: stats.errors, errorRate: stats.errorRate,
                p99Seconds: stats.p99.map { Double($0) / 1e9 })
    }

    /// The name of a decision's reason: `started`, `step_promoted`, `rolled_back`, ...
    static func reasonName(_ reason: RolloutDecision.Reason) -> String {
        switch reason {
        case .started: return "started"
        case .restored: return "restored"
        case .insufficientData: return "insufficient_data"
        case .healthy: return "healthy"
        case .stepPromoted: return "step_promoted"
        case .completed: return "completed"
        case .breached: return "breached"
        case .rolledBack: return "rolled_back"
        case .pausedOnFailure: return "paused_on_failure"
        case .paused: return "paused"
        case .resumed: return "resumed"
        case .promoted: return "promoted"
        case .aborted: return "aborted"
        case .rejected: return "rejected"
        case .notEvaluated: return "not_evaluated"
        }
    }
}
