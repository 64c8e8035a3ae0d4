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
    /// Endpoint health slot of every flat endpoint index of the table (`EndpointHealth.assign`;
    /// empty: availability not tracked, every endpoint is picked).
    public var endpointSlots: [Int32] = []
    /// The series of requests that matched no route or were rejected before routing
    /// (labels route="", cohort="").
    public static let unroutedSeries: Int32 = 0
    /// Flag on a series id: the request was answered with an injected fault.
    public static let faultAbortFlag: Int32 = 1 << 28
    /// Flag on a series id: the request was delayed by a fault drill.
    public static let faultDelayFlag: Int32 = 1 << 29
    /// Flag on a series id: keep the request out of the rollout gates' statistics.
    public static let outsideGatesFlag: Int32 = 1 << 30
    /// The bits of a series id that are the id.
    public static let idMask: Int32 = (1 << 28) - 1

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
    ///
    /// A fault drill's request is recorded under its cohort's series (an injected abort too),
    /// with flag bits (`faultAbortFlag`, `faultDelayFlag`, `outsideGatesFlag`) that the shard
    /// reads and masks off: the id stays one `Int32` the IO layer carries without knowing.
    @inlinable
    public func series(for decision: RouteDecision) -> Int32 {
        let r = Int(decision.route)
        guard r >= 0 && r < directSeries.count else { return SeriesMap.unroutedSeries }
        if decision.fault != .none {
            let cohorts = cohortSeries[r]
            let c = Int(decision.cohort)
            let id = c >= 0 && c < cohorts.count ? cohorts[c] : directSeries[r]
            return id | (decision.fault == .abort ? SeriesMap.faultAbortFlag : SeriesMap.faultDelayFlag)
                | (decision.faultOutsideGates ? SeriesMap.outsideGatesFlag : 0)
        }
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
    /// The baseline cohort's name of every route that has one (the `to` of `sluice_fallbacks_total`).
    public var baselines: [String: String]

    /// Creates a snapshot.
    public init(series: [SeriesLabels], listeners: [String], upstreams: [String], baselines: [String: String] = [:]) {
        self.baselines = baselines
        self.series = series
        self.listeners = listeners
        self.upstreams = upstreams
    }
}
