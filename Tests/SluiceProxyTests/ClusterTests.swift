import Foundation
@preconcurrency import Glibc
import Testing
import SluiceControl
import SluiceCore

/// Several real `sluice run` processes sharing one routing state through a real etcd started
/// by the test (skipped, with the reason printed, only when the etcd binary is not installed;
/// `.ci/run` installs it).
@Suite(.serialized)
struct ClusterTests {
    static let etcdInstalled: Bool = {
        if EtcdServer.binary == nil { print("ClusterTests skipped: the etcd binary is not installed (apt-get install etcd-server)") }
        return EtcdServer.binary != nil
    }()

    /// The etcd client against a real etcd: put/range by key and prefix, a transaction's
    /// comparison holding and failing, leases (keys bound to one go with it), a watch seeing
    /// puts and deletes in order, and a dead first endpoint skipped for the next.
    @Test(.enabled(if: ClusterTests.etcdInstalled))
    func theEtcdClientSpeaksTheV3Gateway() throws {
        let etcd = try EtcdServer()
        defer { etcd.destroy() }
        let dead = "http://127.0.0.1:\(try TestSocket.refusedPort())"
        let client = EtcdClient(endpoints: [try EtcdClient.Endpoint.parse(dead).get(), try EtcdClient.Endpoint.parse(etcd.url).get()])
        let r1 = try client.put("/t/a", Array("one".utf8))
        try client.put("/t/b", Array("two".utf8))
        try client.put("/u/c", Array("x".utf8))
        let (kvs, revision) = try client.range("/t/", prefix: true)
        #expect(kvs.map(\.key) == ["/t/a", "/t/b"])
        #expect(kvs.map { String(decoding: $0.value, as: UTF8.self) } == ["one", "two"])
        #expect(kvs[0].modRevision == r1)
        #expect(revision > r1)
        // A transaction conditioned on /t/a's revision: succeeds once, then fails with the current value.
        var t = try client.txn([.modRevision("/t/a", r1)], success: [.put("/t/a", Array("uno".utf8), lease: 0)], failure: [.get("/t/a")])
        #expect(t.succeeded)
        t = try client.txn([.modRevision("/t/a", r1)], success: [.put("/t/a", Array("ein".utf8), lease: 0)], failure: [.get("/t/a")])
        #expect(!t.succeeded)
        #expect(t.reads.first?.first.map { String(decoding: $0.value, as: UTF8.self) } == "uno")
        // Create-if-absent, as the leader election does.
        t = try client.txn([.createRevision("/t/new", 0)], success: [.put("/t/new", [1], lease: 0)], failure: [.get("/t/new")])
        #expect(t.succeeded)
        t = try client.txn([.createRevision("/t/new", 0)], success: [.put("/t/new", [2], lease: 0)], failure: [.get("/t/new")])
        #expect(!t.succeeded && t.reads.first?.first?.value == [1])
        // Leases: a key bound to one goes when it is revoked; keep-alive on a dead lease answers 0.
        let lease = try client.grantLease(ttlSeconds: 5)
        #expect(try client.keepAlive(lease: lease) > 0)
        try client.put("/t/leased", [7], lease: lease)
        #expect(try client.range("/t/leased").kvs.first?.lease == lease)
        try client.revoke(lease: lease)
        #expect(try client.range("/t/leased").kvs.isEmpty)
        #expect(try client.keepAlive(lease: lease) == 0)
        // A watch from a revision sees what came after it, in order, then stops when cancelled.
        let start = try client.range("/w/").revision + 1
        try client.put("/w/1", [1])
        try client.delete("/w/1")
        let seen = LockedBox<[String]>([])
        let stop = LockedBox(false)
        let watcher = Thread {
            try? client.watch("/w/", prefix: true, from: start, cancelled: { stop.get() }) { events in
                seen.update { $0 += events.map { "\($0.deleted ? "delete" : "put") \($0.kv.key)" } }
            }
            seen.update { $0.append("returned") }
        }
        watcher.start()
        #expect(eventually(3) { seen.get().count == 2 })
        try client.put("/w/2", [2])
        #expect(eventually(3) { seen.get() == ["put /w/1", "delete /w/1", "put /w/2"] }, "\(seen.get())")
        stop.set(true)
        #expect(eventually(2) { seen.get().last == "returned" })
        // Nothing answers: a clear error.
        let nobody = EtcdClient(endpoints: [try EtcdClient.Endpoint.parse(dead).get()], timeoutMillis: 500)
        #expect(throws: EtcdClient.Failure.self) { _ = try nobody.range("/t/a") }
        #expect(EtcdClient.Endpoint.parse("https://x:1").failure?.message.contains("TLS") == true)
    }

