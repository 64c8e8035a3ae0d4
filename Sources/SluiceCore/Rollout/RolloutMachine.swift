/// The rollout state machine of one route: takes the time, operator commands and the step
/// window's statistics, and returns the next state, the split to apply and why.
///
/// Pure: no clock (time is `now`, monotonic nanoseconds that never decrease), no IO. The
/// control plane owns one per route with a `rollout:` and carries out its outputs (see
/// `RolloutOutput`).
///
/// Rules, precisely:
/// - **Time at a step** counts while `progressing` only: a pause stops the step's clock and
///   `resume` continues it with the elapsed time kept. A restart (snapshot → `restoring`) keeps it too.
/// - **Evaluation** (`.evaluate`, every `interval`) judges every gate on the figures of the step
///   window (`evaluationWindow(now:)`). A gate needs at least `min_requests` canary requests in
///   the window (a relative gate also as many baseline requests); otherwise it is "no data".
/// - Any gate failing is a **failed evaluation**: the consecutive failure count goes up, and at
///   `failure_limit` the rollout rolls back (canary 0%) or pauses (`on_failure: pause`).
/// - Otherwise, any gate without data (or too few canary requests with no gates) is
///   **insufficient data**: the step is held, never promoted, and the failure count is left as it is.
/// - Otherwise the evaluation is **healthy**: the failure count returns to 0, and if the time at
///   the step is at least `step_duration`, the step is promoted: the next step's share is applied
///   and its clock starts at 0 (so a step is promoted at the first healthy evaluation at or after
///   its start + `step_duration`, paused time not counted). Promoting into the last step (100%)
///   is the promotion of the rollout (`promoted`).
/// - `rolledBack` stays until an operator `start`s again (from step 1).
public struct RolloutMachine: Sendable {
    /// The spec being followed.
    public let spec: RolloutSpec
    /// The current state.
    public private(set) var state: RolloutState = .pending
    /// Consecutive failed evaluations at the current step (reset by a healthy evaluation, a new
    /// step, `start` and `resume`).
    public private(set) var consecutiveFailures = 0
    /// The last decision that was not a rejected command or a skipped evaluation.
    public private(set) var lastDecision: RolloutDecision?
    /// The last evaluation of the gates (for status and the gate metrics).
    public private(set) var lastEvaluation: RolloutDecision?

    /// Time spent at the step before `runningSince`.
    private var stepElapsed: UInt64 = 0
    /// When the current running stretch at the step began (meaningful while progressing).
    private var runningSince: UInt64 = 0

    /// A pending rollout (the split is left as it is until `start`).
    public init(spec: RolloutSpec) {
        self.spec = spec
    }

    // MARK: Reading

    /// Time spent at the current step by `now`, paused time not counted (0 outside a step).
    public func elapsedAtStep(now: UInt64) -> UInt64 {
        switch state {
        case .progressing: return stepElapsed &+ (now > runningSince ? now - runningSince : 0)
        case .paused: return stepElapsed
        case .pending, .promoted, .rolledBack, .aborted: return 0
        }
    }

    /// The window (nanoseconds, whole seconds, at least 1 s) whose statistics the next
    /// evaluation should be given: the time at the step, at most `step_duration`, so traffic from
    /// before the step began is left out.
    public func evaluationWindow(now: UInt64) -> UInt64 {
        let second: UInt64 = 1_000_000_000
        let w = min(elapsedAtStep(now: now), spec.stepDuration)
        return max(1, (w + second - 1) / second) * second
    }

    /// `evaluationWindow(now:)` in seconds, as `MetricsHub.stats(route:cohort:window:)` takes it.
    public func evaluationWindowSeconds(now: UInt64) -> Int {
        Int(evaluationWindow(now: now) / 1_000_000_000)
    }

