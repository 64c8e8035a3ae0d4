/// How a route's canary is rolled out, compiled from the route's `rollout:` key: the steps of
/// the canary's share, how long each is watched, and the gates its statistics must pass.
///
/// The control plane validates the config (with line numbers) before building one of these;
/// the initializer only asserts the invariants.
public struct RolloutSpec: Sendable, Equatable {
    /// The cohort being rolled out (a cohort of the route's split).
    public var canary: String
    /// The cohort the canary's share is taken from and given back to (the route's baseline).
    public var baseline: String
    /// The canary's share at each step, in 0.01% units: strictly increasing, each in
    /// 1...10000, the last 10000 (reaching it is the promotion).
    public var steps: [Int]
    /// Time (nanoseconds, paused time not counted) a step is watched before it may be promoted.
    public var stepDuration: UInt64
    /// How often the gates are evaluated, in nanoseconds (the controller's timer; at most `stepDuration`).
    public var interval: UInt64
    /// Fewest canary requests in the step window for the gates to be judged (at least 1); the
    /// baseline needs as many for the relative gates.
    public var minRequests: UInt64
    /// The gates; all must pass for a step to be promoted. May be empty (promotion on time and traffic alone).
    public var gates: [RolloutGate]
    /// Consecutive failed evaluations that trigger `onFailure` (at least 1).
    public var failureLimit: Int
    /// What a breach of `failureLimit` evaluations does.
    public var onFailure: RolloutFailureAction

    /// The default steps: 1, 5, 10, 25, 50, 100 percent.
    public static let defaultSteps = [100, 500, 1_000, 2_500, 5_000, 10_000]
    /// The default step duration: 5 minutes.
    public static let defaultStepDuration: UInt64 = 300_000_000_000
    /// The default evaluation interval: 10 seconds.
    public static let defaultInterval: UInt64 = 10_000_000_000
    /// The default minimum of canary requests per step window: 100.
    public static let defaultMinRequests: UInt64 = 100
    /// The default failure limit: 2 consecutive failed evaluations.
    public static let defaultFailureLimit = 2

    /// Creates a spec. Preconditions: canary differs from baseline, steps valid (see `steps`),
    /// 0 < interval <= stepDuration, minRequests >= 1, failureLimit >= 1.
    public init(canary: String, baseline: String, steps: [Int] = RolloutSpec.defaultSteps,
                stepDuration: UInt64 = RolloutSpec.defaultStepDuration, interval: UInt64 = RolloutSpec.defaultInterval,
                minRequests: UInt64 = RolloutSpec.defaultMinRequests, gates: [RolloutGate] = [],
                failureLimit: Int = RolloutSpec.defaultFailureLimit, onFailure: RolloutFailureAction = .rollback) {
        precondition(canary != baseline, "canary and baseline must differ")
        precondition(!steps.isEmpty && steps.last == 10_000, "the last step must be 100%")
        precondition(zip(steps, steps.dropFirst()).allSatisfy { $0 < $1 } && steps[0] > 0, "steps must increase from above 0")
        precondition(interval > 0 && interval <= stepDuration, "0 < interval <= step duration")
        precondition(minRequests >= 1 && failureLimit >= 1, "min requests and failure limit must be at least 1")
        self.canary = canary
        self.baseline = baseline
        self.steps = steps
        self.stepDuration = stepDuration
        self.interval = interval
        self.minRequests = minRequests
        self.gates = gates
        self.failureLimit = failureLimit
        self.onFailure = onFailure
    }

    /// The index of the last step (the 100% step, reached only by promotion).
    public var lastStep: Int { steps.count - 1 }

    /// The route split that gives the canary `canaryWeight` (0.01% units) and the baseline the
    /// rest, for `RoutingController.setSplit` (other cohorts of the split get 0).
    public func splitWeights(canaryWeight: Int) -> [CohortWeight] {
        let w = min(max(canaryWeight, 0), 10_000)
        return [CohortWeight(cohort: baseline, weight: 10_000 - w), CohortWeight(cohort: canary, weight: w)]
    }

    /// The canary's weight in `route`'s current split (nil when the route has no such cohort).
    public func canaryWeight(in route: Route) -> Int? {
        route.cohorts.first { $0.name == canary }.map { $0.inSplit ? $0.weight : 0 }
    }

    /// `step 3 (10%)`: a step index as people read it (numbered from 1, with its share).
    public func stepLabel(_ step: Int) -> String {
        guard steps.indices.contains(step) else { return "step \(step + 1)" }
        return "step \(step + 1) (\(CohortWeight.percentText(steps[step]))%)"
    }
}

/// What happens when the gates fail `failureLimit` consecutive evaluations.
public enum RolloutFailureAction: String, Sendable, Equatable, CaseIterable {
    /// Everyone back to the baseline (canary 0%); the rollout stays rolled back until started again.
    case rollback
    /// Hold the current step's split and wait for an operator (`resume`, `promote` or `abort`).
    case pause
}

/// The metric a gate watches.
public enum RolloutMetric: String, Sendable, Equatable, CaseIterable {
    /// (5xx responses and upstream failures) / requests in the step window.
    case errorRate = "error_rate"
    /// The 99th percentile of request duration in the step window.
    case p99Latency = "p99_latency"
}

/// One condition the canary's statistics must meet. A value equal to the threshold passes.
public enum RolloutGate: Sendable, Equatable {
    /// Canary error rate at most this many millionths of its requests (`max: 0.5%` is 5000).
    case maxErrorRate(millionths: UInt64)
    /// Canary p99 at most this many nanoseconds (`max: 400ms`).
    case maxP99(nanos: UInt64)
    /// Canary error rate minus baseline error rate at most this many millionths
    /// (`relative_to_baseline: { max_increase: 0.2% }` is 2000).
    case maxErrorRateIncrease(millionths: UInt64)
    /// Canary p99 at most this multiple of the baseline's (`relative_to_baseline: { max_ratio: 1.25 }`).
    case maxP99Ratio(Double)

    /// The metric the gate watches.
    public var metric: RolloutMetric {
        switch self {
        case .maxErrorRate, .maxErrorRateIncrease: return .errorRate
        case .maxP99, .maxP99Ratio: return .p99Latency
        }
    }

    /// True when the gate compares the canary with the baseline.
    public var isRelative: Bool {
        switch self {
        case .maxErrorRate, .maxP99: return false
        case .maxErrorRateIncrease, .maxP99Ratio: return true
        }
    }

    /// The threshold as written: `0.5%`, `400ms`, `+0.2%`, `x1.25`.
    public var thresholdText: String {
        switch self {
        case .maxErrorRate(let m): return RolloutFormat.millionthsPercent(m)
        case .maxP99(let ns): return RolloutFormat.duration(nanos: ns)
        case .maxErrorRateIncrease(let m): return "+" + RolloutFormat.millionthsPercent(m)
        case .maxP99Ratio(let r): return RolloutFormat.fixed(r, decimals: 2)
        }
    }
}
