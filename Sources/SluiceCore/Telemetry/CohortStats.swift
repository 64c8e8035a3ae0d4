/// Rate, errors and latency of one series over a recent window.
public struct CohortStats: Sendable, Equatable {
    /// Seconds of samples the figures cover: the window, or less when the process is younger.
    public var seconds: Double
    /// Requests finished in the window.
    public var requests: UInt64
    /// Requests answered with a 5xx status (Sluice answers upstream failures with 502/504,
    /// so those are included).
    public var errors: UInt64
    /// Upstream failures (any reason) in the window, also those after the response head was sent.
    public var upstreamErrors: UInt64
    /// Requests per second.
    public var rate: Double
    /// `errors / requests` (0 without requests).
    public var errorRate: Double
    /// Median latency in seconds (nil without requests).
    public var p50: Double?
    /// 95th percentile latency in seconds (nil without requests).
    public var p95: Double?
    /// 99th percentile latency in seconds (nil without requests).
    public var p99: Double?

    /// Creates stats.
    public init(seconds: Double, requests: UInt64, errors: UInt64, upstreamErrors: UInt64, rate: Double, errorRate: Double,
                p50: Double?, p95: Double?, p99: Double?) {
        self.seconds = seconds
        self.requests = requests
        self.errors = errors
        self.upstreamErrors = upstreamErrors
        self.rate = rate
        self.errorRate = errorRate
        self.p50 = p50
        self.p95 = p95
        self.p99 = p99
    }
}
