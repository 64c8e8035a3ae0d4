import Foundation
import Synchronization
import SluiceControl
import SluiceCore
import Testing

/// An in-memory stand-in for etcd's conditional writes: one routing document and one rollouts
/// document, each with a revision, and a switch that makes it unreachable.
final class MemoryStore: SharedRoutingStore, Sendable {
    let node: String
    private struct Data: Sendable {
        var revision: Int64 = 0
        var state: [UInt8]?
        var stateRevision: Int64 = 0
        var rollouts: [UInt8]?
        var rolloutsRevision: Int64 = 0
        var unreachable = false
        var writes = 0
    }
    private let data = Mutex(Data())

    init(node: String) { self.node = node }

    var unreachable: Bool {
        get { data.withLock { $0.unreachable } }
        set { data.withLock { $0.unreachable = newValue } }
    }
    var writes: Int { data.withLock { $0.writes } }
    var state: FleetRouting? {
        data.withLock { $0.state }.flatMap { try? JSONDecoder().decode(FleetRouting.self, from: Foundation.Data($0)) }
    }
    var stateRevision: Int64 { data.withLock { $0.stateRevision } }

    /// What another replica's write does: the document replaced, the revision moved on.
    func writeFromElsewhere(_ doc: FleetRouting) -> Int64 {
        let bytes = Array(try! JSONEncoder().encode(doc))
        return data.withLock { d in
            d.revision += 1
            d.state = bytes
            d.stateRevision = d.revision
            return d.revision
        }
    }

    /// Another replica's write of the rollouts document; returns its revision.
    func writeRolloutsFromElsewhere(_ doc: FleetRollouts) -> (bytes: [UInt8], revision: Int64) {
        let bytes = Array(try! JSONEncoder().encode(doc))
        return data.withLock { d in
            d.revision += 1
            d.rollouts = bytes
            d.rolloutsRevision = d.revision
            return (bytes, d.revision)
        }
    }
    var rollouts: FleetRollouts? {
        data.withLock { $0.rollouts }.flatMap { try? JSONDecoder().decode(FleetRollouts.self, from: Foundation.Data($0)) }
    }

    func write(state doc: FleetRouting, basedOn revision: Int64, rollouts: FleetRollouts?) -> SharedWrite {
        data.withLock { d in
            if d.unreachable { return .unreachable("connection refused (test)") }
            guard d.stateRevision == revision else { return .stale(d.state, d.stateRevision) }
            d.revision += 1
            d.writes += 1
            d.state = Array(try! JSONEncoder().encode(doc))
            d.stateRevision = d.revision
            if let rollouts {
                d.rollouts = Array(try! JSONEncoder().encode(rollouts))
                d.rolloutsRevision = d.revision
            }
            return .written(d.revision)
        }
    }

    func write(rollouts doc: FleetRollouts, basedOn revision: Int64) -> SharedWrite {
        data.withLock { d in
            if d.unreachable { return .unreachable("connection refused (test)") }
            guard d.rolloutsRevision == revision else { return .stale(d.rollouts, d.rolloutsRevision) }
            d.revision += 1
            d.rollouts = Array(try! JSONEncoder().encode(doc))
            d.rolloutsRevision = d.revision
            return .written(d.revision)
        }
    }
}

/// `RoutingController` sharing its runtime changes through a `SharedRoutingStore` (`cluster:`).
@Suite struct ClusterControlTests {
    static let apiRoute = """
          - name: api
            match: { path_prefix: /api }
            baseline: stable
            sticky: none
            split: { stable: 100, canary: 0 }
        """

    /// A rig whose controller shares through a fresh store named `n1`.
    func rig() throws -> (ControllerRig, MemoryStore) {
        let rig = try ControllerRig(yaml: controllerYAML(extraRoute: Self.apiRoute))
        let store = MemoryStore(node: "n1")
        rig.controller.attachFleet(store)
        return (rig, store)
    }

    /// A document as another replica `node` would write it: `overrides` at `version`.
    func foreignDoc(_ overrides: [String: RouteOverride], version: UInt64, node: String = "n2", kind: RoutingEventKind = .split,
                    route: String? = "api") -> FleetRouting {
        let entry = HistoryEntry(version: version, time: "2026-12-03T00:00:00.000Z", kind: kind, cause: "by \(node)", route: route,
                                 changed: "x", overrides: overrides, node: node)
        return FleetRouting(version: version, overrides: overrides, history: [entry], node: node, updated: entry.time)
    }

