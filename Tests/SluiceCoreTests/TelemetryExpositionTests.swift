import Testing
@testable import SluiceCore

struct TelemetryExpositionTests {
    @Test func registryKeepsIdsAcrossReloads() {
        let registry = MetricsRegistry(capacity: MetricsCapacity(series: 8, listeners: 4, upstreams: 2), listenerNames: ["public"])
        let v1 = registry.seriesMap(for: telemetryTable(version: 1, [("web", [("stable", 90), ("canary", 10)])]))
        #expect(v1.cohortSeries == [[1, 2]])
        #expect(v1.directSeries == [3])
        #expect(v1.upstreamSeries == [0, 1])
        #expect(v1.tableVersion == 1)
        // Reordered cohorts, a new route, a new upstream over the capacity.
        let v2 = registry.seriesMap(for: telemetryTable(version: 2, [
            ("api", [("canary", 100)]), ("web", [("canary", 20), ("stable", 80)]), ("x", [("green", 100)]),
        ]))
        #expect(v2.cohortSeries == [[4], [2, 1], [6]])
        #expect(v2.directSeries == [5, 3, 7])
        #expect(v2.upstreamSeries == [1, 0, -1])
        #expect(registry.overflowCount == 1)
        // Series capacity used up: new pairs are counted as unrouted.
        let v3 = registry.seriesMap(for: telemetryTable(version: 3, [("y", [("stable", 100)])]))
        #expect(v3.cohortSeries == [[0]] && v3.directSeries == [0])
        #expect(registry.overflowCount == 3)
        #expect(registry.names.series.count == 8)
        #expect(registry.names.series[4] == SeriesLabels(route: "api", cohort: "canary"))
        #expect(registry.seriesId(route: "web", cohort: "canary") == 2)
    }

    @Test func seriesOfDecisions() {
        let registry = MetricsRegistry(listenerNames: [])
        let map = registry.seriesMap(for: telemetryTable(version: 1, [("web", [("stable", 90), ("canary", 10)])]))
        #expect(map.series(for: RouteDecision(action: .forward, route: 0, cohort: 1, upstream: 1, endpoint: 0)) == 2)
        #expect(map.series(for: RouteDecision(action: .respond, route: 0, response: 0)) == 3)
        #expect(map.series(for: RouteDecision(action: .notFound, route: 0)) == 3)
        #expect(map.series(for: .notFound) == SeriesMap.unroutedSeries)
        #expect(map.series(for: RouteDecision(action: .forward, route: 5, cohort: 0)) == 0)
        #expect(map.upstream(for: RouteDecision(action: .forward, route: 0, cohort: 1, upstream: 1, endpoint: 0)) == 1)
        #expect(map.upstream(for: .notFound) == -1)
    }