    /// The canary share the state implies, in 0.01% units: the step's share, 100% when
    /// promoted, 0 when rolled back or aborted, nil while pending.
    public var canaryWeight: Int? {
        switch state {
        case .pending: return nil
        case .progressing(let s), .paused(let s): return spec.steps[s]
        case .promoted: return 10_000
        case .rolledBack, .aborted: return 0
        }
    }

    /// The state to persist: a restart given it to `restoring` resumes here.
    public func snapshot(now: UInt64) -> RolloutSnapshot {
        RolloutSnapshot(state: state.phase, step: state.step ?? 0, canaryWeight: canaryWeight ?? 0,
                        elapsedAtStep: elapsedAtStep(now: now), consecutiveFailures: consecutiveFailures,
                        lastDecision: lastDecision?.summary ?? "")
    }

    // MARK: Events

    /// Applies an operator command.
    public mutating func handle(_ command: RolloutCommand, now: UInt64) -> RolloutOutput {
        handle(.command(command), now: now)
    }

    /// Evaluates the gates with the figures of the step window (`evaluationWindow(now:)`).
    public mutating func evaluate(now: UInt64, canary: RolloutStats?, baseline: RolloutStats?) -> RolloutOutput {
        handle(.evaluate(canary: canary, baseline: baseline), now: now)
    }

    /// Applies one event at `now` and returns what to do.
    public mutating func handle(_ event: RolloutEvent, now: UInt64) -> RolloutOutput {
        let output: RolloutOutput
        switch (state, event) {
        case (.pending, .command(.start)), (.promoted, .command(.start)), (.rolledBack, .command(.start)),
             (.aborted, .command(.start)):
            output = start(now: now)
        case (.progressing, .command(.start)):
            output = reject(.start, now: now, why: "already \(stateText); promote or abort it first")
        case (.paused, .command(.start)):
            output = reject(.start, now: now, why: "already \(stateText); resume, promote or abort it first")

        case (.progressing(let s), .command(.pause)):
            output = pause(step: s, now: now)
        case (.paused, .command(.pause)):
            output = reject(.pause, now: now, why: "already \(stateText)")
        case (.pending, .command(.pause)), (.promoted, .command(.pause)), (.rolledBack, .command(.pause)),
             (.aborted, .command(.pause)):
            output = reject(.pause, now: now, why: "the rollout is \(stateText), not progressing")

        case (.paused(let s), .command(.resume)):
            output = resume(step: s, now: now)
        case (.pending, .command(.resume)), (.progressing, .command(.resume)), (.promoted, .command(.resume)),
             (.rolledBack, .command(.resume)), (.aborted, .command(.resume)):
            output = reject(.resume, now: now, why: "the rollout is \(stateText), not paused")

        case (.pending, .command(.promote)), (.progressing, .command(.promote)), (.paused, .command(.promote)),
             (.rolledBack, .command(.promote)), (.aborted, .command(.promote)):
            output = finish(.promoted, reason: .promoted, now: now, summary: "promoted to 100% by operator (from \(stateText))")
        case (.promoted, .command(.promote)):
            output = reject(.promote, now: now, why: "already promoted")

        case (.pending, .command(.abort)), (.progressing, .command(.abort)), (.paused, .command(.abort)),
             (.promoted, .command(.abort)), (.rolledBack, .command(.abort)):
            output = finish(.aborted, reason: .aborted, now: now, summary: "aborted by operator: canary to 0% (from \(stateText))")
        case (.aborted, .command(.abort)):
            output = reject(.abort, now: now, why: "already aborted")

        case (.progressing(let s), .evaluate(let canary, let baseline)):
            output = evaluate(step: s, canary: canary, baseline: baseline, now: now)
        case (.pending, .evaluate), (.paused, .evaluate), (.promoted, .evaluate), (.rolledBack, .evaluate),
             (.aborted, .evaluate):
            let decision = RolloutDecision(time: now, reason: .notEvaluated, step: state.step,
                                           elapsedAtStep: elapsedAtStep(now: now),
                                           summary: "not evaluated: the rollout is \(stateText)")
            return RolloutOutput(from: state, to: state, canaryWeight: nil, accepted: true, decision: decision)
        }
        if output.accepted { lastDecision = output.decision }
        return output
    }

