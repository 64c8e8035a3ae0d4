#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// Reads this process's `ProcessStats` from `/proc` (Linux), for the `process_*` metrics.
enum ProcessStatsReader {
    /// The stats now; nil where `/proc` is not available or unreadable.
    static func read(proc: String = "/proc") -> ProcessStats? {
        guard case .success(let stat) = ConfigLoader.readFile("\(proc)/self/stat"),
              case .success(let procStat) = ConfigLoader.readFile("\(proc)/stat"),
              let boot = ProcessStats.bootTime(procStat: procStat) else { return nil }
        var limit = rlimit()
        var maxFDs: UInt64?
        // rlim_t.max is RLIM_INFINITY (a macro Swift cannot import).
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
            maxFDs = UInt64(limit.rlim_cur)
        }
        return ProcessStats.parse(stat: stat, bootTimeSeconds: boot, clockTicks: Int(sysconf(Int32(_SC_CLK_TCK))),
                                  pageSize: Int(sysconf(Int32(_SC_PAGESIZE))), openFDs: countEntries("\(proc)/self/fd"),
                                  maxFDs: maxFDs)
    }

    /// Entries of a directory, `.` and `..` not counted (the descriptor reading the directory is).
    static func countEntries(_ path: String) -> Int {
        guard let dir = opendir(path) else { return 0 }
        defer { closedir(dir) }
        var n = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { n += 1 }
        }
        // The directory stream's own descriptor is open only while we count.
        return max(0, n - 1)
    }
}
