@testable import SluiceCore
import Testing

/// Fault drills in the metrics: the series-id flags `SeriesMap.series(for:)` sets on a fault
/// decision, what the shard records for them, the gates' window leaving out
/// `count_in_gates: false` requests, and `sluice_faults_injected_total`.
@Suite struct FaultMetricsTests {
    static func setup() -> (RoutingTable, MetricsRegistry, SeriesMap) {
        let table = telemetryTable(version: 1, [("web", [("stable", 90), ("canary", 10)])])
        let registry = MetricsRegistry(listenerNames: ["public"])
        return (table, registry, registry.seriesMap(for: table))
    }

    @Test func faultDecisionsCarryFlagsOnTheCohortSeries() {
        let (_, _, map) = Self.setup()
        let canary = map.cohortSeries[0][1]
        var abort = RouteDecision(action: .respond, route: 0, cohort: 1, response: 0)
        abort.fault = .abort
        #expect(map.series(for: abort) == canary | SeriesMap.faultAbortFlag)
        abort.faultOutsideGates = true
        #expect(map.series(for: abort) == canary | SeriesMap.faultAbortFlag | SeriesMap.outsideGatesFlag)
        var delay = RouteDecision(action: .forward, route: 0, cohort: 1, upstream: 1, endpoint: 0)
        delay.fault = .delay
        #expect(map.series(for: delay) == canary | SeriesMap.faultDelayFlag)
        // Without a fault: unchanged (a direct response goes to the route's direct series).
        #expect(map.series(for: RouteDecision(action: .respond, route: 0, response: 0)) == map.directSeries[0])
        #expect(map.series(for: RouteDecision(action: .forward, route: 0, cohort: 1, upstream: 1, endpoint: 0)) == canary)
    }

    @Test func shardCountsFaultsAndTheWindowLeavesOutUncountedOnes() {
        let (table, registry, map) = Self.setup()
        let shard = MetricsShard(capacity: registry.capacity)
        let canary = map.cohortSeries[0][1]
        var window = StatsWindow()
        func sample(_ now: UInt64) {
            var totals = MetricsTotals(seriesCount: registry.names.series.count, listenerCount: 1, upstreamCount: 2)
            shard.accumulate(into: &totals)
            window.record(totals: totals, names: registry.names, now: now)
        }
        sample(1_000_000_000)
        // 10 real answers (2 of them 500), 4 injected 503s counted in the gates, 6 not counted.
        for i in 0..<10 { shard.recordRequest(series: canary, status: i < 2 ? 500 : 200, durationNanos: 1_000_000, bytesIn: 10, bytesOut: 10) }
        for _ in 0..<4 { shard.recordRequest(series: canary | SeriesMap.faultAbortFlag, status: 503, durationNanos: 10_000, bytesIn: 10, bytesOut: 10) }
        for _ in 0..<6 {
            shard.recordRequest(series: canary | SeriesMap.faultAbortFlag | SeriesMap.outsideGatesFlag, status: 503,
                                durationNanos: 10_000, bytesIn: 10, bytesOut: 10)
        }
        shard.recordRequest(series: canary | SeriesMap.faultDelayFlag, status: 200, durationNanos: 200_000_000, bytesIn: 1, bytesOut: 1)
        sample(2_000_000_000)
        var totals = MetricsTotals(seriesCount: registry.names.series.count, listenerCount: 1, upstreamCount: 2)
        shard.accumulate(into: &totals)
        let s = Int(canary)
        #expect(totals.requests(series: s) == 21)
        #expect(totals.serverErrors(series: s) == 12)
        #expect(totals.requests(series: s, status: 503) == 10)
        #expect(totals.faultsInjected(series: s, kind: .abort) == 10)
        #expect(totals.faultsInjected(series: s, kind: .delay) == 1)
        #expect(totals.gateExcludedRequests(series: s) == 6 && totals.gateExcludedErrors(series: s) == 6)
        #expect(totals.latencyCounts(series: s).reduce(0, +) == 15, "no latency sample for the 6 left out of the gates")
        // What the gates see: 15 requests, 6 errors (2 real + 4 counted injections).
        let stats = try! #require(window.stats(route: "web", cohort: "canary", window: 60))
        #expect(stats.requests == 15 && stats.errors == 6)
        // Series 0 (unrouted) got nothing: the flags were masked off.
        #expect(totals.requests(series: 0) == 0)
        let text = PrometheusExposition.render(totals: totals, names: registry.names, table: table, buildVersion: "t")
        #expect(text.contains("# TYPE sluice_faults_injected_total counter\n"))
        #expect(text.contains("sluice_faults_injected_total{route=\"web\",cohort=\"canary\",kind=\"abort\"} 10\n"))
        #expect(text.contains("sluice_faults_injected_total{route=\"web\",cohort=\"canary\",kind=\"delay\"} 1\n"))
        #expect(!text.contains("sluice_faults_injected_total{route=\"web\",cohort=\"stable\""))
    }
}
