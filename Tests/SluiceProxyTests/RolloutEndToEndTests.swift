import Foundation
@preconcurrency import Glibc
import Testing
import SluiceControl
import SluiceCore
import SluiceProxy

/// What `sluice run` wires for a rollout, in process: the real proxy (2 workers), the routing
/// controller over a config file, a metrics hub sampling every 250 ms, the rollout controller
/// on its own thread and the admin API.
final class RolloutProxy: Sendable {
    let dir: String
    let server: ProxyServer
    let controller: RoutingController
    let rollouts: RolloutController
    let events: EventLog
    let hub: MetricsHub
    let admin: AdminServer
    let port: UInt16
    static let token = "r0llout"

    init(yaml: String) throws {
        var template = Array("/tmp/sluice-rollout-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { throw TestError("mkdtemp") }
        dir = String(cString: made)
        let path = dir + "/sluice.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let config = try ConfigLoader.load(path: path)
        events = EventLog()
        controller = try RoutingController(config: config, events: events, cause: "test start")
        hub = MetricsHub(workers: 2, listenerNames: config.listeners.map(\.name), buildVersion: "test",
                         sampleInterval: 250_000_000)
        let hub = self.hub
        server = ProxyServer(settings: ProxySettings(workers: 2, listeners: config.listeners, timeouts: config.timeouts,
                                                     limits: config.limits),
                             table: controller.table, shards: hub.shards, seriesMap: { hub.seriesMap(for: $0) })
        controller.attach(server)
        let controller = self.controller
        admin = try AdminServer(address: .v4(0x7f00_0001, port: 0), token: Self.token, hub: hub, events: events,
                                table: { controller.table })
        controller.registerAdminEndpoints(on: admin, hub: hub)
        try server.start()
        try hub.startSampler()
        rollouts = RolloutController(routing: controller, hub: hub)
        rollouts.registerAdminEndpoints(on: admin)
        try rollouts.start()
        try admin.start()
        port = server.boundAddresses[0].port
    }

    func stop() {
        rollouts.stop()
        admin.stop()
        server.shutdown(drainTimeout: 2_000_000_000)
        hub.stopSampler()
        try? FileManager.default.removeItem(atPath: dir)
    }

    func call(_ method: String, _ path: String) throws -> AdminClientResponse {
        try AdminClient.request(method, path, to: admin.boundAddress!, token: Self.token)
    }

    /// The canary's share in the serving split, in percent.
    var canaryPercent: Double {
        let t = controller.table
        let r = t.routes[t.routeIndex(named: "web")!]
        return Double(r.cohorts.first { $0.name == "canary" }!.weight) / 100
    }
}

/// A canary upstream that answers 200 until `fail` is set, then 500 to every other request,
/// recording when each request arrived and what it answered.
final class FlakyCanary: Sendable {
    let server: TestUpstream
    /// (arrival time, answered 500) of every request.
    let arrivals = LockedBox<[(time: UInt64, failed: Bool)]>([])
    /// When it began failing (0: not yet).
    let failingSince = LockedBox<UInt64>(0)

    init() throws {
        let arrivals = self.arrivals, failingSince = self.failingSince
        server = try TestUpstream { _ in
            let now = ControlClock.monotonicNanos()
            var failed = false
            arrivals.update { list in
                let since = failingSince.get()
                // Every other request after the failure began (50%), deterministically.
                failed = since > 0 && now >= since && list.count { $0.time >= since } % 2 == 0
                list.append((now, failed))
            }
            return failed ? .status(500, "canary broke") : .ok("canary", headers: ["X-Seen-Cohort: canary"])
        }
    }

