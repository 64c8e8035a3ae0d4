import SluiceControl
import Testing

/// `sluice status` output: readable tables from a stats report.
struct AdminStatusTableTests {
    @Test func rendersOneTablePerRoute() {
        let w1 = WindowReport(seconds: 60, requests: 7380, errors: 0, upstreamErrors: 0, rate: 123, errorRate: 0,
                              p50: 0.0042, p95: 0.0123, p99: 0.0301)
        let w2 = WindowReport(seconds: 60, requests: 810, errors: 16, upstreamErrors: 2, rate: 13.5, errorRate: 0.019753,
                              p50: 0.00081, p95: 0.2, p99: 1.5)
        let report = StatsReport(
            time: "2026-11-27T00:00:00.000Z", configVersion: 3, sampleIntervalSeconds: 5, windows: ["1m", "5m"],
            routes: [
                RouteReport(name: "web", cohorts: [
                    CohortReport(name: "stable", upstream: "stable", weight: 87.5, baseline: true, inFlight: 4, windows: ["1m": w1]),
                    CohortReport(name: "canary", upstream: "canary", weight: 12.5, baseline: false, inFlight: 0, windows: ["1m": w2]),
                ], direct: ["1m": .empty]),
                RouteReport(name: "api", cohorts: [
                    CohortReport(name: "blue", upstream: "blue", weight: 100, baseline: true, inFlight: 0, windows: ["1m": .empty]),
                ], direct: [:]),
            ],
            unrouted: ["1m": .empty])
        let text = StatusTable.render(report, window: "1m")
        let expected = """
            config version 3, window 1m (sampled every 5s), at 2026-11-27T00:00:00.000Z

            route web
              COHORT             WEIGHT     RATE  ERRORS     P50     P95     P99  IN-FLIGHT  REQUESTS
              stable (baseline)   87.5%  123.0/s   0.00%  4.20ms  12.3ms  30.1ms          4      7380
              canary              12.5%   13.5/s   1.98%   810µs   200ms   1.50s          0       810

            route api
              COHORT           WEIGHT  RATE  ERRORS  P50  P95  P99  IN-FLIGHT  REQUESTS
              blue (baseline)    100%     -       -    -    -    -          0         0

            """
        #expect(text == expected, "got:\n\(text)")
    }
}
