import Foundation
@preconcurrency import Glibc
import SluiceControl
import SluiceCore
import SluiceProxy
import Testing

/// Endpoint availability end to end: real upstreams on loopback, a real proxy, the real health
/// monitor thread. Each test says what the upstreams do, what the clients got and where the
/// traffic went (counted by the upstreams themselves, health checks left out).
@Suite(.serialized)
struct EndpointHealthTests {
    /// An upstream whose answers a test switches: `/healthz` passes while `healthy`, other
    /// requests get `status`.
    final class Switchable: Sendable {
        let healthy = Locked(true)
        let status = Locked(200)
        let upstream: TestUpstream
        let name: String

        init(_ name: String, host: UInt32 = 0x7f00_0001, port: UInt16 = 0) throws {
            self.name = name
            let healthy = self.healthy, status = self.status
            upstream = try TestUpstream(host: host, port: port) { r in
                if r.startLine.hasPrefix("GET /healthz") {
                    return healthy.withLock { $0 } ? .status(200, "ok") : .status(503, "down")
                }
                return .status(status.withLock { $0 }, name)
            }
        }

        /// Requests other than health checks received so far.
        var served: Int { upstream.requests.filter { !$0.startLine.hasPrefix("GET /healthz") }.count }
        var checks: Int { upstream.requests.filter { $0.startLine.hasPrefix("GET /healthz") }.count }
        var port: UInt16 { upstream.port }
        func stop() { upstream.stop() }
    }

    static func yaml(_ ports: [UInt16], _ settings: String) -> String {
        ProxyHarness.singleUpstreamYAML(ports: ports).replacingOccurrences(
            of: "app: { endpoints: [", with: "app: { \(settings), endpoints: [")
    }

    /// Sends `n` GETs on one keep-alive connection; returns the statuses.
    static func send(_ proxy: ProxyHarness, _ n: Int, path: String = "/work") throws -> [Int] {
        let fd = try proxy.connect()
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        var statuses: [Int] = []
        for _ in 0..<n {
            try TestSocket.send(fd, "GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
            statuses.append(try reader.readMessage(isResponse: true)?.status ?? 0)
        }
        return statuses
    }

    /// How the next `n` requests spread over `upstreams` (served counts before and after).
    static func spread(_ proxy: ProxyHarness, _ upstreams: [Switchable], _ n: Int) throws -> (counts: [Int], statuses: [Int]) {
        let before = upstreams.map(\.served)
        let statuses = try send(proxy, n)
        return (zip(upstreams.map(\.served), before).map { $0 - $1 }, statuses)
    }

    @Test func aFailingHealthCheckTakesTheEndpointOutAndAPassingOneBringsItBack() throws {
        let a = try Switchable("a"), b = try Switchable("b")
        defer { a.stop(); b.stop() }
        let interval = 100, unhealthy = 2, healthy = 2
        let proxy = try ProxyHarness(yaml: Self.yaml([a.port, b.port],
            "health_check: { path: /healthz, interval: \(interval)ms, timeout: 50ms, healthy: \(healthy), unhealthy: \(unhealthy) }"))
        defer { proxy.stop() }
        let events = EventLog()
        let monitor = HealthMonitor(server: proxy.server, events: events)
        try monitor.start()
        defer { monitor.stop() }

        let start = try Self.spread(proxy, [a, b], 20)
        #expect(start.counts == [10, 10], "both healthy: round robin")
        #expect(start.statuses.allSatisfy { $0 == 200 })

        // b starts failing its checks. Within interval × unhealthy + one interval (300 ms) it is
        // out of balancing; the wait adds 200 ms for the scheduler of a busy test machine.
        b.healthy.withLock { $0 = false }
        usleep(UInt32((interval * unhealthy + interval + 200) * 1000))
        let out = try Self.spread(proxy, [a, b], 20)
        #expect(out.counts == [20, 0], "b left balancing")
        #expect(proxy.metrics()["sluice_upstream_endpoint_up{upstream=\"app\",endpoint=\"127.0.0.1:\(b.port)\"}"] == 0)
        #expect(proxy.metrics()["sluice_upstream_endpoint_up{upstream=\"app\",endpoint=\"127.0.0.1:\(a.port)\"}"] == 1)
        #expect(events.recent().contains { $0.kind == .endpoint && $0.details["action"] == "unhealthy"
                                           && $0.details["endpoint"] == "127.0.0.1:\(b.port)" })