    @Test func exactExpositionOfASmallCase() {
        let capacity = MetricsCapacity(series: 8, listeners: 2, upstreams: 4)
        let registry = MetricsRegistry(capacity: capacity, listenerNames: ["public"])
        let table = telemetryTable(version: 7, [("web", [("stable", 87.5), ("canary", 12.5)])])
        let map = registry.seriesMap(for: table)
        let shard = MetricsShard(capacity: capacity)
        let stable = map.cohortSeries[0][0], canary = map.cohortSeries[0][1]
        shard.recordRequest(series: stable, status: 200, durationNanos: 1_000_000, bytesIn: 100, bytesOut: 2000)
        shard.recordRequest(series: stable, status: 200, durationNanos: 3_000_000, bytesIn: 100, bytesOut: 2000)
        shard.recordRequest(series: canary, status: 503, durationNanos: 20_500_000, bytesIn: 80, bytesOut: 120)
        shard.recordUpstreamError(series: canary, reason: .connectRefused)
        shard.recordUpstreamFirstByte(series: canary, nanos: 7_000_000)
        shard.recordUpstreamFirstByte(series: canary, nanos: 20_000_000)
        shard.addInFlight(series: stable, 1)
        shard.recordRequest(series: SeriesMap.unroutedSeries, status: 404, durationNanos: 50_000, bytesIn: 70, bytesOut: 90)
        shard.connectionAccepted(listener: 0)
        shard.upstreamConnectionOpened(upstream: map.upstreamSeries[0])
        let names = registry.names
        let totals = MetricsTotals.sum(of: [shard], seriesCount: names.series.count, listenerCount: names.listeners.count,
                                       upstreamCount: names.upstreams.count)
        let text = PrometheusExposition.render(totals: totals, names: names, table: table, buildVersion: "0.1.0")
        let expected = #"""
            # HELP sluice_requests_total Requests answered, by route, cohort and the status code sent to the client (499: the client closed the connection before a response was sent).
            # TYPE sluice_requests_total counter
            sluice_requests_total{route="",cohort="",code="404"} 1
            sluice_requests_total{route="web",cohort="stable",code="200"} 2
            sluice_requests_total{route="web",cohort="canary",code="503"} 1
            # HELP sluice_request_duration_seconds Time from the first byte of a request to the last byte of its response, by route and cohort.
            # TYPE sluice_request_duration_seconds histogram
            sluice_request_duration_seconds_bucket{route="",cohort="",le="0.001"} 1
            sluice_request_duration_seconds_bucket{route="",cohort="",le="0.0025"} 1
            sluice_request_duration_seconds_bucket{route="",cohort="",le="0.005"} 1
            sluice_request_duration_seconds_bucket{route="",cohort="",le="0.01"} 1
            sluice_request_duration_seconds_bucket{route="",cohort="",le="0.025"} 1
            sluice_request_duration_seconds_bucket{route="",cohort="",le="0.05"} 1
            sluice_request_duration_seconds_bucket{route="",cohort="",le="0.1"} 1
            sluice_request_duration_seconds_bucket{route="",cohort="",le="0.25"} 1
            sluice_request_duration_seconds_bucket{route="",cohort="",le="0.5"} 1
            sluice_request_duration_seconds_bucket{route="",cohort="",le="1"} 1
            sluice_request_duration_seconds_bucket{route="",cohort="",le="2.5"} 1
            sluice_request_duration_seconds_bucket{route="",cohort="",le="5"} 1
            sluice_request_duration_seconds_bucket{route="",cohort="",le="10"} 1
            sluice_request_duration_seconds_bucket{route="",cohort="",le="+Inf"} 1
            sluice_request_duration_seconds_sum{route="",cohort=""} 5e-05
            sluice_request_duration_seconds_count{route="",cohort=""} 1
            sluice_request_duration_seconds_bucket{route="web",cohort="stable",le="0.001"} 1
            sluice_request_duration_seconds_bucket{route="web",cohort="stable",le="0.0025"} 1
            sluice_request_duration_seconds_bucket{route="web",cohort="stable",le="0.005"} 2
            sluice_request_duration_seconds_bucket{route="web",cohort="stable",le="0.01"} 2
            sluice_request_duration_seconds_bucket{route="web",cohort="stable",le="0.025"} 2
            sluice_request_duration_seconds_bucket{route="web",cohort="stable",le="0.05"} 2
            sluice_request_duration_seconds_bucket{route="web",cohort="stable",le="0.1"} 2
            sluice_request_duration_seconds_bucket{route="web",cohort="stable",le="0.25"} 2
            sluice_request_duration_seconds_bucket{route="web",cohort="stable",le="0.5"} 2
            sluice_request_duration_seconds_bucket{route="web",cohort="stable",le="1"} 2
            sluice_request_duration_seconds_bucket{route="web",cohort="stable",le="2.5"} 2
            sluice_request_duration_seconds_bucket{route="web",cohort="stable",le="5"} 2
            sluice_request_duration_seconds_bucket{route="web",cohort="stable",le="10"} 2
            sluice_request_duration_seconds_bucket{route="web",cohort="stable",le="+Inf"} 2
            sluice_request_duration_seconds_sum{route="web",cohort="stable"} 0.004
            sluice_request_duration_seconds_count{route="web",cohort="stable"} 2
            sluice_request_duration_seconds_bucket{route="web",cohort="canary",le="0.001"} 0
            sluice_request_duration_seconds_bucket{route="web",cohort="canary",le="0.0025"} 0
            sluice_request_duration_seconds_bucket{route="web",cohort="canary",le="0.005"} 0
            sluice_request_duration_seconds_bucket{route="web",cohort="canary",le="0.01"} 0
            sluice_request_duration_seconds_bucket{route="web",cohort="canary",le="0.025"} 1
            sluice_request_duration_seconds_bucket{route="web",cohort="canary",le="0.05"} 1
            sluice_request_duration_seconds_bucket{route="web",cohort="canary",le="0.1"} 1
            sluice_request_duration_seconds_bucket{route="web",cohort="canary",le="0.25"} 1
            sluice_request_duration_seconds_bucket{route="web",cohort="canary",le="0.5"} 1
            sluice_request_duration_seconds_bucket{route="web",cohort="canary",le="1"} 1
            sluice_request_duration_seconds_bucket{route="web",cohort="canary",le="2.5"} 1
            sluice_request_duration_seconds_bucket{route="web",cohort="canary",le="5"} 1
            sluice_request_duration_seconds_bucket{route="web",cohort="canary",le="10"} 1
            sluice_request_duration_seconds_bucket{route="web",cohort="canary",le="+Inf"} 1
            sluice_request_duration_seconds_sum{route="web",cohort="canary"} 0.0205
            sluice_request_duration_seconds_count{route="web",cohort="canary"} 1
            # HELP sluice_upstream_first_byte_seconds Time from sending a request's head to an upstream to the first byte of its response, by route and cohort.
            # TYPE sluice_upstream_first_byte_seconds histogram
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="stable",le="0.001"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="stable",le="0.0025"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="stable",le="0.005"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="stable",le="0.01"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="stable",le="0.025"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="stable",le="0.05"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="stable",le="0.1"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="stable",le="0.25"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="stable",le="0.5"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="stable",le="1"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="stable",le="2.5"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="stable",le="5"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="stable",le="10"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="stable",le="+Inf"} 0
            sluice_upstream_first_byte_seconds_sum{route="web",cohort="stable"} 0
            sluice_upstream_first_byte_seconds_count{route="web",cohort="stable"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="canary",le="0.001"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="canary",le="0.0025"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="canary",le="0.005"} 0
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="canary",le="0.01"} 1
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="canary",le="0.025"} 2
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="canary",le="0.05"} 2
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="canary",le="0.1"} 2
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="canary",le="0.25"} 2
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="canary",le="0.5"} 2
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="canary",le="1"} 2
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="canary",le="2.5"} 2
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="canary",le="5"} 2
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="canary",le="10"} 2
            sluice_upstream_first_byte_seconds_bucket{route="web",cohort="canary",le="+Inf"} 2
            sluice_upstream_first_byte_seconds_sum{route="web",cohort="canary"} 0.027
            sluice_upstream_first_byte_seconds_count{route="web",cohort="canary"} 2
            # HELP sluice_upstream_errors_total Failed exchanges with upstreams, by route, cohort and reason.
            # TYPE sluice_upstream_errors_total counter
            sluice_upstream_errors_total{route="web",cohort="stable",reason="connect_refused"} 0
            sluice_upstream_errors_total{route="web",cohort="stable",reason="connect_timeout"} 0
            sluice_upstream_errors_total{route="web",cohort="stable",reason="response_timeout"} 0
            sluice_upstream_errors_total{route="web",cohort="stable",reason="reset"} 0
            sluice_upstream_errors_total{route="web",cohort="stable",reason="bad_response"} 0
            sluice_upstream_errors_total{route="web",cohort="stable",reason="tls_handshake"} 0
            sluice_upstream_errors_total{route="web",cohort="stable",reason="circuit_open"} 0
            sluice_upstream_errors_total{route="web",cohort="canary",reason="connect_refused"} 1
            sluice_upstream_errors_total{route="web",cohort="canary",reason="connect_timeout"} 0
            sluice_upstream_errors_total{route="web",cohort="canary",reason="response_timeout"} 0
            sluice_upstream_errors_total{route="web",cohort="canary",reason="reset"} 0
            sluice_upstream_errors_total{route="web",cohort="canary",reason="bad_response"} 0
            sluice_upstream_errors_total{route="web",cohort="canary",reason="tls_handshake"} 0
            sluice_upstream_errors_total{route="web",cohort="canary",reason="circuit_open"} 0
            # HELP sluice_requests_in_flight Requests forwarded to an upstream and not yet finished, by route and cohort.
            # TYPE sluice_requests_in_flight gauge
            sluice_requests_in_flight{route="web",cohort="stable"} 1
            sluice_requests_in_flight{route="web",cohort="canary"} 0
            # HELP sluice_tunnels_open Upgrade (WebSocket) tunnels open, by route and the cohort their handshake was routed to.
            # TYPE sluice_tunnels_open gauge
            sluice_tunnels_open{route="web",cohort="stable"} 0
            sluice_tunnels_open{route="web",cohort="canary"} 0
            # HELP sluice_tunnel_duration_seconds Lifetime of closed Upgrade tunnels, by route and cohort.
            # TYPE sluice_tunnel_duration_seconds summary
            sluice_tunnel_duration_seconds_sum{route="web",cohort="stable"} 0
            sluice_tunnel_duration_seconds_count{route="web",cohort="stable"} 0
            sluice_tunnel_duration_seconds_sum{route="web",cohort="canary"} 0
            sluice_tunnel_duration_seconds_count{route="web",cohort="canary"} 0
            # HELP sluice_compression_bytes_total Response body bytes into (direction=in) and out of (direction=out) the gzip compressor, by route.
            # TYPE sluice_compression_bytes_total counter
            sluice_compression_bytes_total{route="web",direction="in"} 0
            sluice_compression_bytes_total{route="web",direction="out"} 0
            # HELP sluice_cohort_weight Share of a route's split each cohort gets in the serving table, as a ratio from 0 to 1.
            # TYPE sluice_cohort_weight gauge
            sluice_cohort_weight{route="web",cohort="stable"} 0.875
            sluice_cohort_weight{route="web",cohort="canary"} 0.125
            # HELP sluice_cohort_baseline 1 for the route's baseline cohort (where abort and rollback send traffic), 0 for the others; alerts compare a canary with it.
            # TYPE sluice_cohort_baseline gauge
            sluice_cohort_baseline{route="web",cohort="stable"} 1
            sluice_cohort_baseline{route="web",cohort="canary"} 0
            # HELP sluice_request_bytes_total Bytes received from clients (heads and bodies), by route and cohort.
            # TYPE sluice_request_bytes_total counter
            sluice_request_bytes_total{route="",cohort=""} 70
            sluice_request_bytes_total{route="web",cohort="stable"} 200
            sluice_request_bytes_total{route="web",cohort="canary"} 80
            # HELP sluice_response_bytes_total Bytes sent to clients (heads and bodies), by route and cohort.
            # TYPE sluice_response_bytes_total counter
            sluice_response_bytes_total{route="",cohort=""} 90
            sluice_response_bytes_total{route="web",cohort="stable"} 4000
            sluice_response_bytes_total{route="web",cohort="canary"} 120
            # HELP sluice_connections_active Client connections open, by listener.
            # TYPE sluice_connections_active gauge
            sluice_connections_active{listener="public"} 1
            # HELP sluice_connections_accepted_total Client connections accepted, by listener.
            # TYPE sluice_connections_accepted_total counter
            sluice_connections_accepted_total{listener="public"} 1
            # HELP sluice_tls_handshakes_total TLS handshakes on a listener by result: ok (full or resumed) or failed.
            # TYPE sluice_tls_handshakes_total counter
            sluice_tls_handshakes_total{listener="public",result="ok"} 0
            sluice_tls_handshakes_total{listener="public",result="failed"} 0
            # HELP sluice_http2_connections_total Client connections that chose HTTP/2 (ALPN h2 or h2c), by listener.
            # TYPE sluice_http2_connections_total counter
            sluice_http2_connections_total{listener="public"} 0
            # HELP sluice_http2_streams_total HTTP/2 streams (requests) opened by clients, by listener.
            # TYPE sluice_http2_streams_total counter
            sluice_http2_streams_total{listener="public"} 0
            # HELP sluice_http2_connections_closed_total HTTP/2 connections Sluice closed with GOAWAY for a protocol error or an attack (rapid reset, control-frame flood, HPACK bomb).
            # TYPE sluice_http2_connections_closed_total counter
            sluice_http2_connections_closed_total{listener="public",reason="protocol_error"} 0
            sluice_http2_connections_closed_total{listener="public",reason="rapid_reset"} 0
            sluice_http2_connections_closed_total{listener="public",reason="control_flood"} 0
            sluice_http2_connections_closed_total{listener="public",reason="header_bomb"} 0
            # HELP sluice_tls_resumptions_total TLS handshakes on a listener that resumed a session (ticket or session cache).
            # TYPE sluice_tls_resumptions_total counter
            sluice_tls_resumptions_total{listener="public"} 0
            # HELP sluice_upstream_connections_active Connections open to an upstream's endpoints, by upstream.
            # TYPE sluice_upstream_connections_active gauge
            sluice_upstream_connections_active{upstream="stable"} 1
            sluice_upstream_connections_active{upstream="canary"} 0
            # HELP sluice_upstream_connections_opened_total Connections opened to an upstream's endpoints, by upstream.
            # TYPE sluice_upstream_connections_opened_total counter
            sluice_upstream_connections_opened_total{upstream="stable"} 1
            sluice_upstream_connections_opened_total{upstream="canary"} 0
            # HELP sluice_config_version Version of the routing table now serving (rises with every reload and runtime change).
            # TYPE sluice_config_version gauge
            sluice_config_version 7
            # HELP sluice_build_info Sluice release this process runs (always 1).
            # TYPE sluice_build_info gauge
            sluice_build_info{version="0.1.0"} 1

            """#
        #expect(text == expected)
        if text != expected {
            for (a, b) in zip(text.split(separator: "\n"), expected.split(separator: "\n")) where a != b {
                Issue.record("first difference:\n got: \(a)\nwant: \(b)")
                break
            }
        }
    }

    @Test func escaping() {
        #expect(PrometheusExposition.escapeLabel(#"a"b\c"# + "\nd") == #"a\"b\\c\nd"#)
        #expect(PrometheusExposition.escapeLabel("plain-name_1.2") == "plain-name_1.2")
        #expect(PrometheusExposition.escapeHelp("x\\y\n\"z\"") == #"x\\y\n"z""#)
        #expect(PrometheusExposition.number(90) == "90")
        #expect(PrometheusExposition.number(0.01) == "0.01")
        #expect(PrometheusExposition.number(.infinity) == "+Inf")
    }
}
