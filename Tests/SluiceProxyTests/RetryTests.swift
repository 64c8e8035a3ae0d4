import Foundation
@preconcurrency import Glibc
import Testing

/// Issue 15, request-level resilience, as users meet it: real misbehaving upstreams on loopback,
/// a real proxy, real clients. Each case says what the client got, what the upstreams received,
/// what the metrics say, and that nothing leaked (descriptors and upstream connections).
@Suite(.serialized)
struct RetryTests {
    /// Open descriptors of this process (the proxy and the test upstreams run in it) that are TCP
    /// sockets with one of `ports` at either end: read from /proc/self/fd and /proc/net/tcp{,6},
    /// so suites running at the same time (other ports) do not disturb the count.
    static func openFDs(ports: [UInt16]) -> Int {
        var inodes = Set<String>()
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let cols = line.split(separator: " ", omittingEmptySubsequences: true)
                guard cols.count > 9 else { continue }
                let portOf = { (col: Substring) -> UInt16? in col.split(separator: ":").last.flatMap { UInt16($0, radix: 16) } }
                if let l = portOf(cols[1]), let r = portOf(cols[2]), ports.contains(l) || ports.contains(r) {
                    inodes.insert(String(cols[9]))
                }
            }
        }
        let dir = "/proc/self/fd"
        guard let fds = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return -1 }
        var count = 0
        for fd in fds {
            guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/" + fd),
                  link.hasPrefix("socket:["), inodes.contains(String(link.dropFirst(8).dropLast())) else { continue }
            count += 1
        }
        return count
    }

    /// Waits (at most 3 s) until `condition` holds; returns whether it did.
    static func settle(_ condition: () -> Bool) -> Bool {
        for _ in 0..<300 {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    /// A proxy over `ports` (one group `app`) whose route has `route` (YAML lines of the route).
    static func proxy(_ ports: [UInt16], route: String, extra: String = "") throws -> ProxyHarness {
        try ProxyHarness(yaml: ProxyHarness.singleUpstreamYAML(ports: ports, extra: extra, routeExtra: route))
    }

    /// `n` requests on one keep-alive connection; the statuses in order.
    static func run(_ proxy: ProxyHarness, _ n: Int, _ request: (Int) -> String, method: String = "GET") throws -> [Int] {
        let fd = try proxy.connect()
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        var out: [Int] = []
        for i in 0..<n {
            try TestSocket.send(fd, request(i))
            guard let m = try reader.readMessage(isResponse: true, requestMethod: method) else { break }
            out.append(m.status)
            if m.header("Connection") == "close" { break }
        }
        return out
    }

    /// Nothing leaked: the sockets on the test's ports (upstream listeners, the proxy's listener,
    /// connections between them) are back to `baseline` (taken before any request) plus at most
    /// one idle pooled connection per endpoint (both of its ends are in this process), and the
    /// proxy's gauge of open upstream connections agrees.
    static func expectNoLeak(_ proxy: ProxyHarness, ports: [UInt16], baseline: Int, endpoints: Int,
                             sourceLocation: SourceLocation = #_sourceLocation) {
        let all = ports + [proxy.port]
        let settled = settle { openFDs(ports: all) <= baseline + 2 * endpoints }
        #expect(settled, "sockets open on the test's ports: \(openFDs(ports: all)), baseline \(baseline)", sourceLocation: sourceLocation)
        let active = proxy.metrics()["sluice_upstream_connections_active{upstream=\"app\"}"] ?? -1
        #expect(active >= 0 && active <= Double(endpoints), "upstream connections open: \(active)", sourceLocation: sourceLocation)
    }

    /// `promtool check metrics` on `text` (nil when promtool is not installed): its output when it fails.
    static func promtoolProblems(_ text: String) throws -> String? {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        p.arguments = ["check", "metrics"]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = output
        try p.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let out = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return p.terminationStatus == 0 ? nil : out
    }

    @Test func oneOfTwoEndpointsAnswering503RetriesGETsAndNeverSendsAPOSTTwice() throws {
        let bad = try TestUpstream { _ in .status(503, "overloaded") }
        let good = try TestUpstream { r in .ok(r.startLine.hasPrefix("GET") ? "got" : "done:" + r.bodyText) }
        defer { bad.stop(); good.stop() }
        let proxy = try Self.proxy([bad.port, good.port], route: "    retries: { attempts: 2, budget_percent: 100 }")
        defer { proxy.stop() }
        let baseline = Self.openFDs(ports: [bad.port, good.port, proxy.port])
        let gets = try Self.run(proxy, 200) { "GET /g\($0) HTTP/1.1\r\nHost: x\r\n\r\n" }
        #expect(gets.count == 200 && gets.allSatisfy { $0 == 200 }, "\(Dictionary(grouping: gets, by: { $0 }).mapValues(\.count))")
        // A PUT with a small body is retried with its body sent again.
        let puts = try Self.run(proxy, 20, { "PUT /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nv=\(100 + $0)" }, method: "PUT")
        #expect(puts.allSatisfy { $0 == 200 })
        let posts = try Self.run(proxy, 100, { "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nn=\(100 + $0)" },
                                 method: "POST")
        #expect(posts.count == 100)
        let badGets = bad.requests.count { $0.startLine.hasPrefix("GET") }
        let badPosts = bad.requests.count { $0.startLine.hasPrefix("POST") }
        let goodPosts = good.requests.filter { $0.startLine.hasPrefix("POST") }
        #expect(badGets > 50, "the failing endpoint saw its share of GETs: \(badGets)")
        #expect(badPosts + goodPosts.count == 100, "every POST sent exactly once")
        #expect(Set(goodPosts.map(\.bodyText)).count == goodPosts.count)
        #expect(posts.count { $0 == 503 } == badPosts, "a POST the failing endpoint got is answered with its 503")
        let goodPuts = good.requests.filter { $0.startLine.hasPrefix("PUT") }
        #expect(goodPuts.count == 20 && Set(goodPuts.map(\.bodyText)) == Set((0..<20).map { "v=\(100 + $0)" }))
        let m = proxy.metrics()
        let badPuts = bad.requests.count { $0.startLine.hasPrefix("PUT") }
        #expect(m["sluice_upstream_retries_total{route=\"web\",cohort=\"app\",reason=\"503\"}"] == Double(badGets + badPuts))
        #expect(m["sluice_requests_total{route=\"web\",cohort=\"app\",code=\"200\"}"] == Double(220 + goodPosts.count))
        let problems = try Self.promtoolProblems(proxy.hub.renderMetrics(table: proxy.server.table))
        #expect(problems == nil, "\(problems ?? "")")
        Self.expectNoLeak(proxy, ports: [bad.port, good.port], baseline: baseline, endpoints: 2)
    }

    @Test func anUpstreamThatClosesWithoutAnsweringIsRetriedAndOneKilledMidResponseCutsTheClient() throws {
        let closer = try TestUpstream { _ in .close }
        let good = try TestUpstream { _ in .ok("fine") }
        defer { closer.stop(); good.stop() }
        let proxy = try Self.proxy([closer.port, good.port], route: "    retries: { attempts: 2, budget_percent: 100 }")
        defer { proxy.stop() }
        let baseline = Self.openFDs(ports: [closer.port, good.port, proxy.port])
        let statuses = try Self.run(proxy, 40) { "GET /r\($0) HTTP/1.1\r\nHost: x\r\n\r\n" }
        #expect(statuses.count == 40 && statuses.allSatisfy { $0 == 200 }, "\(statuses) closer got \(closer.requests.count)")
        let resets = proxy.metrics()["sluice_upstream_retries_total{route=\"web\",cohort=\"app\",reason=\"reset\"}"] ?? 0
        #expect(resets == Double(closer.requests.count) && resets > 0)

        // Killed mid-response: the head and part of the body went to the client, so no retry: the
        // client's response is cut (its connection closes before the announced length).
        let killer = try TestUpstream { _ in .rawThenClose(Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial".utf8)) }
        defer { killer.stop() }
        let proxy2 = try Self.proxy([killer.port, good.port], route: "    retries: { attempts: 2 }")
        defer { proxy2.stop() }
        var cut = 0
        let started = Date()
        for _ in 0..<6 {
            let fd = try proxy2.connect()
            try TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let bytes = String(decoding: TestSocket.readAll(fd), as: UTF8.self)
            close(fd)
            if bytes.hasPrefix("HTTP/1.1 200") && bytes.hasSuffix("partial") { cut += 1 } else { #expect(bytes.hasSuffix("fine")) }
        }
        #expect(cut == killer.requests.count && cut > 0)
        #expect(Date().timeIntervalSince(started) < 5, "the cut connections close at once")
        let m2 = proxy2.metrics()
        #expect(m2["sluice_upstream_errors_total{route=\"web\",cohort=\"app\",reason=\"reset\"}"] == Double(cut))
        #expect(m2["sluice_upstream_retries_total{route=\"web\",cohort=\"app\",reason=\"reset\"}"] == nil)
        Self.expectNoLeak(proxy, ports: [closer.port, good.port], baseline: baseline, endpoints: 2)
        // proxy2's connections to the killer were all closed; at most the pooled one to `good` is left.
        let baseline2 = Self.openFDs(ports: [killer.port, proxy2.port])
        #expect(Self.settle { Self.openFDs(ports: [killer.port, proxy2.port]) == 2 }, "killer and proxy2 listeners only: \(baseline2)")
    }

    @Test func anEndpointThatAcceptsButNeverAnswersCostsOnePerTryTimeout() throws {
        // The kernel completes the handshake (listen backlog); nobody ever reads or answers.
        let (silentFD, silentPort) = try TestSocket.listen()
        defer { close(silentFD) }
        let good = try TestUpstream { _ in .ok("fine") }
        defer { good.stop() }
        let proxy = try Self.proxy([silentPort, good.port], route: "    retries: { attempts: 2, per_try_timeout: 200ms }")
        defer { proxy.stop() }
        let statuses = try Self.run(proxy, 6) { "GET /t\($0) HTTP/1.1\r\nHost: x\r\n\r\n" }
        #expect(statuses == Array(repeating: 200, count: 6))
        let timeouts = proxy.metrics()["sluice_upstream_retries_total{route=\"web\",cohort=\"app\",reason=\"timeout\"}"] ?? 0
        #expect(timeouts >= 1 && timeouts <= 6)

        // Alone, it gives a 504 after its attempts (the last one's timeout is the answer).
        let alone = try Self.proxy([silentPort], route: "    retries: { attempts: 2, per_try_timeout: 200ms }")
        defer { alone.stop() }
        let aloneBaseline = Self.openFDs(ports: [silentPort, alone.port])
        let start = Date()
        let r = try alone.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(r.status == 504)
        #expect(Date().timeIntervalSince(start) >= 0.35, "two tries of 200 ms")
        #expect(alone.metrics()["sluice_upstream_errors_total{route=\"web\",cohort=\"app\",reason=\"response_timeout\"}"] == 1)
        Self.expectNoLeak(alone, ports: [silentPort], baseline: aloneBaseline, endpoints: 0)
    }

    @Test func garbageIsNotRetriedSlowIsNotAFailureAndAStoppedEndpointStaysA502() throws {
        let garbage = try TestUpstream { _ in .rawThenClose(Array("NOT HTTP AT ALL\r\n\r\n".utf8)) }
        let slow = try TestUpstream { _ in .delayed(0.15, .ok("slow")) }
        defer { garbage.stop(); slow.stop() }
        let g = try Self.proxy([garbage.port], route: "    retries: { attempts: 3 }")
        defer { g.stop() }
        let gBaseline = Self.openFDs(ports: [garbage.port, g.port])
        #expect(try g.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n").status == 502)
        #expect(garbage.requests.count == 1, "a bad response is not a retry condition")
        #expect(g.metrics()["sluice_upstream_errors_total{route=\"web\",cohort=\"app\",reason=\"bad_response\"}"] == 1)
        Self.expectNoLeak(g, ports: [garbage.port], baseline: gBaseline, endpoints: 0)

        let s = try Self.proxy([slow.port], route: "    retries: { attempts: 2, per_try_timeout: 2s }")
        defer { s.stop() }
        let sBaseline = Self.openFDs(ports: [slow.port, s.port])
        #expect(try Self.run(s, 3) { _ in "GET / HTTP/1.1\r\nHost: x\r\n\r\n" } == [200, 200, 200])
        #expect(slow.requests.count == 3 && s.metrics().keys.contains { $0.hasPrefix("sluice_upstream_retries_total{") } == false)
        Self.expectNoLeak(s, ports: [slow.port], baseline: sBaseline, endpoints: 1)

        let dead = try TestSocket.closedPort()
        let d = try Self.proxy([dead], route: "    retries: { attempts: 3 }")
        defer { d.stop() }
        let baseline = Self.openFDs(ports: [dead, d.port])
        #expect(try Self.run(d, 20) { _ in "GET / HTTP/1.1\r\nHost: x\r\n\r\n" } == Array(repeating: 502, count: 20))
        let m = d.metrics()
        #expect(m["sluice_upstream_retries_total{route=\"web\",cohort=\"app\",reason=\"connect_failure\"}"] == 40, "two more tries each")
        #expect(m["sluice_upstream_errors_total{route=\"web\",cohort=\"app\",reason=\"connect_refused\"}"] == 20)
        Self.expectNoLeak(d, ports: [dead], baseline: baseline, endpoints: 0)
    }

    @Test func theRetryBudgetCapsRetries() throws {
        let bad = try TestUpstream { _ in .status(503, "down") }
        defer { bad.stop() }
        // budget 0%: only the floor, 3 per second over the 10 s window = 30 retries.
        let proxy = try Self.proxy([bad.port], route: "    retries: { attempts: 2, budget_percent: 0 }")
        defer { proxy.stop() }
        let statuses = try Self.run(proxy, 80) { "GET /b\($0) HTTP/1.1\r\nHost: x\r\n\r\n" }
        #expect(statuses == Array(repeating: 503, count: 80))
        #expect(bad.requests.count == 110, "80 requests and 30 retries, not 160")
        #expect(proxy.metrics()["sluice_upstream_retries_total{route=\"web\",cohort=\"app\",reason=\"503\"}"] == 30)
    }

    /// The retry buffer: a chunked PUT is kept (re-chunked as sent) and sent again whole; a body
    /// over `limits.retry_buffer_bytes` is not kept, so its 503 is the answer and it is sent once.
    @Test func smallBodiesAreSentAgainLargeOnesAreNotRetried() throws {
        let bad = try TestUpstream { _ in .status(503, "overloaded") }
        let good = try TestUpstream { r in .ok("stored:\(r.body.count)") }
        defer { bad.stop(); good.stop() }
        let proxy = try Self.proxy([bad.port, good.port], route: "    retries: { attempts: 2, budget_percent: 100 }",
                                   extra: "limits: { retry_buffer_bytes: 1KiB }")
        defer { proxy.stop() }
        let chunked = try Self.run(proxy, 10, { i in
            "PUT /c\(i) HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        }, method: "PUT")
        #expect(chunked == Array(repeating: 200, count: 10))
        #expect(good.requests.filter { $0.startLine.hasPrefix("PUT /c") }.allSatisfy { $0.bodyText == "hello world" })
        let big = String(repeating: "b", count: 2000)
        let large = try Self.run(proxy, 10, { i in
            "PUT /l\(i) HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n" + big
        }, method: "PUT")
        let largeAtBad = bad.requests.count { $0.startLine.hasPrefix("PUT /l") }
        let largeAtGood = good.requests.count { $0.startLine.hasPrefix("PUT /l") }
        #expect(large.count == 10 && largeAtBad + largeAtGood == 10, "each large PUT sent once")
        #expect(large.count { $0 == 503 } == largeAtBad && largeAtBad > 0)
    }
}
