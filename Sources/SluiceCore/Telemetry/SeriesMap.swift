/// Series and upstream ids for one routing table: what a worker needs to record a request of
/// that table. Published next to the table; an exchange uses the map of the table it started with.
public struct SeriesMap: Sendable {
    /// Series id of each cohort: `cohortSeries[route][cohort]`.
    public let cohortSeries: [[Int32]]
    /// Series id of each route's direct responses (`respond:` rules, and 404 for a matched route
    /// without a split), labelled with cohort "".
    public let directSeries: [Int32]
    /// Upstream id of each upstream group, indexed like `RoutingTable.upstreams`.
    public let upstreamSeries: [Int32]
    /// Version of the table this map was made for.
    public let tableVersion: UInt64
    /// The series of requests that matched no route or were rejected before routing
    /// (labels route="", cohort="").
    public static let unroutedSeries: Int32 = 0

    /// Creates a map.
    public init(cohortSeries: [[Int32]], directSeries: [Int32], upstreamSeries: [Int32], tableVersion: UInt64) {
        self.cohortSeries = cohortSeries
        self.directSeries = directSeries
        self.upstreamSeries = upstreamSeries
        self.tableVersion = tableVersion
    }

    /// The series a routing decision's request is recorded under: the cohort's series when
    /// forwarding, the route's direct series for a direct response or a 404 of a matched route,
    /// the unrouted series when no route matched.
    @inlinable
    public func series(for decision: RouteDecision) -> Int32 {
        let r = Int(decision.route)
        guard r >= 0 && r < directSeries.count else { return SeriesMap.unroutedSeries }
        if decision.action == .forward {
            let cohorts = cohortSeries[r]
            let c = Int(decision.cohort)
            return c >= 0 && c < cohorts.count ? cohorts[c] : directSeries[r]
        }
        return directSeries[r]
    }

    /// The upstream id of a decision's upstream group (-1, which the shard ignores, when not forwarding).
    @inlinable
    public func upstream(for decision: RouteDecision) -> Int32 {
        let u = Int(decision.upstream)
        return u >= 0 && u < upstreamSeries.count ? upstreamSeries[u] : -1
    }
}

/// The labels of one series.
public struct SeriesLabels: Sendable, Hashable {
    /// Route name ("" for the unrouted series).
    public let route: String
    /// Cohort name ("" for direct responses and the unrouted series).
    public let cohort: String

    /// Creates labels.
    public init(route: String, cohort: String) {
        self.route = route
        self.cohort = cohort
    }
}

/// The names behind ids at one moment: index = id. Ids are only ever added, so an older
/// snapshot is a prefix of a newer one.
public struct MetricsNames: Sendable {
    /// Labels of every series id.
    public let series: [SeriesLabels]
    /// Name of every listener index.
    public let listeners: [String]
    /// Name of every upstream id.
    public let upstreams: [String]

    /// Creates a snapshot.
    public init(series: [SeriesLabels], listeners: [String], upstreams: [String]) {
        self.series = series
        self.listeners = listeners
        self.upstreams = upstreams
    }
}