    // MARK: Restart

    /// A machine resuming from `snapshot` (persisted before a restart) at `now`, and the output
    /// to carry out: record the event, and apply `canaryWeight` if the route's current split
    /// differs (`spec.canaryWeight(in:)`).
    ///
    /// A progressing or paused rollout resumes at the same step with its elapsed time. If the
    /// steps changed in the config meanwhile and the persisted share is no longer that step's,
    /// it resumes at the highest step whose share is at most the persisted one (its clock at 0),
    /// so the canary's share never goes up by a restart.
    ///
    /// `after` names what happened in the texts: `.restart` ("resumed after restart at step 3
    /// ..."), or `.reload` when a reload changed the spec of a running rollout.
    public static func restoring(spec: RolloutSpec, snapshot: RolloutSnapshot, now: UInt64,
                                 after: RestoreCause = .restart) -> (machine: RolloutMachine, output: RolloutOutput) {
        var m = RolloutMachine(spec: spec)
        let restart = after.rawValue
        var summary: String
        switch snapshot.state {
        case .pending:
            summary = "restored after \(restart): pending"
        case .progressing, .paused:
            var step = snapshot.step
            var elapsed = snapshot.elapsedAtStep
            var failures = max(0, snapshot.consecutiveFailures)
            var note = ""
            if !(spec.steps.indices.contains(step) && step < spec.lastStep && spec.steps[step] == snapshot.canaryWeight) {
                guard let lower = spec.steps[..<spec.lastStep].lastIndex(where: { $0 <= snapshot.canaryWeight })
                    ?? (spec.lastStep > 0 ? 0 : nil) else {
                    summary = "restored after \(restart): pending (the steps changed and have no step below 100%; "
                        + "the persisted share was \(CohortWeight.percentText(snapshot.canaryWeight))%)"
                    m.lastDecision = RolloutDecision(time: now, reason: .restored, step: nil, elapsedAtStep: 0, summary: summary)
                    return (m, RolloutOutput(from: .pending, to: .pending, canaryWeight: nil, accepted: true,
                                             decision: m.lastDecision!))
                }
                note = " (the steps changed; the persisted share was \(CohortWeight.percentText(snapshot.canaryWeight))%)"
                step = lower
                elapsed = 0
                failures = 0
            }
            m.state = snapshot.state == .progressing ? .progressing(step: step) : .paused(step: step)
            m.stepElapsed = elapsed
            m.runningSince = now
            m.consecutiveFailures = failures
            let spent = "\(RolloutFormat.duration(nanos: elapsed)) of \(RolloutFormat.duration(nanos: spec.stepDuration)) spent"
            summary = snapshot.state == .progressing
                ? "resumed after \(restart) at \(spec.stepLabel(step)) with \(spent)\(note)"
                : "restored after \(restart): paused at \(spec.stepLabel(step)) with \(spent)\(note)"
        case .promoted:
            m.state = .promoted
            summary = "restored after \(restart): promoted (100%)"
        case .rolledBack:
            m.state = .rolledBack
            summary = "restored after \(restart): rolled back (0%)"
        case .aborted:
            m.state = .aborted
            summary = "restored after \(restart): aborted (0%)"
        }
        if !snapshot.lastDecision.isEmpty { summary += "; before the \(restart): \(snapshot.lastDecision)" }
        let decision = RolloutDecision(time: now, reason: .restored, step: m.state.step,
                                       elapsedAtStep: m.elapsedAtStep(now: now), summary: summary)
        m.lastDecision = decision
        return (m, RolloutOutput(from: m.state, to: m.state, canaryWeight: m.canaryWeight, accepted: true, decision: decision))
    }

