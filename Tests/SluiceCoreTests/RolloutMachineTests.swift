import Testing
@testable import SluiceCore

/// The rollout state machine driven by a manual clock and synthetic statistics.
struct RolloutMachineTests {
    static let second: UInt64 = 1_000_000_000
    static let ms: UInt64 = 1_000_000

    /// Steps 1, 5, 10, 25, 50, 100; a minute per step, evaluated every 10 s; the four gates.
    static func spec(failureLimit: Int = 2, onFailure: RolloutFailureAction = .rollback, minRequests: UInt64 = 200,
                     gates: [RolloutGate]? = nil) -> RolloutSpec {
        RolloutSpec(canary: "canary", baseline: "stable", steps: [100, 500, 1_000, 2_500, 5_000, 10_000],
                    stepDuration: 60 * second, interval: 10 * second, minRequests: minRequests,
                    gates: gates ?? [.maxErrorRate(millionths: 5_000), .maxP99(nanos: 400 * Self.ms),
                                     .maxErrorRateIncrease(millionths: 2_000), .maxP99Ratio(1.25)],
                    failureLimit: failureLimit, onFailure: onFailure)
    }

    static let healthyCanary = RolloutStats(requests: 1_000, errors: 1, p99: 210 * Self.ms)
    static let healthyBaseline = RolloutStats(requests: 50_000, errors: 50, p99: 200 * Self.ms)

    /// A manual clock and a machine, with helpers that advance the clock.
    struct Driver {
        var machine: RolloutMachine
        var now: UInt64 = 0

        init(_ spec: RolloutSpec) { machine = RolloutMachine(spec: spec) }

        mutating func at(_ seconds: UInt64) -> UInt64 {
            now = seconds * RolloutMachineTests.second
            return now
        }

        mutating func command(_ c: RolloutCommand, at seconds: UInt64) -> RolloutOutput {
            machine.handle(c, now: at(seconds))
        }

        mutating func evaluate(at seconds: UInt64, canary: RolloutStats? = RolloutMachineTests.healthyCanary,
                               baseline: RolloutStats? = RolloutMachineTests.healthyBaseline) -> RolloutOutput {
            machine.evaluate(now: at(seconds), canary: canary, baseline: baseline)
        }
    }

    // MARK: Promotion

