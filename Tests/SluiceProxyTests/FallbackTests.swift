import Foundation
@preconcurrency import Glibc
import Testing
import SluiceControl
import SluiceCore

/// `fallback_to_baseline` (issue 15): a canary answering 503 to everything while the route falls
/// back. Clients see only the baseline's 200s, the canary's failures still count as its requests
/// (so its gates fail), and the automated rollout rolls it back.
@Suite(.serialized)
struct FallbackTests {
    static func yaml(stable: UInt16, canary: UInt16) -> String {
        """
        listeners:
          - name: public
            address: 127.0.0.1:0
        limits: { max_requests_per_connection: 0 }
        state_file: off
        upstreams:
          stable: { endpoints: ["127.0.0.1:\(stable)"] }
          canary: { endpoints: ["127.0.0.1:\(canary)"] }
        routes:
          - name: web
            baseline: stable
            sticky: none
            cohort_response_header: true
            fallback_to_baseline: true
            split: { stable: 100, canary: 0 }
            rollout:
              canary: canary
              steps: [10, 50, 100]
              step_duration: 2s
              interval: 500ms
              min_requests: 10
              gates:
                - { metric: error_rate, max: 5% }
              failure_limit: 2
              on_failure: rollback
        """
    }

    @Test func aFailingCanaryCostsUsersNothingAndIsStillRolledBack() throws {
        let stable = try NamedUpstream("stable")
        let canary = try TestUpstream { r in
            .raw(Array("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 6\r\nX-Seen-Cohort: \(r.header("X-Sluice-Cohort") ?? "-")\r\n\r\nbroken".utf8))
        }
        defer { stable.stop(); canary.stop() }
        let proxy = try RolloutProxy(yaml: Self.yaml(stable: stable.port, canary: canary.port))
        defer { proxy.stop() }
        // Every answer must be the baseline's: a 200 from stable, told it is stable, labelled stable.
        let load = KeepAliveLoad(port: proxy.port, connections: 4, pauseMicros: 5_000) { m in
            if let problem = consistentCohort(m) { return problem }
            return m.bodyText == "stable" ? nil : "answered by \(m.bodyText)"
        }
        usleep(300_000)
        let start = try proxy.call("POST", "/admin/routes/web/rollout/start")
        #expect(start.status == 200, "\(start.text)")
        var rolledBack = false
        let deadline = ControlClock.monotonicNanos() + 8_000_000_000
        while ControlClock.monotonicNanos() < deadline {
            if proxy.rollouts.machine(route: "web")!.state == .rolledBack { rolledBack = true; break }
            usleep(5_000)
        }
        usleep(200_000)
        #expect(load.stop())
        #expect(rolledBack, "\(proxy.rollouts.status(route: "web")?.text() ?? "")")
        #expect(proxy.canaryPercent == 0)
        #expect(load.failures.isEmpty, "\(load.failures.prefix(5))")
        #expect(load.served > 100)

        let text = proxy.hub.renderMetrics(table: proxy.controller.table)
        func value(_ series: String) -> Double {
            for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
                return Double(line.split(separator: " ").last!) ?? -1
            }
            return 0
        }
        let canary503 = value("sluice_requests_total{route=\"web\",cohort=\"canary\",code=\"503\"}")
        let fallbacks = value("sluice_fallbacks_total{route=\"web\",from=\"canary\",to=\"stable\"}")
        #expect(canary503 > 0, "the canary's failures are its requests")
        #expect(canary503 == Double(canary.requests.count), "each of the canary's answers is recorded once")
        #expect(fallbacks == canary503, "and each went on to the baseline")
        #expect(canary.requests.allSatisfy { $0.header("X-Sluice-Cohort") == "canary" })
        #expect(text.contains("# TYPE sluice_fallbacks_total counter"))
        let problems = try RetryTests.promtoolProblems(text)
        #expect(problems == nil, "\(problems ?? "")")
        print("fallback: \(load.served) client requests, all answered by stable; the canary answered \(Int(canary503)) "
              + "with 503 (each recorded for the canary and sent on to stable); rolled back: \(rolledBack)")
    }

    /// What one fallback looks like from outside: the client's answer and the access-log line
    /// (final cohort, `fallback_from`, `retries`), and a circuit_open refusal's line.
    /// A fallback counts against the baseline group's `max_requests` (and gives the failed group's
    /// count back): with the baseline's one slot held by a slow request, a canary failure gets
    /// 503 circuit_open at once instead of a request over the baseline's limit; once the slot is
    /// free, the next fallback succeeds.
    @Test func aFallbackRespectsTheBaselinesCircuitBreaker() throws {
        let stable = try TestUpstream { r in r.startLine.contains("/slow") ? .delayed(1.5, .ok("slow")) : .ok("stable") }
        let canary = try TestUpstream { _ in .status(503, "broken") }
        defer { stable.stop(); canary.stop() }
        let yaml = """
            listeners: [{ name: public, address: "127.0.0.1:0" }]
            upstreams:
              stable: { endpoints: ["127.0.0.1:\(stable.port)"], max_requests: 1 }
              canary: { endpoints: ["127.0.0.1:\(canary.port)"], max_requests: 1 }
            routes:
              - name: web
                baseline: stable
                sticky: none
                fallback_to_baseline: true
                rules:
                  - match: { header: { name: X-Canary, value: always } }
                    cohort: canary
                split: { stable: 100, canary: 0 }
            """
        let proxy = try ProxyHarness(yaml: yaml)
        defer { proxy.stop() }
        let slow = try proxy.connect()
        defer { close(slow) }
        try TestSocket.send(slow, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(eventually { stable.requests.count == 1 })
        let refused = try proxy.request("GET /x HTTP/1.1\r\nHost: h\r\nX-Canary: always\r\n\r\n")
        #expect(refused.status == 503 && refused.bodyText != "broken", "\(refused.status) \(refused.bodyText)")
        #expect(stable.requests.count == 1, "nothing over the baseline's limit was sent")
        let held = try #require(try TestReader(fd: slow).readMessage(isResponse: true))
        #expect(held.bodyText == "slow")
        // Both groups' counts were given back: the canary's one slot and the baseline's.
        let r = try proxy.request("GET /x HTTP/1.1\r\nHost: h\r\nX-Canary: always\r\n\r\n")
        #expect(r.status == 200 && r.bodyText == "stable", "\(r.status) \(r.bodyText)")
        #expect(canary.requests.count == 2)
        let m = proxy.metrics()
        let open = m.filter { $0.key.hasPrefix("sluice_upstream_errors_total{") && $0.key.contains("circuit_open") }.values.reduce(0, +)
        #expect(open == 1, "\(m.filter { $0.key.contains("circuit_open") })")
    }

    @Test func theAccessLogShowsTheFinalCohortAndTheFallback() throws {
        let stable = try NamedUpstream("stable")
        let canary = try TestUpstream { _ in .status(503, "broken") }
        defer { stable.stop(); canary.stop() }
        let path = "/tmp/sluice-fallback-log-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(fd >= 0)
        defer { unlink(path) }
        let yaml = """
            listeners: [{ name: public, address: "127.0.0.1:0" }]
            upstreams:
              stable: { endpoints: ["127.0.0.1:\(stable.port)"] }
              canary: { endpoints: ["127.0.0.1:\(canary.port)"] }
            routes:
              - name: web
                baseline: stable
                sticky: none
                cohort_response_header: true
                fallback_to_baseline: true
                rules:
                  - match: { header: { name: X-Canary, value: always } }
                    cohort: canary
                split: { stable: 100, canary: 0 }
            """
        let proxy = try ProxyHarness(yaml: yaml, accessLogFD: fd)
        let r = try proxy.request("GET /x HTTP/1.1\r\nHost: h\r\nX-Canary: always\r\n\r\n")
        #expect(consistentCohort(r) == nil, "\(r.status) \(r.bodyText) \(r.headers)")
        // A POST is never sent twice: the canary's 503 is the answer.
        let p = try proxy.request("POST /x HTTP/1.1\r\nHost: h\r\nX-Canary: always\r\nContent-Length: 2\r\n\r\nhi", method: "POST")
        #expect(p.status == 503 && p.bodyText == "broken")
        #expect(canary.requests.count == 2 && stable.server.requests.count == 1)
        proxy.stop()
        close(fd)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(first["status"] as? Int == 200)
        #expect(first["cohort"] as? String == "stable")
        #expect(first["fallback_from"] as? String == "canary")
        #expect(first["retries"] as? Int == 1)
        let second = try #require(try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any])
        #expect(second["cohort"] as? String == "canary" && second["fallback_from"] == nil && second["retries"] == nil)
    }
}
