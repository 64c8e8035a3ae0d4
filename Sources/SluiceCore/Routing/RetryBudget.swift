/// One worker's retry budgets, one per route: retries may be at most `budget_percent` of the
/// route's requests over the last 10 seconds, plus 3 per second (30 per window), so retries
/// never multiply an outage (Envoy's retry budget, Finagle's `RetryBudget`).
///
/// Per worker, not process-wide: no shared counter is touched per request, and the kernel spreads
/// connections evenly over the workers, so the percentage holds for the process; the "plus 3 per
/// second" floor is per worker (N workers allow up to 3N per second on a quiet route).
///
/// The window is ten one-second buckets per route, advanced by the caller's clock (a parameter:
/// pure, testable with any times). Rebuilt (emptied) when the worker's table changes.
/// Owned by one worker thread.
public struct RetryBudget: Sendable {
    /// Buckets per window (one per second).
    public static let buckets = 10
    /// Retries every window allows beyond the percentage (3 per second).
    public static let floor = 30
    /// Per route × bucket: requests counted.
    private var requests: [UInt32] = []
    /// Per route × bucket: retries counted.
    private var retries: [UInt32] = []
    /// Per route: the second (monotonic) of the newest bucket written.
    private var second: [UInt64] = []
    /// The table the budgets were made for. Strong on purpose: a `weak` reference gives the table
    /// a side table, and then every retain and release of it (one per request on the data path)
    /// takes the runtime's slow path; the worker replaces it at the next `use` anyway.
    private var table: RoutingTable?

    /// No routes yet.
    public init() {}

    /// Empties the budgets for `table`'s routes unless they were made for it already.
    public mutating func use(_ table: RoutingTable) {
        guard self.table !== table else { return }
        self.table = table
        let n = table.routes.count
        requests = Array(repeating: 0, count: n * Self.buckets)
        retries = Array(repeating: 0, count: n * Self.buckets)
        second = Array(repeating: 0, count: n)
    }

    /// Counts a request of `route` at `nanos` (monotonic).
    @inline(__always)
    public mutating func noteRequest(route: Int, nanos: UInt64) {
        guard route >= 0 && route < second.count else { return }
        let b = advance(route, nanos)
        requests[b] &+= 1
    }

    /// True when a retry of `route` at `nanos` fits in its budget of `percent`; counts it when it does.
    public mutating func takeRetry(route: Int, percent: Int, nanos: UInt64) -> Bool {
        guard route >= 0 && route < second.count else { return false }
        let b = advance(route, nanos)
        var reqs = 0
        var done = 0
        for i in 0..<Self.buckets {
            reqs += Int(requests[route * Self.buckets + i])
            done += Int(retries[route * Self.buckets + i])
        }
        guard done < reqs * percent / 100 + Self.floor else { return false }
        retries[b] &+= 1
        return true
    }

    /// The bucket index of `nanos` for `route`, clearing buckets that fell out of the window.
    private mutating func advance(_ route: Int, _ nanos: UInt64) -> Int {
        let s = nanos / 1_000_000_000
        let last = second[route]
        if s > last {
            let stale = min(s - last, UInt64(Self.buckets))
            for k in 1...stale {
                let i = route * Self.buckets + Int((last + k) % UInt64(Self.buckets))
                requests[i] = 0
                retries[i] = 0
            }
            second[route] = s
        }
        // A clock that went back (it does not: monotonic) writes into the newest bucket.
        return route * Self.buckets + Int(second[route] % UInt64(Self.buckets))
    }
}
