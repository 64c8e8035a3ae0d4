import Foundation
import Synchronization
import SluiceControl
import SluiceCore
import Testing

/// A fresh directory under /tmp, removed by `remove()`.
final class TempDir: Sendable {
    let path: String

    init() throws {
        var template = Array("/tmp/sluice-test-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw AdminError("mkdtemp failed")
        }
        path = String(cString: made)
    }

    /// `name` inside the directory.
    func file(_ name: String) -> String { path + "/" + name }

    /// Writes `text` to `name` the way editors do: a temporary file renamed over the target.
    func write(_ name: String, _ text: String) throws {
        let temp = file(".\(name).tmp-\(UInt64.random(in: 0...UInt64.max))")
        try text.write(toFile: temp, atomically: false, encoding: .utf8)
        guard rename(temp, file(name)) == 0 else { throw AdminError("rename failed: \(errno)") }
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Every table a controller published, in order.
final class PublishRecorder: Sendable {
    private let tables = Mutex<[RoutingTable]>([])

    var all: [RoutingTable] { tables.withLock { $0 } }
    var versions: [UInt64] { all.map(\.version) }

    func record(_ table: RoutingTable) { tables.withLock { $0.append(table) } }
}

/// A config with route `web` splitting `stable`/`canary` (and a third upstream), with `split`
/// as the split mapping's body.
func controllerYAML(split: String = "stable: 95, canary: 5", extraRoute: String = "", top: String = "") -> String {
    """
    listeners:
      - name: public
        address: 127.0.0.1:8080
    upstreams:
      stable: { endpoints: ["127.0.0.1:9001"] }
      canary: { endpoints: ["127.0.0.1:9003"] }
      third: { endpoints: ["127.0.0.1:9005"] }
    routes:
      - name: web
        baseline: stable
        sticky: none
        rules:
          - match: { header: { name: X-Canary, value: always } }
            cohort: canary
        split: { \(split) }
    \(extraRoute)
    \(top)
    """
}

/// A controller over a config file in a temp directory, recording what it publishes.
struct ControllerRig {
    let dir: TempDir
    let path: String
    let events: EventLog
    let controller: RoutingController
    let published: PublishRecorder

    /// Writes `yaml` as `sluice.yaml` in `dir` (a new one by default) and starts a controller on it.
    init(yaml: String = controllerYAML(), dir: TempDir? = nil, cause: String = "test", resolver: HostResolver = testResolver) throws {
        self.dir = try dir ?? TempDir()
        path = self.dir.file("sluice.yaml")
        if dir == nil || !FileManager.default.fileExists(atPath: path) { try self.dir.write("sluice.yaml", yaml) }
        let config = try ConfigLoader.load(path: path, version: 1, resolver: resolver)
        events = EventLog()
        controller = try RoutingController(config: config, events: events, cause: cause, resolver: resolver,
                                           clock: { ControlClock.unixNanos() })
        published = PublishRecorder()
        let recorder = published
        controller.attach { recorder.record($0) }
    }

    /// Weights of `route` in the serving table, by cohort name (percent).
    func weights(_ route: String = "web") -> [String: Double] {
        let t = controller.table
        var out: [String: Double] = [:]
        for c in t.routes[t.routeIndex(named: route)!].cohorts { out[c.name] = Double(c.weight) / 100 }
        return out
    }

    /// Event kinds recorded so far.
    var kinds: [RoutingEventKind] { events.recent().map(\.kind) }
}

/// `weights` as `CohortWeight`s from percentages.
func split(_ weights: KeyValuePairs<String, Double>) -> [CohortWeight] {
    weights.map { CohortWeight(cohort: $0.key, weight: Int(($0.value * 100).rounded())) }
}

/// A counter shared by threads.
final class LockedCounter: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func add() { count.withLock { $0 += 1 } }
}
