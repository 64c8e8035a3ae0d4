/// Renders metrics in the Prometheus text exposition format, version 0.0.4.
///
/// Families appear in a fixed order, each with its HELP and TYPE lines. Series of cohorts are
/// always written (zeros included, so a new canary's series exist before its first request);
/// the unrouted series and routes' direct-response series only once they have seen a request.
public enum PrometheusExposition {
    /// The `Content-Type` of the rendered text.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// The exposition of `totals` (summed shards) named by `names`, with the weights and
    /// version of `table`, the table now serving.
    /// `reloads` adds the `sluice_config_reload*` families and `process` the standard `process_*`
    /// families (both left out when nil).
    public static func render(totals: MetricsTotals, names: MetricsNames, table: RoutingTable, buildVersion: String,
                              reloads: ReloadCounters? = nil, process: ProcessStats? = nil) -> String {
        var out = ""
        out.reserveCapacity(4096 + totals.seriesCount * 1024)
        let seriesCount = min(totals.seriesCount, names.series.count)
        let shown = (0..<seriesCount).filter { s in
            !names.series[s].cohort.isEmpty || totals.requests(series: s) > 0
                || totals.durationBucketCounts(series: s).contains { $0 > 0 }
        }
        func labels(_ s: Int) -> String {
            "route=\"\(escapeLabel(names.series[s].route))\",cohort=\"\(escapeLabel(names.series[s].cohort))\""
        }

        family(&out, "sluice_requests_total", "counter",
               "Requests answered, by route, cohort and the status code sent to the client (499: the client closed the connection before a response was sent).")
        for s in shown {
            for (status, count) in totals.statusCounts(series: s) {
                sample(&out, "sluice_requests_total", "\(labels(s)),code=\"\(status)\"", count)
            }
        }

        family(&out, "sluice_request_duration_seconds", "histogram",
               "Time from the first byte of a request to the last byte of its response, by route and cohort.")
        for s in shown {
            let l = labels(s)
            var cumulative: UInt64 = 0
            for (i, c) in totals.durationBucketCounts(series: s).enumerated() {
                cumulative &+= c
                sample(&out, "sluice_request_duration_seconds_bucket", "\(l),le=\"\(DurationBuckets.labels[i])\"", cumulative)
            }
            sample(&out, "sluice_request_duration_seconds_sum", l, seconds(nanos: totals.durationSumNanos(series: s)))
            // The count is the +Inf bucket, so the two always agree even while workers record.
            sample(&out, "sluice_request_duration_seconds_count", l, cumulative)
        }

        family(&out, "sluice_upstream_first_byte_seconds", "histogram",
               "Time from sending a request's head to an upstream to the first byte of its response, by route and cohort.")
        for s in shown where !names.series[s].cohort.isEmpty {
            let l = labels(s)
            var cumulative: UInt64 = 0
            for (i, c) in totals.firstByteBucketCounts(series: s).enumerated() {
                cumulative &+= c
                sample(&out, "sluice_upstream_first_byte_seconds_bucket", "\(l),le=\"\(DurationBuckets.labels[i])\"", cumulative)
            }
            sample(&out, "sluice_upstream_first_byte_seconds_sum", l, seconds(nanos: totals.firstByteSumNanos(series: s)))
            sample(&out, "sluice_upstream_first_byte_seconds_count", l, cumulative)
        }

        family(&out, "sluice_upstream_errors_total", "counter",
               "Failed exchanges with upstreams, by route, cohort and reason.")
        for s in shown {
            let withCohort = !names.series[s].cohort.isEmpty
            for reason in UpstreamErrorReason.allCases {
                let count = totals.upstreamErrors(series: s, reason: reason)
                if withCohort || count > 0 {
                    sample(&out, "sluice_upstream_errors_total", "\(labels(s)),reason=\"\(reason.label)\"", count)
                }
            }
        }

        renderFaults(&out, totals: totals, names: names, shown: shown)
        renderRetries(&out, totals: totals, names: names, shown: shown)

        family(&out, "sluice_requests_in_flight", "gauge",
               "Requests forwarded to an upstream and not yet finished, by route and cohort.")
        for s in shown where !names.series[s].cohort.isEmpty {
            sample(&out, "sluice_requests_in_flight", labels(s), totals.inFlight(series: s))
        }

        family(&out, "sluice_tunnels_open", "gauge",
               "Upgrade (WebSocket) tunnels open, by route and the cohort their handshake was routed to.")
        for s in shown where !names.series[s].cohort.isEmpty {
            sample(&out, "sluice_tunnels_open", labels(s), totals.tunnelsOpen(series: s))
        }
        family(&out, "sluice_tunnel_duration_seconds", "summary",
               "Lifetime of closed Upgrade tunnels, by route and cohort.")
        for s in shown where !names.series[s].cohort.isEmpty {
            sample(&out, "sluice_tunnel_duration_seconds_sum", labels(s), number(Double(totals.tunnelSumNanos(series: s)) / 1e9))
            sample(&out, "sluice_tunnel_duration_seconds_count", labels(s), totals.tunnelsClosed(series: s))
        }

        family(&out, "sluice_compression_bytes_total", "counter",
               "Response body bytes into (direction=in) and out of (direction=out) the gzip compressor, by route.")
        var compressed: [String: (UInt64, UInt64)] = [:]
        var routeOrder: [String] = []
        for s in shown where !names.series[s].cohort.isEmpty {
            let route = names.series[s].route
            if compressed[route] == nil { routeOrder.append(route) }
            let prior = compressed[route] ?? (0, 0)
            compressed[route] = (prior.0 &+ totals.compressedIn(series: s), prior.1 &+ totals.compressedOut(series: s))
        }
        for route in routeOrder {
            let (bytesIn, bytesOut) = compressed[route]!
            let label = "route=\"\(escapeLabel(route))\""
            sample(&out, "sluice_compression_bytes_total", "\(label),direction=\"in\"", bytesIn)
            sample(&out, "sluice_compression_bytes_total", "\(label),direction=\"out\"", bytesOut)
        }

        family(&out, "sluice_cohort_weight", "gauge",
               "Share of a route's split each cohort gets in the serving table, as a ratio from 0 to 1.")
        for route in table.routes {
            for cohort in route.cohorts {
                sample(&out, "sluice_cohort_weight",
                       "route=\"\(escapeLabel(route.name))\",cohort=\"\(escapeLabel(cohort.name))\"",
                       number(Double(cohort.weight) / 10000))
            }
        }

        family(&out, "sluice_cohort_baseline", "gauge",
               "1 for the route's baseline cohort (where abort and rollback send traffic), 0 for the others; alerts compare a canary with it.")
        for route in table.routes {
            for (i, cohort) in route.cohorts.enumerated() {
                sample(&out, "sluice_cohort_baseline",
                       "route=\"\(escapeLabel(route.name))\",cohort=\"\(escapeLabel(cohort.name))\"",
                       i == Int(route.baseline) ? "1" : "0")
            }
        }

        family(&out, "sluice_request_bytes_total", "counter",
               "Bytes received from clients (heads and bodies), by route and cohort.")
        for s in shown {
            sample(&out, "sluice_request_bytes_total", labels(s), totals.bytesIn(series: s))
        }
        family(&out, "sluice_response_bytes_total", "counter",
               "Bytes sent to clients (heads and bodies), by route and cohort.")
        for s in shown {
            sample(&out, "sluice_response_bytes_total", labels(s), totals.bytesOut(series: s))
        }

        let listenerCount = min(totals.listenerCount, names.listeners.count)
        family(&out, "sluice_connections_active", "gauge", "Client connections open, by listener.")
        for l in 0..<listenerCount {
            sample(&out, "sluice_connections_active", "listener=\"\(escapeLabel(names.listeners[l]))\"",
                   totals.connectionsActive(listener: l))
        }
        family(&out, "sluice_connections_accepted_total", "counter", "Client connections accepted, by listener.")
        for l in 0..<listenerCount {
            sample(&out, "sluice_connections_accepted_total", "listener=\"\(escapeLabel(names.listeners[l]))\"",
                   totals.connectionsAccepted(listener: l))
        }
        family(&out, "sluice_tls_handshakes_total", "counter",
               "TLS handshakes on a listener by result: ok (full or resumed) or failed.")
        for l in 0..<listenerCount {
            let name = escapeLabel(names.listeners[l])
            sample(&out, "sluice_tls_handshakes_total", "listener=\"\(name)\",result=\"ok\"", totals.tlsHandshakesOK(listener: l))
            sample(&out, "sluice_tls_handshakes_total", "listener=\"\(name)\",result=\"failed\"",
                   totals.tlsHandshakesFailed(listener: l))
        }
        family(&out, "sluice_http2_connections_total", "counter", "Client connections that chose HTTP/2 (ALPN h2 or h2c), by listener.")
        for l in 0..<listenerCount {
            sample(&out, "sluice_http2_connections_total", "listener=\"\(escapeLabel(names.listeners[l]))\"",
                   totals.http2Connections(listener: l))
        }
        family(&out, "sluice_http2_streams_total", "counter", "HTTP/2 streams (requests) opened by clients, by listener.")
        for l in 0..<listenerCount {
            sample(&out, "sluice_http2_streams_total", "listener=\"\(escapeLabel(names.listeners[l]))\"",
                   totals.http2Streams(listener: l))
        }
        family(&out, "sluice_http2_connections_closed_total", "counter",
               "HTTP/2 connections Sluice closed with GOAWAY for a protocol error or an attack (rapid reset, control-frame flood, HPACK bomb).")
        for l in 0..<listenerCount {
            let name = escapeLabel(names.listeners[l])
            for r in HTTP2CloseReason.allCases {
                sample(&out, "sluice_http2_connections_closed_total", "listener=\"\(name)\",reason=\"\(r.label)\"",
                       totals.http2Closed(listener: l, reason: r))
            }
        }
        family(&out, "sluice_tls_resumptions_total", "counter",
               "TLS handshakes on a listener that resumed a session (ticket or session cache).")
        for l in 0..<listenerCount {
            sample(&out, "sluice_tls_resumptions_total", "listener=\"\(escapeLabel(names.listeners[l]))\"",
                   totals.tlsResumptions(listener: l))
        }

        let upstreamCount = min(totals.upstreamCount, names.upstreams.count)
        family(&out, "sluice_upstream_connections_active", "gauge", "Connections open to an upstream's endpoints, by upstream.")
        for u in 0..<upstreamCount {
            sample(&out, "sluice_upstream_connections_active", "upstream=\"\(escapeLabel(names.upstreams[u]))\"",
                   totals.upstreamConnectionsActive(upstream: u))
        }
        family(&out, "sluice_upstream_connections_opened_total", "counter",
               "Connections opened to an upstream's endpoints, by upstream.")
        for u in 0..<upstreamCount {
            sample(&out, "sluice_upstream_connections_opened_total", "upstream=\"\(escapeLabel(names.upstreams[u]))\"",
                   totals.upstreamConnectionsOpened(upstream: u))
        }

        family(&out, "sluice_config_version", "gauge",
               "Version of the routing table now serving (rises with every reload and runtime change).")
        sample(&out, "sluice_config_version", "", table.version)
        family(&out, "sluice_build_info", "gauge", "Sluice release this process runs (always 1).")
        sample(&out, "sluice_build_info", "version=\"\(escapeLabel(buildVersion))\"", "1")
        if let reloads { renderReloads(reloads, to: &out) }
        if let process { renderProcess(process, to: &out) }
        return out
    }

