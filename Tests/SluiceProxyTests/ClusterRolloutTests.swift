import Foundation
@preconcurrency import Glibc
import Testing
import SluiceControl
import SluiceCore

/// One rollout controller per route in the fleet: the leader (elected with an etcd lease)
/// decides on every replica's summed figures; when it dies another replica continues.
@Suite(.serialized)
struct ClusterRolloutTests {
    /// The route's `rollout:` (indented under the route).
    static func rollout(steps: String, stepDuration: String, interval: String, minRequests: Int, failureLimit: Int) -> String {
        """
            rollout:
              canary: canary
              steps: [\(steps)]
              step_duration: \(stepDuration)
              interval: \(interval)
              min_requests: \(minRequests)
              gates:
                - { metric: error_rate, max: 5% }
              failure_limit: \(failureLimit)
              on_failure: rollback
        """
    }

    /// The `rollout` events of a replica (causes).
    static func rolloutEvents(_ r: FleetReplica) -> [String] {
        guard let text = r.admin("GET", "/admin/events")?.body,
              let list = try? JSONSerialization.jsonObject(with: Data(text)) as? [[String: Any]] else { return [] }
        return list.filter { ($0["kind"] as? String) == "rollout" }.compactMap { $0["cause"] as? String }
    }

    /// The state of the route's rollout as a replica reports it.
    static func state(_ r: FleetReplica) -> String? {
        guard let resp = r.admin("GET", "/admin/routes/web/rollout"), resp.status == 200 else { return nil }
        return try? JSONDecoder().decode(RolloutStatus.self, from: Data(resp.body)).state
    }

    /// Replica 3's canary fails on every request; replicas 1 and 2 see a healthy canary. The
    /// leader (replica 1, whose own figures are clean) rolls back on the fleet's sums.
    @Test(.enabled(if: ClusterTests.etcdInstalled))
    func aCanaryFailingOnlyOnOneReplicasShareRollsBack() throws {
        let etcd = try EtcdServer()
        defer { etcd.destroy() }
        let stable = try NamedUpstream("stable"), canary = try NamedUpstream("canary")
        let broken = try TestUpstream { _ in .status(500, "canary broke") }
        defer { stable.stop(); canary.stop(); broken.stop() }
        let prefix = "/sluice/sum-\(getpid())"
        let rollout = Self.rollout(steps: "20, 50, 100", stepDuration: "4s", interval: "500ms", minRequests: 20, failureLimit: 2)
        func yaml(_ node: String, canaryPort: UInt16) -> (UInt16) -> String {
            fleetYAML(etcd: etcd.url, prefix: prefix, node: node, stable: stable.port, canary: canaryPort,
                      split: "stable: 100, canary: 0", rollout: rollout)
        }
        let r1 = try FleetReplica(node: "replica-1", yaml: yaml("replica-1", canaryPort: canary.port))
        defer { r1.stop() }
        #expect(eventually(5) { r1.cluster()?.rollouts["web"]?.leading == true }, "replica-1 did not take the lead")
        let r2 = try FleetReplica(node: "replica-2", yaml: yaml("replica-2", canaryPort: canary.port))
        let r3 = try FleetReplica(node: "replica-3", yaml: yaml("replica-3", canaryPort: broken.port))
        defer { r2.stop(); r3.stop() }
        #expect(eventually(3) { r3.cluster()?.rollouts["web"]?.leader == "replica-1" })
        #expect(r2.cluster()?.rollouts["web"]?.leading == false)
        #expect(r1.metric("sluice_cluster_leader{route=\"web\"}") == 1)
        #expect(r2.metric("sluice_cluster_leader{route=\"web\"}") == 0)
        let status = try runSluiceCLI(["status", "--admin", "127.0.0.1:\(r2.adminPort)"])
        #expect(status.out.contains("rollout leader of web: replica-1"), "\(status.out)")
        // Replica 3's routing file differs (another canary endpoint): it says so.
        #expect(eventually(3) { r3.metric("sluice_cluster_file_mismatch") == 1 || r1.metric("sluice_cluster_file_mismatch") == 1 })

        let loads = [r1, r2, r3].map { ReplicaLoad($0) }
        defer { for l in loads { l.stop() } }
        // Started on replica 2 (any replica takes commands); the leader evaluates.
        let start = r2.admin("POST", "/admin/routes/web/rollout/start", "")
        #expect(start?.status == 200, "\(start?.text ?? "no answer")")
        #expect(eventually(20) { Self.state(r1) == "rolled_back" }, "state \(Self.state(r1) ?? "?")")
        #expect(eventually(3) { Self.state(r2) == "rolled_back" && Self.state(r3) == "rolled_back" })
        for r in [r1, r2, r3] { #expect(r.bodies(10).allSatisfy { $0 == "stable" }, "\(r.node)") }
        // Replicas 1 and 2 never got a failing canary answer; only replica 3 did.
        #expect(!loads[0].records.get().contains { $0.body == "canary broke" })
        #expect(!loads[1].records.get().contains { $0.body == "canary broke" })
        #expect(loads[2].records.get().contains { $0.body == "canary broke" })
        // The leader decided (its events have the breach with the fleet's numbers); followers only followed.
        let leaderEvents = Self.rolloutEvents(r1)
        #expect(leaderEvents.contains { $0.contains("rolled back") }, "\(leaderEvents)")
        // The fleet's events: followers record the leader's decision, naming it.
        #expect(eventually(2) { Self.rolloutEvents(r2).contains { $0.contains("rolled back") && $0.hasSuffix("(by replica-1)") } },
                "\(Self.rolloutEvents(r2))")
    }