    /// What a machine is restored after (the word used in its decision texts).
    public enum RestoreCause: String, Sendable {
        /// A restart of the process (from the state file).
        case restart
        /// A reload that changed the rollout's spec.
        case reload
        /// Another replica of the fleet saved it (`cluster:`: a follower or a new leader takes it over).
        case fleet = "takeover"
    }

    // MARK: Commands

    private var stateText: String {
        switch state {
        case .pending: return "pending"
        case .progressing(let s): return "progressing at \(spec.stepLabel(s))"
        case .paused(let s): return "paused at \(spec.stepLabel(s))"
        case .promoted: return "promoted"
        case .rolledBack: return "rolled back"
        case .aborted: return "aborted"
        }
    }

    private mutating func start(now: UInt64) -> RolloutOutput {
        let from = state
        consecutiveFailures = 0
        stepElapsed = 0
        runningSince = now
        let summary: String
        if spec.lastStep == 0 {
            state = .promoted
            summary = "started: the only step is 100%: promoted"
        } else {
            state = .progressing(step: 0)
            summary = "started at \(spec.stepLabel(0)) of \(spec.steps.count) steps"
        }
        let decision = RolloutDecision(time: now, reason: .started, step: state.step, elapsedAtStep: 0, summary: summary)
        return RolloutOutput(from: from, to: state, canaryWeight: canaryWeight, accepted: true, decision: decision)
    }

    private mutating func pause(step s: Int, now: UInt64) -> RolloutOutput {
        let from = state
        stepElapsed = elapsedAtStep(now: now)
        state = .paused(step: s)
        let decision = RolloutDecision(
            time: now, reason: .paused, step: s, elapsedAtStep: stepElapsed,
            summary: "paused by operator at \(spec.stepLabel(s)), \(spentText(stepElapsed)) spent")
        return RolloutOutput(from: from, to: state, canaryWeight: nil, accepted: true, decision: decision)
    }

    private mutating func resume(step s: Int, now: UInt64) -> RolloutOutput {
        let from = state
        state = .progressing(step: s)
        runningSince = now
        consecutiveFailures = 0
        let decision = RolloutDecision(
            time: now, reason: .resumed, step: s, elapsedAtStep: stepElapsed,
            summary: "resumed by operator at \(spec.stepLabel(s)), \(spentText(stepElapsed)) spent")
        return RolloutOutput(from: from, to: state, canaryWeight: nil, accepted: true, decision: decision)
    }

    /// Moves to `promoted`, `rolledBack` or `aborted` and applies the share it implies.
    private mutating func finish(_ target: RolloutState, reason: RolloutDecision.Reason, now: UInt64, summary: String,
                                 canary: RolloutStats? = nil, baseline: RolloutStats? = nil,
                                 gates: [RolloutGateResult] = []) -> RolloutOutput {
        let from = state
        let decision = RolloutDecision(time: now, reason: reason, step: from.step, elapsedAtStep: elapsedAtStep(now: now),
                                       canary: canary, baseline: baseline, gates: gates, summary: summary)
        state = target
        stepElapsed = 0
        consecutiveFailures = 0
        return RolloutOutput(from: from, to: state, canaryWeight: canaryWeight, accepted: true, decision: decision)
    }

    private func reject(_ command: RolloutCommand, now: UInt64, why: String) -> RolloutOutput {
        let decision = RolloutDecision(time: now, reason: .rejected(command), step: state.step,
                                       elapsedAtStep: elapsedAtStep(now: now), summary: "cannot \(command.rawValue): \(why)")
        return RolloutOutput(from: state, to: state, canaryWeight: nil, accepted: false, decision: decision)
    }

    private func spentText(_ elapsed: UInt64) -> String {
        "\(RolloutFormat.duration(nanos: elapsed)) of \(RolloutFormat.duration(nanos: spec.stepDuration))"
    }

    // MARK: Evaluation

