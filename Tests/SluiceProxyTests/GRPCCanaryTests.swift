import Foundation
@preconcurrency import Glibc
import Testing
import SluiceControl
import SluiceCore

/// gRPC canaries through Sluice (issue 21): Python gRPC servers (stable and canary) behind a route
/// whose upstreams speak HTTP/2 (`protocol: h2c`), a gRPC client in front speaking h2c to Sluice.
@Suite(.serialized)
struct GRPCCanaryTests {
    static func yaml(stable: UInt16, canary: UInt16, split: String, rollout: Bool) -> String {
        """
        listeners:
          - { name: grpc, address: "127.0.0.1:0", http2: true }
        state_file: off
        upstreams:
          stable: { endpoints: ["127.0.0.1:\(stable)"], protocol: h2c }
          canary: { endpoints: ["127.0.0.1:\(canary)"], protocol: h2c }
        routes:
          - name: echo
            baseline: stable
            sticky: none
            split: { \(split) }
        \(rollout ? """
                rollout:
                  canary: canary
                  steps: [10, 50, 100]
                  step_duration: 3s
                  interval: 500ms
                  min_requests: 10
                  gates:
                    - { metric: error_rate, max: 5% }
                  failure_limit: 2
                  on_failure: rollback
            """ : "")
        """
    }

