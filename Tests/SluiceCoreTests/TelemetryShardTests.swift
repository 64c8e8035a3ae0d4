import Testing
@testable import SluiceCore

struct TelemetryShardTests {
    let capacity = MetricsCapacity(series: 8, listeners: 2, upstreams: 4)

    func totals(_ shards: [MetricsShard], series: Int = 8) -> MetricsTotals {
        MetricsTotals.sum(of: shards, seriesCount: series, listenerCount: 2, upstreamCount: 4)
    }

    @Test func countersAreExactAcrossShards() {
        let a = MetricsShard(capacity: capacity), b = MetricsShard(capacity: capacity)
        a.recordRequest(series: 1, status: 200, durationNanos: 3_000_000, bytesIn: 100, bytesOut: 1000)
        a.recordRequest(series: 1, status: 200, durationNanos: 1_000_000, bytesIn: 100, bytesOut: 1000)
        b.recordRequest(series: 1, status: 503, durationNanos: 20_000_000_000, bytesIn: 50, bytesOut: 10)
        b.recordRequest(series: 2, status: 404, durationNanos: 500, bytesIn: 1, bytesOut: 2)
        b.recordRequest(series: 2, status: 0, durationNanos: 500, bytesIn: 1, bytesOut: 2)
        a.recordUpstreamError(series: 1, reason: .connectRefused)
        b.recordUpstreamError(series: 1, reason: .connectRefused)
        b.recordUpstreamError(series: 1, reason: .responseTimeout)
        a.addInFlight(series: 1, 1); a.addInFlight(series: 1, 1); a.addInFlight(series: 1, -1)
        b.addInFlight(series: 1, 1)
        a.connectionAccepted(listener: 0); a.connectionAccepted(listener: 0); a.connectionClosed(listener: 0)
        b.connectionAccepted(listener: 1)
        a.upstreamConnectionOpened(upstream: 3); b.upstreamConnectionOpened(upstream: 3); b.upstreamConnectionClosed(upstream: 3)

        let t = totals([a, b])
        #expect(t.requests(series: 1) == 3)
        #expect(t.serverErrors(series: 1) == 1)
        #expect(t.requests(series: 1, status: 200) == 2)
        #expect(t.requests(series: 1, status: 503) == 1)
        #expect(t.statusCounts(series: 1).map(\.status) == [200, 503])
        #expect(t.statusCounts(series: 2).map(\.status) == [0, 404])
        #expect(t.durationSumNanos(series: 1) == 20_004_000_000)
        #expect(t.bytesIn(series: 1) == 250)
        #expect(t.bytesOut(series: 1) == 2010)
        // 1 ms lands in le=0.001, 3 ms in le=0.005, 20 s in +Inf.
        #expect(t.durationBucketCounts(series: 1) == [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
        #expect(t.durationBucketCounts(series: 2)[0] == 2)
        #expect(t.upstreamErrors(series: 1, reason: .connectRefused) == 2)
        #expect(t.upstreamErrors(series: 1, reason: .responseTimeout) == 1)
        #expect(t.upstreamErrors(series: 1) == 3)
        #expect(t.inFlight(series: 1) == 2)
        #expect(t.connectionsAccepted(listener: 0) == 2)
        #expect(t.connectionsActive(listener: 0) == 1)
        #expect(t.connectionsAccepted(listener: 1) == 1)
        #expect(t.upstreamConnectionsOpened(upstream: 3) == 2)
        #expect(t.upstreamConnectionsActive(upstream: 3) == 1)
        #expect(t.latencyCounts(series: 1).reduce(0, +) == 3)
        #expect(t.requests(series: 0) == 0)
    }

    @Test func outOfRangeIdsNeverWriteOutsideTheBlock() {
        let s = MetricsShard(capacity: capacity)
        s.recordRequest(series: 8, status: 200, durationNanos: 1, bytesIn: 0, bytesOut: 0)
        s.recordRequest(series: -1, status: 200, durationNanos: 1, bytesIn: 0, bytesOut: 0)
        s.recordUpstreamError(series: 99, reason: .reset)
        s.connectionAccepted(listener: 2)
        s.connectionAccepted(listener: -1)
        s.connectionClosed(listener: 5)
        s.upstreamConnectionOpened(upstream: 4)
        s.upstreamConnectionOpened(upstream: -1)
        let t = totals([s])
        #expect(t.requests(series: 0) == 2)
        #expect(t.upstreamErrors(series: 0, reason: .reset) == 1)
        #expect(t.connectionsAccepted(listener: 0) == 0 && t.connectionsAccepted(listener: 1) == 0)
        #expect((0..<4).allSatisfy { t.upstreamConnectionsOpened(upstream: $0) == 0 })
    }

    @Test func totalsCanCoverFewerSeriesThanTheCapacity() {
        let s = MetricsShard(capacity: capacity)
        s.recordRequest(series: 5, status: 200, durationNanos: 1, bytesIn: 0, bytesOut: 0)
        s.recordRequest(series: 1, status: 200, durationNanos: 1, bytesIn: 0, bytesOut: 0)
        let t = totals([s], series: 2)
        #expect(t.seriesCount == 2)
        #expect(t.requests(series: 1) == 1)
    }

    @Test(arguments: [
        (UInt64(0), 0), (1_000_000, 0), (1_000_001, 1), (2_500_000, 1), (2_500_001, 2), (5_000_000, 2),
        (10_000_000, 3), (25_000_000, 4), (25_000_001, 5), (50_000_000, 5), (100_000_000, 6), (250_000_000, 7),
        (500_000_000, 8), (1_000_000_000, 9), (2_500_000_000, 10), (5_000_000_000, 11), (10_000_000_000, 12),
        (10_000_000_001, 13), (UInt64.max, 13),
    ])
    func durationBucketBoundaries(nanos: UInt64, bucket: Int) {
        #expect(DurationBuckets.index(nanos: nanos) == bucket)
        if bucket < 13 { #expect(nanos <= DurationBuckets.boundsNanos[bucket]) }
        if bucket > 0 { #expect(nanos > DurationBuckets.boundsNanos[bucket - 1]) }
    }

    @Test func statusCodeSlotsCoverEveryCode() {
        let s = MetricsShard(capacity: capacity)
        for code in 100...599 { s.recordRequest(series: 3, status: code, durationNanos: 0, bytesIn: 0, bytesOut: 0) }
        s.recordRequest(series: 3, status: 600, durationNanos: 0, bytesIn: 0, bytesOut: 0)
        s.recordRequest(series: 3, status: 99, durationNanos: 0, bytesIn: 0, bytesOut: 0)
        let t = totals([s])
        let counts = t.statusCounts(series: 3)
        #expect(counts.count == 501)
        #expect(counts.first!.status == 0 && counts.first!.count == 2)
        #expect(counts.dropFirst().map(\.status) == Array(100...599))
        #expect(counts.dropFirst().allSatisfy { $0.count == 1 })
        #expect(t.serverErrors(series: 3) == 101)  // 500...599 and 600
    }
}
