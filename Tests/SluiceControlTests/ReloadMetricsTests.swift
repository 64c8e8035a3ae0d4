import Foundation
import SluiceControl
import SluiceCore
import Testing

/// The config-reload and process metrics as a scrape shows them, moved by real reloads.
@Suite struct ReloadMetricsTests {
    @Test func reloadCountersMoveWithFailedThenSuccessfulReload() throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        let hub = MetricsHub(workers: 1, listenerNames: ["public"], buildVersion: "1.2.3")
        hub.attach(events: rig.events)
        func scrape() throws -> (lines: [ExpositionLine], v: (String, [String: String]) -> Double?) {
            let lines = try ExpositionParser.parse(hub.renderMetrics(table: rig.controller.table))
            return (lines, { ExpositionParser.value(in: lines, $0, $1) })
        }
        let before = Double(ControlClock.unixNanos() / 1_000_000) / 1000

        // After the initial load: no reloads yet, the last load succeeded just now.
        var m = try scrape().v
        #expect(m("sluice_config_reloads_total", ["result": "success"]) == 0)
        #expect(m("sluice_config_reloads_total", ["result": "failure"]) == 0)
        #expect(m("sluice_config_last_reload_successful", [:]) == 1)
        let started = try #require(m("sluice_config_last_reload_success_timestamp_seconds", [:]))
        #expect(started > 1_700_000_000 && started <= before + 1)
        #expect(m("sluice_config_version", [:]) == 1)
        #expect(m("sluice_build_info", ["version": "1.2.3"]) == 1)

        // A broken file: failure counted, last reload unsuccessful, timestamp and version unchanged.
        try rig.dir.write("sluice.yaml", "listeners: [\n")
        #expect(throws: ControlError.self) { try rig.controller.reloadFromFile(cause: "test") }
        m = try scrape().v
        #expect(m("sluice_config_reloads_total", ["result": "failure"]) == 1)
        #expect(m("sluice_config_reloads_total", ["result": "success"]) == 0)
        #expect(m("sluice_config_last_reload_successful", [:]) == 0)
        #expect(m("sluice_config_last_reload_success_timestamp_seconds", [:]) == started)
        #expect(m("sluice_config_version", [:]) == 1)

        // A good file again: success counted, gauge back to 1, timestamp moves, version is 2
        // in one series (no new label value).
        usleep(5_000)
        try rig.dir.write("sluice.yaml", controllerYAML(split: "stable: 80, canary: 20"))
        _ = try rig.controller.reloadFromFile(cause: "test")
        let (lines, v) = try scrape()
        #expect(v("sluice_config_reloads_total", ["result": "success"]) == 1)
        #expect(v("sluice_config_reloads_total", ["result": "failure"]) == 1)
        #expect(v("sluice_config_last_reload_successful", [:]) == 1)
        #expect(try #require(v("sluice_config_last_reload_success_timestamp_seconds", [:])) > started)
        #expect(v("sluice_config_version", [:]) == 2)
        #expect(v("sluice_cohort_weight", ["route": "web", "cohort": "canary"]) == 0.2)
        let versionSamples = lines.filter { if case .sample(let name, _, _) = $0 { return name == "sluice_config_version" }; return false }
        #expect(versionSamples.count == 1)

        // A runtime split is not a reload.
        _ = try rig.controller.setSplit(route: "web", weights: split(["stable": 50, "canary": 50]), cause: "test")
        #expect(try scrape().v("sluice_config_reloads_total", ["result": "success"]) == 1)
        #expect(try scrape().v("sluice_config_version", [:]) == 3)
    }

    @Test func processMetricsDescribeThisProcess() throws {
        let config = try load(controllerYAML())
        let hub = MetricsHub(workers: 1, listenerNames: ["public"], buildVersion: "t")
        let text = hub.renderMetrics(table: config.table)
        let lines = try ExpositionParser.parse(text)
        func v(_ name: String) -> Double? { ExpositionParser.value(in: lines, name, [:]) }
        // Opening 10 more descriptors shows in the next scrape. Tests running in parallel open and
        // close descriptors of this same process, so a few tries are allowed for a quiet moment.
        var moved = false
        for _ in 0..<20 where !moved {
            let fds = try #require(ExpositionParser.value(in: try ExpositionParser.parse(hub.renderMetrics(table: config.table)),
                                                          "process_open_fds", [:]))
            let extra = (0..<10).map { _ in open("/dev/null", O_RDONLY) }
            let after = try #require(ExpositionParser.value(in: try ExpositionParser.parse(hub.renderMetrics(table: config.table)),
                                                            "process_open_fds", [:]))
            for fd in extra { close(fd) }
            moved = after - fds >= 10 && after - fds < 20
        }
        #expect(moved)
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        #expect(v("process_max_fds") == Double(limit.rlim_cur))
        #expect(try #require(v("process_resident_memory_bytes")) > 1_000_000)
        #expect(try #require(v("process_cpu_seconds_total")) > 0)
        let start = try #require(v("process_start_time_seconds"))
        let now = Double(ControlClock.unixNanos()) / 1e9
        #expect(start > 1_700_000_000 && start <= now + 1)
        // Without an event log the reload families are left out rather than invented.
        #expect(!text.contains("sluice_config_reloads_total"))
    }

    @Test func fullExpositionPassesPromtool() throws {
        guard let promtool = executableOnPath("promtool") else { return }  // CI installs it; skip where it is missing
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        let hub = MetricsHub(workers: 1, listenerNames: ["public"], buildVersion: "1.2.3")
        hub.attach(events: rig.events)
        let map = hub.seriesMap(for: rig.controller.table)
        hub.shards[0].recordRequest(series: map.cohortSeries[0][0], status: 200, durationNanos: 3_000_000, bytesIn: 1, bytesOut: 2)
        hub.shards[0].recordUpstreamFirstByte(series: map.cohortSeries[0][0], nanos: 2_000_000)
        let result = try run(promtool, ["check", "metrics"], input: hub.renderMetrics(table: rig.controller.table))
        #expect(result.status == 0, "promtool check metrics:\n\(result.output)")
    }
}
