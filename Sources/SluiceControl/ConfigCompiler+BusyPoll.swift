import SluiceCore
import Yams

extension ConfigCompiler {
    /// The largest `busy_poll:`: 10 ms. A worker may spin this long after every batch of events,
    /// so a larger window mostly burns CPU; wake-up costs it saves are tens of microseconds.
    static let maxBusyPoll: UInt64 = 10_000_000

    /// `busy_poll:` (a duration such as `50us`, at most `10ms`; `0` or `off`: off), in nanoseconds.
    mutating func compileBusyPoll(_ node: Node) -> UInt64? {
        if case .scalar(let s) = node, s.string == "off" { return 0 }
        guard let ns = reader.duration(node, "busy_poll", max: .max, microseconds: true) else { return nil }
        guard ns <= Self.maxBusyPoll else {
            let written = node.scalar.map { ConfigReader.abbreviated($0.string) } ?? "\(ns)ns"
            reader.report(node, "busy_poll",
                          "`\(written)` is too long: at most 10ms, since a worker "
                              + "spins its CPU for up to this long after every batch of events",
                          hint: "windows of 20us to 200us cover a cross-CPU wake-up; e.g. `busy_poll: 50us`, or `off`")
            return nil
        }
        return ns
    }
}
