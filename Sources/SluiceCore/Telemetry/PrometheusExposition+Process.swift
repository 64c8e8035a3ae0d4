/// The config-reload and standard process families of the exposition.
extension PrometheusExposition {
    /// `sluice_config_reloads_total{result="success"|"failure"}`, `sluice_config_last_reload_successful`
    /// (1 or 0) and `sluice_config_last_reload_success_timestamp_seconds` (the initial load counts as
    /// a success, so the timestamp is the start time until the first reload).
    static func renderReloads(_ r: ReloadCounters, to out: inout String) {
        family(&out, "sluice_config_reloads_total", "counter",
               "Config reloads (SIGHUP, a change of the file, the admin API), by result; the initial load is not counted.")
        sample(&out, "sluice_config_reloads_total", "result=\"success\"", r.successes)
        sample(&out, "sluice_config_reloads_total", "result=\"failure\"", r.failures)
        family(&out, "sluice_config_last_reload_successful", "gauge",
               "Whether the last config load or reload succeeded (1) or was rejected (0).")
        sample(&out, "sluice_config_last_reload_successful", "", r.lastSuccessful ? "1" : "0")
        family(&out, "sluice_config_last_reload_success_timestamp_seconds", "gauge",
               "Unix time of the last successful config load or reload.")
        sample(&out, "sluice_config_last_reload_success_timestamp_seconds", "", millisecondSeconds(nanos: r.lastSuccessUnixNanos))
    }

    /// The `process_*` families every Prometheus client library exports.
    static func renderProcess(_ p: ProcessStats, to out: inout String) {
        family(&out, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
        sample(&out, "process_cpu_seconds_total", "", number(p.cpuSeconds))
        family(&out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
        sample(&out, "process_resident_memory_bytes", "", p.residentBytes)
        family(&out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.")
        sample(&out, "process_virtual_memory_bytes", "", p.virtualBytes)
        family(&out, "process_open_fds", "gauge", "Number of open file descriptors.")
        sample(&out, "process_open_fds", "", String(p.openFDs))
        family(&out, "process_max_fds", "gauge", "Maximum number of open file descriptors (+Inf: unlimited).")
        sample(&out, "process_max_fds", "", p.maxFDs.map { String($0) } ?? "+Inf")
        family(&out, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.")
        sample(&out, "process_start_time_seconds", "", number(p.startTimeSeconds))
    }

    /// Unix nanoseconds as seconds with millisecond precision (the exposition is read by people too).
    static func millisecondSeconds(nanos: UInt64) -> String {
        let millis = nanos / 1_000_000
        if millis % 1000 == 0 { return String(millis / 1000) }
        return number(Double(millis) / 1000)
    }
}
