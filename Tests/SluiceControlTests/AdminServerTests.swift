import Foundation
import Synchronization
import SluiceControl
import SluiceCore
import Testing

/// The admin API over a real socket on 127.0.0.1 with an ephemeral port.
@Suite struct AdminServerTests {
    static let second: UInt64 = 1_000_000_000

    /// A hub with two workers' shards, an event log and a started admin server.
    struct Rig {
        let config: SluiceConfig
        let hub: MetricsHub
        let events: EventLog
        let server: AdminServer
        let map: SeriesMap
        var address: SocketAddress { server.boundAddress! }

        init(token: String? = nil) throws {
            config = try load(adminTestYAML)
            hub = MetricsHub(workers: 2, listenerNames: config.listeners.map(\.name), buildVersion: "9.9.9-test")
            map = hub.seriesMap(for: config.table)
            events = EventLog(clock: { 1_795_737_600_000_000_000 })
            let table = config.table
            server = try AdminServer(address: .v4(0x7f00_0001, port: 0), token: token, hub: hub, events: events,
                                     table: { table })
            try server.start()
        }

        func get(_ path: String, method: String = "GET", token: String? = nil) throws -> AdminClientResponse {
            try AdminClient.request(method, path, to: address, token: token)
        }
    }

    /// Records a known mix on both shards.
    func recordMix(_ rig: Rig) {
        let stable = rig.map.cohortSeries[0][0], canary = rig.map.cohortSeries[0][1], direct = rig.map.directSeries[0]
        for i in 0..<90 {
            rig.hub.shards[i % 2].recordRequest(series: stable, status: 200, durationNanos: UInt64(i + 1) * 1_000_000,
                                                bytesIn: 100, bytesOut: 1000)
        }
        for i in 0..<10 {
            rig.hub.shards[i % 2].recordRequest(series: canary, status: i < 3 ? 503 : 200, durationNanos: 40_000_000,
                                                bytesIn: 100, bytesOut: 1000)
        }
        rig.hub.shards[1].recordUpstreamError(series: canary, reason: .connectRefused)
        rig.hub.shards[0].recordRequest(series: direct, status: 403, durationNanos: 10_000, bytesIn: 50, bytesOut: 60)
        rig.hub.shards[0].recordRequest(series: SeriesMap.unroutedSeries, status: 400, durationNanos: 10_000, bytesIn: 5, bytesOut: 6)
        rig.hub.shards[0].addInFlight(series: canary, 1)
        rig.hub.shards[1].connectionAccepted(listener: 0)
        rig.hub.shards[0].upstreamConnectionOpened(upstream: rig.map.upstreamSeries[1])
    }

    @Test func metricsParseAndCountExactly() throws {
        let rig = try Rig()
        defer { rig.server.stop() }
        recordMix(rig)
        let response = try rig.get("/metrics")
        #expect(response.status == 200)
        #expect(response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        let lines = try ExpositionParser.parse(response.text)
        try ExpositionParser.checkHistograms(lines)
        let web = ["route": "web"]
        func v(_ name: String, _ labels: [String: String]) -> Double? { ExpositionParser.value(in: lines, name, labels) }
        #expect(v("sluice_requests_total", web.merging(["cohort": "stable", "code": "200"]) { $1 }) == 90)
        #expect(v("sluice_requests_total", web.merging(["cohort": "canary", "code": "200"]) { $1 }) == 7)
        #expect(v("sluice_requests_total", web.merging(["cohort": "canary", "code": "503"]) { $1 }) == 3)
        #expect(v("sluice_requests_total", web.merging(["cohort": "", "code": "403"]) { $1 }) == 1)
        #expect(v("sluice_requests_total", ["route": "", "cohort": "", "code": "400"]) == 1)
        #expect(v("sluice_request_duration_seconds_count", web.merging(["cohort": "stable"]) { $1 }) == 90)
        #expect(v("sluice_request_duration_seconds_bucket", web.merging(["cohort": "stable", "le": "0.01"]) { $1 }) == 10)
        #expect(v("sluice_request_duration_seconds_bucket", web.merging(["cohort": "stable", "le": "0.05"]) { $1 }) == 50)
        let sum = try #require(v("sluice_request_duration_seconds_sum", web.merging(["cohort": "stable"]) { $1 }))
        #expect(abs(sum - 4.095) < 1e-9)
        #expect(v("sluice_upstream_errors_total", web.merging(["cohort": "canary", "reason": "connect_refused"]) { $1 }) == 1)
        #expect(v("sluice_upstream_errors_total", web.merging(["cohort": "canary", "reason": "reset"]) { $1 }) == 0)
        #expect(v("sluice_requests_in_flight", web.merging(["cohort": "canary"]) { $1 }) == 1)
        #expect(v("sluice_cohort_weight", web.merging(["cohort": "stable"]) { $1 }) == 0.9)
        #expect(v("sluice_cohort_weight", web.merging(["cohort": "canary"]) { $1 }) == 0.1)
        #expect(v("sluice_connections_accepted_total", ["listener": "public"]) == 1)
        #expect(v("sluice_connections_active", ["listener": "public"]) == 1)
        #expect(v("sluice_upstream_connections_active", ["upstream": "canary"]) == 1)
        #expect(v("sluice_upstream_connections_active", ["upstream": "stable"]) == 0)
        #expect(v("sluice_config_version", [:]) == 1)
        #expect(!response.text.contains("sluice_config_info"), "the version is a value, not a label")
        #expect(v("sluice_build_info", ["version": "9.9.9-test"]) == 1)
        for family in ["sluice_requests_total", "sluice_request_duration_seconds", "sluice_upstream_errors_total",
                       "sluice_requests_in_flight", "sluice_cohort_weight", "sluice_connections_active",
                       "sluice_connections_accepted_total", "sluice_upstream_connections_active", "sluice_config_version",
                       "sluice_build_info"] {
            #expect(lines.contains { if case .type(family, _) = $0 { return true }; return false }, "no TYPE for \(family)")
            #expect(lines.contains { if case .help(family, _) = $0 { return true }; return false }, "no HELP for \(family)")
        }
    }

