import Synchronization

/// Gives every (route name, cohort name) pair and every upstream name a series id that stays
/// the same across reloads, so counters keep accumulating when a table is replaced.
///
/// Series 0 is reserved for requests that matched no route (route="", cohort=""). A route's
/// direct responses use cohort "". Ids are never reused; once the capacity is used up, new
/// pairs are recorded as series 0 (and new upstreams are not recorded) and `overflowCount` grows.
///
/// Thread-safe (a mutex); control plane only, never per request.
public final class MetricsRegistry: Sendable {
    /// The capacity the shards were made with.
    public let capacity: MetricsCapacity
    /// Listener names, by listener index (at most `capacity.listeners` are counted).
    public let listenerNames: [String]

    private struct State {
        var seriesIds: [SeriesLabels: Int32] = [SeriesLabels(route: "", cohort: ""): 0]
        var series: [SeriesLabels] = [SeriesLabels(route: "", cohort: "")]
        var upstreamIds: [String: Int32] = [:]
        var upstreams: [String] = []
        var overflowed: Set<String> = []
        var baselines: [String: String] = [:]
    }

    private let state = Mutex(State())

    /// Creates a registry with only the unrouted series.
    public init(capacity: MetricsCapacity = MetricsCapacity(), listenerNames: [String]) {
        self.capacity = capacity
        self.listenerNames = Array(listenerNames.prefix(capacity.listeners))
    }

    /// The ids for `table`: existing (route, cohort) and upstream names keep their ids, new ones get the next free id.
    public func seriesMap(for table: RoutingTable) -> SeriesMap {
        let capacity = self.capacity
        return state.withLock { s in
            func seriesId(_ labels: SeriesLabels) -> Int32 {
                if let id = s.seriesIds[labels] { return id }
                guard s.series.count < capacity.series else {
                    s.overflowed.insert("series \(labels.route)/\(labels.cohort)")
                    return SeriesMap.unroutedSeries
                }
                let id = Int32(s.series.count)
                s.series.append(labels)
                s.seriesIds[labels] = id
                return id
            }
            var cohortSeries: [[Int32]] = []
            var directSeries: [Int32] = []
            for route in table.routes {
                cohortSeries.append(route.cohorts.map { seriesId(SeriesLabels(route: route.name, cohort: $0.name)) })
                directSeries.append(seriesId(SeriesLabels(route: route.name, cohort: "")))
                if route.baseline >= 0 && Int(route.baseline) < route.cohorts.count {
                    s.baselines[route.name] = route.cohorts[Int(route.baseline)].name
                }
            }
            var upstreamSeries: [Int32] = []
            for group in table.upstreams {
                if let id = s.upstreamIds[group.name] {
                    upstreamSeries.append(id)
                } else if s.upstreams.count < capacity.upstreams {
                    let id = Int32(s.upstreams.count)
                    s.upstreams.append(group.name)
                    s.upstreamIds[group.name] = id
                    upstreamSeries.append(id)
                } else {
                    s.overflowed.insert("upstream \(group.name)")
                    upstreamSeries.append(-1)
                }
            }
            return SeriesMap(cohortSeries: cohortSeries, directSeries: directSeries, upstreamSeries: upstreamSeries,
                             tableVersion: table.version)
        }
    }

    /// The names of every id assigned so far.
    public var names: MetricsNames {
        state.withLock { s in MetricsNames(series: s.series, listeners: listenerNames, upstreams: s.upstreams,
                                          baselines: s.baselines) }
    }

    /// The series id of (route, cohort), if one was assigned.
    public func seriesId(route: String, cohort: String) -> Int32? {
        state.withLock { $0.seriesIds[SeriesLabels(route: route, cohort: cohort)] }
    }

    /// How many distinct series or upstream names did not get an id because the capacity was used up.
    public var overflowCount: Int {
        state.withLock { $0.overflowed.count }
    }
}
