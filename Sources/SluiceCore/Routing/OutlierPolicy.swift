/// The pure decisions of endpoint availability: passive ejection (how many failures eject, for
/// how long, how much of a group may be out), active check transitions, panic mode. No clock,
/// no atomics: times and counts come in, decisions go out, so they are tested exactly.
public enum OutlierPolicy {
    /// How long the `timesEjected`-th ejection (1-based) lasts: `base × timesEjected`, at most
    /// `max` (Envoy's outlier detection grows ejections the same way).
    public static func ejectionNanos(_ spec: OutlierSpec, timesEjected: UInt64) -> UInt64 {
        let n = max(1, timesEjected)
        let (product, overflow) = spec.baseEjectionNanos.multipliedReportingOverflow(by: n)
        return overflow ? spec.maxEjectionNanos : min(product, spec.maxEjectionNanos)
    }

    /// The most endpoints of a group of `groupSize` that may be ejected at once: the largest n
    /// with n / groupSize ≤ `maxEjectedPercent` %. A lone endpoint is never ejected below 100 %.
    public static func maxEjected(groupSize: Int, percent: Int) -> Int {
        guard groupSize > 0, percent > 0 else { return 0 }
        return groupSize * min(percent, 100) / 100
    }

    /// Whether an endpoint with `failures` consecutive failures is ejected now, and for how long
    /// (nil: not ejected). `alreadyEjected` endpoints of its group (of `groupSize`) are out now;
    /// `timesEjected` counts its earlier ejections (after the decay of `decayedEjections`).
    public static func eject(_ spec: OutlierSpec, failures: UInt64, timesEjected: UInt64, groupSize: Int,
                             alreadyEjected: Int) -> UInt64? {
        guard spec.isOn, failures >= UInt64(spec.consecutiveFailures) else { return nil }
        guard alreadyEjected + 1 <= maxEjected(groupSize: groupSize, percent: spec.maxEjectedPercent) else { return nil }
        return ejectionNanos(spec, timesEjected: timesEjected + 1)
    }

    /// The ejection count after an endpoint has been back and not ejected again for
    /// `healthyNanos`: one less per `baseEjection` × 2 of good behaviour (never below 0), so an
    /// endpoint that failed once long ago starts again from the base ejection time.
    public static func decayedEjections(_ spec: OutlierSpec, timesEjected: UInt64, healthyNanos: UInt64) -> UInt64 {
        let step = max(1, spec.baseEjectionNanos &* 2)
        let steps = healthyNanos / step
        return steps >= timesEjected ? 0 : timesEjected - steps
    }

    /// Panic mode: fewer than half of a group's endpoints are available, so the group is balanced
    /// over all of them (a mistaken check must not pile all load on one survivor).
    @inline(__always)
    public static func panics(available: Int, total: Int) -> Bool {
        available * 2 < total
    }
}

/// One endpoint's active-check record: consecutive passes and failures and the verdict. A value
/// the checker keeps per endpoint; `record` is the pure transition.
public struct ActiveCheckState: Sendable, Equatable {
    /// The verdict: true while the endpoint is in balancing as far as checks are concerned.
    public private(set) var healthy: Bool
    /// Consecutive passing checks (0 after a failure).
    public private(set) var passes: Int = 0
    /// Consecutive failing checks (0 after a pass).
    public private(set) var failures: Int = 0

    /// A new endpoint: healthy until `unhealthy` checks fail (a start or reload drops no traffic).
    public init(healthy: Bool = true) {
        self.healthy = healthy
    }

    /// Records one check's result; returns true when the verdict changed.
    public mutating func record(passed: Bool, _ spec: HealthCheckSpec) -> Bool {
        if passed {
            passes += 1
            failures = 0
            if !healthy && passes >= spec.healthy {
                healthy = true
                return true
            }
        } else {
            failures += 1
            passes = 0
            if healthy && failures >= spec.unhealthy {
                healthy = false
                return true
            }
        }
        return false
    }
}