    @Test func metricsPassPromtool() throws {
        guard let promtool = executableOnPath("promtool") else { return }  // CI installs it; skip where it is missing
        let rig = try Rig()
        defer { rig.server.stop() }
        recordMix(rig)
        let text = try rig.get("/metrics").text
        let result = try run(promtool, ["check", "metrics"], input: text)
        #expect(result.status == 0, "promtool check metrics:\n\(result.output)")
        // promtool is really checking: a broken exposition fails.
        #expect(try run(promtool, ["check", "metrics"], input: "# TYPE x counter\nx{a=1} 1\n").status != 0)
        // An empty hub (before any request) must pass too.
        let empty = try Rig()
        defer { empty.server.stop() }
        let fresh = try run(promtool, ["check", "metrics"], input: try empty.get("/metrics").text)
        #expect(fresh.status == 0, "promtool check metrics:\n\(fresh.output)")
    }

    @Test func statsDecodeWithWindowedFigures() throws {
        let rig = try Rig()
        defer { rig.server.stop() }
        let t0: UInt64 = 500 * Self.second
        rig.hub.sample(now: t0)
        recordMix(rig)
        rig.hub.sample(now: t0 + 5 * Self.second)
        let response = try rig.get("/admin/stats")
        #expect(response.status == 200)
        #expect(response.headers["content-type"] == "application/json")
        let report = try JSONDecoder().decode(StatsReport.self, from: Data(response.body))
        #expect(report.configVersion == 1)
        #expect(report.windows == ["1m", "5m"])
        #expect(report.sampleIntervalSeconds == 5)
        #expect(report.routes.map(\.name) == ["web"])
        let cohorts = report.routes[0].cohorts
        #expect(cohorts.map(\.name) == ["stable", "canary"])
        #expect(cohorts.map(\.weight) == [90, 10])
        #expect(cohorts.map(\.baseline) == [true, false])
        #expect(cohorts.map(\.upstream) == ["stable", "canary"])
        #expect(cohorts[1].inFlight == 1)
        let canary = try #require(cohorts[1].windows["1m"])
        #expect(canary.seconds == 5 && canary.requests == 10 && canary.errors == 3 && canary.upstreamErrors == 1)
        #expect(canary.rate == 2 && canary.errorRate == 0.3)
        let p99 = try #require(canary.p99)
        #expect(abs(p99 - 0.04) <= 0.04 * LatencyScale.relativeError)
        let stable = try #require(cohorts[0].windows["5m"])
        #expect(stable.requests == 90 && stable.errors == 0 && stable.errorRate == 0)
        // The 90 stable latencies are 1...90 ms: p50 = 45 ms, p95 = 86 ms, p99 = 90 ms.
        for (reported, exact) in [(stable.p50, 0.045), (stable.p95, 0.086), (stable.p99, 0.090)] {
            let r = try #require(reported)
            #expect(abs(r - exact) <= exact * LatencyScale.relativeError, "\(r) vs \(exact)")
        }
        #expect(report.routes[0].direct["1m"]?.requests == 1)
        #expect(report.unrouted["1m"]?.requests == 1)
        // The same through the hub's query API.
        #expect(rig.hub.stats(route: "web", cohort: "canary", window: 60)?.requests == 10)
        // Without requests, percentiles are explicit nulls in the JSON.
        let empty = String(decoding: try JSONEncoder().encode(WindowReport.empty), as: UTF8.self)
        #expect(empty.contains("\"p99\":null"))
    }

