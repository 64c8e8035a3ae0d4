import Testing
@testable import SluiceCore

/// The process_* and config-reload families, from fixed inputs.
struct OpsTelemetryTests {
    /// A real-looking `/proc/self/stat` line whose command has a space and parentheses.
    static let stat = "4242 (sluice (w) 1) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 130 0 0 20 0 9 0 "
        + "123400 1073741824 5120 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n"

    @Test func parsesProcSelfStat() throws {
        let p = try #require(ProcessStats.parse(stat: Self.stat, bootTimeSeconds: 1_790_000_000, clockTicks: 100,
                                                pageSize: 4096, openFDs: 12, maxFDs: 1024))
        #expect(p.cpuSeconds == 3.8)  // (250 + 130) ticks / 100
        #expect(p.residentBytes == 5120 * 4096)
        #expect(p.virtualBytes == 1_073_741_824)
        #expect(p.startTimeSeconds == 1_790_000_000 + 1234)  // 123400 ticks after boot
        #expect(p.openFDs == 12 && p.maxFDs == 1024)
        // Truncated or garbled text is nil, not a crash.
        #expect(ProcessStats.parse(stat: "4242 (sluice) S 1 2", bootTimeSeconds: 0, clockTicks: 100, pageSize: 4096,
                                   openFDs: 0, maxFDs: nil) == nil)
        #expect(ProcessStats.parse(stat: "no parenthesis", bootTimeSeconds: 0, clockTicks: 100, pageSize: 4096,
                                   openFDs: 0, maxFDs: nil) == nil)
        #expect(ProcessStats.parse(stat: Self.stat, bootTimeSeconds: 0, clockTicks: 0, pageSize: 4096,
                                   openFDs: 0, maxFDs: nil) == nil)
    }

    @Test func bootTimeFromProcStat() {
        #expect(ProcessStats.bootTime(procStat: "cpu  1 2 3\nintr 5\nbtime 1790000000\nprocesses 9\n") == 1_790_000_000)
        #expect(ProcessStats.bootTime(procStat: "cpu 1 2 3\n") == nil)
    }

    @Test func rendersReloadAndProcessFamilies() {
        let table = telemetryTable(version: 3, [("web", [("stable", 100)])])
        let registry = MetricsRegistry(listenerNames: [])
        _ = registry.seriesMap(for: table)
        let names = registry.names
        let totals = MetricsTotals(seriesCount: names.series.count, listenerCount: 0, upstreamCount: names.upstreams.count)
        let reloads = ReloadCounters(successes: 2, failures: 1, lastSuccessful: false, lastSuccessUnixNanos: 1_790_000_123_456_000_000)
        let process = ProcessStats(cpuSeconds: 3.8, residentBytes: 20_971_520, virtualBytes: 1_073_741_824, openFDs: 12,
                                   maxFDs: nil, startTimeSeconds: 1_790_001_234)
        let text = PrometheusExposition.render(totals: totals, names: names, table: table, buildVersion: "0.1.0",
                                               reloads: reloads, process: process)
        let tail = text[text.range(of: "# HELP sluice_config_version")!.lowerBound...]
        #expect(tail == """
            # HELP sluice_config_version Version of the routing table now serving (rises with every reload and runtime change).
            # TYPE sluice_config_version gauge
            sluice_config_version 3
            # HELP sluice_build_info Sluice release this process runs (always 1).
            # TYPE sluice_build_info gauge
            sluice_build_info{version="0.1.0"} 1
            # HELP sluice_config_reloads_total Config reloads (SIGHUP, a change of the file, the admin API), by result; the initial load is not counted.
            # TYPE sluice_config_reloads_total counter
            sluice_config_reloads_total{result="success"} 2
            sluice_config_reloads_total{result="failure"} 1
            # HELP sluice_config_last_reload_successful Whether the last config load or reload succeeded (1) or was rejected (0).
            # TYPE sluice_config_last_reload_successful gauge
            sluice_config_last_reload_successful 0
            # HELP sluice_config_last_reload_success_timestamp_seconds Unix time of the last successful config load or reload.
            # TYPE sluice_config_last_reload_success_timestamp_seconds gauge
            sluice_config_last_reload_success_timestamp_seconds 1790000123.456
            # HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
            # TYPE process_cpu_seconds_total counter
            process_cpu_seconds_total 3.8
            # HELP process_resident_memory_bytes Resident memory size in bytes.
            # TYPE process_resident_memory_bytes gauge
            process_resident_memory_bytes 20971520
            # HELP process_virtual_memory_bytes Virtual memory size in bytes.
            # TYPE process_virtual_memory_bytes gauge
            process_virtual_memory_bytes 1073741824
            # HELP process_open_fds Number of open file descriptors.
            # TYPE process_open_fds gauge
            process_open_fds 12
            # HELP process_max_fds Maximum number of open file descriptors (+Inf: unlimited).
            # TYPE process_max_fds gauge
            process_max_fds +Inf
            # HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
            # TYPE process_start_time_seconds gauge
            process_start_time_seconds 1790001234

            """)
        // Without counters and process stats (a hub with no event log), the families are absent.
        let bare = PrometheusExposition.render(totals: totals, names: names, table: table, buildVersion: "0.1.0")
        #expect(!bare.contains("sluice_config_reloads_total") && !bare.contains("process_"))
    }

    @Test func firstByteHistogramBucketsAndSum() {
        let table = telemetryTable(version: 1, [("web", [("stable", 100)])])
        let registry = MetricsRegistry(listenerNames: [])
        let map = registry.seriesMap(for: table)
        let shard = MetricsShard()
        let s = map.cohortSeries[0][0]
        for nanos: UInt64 in [500_000, 1_000_000, 1_000_001, 30_000_000_000] {
            shard.recordUpstreamFirstByte(series: s, nanos: nanos)
        }
        // Recording the first byte does not touch the request counters or the duration histogram.
        let names = registry.names
        let totals = MetricsTotals.sum(of: [shard], seriesCount: names.series.count, listenerCount: 0,
                                       upstreamCount: names.upstreams.count)
        #expect(totals.requests(series: Int(s)) == 0)
        #expect(totals.durationBucketCounts(series: Int(s)).allSatisfy { $0 == 0 })
        #expect(totals.firstByteBucketCounts(series: Int(s)) == [2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
        #expect(totals.firstByteSumNanos(series: Int(s)) == 30_002_500_001)
        // A series id out of range lands in series 0, as for every other recording call.
        shard.recordUpstreamFirstByte(series: 10_000_000, nanos: 1)
        let again = MetricsTotals.sum(of: [shard], seriesCount: names.series.count, listenerCount: 0, upstreamCount: 0)
        #expect(again.firstByteBucketCounts(series: 0)[0] == 1)
    }
}
