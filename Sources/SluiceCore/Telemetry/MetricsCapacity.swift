/// Fixed sizes of a `MetricsShard`, chosen once at start: nothing grows after that.
///
/// A shard reserves `series × 1400 + listeners × 2 + upstreams × 2` 64-bit words (about 2.9 MB
/// of address space with the defaults); pages are zero-filled on first touch, so only the series
/// in use occupy memory.
public struct MetricsCapacity: Sendable, Equatable {
    /// Route/cohort series, including the reserved unrouted series 0.
    public var series = 256
    /// Listeners (indexed as in the config's `listeners:` list).
    public var listeners = 64
    /// Upstream groups (stable ids across reloads).
    public var upstreams = 256

    /// The default capacity.
    public init() {}

    /// A capacity with the given sizes (each at least 1).
    public init(series: Int, listeners: Int, upstreams: Int) {
        self.series = max(1, series)
        self.listeners = max(1, listeners)
        self.upstreams = max(1, upstreams)
    }
}
