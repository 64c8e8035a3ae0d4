import Foundation
import Synchronization
import SluiceControl
import SluiceCore
import SluiceProxy
import Testing

/// The routing controller: versions, history, overrides, reloads, rollback, persistence.
@Suite struct ControllerTests {
    @Test func runtimeChangesPublishNewVersionsWithEventsAndHistory() throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        #expect(rig.controller.version == 1)
        let s = try rig.controller.setSplit(route: "web", weights: split(["stable": 90, "canary": 10]), cause: "ramp")
        #expect(s.version == 2 && s.oldVersion == 1)
        #expect(s.changed == "web: stable 95→90, canary 5→10")
        #expect(s.split == "stable=90% canary=10%")
        #expect(s.line == "web: split \(s.split!) (version 2)")
        #expect(rig.weights() == ["stable": 90, "canary": 10])
        let w = try rig.controller.switchTo(route: "web", cohort: "canary", cause: "go green")
        #expect(w.version == 3)
        #expect(rig.weights()["canary"] == 100)
        let a = try rig.controller.abort(route: "web", cause: "errors")
        #expect(a.version == 4)
        #expect(a.override?.cohort == "stable")
        #expect(a.line == "web: aborted, all traffic to stable (version 4)")
        #expect(rig.weights() == ["stable": 100, "canary": 0])
        #expect(rig.published.versions == [2, 3, 4])
        #expect(rig.published.all.last === rig.controller.table)
        #expect(rig.kinds == [.start, .split, .switch, .abort])
        let abortEvent = try #require(rig.events.recent().last)
        #expect(abortEvent.oldVersion == 3 && abortEvent.newVersion == 4 && abortEvent.cause == "errors")
        #expect(abortEvent.details["route"] == "web")
        let history = rig.controller.history()
        #expect(history.currentVersion == 4)
        #expect(history.versions.map(\.version) == [1, 2, 3, 4])
        #expect(history.versions.map(\.kind) == [.start, .split, .switch, .abort])
        #expect(history.versions[1].changed == "web: stable 95→90, canary 5→10")
        #expect(history.overrides["web"]?.kind == .abort)
        // Clear: the file's split again.
        let c = try rig.controller.clear(route: "web", cause: "done")
        #expect(c.version == 5)
        #expect(rig.weights() == ["stable": 95, "canary": 5])
        #expect(rig.controller.overrides.isEmpty)
        #expect(throws: ControlError.self) { try rig.controller.clear(route: "web", cause: "again") }
    }

    @Test func invalidRuntimeChangesPublishNothing() throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        let attempts: [() throws -> Void] = [
            { _ = try rig.controller.setSplit(route: "web", weights: split(["stable": 90, "canary": 5]), cause: "x") },
            { _ = try rig.controller.setSplit(route: "web", weights: split(["stable": 90, "green": 10]), cause: "x") },
            { _ = try rig.controller.switchTo(route: "web", cohort: "green", cause: "x") },
            { _ = try rig.controller.abort(route: "api", cause: "x") },
        ]
        for attempt in attempts {
            do {
                try attempt()
                Issue.record("accepted")
            } catch let error as ControlError {
                #expect(error.status == 400)
            } catch {
                Issue.record("\(error)")
            }
        }
        #expect(rig.controller.version == 1)
        #expect(rig.published.all.isEmpty)
        #expect(rig.kinds == [.start])
    }

    @Test func rollbackRestoresAnEarlierVersionAsANewOne() throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        _ = try rig.controller.setSplit(route: "web", weights: split(["stable": 90, "canary": 10]), cause: "a")  // v2
        _ = try rig.controller.setSplit(route: "web", weights: split(["stable": 50, "canary": 50]), cause: "b")  // v3
        let back = try rig.controller.rollback(cause: "oops")  // v4 = v2
        #expect(back.version == 4 && back.rolledBackTo == 2)
        #expect(back.changed == "web: stable 50→90, canary 50→10")
        #expect(rig.weights()["canary"] == 10)
        #expect(rig.controller.overrides["web"]?.version == 2, "the override of version 2 is back")
        let first = try rig.controller.rollback(to: 1, cause: "all the way")  // v5 = v1
        #expect(first.version == 5)
        #expect(rig.weights()["canary"] == 5)
        #expect(rig.controller.overrides.isEmpty)
        #expect(throws: ControlError.self) { try rig.controller.rollback(to: 5, cause: "x") }
        #expect(throws: ControlError.self) { try rig.controller.rollback(to: 99, cause: "x") }
        #expect(rig.kinds.suffix(2) == [.rollback, .rollback])
        #expect(rig.published.versions == [2, 3, 4, 5])
    }

    @Test func historyKeepsTheLast50Versions() throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        for i in 0..<60 {
            _ = try rig.controller.setSplit(route: "web", weights: split(["stable": Double(100 - i), "canary": Double(i)]), cause: "\(i)")
        }
        let h = rig.controller.history()
        #expect(h.versions.count == 50)
        #expect(h.versions.first?.version == 12 && h.versions.last?.version == 61)
        #expect(throws: ControlError.self) { try rig.controller.rollback(to: 1, cause: "too old") }
    }

    @Test func reloadKeepsOverridesThatStillFitAndDropsTheOthers() throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        _ = try rig.controller.setSplit(route: "web", weights: split(["stable": 80, "canary": 20]), cause: "ramp")  // v2
        // Only an upstream endpoint changes: the override stays.
        try rig.dir.write("sluice.yaml", controllerYAML().replacingOccurrences(of: "127.0.0.1:9003", with: "127.0.0.1:9004"))
        let r1 = try rig.controller.reloadFromFile(cause: "SIGHUP")
        #expect(r1.version == 3)
        #expect(r1.changed == "upstreams: canary endpoints 127.0.0.1:9003 → 127.0.0.1:9004")
        #expect(rig.weights()["canary"] == 20)
        #expect(rig.controller.overrides["web"] != nil)
        // The file changes web's split itself: the file wins, the override is dropped.
        try rig.dir.write("sluice.yaml", controllerYAML(split: "stable: 70, canary: 30"))
        let r2 = try rig.controller.reloadFromFile(cause: "SIGHUP")
        #expect(rig.weights()["canary"] == 30)
        #expect(rig.controller.overrides.isEmpty)
        #expect(r2.warnings.contains { $0.contains("dropped") && $0.contains("changed this route's split") })
        // A switch to a cohort the next file does not have is dropped too.
        _ = try rig.controller.switchTo(route: "web", cohort: "canary", cause: "x")
        try rig.dir.write("sluice.yaml", controllerYAML(split: "stable: 70, third: 30").replacingOccurrences(of: "cohort: canary", with: "cohort: third"))
        let r3 = try rig.controller.reloadFromFile(cause: "SIGHUP")
        #expect(rig.controller.overrides.isEmpty)
        #expect(r3.warnings.contains { $0.contains("no cohort `canary`") }, "\(r3.warnings)")
        #expect(rig.kinds.filter { $0 == .overrideDropped }.count == 2)
    }

    static let invalidConfigs: [(String, String, String)] = [
        ("bad weights sum", controllerYAML(split: "stable: 95, canary: 6"), "weights sum to 101, must be 100"),
        ("unknown cohort", controllerYAML(split: "stable: 95, canry: 5"), "cohort `canry` is neither an upstream nor a declared cohort"),
        ("duplicate name", controllerYAML(extraRoute: "  - { name: web, upstream: stable }"), "duplicate route name `web`"),
        ("bad regex", controllerYAML(extraRoute: "  - { name: r, match: { header: { name: A, regex: \"a(b\" } }, upstream: stable }"),
         "invalid regex `a(b`"),
        ("unknown key", controllerYAML(top: "wokers: 2"), "unknown key `wokers`"),
        ("bad address", controllerYAML().replacingOccurrences(of: "127.0.0.1:9003", with: "127.0.0.1:99999"), "127.0.0.1:99999"),
        ("unresolvable host", controllerYAML().replacingOccurrences(of: "127.0.0.1:9003", with: "no.such.host:80"),
         "cannot resolve host name `no.such.host`"),
        ("YAML syntax", controllerYAML() + "\n  - [unclosed", "YAML syntax error"),
    ]

    @Test(arguments: invalidConfigs)
    func invalidConfigIsRejectedAndTheOldTableServes(kind: String, yaml: String, message: String) throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        _ = try rig.controller.setSplit(route: "web", weights: split(["stable": 60, "canary": 40]), cause: "x")  // v2
        let serving = rig.controller.table
        try rig.dir.write("sluice.yaml", yaml)
        do {
            _ = try rig.controller.reloadFromFile(cause: "test reload")
            Issue.record("\(kind): accepted")
        } catch {
            #expect(error.status == 422, "\(kind)")
            guard case .invalidConfig(let config, let version) = error else {
                Issue.record("\(kind): \(error)")
                return
            }
            #expect(version == 2)
            #expect(config.diagnostics.contains { $0.description.contains(message) }, "\(kind): \(config)")
            #expect(error.body.diagnostics?.isEmpty == false)
        }
        #expect(rig.controller.table === serving)
        #expect(rig.published.versions == [2])
        let event = try #require(rig.events.recent().last)
        #expect(event.kind == .reloadRejected)
        #expect(event.oldVersion == 2 && event.newVersion == nil)
        #expect(event.details["error"]?.contains(message) == true, "\(kind)")
        // Fixing the file makes the next reload succeed, with the override still in force.
        try rig.dir.write("sluice.yaml", controllerYAML())
        #expect(try rig.controller.reloadFromFile(cause: "fixed").version == 3)
        #expect(rig.weights()["canary"] == 40)
    }

    @Test func aRuntimeSplitSurvivesARestart() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var a: ControllerRig? = try ControllerRig(dir: dir, cause: "first start")
        _ = try a!.controller.setSplit(route: "web", weights: split(["stable": 87.5, "canary": 12.5]), cause: "sluice split")
        _ = try a!.controller.reloadFromFile(cause: "SIGHUP")  // v3: the override survives reloads too
        let state = try #require(try RuntimeStateFile.read(path: dir.file("sluice.yaml.state.json")))
        #expect(state.version == 3)
        #expect(state.overrides["web"]?.weights == split(["stable": 87.5, "canary": 12.5]))
        let since = state.overrides["web"]!.since
        a = nil  // "stop"
        let b = try ControllerRig(dir: dir, cause: "second start")
        #expect(b.weights() == ["stable": 87.5, "canary": 12.5])
        #expect(b.controller.version == 4, "versions keep counting across restarts")
        let o = try #require(b.controller.overrides["web"])
        #expect(o.kind == .split && o.version == 2 && o.since == since && o.cause == "sluice split")
        #expect(b.kinds == [.start, .restore])
        let restore = try #require(b.events.recent().last)
        #expect(restore.cause.contains("sluice.yaml.state.json"))
        #expect(restore.details["web"]?.contains("split stable=87.5% canary=12.5%") == true)
        // The same split routes the same buckets.
        let fresh = try ConfigLoader.load(path: dir.file("sluice.yaml"), version: 1, resolver: testResolver).table
        let expected = try fresh.applying([.split(route: "web", weights: split(["stable": 87.5, "canary": 12.5]))], version: 1)
        #expect((0..<10_000).allSatisfy { b.controller.table.cohort(route: 0, bucket: $0) == expected.cohort(route: 0, bucket: $0) })
    }

    @Test func anOverrideThatNoLongerFitsIsDroppedAtStart() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        do {
            let a = try ControllerRig(dir: dir)
            _ = try a.controller.switchTo(route: "web", cohort: "canary", cause: "x")
        }
        // canary is gone from route web altogether.
        try dir.write("sluice.yaml", controllerYAML(split: "stable: 100").replacingOccurrences(of: "cohort: canary", with: "cohort: third"))
        let b = try ControllerRig(dir: dir)
        #expect(b.controller.overrides.isEmpty)
        #expect(b.kinds == [.start, .overrideDropped])
        #expect(b.events.recent().last?.details["reason"]?.contains("no cohort `canary`") == true)
        #expect(b.weights()["stable"] == 100)
    }

    @Test func aFileSplitChangedWhileStoppedWinsOverTheOverride() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        do {
            let a = try ControllerRig(dir: dir)
            _ = try a.controller.abort(route: "web", cause: "x")
        }
        do {
            // Same file: the abort is restored.
            let b = try ControllerRig(dir: dir)
            #expect(b.controller.overrides["web"]?.kind == .abort)
            #expect(b.kinds == [.start, .restore])
        }
        try dir.write("sluice.yaml", controllerYAML(split: "stable: 80, canary: 20"))
        let c = try ControllerRig(dir: dir)
        #expect(c.controller.overrides.isEmpty)
        #expect(c.kinds == [.start, .overrideDropped])
        #expect(c.weights() == ["stable": 80, "canary": 20])
    }

    @Test func aBrokenStateFileStopsTheStart() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try dir.write("sluice.yaml", controllerYAML())
        try dir.write("sluice.yaml.state.json", "{ not json")
        #expect(throws: ControlError.self) { try ControllerRig(dir: dir) }
        try dir.write("other.yaml", controllerYAML(top: "state_file: off"))
        let config = try ConfigLoader.load(path: dir.file("other.yaml"), version: 1, resolver: testResolver)
        #expect(config.stateFile == nil)
        let relative = try ConfigLoader.load(path: dir.file("sluice.yaml").replacingOccurrences(of: "sluice.yaml", with: "other.yaml"),
                                             version: 1, resolver: testResolver)
        #expect(relative.stateFile == nil)
        try dir.write("third.yaml", controllerYAML(top: "state_file: state/x.json"))
        #expect(try ConfigLoader.load(path: dir.file("third.yaml"), version: 1, resolver: testResolver).stateFile
                == dir.file("state/x.json"))
    }

    @Test func reloadIfChangedSkipsIdenticalContent() throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        #expect(try rig.controller.reloadIfChanged(cause: "inotify") == nil)
        try rig.dir.write("sluice.yaml", controllerYAML())  // same bytes, new inode
        #expect(try rig.controller.reloadIfChanged(cause: "inotify") == nil)
        try rig.dir.write("sluice.yaml", controllerYAML(split: "stable: 90, canary: 10"))
        #expect(try rig.controller.reloadIfChanged(cause: "inotify")?.version == 2)
        #expect(try rig.controller.reloadIfChanged(cause: "inotify") == nil)
        // A rejected content is not retried until it changes again.
        try rig.dir.write("sluice.yaml", controllerYAML(split: "stable: 90, canary: 11"))
        #expect(throws: ControlError.self) { try rig.controller.reloadIfChanged(cause: "inotify") }
        #expect(try rig.controller.reloadIfChanged(cause: "inotify") == nil)
        // An explicit reload always publishes (host names are resolved again).
        try rig.dir.write("sluice.yaml", controllerYAML(split: "stable: 90, canary: 10"))
        #expect(try rig.controller.reloadFromFile(cause: "SIGHUP").version == 3)
        #expect(try rig.controller.reloadFromFile(cause: "SIGHUP").version == 4)
    }

    @Test func hostNamesAreResolvedAgainOnEveryReload() throws {
        let answer = LockedCounter()  // the last octet of api.internal's address
        let resolver = HostResolver { name in
            name == "api.internal" ? .success([.v4(0x0a00_0000 | UInt32(1 + answer.value), port: 0)])
                : .failure(HostResolver.ResolveFailure(message: "Name or service not known"))
        }
        let yaml = controllerYAML().replacingOccurrences(of: "127.0.0.1:9003", with: "api.internal:8080")
        let rig = try ControllerRig(yaml: yaml, resolver: resolver)
        defer { rig.dir.remove() }
        func canaryAddress() -> SocketAddress {
            let t = rig.controller.table
            return t.upstreams.first { $0.name == "canary" }!.endpoints[0].address
        }
        #expect(canaryAddress() == .v4(0x0a00_0001, port: 8080))
        answer.add()
        let r = try rig.controller.reloadFromFile(cause: "SIGHUP")  // same file, new DNS answer
        #expect(canaryAddress() == .v4(0x0a00_0002, port: 8080))
        #expect(r.changed == "upstreams: canary endpoints api.internal:8080 (10.0.0.1:8080) → api.internal:8080 (10.0.0.2:8080)")
        #expect(rig.published.all.last?.upstreams.first { $0.name == "canary" }?.endpoints[0].address == .v4(0x0a00_0002, port: 8080))
    }

    @Test func reloadWarnsAboutSettingsThatNeedARestart() throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        try rig.dir.write("sluice.yaml", controllerYAML(top: "timeouts: { upstream_connect: 1s }\nworkers: 3"))
        let r = try rig.controller.reloadFromFile(cause: "SIGHUP")
        #expect(r.warnings == ["changed in the file but applied only at restart: workers, timeouts"])
    }

    @Test func concurrentChangesGetDistinctIncreasingVersions() throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        let succeeded = LockedCounter()
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for i in 0..<25 {
                do throws(ControlError) {
                    switch (t + i) % 4 {
                    case 0: _ = try rig.controller.setSplit(route: "web", weights: split(["stable": 50, "canary": 50]), cause: "t\(t)")
                    case 1: _ = try rig.controller.abort(route: "web", cause: "t\(t)")
                    case 2: _ = try rig.controller.reloadFromFile(cause: "t\(t)")
                    default: _ = try rig.controller.rollback(force: true, cause: "t\(t)")
                    }
                    succeeded.add()
                } catch {
                    // A rollback before any change has nothing to go back to.
                }
            }
        }
        let versions = rig.published.versions
        #expect(versions == Array(2..<UInt64(2 + versions.count)), "published in order, no gaps, no repeats")
        #expect(versions.count == succeeded.value)
        #expect(versions.count >= 190)
        #expect(rig.controller.version == versions.last)
        #expect(rig.controller.history().versions.map(\.version) == Array(([1] + versions).suffix(50)))
    }

    @Test func splitArgumentsParse() throws {
        #expect(try SplitArguments.parse(["stable=90.5", "canary=9.5"]) == split(["stable": 90.5, "canary": 9.5]))
        #expect(try SplitArguments.parse(["blue=0", "green=100%"]) == split(["blue": 0, "green": 100]))
        for bad in [["stable=abc", "canary=10"], ["stable", "canary=100"], ["stable=90", "canary=9"],
                    ["stable=90.125", "canary=9.875"], ["stable=50", "stable=50"], ["=100"], [], ["a b=100"]] {
            #expect(throws: AdminError.self, "\(bad)") { try SplitArguments.parse(bad) }
        }
        #expect(throws: AdminError("`stable=abc`: invalid weight `abc` (weights are percentages from 0 to 100 with at most two decimals, e.g. `95`, `4.5`, `0.25`)")) {
            try SplitArguments.parse(["stable=abc", "canary=10"])
        }
        #expect(throws: AdminError("weights sum to 99, must be 100")) { try SplitArguments.parse(["stable=90", "canary=9"]) }
    }
}

