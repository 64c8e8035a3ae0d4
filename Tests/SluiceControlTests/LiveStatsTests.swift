import SluiceControl
import SluiceCore
import Testing

/// `sluice status` right after a start: the interval in progress counts.
struct LiveStatsTests {
    static let second: UInt64 = 1_000_000_000

    @Test func firstSecondsShowTrafficInsteadOfZeros() throws {
        let config = try load(controllerYAML())
        let hub = MetricsHub(workers: 1, listenerNames: ["public"], buildVersion: "t", sampleInterval: 5 * Self.second)
        let map = hub.seriesMap(for: config.table)
        let t0: UInt64 = 1_000 * Self.second
        hub.sample(now: t0)  // the sampler's first sample, at start
        let stable = map.cohortSeries[0][0]
        for i in 0..<20 {
            hub.shards[0].recordRequest(series: stable, status: i < 2 ? 503 : 200, durationNanos: 4_000_000, bytesIn: 1, bytesOut: 1)
        }
        // 2 s later, before the next sample: the complete samples have nothing yet...
        #expect(hub.stats(route: "web", cohort: "stable", window: 60) == nil)
        // ...and the report shows the 2 s in progress.
        let report = StatsReport.build(hub: hub, table: config.table, now: t0 + 2 * Self.second)
        let live = try #require(report.routes.first?.cohorts.first?.windows["1m"])
        #expect(live.requests == 20 && live.errors == 2)
        #expect(live.seconds == 2 && live.rate == 10)
        #expect(live.errorRate == 0.1)
        #expect(live.p50 != nil)
        // A latest sample older than two intervals (a stopped sampler, another clock) adds nothing.
        let stale = StatsReport.build(hub: hub, table: config.table, now: t0 + 11 * Self.second)
        #expect(stale.routes.first?.cohorts.first?.windows["1m"]?.requests == 0)
        // After the next sample the in-progress part is only what came since.
        hub.sample(now: t0 + 5 * Self.second)
        hub.shards[0].recordRequest(series: stable, status: 200, durationNanos: 4_000_000, bytesIn: 1, bytesOut: 1)
        let later = StatsReport.build(hub: hub, table: config.table, now: t0 + 6 * Self.second)
        let w = try #require(later.routes.first?.cohorts.first?.windows["1m"])
        #expect(w.requests == 21 && w.seconds == 6)
        // The rollout controller's view is unchanged: complete samples only.
        #expect(hub.stats(route: "web", cohort: "stable", window: 60)?.requests == 20)
    }
}