    static func value(_ text: String, _ series: String) -> Double {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.split(separator: " ").last!) ?? -1
        }
        return 0
    }

    /// Unary and server-streaming calls split 90/10 between two gRPC servers; every call answered
    /// by the cohort it was routed to, with its trailers (grpc-status, x-served-by) relayed.
    @Test func unaryAndStreamingCallsSplitNinetyTen() throws {
        try #require(GRPCSupport.available, "grpcio is needed (.ci/run installs it)")
        let stable = try GRPCTestServer(name: "stable", logCalls: false)
        let canary = try GRPCTestServer(name: "canary", logCalls: false)
        defer { stable.stop(); canary.stop() }
        let proxy = try RolloutProxy(yaml: Self.yaml(stable: stable.port, canary: canary.port, split: "stable: 90, canary: 10",
                                                     rollout: false))
        defer { proxy.stop() }
        let unary = try runGRPCClient(target: "127.0.0.1:\(proxy.port)", method: "unary", calls: 400, channels: 4, concurrency: 8)
        let stream = try runGRPCClient(target: "127.0.0.1:\(proxy.port)", method: "stream", calls: 200, messages: 5,
                                       channels: 2, concurrency: 4)
        #expect(unary.ok == 400, "\(unary.byNameCode) \(unary.stderr.prefix(500))")
        #expect(stream.ok == 200, "\(stream.byNameCode)")
        for r in [unary, stream] {
            let c = Double(r.byName["canary"] ?? 0) / Double(r.total)
            #expect(c > 0.04 && c < 0.18, "canary share \(c): \(r.byName)")
            // The trailer each server sets came through, and matches who answered.
            #expect(r.calls.allSatisfy { ($0["served_by"] as? String) == ($0["name"] as? String) }, "\(r.calls.prefix(3))")
        }
        #expect(stream.calls.allSatisfy { ($0["messages"] as? Int) == 5 })
        let text = proxy.hub.renderMetrics(table: proxy.controller.table)
        let s = Self.value(text, "sluice_requests_total{route=\"echo\",cohort=\"stable\",code=\"200\"}")
        let c = Self.value(text, "sluice_requests_total{route=\"echo\",cohort=\"canary\",code=\"200\"}")
        #expect(s + c == 600, "every call counted once: stable \(s) canary \(c)")
        #expect(Double(unary.byName["canary"] ?? 0) + Double(stream.byName["canary"] ?? 0) == c)
    }

    /// gRPC metadata are request headers: a rule sends calls with `x-canary: yes` to the canary,
    /// and a sticky key from `x-user` keeps each user's calls on one cohort.
    @Test func metadataRulesAndStickyKeysSplitCalls() throws {
        try #require(GRPCSupport.available, "grpcio is needed (.ci/run installs it)")
        let stable = try GRPCTestServer(name: "stable", logCalls: false)
        let canary = try GRPCTestServer(name: "canary", logCalls: false)
        defer { stable.stop(); canary.stop() }
        let yaml = """
            listeners:
              - { name: grpc, address: "127.0.0.1:0", http2: true }
            state_file: off
            upstreams:
              stable: { endpoints: ["127.0.0.1:\(stable.port)"], protocol: h2c }
              canary: { endpoints: ["127.0.0.1:\(canary.port)"], protocol: h2c }
            routes:
              - name: echo
                baseline: stable
                sticky: { header: x-user }
                split: { stable: 50, canary: 50 }
                rules:
                  - { match: { header: { name: x-canary, value: "yes" } }, cohort: canary }
            """
        let proxy = try RolloutProxy(yaml: yaml)
        defer { proxy.stop() }
        let target = "127.0.0.1:\(proxy.port)"
        let forced = try runGRPCClient(target: target, calls: 30, metadata: ["x-canary": "yes", "x-user": "u1"], concurrency: 4)
        #expect(forced.byName == ["canary": 30], "\(forced.byNameCode)")
        var seen: [String: Int] = [:]
        for user in 0..<12 {
            let r = try runGRPCClient(target: target, calls: 6, metadata: ["x-user": "user-\(user)"], concurrency: 3)
            #expect(r.ok == 6 && r.byName.count == 1, "user-\(user) flipped between cohorts: \(r.byNameCode)")
            if let name = r.byName.keys.first { seen[name, default: 0] += 1 }
        }
        #expect(seen.count == 2, "12 users over a 50/50 split reach both cohorts: \(seen)")
    }

    /// A canary answering every call UNAVAILABLE (HTTP 200, grpc-status 14) is counted as failing
    /// (503 in `sluice_requests_total`), and the automated rollout rolls it back.
    @Test func anUnavailableCanaryIsCountedAsErrorsAndRolledBack() throws {
        try #require(GRPCSupport.available, "grpcio is needed (.ci/run installs it)")
        let stable = try GRPCTestServer(name: "stable", logCalls: false)
        let canary = try GRPCTestServer(name: "canary", fail: true, logCalls: false)
        defer { stable.stop(); canary.stop() }
        let proxy = try RolloutProxy(yaml: Self.yaml(stable: stable.port, canary: canary.port, split: "stable: 100, canary: 0",
                                                     rollout: true))
        defer { proxy.stop() }
        let start = try proxy.call("POST", "/admin/routes/echo/rollout/start")
        #expect(start.status == 200, "\(start.text)")
        var rolledBack = false
        var canaryFailures = 0
        var calls = 0
        let deadline = ControlClock.monotonicNanos() + 20_000_000_000
        while ControlClock.monotonicNanos() < deadline && !rolledBack {
            let r = try runGRPCClient(target: "127.0.0.1:\(proxy.port)", method: "unary", calls: 40, concurrency: 4)
            calls += r.total
            canaryFailures += r.byNameCode["canary"]?["UNAVAILABLE"] ?? 0
            #expect((r.byNameCode["stable"]?["OK"] ?? 0) + (r.byNameCode["canary"]?["UNAVAILABLE"] ?? 0) == r.total, "\(r.byNameCode)")
            rolledBack = proxy.rollouts.machine(route: "echo")!.state == .rolledBack
        }
        #expect(rolledBack, "\(proxy.rollouts.status(route: "echo")?.text() ?? "")")
        #expect(proxy.controller.table.routes[0].cohorts.first(where: { $0.name == "canary" })?.weight == 0)
        #expect(canaryFailures > 0)
        let text = proxy.hub.renderMetrics(table: proxy.controller.table)
        let canary503 = Self.value(text, "sluice_requests_total{route=\"echo\",cohort=\"canary\",code=\"503\"}")
        let canary200 = Self.value(text, "sluice_requests_total{route=\"echo\",cohort=\"canary\",code=\"200\"}")
        #expect(canary503 == Double(canaryFailures), "each UNAVAILABLE is a canary 503 in the metrics")
        #expect(canary200 == 0)
        print("grpc rollback: \(calls) calls, \(canaryFailures) UNAVAILABLE from the canary, rolled back: \(rolledBack)")
    }
}