    /// etcd's own authentication: with the user's password the client works (a token fetched
    /// first), with a wrong one or outside the user's prefix it gets etcd's refusal.
    @Test(.enabled(if: ClusterTests.etcdInstalled && FileManager.default.isExecutableFile(atPath: "/usr/bin/etcdctl")))
    func theEtcdClientAuthenticates() throws {
        let etcd = try EtcdServer()
        defer { etcd.destroy() }
        func etcdctl(_ args: [String]) throws -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/etcdctl")
            p.arguments = ["--endpoints=\(etcd.url)"] + args
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            return p.terminationStatus
        }
        for args in [["user", "add", "root:rootpw"], ["user", "grant-role", "root", "root"], ["user", "add", "sluice:pw1"],
                     ["role", "add", "sluice"], ["role", "grant-permission", "sluice", "--prefix=true", "readwrite", "/fleet/"],
                     ["user", "grant-role", "sluice", "sluice"], ["auth", "enable"]] {
            #expect(try etcdctl(args) == 0, "etcdctl \(args)")
        }
        let endpoint = try EtcdClient.Endpoint.parse(etcd.url).get()
        let good = EtcdClient(endpoints: [endpoint], credentials: ("sluice", "pw1"))
        try good.put("/fleet/k", Array("v".utf8))
        #expect(try good.range("/fleet/k").kvs.first?.value == Array("v".utf8))
        do {
            try good.put("/other/k", [1])
            Issue.record("a write outside the user's prefix was accepted")
        } catch {
            #expect("\(error)".contains("permission denied"), "\(error)")
        }
        let bad = EtcdClient(endpoints: [endpoint], credentials: ("sluice", "wrong"))
        do {
            _ = try bad.range("/fleet/k")
            Issue.record("a wrong password was accepted")
        } catch {
            #expect("\(error)".contains("authentication failed"), "\(error)")
        }
        let anonymous = EtcdClient(endpoints: [endpoint])
        #expect(throws: EtcdClient.Failure.self) { _ = try anonymous.range("/fleet/k") }
    }

    /// A split, a switch, a rollback and 20 aborts sent to one replica reach the other two
    /// (under light load: every replica is answering requests all along); the abort's delay is
    /// measured on the traffic. A change decided on an old version is refused as stale; a
    /// replica started later joins with the fleet's state.
    @Test(.enabled(if: ClusterTests.etcdInstalled))
    func changesSentToOneReplicaReachEveryReplica() throws {
        let etcd = try EtcdServer()
        defer { etcd.destroy() }
        let stable = try NamedUpstream("stable"), canary = try NamedUpstream("canary")
        defer { stable.stop(); canary.stop() }
        let prefix = "/sluice/test-\(getpid())"
        func yaml(_ node: String) -> (UInt16) -> String {
            fleetYAML(etcd: etcd.url, prefix: prefix, node: node, stable: stable.port, canary: canary.port,
                      split: "stable: 50, canary: 50")
        }
        let replicas = try (1...3).map { try FleetReplica(node: "replica-\($0)", yaml: yaml("replica-\($0)")) }
        defer { for r in replicas { r.stop() } }
        let (r1, r2, r3) = (replicas[0], replicas[1], replicas[2])
        #expect(eventually(5) { replicas.allSatisfy { $0.cluster()?.members.count == 3 } }, "\(String(describing: r1.cluster()))")

        // A split sent to replica 1: replicas 2 and 3 serve it, under the same version, naming replica-1.
        var r = r1.admin("POST", "/admin/routes/web/split", #"{"weights": {"stable": 80, "canary": 20}, "cause": "test split"}"#)
        #expect(r?.status == 200, "\(r?.text ?? "no answer")")
        func converged(_ summary: String) -> Bool {
            replicas.allSatisfy { $0.history()?.overrides["web"]?.summary == summary }
        }
        #expect(eventually(3) { converged("split stable=80% canary=20%") })
        let h2 = try #require(r2.history())
        #expect(h2.currentVersion == r1.history()?.currentVersion)
        #expect(h2.versions.last?.node == "replica-1")
        #expect(h2.versions.last?.cause == "test split")

        // A switch: replicas 2 and 3 send everything to the canary.
        r = r1.admin("POST", "/admin/routes/web/switch", #"{"cohort": "canary"}"#)
        #expect(r?.status == 200, "\(r?.text ?? "no answer")")
        #expect(eventually(3) { r2.bodies(5) == Array(repeating: "canary", count: 5) && r3.bodies(5) == Array(repeating: "canary", count: 5) })

        // A rollback on replica 1 brings the split of the version before back everywhere.
        r = r1.admin("POST", "/admin/rollback", "")
        #expect(r?.status == 200, "\(r?.text ?? "no answer")")
        #expect(eventually(3) { converged("split stable=80% canary=20%") })
        #expect(r3.history()?.versions.last?.kind == .rollback)

        // A change decided on an old version, sent to replica 3, is refused as stale (CLI exit 1).
        let current = try #require(r3.history()?.currentVersion)
        let cli = try runSluiceCLI(["split", "--admin", "127.0.0.1:\(r3.adminPort)", "--if-version", "\(current - 1)", "web",
                                    "stable=60", "canary=40"])
        #expect(cli.status == 1)
        #expect(cli.err.contains("stale change refused"), "\(cli.err)")
        #expect(converged("split stable=80% canary=20%"))

        // 20 aborts under light load, each sent to another replica; the delay is measured on each
        // replica's traffic: from the admin call to the first response after its last canary one.
        let loads = replicas.map { ReplicaLoad($0) }
        defer { for l in loads { l.stop() } }
        var delays: [UInt64] = [], replies: [UInt64] = []
        for i in 0..<20 {
            let setter = replicas[i % 3], aborter = replicas[(i + 1) % 3]
            let tSplit = ControlClock.monotonicNanos()
            r = setter.admin("POST", "/admin/routes/web/split", #"{"weights": {"stable": 50, "canary": 50}}"#)
            #expect(r?.status == 200, "\(r?.text ?? "no answer")")
            #expect(eventually(5) { loads.allSatisfy { $0.saw("canary", after: tSplit) } }, "abort \(i): canary traffic did not resume")
            let t0 = ControlClock.monotonicNanos()
            r = aborter.admin("POST", "/admin/routes/web/abort", #"{"cause": "propagation test"}"#)
            replies.append(ControlClock.monotonicNanos() - t0)
            #expect(r?.status == 200, "\(r?.text ?? "no answer")")
            // Settled: every replica answered 10 stable responses in a row after the abort.
            #expect(eventually(5) {
                loads.allSatisfy { l in
                    let tail = l.records.get().filter { $0.sent >= t0 }.suffix(10)
                    return tail.count == 10 && tail.allSatisfy { $0.body == "stable" }
                }
            }, "abort \(i) did not stop the canary everywhere")
            delays.append(loads.compactMap { $0.delay(ending: "canary", at: t0) }.max() ?? 0)
        }
        let sorted = delays.sorted()
        let p50 = Double(sorted[sorted.count / 2]) / 1e6, max = Double(sorted.last!) / 1e6
        let replyP50 = Double(replies.sorted()[replies.count / 2]) / 1e6
        print("cluster: abort propagation to 3 replicas under load over \(delays.count) aborts: "
              + "p50 \(String(format: "%.1f", p50)) ms, max \(String(format: "%.1f", max)) ms "
              + "(the abort's admin call itself, etcd commit included: p50 \(String(format: "%.1f", replyP50)) ms)")
        // The issue's target: canary traffic stops on every replica within 1 s.
        #expect(max < 1000, "abort propagation max \(max) ms")

        // A replica started later joins with the fleet's state (the abort in force).
        let r4 = try FleetReplica(node: "replica-4", yaml: yaml("replica-4"))
        defer { r4.stop() }
        #expect(r4.history()?.overrides["web"]?.kind == .abort)
        #expect(r4.bodies(10).allSatisfy { $0 == "stable" })
        #expect(r4.history()?.currentVersion == r1.history()?.currentVersion)
        #expect(eventually(3) { r1.cluster()?.members.count == 4 })
    }

    /// etcd stopped: every replica keeps serving its table, changes are refused with the reason,
    /// status and metrics say so; `abort --local` aborts on one replica; when etcd is back the
    /// local abort is shared with the others.
    @Test(.enabled(if: ClusterTests.etcdInstalled))
    func etcdDownKeepsServingRefusesChangesAndReconciles() throws {
        let etcd = try EtcdServer()
        defer { etcd.destroy() }
        let stable = try NamedUpstream("stable"), canary = try NamedUpstream("canary")
        defer { stable.stop(); canary.stop() }
        let prefix = "/sluice/down-\(getpid())"
        func yaml(_ node: String) -> (UInt16) -> String {
            fleetYAML(etcd: etcd.url, prefix: prefix, node: node, stable: stable.port, canary: canary.port,
                      split: "stable: 50, canary: 50")
        }
        let a = try FleetReplica(node: "a", yaml: yaml("a")), b = try FleetReplica(node: "b", yaml: yaml("b"))
        defer { a.stop(); b.stop() }
        #expect(a.admin("POST", "/admin/routes/web/split", #"{"weights": {"stable": 40, "canary": 60}}"#)?.status == 200)
        #expect(eventually(3) { b.history()?.overrides["web"]?.summary == "split stable=40% canary=60%" })
        #expect(a.metric("sluice_cluster_connected") == 1)

        etcd.stop()
        // Serving continues on both, with both cohorts.
        #expect(Set(a.bodies(30)) == ["stable", "canary"])
        #expect(Set(b.bodies(30)) == ["stable", "canary"])
        // A change is refused, saying why (CLI exit 1).
        var cli = try runSluiceCLI(["abort", "--admin", "127.0.0.1:\(a.adminPort)", "web"])
        #expect(cli.status == 1)
        #expect(cli.err.contains("the cluster store (etcd) is unreachable"), "\(cli.err)")
        #expect(b.admin("POST", "/admin/routes/web/split", #"{"weights": {"stable": 100}}"#)?.status == 503)
        #expect(eventually(3) { a.metric("sluice_cluster_connected") == 0 && b.metric("sluice_cluster_connected") == 0 })
        cli = try runSluiceCLI(["status", "--admin", "127.0.0.1:\(b.adminPort)"])
        #expect(cli.out.contains("etcd UNREACHABLE"), "\(cli.out)")
        let events = b.admin("GET", "/admin/events")?.text ?? ""
        #expect(events.contains("the cluster store (etcd) is unreachable"))
        // `--local` aborts on replica a only.
        cli = try runSluiceCLI(["abort", "--local", "--admin", "127.0.0.1:\(a.adminPort)", "web"])
        #expect(cli.status == 0, "\(cli.err)")
        #expect(a.bodies(20).allSatisfy { $0 == "stable" })
        #expect(Set(b.bodies(30)) == ["stable", "canary"])
        #expect(a.cluster()?.routing?.pendingLocalAborts == ["web"])
        #expect(a.metric("sluice_cluster_pending_local_aborts") == 1)

        // etcd back: the local abort is shared; b stops the canary; both connected again.
        try etcd.restart()
        #expect(eventually(10) { b.bodies(10).allSatisfy { $0 == "stable" } }, "the local abort did not reach b")
        #expect(eventually(5) { a.metric("sluice_cluster_connected") == 1 && b.metric("sluice_cluster_connected") == 1 })
        #expect(a.cluster()?.routing?.pendingLocalAborts == [])
        let last = try #require(b.history()?.versions.last)
        #expect(last.kind == .abort)
        #expect(last.node == "a")
        #expect(last.cause.contains("local abort shared with the fleet"), "\(last.cause)")
        // Changes are accepted again.
        #expect(b.admin("POST", "/admin/routes/web/clear", "")?.status == 200)
        #expect(eventually(3) { a.history()?.overrides["web"] == nil })
        // A `--local` abort while etcd answers is shared at the next heartbeat.
        #expect(a.admin("POST", "/admin/routes/web/abort", #"{"local": true}"#)?.status == 200)
        #expect(eventually(3) { b.history()?.overrides["web"]?.kind == .abort })
        #expect(a.cluster()?.routing?.pendingLocalAborts == [])
    }
}