    @Test func eventsAreListedOldestFirst() throws {
        let rig = try Rig()
        defer { rig.server.stop() }
        rig.events.record(.start, oldVersion: nil, newVersion: 1, cause: "startup")
        rig.events.record(.reloadRejected, oldVersion: 1, newVersion: nil, cause: "SIGHUP", details: ["error": "bad weight"])
        rig.events.record(.reload, oldVersion: 1, newVersion: 2, cause: "SIGHUP")
        let all = try JSONDecoder().decode([RoutingEvent].self, from: Data(try rig.get("/admin/events").body))
        #expect(all.map(\.kind) == [.start, .reloadRejected, .reload])
        #expect(all.map(\.id) == [1, 2, 3])
        #expect(all[0].time == "2026-11-27T00:00:00.000Z")
        #expect(all[1].details == ["error": "bad weight"] && all[1].newVersion == nil)
        let text = try rig.get("/admin/events").text
        #expect(text.contains("\"kind\" : \"reload_rejected\"") && text.contains("\"old_version\" : null"))
        let after = try JSONDecoder().decode([RoutingEvent].self, from: Data(try rig.get("/admin/events?after=1&limit=1").body))
        #expect(after.map(\.id) == [3])
        #expect(try rig.get("/admin/events?limit=x").status == 400)
    }

    @Test func healthAndErrors() throws {
        let rig = try Rig()
        defer { rig.server.stop() }
        #expect(throws: AdminError.self) { try rig.server.start() }
        let health = try rig.get("/healthz")
        #expect(health.status == 200 && health.text == "ok\n")
        let head = try rig.get("/healthz", method: "HEAD")
        #expect(head.status == 200 && head.body.isEmpty && head.headers["content-length"] == "3")
        let missing = try rig.get("/nope")
        #expect(missing.status == 404 && missing.headers["content-type"] == "application/json")
        let body = try JSONSerialization.jsonObject(with: Data(missing.body)) as? [String: Any]
        #expect(body?["status"] as? Int == 404)
        #expect((body?["error"] as? String)?.contains("/nope") == true)
        let wrong = try rig.get("/metrics", method: "POST")
        #expect(wrong.status == 405)
        #expect(wrong.headers["allow"] == "GET, HEAD")
        #expect(wrong.text.contains("\"error\""))
        // Malformed request line.
        let fd = try rawConnect(rig.address)
        defer { close(fd) }
        #expect(rawExchange(fd, "NONSENSE\r\n\r\n").hasPrefix("HTTP/1.1 400"))
    }

