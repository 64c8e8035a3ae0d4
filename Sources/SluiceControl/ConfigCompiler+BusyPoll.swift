import SluiceCore
import Yams

extension ConfigCompiler {
    /// The largest `busy_poll:`: 1 ms. A worker may spin this long after every batch of events, and
    /// traffic with gaps shorter than the window keeps it spinning (one event per window is enough),
    /// so a larger window mostly burns CPU; the wake-up costs it saves are tens of microseconds.
    static let maxBusyPoll: UInt64 = 1_000_000

    /// `busy_poll:` (a duration such as `50us`, at most `1ms`; `0` or `off`: off), in nanoseconds.
    mutating func compileBusyPoll(_ node: Node) -> UInt64? {
        if case .scalar(let s) = node, s.string == "off" { return 0 }
        guard let ns = reader.duration(node, "busy_poll", max: .max, microseconds: true) else { return nil }
        guard ns <= Self.maxBusyPoll else {
            let written = node.scalar.map { ConfigReader.abbreviated($0.string) } ?? "\(ns)ns"
            reader.report(node, "busy_poll",
                          "`\(written)` is too long: at most 1ms, since a worker "
                              + "spins its CPU for up to this long after every batch of events",
                          hint: "windows of 20us to 200us cover a cross-CPU wake-up; e.g. `busy_poll: 50us`, or `off`")
            return nil
        }
        return ns
    }

    /// A warning when busy-polling workers outnumber the CPUs they may run on (online CPUs,
    /// lowered to the cgroup limit rounded up): a spinning worker then takes CPU time from the
    /// others (and under a cgroup quota gets the whole process throttled).
    mutating func warnBusyPoll(_ busyPoll: UInt64, workers: Int, node: Node?) {
        guard busyPoll > 0 else { return }
        let cpus = Self.onlineCPUs()
        guard workers > cpus else { return }
        warnings.append("\(reader.file):\(node?.mark?.line ?? 0): busy_poll with \(workers) workers and \(cpus) CPUs "
                            + "to run them (online CPUs, or the cgroup CPU limit rounded up): spinning workers take CPU "
                            + "time from each other; set `workers` to at most \(cpus), or turn busy_poll off")
    }
}
