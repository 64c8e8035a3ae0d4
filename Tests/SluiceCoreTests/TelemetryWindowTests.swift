import Testing
@testable import SluiceCore

struct TelemetryWindowTests {
    static let second: UInt64 = 1_000_000_000
    let table = telemetryTable(version: 1, [("web", [("stable", 90), ("canary", 10)])])

    /// A shard, its registry and a window driven by a manual clock.
    struct Rig {
        let registry: MetricsRegistry
        let shard = MetricsShard(capacity: MetricsCapacity(series: 16, listeners: 1, upstreams: 4))
        let map: SeriesMap
        var window = StatsWindow()
        var now: UInt64 = 1_000 * TelemetryWindowTests.second

        init(table: RoutingTable) {
            registry = MetricsRegistry(capacity: MetricsCapacity(series: 16, listeners: 1, upstreams: 4), listenerNames: ["public"])
            map = registry.seriesMap(for: table)
        }

        /// Samples now, then advances the clock by `seconds`.
        mutating func sample(thenAdvance seconds: UInt64 = 5) {
            let names = registry.names
            let totals = MetricsTotals.sum(of: [shard], seriesCount: names.series.count, listenerCount: 1,
                                           upstreamCount: names.upstreams.count)
            window.record(totals: totals, names: names, now: now)
            now += seconds * TelemetryWindowTests.second
        }
    }

    @Test func windowsRollWithAManualClock() {
        var rig = Rig(table: table)
        let stable = rig.map.cohortSeries[0][0]
        #expect(rig.window.stats(route: "web", cohort: "stable", window: 60) == nil)
        rig.sample()
        #expect(rig.window.stats(route: "web", cohort: "stable", window: 60) == nil)  // a baseline only
        // 60 intervals of 5 s (5 minutes): in interval k, 10 requests, k % 10 of them 500s.
        for k in 0..<60 {
            for i in 0..<10 {
                rig.shard.recordRequest(series: stable, status: i < k % 10 ? 500 : 200, durationNanos: 1_000_000,
                                        bytesIn: 0, bytesOut: 0)
            }
            rig.sample()
        }
        let oneMinute = rig.window.stats(route: "web", cohort: "stable", window: 60)!
        #expect(oneMinute.seconds == 60)
        #expect(oneMinute.requests == 120)
        #expect(oneMinute.rate == 2)
        // The last 12 intervals are k = 48...59: errors 8,9,0,1,...,9.
        #expect(oneMinute.errors == 8 + 9 + (0...9).reduce(0, +))
        #expect(oneMinute.errorRate == Double(62) / 120)
        let fiveMinutes = rig.window.stats(route: "web", cohort: "stable", window: 300)!
        #expect(fiveMinutes.seconds == 300)
        #expect(fiveMinutes.requests == 600)
        #expect(fiveMinutes.errors == 6 * 45)

        // A quiet minute: the 1-minute window empties, the 5-minute window loses its oldest minute.
        for _ in 0..<12 { rig.sample() }
        let quiet = rig.window.stats(route: "web", cohort: "stable", window: 60)!
        #expect(quiet.requests == 0 && quiet.rate == 0 && quiet.errorRate == 0 && quiet.p99 == nil)
        #expect(rig.window.stats(route: "web", cohort: "stable", window: 300)!.requests == 480)
        // Beyond the retention nothing is kept.
        for _ in 0..<60 { rig.sample() }
        #expect(rig.window.stats(route: "web", cohort: "stable", window: 300)!.requests == 0)
        #expect(rig.window.stats(route: "web", cohort: "stable", window: 3600)!.seconds <= 305)
    }

