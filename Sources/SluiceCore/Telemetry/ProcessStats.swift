/// The standard `process_*` metrics of the running process, as Prometheus client libraries
/// export them (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...).
///
/// Pure: `parse` reads the text of `/proc/self/stat` given to it; the control plane reads the
/// files (`ProcessStatsReader` in SluiceControl).
public struct ProcessStats: Sendable, Equatable {
    /// User plus system CPU time, in seconds.
    public var cpuSeconds: Double
    /// Resident set size, in bytes.
    public var residentBytes: UInt64
    /// Virtual memory size, in bytes.
    public var virtualBytes: UInt64
    /// Open file descriptors.
    public var openFDs: Int
    /// The soft limit on open file descriptors (RLIMIT_NOFILE); nil when unlimited.
    public var maxFDs: UInt64?
    /// Process start time, Unix seconds.
    public var startTimeSeconds: Double

    /// Creates stats.
    public init(cpuSeconds: Double, residentBytes: UInt64, virtualBytes: UInt64, openFDs: Int, maxFDs: UInt64?,
                startTimeSeconds: Double) {
        self.cpuSeconds = cpuSeconds
        self.residentBytes = residentBytes
        self.virtualBytes = virtualBytes
        self.openFDs = openFDs
        self.maxFDs = maxFDs
        self.startTimeSeconds = startTimeSeconds
    }

    /// Stats from the text of `/proc/self/stat` (`proc(5)`): utime and stime (fields 14, 15) and
    /// starttime (22) in clock ticks, vsize (23) in bytes, rss (24) in pages. The command name
    /// (field 2) may contain spaces and parentheses, so fields are counted after its last `)`.
    /// nil when the text does not have those fields.
    /// - Parameters:
    ///   - bootTimeSeconds: `btime` of `/proc/stat` (Unix seconds of boot).
    ///   - clockTicks: `sysconf(_SC_CLK_TCK)`.
    ///   - pageSize: bytes per page.
    public static func parse(stat: String, bootTimeSeconds: UInt64, clockTicks: Int, pageSize: Int,
                             openFDs: Int, maxFDs: UInt64?) -> ProcessStats? {
        guard clockTicks > 0, let close = stat.utf8.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // Fields after the command: field 3 (state) is the first.
        let rest = stat.utf8[stat.utf8.index(after: close)...]
        let fields = rest.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: true)
        func field(_ n: Int) -> UInt64? {
            let i = n - 3
            guard i >= 0, i < fields.count else { return nil }
            return UInt64(Substring(fields[i]).trimmingNewlines)
        }
        guard let utime = field(14), let stime = field(15), let start = field(22), let vsize = field(23),
              let rss = field(24) else { return nil }
        let ticks = Double(clockTicks)
        return ProcessStats(cpuSeconds: Double(utime + stime) / ticks, residentBytes: rss &* UInt64(max(0, pageSize)),
                            virtualBytes: vsize, openFDs: openFDs, maxFDs: maxFDs,
                            startTimeSeconds: Double(bootTimeSeconds) + Double(start) / ticks)
    }

    /// `btime` (Unix seconds of boot) from the text of `/proc/stat`; nil when absent.
    public static func bootTime(procStat text: String) -> UInt64? {
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return UInt64(line.dropFirst(6).trimmingNewlines)
        }
        return nil
    }
}

extension Substring {
    /// Without trailing line feeds and spaces.
    var trimmingNewlines: Substring {
        var s = self
        while let last = s.last, last == "\n" || last == " " { s = s.dropLast() }
        return s
    }
}

/// The outcome of config reloads since the process started, for `sluice_config_reloads_total`
/// and `sluice_config_last_reload_*` (the names Prometheus itself uses for its own config).
public struct ReloadCounters: Sendable, Equatable {
    /// Reloads that published a new config.
    public var successes: UInt64 = 0
    /// Reloads rejected (invalid or unreadable file); the old config kept serving.
    public var failures: UInt64 = 0
    /// Whether the last attempt (or the initial load, before any reload) succeeded.
    public var lastSuccessful = true
    /// Unix time of the last successful load (the initial one counts), in nanoseconds; 0 before any.
    public var lastSuccessUnixNanos: UInt64 = 0

    /// Counters before any load.
    public init() {}

    /// Creates counters.
    public init(successes: UInt64, failures: UInt64, lastSuccessful: Bool, lastSuccessUnixNanos: UInt64) {
        self.successes = successes
        self.failures = failures
        self.lastSuccessful = lastSuccessful
        self.lastSuccessUnixNanos = lastSuccessUnixNanos
    }
}
