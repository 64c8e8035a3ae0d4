import Foundation
@preconcurrency import Glibc
import Testing

/// Circuit breaking per upstream group (`max_requests`, `max_connections`, `max_pending`) and
/// `balance: least_request`, through the real proxy with real upstreams (issue 15).
@Suite(.serialized)
struct CircuitBreakerTests {
    static func yaml(_ ports: [UInt16], group: String) -> String {
        let endpoints = ports.map { "\"127.0.0.1:\($0)\"" }.joined(separator: ", ")
        return """
            listeners:
              - name: public
                address: 127.0.0.1:0
            upstreams:
              app: { endpoints: [\(endpoints)], \(group) }
            routes:
              - name: web
                upstream: app
                sticky: none
            """
    }

    /// `n` requests at once, each on its own connection; (status, body, seconds) in completion order.
    static func concurrent(_ port: UInt16, _ n: Int, path: String = "/") -> [(status: Int, body: String, seconds: Double)] {
        let results = LockedBox<[(status: Int, body: String, seconds: Double)]>([])
        let group = DispatchGroup()
        for _ in 0..<n {
            group.enter()
            Thread {
                defer { group.leave() }
                let start = Date()
                guard let fd = try? TestSocket.connect(port: port) else { return }
                defer { close(fd) }
                guard (try? TestSocket.send(fd, "GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")) != nil,
                      let m = try? TestReader(fd: fd).readMessage(isResponse: true) else { return }
                let seconds = Date().timeIntervalSince(start)
                results.update { $0.append((m.status, m.bodyText, seconds)) }
            }.start()
        }
        group.wait()
        return results.get()
    }

    @Test func maxRequestsAnswers503CircuitOpenAtOnceAndRecovers() throws {
        let slow = try TestUpstream { _ in .delayed(0.6, .ok("slow")) }
        defer { slow.stop() }
        let path = "/tmp/sluice-circuit-log-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(fd >= 0)
        defer { unlink(path) }
        let proxy = try ProxyHarness(yaml: Self.yaml([slow.port], group: "max_requests: 2"), workers: 2, accessLogFD: fd)
        let results = Self.concurrent(proxy.port, 5)
        #expect(results.count == 5)
        let ok = results.filter { $0.status == 200 }, open = results.filter { $0.status == 503 }
        #expect(ok.count == 2 && open.count == 3, "\(results.map(\.status))")
        #expect(open.allSatisfy { $0.seconds < 0.5 && $0.body.contains("limit") }, "answered at once: \(open)")
        #expect(slow.requests.count == 2, "nothing of a refused request reached the upstream")
        let m = proxy.metrics()
        #expect(m["sluice_upstream_errors_total{route=\"web\",cohort=\"app\",reason=\"circuit_open\"}"] == 3)
        #expect(m["sluice_requests_total{route=\"web\",cohort=\"app\",code=\"503\"}"] == 3)
        // The counts were given back: the next requests pass.
        #expect(Self.concurrent(proxy.port, 2).map(\.status) == [200, 200])
        proxy.stop()
        close(fd)
        let log = try String(contentsOfFile: path, encoding: .utf8)
        #expect(log.split(separator: "\n").count { $0.contains("\"status\":503") && $0.contains("\"error\":\"circuit_open\"") } == 3)
    }

