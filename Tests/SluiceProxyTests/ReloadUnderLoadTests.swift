import Foundation
@preconcurrency import Glibc
import Testing
import SluiceControl
import SluiceCore
import SluiceProxy

/// Everything `sluice run` wires (`SluiceRuntime`: routing controller, fault drills, rollouts,
/// metrics hub, admin API on a free loopback port) over a config file in a temp directory, in
/// process. The config file is not watched (tests reload explicitly).
final class ControlledProxy: Sendable {
    let dir: String
    let configPath: String
    let runtime: SluiceRuntime
    let port: UInt16
    var server: ProxyServer { runtime.server }
    var controller: RoutingController { runtime.controller }
    var events: EventLog { runtime.events }
    var hub: MetricsHub { runtime.hub }
    /// The admin API (nil unless asked for: it always runs, the tests that do not use it ignore it).
    let admin: AdminServer?

    /// Writes `yaml` (listener 127.0.0.1:0) as the config and starts everything.
    init(yaml: String, workers: Int = 2, adminToken: String? = nil, withAdmin: Bool = false) throws {
        var template = Array("/tmp/sluice-reload-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { throw TestError("mkdtemp") }
        dir = String(cString: made)
        configPath = dir + "/sluice.yaml"
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        var config = try ConfigLoader.load(path: configPath)
        config.adminAddress = .v4(0x7f00_0001, port: 0)
        config.adminToken = adminToken
        runtime = try SluiceRuntime.start(config, settings: config.proxySettings(workers: workers), cause: "test start",
                                          watch: false, buildVersion: "test")
        admin = withAdmin ? runtime.admin : nil
        port = runtime.server.boundAddresses[0].port
    }

    /// Replaces the config file the way editors do (temporary file, rename).
    func writeConfig(_ yaml: String) throws {
        let temp = dir + "/.sluice.yaml.tmp"
        try yaml.write(toFile: temp, atomically: false, encoding: .utf8)
        guard rename(temp, configPath) == 0 else { throw TestError("rename: \(errno)") }
    }

    func stop() {
        runtime.stop(drainTimeout: 2_000_000_000)
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// One request on a fresh connection.
    func request(_ raw: String) throws -> TestMessage {
        let fd = try TestSocket.connect(port: port)
        defer { close(fd) }
        try TestSocket.send(fd, raw)
        guard let m = try TestReader(fd: fd).readMessage(isResponse: true) else { throw TestError("no response") }
        return m
    }
}

/// Keep-alive load: `connections` threads, each with one connection sending GETs one after
/// the other (with `pauseMicros` between a response and the next request) until `stop`,
/// checking each response with `check` (nil: fine, else what is wrong).
final class KeepAliveLoad: @unchecked Sendable {
    // @unchecked: the counters are behind `lock`; `threads` is touched only by the creating thread.
    private let lock = NSLock()
    private var _served = 0
    private var _failures: [String] = []
    private var _stopped = false
    private let group = DispatchGroup()

    var served: Int { lock.withLock { _served } }
    var failures: [String] { lock.withLock { _failures } }
    private var stopped: Bool { lock.withLock { _stopped } }

    init(port: UInt16, connections: Int, path: String = "/", pauseMicros: UInt32 = 0,
         check: @escaping @Sendable (TestMessage) -> String?) {
        for c in 0..<connections {
            group.enter()
            let t = Thread { [self] in
                defer { group.leave() }
                do {
                    let fd = try TestSocket.connect(port: port)
                    defer { close(fd) }
                    let reader = TestReader(fd: fd)
                    var i = 0
                    while !stopped {
                        try TestSocket.send(fd, "GET \(path)?c=\(c)&i=\(i) HTTP/1.1\r\nHost: load\r\n\r\n")
                        guard let m = try reader.readMessage(isResponse: true) else {
                            throw TestError("connection closed by the proxy after \(i) requests")
                        }
                        if let problem = check(m) { lock.withLock { _failures.append("connection \(c) request \(i): \(problem)") } }
                        lock.withLock { _served += 1 }
                        i += 1
                        if pauseMicros > 0 { usleep(pauseMicros) }
                    }
                } catch {
                    lock.withLock { _failures.append("connection \(c): \(error)") }
                }
            }
            t.start()
        }
    }

    /// Stops every connection and waits for them (false on a timeout).
    func stop() -> Bool {
        lock.withLock { _stopped = true }
        return group.wait(timeout: .now() + 30) == .success
    }
}

/// An upstream answering its own name (and echoing the cohort header it was sent), recording
/// when each request arrived.
final class NamedUpstream: Sendable {
    let name: String
    let server: TestUpstream
    let arrivals = LockedBox<[UInt64]>([])

    init(_ name: String) throws {
        self.name = name
        let arrivals = self.arrivals
        server = try TestUpstream { request in
            let now = ControlClock.monotonicNanos()
            arrivals.update { $0.append(now) }
            let seen = request.header("X-Sluice-Cohort") ?? "-"
            return .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: \(name.utf8.count)\r\nX-Seen-Cohort: \(seen)\r\n\r\n\(name)".utf8))
        }
    }

    var port: UInt16 { server.port }
    func stop() { server.stop() }
}

/// A config for `web` splitting `stable`/`canary` by `split`.
func reloadYAML(stable: UInt16, canary: UInt16, split: String, extra: String = "") -> String {
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
        split: { \(split) }
    \(extra)
    """
}

/// Checks one response of the stable/canary load: 200, answered by one cohort's upstream, the
/// cohort the proxy decided (response header) is the one the upstream was told and is the one that answered.
@Sendable func consistentCohort(_ m: TestMessage) -> String? {
    guard m.status == 200 else { return "status \(m.status): \(m.bodyText)" }
    let body = m.bodyText
    guard body == "stable" || body == "canary" else { return "body \(body.debugDescription)" }
    guard m.header("X-Sluice-Cohort") == body else { return "cohort header \(m.header("X-Sluice-Cohort") ?? "none") but \(body) answered" }
    guard m.header("X-Seen-Cohort") == body else { return "upstream \(body) was told cohort \(m.header("X-Seen-Cohort") ?? "none")" }
    return nil
}

@Suite(.serialized)
struct ReloadUnderLoadTests {
    @Test func oneHundredReloadsUnderKeepAliveLoadLoseNothing() throws {
        let stable = try NamedUpstream("stable"), canary = try NamedUpstream("canary")
        defer { stable.stop(); canary.stop() }
        let allStable = reloadYAML(stable: stable.port, canary: canary.port, split: "stable: 100, canary: 0")
        let allCanary = reloadYAML(stable: stable.port, canary: canary.port, split: "stable: 0, canary: 100")
        let proxy = try ControlledProxy(yaml: allStable)
        defer { proxy.stop() }
        let bodies = LockedBox<[String: Int]>([:])
        // Paced (2 ms between a response and the next request on each connection) so the
        // reloading thread is not starved when the rest of the suite runs alongside.
        let load = KeepAliveLoad(port: proxy.port, connections: 64, pauseMicros: 2_000) { m in
            bodies.update { $0[m.bodyText, default: 0] += 1 }
            return consistentCohort(m)
        }
        usleep(200_000)
        let start = ControlClock.monotonicNanos()
        let reloads = 120
        var rejected = 0
        for i in 0..<reloads {
            try proxy.writeConfig(i % 2 == 0 ? allCanary : allStable)
            do {
                _ = try proxy.controller.reloadFromFile(cause: "test reload \(i)")
            } catch {
                rejected += 1
            }
            usleep(5_000)
        }
        let duration = Double(ControlClock.monotonicNanos() - start) / 1e9
        usleep(100_000)
        #expect(load.stop(), "load threads did not finish")
        let served = load.served
        #expect(rejected == 0)
        #expect(load.failures.isEmpty, "\(load.failures.count) failures: \(load.failures.prefix(5))")
        #expect(proxy.controller.version == UInt64(1 + reloads))
        let seen = bodies.get()
        #expect((seen["stable"] ?? 0) > 0 && (seen["canary"] ?? 0) > 0, "both tables served: \(seen)")
        #expect(served > 5 * reloads)
        // The last table (all stable) is the one serving now.
        for _ in 0..<20 { #expect(try proxy.request("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").bodyText == "stable") }
        print("reload under load: \(served) requests on 64 keep-alive connections, \(reloads) reloads in \(String(format: "%.2f", duration)) s "
              + "(\(Int(Double(served) / duration)) req/s), 0 failed; stable \(seen["stable"] ?? 0), canary \(seen["canary"] ?? 0)")
    }

    @Test func abortUnderLoadStopsCanaryTrafficWithin50ms() throws {
        let stable = try NamedUpstream("stable"), canary = try NamedUpstream("canary")
        defer { stable.stop(); canary.stop() }
        let proxy = try ControlledProxy(yaml: reloadYAML(stable: stable.port, canary: canary.port, split: "stable: 50, canary: 50"),
                                        adminToken: "t0ken", withAdmin: true)
        defer { proxy.stop() }
        let load = KeepAliveLoad(port: proxy.port, connections: 32, check: consistentCohort)
        usleep(500_000)
        let canaryBefore = canary.arrivals.get().count
        let callStart = ControlClock.monotonicNanos()
        let response = try AdminClient.request("POST", "/admin/routes/web/abort", to: proxy.admin!.boundAddress!, token: "t0ken")
        let replied = ControlClock.monotonicNanos()
        #expect(response.status == 200, "\(response.text)")
        let stableAtReply = stable.arrivals.get().count
        usleep(500_000)
        #expect(load.stop())
        #expect(load.failures.isEmpty, "\(load.failures.prefix(5))")
        let canaryArrivals = canary.arrivals.get()
        let lastCanary = canaryArrivals.max() ?? 0
        let afterReply = canaryArrivals.filter { $0 > replied }.count
        let lag = lastCanary > replied ? Double(lastCanary - replied) / 1e6 : 0
        #expect(canaryBefore > 100, "the canary had traffic before the abort")
        #expect(stable.arrivals.get().count > stableAtReply + 100, "traffic went on, to stable")
        #expect(lag < 50, "a request reached the canary \(lag) ms after the abort call returned")
        print("abort under load: last request reached the canary \(String(format: "%.3f", lag)) ms after the admin call's reply "
              + "(\(afterReply) canary arrival(s) after the reply; the call took \(String(format: "%.2f", Double(replied - callStart) / 1e6)) ms; "
              + "\(canaryBefore) canary requests before)")
    }

    /// Invalid configs, each of one kind of error, that would send everything to the canary:
    /// (kind, YAML, a piece of the diagnostic).
    static func invalidEdits(stable: UInt16, canary: UInt16) -> [(String, String, String)] {
        let toCanary = "stable: 0, canary: 100"
        return [
            ("bad weights sum", reloadYAML(stable: stable, canary: canary, split: "stable: 1, canary: 100"), "weights sum to 101"),
            ("unknown cohort", reloadYAML(stable: stable, canary: canary, split: "stable: 0, canry: 100"), "cohort `canry`"),
            ("duplicate name", reloadYAML(stable: stable, canary: canary, split: toCanary, extra: "  - { name: web, upstream: canary }"),
             "duplicate route name `web`"),
            ("bad regex", reloadYAML(stable: stable, canary: canary, split: toCanary,
                                     extra: "  - { name: r, match: { header: { name: A, regex: \"[a-\" } }, upstream: canary }"),
             "invalid regex"),
            ("unknown key", reloadYAML(stable: stable, canary: canary, split: toCanary) + "\nlisteners_extra: 1\n",
             "unknown key `listeners_extra`"),
            ("bad address", reloadYAML(stable: stable, canary: 0, split: toCanary).replacingOccurrences(of: "127.0.0.1:0\"", with: "127.0.0.1:70000\""),
             "70000"),
        ]
    }

    @Test func invalidConfigsAreRejectedAndTrafficStaysOnTheOldTable() throws {
        let stable = try NamedUpstream("stable"), canary = try NamedUpstream("canary")
        defer { stable.stop(); canary.stop() }
        let proxy = try ControlledProxy(yaml: reloadYAML(stable: stable.port, canary: canary.port, split: "stable: 100, canary: 0"),
                                        adminToken: "t0ken", withAdmin: true)
        defer { proxy.stop() }
        let load = KeepAliveLoad(port: proxy.port, connections: 8) { m in
            consistentCohort(m) ?? (m.bodyText == "stable" ? nil : "routed to \(m.bodyText), not by the old table")
        }
        for (i, edit) in Self.invalidEdits(stable: stable.port, canary: canary.port).enumerated() {
            let (kind, yaml, message) = edit
            try proxy.writeConfig(yaml)
            // Through the controller (SIGHUP's path) ...
            do {
                _ = try proxy.controller.reloadFromFile(cause: "SIGHUP")
                Issue.record("\(kind): accepted")
            } catch {
                #expect(error.status == 422)
                if case .invalidConfig(let config, _) = error {
                    #expect(config.diagnostics.contains { $0.description.contains(message) }, "\(kind): \(config)")
                }
            }
            // ... and through POST /admin/reload.
            let response = try AdminClient.request("POST", "/admin/reload", to: proxy.admin!.boundAddress!, token: "t0ken")
            #expect(response.status == 422, "\(kind)")
            let body = try JSONDecoder().decode(ControlErrorBody.self, from: Data(response.body))
            #expect(body.diagnostics?.contains { $0.contains(message) } == true, "\(kind): \(body)")
            #expect(body.version == 1)
            let rejected = proxy.events.recent().filter { $0.kind == .reloadRejected }
            #expect(rejected.count == 2 * (i + 1), "\(kind)")
            #expect(rejected.last?.details["error"]?.contains(message) == true, "\(kind)")
            // A request is still routed by the old table: stable.
            let m = try proxy.request("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(m.bodyText == "stable", "\(kind)")
            #expect(proxy.server.table.version == 1)
        }
        #expect(load.stop())
        #expect(load.failures.isEmpty, "\(load.failures.prefix(5))")
        #expect(load.served > 0)
        #expect(canary.arrivals.get().isEmpty, "nothing ever reached the canary")
        // And a valid file is taken.
        try proxy.writeConfig(reloadYAML(stable: stable.port, canary: canary.port, split: "stable: 0, canary: 100"))
        #expect(try proxy.controller.reloadFromFile(cause: "fixed").version == 2)
        #expect(try proxy.request("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").bodyText == "canary")
    }

    @Test func replacedEndpointsDrainUnderLoad() throws {
        let stable = try NamedUpstream("stable"), old = try NamedUpstream("canary"), new = try NamedUpstream("canary")
        defer { stable.stop(); old.stop(); new.stop() }
        let proxy = try ControlledProxy(yaml: reloadYAML(stable: stable.port, canary: old.port, split: "stable: 50, canary: 50"))
        defer { proxy.stop() }
        let load = KeepAliveLoad(port: proxy.port, connections: 16, check: consistentCohort)
        usleep(300_000)
        try proxy.writeConfig(reloadYAML(stable: stable.port, canary: new.port, split: "stable: 50, canary: 50"))
        let result = try proxy.controller.reloadFromFile(cause: "endpoint replaced")
        let replied = ControlClock.monotonicNanos()
        #expect(result.changed == "upstreams: canary endpoints 127.0.0.1:\(old.port) → 127.0.0.1:\(new.port)")
        usleep(300_000)
        #expect(load.stop())
        #expect(load.failures.isEmpty, "\(load.failures.prefix(5))")
        let lastOld = old.arrivals.get().max() ?? 0
        #expect(lastOld < replied + 50_000_000, "the old endpoint got a request \(Double(lastOld - replied) / 1e6) ms after the reload")
        #expect(new.arrivals.get().count > 50, "the new endpoint took over")
        // Every pooled connection to the old endpoint is closed (idle ones at once, busy ones after their exchange).
        #expect(eventually(3) { old.server.connectionsEnded == old.server.connections }, "connections to the removed endpoint stay open")
        #expect(old.server.connections > 0)
    }
}
