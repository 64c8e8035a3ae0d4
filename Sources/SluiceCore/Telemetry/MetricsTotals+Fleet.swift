/// Reading and building the per-series counters that replicas of a fleet exchange (requests,
/// 5xx, upstream failures, latency buckets), so a rollout leader can window the fleet's sums
/// with the same `StatsWindow` as one replica's.
extension MetricsTotals {
    /// The non-zero latency buckets of `series` as (bucket index, count).
    public func latencyBuckets(series: Int) -> [(index: Int, count: UInt64)] {
        let base = series * SeriesLayout.stride + SeriesLayout.latency
        var out: [(index: Int, count: UInt64)] = []
        for k in 0..<LatencyScale.bucketCount where seriesWords[base + k] != 0 { out.append((k, seriesWords[base + k])) }
        return out
    }

    /// Adds counts to `series`: requests, 5xx answers, upstream failures (counted under the
    /// first reason) and latency buckets (index, count; indices outside the scale are ignored).
    public mutating func add(series: Int, requests: UInt64, serverErrors: UInt64, upstreamErrors: UInt64,
                             latency: [(index: Int, count: UInt64)]) {
        let base = series * SeriesLayout.stride
        seriesWords[base + SeriesLayout.requests] &+= requests
        seriesWords[base + SeriesLayout.serverErrors] &+= serverErrors
        seriesWords[base + SeriesLayout.upstreamErrors] &+= upstreamErrors
        for b in latency where b.index >= 0 && b.index < LatencyScale.bucketCount {
            seriesWords[base + SeriesLayout.latency + b.index] &+= b.count
        }
    }
}