    @Test func maxConnectionsLimitsNewConnectionsNotReuse() throws {
        let slow = try TestUpstream { _ in .delayed(0.4, .ok("slow")) }
        defer { slow.stop() }
        let proxy = try ProxyHarness(yaml: Self.yaml([slow.port], group: "max_connections: 1"), workers: 1)
        defer { proxy.stop() }
        let results = Self.concurrent(proxy.port, 3)
        #expect(results.map(\.status).sorted() == [200, 503, 503], "\(results.map(\.status))")
        #expect(slow.connections == 1)
        // One after the other they reuse the one pooled connection: never over the limit.
        let fd = try proxy.connect()
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        for _ in 0..<3 {
            try TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try reader.readMessage(isResponse: true)?.status == 200)
        }
        #expect(slow.connections == 1)
        #expect(proxy.metrics()["sluice_upstream_errors_total{route=\"web\",cohort=\"app\",reason=\"circuit_open\"}"] == 2)
    }

    @Test func leastRequestSendsNewRequestsAwayFromABusyEndpoint() throws {
        let a = try TestUpstream { r in r.startLine.contains("/hold") ? .delayed(1.0, .ok("a")) : .ok("a") }
        let b = try TestUpstream { r in r.startLine.contains("/hold") ? .delayed(1.0, .ok("b")) : .ok("b") }
        defer { a.stop(); b.stop() }
        let proxy = try ProxyHarness(yaml: Self.yaml([a.port, b.port], group: "balance: least_request"), workers: 1)
        defer { proxy.stop() }
        // One long request in flight on one endpoint...
        let held = Thread {
            if let fd = try? TestSocket.connect(port: proxy.port) {
                try? TestSocket.send(fd, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
                _ = try? TestReader(fd: fd).readMessage(isResponse: true)
                close(fd)
            }
        }
        held.start()
        var waited = 0
        while a.requests.count + b.requests.count == 0 && waited < 200 { usleep(5_000); waited += 1 }
        let busy = a.requests.isEmpty ? "b" : "a"
        // ...then every short request goes to the other one (round robin would send half to it).
        let fd = try proxy.connect()
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        var answered: [String] = []
        for i in 0..<10 {
            try TestSocket.send(fd, "GET /short\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
            answered.append(try reader.readMessage(isResponse: true)?.bodyText ?? "")
        }
        #expect(answered.allSatisfy { $0 == (busy == "a" ? "b" : "a") }, "\(answered) while \(busy) was busy")
        usleep(1_100_000)
        // Nothing in flight any more: the two candidates tie, and the tie is broken at random
        // (all 16 on one endpoint has probability 2^-15).
        var after: [String] = []
        for i in 0..<16 {
            try TestSocket.send(fd, "GET /after\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
            after.append(try reader.readMessage(isResponse: true)?.bodyText ?? "")
        }
        #expect(Set(after) == ["a", "b"], "\(after)")
    }
}

/// `max_connections` counts idle pooled connections too; a request that needs a new connection
/// to another endpoint of the group closes one of the worker's idle ones instead of being refused.
@Suite(.serialized)
struct CircuitBreakerIdleTests {
    @Test func idleConnectionsToOneEndpointDoNotRefuseAnother() throws {
        let a = try TestUpstream { _ in .delayed(0.3, .ok("a")) }
        let b = try TestUpstream { _ in .ok("b") }
        defer { a.stop(); b.stop() }
        // Weights 3 and 1: the smooth round robin picks a, a, b, a.
        let yaml = """
            listeners:
              - name: public
                address: 127.0.0.1:0
            upstreams:
              app: { endpoints: [{ address: "127.0.0.1:\(a.port)", weight: 3 }, { address: "127.0.0.1:\(b.port)", weight: 1 }],
                     max_connections: 2 }
            routes:
              - name: web
                upstream: app
                sticky: none
            """
        let proxy = try ProxyHarness(yaml: yaml, workers: 1)
        defer { proxy.stop() }
        // Two at once: two connections to a, both idle afterwards (the limit is reached).
        #expect(CircuitBreakerTests.concurrent(proxy.port, 2).map(\.body) == ["a", "a"])
        #expect(a.connections == 2)
        // The next pick is b: it needs a new connection, and nothing is in flight.
        let m = try proxy.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(m.status == 200 && m.bodyText == "b", "\(m.status) \(m.bodyText)")
        #expect(proxy.metrics()["sluice_upstream_errors_total{route=\"web\",cohort=\"app\",reason=\"circuit_open\"}"] ?? 0 == 0)
        #expect(proxy.server.table.load.value(.connections, group: 0) <= 2)
    }
}