    @Test func healthyCanaryIsPromotedThroughEveryStepAtTheRightTimes() {
        var d = Driver(Self.spec())
        let start = d.command(.start, at: 0)
        #expect(start.from == .pending && start.to == .progressing(step: 0))
        #expect(start.canaryWeight == 100)
        #expect(start.decision.summary == "started at step 1 (1%) of 6 steps")
        #expect(start.splitCause(route: "web", spec: d.machine.spec) == "rollout web step 1 (1%)")

        // Every 10 s; a step lasts 60 s, so the step changes at 60, 120, 180, 240 and 300 s.
        var changes: [(seconds: UInt64, weight: Int, to: RolloutState)] = []
        for t in stride(from: UInt64(10), through: 400, by: 10) {
            let out = d.evaluate(at: t)
            if let w = out.canaryWeight {
                changes.append((t, w, out.to))
            } else if d.machine.state != .promoted {
                #expect(out.decision.reason == .healthy, "at \(t)s: \(out.decision.summary)")
            } else {
                #expect(out.decision.reason == .notEvaluated)
            }
        }
        #expect(changes.map(\.seconds) == [60, 120, 180, 240, 300])
        #expect(changes.map(\.weight) == [500, 1_000, 2_500, 5_000, 10_000])
        #expect(changes.map(\.to) == [.progressing(step: 1), .progressing(step: 2), .progressing(step: 3),
                                      .progressing(step: 4), .promoted])
        #expect(d.machine.state == .promoted)
        #expect(d.machine.lastDecision?.reason == .completed)
        #expect(d.machine.lastDecision?.summary == "step 5 (50%) healthy for 1m (error_rate canary 0.1% <= 0.5%; "
            + "p99_latency canary 210ms <= 400ms; error_rate canary 0.1% - stable 0.1% = +0% <= +0.2%; "
            + "p99_latency canary 210ms / stable 200ms = 1.05 <= 1.25): promoted to 100%")
    }

    @Test func aStepIsPromotedAtTheFirstHealthyEvaluationAtOrAfterItsDuration() {
        var d = Driver(Self.spec())
        _ = d.command(.start, at: 0)
        // Evaluations every 7 s: 56 s is too early, 63 s is the first at or after 60 s.
        #expect(d.evaluate(at: 56).canaryWeight == nil)
        let out = d.evaluate(at: 63)
        #expect(out.canaryWeight == 500)
        #expect(out.decision.reason == .stepPromoted)
        #expect(out.decision.elapsedAtStep == 63 * Self.second)
        #expect(out.splitCause(route: "web", spec: d.machine.spec) == "rollout web step 2 (5%)")
        // The new step's clock starts at the promotion.
        #expect(d.machine.elapsedAtStep(now: 70 * Self.second) == 7 * Self.second)
        #expect(d.evaluate(at: 122).canaryWeight == nil)
        #expect(d.evaluate(at: 123).canaryWeight == 1_000)
    }

    @Test func aSingleStepOf100PromotesOnStart() {
        var d = Driver(RolloutSpec(canary: "b", baseline: "a", steps: [10_000]))
        let out = d.command(.start, at: 0)
        #expect(out.to == .promoted && out.canaryWeight == 10_000)
    }

    // MARK: Breaches

    @Test func anAbsoluteBreachRollsBackAfterExactlyFailureLimitEvaluations() {
        var d = Driver(Self.spec(failureLimit: 3))
        _ = d.command(.start, at: 0)
        let failing = RolloutStats(requests: 1_000, errors: 19, p99: 210 * Self.ms)
        let first = d.evaluate(at: 10, canary: failing)
        #expect(first.decision.reason == .breached(failures: 1))
        #expect(first.to == .progressing(step: 0) && first.canaryWeight == nil)
        #expect(first.decision.summary == "error_rate canary 1.9% > 0.5%, error_rate canary 1.9% - stable 0.1% = +1.8% > +0.2% "
            + "(failure 1 of 3): holding step 1 (1%)")
        let second = d.evaluate(at: 20, canary: failing)
        #expect(second.decision.reason == .breached(failures: 2))
        #expect(second.to == .progressing(step: 0) && second.canaryWeight == nil)
        let third = d.evaluate(at: 30, canary: failing)
        #expect(third.decision.reason == .rolledBack(failures: 3))
        #expect(third.to == .rolledBack && third.canaryWeight == 0)
        #expect(third.isBreach && third.changed)
        #expect(third.decision.summary == "error_rate canary 1.9% > 0.5%, error_rate canary 1.9% - stable 0.1% = +1.8% > +0.2% "
            + "for 3 evaluations: rolled back from step 1 (1%) to 0%")
        #expect(third.splitCause(route: "web", spec: d.machine.spec) == "rollout web rolled back (0%)")

        // It stays rolled back, whatever the statistics say, until an operator starts again.
        let later = d.evaluate(at: 40)
        #expect(later.decision.reason == .notEvaluated && later.canaryWeight == nil && later.to == .rolledBack)
        #expect(d.evaluate(at: 400).to == .rolledBack)
        #expect(d.machine.lastDecision?.reason == .rolledBack(failures: 3))
        let again = d.command(.start, at: 500)
        #expect(again.to == .progressing(step: 0) && again.canaryWeight == 100)
    }

    @Test func aP99BreachUsesTheSameCount() {
        var d = Driver(Self.spec(gates: [.maxP99(nanos: 400 * Self.ms)]))
        _ = d.command(.start, at: 0)
        let slow = RolloutStats(requests: 1_000, errors: 0, p99: 512 * Self.ms)
        #expect(d.evaluate(at: 10, canary: slow).decision.summary == "p99_latency canary 512ms > 400ms (failure 1 of 2): holding step 1 (1%)")
        let out = d.evaluate(at: 20, canary: slow)
        #expect(out.to == .rolledBack)
        #expect(out.decision.summary == "p99_latency canary 512ms > 400ms for 2 evaluations: rolled back from step 1 (1%) to 0%")
    }

    @Test func aRelativeErrorRateBreachRollsBackAfterExactlyFailureLimitEvaluations() {
        // Only the relative gate: the canary's 0.9% is fine in absolute terms (no max), but it is
        // 0.6 points above the baseline's 0.3%.
        var d = Driver(Self.spec(gates: [.maxErrorRateIncrease(millionths: 2_000)]))
        _ = d.command(.start, at: 0)
        let canary = RolloutStats(requests: 1_000, errors: 9, p99: 200 * Self.ms)
        let baseline = RolloutStats(requests: 10_000, errors: 30, p99: 200 * Self.ms)
        let first = d.evaluate(at: 10, canary: canary, baseline: baseline)
        #expect(first.decision.reason == .breached(failures: 1) && first.canaryWeight == nil)
        let second = d.evaluate(at: 20, canary: canary, baseline: baseline)
        #expect(second.to == .rolledBack && second.canaryWeight == 0)
        #expect(second.decision.summary == "error_rate canary 0.9% - stable 0.3% = +0.6% > +0.2% for 2 evaluations: "
            + "rolled back from step 1 (1%) to 0%")
        #expect(second.decision.gates.map(\.verdict) == [.fail])
    }

    @Test func aRelativeP99BreachRollsBackAfterExactlyFailureLimitEvaluations() {
        var d = Driver(Self.spec(failureLimit: 3, gates: [.maxP99Ratio(1.25)]))
        _ = d.command(.start, at: 0)
        // Promote once so the breach happens at step 2.
        _ = d.evaluate(at: 60)
        let canary = RolloutStats(requests: 1_000, errors: 0, p99: 520 * Self.ms)
        let baseline = RolloutStats(requests: 10_000, errors: 0, p99: 300 * Self.ms)
        #expect(d.evaluate(at: 70, canary: canary, baseline: baseline).decision.reason == .breached(failures: 1))
        #expect(d.evaluate(at: 80, canary: canary, baseline: baseline).decision.reason == .breached(failures: 2))
        let third = d.evaluate(at: 90, canary: canary, baseline: baseline)
        #expect(third.to == .rolledBack && third.canaryWeight == 0)
        #expect(third.decision.summary == "p99_latency canary 520ms / stable 300ms = 1.73 > 1.25 for 3 evaluations: "
            + "rolled back from step 2 (5%) to 0%")
    }

    @Test func aHealthyEvaluationResetsTheCount() {
        var d = Driver(Self.spec())
        _ = d.command(.start, at: 0)
        let failing = RolloutStats(requests: 1_000, errors: 50, p99: 200 * Self.ms)
        #expect(d.evaluate(at: 10, canary: failing).decision.reason == .breached(failures: 1))
        #expect(d.evaluate(at: 20).decision.reason == .healthy)
        #expect(d.machine.consecutiveFailures == 0)
        #expect(d.evaluate(at: 30, canary: failing).decision.reason == .breached(failures: 1))
        #expect(d.evaluate(at: 40, canary: failing).to == .rolledBack)
    }

    @Test func aValueEqualToItsThresholdPasses() {
        var d = Driver(Self.spec(failureLimit: 1))
        _ = d.command(.start, at: 0)
        // 0.5% exactly; 0.5% - 0.3% = 0.2% exactly; 500 ms = 1.25 × 400 ms exactly; 400 ms exactly.
        let canary = RolloutStats(requests: 1_000, errors: 5, p99: 400 * Self.ms)
        let baseline = RolloutStats(requests: 10_000, errors: 30, p99: 320 * Self.ms)
        let out = d.evaluate(at: 10, canary: canary, baseline: baseline)
        #expect(out.decision.reason == .healthy, "\(out.decision.summary)")
        #expect(out.decision.gates.map(\.verdict) == [.pass, .pass, .pass, .pass])
        // One error more fails at once (failure_limit 1).
        let worse = RolloutStats(requests: 1_000, errors: 6, p99: 400 * Self.ms)
        #expect(d.evaluate(at: 20, canary: worse, baseline: baseline).to == .rolledBack)
    }

    // MARK: Insufficient data

    @Test func tooLittleTrafficHoldsTheStepAndNeverPromotes() {
        var d = Driver(Self.spec())
        _ = d.command(.start, at: 0)
        let thin = RolloutStats(requests: 120, errors: 0, p99: 100 * Self.ms)
        for t in stride(from: UInt64(10), through: 600, by: 10) {
            let out = d.evaluate(at: t, canary: thin)
            #expect(out.decision.reason == .insufficientData)
            #expect(out.canaryWeight == nil && out.to == .progressing(step: 0))
        }
        #expect(d.machine.lastDecision?.summary == "not enough data at step 1 (1%): canary 120 of 200 requests; holding")
        #expect(d.machine.lastEvaluation?.gates.allSatisfy { $0.verdict == .noData } == true)
        // Even a canary failing every request is not judged on 120 requests.
        #expect(d.evaluate(at: 610, canary: RolloutStats(requests: 120, errors: 120, p99: 9 * Self.second))
            .decision.reason == .insufficientData)
        // No statistics at all (a new series) is the same.
        #expect(d.evaluate(at: 620, canary: nil, baseline: nil).decision.reason == .insufficientData)
        // Once there is enough, the step (long past its duration) is promoted.
        let out = d.evaluate(at: 630)
        #expect(out.to == .progressing(step: 1) && out.canaryWeight == 500)
    }

    @Test func tooLittleBaselineTrafficHoldsTheRelativeGates() {
        var d = Driver(Self.spec(gates: [.maxErrorRate(millionths: 5_000), .maxErrorRateIncrease(millionths: 2_000)]))
        _ = d.command(.start, at: 0)
        let thinBaseline = RolloutStats(requests: 50, errors: 0, p99: 100 * Self.ms)
        let out = d.evaluate(at: 60, baseline: thinBaseline)
        #expect(out.decision.reason == .insufficientData && out.canaryWeight == nil)
        #expect(out.decision.summary == "not enough data at step 1 (1%): stable 50 of 200 requests; holding")
        #expect(out.decision.gates.map(\.verdict) == [.pass, .noData])
        // An absolute gate still fails without baseline data.
        let failing = RolloutStats(requests: 1_000, errors: 100, p99: 100 * Self.ms)
        #expect(d.evaluate(at: 70, canary: failing, baseline: thinBaseline).decision.reason == .breached(failures: 1))
    }

    @Test func insufficientDataLeavesTheFailureCountAsItIs() {
        var d = Driver(Self.spec())
        _ = d.command(.start, at: 0)
        let failing = RolloutStats(requests: 1_000, errors: 50, p99: 200 * Self.ms)
        #expect(d.evaluate(at: 10, canary: failing).decision.reason == .breached(failures: 1))
        #expect(d.evaluate(at: 20, canary: nil).decision.reason == .insufficientData)
        #expect(d.machine.consecutiveFailures == 1)
        #expect(d.evaluate(at: 30, canary: failing).to == .rolledBack)
    }

    @Test func noGatesPromotesOnTimeAndTrafficAlone() {
        var d = Driver(Self.spec(gates: []))
        _ = d.command(.start, at: 0)
        #expect(d.evaluate(at: 60, canary: RolloutStats(requests: 199, errors: 199, p99: nil)).decision.reason == .insufficientData)
        let out = d.evaluate(at: 70, canary: RolloutStats(requests: 200, errors: 0, p99: nil))
        #expect(out.canaryWeight == 500)
        #expect(out.decision.summary == "step 1 (1%) healthy for 1m10s (no gates, 200 requests): promoted to step 2 (5%)")
    }

    // MARK: Operator commands

    @Test func pauseHoldsTheStepAndResumeContinuesWithTheElapsedTimeKept() {
        var d = Driver(Self.spec())
        _ = d.command(.start, at: 0)
        #expect(d.evaluate(at: 30).decision.reason == .healthy)
        let pause = d.command(.pause, at: 30)
        #expect(pause.to == .paused(step: 0) && pause.canaryWeight == nil && pause.accepted)
        #expect(pause.decision.summary == "paused by operator at step 1 (1%), 30s of 1m spent")
        // Held: evaluations do nothing, and the step's clock is stopped.
        for t in stride(from: UInt64(40), through: 300, by: 10) {
            let out = d.evaluate(at: t)
            #expect(out.decision.reason == .notEvaluated && out.canaryWeight == nil && out.to == .paused(step: 0))
        }
        #expect(d.machine.elapsedAtStep(now: 300 * Self.second) == 30 * Self.second)
        #expect(d.command(.pause, at: 300).accepted == false)
        #expect(d.machine.lastDecision?.reason == .paused, "a rejected command is not the last decision")

        let resume = d.command(.resume, at: 300)
        #expect(resume.to == .progressing(step: 0) && resume.canaryWeight == nil)
        #expect(resume.decision.summary == "resumed by operator at step 1 (1%), 30s of 1m spent")
        // 30 s spent before the pause + 30 s after the resume = promoted at 330 s, not earlier.
        #expect(d.evaluate(at: 320).canaryWeight == nil)
        let out = d.evaluate(at: 330)
        #expect(out.to == .progressing(step: 1) && out.canaryWeight == 500)
    }

    @Test func promoteJumpsTo100() {
        var d = Driver(Self.spec())
        _ = d.command(.start, at: 0)
        _ = d.evaluate(at: 60)
        let out = d.command(.promote, at: 65)
        #expect(out.from == .progressing(step: 1) && out.to == .promoted && out.canaryWeight == 10_000)
        #expect(out.decision.summary == "promoted to 100% by operator (from progressing at step 2 (5%))")
        #expect(out.splitCause(route: "web", spec: d.machine.spec) == "rollout web promoted (100%)")
        #expect(d.command(.promote, at: 70).accepted == false)
        #expect(d.evaluate(at: 80).decision.reason == .notEvaluated)
        // From paused and from pending too.
        var p = Driver(Self.spec())
        _ = p.command(.start, at: 0)
        _ = p.command(.pause, at: 5)
        #expect(p.command(.promote, at: 6).canaryWeight == 10_000)
        var q = Driver(Self.spec())
        #expect(q.command(.promote, at: 0).to == .promoted)
    }

    @Test func abortSendsEveryoneBackToTheBaseline() {
        var d = Driver(Self.spec())
        _ = d.command(.start, at: 0)
        _ = d.evaluate(at: 60)
        let out = d.command(.abort, at: 61)
        #expect(out.to == .aborted && out.canaryWeight == 0)
        #expect(out.decision.summary == "aborted by operator: canary to 0% (from progressing at step 2 (5%))")
        #expect(out.splitCause(route: "web", spec: d.machine.spec) == "rollout web aborted (0%)")
        #expect(d.command(.abort, at: 62).accepted == false)
        #expect(d.evaluate(at: 70).to == .aborted)
        #expect(d.command(.resume, at: 71).accepted == false)
        let start = d.command(.start, at: 80)
        #expect(start.to == .progressing(step: 0) && start.canaryWeight == 100)
        // Abort after a promotion is the emergency path back.
        _ = d.command(.promote, at: 90)
        #expect(d.command(.abort, at: 91).canaryWeight == 0)
    }

    @Test(arguments: [
        (RolloutState.pending, RolloutCommand.pause, "cannot pause: the rollout is pending, not progressing"),
        (.pending, .resume, "cannot resume: the rollout is pending, not paused"),
        (.progressing(step: 0), .start, "cannot start: already progressing at step 1 (1%); promote or abort it first"),
        (.progressing(step: 0), .resume, "cannot resume: the rollout is progressing at step 1 (1%), not paused"),
        (.paused(step: 0), .start, "cannot start: already paused at step 1 (1%); resume, promote or abort it first"),
        (.rolledBack, .pause, "cannot pause: the rollout is rolled back, not progressing"),
    ])
    func commandsThatDoNotApplyAreRejected(_ state: RolloutState, _ command: RolloutCommand, _ message: String) {
        var d = Driver(Self.spec(failureLimit: 1))
        switch state {
        case .pending: break
        case .progressing: _ = d.command(.start, at: 0)
        case .paused:
            _ = d.command(.start, at: 0)
            _ = d.command(.pause, at: 1)
        case .rolledBack:
            _ = d.command(.start, at: 0)
            _ = d.evaluate(at: 1, canary: RolloutStats(requests: 1_000, errors: 1_000, p99: 1 * Self.ms))
        case .promoted, .aborted: break
        }
        #expect(d.machine.state == state)
        let out = d.command(command, at: 2)
        #expect(!out.accepted && out.canaryWeight == nil && out.from == state && out.to == state && !out.changed)
        #expect(out.decision.reason == .rejected(command))
        #expect(out.decision.summary == message)
        #expect(d.machine.state == state)
    }

    // MARK: on_failure: pause

    @Test func onFailurePausePausesInsteadOfRollingBack() {
        var d = Driver(Self.spec(onFailure: .pause))
        _ = d.command(.start, at: 0)
        #expect(d.evaluate(at: 10).decision.reason == .healthy)
        let failing = RolloutStats(requests: 1_000, errors: 19, p99: 200 * Self.ms)
        #expect(d.evaluate(at: 20, canary: failing).decision.reason == .breached(failures: 1))
        let out = d.evaluate(at: 30, canary: failing)
        #expect(out.to == .paused(step: 0) && out.canaryWeight == nil)
        #expect(out.decision.reason == .pausedOnFailure(failures: 2))
        #expect(out.decision.summary.hasSuffix("for 2 evaluations: paused at step 1 (1%)"))
        #expect(d.evaluate(at: 40, canary: failing).decision.reason == .notEvaluated)
        // Resume: the count starts again, the elapsed time (30 s) is kept.
        _ = d.command(.resume, at: 100)
        #expect(d.machine.consecutiveFailures == 0)
        #expect(d.evaluate(at: 110, canary: failing).decision.reason == .breached(failures: 1))
        #expect(d.evaluate(at: 120).decision.reason == .healthy)
        #expect(d.evaluate(at: 130).canaryWeight == 500)
    }

    // MARK: Restart

    @Test func aRestartMidStepResumesAtTheSameStepWithTheElapsedTimeKept() {
        var d = Driver(Self.spec())
        _ = d.command(.start, at: 0)
        _ = d.evaluate(at: 60)
        _ = d.evaluate(at: 120)
        #expect(d.machine.state == .progressing(step: 2))
        _ = d.evaluate(at: 160)
        let snapshot = d.machine.snapshot(now: 160 * Self.second)
        #expect(snapshot == RolloutSnapshot(
            state: .progressing, step: 2, canaryWeight: 1_000, elapsedAtStep: 40 * Self.second, consecutiveFailures: 0,
            lastDecision: d.machine.lastDecision!.summary))

        // The new process's monotonic clock starts near 0.
        let boot = 3 * Self.second
        var (machine, out) = RolloutMachine.restoring(spec: Self.spec(), snapshot: snapshot, now: boot)
        #expect(out.to == .progressing(step: 2) && out.canaryWeight == 1_000 && out.decision.reason == .restored)
        #expect(out.decision.summary.hasPrefix("resumed after restart at step 3 (10%) with 40s of 1m spent; before the restart: healthy at step 3 (10%)"))
        #expect(machine.lastDecision == out.decision)
        #expect(machine.elapsedAtStep(now: boot) == 40 * Self.second)
        // 20 s more at the step: promoted to step 4, not earlier, and not to step 1 or 100%.
        #expect(machine.evaluate(now: boot + 10 * Self.second, canary: Self.healthyCanary, baseline: Self.healthyBaseline)
            .decision.reason == .healthy)
        let promoted = machine.evaluate(now: boot + 20 * Self.second, canary: Self.healthyCanary, baseline: Self.healthyBaseline)
        #expect(promoted.to == .progressing(step: 3) && promoted.canaryWeight == 2_500)
    }

    @Test func aRestartKeepsPauseAndTheFailureCount() {
        var d = Driver(Self.spec())
        _ = d.command(.start, at: 0)
        let failing = RolloutStats(requests: 1_000, errors: 50, p99: 200 * Self.ms)
        #expect(d.evaluate(at: 10, canary: failing).decision.reason == .breached(failures: 1))
        var (machine, _) = RolloutMachine.restoring(spec: Self.spec(), snapshot: d.machine.snapshot(now: 15 * Self.second),
                                                    now: 1)
        #expect(machine.consecutiveFailures == 1)
        #expect(machine.evaluate(now: 2, canary: failing, baseline: Self.healthyBaseline).to == .rolledBack)

        _ = d.command(.pause, at: 20)
        let (paused, out) = RolloutMachine.restoring(spec: Self.spec(), snapshot: d.machine.snapshot(now: 99 * Self.second), now: 7)
        #expect(paused.state == .paused(step: 0) && out.canaryWeight == 100)
        #expect(paused.elapsedAtStep(now: 500 * Self.second) == 20 * Self.second)
        #expect(out.decision.summary.hasPrefix("restored after restart: paused at step 1 (1%) with 20s of 1m spent"))
    }

    @Test func aRestartAfterTheStepsChangedNeverRaisesTheShare() {
        let snapshot = RolloutSnapshot(state: .progressing, step: 2, canaryWeight: 1_000, elapsedAtStep: 40 * Self.second,
                                       consecutiveFailures: 1, lastDecision: "")
        // 10% is no longer a step: resume at 5% (the highest step below), its clock at 0.
        var changed = Self.spec()
        changed.steps = [100, 500, 2_000, 10_000]
        let (machine, out) = RolloutMachine.restoring(spec: changed, snapshot: snapshot, now: 0)
        #expect(machine.state == .progressing(step: 1) && out.canaryWeight == 500)
        #expect(machine.elapsedAtStep(now: 0) == 0 && machine.consecutiveFailures == 0)
        #expect(out.decision.summary == "resumed after restart at step 2 (5%) with 0s of 1m spent (the steps changed; the persisted share was 10%)")
        // The same share at another index is recognised as the same step.
        changed.steps = [1_000, 5_000, 10_000]
        let (same, _) = RolloutMachine.restoring(spec: changed, snapshot: snapshot, now: 0)
        #expect(same.state == .progressing(step: 0) && same.elapsedAtStep(now: 0) == 0)
        changed.steps = [100, 200, 1_000, 10_000]
        let (kept, _) = RolloutMachine.restoring(spec: changed, snapshot: snapshot, now: 0)
        #expect(kept.state == .progressing(step: 2) && kept.elapsedAtStep(now: 0) == 40 * Self.second)
    }

    @Test(arguments: [RolloutPhase.pending, .promoted, .rolledBack, .aborted])
    func terminalStatesAreRestoredAsTheyWere(_ phase: RolloutPhase) {
        let snapshot = RolloutSnapshot(state: phase, step: 0, canaryWeight: 0, elapsedAtStep: 0, consecutiveFailures: 0,
                                       lastDecision: "x")
        let (machine, out) = RolloutMachine.restoring(spec: Self.spec(), snapshot: snapshot, now: 0)
        #expect(machine.state.phase == phase)
        #expect(out.canaryWeight == machine.canaryWeight)
        #expect(out.decision.summary.hasSuffix("; before the restart: x"))
    }

    // MARK: Window

    @Test func theEvaluationWindowIsTheTimeAtTheStepCappedAtItsDuration() {
        var d = Driver(Self.spec())
        #expect(d.machine.evaluationWindowSeconds(now: 0) == 1)
        _ = d.command(.start, at: 100)
        #expect(d.machine.evaluationWindowSeconds(now: 100 * Self.second) == 1)
        #expect(d.machine.evaluationWindowSeconds(now: 112 * Self.second + 300 * Self.ms) == 13)
        #expect(d.machine.evaluationWindowSeconds(now: 1_000 * Self.second) == 60)
    }

    // MARK: Statistics

    @Test func cohortStatsCountUpstreamFailuresWithoutCountingThemTwice() {
        let stats = CohortStats(seconds: 60, requests: 1_000, errors: 12, upstreamErrors: 10, rate: 16.7, errorRate: 0.012,
                                p50: 0.1, p95: 0.2, p99: 0.4125)
        #expect(RolloutStats(stats) == RolloutStats(requests: 1_000, errors: 12, p99: 412_500_000))
        let midBody = CohortStats(seconds: 60, requests: 1_000, errors: 2, upstreamErrors: 30, rate: 16.7, errorRate: 0.002,
                                  p50: nil, p95: nil, p99: nil)
        #expect(RolloutStats(midBody) == RolloutStats(requests: 1_000, errors: 30, p99: nil))
    }
}
