/// Where a route's rollout is. Steps are indices into `RolloutSpec.steps`.
public enum RolloutState: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// Configured, not started: the split is whatever the config or an operator set.
    case pending
    /// The canary has the share of step `step` (never the last step: reaching it is `promoted`).
    case progressing(step: Int)
    /// Held at step `step` by an operator or by `on_failure: pause`; the step's clock is stopped.
    case paused(step: Int)
    /// The canary has 100%.
    case promoted
    /// The gates failed `failure_limit` times: canary 0%, until an operator starts again.
    case rolledBack
    /// An operator aborted: canary 0%.
    case aborted

    /// The state without its step, for metrics and the persisted snapshot.
    public var phase: RolloutPhase {
        switch self {
        case .pending: return .pending
        case .progressing: return .progressing
        case .paused: return .paused
        case .promoted: return .promoted
        case .rolledBack: return .rolledBack
        case .aborted: return .aborted
        }
    }

    /// The step of `progressing` and `paused`, else nil.
    public var step: Int? {
        switch self {
        case .progressing(let s), .paused(let s): return s
        case .pending, .promoted, .rolledBack, .aborted: return nil
        }
    }

    /// `progressing(step 3)`, `rolled_back`, ... (steps numbered from 1).
    public var description: String {
        switch self {
        case .progressing(let s): return "progressing(step \(s + 1))"
        case .paused(let s): return "paused(step \(s + 1))"
        case .pending, .promoted, .rolledBack, .aborted: return phase.rawValue
        }
    }
}

/// A rollout state's name: the `state` label of `sluice_rollout_state` and the persisted form.
public enum RolloutPhase: String, Sendable, Equatable, Hashable, CaseIterable, Codable {
    /// Not started.
    case pending
    /// Moving through the steps.
    case progressing
    /// Held at a step.
    case paused
    /// Canary at 100%.
    case promoted
    /// Sent back to the baseline by the gates.
    case rolledBack = "rolled_back"
    /// Sent back to the baseline by an operator.
    case aborted
}

/// An operator's command (`sluice rollout start|pause|resume|promote|abort ROUTE`).
public enum RolloutCommand: String, Sendable, Equatable, CaseIterable {
    /// Begin at the first step: from pending, promoted, rolled back or aborted.
    case start
    /// Hold the current step, stopping its clock: from progressing.
    case pause
    /// Continue a paused step with its elapsed time kept: from paused.
    case resume
    /// Canary to 100% at once: from any state but promoted.
    case promote
    /// Canary to 0% at once: from any state but aborted.
    case abort
}

/// What the machine is told: a command, or an evaluation with the step window's figures.
public enum RolloutEvent: Sendable, Equatable {
    /// An operator's command.
    case command(RolloutCommand)
    /// A gate evaluation (every `interval`) with the canary's and the baseline's figures over
    /// `RolloutMachine.evaluationWindow(now:)`; nil when the statistics have nothing yet.
    case evaluate(canary: RolloutStats?, baseline: RolloutStats?)
}