    /// The leader is killed mid-step; another replica takes over within the lease TTL plus a
    /// heartbeat and finishes the rollout: every step once, in order, the step's time kept.
    @Test(.enabled(if: ClusterTests.etcdInstalled))
    func theLeaderKilledMidStepAnotherReplicaFinishesTheRollout() throws {
        let etcd = try EtcdServer()
        defer { etcd.destroy() }
        let stable = try NamedUpstream("stable"), canary = try NamedUpstream("canary")
        defer { stable.stop(); canary.stop() }
        let prefix = "/sluice/failover-\(getpid())"
        let rollout = Self.rollout(steps: "10, 30, 60, 100", stepDuration: "2s", interval: "250ms", minRequests: 5, failureLimit: 2)
        func yaml(_ node: String) -> (UInt16) -> String {
            fleetYAML(etcd: etcd.url, prefix: prefix, node: node, stable: stable.port, canary: canary.port,
                      split: "stable: 100, canary: 0", rollout: rollout, leaseTTL: "2s")
        }
        let r1 = try FleetReplica(node: "replica-1", yaml: yaml("replica-1"))
        defer { r1.stop() }
        #expect(eventually(5) { r1.cluster()?.rollouts["web"]?.leading == true })
        let r2 = try FleetReplica(node: "replica-2", yaml: yaml("replica-2"))
        let r3 = try FleetReplica(node: "replica-3", yaml: yaml("replica-3"))
        defer { r2.stop(); r3.stop() }
        let l1 = ReplicaLoad(r1)
        let others = [r2, r3].map { ReplicaLoad($0) }
        defer { for l in others { l.stop() } }

        // When each canary share first served, seen from replica 2 (polled every 20 ms).
        let seen = LockedBox<[(weight: Int, at: UInt64)]>([])
        let watching = LockedBox(true)
        let poller = Thread {
            while watching.get() {
                if let w = r2.history()?.overrides["web"]?.weights.first(where: { $0.cohort == "canary" })?.weight,
                   seen.get().last?.weight != w {
                    seen.update { $0.append((w, ControlClock.monotonicNanos())) }
                }
                usleep(20_000)
            }
        }
        poller.start()
        defer { watching.set(false) }

        #expect(r1.admin("POST", "/admin/routes/web/rollout/start", "")?.status == 200)
        #expect(eventually(10) { seen.get().last?.weight == 3000 }, "\(seen.get())")
        let reached30 = seen.get().last!.at
        usleep(500_000)  // mid-step
        l1.stop()
        let killed = ControlClock.monotonicNanos()
        r1.kill9()
        var newLeader: FleetReplica?
        #expect(eventually(10) {
            newLeader = [r2, r3].first { $0.cluster()?.rollouts["web"]?.leading == true }
            return newLeader != nil
        })
        let failover = Double(ControlClock.monotonicNanos() - killed) / 1e9
        print("cluster: rollout leader failover after SIGKILL: \(String(format: "%.2f", failover)) s (lease_ttl 2s, heartbeat 667 ms); "
              + "new leader \(newLeader?.node ?? "none")")
        #expect(failover < 2 + 0.667 + 1.5, "failover took \(failover) s")
        #expect(eventually(15) { Self.state(r2) == "promoted" }, "state \(Self.state(r2) ?? "?")")
        #expect(eventually(2) { seen.get().last?.weight == 10000 })
        watching.set(false)
        let weights = seen.get().map(\.weight)
        // Every step once, in order: no step repeated or skipped across the takeover.
        #expect(weights == [1000, 3000, 6000, 10000], "\(weights)")
        // The 30% step's time was kept: it ended about when the new leader's first evaluation
        // came, not a whole step after the takeover.
        let ended = seen.get().first { $0.weight == 6000 }!.at
        let stepSeconds = Double(ended - reached30) / 1e9
        let takeover = Double(killed - reached30) / 1e9 + failover
        #expect(stepSeconds >= 2, "step 2 lasted \(stepSeconds) s")
        #expect(stepSeconds < takeover + 1.5, "step 2 lasted \(stepSeconds) s; takeover after \(takeover) s")
        #expect(eventually(3) { Self.state(r3) == "promoted" }, "state \(Self.state(r3) ?? "?")")
        #expect(r3.bodies(10).allSatisfy { $0 == "canary" })
    }
}
