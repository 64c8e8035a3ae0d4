@testable import SluiceCore

/// Builds a routing table with one upstream per distinct cohort name (same name), e.g.
/// `telemetryTable(version: 1, ["web": [("stable", 90), ("canary", 10)]])` (weights in percent).
func telemetryTable(version: UInt64, _ routes: [(name: String, cohorts: [(name: String, percent: Double)])]) -> RoutingTable {
    var upstreamNames: [String] = []
    for r in routes { for c in r.cohorts where !upstreamNames.contains(c.name) { upstreamNames.append(c.name) } }
    let upstreams = upstreamNames.enumerated().map { i, name in
        UpstreamGroup(name: name, endpoints: [Endpoint(address: .v4(0x7f00_0001, port: UInt16(9000 + i)), label: "127.0.0.1:\(9000 + i)")])
    }
    let specs = routes.map { r in
        RouteSpec(name: r.name, cohorts: r.cohorts.map { c in
            CohortSpec(name: c.name, upstream: upstreamNames.firstIndex(of: c.name)!, weight: Int((c.percent * 100).rounded()))
        }, sticky: .none)
    }
    return RoutingTable(version: version, upstreams: upstreams, routes: specs)
}
