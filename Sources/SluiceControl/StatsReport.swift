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

/// Statistics of one series over one window, as the admin API reports them (the windowed
/// stats themselves; see `CohortStats` for the JSON).
public typealias WindowReport = CohortStats

extension StatsReport {
    /// The windows `/admin/stats` reports: name and length in seconds.
    public static let standardWindows: [(name: String, seconds: Int)] = [("1m", 60), ("5m", 300)]

    /// Builds the report of `table` (the serving table) from a hub's windows and gauges, with
    /// the runtime `overrides` in force by route name.
    /// Windows end now: they include the sampling interval in progress (`MetricsHub.liveStatsWindow`).
    public static func build(hub: MetricsHub, table: RoutingTable, overrides: [String: RouteOverride] = [:],
                             unixNanos: UInt64 = ControlClock.unixNanos(),
                             now: UInt64 = ControlClock.monotonicNanos()) -> StatsReport {
        let window = hub.liveStatsWindow(now: now)
        let (_, totals) = hub.snapshot()
        let map = hub.seriesMap(for: table)
        func windows(_ series: Int32) -> [String: WindowReport] {
            var out: [String: WindowReport] = [:]
            for w in standardWindows {
                out[w.name] = window.stats(series: series, window: w.seconds) ?? .empty
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