    /// Appends the HELP and TYPE lines of a family.
    static func family(_ out: inout String, _ name: String, _ type: String, _ help: String) {
        out += "# HELP \(name) \(escapeHelp(help))\n# TYPE \(name) \(type)\n"
    }

    /// Appends `name{labels} value`.
    static func sample(_ out: inout String, _ name: String, _ labels: String, _ value: String) {
        out += name
        if !labels.isEmpty { out += "{\(labels)}" }
        out += " \(value)\n"
    }

    static func sample(_ out: inout String, _ name: String, _ labels: String, _ value: UInt64) {
        sample(&out, name, labels, String(value))
    }

    static func sample(_ out: inout String, _ name: String, _ labels: String, _ value: Int64) {
        sample(&out, name, labels, String(value))
    }

    /// Nanoseconds as a seconds value.
    static func seconds(nanos: UInt64) -> String {
        if nanos % 1_000_000_000 == 0 { return String(nanos / 1_000_000_000) }
        return number(Double(nanos) / 1e9)
    }

    /// A float value: integers without a fraction, others in Swift's shortest round-trip form
    /// (which Prometheus parses, exponents included).
    public static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// Escapes a label value: backslash, double quote and line feed.
    public static func escapeLabel(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == 0x5C || $0 == 0x22 || $0 == 0x0A }) else { return value }
        var out = ""
        for ch in value.unicodeScalars {
            switch ch {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// Escapes HELP text: backslash and line feed.
    public static func escapeHelp(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == 0x5C || $0 == 0x0A }) else { return value }
        var out = ""
        for ch in value.unicodeScalars {
            switch ch {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }
}