/// Listener TLS settings reach the workers by listener position, so a reload that changes the
/// listeners keeps the running ones (with a warning) and one that only renews certificates applies.
@Suite struct ListenerTLSReloadTests {
    final class TLSRecorder: Sendable {
        private let sets = Mutex<[TLSSet]>([])
        var last: TLSSet? { sets.withLock { $0.last } }
        var count: Int { sets.withLock { $0.count } }
        func record(_ s: TLSSet) { sets.withLock { $0.append(s) } }
    }

    static func yaml(_ listeners: String) -> String {
        controllerYAML().replacingOccurrences(of: """
            listeners:
              - name: public
                address: 127.0.0.1:8080
            """, with: "listeners:\n" + listeners)
    }

    @Test func listenerTLSAppliesOnlyWhileTheListenersAreTheStartedOnes() throws {
        let cert = try HTTP2ConfigTests.certificate()
        defer { try? FileManager.default.removeItem(atPath: cert.dir) }
        let tls = "tls: { certificates: [{ cert: \(cert.cert), key: \(cert.key) }] }"
        let both = Self.yaml("""
              - { name: public, address: 127.0.0.1:8080 }
              - { name: secure, address: 127.0.0.1:8443, \(tls) }
            """)
        let rig = try ControllerRig(yaml: both)
        defer { rig.dir.remove() }
        let recorder = TLSRecorder()
        rig.controller.attach(tls: { recorder.record($0) })
        #expect(recorder.last?.listeners.map { $0 != nil } == [false, true])
        let started = try #require(recorder.last?.listeners[1])

        // The plain listener removed: `secure` would move to position 0, the plain socket's.
        try rig.dir.write("sluice.yaml", Self.yaml("  - { name: secure, address: 127.0.0.1:8443, \(tls) }\n"))
        let changed = try rig.controller.reloadFromFile(cause: "test")
        #expect(changed.warnings.contains { $0.contains("listener TLS settings not applied") }, "\(changed.warnings)")
        #expect(recorder.last?.listeners.map { $0 != nil } == [false, true])
        #expect(recorder.last?.listeners[1] === started, "the running listener TLS is kept")

        // The started listeners again (a certificate renewal, say): applied, no warning.
        try rig.dir.write("sluice.yaml", both + "\n# renewed\n")
        let same = try rig.controller.reloadFromFile(cause: "test")
        #expect(!same.warnings.contains { $0.contains("listener TLS") }, "\(same.warnings)")
        #expect(recorder.last?.listeners.map { $0 != nil } == [false, true])
        #expect(recorder.last?.listeners[1] !== started, "the reloaded listener TLS is applied")
        #expect(recorder.count == 3)
    }
}
