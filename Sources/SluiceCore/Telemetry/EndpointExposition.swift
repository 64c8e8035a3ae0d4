/// Prometheus families of endpoint availability, rendered at scrape time from
/// `EndpointHealth` (control plane): availability, ejections, per-endpoint attempts and
/// failures, panic mode. Endpoints are those of the table last published, labelled by upstream
/// and address (`10.0.0.1:8080`; a host-name endpoint is one series per address).
public enum EndpointExposition {
    /// The families, with HELP and TYPE lines (empty before any table was published).
    public static func render(_ health: EndpointHealth) -> String {
        guard let a = health.current else { return "" }
        var up = "", ejections = "", requests = "", errors = "", panicTotal = "", panicNow = ""
        for (gi, group) in a.table.upstreams.enumerated() {
            let u = PrometheusExposition.escapeLabel(group.name)
            var available = 0
            var picks: UInt64 = 0
            // An address listed twice in a group (the same IP under two names, or written twice) is
            // one series: a repeated series makes the scrape invalid.
            var seen = Set<SocketAddress>()
            for (ei, e) in group.endpoints.enumerated() {
                let slot = a.slots[a.table.flatIndex(upstream: Int32(gi), endpoint: Int32(ei))]
                let s = health.state(slot)
                let isUp = s?.available ?? true
                if isUp { available += 1 }
                guard seen.insert(e.address).inserted else { continue }
                let labels = "{upstream=\"\(u)\",endpoint=\"\(PrometheusExposition.escapeLabel("\(e.address)"))\"}"
                up += "sluice_upstream_endpoint_up\(labels) \(isUp ? 1 : 0)\n"
                ejections += "sluice_upstream_ejections_total\(labels) \(s?.ejections ?? 0)\n"
                requests += "sluice_upstream_endpoint_requests_total\(labels) \(s?.requests ?? 0)\n"
                errors += "sluice_upstream_endpoint_errors_total\(labels) \(s?.errors ?? 0)\n"
                picks &+= s?.panicPicks ?? 0
            }
            panicTotal += "sluice_upstream_panic_total{upstream=\"\(u)\"} \(picks)\n"
            let panics = OutlierPolicy.panics(available: available, total: group.endpoints.count)
            panicNow += "sluice_upstream_panic{upstream=\"\(u)\"} \(panics ? 1 : 0)\n"
        }
        return "# HELP sluice_upstream_endpoint_up Whether an endpoint is in balancing: 1 available, 0 ejected or failing its health check.\n"
            + "# TYPE sluice_upstream_endpoint_up gauge\n" + up
            + "# HELP sluice_upstream_ejections_total Times outlier detection ejected an endpoint.\n"
            + "# TYPE sluice_upstream_ejections_total counter\n" + ejections
            + "# HELP sluice_upstream_endpoint_requests_total Attempts sent to an endpoint that got an answer or failed (retries count per attempt).\n"
            + "# TYPE sluice_upstream_endpoint_requests_total counter\n" + requests
            + "# HELP sluice_upstream_endpoint_errors_total Attempts that failed at an endpoint: connect failure or timeout, reset, bad response, response timeout, TLS handshake, or a 502/503/504 answer.\n"
            + "# TYPE sluice_upstream_endpoint_errors_total counter\n" + errors
            + "# HELP sluice_upstream_panic_total Endpoint picks made in panic mode (fewer than half of the group available: balanced over all).\n"
            + "# TYPE sluice_upstream_panic_total counter\n" + panicTotal
            + "# HELP sluice_upstream_panic Whether a group is in panic mode now (fewer than half of its endpoints available).\n"
            + "# TYPE sluice_upstream_panic gauge\n" + panicNow
    }
}