    private mutating func evaluate(step s: Int, canary: RolloutStats?, baseline: RolloutStats?,
                                   now: UInt64) -> RolloutOutput {
        let from = state
        let elapsed = elapsedAtStep(now: now)
        let results = spec.gates.map { judge($0, canary: canary, baseline: baseline) }
        let canaryRequests = canary?.requests ?? 0
        func decision(_ reason: RolloutDecision.Reason, _ summary: String) -> RolloutDecision {
            RolloutDecision(time: now, reason: reason, step: s, elapsedAtStep: elapsed, canary: canary, baseline: baseline,
                            gates: results, summary: summary)
        }
        var output: RolloutOutput

        let failed = results.filter { $0.verdict == .fail }
        if !failed.isEmpty {
            consecutiveFailures += 1
            let n = consecutiveFailures
            let texts = failed.map(\.text).joined(separator: ", ")
            if n >= spec.failureLimit {
                let times = "for \(n) evaluation\(n == 1 ? "" : "s")"
                switch spec.onFailure {
                case .rollback:
                    output = finish(.rolledBack, reason: .rolledBack(failures: n), now: now,
                                    summary: "\(texts) \(times): rolled back from \(spec.stepLabel(s)) to 0%",
                                    canary: canary, baseline: baseline, gates: results)
                case .pause:
                    stepElapsed = elapsed
                    state = .paused(step: s)
                    output = RolloutOutput(from: from, to: state, canaryWeight: nil, accepted: true,
                                           decision: decision(.pausedOnFailure(failures: n),
                                                              "\(texts) \(times): paused at \(spec.stepLabel(s))"))
                }
            } else {
                output = RolloutOutput(
                    from: from, to: state, canaryWeight: nil, accepted: true,
                    decision: decision(.breached(failures: n),
                                       "\(texts) (failure \(n) of \(spec.failureLimit)): holding \(spec.stepLabel(s))"))
            }
        } else if canaryRequests < spec.minRequests || results.contains(where: { $0.verdict == .noData }) {
            var missing: [String] = []
            if canaryRequests < spec.minRequests {
                missing.append("\(spec.canary) \(canaryRequests) of \(spec.minRequests) requests")
            }
            let baselineRequests = baseline?.requests ?? 0
            if baselineRequests < spec.minRequests, spec.gates.contains(where: \.isRelative) {
                missing.append("\(spec.baseline) \(baselineRequests) of \(spec.minRequests) requests")
            }
            if missing.isEmpty { missing = results.filter { $0.verdict == .noData }.map(\.text) }
            output = RolloutOutput(
                from: from, to: state, canaryWeight: nil, accepted: true,
                decision: decision(.insufficientData,
                                   "not enough data at \(spec.stepLabel(s)): \(missing.joined(separator: ", ")); holding"))
        } else {
            consecutiveFailures = 0
            let passed = results.isEmpty ? "no gates, \(canaryRequests) requests" : results.map(\.text).joined(separator: "; ")
            if elapsed >= spec.stepDuration {
                let next = s + 1
                let healthy = "\(spec.stepLabel(s)) healthy for \(RolloutFormat.duration(nanos: elapsed)) (\(passed))"
                if next >= spec.lastStep {
                    output = finish(.promoted, reason: .completed, now: now, summary: "\(healthy): promoted to 100%",
                                    canary: canary, baseline: baseline, gates: results)
                } else {
                    state = .progressing(step: next)
                    stepElapsed = 0
                    runningSince = now
                    output = RolloutOutput(from: from, to: state, canaryWeight: spec.steps[next], accepted: true,
                                           decision: decision(.stepPromoted, "\(healthy): promoted to \(spec.stepLabel(next))"))
                }
            } else {
                output = RolloutOutput(
                    from: from, to: state, canaryWeight: nil, accepted: true,
                    decision: decision(.healthy, "healthy at \(spec.stepLabel(s)), \(spentText(elapsed)): \(passed)"))
            }
        }
        lastEvaluation = output.decision
        return output
    }

