/// Why the rollout machine did what it did, with the numbers: stored as the last decision,
/// shown by `sluice rollout status`, recorded in events.
public struct RolloutDecision: Sendable, Equatable {
    /// What was decided.
    public enum Reason: Sendable, Equatable {
        /// An operator started the rollout.
        case started
        /// Restored from a snapshot after a restart.
        case restored
        /// Too few requests to judge the gates; the step is held (never promoted).
        case insufficientData
        /// All gates passed; the step is held until its duration is spent.
        case healthy
        /// All gates passed after the step's duration: moved to the next step.
        case stepPromoted
        /// All gates passed after the step's duration and the next step is 100%: promoted.
        case completed
        /// Gates failed; `failures` consecutive failed evaluations, below the limit.
        case breached(failures: Int)
        /// Gates failed `failures` (the limit) consecutive evaluations: rolled back.
        case rolledBack(failures: Int)
        /// Gates failed `failures` (the limit) consecutive evaluations: paused (`on_failure: pause`).
        case pausedOnFailure(failures: Int)
        /// An operator paused.
        case paused
        /// An operator resumed.
        case resumed
        /// An operator promoted to 100%.
        case promoted
        /// An operator aborted.
        case aborted
        /// A command that does not apply in the current state; nothing changed.
        case rejected(RolloutCommand)
        /// An evaluation outside `progressing`; nothing changed.
        case notEvaluated
    }

    /// When (the `now` given to the machine, monotonic nanoseconds).
    public var time: UInt64
    /// What was decided.
    public var reason: Reason
    /// The step it concerns (the step judged, or left), nil when there is none.
    public var step: Int?
    /// Time spent at that step (paused time not counted), in nanoseconds.
    public var elapsedAtStep: UInt64
    /// The canary's figures of the evaluation (nil for commands).
    public var canary: RolloutStats?
    /// The baseline's figures of the evaluation (nil for commands).
    public var baseline: RolloutStats?
    /// Each gate's verdict for an evaluation (empty for commands).
    public var gates: [RolloutGateResult]
    /// One line for people: `error_rate canary 1.9% > 0.5% for 2 evaluations: rolled back from step 2 (5%) to 0%`.
    public var summary: String

    /// Creates a decision.
    public init(time: UInt64, reason: Reason, step: Int?, elapsedAtStep: UInt64, canary: RolloutStats? = nil,
                baseline: RolloutStats? = nil, gates: [RolloutGateResult] = [], summary: String) {
        self.time = time
        self.reason = reason
        self.step = step
        self.elapsedAtStep = elapsedAtStep
        self.canary = canary
        self.baseline = baseline
        self.gates = gates
        self.summary = summary
    }
}

/// One gate's verdict in one evaluation.
public struct RolloutGateResult: Sendable, Equatable {
    /// Pass, fail, or not judged.
    public enum Verdict: Sendable, Equatable {
        /// The value is within the threshold (equal passes).
        case pass
        /// The value is beyond the threshold.
        case fail
        /// Too few requests (canary, or baseline for a relative gate) to judge.
        case noData
    }

    /// The gate.
    public var gate: RolloutGate
    /// Its verdict.
    public var verdict: Verdict
    /// The value compared with the threshold: an error rate or increase (fraction), a p99
    /// (seconds) or a p99 ratio; nil without data.
    public var value: Double?
    /// `error_rate canary 1.9% > 0.5%`, `p99_latency canary 520ms / stable 300ms = 1.73 > 1.25`.
    public var text: String

    /// Creates a result.
    public init(gate: RolloutGate, verdict: Verdict, value: Double?, text: String) {
        self.gate = gate
        self.verdict = verdict
        self.value = value
        self.text = text
    }
}

/// What one event produced: the state before and after, the split to apply, and why.
public struct RolloutOutput: Sendable, Equatable {
    /// The state before the event.
    public var from: RolloutState
    /// The state after it.
    public var to: RolloutState
    /// The canary's share to apply now, in 0.01% units (0...10000), via
    /// `RolloutSpec.splitWeights(canaryWeight:)`; nil: leave the split as it is.
    public var canaryWeight: Int?
    /// False when a command was rejected (nothing changed); true otherwise.
    public var accepted: Bool
    /// Why, with the numbers.
    public var decision: RolloutDecision

    /// Creates an output.
    public init(from: RolloutState, to: RolloutState, canaryWeight: Int?, accepted: Bool, decision: RolloutDecision) {
        self.from = from
        self.to = to
        self.canaryWeight = canaryWeight
        self.accepted = accepted
        self.decision = decision
    }

    /// True when the state or the step changed or a split is to be applied: worth an event and
    /// a persisted snapshot.
    public var changed: Bool { from != to || canaryWeight != nil }

    /// True for an evaluation whose gates failed (with or without reaching the limit).
    public var isBreach: Bool {
        switch decision.reason {
        case .breached, .rolledBack, .pausedOnFailure: return true
        default: return false
        }
    }

    /// The cause to give the routing change: `rollout web step 3 (10%)`, `rollout web promoted (100%)`,
    /// `rollout web rolled back (0%)`, `rollout web aborted (0%)`.
    public func splitCause(route: String, spec: RolloutSpec) -> String {
        switch to {
        case .progressing(let s), .paused(let s): return "rollout \(route) \(spec.stepLabel(s))"
        case .promoted: return "rollout \(route) promoted (100%)"
        case .rolledBack: return "rollout \(route) rolled back (0%)"
        case .aborted: return "rollout \(route) aborted (0%)"
        case .pending: return "rollout \(route)"
        }
    }
}