    func startFailing() { failingSince.set(ControlClock.monotonicNanos()) }
    var port: UInt16 { server.port }
    func stop() { server.stop() }
}

@Suite(.serialized)
struct RolloutEndToEndTests {
    /// `web` from stable to canary in steps 10, 25, 50, 100% of 2 s each, evaluated every
    /// 500 ms, at least 20 canary requests per step window, three gates, rollback after 2 failures.
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
            split: { stable: 100, canary: 0 }
            rollout:
              canary: canary
              steps: [10, 25, 50, 100]
              step_duration: 2s
              interval: 500ms
              min_requests: 20
              gates:
                - { metric: error_rate, max: 5% }
                - { metric: error_rate, relative_to_baseline: { max_increase: 5% } }
                - { metric: p99_latency, max: 2s }
              failure_limit: 2
              on_failure: rollback
        """
    }

    @Test func healthyCanaryIsPromotedTwiceThenRolledBackWhenItStartsFailing() throws {
        let stable = try NamedUpstream("stable"), canary = try FlakyCanary()
        defer { stable.stop(); canary.stop() }
        let proxy = try RolloutProxy(yaml: Self.yaml(stable: stable.port, canary: canary.port))
        defer { proxy.stop() }
        // Bounded load: 4 keep-alive connections, 10 ms between a response and the next request.
        let load = KeepAliveLoad(port: proxy.port, connections: 4, pauseMicros: 10_000) { m in
            if m.status == 500 { return m.bodyText == "canary broke" ? nil : "500 from \(m.bodyText)" }
            return consistentCohort(m)
        }
        usleep(300_000)
        let start = try proxy.call("POST", "/admin/routes/web/rollout/start")
        #expect(start.status == 200, "\(start.text)")
        let started = ControlClock.monotonicNanos()
        #expect(proxy.canaryPercent == 10)

        // Watch the steps: 10% → 25% → 50%, each after its 2 s.
        var stepSeen: [Int: UInt64] = [0: started]
        let deadline = started + 9_000_000_000
        while ControlClock.monotonicNanos() < deadline {
            let state = proxy.rollouts.machine(route: "web")!.state
            if case .progressing(let s) = state, stepSeen[s] == nil { stepSeen[s] = ControlClock.monotonicNanos() }
            if state == .progressing(step: 2) || state.step == nil { break }
            usleep(5_000)
        }
        try #require(proxy.rollouts.machine(route: "web")!.state == .progressing(step: 2),
                     "promoted twice: \(proxy.rollouts.status(route: "web")?.text() ?? "")")
        #expect(proxy.canaryPercent == 50)
        let first = Double(stepSeen[1]! - started) / 1e9, second = Double(stepSeen[2]! - stepSeen[1]!) / 1e9
        #expect(first >= 1.95 && second >= 1.95, "a step lasts at least step_duration: \(first) s, \(second) s")

        // The canary breaks: half of its answers are 500s from now on.
        canary.startFailing()
        let broke = canary.failingSince.get()
        var rolledBackAt: UInt64 = 0
        while ControlClock.monotonicNanos() < broke + 6_000_000_000 {
            if proxy.rollouts.machine(route: "web")!.state == .rolledBack {
                rolledBackAt = ControlClock.monotonicNanos()
                break
            }
            usleep(2_000)
        }
        try #require(rolledBackAt > 0, "not rolled back: \(proxy.rollouts.status(route: "web")?.text() ?? "")")
        #expect(proxy.canaryPercent == 0)
        #expect(proxy.controller.overrides["web"]?.kind == .abort)
        usleep(300_000)
        #expect(load.stop())
        #expect(load.failures.isEmpty, "\(load.failures.prefix(5))")

        // Rolled back at the second failed evaluation (failure_limit 2), with the numbers.
        let rolloutEvents = proxy.events.recent().filter { $0.kind == .rollout }
        let breaches = rolloutEvents.filter { $0.cause.contains("(failure 1 of 2): holding step 3 (50%)") }
        #expect(breaches.count == 1, "\(rolloutEvents.map(\.cause))")
        let rollback = try #require(rolloutEvents.last)
        #expect(rollback.cause.contains("for 2 evaluations: rolled back from step 3 (50%) to 0%"), "\(rollback.cause)")
        #expect(rollback.cause.hasPrefix("error_rate canary "), "\(rollback.cause)")
        #expect(rollback.details["split"] == "stable=100% canary=0%")
        let reaction = Double(rolledBackAt - broke) / 1e9
        #expect(reaction < 2 * 0.5 + 1.0, "rolled back \(reaction) s after the canary broke (2 intervals of 500 ms + sampling)")

        // What reached the failing canary, and that nothing did after the rollback.
        let arrivals = canary.arrivals.get()
        let afterBreak = arrivals.filter { $0.time >= broke }
        let failedAnswers = afterBreak.count { $0.failed }
        let late = arrivals.filter { $0.time > rolledBackAt + 50_000_000 }.count
        #expect(late == 0, "\(late) requests reached the canary more than 50 ms after the rollback")
        let status = try proxy.call("GET", "/admin/routes/web/rollout")
        let decoded = try JSONDecoder().decode(RolloutStatus.self, from: Data(status.body))
        #expect(decoded.state == "rolled_back" && decoded.splitCanaryWeight == "0%")
        print("rollout end to end: promoted 10% → 25% after \(String(format: "%.2f", first)) s, → 50% after "
              + "\(String(format: "%.2f", second)) s; the canary broke (50% 500s) and was rolled back "
              + "\(String(format: "%.2f", reaction)) s later; \(afterBreak.count) client requests reached the failing canary "
              + "(\(failedAnswers) answered 500) out of \(load.served) requests in total\n\(decoded.text())")
    }
}
