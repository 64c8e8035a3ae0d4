/// A rollout's state as persisted with the runtime state, so a restart resumes at the same step
/// with the time already spent there: never from step 1, never jumping to 100%.
///
/// Plain fields (Codable comes from the standard library, so the control plane can encode it
/// with its JSON coder; SluiceCore itself encodes nothing). Time is kept as elapsed-at-step,
/// not as a clock reading, because the monotonic clock starts anew with the process.
///
/// ```json
/// { "state": "progressing", "step": 2, "canary_weight": 1000, "elapsed_at_step_ns": 250000000000,
///   "consecutive_failures": 0, "last_decision": "healthy at step 3 (10%), 4m10s of 10m: ..." }
/// ```
public struct RolloutSnapshot: Sendable, Equatable, Codable {
    /// The state's name.
    public var state: RolloutPhase
    /// The step index for `progressing` and `paused` (0 otherwise).
    public var step: Int
    /// The canary's share at that step, in 0.01% units (to recognise the step if the steps
    /// were changed in the config meanwhile); for other states the share the state implies.
    public var canaryWeight: Int
    /// Time spent at the step, paused time not counted, in nanoseconds.
    public var elapsedAtStep: UInt64
    /// Consecutive failed evaluations so far.
    public var consecutiveFailures: Int
    /// The last decision's summary (empty before the first).
    public var lastDecision: String

    /// JSON keys.
    enum CodingKeys: String, CodingKey {
        case state
        case step
        case canaryWeight = "canary_weight"
        case elapsedAtStep = "elapsed_at_step_ns"
        case consecutiveFailures = "consecutive_failures"
        case lastDecision = "last_decision"
    }

    /// Creates a snapshot.
    public init(state: RolloutPhase, step: Int, canaryWeight: Int, elapsedAtStep: UInt64, consecutiveFailures: Int,
                lastDecision: String) {
        self.state = state
        self.step = step
        self.canaryWeight = canaryWeight
        self.elapsedAtStep = elapsedAtStep
        self.consecutiveFailures = consecutiveFailures
        self.lastDecision = lastDecision
    }
}
