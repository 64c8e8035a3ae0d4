import Foundation
@preconcurrency import Glibc
import Testing
import SluiceControl
import SluiceCore

/// Issue 19, "a rollback drill end to end", on the real `sluice` binary: a rollout at its second
/// step, `sluice fault web canary --abort 503 --percent 50 --for 3s`; the rollout rolls back
/// within `failure_limit` evaluations, the injected answers are counted, and the drill expires
/// by itself.
@Suite(.serialized)
struct FaultDrillTests {
    @Test func aFaultDrillMakesTheRolloutRollBackAndExpiresByItself() throws {
        let stable = try NamedUpstream("stable"), canary = try NamedUpstream("canary")
        defer { stable.stop(); canary.stop() }
        let sluice = try SluiceProcess(workers: 2) { port in
            RolloutEndToEndTests.yaml(stable: stable.port, canary: canary.port)
                .replacingOccurrences(of: "127.0.0.1:0", with: "127.0.0.1:\(port)")
                .replacingOccurrences(of: "step_duration: 2s", with: "step_duration: 3s")
        }
        defer { _ = sluice.stop() }
        let p = sluice.configPath
        let injected = "fault injected by sluice: 503\n"
        let load = KeepAliveLoad(port: sluice.port, connections: 4, pauseMicros: 5_000) { m in
            if m.status == 503 { return m.bodyText == injected ? nil : "503 not injected: \(m.bodyText)" }
            return consistentCohort(m)
        }
        func rollout() throws -> RolloutStatus {
            let r = try runSluiceCLI(["rollout", "status", "--config", p, "--json", "web"])
            return try JSONDecoder().decode(RolloutStatus.self, from: Data(r.out.utf8))
        }
        var r = try runSluiceCLI(["rollout", "start", "--config", p, "web"])
        #expect(r.status == 0, "\(r.err)")
        // The second step (25%).
        #expect(eventually(8) { (try? rollout())?.step == 2 }, "\((try? rollout())?.text() ?? "")")
        #expect(try rollout().state == "progressing")

        r = try runSluiceCLI(["fault", "--config", p, "web", "canary", "--abort", "503", "--percent", "50", "--for", "3s"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.hasPrefix("fault drill started: web/canary: abort 503 for 50% of requests, 3s left (until "), "\(r.out)")
        let started = ControlClock.monotonicNanos()
        r = try runSluiceCLI(["status", "--config", p])
        #expect(r.out.contains("fault drills in force:\n  web/canary: abort 503 for 50% of requests"), "\(r.out)")

        // Rolled back: failure_limit 2 at interval 500 ms, plus sampling (250 ms) and slack.
        var rolledBackAt: UInt64 = 0
        while ControlClock.monotonicNanos() < started + 3_000_000_000 {
            if (try? rollout())?.state == "rolled_back" {
                rolledBackAt = ControlClock.monotonicNanos()
                break
            }
            usleep(20_000)
        }
        try #require(rolledBackAt > 0, "not rolled back: \((try? rollout())?.text() ?? "")")
        let reaction = Double(rolledBackAt - started) / 1e9
        #expect(reaction < 2 * 0.5 + 1.0, "rolled back \(reaction) s after the drill started")
        let status = try rollout()
        #expect(status.splitCanaryWeight == "0%")
        #expect(status.lastDecision?.summary.contains("rolled back") == true, "\(status.text())")

        // The drill ends by itself after 3 s: listed no more, an `expired` event, counted as injected.
        #expect(eventually(4) { (try? runSluiceCLI(["fault", "list", "--config", p]))?.out == "no fault drills\n" })
        let expiredAt = Double(ControlClock.monotonicNanos() - started) / 1e9
        #expect(expiredAt >= 2.9, "expired after \(expiredAt) s")
        #expect(load.stop())
        #expect(load.failures.isEmpty, "\(load.failures.prefix(5))")
        let events = try JSONDecoder().decode([RoutingEvent].self, from: Data(
            try AdminClient.request("GET", "/admin/events", to: .v4(0x7f00_0001, port: sluice.adminPort), token: nil).body))
        let faultEvents = events.filter { $0.kind == .fault }
        #expect(faultEvents.map { $0.details["action"] ?? "" } == ["started", "expired"])
        #expect(faultEvents.first?.details["fault"] == "abort 503 for 50%")
        let metrics = sluice.metrics()
        let count = metrics["sluice_faults_injected_total{route=\"web\",cohort=\"canary\",kind=\"abort\"}"] ?? 0
        #expect(count >= 10, "\(metrics.filter { $0.key.contains("fault") })")
        // The injected answers are the canary's 503s in the request counter (count_in_gates: true).
        #expect(metrics["sluice_requests_total{route=\"web\",cohort=\"canary\",code=\"503\"}"] == count)
        print("fault drill: rollout at step 2 (25%), 50% of canary requests answered 503 from t=0; rolled back after "
              + "\(String(format: "%.2f", reaction)) s; drill expired after \(String(format: "%.2f", expiredAt)) s; "
              + "\(Int(count)) injected answers of \(load.served) requests")
    }
}
