/// Windowed statistics per series: request rate, error rate and latency percentiles over the
/// last minutes, from periodic samples of the cumulative totals.
///
/// Pure: the caller samples (`record`) every few seconds and passes the time. Each sample is
/// turned into an interval holding, per series that changed, the difference to the previous
/// sample: request, error and upstream-failure counts and the non-zero latency buckets (sparse).
/// A query sums the intervals that lie mostly inside the window, so the answer covers the
/// window to within one sampling period, and is exact for the intervals it covers.
/// Percentiles carry `LatencyScale`'s stated error.
public struct StatsWindow: Sendable {
    /// How long intervals are kept, in nanoseconds (the longest window that can be asked for).
    public private(set) var retention: UInt64

    /// One sampling period's changes.
    struct Interval: Sendable {
        var start: UInt64
        var end: UInt64
        var changes: [SeriesChange]
    }

    /// One series' changes in an interval.
    struct SeriesChange: Sendable {
        var series: Int32
        var requests: UInt64
        var errors: UInt64
        var upstreamErrors: UInt64
        /// (latency bucket, count) for buckets that changed.
        var buckets: [(index: UInt16, count: UInt64)]
    }

    private var intervals: [Interval] = []
    private var previous: MetricsTotals?
    private var previousTime: UInt64 = 0
    private var seriesIds: [SeriesLabels: Int32] = [:]

    /// An empty window keeping `retention` nanoseconds of intervals (default 5 minutes).
    public init(retention: UInt64 = 300_000_000_000) {
        self.retention = retention
    }

    /// Keeps at least `retention` nanoseconds from now on (never shortens it): for a longer
    /// window asked for later, e.g. a rollout step longer than the default 5 minutes. Intervals
    /// already dropped stay dropped.
    public mutating func extendRetention(to retention: UInt64) {
        self.retention = max(self.retention, retention)
    }

    /// When the latest sample was taken (nil before the first).
    public var latestSampleTime: UInt64? {
        previous == nil ? nil : previousTime
    }

    /// Takes a sample of the cumulative `totals` at `now` (monotonic nanoseconds, increasing);
    /// `names` labels the series for name queries. The first sample only sets the baseline.
    public mutating func record(totals: MetricsTotals, names: MetricsNames, now: UInt64) {
        for (i, labels) in names.series.enumerated().dropFirst(seriesIds.count) where seriesIds[labels] == nil {
            seriesIds[labels] = Int32(i)
        }
        defer {
            previous = totals
            previousTime = now
        }
        guard let prev = previous, now > previousTime else { return }
        var changes: [SeriesChange] = []
        for s in 0..<totals.seriesCount {
            let known = s < prev.seriesCount
            // Fault-drill requests with `count_in_gates: false` are not the cohort's own: left out.
            let requests = Self.delta(totals.requests(series: s) &- totals.gateExcludedRequests(series: s),
                                      known ? prev.requests(series: s) &- prev.gateExcludedRequests(series: s) : 0)
            let errors = Self.delta(totals.serverErrors(series: s) &- totals.gateExcludedErrors(series: s),
                                    known ? prev.serverErrors(series: s) &- prev.gateExcludedErrors(series: s) : 0)
            let upstreamErrors = Self.delta(totals.upstreamErrors(series: s), known ? prev.upstreamErrors(series: s) : 0)
            // Every bucket is compared, not only when `requests` moved: a sample may see a
            // request's bucket before its request count.
            var buckets: [(index: UInt16, count: UInt64)] = []
            let base = s * SeriesLayout.stride + SeriesLayout.latency
            for k in 0..<LatencyScale.bucketCount {
                let value = totals.seriesWords[base + k]
                let before = known ? prev.seriesWords[base + k] : 0
                if value != before { buckets.append((UInt16(k), Self.delta(value, before))) }
            }
            guard requests > 0 || upstreamErrors > 0 || errors > 0 || !buckets.isEmpty else { continue }
            changes.append(SeriesChange(series: Int32(s), requests: requests, errors: errors,
                                        upstreamErrors: upstreamErrors, buckets: buckets))
        }
        intervals.append(Interval(start: previousTime, end: now, changes: changes))
        let horizon = now > retention ? now - retention : 0
        // Keep an interval while any part of it lies inside the retention.
        if let firstKept = intervals.firstIndex(where: { $0.end > horizon }), firstKept > 0 {
            intervals.removeFirst(firstKept)
        }
    }

    /// The increase from `before` to `value` (a counter that went down restarted from 0).
    private static func delta(_ value: UInt64, _ before: UInt64) -> UInt64 {
        value >= before ? value - before : value
    }

    /// Stats of series `series` over the last `window` seconds before the latest sample; nil
    /// before two samples were taken.
    public func stats(series: Int32, window seconds: Int) -> CohortStats? {
        guard let latest = latestSampleTime, !intervals.isEmpty else { return nil }
        let span = UInt64(max(1, seconds)) * 1_000_000_000
        let from = latest > span ? latest - span : 0
        var covered: UInt64 = 0
        var requests: UInt64 = 0, errors: UInt64 = 0, upstreamErrors: UInt64 = 0
        var counts = [UInt64](repeating: 0, count: LatencyScale.bucketCount)
        for interval in intervals.reversed() {
            // Take an interval when more than half of it lies inside the window.
            let length = interval.end - interval.start
            let inside = interval.end > from ? interval.end - max(interval.start, from) : 0
            guard inside * 2 > length else { break }
            covered += length
            for change in interval.changes where change.series == series {
                requests &+= change.requests
                errors &+= change.errors
                upstreamErrors &+= change.upstreamErrors
                for b in change.buckets { counts[Int(b.index)] &+= b.count }
            }
        }
        guard covered > 0 else { return nil }
        let secondsCovered = Double(covered) / 1e9
        return CohortStats(
            seconds: secondsCovered, requests: requests, errors: errors, upstreamErrors: upstreamErrors,
            rate: Double(requests) / secondsCovered, errorRate: requests == 0 ? 0 : Double(errors) / Double(requests),
            p50: LatencyScale.quantile(0.50, counts: counts), p95: LatencyScale.quantile(0.95, counts: counts),
            p99: LatencyScale.quantile(0.99, counts: counts))
    }

    /// Stats of (route, cohort) over the last `window` seconds before the latest sample; nil
    /// when the pair has no series or fewer than two samples were taken. Cohort "" is the
    /// route's direct responses; route "" and cohort "" the unrouted requests.
    public func stats(route: String, cohort: String, window seconds: Int) -> CohortStats? {
        guard let id = seriesIds[SeriesLabels(route: route, cohort: cohort)] else { return nil }
        return stats(series: id, window: seconds)
    }
}