    @Test func aRuntimeChangeIsWrittenToTheFleetNamingItsReplica() throws {
        let (rig, store) = try rig()
        defer { rig.dir.remove() }
        let result = try rig.controller.setSplit(route: "web", weights: split(["stable": 80, "canary": 20]), cause: "op")
        let doc = try #require(store.state)
        #expect(doc.version == result.version)
        #expect(doc.overrides["web"]?.summary == "split stable=80% canary=20%")
        #expect(doc.node == "n1")
        #expect(doc.history.last?.node == "n1")
        #expect(doc.history.last?.cause == "op")
        #expect(rig.weights() == ["stable": 80, "canary": 20])
        // The history is the fleet's.
        #expect(rig.controller.history().versions.map(\.version) == [result.version - 1, result.version])
        #expect(rig.controller.history().versions.first?.kind == .start)
        #expect(rig.events.recent().last?.details["node"] == "n1")
    }

    @Test func aChangeBasedOnAnOlderFleetStateIsRefusedAndTheReplicaCatchesUp() throws {
        let (rig, store) = try rig()
        defer { rig.dir.remove() }
        let apiSplit = RouteOverride(kind: .split, weights: split(["stable": 50, "canary": 50]), since: "t", version: 5, cause: "n2")
        _ = store.writeFromElsewhere(foreignDoc(["api": apiSplit], version: 5))
        #expect(throws: ControlError.self) {
            _ = try rig.controller.setSplit(route: "web", weights: split(["stable": 70, "canary": 30]), cause: "op")
        }
        do {
            _ = try rig.controller.setSplit(route: "web", weights: split(["stable": 70, "canary": 30]), cause: "op")
        } catch {
            // Caught up by the first refusal: the second attempt is based on the fleet's state and succeeds.
            Issue.record("second attempt failed: \(error)")
        }
        #expect(store.state?.overrides["api"]?.summary == "split stable=50% canary=50%")
        #expect(store.state?.overrides["web"]?.summary == "split stable=70% canary=30%")
    }

    @Test func theStaleRefusalSaysWhatChangedAndByWhom() throws {
        let (rig, store) = try rig()
        defer { rig.dir.remove() }
        let apiSplit = RouteOverride(kind: .split, weights: split(["stable": 50, "canary": 50]), since: "t", version: 5, cause: "n2")
        _ = store.writeFromElsewhere(foreignDoc(["api": apiSplit], version: 5))
        do {
            _ = try rig.controller.switchTo(route: "web", cohort: "canary", cause: "op")
            Issue.record("a stale switch was accepted")
        } catch {
            #expect(error.status == 409)
            #expect(error.description.hasPrefix("stale change refused: another replica changed the fleet's routing state meanwhile"),
                    "\(error)")
            #expect(error.description.contains("version 5: split of `api` by n2"), "\(error)")
        }
        // Nothing of the refused change was written or served; the replica serves the fleet's state.
        #expect(store.state?.overrides["web"] == nil)
        #expect(rig.controller.overrides["api"]?.summary == "split stable=50% canary=50%")
        #expect(rig.controller.overrides["web"] == nil)
    }

    @Test func anAbortIsNeverStaleItIsMadeOnTopOfTheNewerState() throws {
        let (rig, store) = try rig()
        defer { rig.dir.remove() }
        let apiSplit = RouteOverride(kind: .split, weights: split(["stable": 50, "canary": 50]), since: "t", version: 9, cause: "n2")
        _ = store.writeFromElsewhere(foreignDoc(["api": apiSplit], version: 9))
        let result = try rig.controller.abort(route: "web", cause: "op")
        #expect(result.version == 10)
        let doc = try #require(store.state)
        #expect(doc.overrides["web"]?.kind == .abort)
        #expect(doc.overrides["api"]?.summary == "split stable=50% canary=50%")
        #expect(doc.history.map(\.node) == ["n2", "n1"])
        #expect(rig.weights() == ["stable": 100, "canary": 0])
    }

    @Test func anOperatorsIfVersionRefusesAChangeDecidedOnAnOldVersion() throws {
        let (rig, _) = try rig()
        defer { rig.dir.remove() }
        let v = try rig.controller.setSplit(route: "web", weights: split(["stable": 80, "canary": 20]), cause: "a").version
        _ = try rig.controller.setSplit(route: "api", weights: split(["stable": 90, "canary": 10]), cause: "b")
        do {
            _ = try rig.controller.setSplit(route: "web", weights: split(["stable": 60, "canary": 40]), cause: "c", ifVersion: v)
            Issue.record("accepted")
        } catch {
            #expect(error.description.hasPrefix("stale change refused: the routing table changed meanwhile"), "\(error)")
        }
        #expect(try rig.controller.setSplit(route: "web", weights: split(["stable": 60, "canary": 40]), cause: "c",
                                            ifVersion: v + 1).version == v + 2)
    }

    @Test func anUnreachableStoreRefusesChangesAndALocalAbortIsSharedLater() throws {
        let (rig, store) = try rig()
        defer { rig.dir.remove() }
        store.unreachable = true
        do {
            _ = try rig.controller.setSplit(route: "web", weights: split(["stable": 80, "canary": 20]), cause: "op")
            Issue.record("accepted while the store is unreachable")
        } catch {
            #expect(error.status == 503)
            #expect(error.description.hasPrefix("refused: the cluster store (etcd) is unreachable"), "\(error)")
        }
        #expect(throws: ControlError.self) { _ = try rig.controller.abort(route: "web", cause: "op") }
        #expect(rig.weights() == ["stable": 95, "canary": 5])
        // --local: applied here, not written, pending.
        let local = try rig.controller.abort(route: "web", cause: "emergency", local: true)
        #expect(rig.weights() == ["stable": 100, "canary": 0])
        #expect(store.writes == 0)
        #expect(rig.controller.fleetView.pendingLocalAborts == ["web"])
        #expect(rig.events.recent().last?.details["local"] != nil)
        // Still unreachable: sharing fails and the abort stays pending.
        #expect(throws: ControlError.self) { _ = try rig.controller.shareLocalAborts() }
        #expect(rig.controller.fleetView.pendingLocalAborts == ["web"])
        // Meanwhile another replica changed the fleet (it could reach etcd): the abort goes on top.
        let apiSplit = RouteOverride(kind: .split, weights: split(["stable": 50, "canary": 50]), since: "t", version: 4, cause: "n2")
        let rev = store.writeFromElsewhere(foreignDoc(["api": apiSplit], version: 4))
        store.unreachable = false
        // The watch delivers the fleet's newer state first: the local abort stays on top of it.
        rig.controller.adoptFleetState(Array(try JSONEncoder().encode(store.state!)), revision: rev)
        #expect(rig.weights() == ["stable": 100, "canary": 0])
        #expect(rig.controller.overrides["api"]?.summary == "split stable=50% canary=50%")
        #expect(try rig.controller.shareLocalAborts() == ["web"])
        #expect(rig.controller.fleetView.pendingLocalAborts == [])
        let doc = try #require(store.state)
        #expect(doc.overrides["web"]?.kind == .abort)
        #expect(doc.overrides["api"]?.summary == "split stable=50% canary=50%")
        #expect(doc.history.last?.cause.contains("local abort shared with the fleet") == true)
        #expect(local.version < doc.version)
    }

    @Test func theFleetsStateIsAppliedOnTopOfTheFileAndWhatDoesNotFitIsDropped() throws {
        let (rig, store) = try rig()
        defer { rig.dir.remove() }
        let webSplit = RouteOverride(kind: .split, weights: split(["stable": 60, "canary": 40]), since: "t", version: 7, cause: "n2")
        let ghost = RouteOverride(kind: .abort, since: "t", version: 7, cause: "n2")
        let doc = foreignDoc(["web": webSplit, "ghost": ghost], version: 7, route: "web")
        let rev = store.writeFromElsewhere(doc)
        let result = try #require(rig.controller.adoptFleetState(Array(try JSONEncoder().encode(doc)), revision: rev))
        #expect(result.version == 7)
        #expect(rig.weights() == ["stable": 60, "canary": 40])
        #expect(rig.controller.overrides.keys.sorted() == ["web"])
        #expect(rig.kinds.suffix(2) == [.split, .overrideDropped])
        #expect(rig.events.recent().last?.details["route"] == "ghost")
        #expect(rig.published.versions.last == 7)
        // The same revision again (or an older one) changes nothing.
        #expect(rig.controller.adoptFleetState(Array(try JSONEncoder().encode(doc)), revision: rev) == nil)
        // A document that is not the fleet's format is reported, and serving goes on.
        let before = rig.controller.version
        #expect(rig.controller.adoptFleetState(Array("{\"nope\": 1}".utf8), revision: rev + 1) == nil)
        #expect(rig.controller.version == before)
        #expect(rig.kinds.last == .cluster)
    }

    @Test func aFleetRollbackRestoresAnEarlierFleetVersionsOverrides() throws {
        let (rig, store) = try rig()
        defer { rig.dir.remove() }
        let v1 = try rig.controller.setSplit(route: "web", weights: split(["stable": 80, "canary": 20]), cause: "a").version
        _ = try rig.controller.switchTo(route: "web", cohort: "canary", cause: "b")
        let back = try rig.controller.rollback(cause: "undo")
        #expect(back.rolledBackTo == v1)
        #expect(rig.weights() == ["stable": 80, "canary": 20])
        #expect(store.state?.history.last?.kind == .rollback)
        #expect(store.state?.overrides["web"]?.summary == "split stable=80% canary=20%")
        // The fleet's first change can be rolled back too: to what served before it (no override).
        let (rig2, store2) = try self.rig()
        defer { rig2.dir.remove() }
        _ = try rig2.controller.abort(route: "web", cause: "a")
        // Going back from an abort reopens the canary: the fleet refuses it without `force`, as a
        // single node does (issue 19), and nothing is shared.
        #expect(throws: ControlError.self) { try rig2.controller.rollback(cause: "undo") }
        #expect(store2.state?.history.last?.kind == .abort)
        _ = try rig2.controller.rollback(force: true, cause: "undo")
        #expect(rig2.controller.overrides.isEmpty)
        #expect(store2.state?.overrides.isEmpty == true)
    }

    @Test func aChangeKeepsTheFleetsOverridesOfRoutesThisReplicasFileLacks() throws {
        let (rig, store) = try rig()
        defer { rig.dir.remove() }
        let elsewhere = RouteOverride(kind: .abort, since: "t", version: 3, cause: "n2")
        let doc = foreignDoc(["checkout": elsewhere], version: 3, route: "checkout")
        let rev = store.writeFromElsewhere(doc)
        rig.controller.adoptFleetState(Array(try JSONEncoder().encode(doc)), revision: rev)
        #expect(rig.controller.overrides.isEmpty)  // not served here: this file has no `checkout`
        _ = try rig.controller.setSplit(route: "web", weights: split(["stable": 80, "canary": 20]), cause: "op")
        _ = try rig.controller.clear(route: "web", cause: "op")
        #expect(store.state?.overrides.keys.sorted() == ["checkout"])
    }

    // MARK: Rollouts in a fleet

    @Test func rolloutCommandsAreSharedAndAStaleOrUnsharedOneIsRefused() throws {
        let rig = try RolloutControllerTests.Rig()
        defer { rig.base.dir.remove() }
        let store = MemoryStore(node: "n1")
        rig.routing.attachFleet(store)
        // Not connected to any etcd: this replica leads nothing, it only takes commands and follows.
        let cluster = try ClusterStore(settings: ClusterSettings(endpoints: ["http://127.0.0.1:1"], prefix: "/t", node: "n1"),
                                       events: rig.base.events)
        rig.rollouts.joinFleet(cluster)
        let started = try rig.rollouts.command(.start, route: "web", cause: "op")
        #expect(started.change?.split == "stable=90% canary=10%")
        #expect(store.state?.overrides["web"]?.summary == "split stable=90% canary=10%")
        #expect(store.rollouts?.rollouts["web"]?.state == .progressing)
        #expect(store.rollouts?.node == "n1")
        // Evaluations are paused here while etcd is unreachable (status says why).
        #expect(rig.rollouts.status(route: "web")?.warnings.contains { $0.hasPrefix("evaluations paused") } == true)
        // Another replica paused it meanwhile (not yet seen here): a pause sent here is stale.
        var paused = store.rollouts!
        paused.rollouts["web"]!.state = .paused
        paused.rollouts["web"]!.lastDecision = "paused by operator at step 1 (10%)"
        paused.node = "n2"
        let (bytes, revision) = store.writeRolloutsFromElsewhere(paused)
        do {
            _ = try rig.rollouts.command(.pause, route: "web", cause: "op2")
            Issue.record("a stale rollout command was accepted")
        } catch {
            #expect(error.description.hasPrefix("stale change refused: another replica changed the fleet's rollouts meanwhile"),
                    "\(error)")
        }
        #expect(rig.rollouts.machine(route: "web")?.state == .progressing(step: 0))
        // The watch then brings n2's pause: the machine follows, and the decision is an event here too.
        rig.routing.adoptFleetRollouts(bytes, revision: revision)
        #expect(rig.rollouts.machine(route: "web")?.state == .paused(step: 0))
        #expect(rig.base.events.recent().last?.cause == "paused by operator at step 1 (10%) (by n2)")
        // Unreachable: refused with the reason.
        store.unreachable = true
        do {
            _ = try rig.rollouts.command(.resume, route: "web", cause: "op3")
            Issue.record("accepted while unreachable")
        } catch {
            #expect(error.status == 503, "\(error)")
        }
        #expect(rig.rollouts.machine(route: "web")?.state == .paused(step: 0))
    }

    // MARK: Config

    @Test func theClusterSectionLoads() throws {
        let config = try #require(mustLoad(baseYAML + """
            routes: [{ name: web, split: { stable: 100 } }]
            cluster:
              etcd: { endpoints: ["http://127.0.0.1:2379", "http://etcd-1.etcd:2379/"], prefix: /sluice/prod/ }
              node: replica-1
              lease_ttl: 7s
            """))
        #expect(config.cluster == ClusterSettings(endpoints: ["http://127.0.0.1:2379", "http://etcd-1.etcd:2379/"],
                                                 prefix: "/sluice/prod", node: "replica-1", leaseTTL: 7_000_000_000))
        let plain = try #require(mustLoad(baseYAML + "routes: [{ name: web, split: { stable: 100 } }]\n"))
        #expect(plain.cluster == nil)
        let defaults = try #require(mustLoad(baseYAML + """
            routes: [{ name: web, split: { stable: 100 } }]
            cluster: { etcd: { endpoints: "http://127.0.0.1:2379", prefix: /f } }
            """))
        #expect(defaults.cluster?.leaseTTL == 5_000_000_000)
        #expect(defaults.cluster?.node.isEmpty == false)
    }

    @Test func badClusterSectionsAreReportedWithTheirPlace() {
        let ds = diagnostics(baseYAML + """
            routes: [{ name: web, split: { stable: 100 } }]
            cluster:
              etcd: { endpoints: ["https://etcd:2379", "etcd:2379"], prefix: sluice, username: u }
              node: "replica 1"
              lease_ttl: 1500ms
              leader: x
            """)
        let text = ds.map(\.description).joined(separator: "\n")
        #expect(ds.contains { $0.keyPath == "cluster.etcd.endpoints[0]" && $0.message.contains("TLS to etcd is not built in") }, "\(text)")
        #expect(ds.contains { $0.keyPath == "cluster.etcd.endpoints[1]" && $0.message.contains("not an etcd client URL") }, "\(text)")
        #expect(ds.contains { $0.keyPath == "cluster.etcd.prefix" && $0.message.contains("is not a key prefix") }, "\(text)")
        #expect(ds.contains { $0.keyPath == "cluster.etcd" && $0.message.contains("`username` and `password_file` go together") }, "\(text)")
        #expect(ds.contains { $0.keyPath == "cluster.node" && $0.message.contains("not a valid node name") }, "\(text)")
        #expect(ds.contains { $0.keyPath == "cluster.lease_ttl" && $0.message.contains("whole seconds") }, "\(text)")
        #expect(ds.contains { $0.message.contains("unknown key `leader`") }, "\(text)")
        #expect(diagnostics(baseYAML + "routes: [{ name: web, split: { stable: 100 } }]\ncluster: { node: a }\n")
            .contains { $0.message.contains("missing required key `etcd`") })
    }

    // MARK: Fleet statistics

    @Test func fleetStatisticsSumReplicasAndSurviveARestart() {
        func report(_ node: String, _ incarnation: String, requests: UInt64, errors: UInt64) -> FleetCounters {
            FleetCounters(node: node, incarnation: incarnation, series: [
                FleetCounters.Series(route: "web", cohort: "canary", requests: requests, errors: errors, upstreamErrors: 0,
                                     latency: [[100, requests]]),
            ])
        }
        var stats = FleetStatistics()
        stats.absorb(report("a", "1", requests: 100, errors: 0))
        stats.absorb(report("b", "1", requests: 50, errors: 10))
        stats.sample(now: 1_000_000_000)
        stats.absorb(report("a", "1", requests: 300, errors: 0))  // +200
        stats.absorb(report("b", "2", requests: 20, errors: 20))  // restarted: +20, +20 errors
        stats.absorb(report("c", "1", requests: 30, errors: 0))   // new: +30
        stats.sample(now: 2_000_000_000)
        let s = stats.window.stats(route: "web", cohort: "canary", window: 1)
        #expect(s?.requests == 250)
        #expect(s?.errors == 20)
        #expect(s?.p50 != nil)
        // A replica that stops reporting (gone) subtracts nothing.
        stats.absorb(report("a", "1", requests: 310, errors: 0))
        stats.sample(now: 3_000_000_000)
        #expect(stats.window.stats(route: "web", cohort: "canary", window: 1)?.requests == 10)
    }
}
