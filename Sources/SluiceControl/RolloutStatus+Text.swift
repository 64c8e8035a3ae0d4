#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

extension RolloutStatus {
    /// The text `sluice rollout status` prints; `clock` turns Unix milliseconds into the time
    /// shown (default: local `HH:MM:SS`).
    ///
    /// ```
    /// web: rolled back (canary 0% in the split; `sluice rollout start web` starts again from step 1)
    ///   steps 10% 25% 50% 100%, 3s each, evaluated every 500ms, min_requests 20
    ///   failures: 0 of 2 (on_failure: rollback)
    ///   last evaluation at 14:03:10, window 2s: canary 212 requests, 98 errors, p99 3.2ms; stable 220 requests, 0 errors, p99 2.9ms
    ///     GATE                    CANARY  STABLE  VALUE   THRESHOLD  VERDICT
    ///     error_rate max          46.23%  0%      46.23%  5%         fail
    ///   why: error_rate canary 46.23% > 5% for 2 evaluations: rolled back from step 3 (50%) to 0% (at 14:03:10)
    /// ```
    public func text(clock: (UInt64) -> String = RolloutStatus.localClock) -> String {
        var out = "\(route): \(stateLine)\n"
        out += "  steps \(steps.joined(separator: " ")), \(stepDuration) each, evaluated every \(interval), "
            + "min_requests \(minRequests)\n"
        if state == "progressing" || state == "paused" {
            out += "  time at step: \(timeAtStep) of \(stepDuration)"
                + (state == "paused" ? " (clock stopped while paused)" : "") + "\n"
        }
        out += "  failures: \(consecutiveFailures) of \(failureLimit) (on_failure: \(onFailure))\n"
        if let e = lastEvaluation {
            let window = e.windowSeconds.map { ", window " + RolloutFormat.duration(seconds: Double($0)) } ?? ""
            out += "  last evaluation at \(clock(e.unixMillis))\(window): "
                + "\(canary) \(Self.figuresText(e.canary)); \(baseline) \(Self.figuresText(e.baseline))\n"
        } else {
            out += "  no evaluation yet\n"
        }
        if !gates.isEmpty {
            var rows: [[String]] = [["GATE", canary.uppercased(), baseline.uppercased(), "VALUE", "THRESHOLD", "VERDICT"]]
            for g in gates {
                let name = g.kind == "max" ? "\(g.metric) max" : "\(g.metric) vs \(baseline)"
                rows.append([name, g.canaryValue ?? "-", g.baselineValue ?? "-", g.value ?? "-", g.threshold,
                             String(g.verdict.map { $0 == "_" ? " " : $0 })])
            }
            for line in HistoryTable.leftAligned(rows).split(separator: "\n") { out += "    \(line)\n" }
        } else {
            out += "  no gates: a step is promoted on time and min_requests alone\n"
        }
        if let d = lastDecision {
            out += "  why: \(d.summary) (at \(clock(d.unixMillis)))\n"
        }
        if let next = nextEvaluationInNs {
            out += "  next evaluation in \(RolloutFormat.duration(nanos: next))\n"
        }
        for w in warnings { out += "  warning: \(w)\n" }
        return out
    }

    /// The first line after the route's name.
    var stateLine: String {
        let split = splitCanaryWeight.map { "canary \($0) in the split" } ?? "the canary is not in the split"
        switch state {
        case "pending":
            return "pending (not started; \(split); `sluice rollout start \(route)` starts it)"
        case "progressing":
            return "progressing at \(stepLabel ?? "?") of \(steps.count) (\(split))"
        case "paused":
            return "paused at \(stepLabel ?? "?") of \(steps.count) (\(split); `sluice rollout resume \(route)` continues)"
        case "promoted":
            return "promoted (\(split))"
        case "rolled_back":
            return "rolled back (\(split); `sluice rollout start \(route)` starts again from step 1)"
        case "aborted":
            return "aborted (\(split); `sluice rollout start \(route)` starts again from step 1)"
        default:
            return state
        }
    }

    /// `212 requests, 98 errors (46.23%), p99 3.2ms` or `no data`.
    static func figuresText(_ f: Figures?) -> String {
        guard let f else { return "no data" }
        var text = "\(f.requests) requests, \(f.errors) errors"
        if f.requests > 0 { text += " (\(RolloutFormat.percent(f.errorRate)))" }
        if let p99 = f.p99Seconds { text += ", p99 \(RolloutFormat.duration(seconds: p99))" }
        return text
    }

    /// Unix milliseconds as local time of day, `14:03:10`.
    public static func localClock(_ unixMillis: UInt64) -> String {
        var seconds = time_t(unixMillis / 1000)
        var parts = tm()
        guard localtime_r(&seconds, &parts) != nil else { return "\(unixMillis / 1000)" }
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }
}
