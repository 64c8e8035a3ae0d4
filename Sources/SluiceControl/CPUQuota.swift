#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The CPU limit of this process's cgroup (v2 `cpu.max`), for `workers: auto`: in a container
/// limited to 2 CPUs on a 64-CPU node, one worker per node CPU would only queue behind the
/// CFS quota (what Go's automaxprocs fixes for GOMAXPROCS).
enum CPUQuota {
    /// Workers for `workers: auto`: the online CPUs, lowered to the cgroup CPU limit rounded up
    /// (a quota of 1.5 CPUs gives 2), never below 1.
    /// - Parameters:
    ///   - procSelfCgroup: the file naming this process's cgroup (`0::/path` on cgroup v2).
    ///   - cgroupRoot: where the cgroup v2 hierarchy is mounted.
    static func autoWorkers(onlineCPUs: Int, procSelfCgroup: String = "/proc/self/cgroup",
                            cgroupRoot: String = "/sys/fs/cgroup") -> Int {
        let online = max(1, onlineCPUs)
        guard let limit = limit(procSelfCgroup: procSelfCgroup, cgroupRoot: cgroupRoot) else { return online }
        return max(1, min(online, limit))
    }

    /// The lowest `cpu.max` quota of the process's cgroup and its ancestors, in whole CPUs
    /// rounded up; nil when there is none (no cgroup v2, `max`, unreadable files).
    static func limit(procSelfCgroup: String, cgroupRoot: String) -> Int? {
        guard let text = readSmallFile(procSelfCgroup) else { return nil }
        // cgroup v2 has one line `0::/path`; v1 hierarchies (`N:controllers:/path`) are not read.
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) else { return nil }
        var path = String(line.dropFirst(3))
        // A path outside our cgroup namespace shows as `/../..`: the mount's root is ours then.
        if path.contains("/..") { path = "/" }
        var lowest: Int?
        while true {
            let dir = path == "/" ? cgroupRoot : cgroupRoot + path
            if let max = readSmallFile(dir + "/cpu.max").flatMap(parse(cpuMax:)) {
                lowest = lowest.map { Swift.min($0, max) } ?? max
            }
            if path == "/" || path.isEmpty { break }
            if let slash = path.lastIndex(of: "/") {
                path = slash == path.startIndex ? "/" : String(path[..<slash])
            } else {
                break
            }
        }
        return lowest
    }

    /// Whole CPUs (rounded up) of a `cpu.max` line: `QUOTA PERIOD` in microseconds, or nil for
    /// `max PERIOD` (no limit) and anything malformed.
    static func parse(cpuMax text: String) -> Int? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count >= 1, fields[0] != "max", let quota = UInt64(fields[0]), quota > 0 else { return nil }
        let period = fields.count >= 2 ? UInt64(fields[1]) : 100_000
        guard let period, period > 0 else { return nil }
        let cpus = quota / period + (quota % period == 0 ? 0 : 1)
        return Int(Swift.min(cpus, 1 << 20))
    }

    /// The first 4 KiB of a file, or nil.
    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 4096)
        var count = 0
        while count < buf.count {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            count += n
        }
        return String(decoding: buf[..<count], as: UTF8.self)
    }
}