        // Healthy again: back after `healthy` passing checks.
        b.healthy.withLock { $0 = true }
        usleep(UInt32((interval * healthy + interval + 200) * 1000))
        let back = try Self.spread(proxy, [a, b], 20)
        #expect(back.counts == [10, 10], "b is back in balancing")
        #expect(events.recent().contains { $0.kind == .endpoint && $0.details["action"] == "healthy" })
        #expect(b.checks >= unhealthy + healthy, "the checker did reach b")
    }

    @Test func consecutiveFailuresEjectAnEndpointUntilItsEjectionTimeIsOver() throws {
        let a = try Switchable("a"), b = try Switchable("b")
        defer { a.stop(); b.stop() }
        b.status.withLock { $0 = 503 }
        let proxy = try ProxyHarness(yaml: Self.yaml([a.port, b.port],
            "outlier: { consecutive_failures: 3, base_ejection: 1s, max_ejected_percent: 50 }"))
        defer { proxy.stop() }
        let events = EventLog()
        let monitor = HealthMonitor(server: proxy.server, events: events)
        try monitor.start()
        defer { monitor.stop() }
        let ejections = "sluice_upstream_ejections_total{upstream=\"app\",endpoint=\"127.0.0.1:\(b.port)\"}"

        // Round robin: b gets every other request, each a 503 (no retries here), until the third.
        let first = try Self.spread(proxy, [a, b], 6)
        #expect(first.counts == [3, 3])
        #expect(first.statuses.filter { $0 == 503 }.count == 3)
        #expect(eventually(3) { proxy.metrics()[ejections] == 1 }, "ejected after 3 consecutive failures")
        let ejected = try Self.spread(proxy, [a, b], 20)
        #expect(ejected.counts == [20, 0], "ejected: no traffic")
        #expect(ejected.statuses.allSatisfy { $0 == 200 })
        #expect(proxy.metrics()["sluice_upstream_endpoint_errors_total{upstream=\"app\",endpoint=\"127.0.0.1:\(b.port)\"}"] == 3)
        #expect(proxy.metrics()["sluice_upstream_endpoint_requests_total{upstream=\"app\",endpoint=\"127.0.0.1:\(a.port)\"}"] == 23)

        // b recovers; after the ejection time (1 s) it is back.
        b.status.withLock { $0 = 200 }
        #expect(eventually(4) { events.recent().contains { $0.kind == .endpoint && $0.details["action"] == "returned" } })
        let back = try Self.spread(proxy, [a, b], 20)
        #expect(back.counts == [10, 10])
        #expect(events.recent().contains { $0.kind == .endpoint && $0.details["action"] == "ejected" && $0.cause.contains("3 consecutive failures") })

        // A second ejection lasts twice as long (the ejection count decays only after 2 s of good behaviour).
        b.status.withLock { $0 = 503 }
        _ = try Self.spread(proxy, [a, b], 6)
        #expect(eventually(3) { proxy.metrics()[ejections] == 2 })
        #expect(events.recent().last { $0.details["action"] == "ejected" }?.cause.contains("ejected for 2s") == true)
    }

    /// With `retries:`, a 503 is retried on the other endpoint and the client sees a 200; the
    /// failed attempt still counts for outlier detection, so the failing endpoint is ejected and
    /// stops costing an extra attempt per request.
    @Test func retriedFailuresStillEjectTheEndpoint() throws {
        let a = try Switchable("a"), b = try Switchable("b")
        defer { a.stop(); b.stop() }
        b.status.withLock { $0 = 503 }
        let yaml = Self.yaml([a.port, b.port], "outlier: { consecutive_failures: 3, base_ejection: 30s }")
            .replacingOccurrences(of: "    sticky: none", with: "    sticky: none\n    retries: { attempts: 2, budget_percent: 100 }")
        let proxy = try ProxyHarness(yaml: yaml)
        defer { proxy.stop() }
        let monitor = HealthMonitor(server: proxy.server, events: nil)
        try monitor.start()
        defer { monitor.stop() }
        let first = try Self.spread(proxy, [a, b], 6)
        #expect(first.statuses.allSatisfy { $0 == 200 }, "every 503 was retried on a")
        #expect(first.counts[1] >= 3, "b got its three failing attempts (one more if a request beat the monitor)")
        let ejections = "sluice_upstream_ejections_total{upstream=\"app\",endpoint=\"127.0.0.1:\(b.port)\"}"
        #expect(eventually(3) { proxy.metrics()[ejections] == 1 })
        let after = try Self.spread(proxy, [a, b], 10)
        #expect(after.counts == [10, 0], "ejected: no more wasted attempts")
        #expect(proxy.metrics()["sluice_upstream_endpoint_errors_total{upstream=\"app\",endpoint=\"127.0.0.1:\(b.port)\"}"] == Double(b.served),
                "every attempt b answered counts as a failure")
    }

    @Test func neverMoreThanMaxEjectedPercentOfAGroupIsEjected() throws {
        let ups = try (0..<4).map { try Switchable("u\($0)") }
        defer { ups.forEach { $0.stop() } }
        for u in ups { u.status.withLock { $0 = 503 } }
        let proxy = try ProxyHarness(yaml: Self.yaml(ups.map(\.port),
            "outlier: { consecutive_failures: 2, base_ejection: 30s, max_ejected_percent: 50 }"))
        defer { proxy.stop() }
        let monitor = HealthMonitor(server: proxy.server, events: nil)
        try monitor.start()
        defer { monitor.stop() }
        // Every endpoint fails; only two of four (50 %) may be out.
        for _ in 0..<5 {
            _ = try Self.send(proxy, 8)
            usleep(50_000)
        }
        let m = proxy.metrics()
        let up = ups.map { m["sluice_upstream_endpoint_up{upstream=\"app\",endpoint=\"127.0.0.1:\($0.port)\"}"] ?? -1 }
        let ejections = ups.map { m["sluice_upstream_ejections_total{upstream=\"app\",endpoint=\"127.0.0.1:\($0.port)\"}"] ?? -1 }
        #expect(up.filter { $0 == 0 }.count == 2, "\(up)")
        #expect(ejections.reduce(0, +) == 2, "\(ejections)")
        #expect(m["sluice_upstream_panic{upstream=\"app\"}"] == 0, "2 of 4 available is not panic")
        let spread = try Self.spread(proxy, ups, 20)
        #expect(spread.counts.filter { $0 == 10 }.count == 2 && spread.counts.filter { $0 == 0 }.count == 2, "\(spread.counts)")
    }

    @Test func panicModeBalancesOverAllEndpointsWhenFewerThanHalfAreHealthy() throws {
        let ups = try (0..<3).map { try Switchable("u\($0)") }
        defer { ups.forEach { $0.stop() } }
        let proxy = try ProxyHarness(yaml: Self.yaml(ups.map(\.port),
            "health_check: { interval: 50ms, timeout: 40ms, healthy: 1, unhealthy: 1 }"))
        defer { proxy.stop() }
        let monitor = HealthMonitor(server: proxy.server, events: nil)
        try monitor.start()
        defer { monitor.stop() }
        let one = "sluice_upstream_endpoint_up{upstream=\"app\",endpoint=\"127.0.0.1:\(ups[1].port)\"}"
        ups[1].healthy.withLock { $0 = false }
        #expect(eventually(3) { proxy.metrics()[one] == 0 })
        // One of three failing: the other two take the traffic.
        #expect(try Self.spread(proxy, ups, 20).counts == [10, 0, 10])
        #expect(proxy.metrics()["sluice_upstream_panic_total{upstream=\"app\"}"] == 0)
        // Two of three failing (one survivor): panic, all three share it; a mistaken check does
        // not pile the load on the survivor.
        ups[2].healthy.withLock { $0 = false }
        let two = "sluice_upstream_endpoint_up{upstream=\"app\",endpoint=\"127.0.0.1:\(ups[2].port)\"}"
        #expect(eventually(3) { proxy.metrics()[two] == 0 })
        let panic = try Self.spread(proxy, ups, 30)
        #expect(panic.counts == [10, 10, 10])
        #expect(panic.statuses.allSatisfy { $0 == 200 })
        #expect(proxy.metrics()["sluice_upstream_panic_total{upstream=\"app\"}"] == 30)
        #expect(proxy.metrics()["sluice_upstream_panic{upstream=\"app\"}"] == 1)
        // The exposition with the endpoint families stays valid.
        if let promtool = DeployTests.onPath("promtool") {
            let file = NSTemporaryDirectory() + "sluice-endpoint-metrics-\(getpid()).txt"
            try proxy.hub.renderMetrics(table: proxy.server.table).write(toFile: file, atomically: true, encoding: .utf8)
            defer { unlink(file) }
            let check = try DeployTests.run("/bin/sh", ["-c", "\"$0\" check metrics < \"$1\"", promtool, file])
            #expect(check.status == 0, "promtool check metrics:\n\(check.output)")
        }
    }

    /// What `sluice run` wires: the runtime starts the health monitor (outlier detection on by
    /// default), serves `GET /admin/endpoints` and the endpoint metrics, and stops it all.
    @Test func theRuntimeRunsTheMonitorAndServesTheEndpointsReport() throws {
        let ups = try (0..<4).map { try Switchable("u\($0)") }
        defer { ups.forEach { $0.stop() } }
        ups[3].status.withLock { $0 = 502 }
        let yaml = Self.yaml(ups.map(\.port), "outlier: { base_ejection: 30s }")
        let proxy = try ControlledProxy(yaml: yaml, workers: 2, adminToken: "t0ken", withAdmin: true)
        defer { proxy.stop() }
        // Default outlier detection: 5 consecutive failures eject the failing endpoint.
        for _ in 0..<6 {
            let fd = try TestSocket.connect(port: proxy.port)
            defer { close(fd) }
            let reader = TestReader(fd: fd)
            for _ in 0..<4 {
                try TestSocket.send(fd, "GET /w HTTP/1.1\r\nHost: x\r\n\r\n")
                _ = try reader.readMessage(isResponse: true)
            }
        }
        #expect(eventually(3) { proxy.events.recent().contains { $0.kind == .endpoint && $0.details["action"] == "ejected" } })
        let response = try AdminClient.request("GET", "/admin/endpoints", to: proxy.admin!.boundAddress!, token: "t0ken")
        #expect(response.status == 200)
        let report = try JSONDecoder().decode(EndpointsReport.self, from: Data(response.body))
        let states = report.upstreams.first?.endpoints.map(\.state) ?? []
        #expect(states == ["up", "up", "up", "ejected"], "\(states)")
        let metrics = try AdminClient.request("GET", "/metrics", to: proxy.admin!.boundAddress!, token: "t0ken").text
        #expect(metrics.contains("sluice_upstream_ejections_total{upstream=\"app\",endpoint=\"127.0.0.1:\(ups[3].port)\"} 1"))
        let before = ups[3].served
        let fd = try TestSocket.connect(port: proxy.port)
        defer { close(fd) }
        for _ in 0..<12 {
            try TestSocket.send(fd, "GET /w HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try TestReader(fd: fd).readMessage(isResponse: true)?.status == 200)
        }
        #expect(ups[3].served == before)
    }

    /// Checks run side by side: five endpoints that accept and never answer (each check waits
    /// for its 450 ms timeout) do not hold back the check of a refused one. One after another,
    /// its two failing checks would come at least 2 × 5 × 450 ms = 4.5 s apart from the start;
    /// side by side it is out within about two intervals (1 s plus the first check's jitter).
    @Test func aSlowEndpointDoesNotDelayTheOthersChecks() throws {
        let silent = try (0..<5).map { _ in try TestSocket.listen() }
        defer { silent.forEach { close($0.0) } }
        let refused = try TestSocket.refusedPort()
        let ports = silent.map(\.1) + [refused]
        let table = try ConfigLoader.parse(yaml: Self.yaml(ports, "health_check: { interval: 500ms, timeout: 450ms, unhealthy: 2 }"),
                                           file: "t.yaml").table
        let health = EndpointHealth(capacity: 16, workers: 1)
        let slots = health.assign(table)
        let monitor = HealthMonitor(health: health, signal: nil, events: nil)
        try monitor.start()
        defer { monitor.stop() }
        #expect(eventually(3) { health.state(slots[5])?.downByCheck == true }, "the refused endpoint is out in time")
        #expect(eventually(3) { slots[0..<5].allSatisfy { health.state($0)?.downByCheck == true } }, "silent ones time out")
    }

    /// A `tls:` group is checked over TLS, verified like requests (`openssl s_server -www`
    /// answers any GET with 200): the right CA and name pass, a wrong name fails the check.
    @Test func aTLSGroupIsCheckedOverVerifiedTLS() throws {
        let f = try TLSFixture()
        defer { f.remove() }
        let port = try TestSocket.closedPort()
        let server = try ChildProcess("/usr/bin/openssl", ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", f.path("b.pem"),
                                                           "-key", f.path("b.key"), "-www"])
        defer { server.stop() }
        #expect(server.waitFor("ACCEPT"))
        let dead = try TestSocket.refusedPort()
        let check = "health_check: { interval: 100ms, timeout: 90ms, healthy: 1, unhealthy: 1 }"
        let yaml = """
            listeners: [{ name: public, address: 127.0.0.1:0 }]
            upstreams:
              good: { endpoints: ["127.0.0.1:\(port)", "127.0.0.1:\(dead)"], tls: { ca: \(f.path("ca.pem")), server_name: b.test }, \(check) }
              wrongname: { endpoints: ["127.0.0.1:\(port)"], tls: { ca: \(f.path("ca.pem")), server_name: a.test }, \(check) }
            routes:
              - { name: good, match: { path_prefix: /good }, upstream: good }
              - { name: bad, match: { path_prefix: /bad }, upstream: wrongname }
            """
        let config = try ConfigLoader.parse(yaml: yaml, file: "t.yaml")
        let health = EndpointHealth(capacity: 8, workers: 1)
        let slots = health.assign(config.table)
        let tls = config.tls
        let events = EventLog()
        let monitor = HealthMonitor(health: health, signal: nil, events: events, tlsFor: { tls.upstreams[$0] })
        try monitor.start()
        defer { monitor.stop() }
        #expect(eventually(5) { health.state(slots[2])?.downByCheck == true }, "the wrong name fails verification")
        #expect(eventually(5) { health.state(slots[1])?.downByCheck == true }, "a refused connect fails")
        // Several checks of the good endpoint ran meanwhile (every 100 ms, one failure is enough to mark it down).
        usleep(300_000)
        #expect(health.isAvailable(slots[0]), "verified TLS check with a 200: healthy")
        #expect(!events.recent().contains { $0.details["upstream"] == "good" && $0.details["endpoint"] == "127.0.0.1:\(port)" })
        let cause = events.recent().first { $0.details["upstream"] == "wrongname" && $0.details["action"] == "unhealthy" }?.cause ?? ""
        #expect(cause.contains("TLS"), "\(cause)")
    }
}

/// A value behind a lock, shared with test upstream threads.
final class Locked<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}
