/// One cohort's figures over a rollout's step window: what the gates read.
public struct RolloutStats: Sendable, Equatable {
    /// Requests finished in the window.
    public var requests: UInt64
    /// Failed requests in the window: 5xx responses and upstream failures (at most `requests`).
    public var errors: UInt64
    /// 99th percentile latency in nanoseconds (nil without requests).
    public var p99: UInt64?

    /// Creates figures; `errors` is capped at `requests`.
    public init(requests: UInt64, errors: UInt64, p99: UInt64?) {
        self.requests = requests
        self.errors = min(errors, requests)
        self.p99 = p99
    }

    /// The figures of windowed `CohortStats`. Errors are `max(errors, upstreamErrors)`: every
    /// upstream failure before the response head is already a 502/504 in `errors`, so adding the
    /// two would count those twice; the larger of the two never over-counts and still sees
    /// failures after the head (a reset mid-body) when they dominate.
    public init(_ stats: CohortStats) {
        let p99 = stats.p99.map { s -> UInt64 in
            let ns = (s * 1e9).rounded()
            return ns <= 0 ? 0 : ns >= 1.8e19 ? UInt64.max : UInt64(ns)
        }
        self.init(requests: stats.requests, errors: max(stats.errors, stats.upstreamErrors), p99: p99)
    }

    /// `errors / requests` (0 without requests).
    public var errorRate: Double {
        requests == 0 ? 0 : Double(errors) / Double(requests)
    }
}
