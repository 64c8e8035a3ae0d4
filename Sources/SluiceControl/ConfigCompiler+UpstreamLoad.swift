import SluiceCore
import Yams

/// `balance`, `max_connections`, `max_pending` and `max_requests` of an `upstreams:` entry.
extension ConfigCompiler {
    /// The keys this file reads.
    static let upstreamLoadKeys = ["balance", "max_connections", "max_pending", "max_requests"]

    /// The group's balance and limits (defaults: round robin, no limits); problems are reported.
    mutating func compileUpstreamLoad(_ m: YAMLMap) -> UpstreamLoadSpec {
        var spec = UpstreamLoadSpec()
        if let b = m["balance"], let s = reader.string(b, m.path("balance")) {
            switch s {
            case "round_robin": spec.balance = .roundRobin
            case "least_request": spec.balance = .leastRequest
            default:
                reader.report(b, m.path("balance"), "`\(ConfigReader.abbreviated(s))` is not a balancing method",
                              hint: "use `round_robin` (the default) or `least_request`")
            }
        }
        if let v = m["max_connections"], let n = reader.int(v, m.path("max_connections"), in: 1...10_000_000) {
            spec.maxConnections = n
        }
        if let v = m["max_pending"], let n = reader.int(v, m.path("max_pending"), in: 1...10_000_000) {
            spec.maxPending = n
        }
        if let v = m["max_requests"], let n = reader.int(v, m.path("max_requests"), in: 1...10_000_000) {
            spec.maxRequests = n
        }
        return spec
    }
}