    @Test func tokenGuardsMutatingEndpoints() throws {
        let rig = try Rig(token: "s3cret")
        defer { rig.server.stop() }
        rig.server.register("POST", "/admin/test") { request in .text("done \(request.body.count)\n") }
        #expect(try rig.get("/admin/test", method: "POST").status == 401)
        let unauthorized = try rig.get("/admin/test", method: "POST", token: "wrong")
        #expect(unauthorized.status == 401 && unauthorized.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
        #expect(try rig.get("/admin/test", method: "POST", token: "s3cre").status == 401)
        let ok = try rig.get("/admin/test", method: "POST", token: "s3cret")
        #expect(ok.status == 200 && ok.text == "done 0\n")
        // Reading stays open.
        #expect(try rig.get("/metrics").status == 200)
        #expect(AdminServer.isAuthorized(AdminRequest(method: "POST", path: "/", headers: ["authorization": "bearer s3cret"]),
                                         token: "s3cret"))
        #expect(!AdminServer.isAuthorized(AdminRequest(method: "POST", path: "/", headers: ["authorization": "Basic s3cret"]),
                                          token: "s3cret"))
        #expect(AdminServer.isAuthorized(AdminRequest(method: "POST", path: "/"), token: nil))
    }

    @Test func nonLoopbackWithoutTokenIsRefused() throws {
        let hub = MetricsHub(workers: 1, listenerNames: [], buildVersion: "t")
        let table = try load(adminTestYAML).table
        for address in [SocketAddress.v4(0, port: 9901), .v4(0x0a00_0001, port: 9901), .v6(hi: 0, lo: 0, port: 9901)] {
            #expect(throws: AdminError.self) {
                try AdminServer(address: address, token: nil, hub: hub, events: EventLog(), table: { table })
            }
            #expect(throws: AdminError.self) {
                try AdminServer(address: address, token: "", hub: hub, events: EventLog(), table: { table })
            }
            _ = try AdminServer(address: address, token: "t0ken", hub: hub, events: EventLog(), table: { table })
        }
        _ = try AdminServer(address: .v6(hi: 0, lo: 1, port: 0), token: nil, hub: hub, events: EventLog(), table: { table })
        // The config loader reports it with the key's position.
        let problems = diagnostics(baseYAML + adminTestYAML.dropFirst(baseYAML.count) + "admin: { address: 0.0.0.0:9901 }\n")
        #expect(problems.count == 1)
        #expect(problems.first?.keyPath == "admin.address")
        #expect(problems.first?.message.contains("not a loopback address") == true)
        _ = mustLoad(adminTestYAML + "admin: { address: 0.0.0.0:9901, token: abc }\n")
    }

    @Test func unreachableAdminIsAClearError() throws {
        // Bind and close a port so nothing listens there.
        let rig = try Rig()
        let address = rig.address
        rig.server.stop()
        #expect {
            _ = try AdminClient.request("GET", "/admin/stats", to: address, timeoutMillis: 1000)
        } throws: { error in
            (error as? AdminError)?.message.contains("cannot connect to 127.0.0.1:") == true
        }
    }

    @Test func recordingWhileScrapingStaysExact() throws {
        let rig = try Rig()
        defer { rig.server.stop() }
        let canary = rig.map.cohortSeries[0][1]
        var now: UInt64 = 1_000 * Self.second
        rig.hub.sample(now: now)  // the baseline, before any request
        now += Self.second
        let done = DispatchSemaphore(value: 0)
        for w in 0..<2 {
            let shard = rig.hub.shards[w]
            DispatchQueue.global().async {
                for i in 0..<50_000 {
                    shard.recordRequest(series: canary, status: i % 10 == 0 ? 500 : 200, durationNanos: UInt64(i % 100) * 100_000,
                                        bytesIn: 1, bytesOut: 2)
                    shard.addInFlight(series: canary, 1)
                    shard.addInFlight(series: canary, -1)
                }
                done.signal()
            }
        }
        for _ in 0..<5 {
            let lines = try ExpositionParser.parse(try rig.get("/metrics").text)
            try ExpositionParser.checkHistograms(lines)
            rig.hub.sample(now: now)
            now += Self.second
        }
        done.wait()
        done.wait()
        rig.hub.sample(now: now)
        let (_, totals) = rig.hub.snapshot()
        #expect(totals.requests(series: Int(canary)) == 100_000)
        #expect(totals.requests(series: Int(canary), status: 500) == 10_000)
        #expect(totals.inFlight(series: Int(canary)) == 0)
        #expect(totals.latencyCounts(series: Int(canary)).reduce(0, +) == 100_000)
        let stats = try #require(rig.hub.stats(route: "web", cohort: "canary", window: 60))
        #expect(stats.requests == 100_000 && stats.errors == 10_000)
    }

    @Test func samplerAndManyConnections() throws {
        let rig = try Rig()
        defer { rig.server.stop() }
        try rig.hub.startSampler()
        try rig.hub.startSampler()  // idempotent
        // Several clients at once, served by the event loop (handlers on the read lane).
        let results = Mutex<[Int]>([])
        DispatchQueue.concurrentPerform(iterations: 16) { _ in
            let status = (try? AdminClient.request("GET", "/metrics", to: rig.address).status) ?? -1
            results.withLock { $0.append(status) }
        }
        #expect(results.withLock { $0 } == Array(repeating: 200, count: 16))
        rig.hub.stopSampler()
        rig.hub.stopSampler()
    }
}

/// A raw client socket, for malformed requests.
func rawConnect(_ address: SocketAddress) throws -> Int32 {
    guard case .v4(let a, let port) = address else { throw AdminError("v4 only") }
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var sa = sockaddr_in()
    sa.sin_family = sa_family_t(AF_INET)
    sa.sin_port = port.bigEndian
    sa.sin_addr.s_addr = a.bigEndian
    let rc = withUnsafePointer(to: &sa) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { close(fd); throw AdminError("connect failed") }
    return fd
}

/// Sends `request` and reads until the server closes.
func rawExchange(_ fd: Int32, _ request: String) -> String {
    _ = Array(request.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 4096, 0) }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}
