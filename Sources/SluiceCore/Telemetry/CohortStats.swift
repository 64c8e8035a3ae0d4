/// Rate, errors and latency of one series over a recent window. Its JSON (the admin API's
/// windows: `seconds`, `requests`, `errors`, `upstream_errors`, `rate`, `error_rate`, `p50`,
/// `p95`, `p99`) writes absent percentiles as explicit nulls.
public struct CohortStats: Codable, Sendable, Equatable {
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

    /// An empty window (no samples yet).
    public static let empty = CohortStats(seconds: 0, requests: 0, errors: 0, upstreamErrors: 0, rate: 0, errorRate: 0,
                                          p50: nil, p95: nil, p99: nil)

    enum CodingKeys: String, CodingKey {
        case seconds, requests, errors, upstreamErrors = "upstream_errors", rate, errorRate = "error_rate", p50, p95, p99
    }

    /// Encodes with explicit nulls for absent percentiles.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(requests, forKey: .requests)
        try c.encode(errors, forKey: .errors)
        try c.encode(upstreamErrors, forKey: .upstreamErrors)
        try c.encode(rate, forKey: .rate)
        try c.encode(errorRate, forKey: .errorRate)
        try c.encode(p50, forKey: .p50)
        try c.encode(p95, forKey: .p95)
        try c.encode(p99, forKey: .p99)
    }
}
