import Foundation
import SluiceControl
import SluiceCore
import Testing

/// The config watcher (inotify on the config's directory) driving the controller.
@Suite struct InotifyWatchTests {
    /// Starts a watcher that reloads `rig`'s controller when the content changes.
    static func watch(_ rig: ControllerRig, path: String? = nil) throws -> ConfigWatcher {
        let controller = rig.controller
        let watcher = ConfigWatcher(path: path ?? rig.path) {
            _ = try? controller.reloadIfChanged(cause: "config file changed")
        }
        try watcher.start()
        return watcher
    }

    /// Waits up to `seconds` for `condition`, polling every 10 ms; returns the time it took.
    static func waitFor(_ seconds: Double, _ condition: () -> Bool) -> Double? {
        let start = ControlClock.monotonicNanos()
        while Double(ControlClock.monotonicNanos() - start) / 1e9 < seconds {
            if condition() { return Double(ControlClock.monotonicNanos() - start) / 1e9 }
            usleep(10_000)
        }
        return nil
    }

    @Test func aNewFileRenamedOverTheConfigIsReloaded() throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        let watcher = try Self.watch(rig)
        defer { watcher.stop() }
        try rig.dir.write("sluice.yaml", controllerYAML(split: "stable: 70, canary: 30"))  // temp file + rename
        let took = Self.waitFor(2) { rig.controller.version == 2 }
        #expect(took != nil, "no reload within 2 s")
        #expect(rig.weights()["canary"] == 30)
        #expect(rig.events.recent().last?.cause == "config file changed")
        // An unrelated file in the directory, and a rewrite with the same content: no reload.
        try "x".write(toFile: rig.dir.file("notes.txt"), atomically: false, encoding: .utf8)
        try rig.dir.write("sluice.yaml", controllerYAML(split: "stable: 70, canary: 30"))
        usleep(400_000)
        #expect(rig.controller.version == 2)
        // An in-place write (truncate and write, as `cp` or `>` do) is seen too.
        try controllerYAML(split: "stable: 60, canary: 40").write(toFile: rig.path, atomically: false, encoding: .utf8)
        #expect(Self.waitFor(2) { rig.controller.version == 3 } != nil)
        // An invalid file is rejected once, and the old table stays.
        try rig.dir.write("sluice.yaml", controllerYAML(split: "stable: 60, canary: 41"))
        #expect(Self.waitFor(2) { rig.kinds.last == .reloadRejected } != nil)
        #expect(rig.controller.version == 3)
        print("inotify: rename reload seen after \(took.map { String(Int($0 * 1000)) } ?? "-") ms")
    }

    @Test func aConfigMapStyleSymlinkSwapIsReloaded() throws {
        // Kubernetes mounts a ConfigMap as: sluice.yaml -> ..data/sluice.yaml, ..data -> ..2026_11_27_1,
        // and updates it by writing a new timestamped directory, pointing ..data_tmp at it and
        // renaming ..data_tmp over ..data, then deleting the old directory.
        let dir = try TempDir()
        defer { dir.remove() }
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir.file("..2026_11_27_1"), withIntermediateDirectories: false)
        try controllerYAML().write(toFile: dir.file("..2026_11_27_1/sluice.yaml"), atomically: false, encoding: .utf8)
        #expect(symlink("..2026_11_27_1", dir.file("..data")) == 0)
        #expect(symlink("..data/sluice.yaml", dir.file("sluice.yaml")) == 0)
        let rig = try ControllerRig(dir: dir)
        let watcher = try Self.watch(rig)
        defer { watcher.stop() }
        #expect(rig.weights()["canary"] == 5)

        try fm.createDirectory(atPath: dir.file("..2026_11_27_2"), withIntermediateDirectories: false)
        try controllerYAML(split: "stable: 80, canary: 20").write(toFile: dir.file("..2026_11_27_2/sluice.yaml"),
                                                                  atomically: false, encoding: .utf8)
        #expect(symlink("..2026_11_27_2", dir.file("..data_tmp")) == 0)
        #expect(rename(dir.file("..data_tmp"), dir.file("..data")) == 0)
        try fm.removeItem(atPath: dir.file("..2026_11_27_1"))
        let took = Self.waitFor(2) { rig.controller.version == 2 }
        #expect(took != nil, "no reload within 2 s")
        #expect(rig.weights()["canary"] == 20)

        // A second swap works as well (the watch is on the top directory, which stays).
        try fm.createDirectory(atPath: dir.file("..2026_11_27_3"), withIntermediateDirectories: false)
        try controllerYAML(split: "stable: 50, canary: 50").write(toFile: dir.file("..2026_11_27_3/sluice.yaml"),
                                                                  atomically: false, encoding: .utf8)
        #expect(symlink("..2026_11_27_3", dir.file("..data_tmp")) == 0)
        #expect(rename(dir.file("..data_tmp"), dir.file("..data")) == 0)
        try fm.removeItem(atPath: dir.file("..2026_11_27_2"))
        #expect(Self.waitFor(2) { rig.controller.version == 3 } != nil)
        #expect(rig.weights()["canary"] == 50)
        #expect(rig.kinds == [.start, .reload, .reload])
        print("inotify: ConfigMap swap reload seen after \(took.map { String(Int($0 * 1000)) } ?? "-") ms")
    }

    @Test func aSymlinkToAFileElsewhereIsFollowed() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.file("real"), withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: dir.file("etc"), withIntermediateDirectories: false)
        try controllerYAML().write(toFile: dir.file("real/sluice.yaml"), atomically: false, encoding: .utf8)
        #expect(symlink(dir.file("real/sluice.yaml"), dir.file("etc/sluice.yaml")) == 0)
        let config = try ConfigLoader.load(path: dir.file("etc/sluice.yaml"), version: 1, resolver: testResolver)
        let events = EventLog()
        let controller = try RoutingController(config: config, events: events, cause: "test", resolver: testResolver,
                                               clock: { ControlClock.unixNanos() })
        let watcher = ConfigWatcher(path: dir.file("etc/sluice.yaml")) { _ = try? controller.reloadIfChanged(cause: "changed") }
        try watcher.start()
        defer { watcher.stop() }
        // Editing the target (in its own directory) is noticed.
        let temp = dir.file("real/.tmp")
        try controllerYAML(split: "stable: 75, canary: 25").write(toFile: temp, atomically: false, encoding: .utf8)
        #expect(rename(temp, dir.file("real/sluice.yaml")) == 0)
        #expect(Self.waitFor(2) { controller.version == 2 } != nil)
    }

    @Test func stopEndsTheThreadPromptly() throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        let watcher = try Self.watch(rig)
        let start = ControlClock.monotonicNanos()
        watcher.stop()
        watcher.stop()
        #expect(ControlClock.monotonicNanos() - start < 1_000_000_000)
        try rig.dir.write("sluice.yaml", controllerYAML(split: "stable: 70, canary: 30"))
        usleep(300_000)
        #expect(rig.controller.version == 1, "a stopped watcher reloads nothing")
    }
}
