import SluiceCore

/// The body of `GET /admin/stats`: per route, per cohort, the serving weight and the windowed
/// statistics. Shared by the admin server (encoding) and `sluice status` (decoding).
public struct StatsReport: Codable, Sendable, Equatable {
    /// Wall-clock time of the report, RFC 3339.
    public var time: String
    /// Version of the table now serving.
    public var configVersion: UInt64
    /// Seconds between two samples (the windows' granularity).
    public var sampleIntervalSeconds: Double
    /// Window names in the order they are reported (`1m`, `5m`).
    public var windows: [String]
    /// Routes of the serving table, in match order.
    public var routes: [RouteReport]
    /// Requests that matched no route, per window.
    public var unrouted: [String: WindowReport]

    /// Creates a report.
    public init(time: String, configVersion: UInt64, sampleIntervalSeconds: Double, windows: [String], routes: [RouteReport],
                unrouted: [String: WindowReport]) {
        self.time = time
        self.configVersion = configVersion
        self.sampleIntervalSeconds = sampleIntervalSeconds
        self.windows = windows
        self.routes = routes
        self.unrouted = unrouted
    }

    enum CodingKeys: String, CodingKey {
        case time, configVersion = "config_version", sampleIntervalSeconds = "sample_interval_seconds", windows, routes, unrouted
    }
}

/// One route of a `StatsReport`.
public struct RouteReport: Codable, Sendable, Equatable {
    /// Route name.
    public var name: String
    /// Its cohorts, in the table's order.
    public var cohorts: [CohortReport]
    /// Its direct responses (`respond:` rules, 404 without a split), per window.
    public var direct: [String: WindowReport]
    /// The runtime override in force on this route (split, switch or abort), if any: the
    /// weights shown are then not the config file's.
    public var override: RouteOverride?

    /// Creates a route report.
    public init(name: String, cohorts: [CohortReport], direct: [String: WindowReport], override: RouteOverride? = nil) {
        self.name = name
        self.cohorts = cohorts
        self.direct = direct
        self.override = override
    }
}

/// One cohort of a `RouteReport`.
public struct CohortReport: Codable, Sendable, Equatable {
    /// Cohort name.
    public var name: String
    /// Upstream group it is sent to.
    public var upstream: String
    /// Share of the split in percent (0 for cohorts only rules reach).
    public var weight: Double
    /// True for the route's baseline.
    public var baseline: Bool
    /// Requests in flight to its upstream now.
    public var inFlight: Int64
    /// Statistics per window name (`1m`, `5m`).
    public var windows: [String: WindowReport]

    /// Creates a cohort report.
    public init(name: String, upstream: String, weight: Double, baseline: Bool, inFlight: Int64, windows: [String: WindowReport]) {
        self.name = name
        self.upstream = upstream
        self.weight = weight
        self.baseline = baseline
        self.inFlight = inFlight
        self.windows = windows
    }

    enum CodingKeys: String, CodingKey {
        case name, upstream, weight, baseline, inFlight = "in_flight", windows
    }
}

/// Statistics of one series over one window (JSON: `seconds`, `requests`, `errors`,
/// `upstream_errors`, `rate`, `error_rate`, `p50`, `p95`, `p99`; latencies in seconds, null without requests).
public struct WindowReport: Codable, Sendable, Equatable {
    /// Seconds the figures cover (less than the window while the process is young).
    public var seconds: Double
    /// Requests finished.
    public var requests: UInt64
    /// Requests answered with 5xx.
    public var errors: UInt64
    /// Upstream failures.
    public var upstreamErrors: UInt64
    /// Requests per second.
    public var rate: Double
    /// Fraction of requests answered with 5xx (0...1).
    public var errorRate: Double
    /// Median latency in seconds.
    public var p50: Double?
    /// 95th percentile latency in seconds.
    public var p95: Double?
    /// 99th percentile latency in seconds.
    public var p99: Double?

    /// Creates a window report.
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

    /// The report of windowed stats.
    public init(_ stats: CohortStats) {
        self.init(seconds: stats.seconds, requests: stats.requests, errors: stats.errors, upstreamErrors: stats.upstreamErrors,
                  rate: stats.rate, errorRate: stats.errorRate, p50: stats.p50, p95: stats.p95, p99: stats.p99)
    }

    /// An empty window (no samples yet).
    public static let empty = WindowReport(seconds: 0, requests: 0, errors: 0, upstreamErrors: 0, rate: 0, errorRate: 0,
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

extension StatsReport {
    /// The windows `/admin/stats` reports: name and length in seconds.
    public static let standardWindows: [(name: String, seconds: Int)] = [("1m", 60), ("5m", 300)]

    /// Builds the report of `table` (the serving table) from a hub's windows and gauges, with
    /// the runtime `overrides` in force by route name.
    public static func build(hub: MetricsHub, table: RoutingTable, overrides: [String: RouteOverride] = [:],
                             unixNanos: UInt64 = ControlClock.unixNanos()) -> StatsReport {
        let window = hub.statsWindow
        let (_, totals) = hub.snapshot()
        let map = hub.seriesMap(for: table)
        func windows(_ series: Int32) -> [String: WindowReport] {
            var out: [String: WindowReport] = [:]
            for w in standardWindows {
                out[w.name] = window.stats(series: series, window: w.seconds).map(WindowReport.init) ?? .empty
            }
            return out
        }
        var routes: [RouteReport] = []
        for (r, route) in table.routes.enumerated() {
            var cohorts: [CohortReport] = []
            for (c, cohort) in route.cohorts.enumerated() {
                let series = map.cohortSeries[r][c]
                let inFlight = Int(series) < totals.seriesCount ? totals.inFlight(series: Int(series)) : 0
                cohorts.append(CohortReport(
                    name: cohort.name, upstream: table.upstreams[Int(cohort.upstream)].name,
                    weight: Double(cohort.weight) / 100, baseline: Int32(c) == route.baseline,
                    inFlight: inFlight, windows: windows(series)))
            }
            routes.append(RouteReport(name: route.name, cohorts: cohorts, direct: windows(map.directSeries[r]),
                                      override: overrides[route.name]))
        }
        return StatsReport(time: ControlClock.rfc3339(unixNanos: unixNanos), configVersion: table.version,
                           sampleIntervalSeconds: Double(hub.sampleInterval) / 1e9,
                           windows: standardWindows.map(\.name), routes: routes,
                           unrouted: windows(SeriesMap.unroutedSeries))
    }
}