    @Test func aYoungProcessReportsWhatItHas() {
        var rig = Rig(table: table)
        let canary = rig.map.cohortSeries[0][1]
        rig.sample()
        for _ in 0..<30 { rig.shard.recordRequest(series: canary, status: 200, durationNanos: 2_000_000, bytesIn: 0, bytesOut: 0) }
        rig.sample()
        for _ in 0..<10 { rig.shard.recordRequest(series: canary, status: 502, durationNanos: 2_000_000, bytesIn: 0, bytesOut: 0) }
        rig.shard.recordUpstreamError(series: canary, reason: .connectRefused)
        rig.sample()
        let s = rig.window.stats(route: "web", cohort: "canary", window: 60)!
        #expect(s.seconds == 10)
        #expect(s.requests == 40 && s.errors == 10 && s.upstreamErrors == 1)
        #expect(s.rate == 4 && s.errorRate == 0.25)
        #expect(rig.window.stats(route: "web", cohort: "nope", window: 60) == nil)
        #expect(rig.window.stats(route: "web", cohort: "stable", window: 60)!.requests == 0)
    }

    @Test func sampleJitterStillCoversTheWindow() {
        var rig = Rig(table: table)
        let stable = rig.map.cohortSeries[0][0]
        rig.sample(thenAdvance: 0)
        for k in 0..<30 {
            rig.now += 5 * Self.second + (k % 2 == 0 ? 30_000_000 : 0)  // 5.03 s or 5 s apart
            rig.shard.recordRequest(series: stable, status: 200, durationNanos: 1_000, bytesIn: 0, bytesOut: 0)
            rig.sample(thenAdvance: 0)
        }
        let s = rig.window.stats(route: "web", cohort: "stable", window: 60)!
        #expect(s.requests == 12)
        #expect(abs(s.seconds - 60) < 0.5)
    }

    /// The windowed p99 of a known latency distribution is within the histogram's stated error.
    @Test func windowedP99IsWithinTheStatedError() {
        var rig = Rig(table: table)
        let canary = rig.map.cohortSeries[0][1]
        rig.sample()
        // An old interval of very slow requests that must fall out of the 1-minute window.
        for _ in 0..<1000 { rig.shard.recordRequest(series: canary, status: 200, durationNanos: 30 * Self.second, bytesIn: 0, bytesOut: 0) }
        for _ in 0..<12 { rig.sample() }
        // Then, over 12 intervals, 1..12,000 ms... as 12,000 samples: i ms + 345 µs.
        var all: [UInt64] = []
        for k in 0..<12 {
            for j in 0..<1000 {
                let nanos = UInt64(k * 1000 + j + 1) * 1_000_000 + 345_000
                all.append(nanos)
                rig.shard.recordRequest(series: canary, status: 200, durationNanos: nanos, bytesIn: 0, bytesOut: 0)
            }
            rig.sample()
        }
        all.sort()
        let s = rig.window.stats(route: "web", cohort: "canary", window: 60)!
        #expect(s.requests == 12_000)
        for (q, reported) in [(0.5, s.p50!), (0.95, s.p95!), (0.99, s.p99!)] {
            let exact = Double(all[Int((q * Double(all.count)).rounded(.up)) - 1]) / 1e9
            #expect(abs(reported - exact) <= exact * LatencyScale.relativeError, "q=\(q): exact \(exact), reported \(reported)")
        }
        // Over 5 minutes the 30 s requests are back in (1000 of 13,000: p99 is one of them).
        let five = rig.window.stats(route: "web", cohort: "canary", window: 300)!
        #expect(abs(five.p99! - 30) <= 30 * LatencyScale.relativeError)
    }

    @Test func seriesAddedByAReloadJoinTheWindow() {
        var rig = Rig(table: table)
        rig.sample()
        let next = telemetryTable(version: 2, [("web", [("stable", 50), ("canary", 25), ("green", 25)])])
        let map = rig.registry.seriesMap(for: next)
        #expect(map.cohortSeries[0][0] == rig.map.cohortSeries[0][0])
        rig.shard.recordRequest(series: map.cohortSeries[0][2], status: 200, durationNanos: 1_000, bytesIn: 0, bytesOut: 0)
        rig.sample()
        #expect(rig.window.stats(route: "web", cohort: "green", window: 60)!.requests == 1)
    }
}