    /// One gate's verdict on the window's figures.
    private func judge(_ gate: RolloutGate, canary: RolloutStats?, baseline: RolloutStats?) -> RolloutGateResult {
        let metric = gate.metric.rawValue
        let c = spec.canary, b = spec.baseline
        guard let cs = canary, cs.requests >= spec.minRequests else {
            return RolloutGateResult(gate: gate, verdict: .noData, value: nil,
                                     text: "\(metric) \(c): no data (\(canary?.requests ?? 0) of \(spec.minRequests) requests)")
        }
        switch gate {
        case .maxErrorRate(let limit):
            // Exact: errors / requests > limit / 10^6.
            let fails = cs.errors.multipliedFullWidth(by: 1_000_000) > limit.multipliedFullWidth(by: cs.requests)
            return RolloutGateResult(
                gate: gate, verdict: fails ? .fail : .pass, value: cs.errorRate,
                text: "\(metric) \(c) \(RolloutFormat.percent(cs.errorRate)) \(fails ? ">" : "<=") \(gate.thresholdText)")
        case .maxP99(let limit):
            guard let p99 = cs.p99 else {
                return RolloutGateResult(gate: gate, verdict: .noData, value: nil, text: "\(metric) \(c): no data")
            }
            let fails = p99 > limit
            return RolloutGateResult(
                gate: gate, verdict: fails ? .fail : .pass, value: Double(p99) / 1e9,
                text: "\(metric) \(c) \(RolloutFormat.duration(nanos: p99)) \(fails ? ">" : "<=") \(gate.thresholdText)")
        case .maxErrorRateIncrease(let limit):
            guard let bs = baseline, bs.requests >= spec.minRequests else {
                return RolloutGateResult(
                    gate: gate, verdict: .noData, value: nil,
                    text: "\(metric) \(c) vs \(b): no data (\(b) \(baseline?.requests ?? 0) of \(spec.minRequests) requests)")
            }
            let increase = cs.errorRate - bs.errorRate
            let threshold = Double(limit) / 1e6
            // Equal passes: allow for the rounding of the two divisions.
            let fails = increase > threshold + 1e-12
            let sign = increase >= 0 ? "+" : ""
            return RolloutGateResult(
                gate: gate, verdict: fails ? .fail : .pass, value: increase,
                text: "\(metric) \(c) \(RolloutFormat.percent(cs.errorRate)) - \(b) \(RolloutFormat.percent(bs.errorRate)) = "
                    + "\(sign)\(RolloutFormat.percent(increase)) \(fails ? ">" : "<=") \(gate.thresholdText)")
        case .maxP99Ratio(let limit):
            guard let bs = baseline, bs.requests >= spec.minRequests else {
                return RolloutGateResult(
                    gate: gate, verdict: .noData, value: nil,
                    text: "\(metric) \(c) vs \(b): no data (\(b) \(baseline?.requests ?? 0) of \(spec.minRequests) requests)")
            }
            guard let cp = cs.p99, let bp = bs.p99 else {
                return RolloutGateResult(gate: gate, verdict: .noData, value: nil, text: "\(metric) \(c) vs \(b): no data")
            }
            let fails = Double(cp) > limit * Double(bp) * (1 + 1e-12)
            let ratio = bp == 0 ? (cp == 0 ? 1 : Double.infinity) : Double(cp) / Double(bp)
            return RolloutGateResult(
                gate: gate, verdict: fails ? .fail : .pass, value: ratio,
                text: "\(metric) \(c) \(RolloutFormat.duration(nanos: cp)) / \(b) \(RolloutFormat.duration(nanos: bp)) = "
                    + "\(RolloutFormat.fixed(ratio, decimals: 2)) \(fails ? ">" : "<=") \(gate.thresholdText)")
        }
    }
}
