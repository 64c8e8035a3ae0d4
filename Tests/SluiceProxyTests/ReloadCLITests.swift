import Foundation
@preconcurrency import Glibc
import Testing
import SluiceControl

/// Runs the `sluice` binary built next to the test bundle with `arguments`.
func runSluiceCLI(_ arguments: [String], cwd: String? = nil) throws -> (status: Int32, out: String, err: String) {
    let exe = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    let process = Process()
    process.executableURL = exe.deletingLastPathComponent().appendingPathComponent("sluice")
    process.arguments = arguments
    if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// The control commands against the real binary: split, switch, abort, history, rollback,
/// reload (valid and invalid), a file change, SIGHUP, and a restart keeping the override.
@Suite(.serialized)
struct ReloadCLITests {
    @Test func controlCommandsDriveARunningSluice() throws {
        let stable = try NamedUpstream("stable"), canary = try NamedUpstream("canary")
        defer { stable.stop(); canary.stop() }
        let stateFile = NSTemporaryDirectory() + "sluice-cli-state-\(getpid()).json"
        defer { try? FileManager.default.removeItem(atPath: stateFile) }
        func yaml(_ split: String) -> (UInt16) -> String {
            { port in
                reloadYAML(stable: stable.port, canary: canary.port, split: split)
                    .replacingOccurrences(of: "127.0.0.1:0", with: "127.0.0.1:\(port)")
                    .replacingOccurrences(of: "state_file: off", with: "state_file: \(stateFile)")
            }
        }
        func bodies(_ port: UInt16, _ n: Int = 10) throws -> Set<String> {
            var out = Set<String>()
            for _ in 0..<n {
                let fd = try TestSocket.connect(port: port)
                defer { close(fd) }
                try TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if let m = try TestReader(fd: fd).readMessage(isResponse: true) { out.insert(m.bodyText) }
            }
            return out
        }

        var a: SluiceProcess? = try SluiceProcess(yaml: yaml("stable: 95, canary: 5"))
        defer { _ = a?.stop() }
        let p = a!.configPath
        var r = try runSluiceCLI(["split", "--config", p, "web", "stable=90", "canary=10"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out == "web: split stable=90% canary=10% (version 2)\n")
        r = try runSluiceCLI(["split", "--config", p, "web", "stable=abc", "canary=10"])
        #expect(r.status != 0)
        #expect(r.err.contains("invalid weight `abc`"), "\(r.err)")
        r = try runSluiceCLI(["split", "--config", p, "web", "stable=90", "green=10"])
        #expect(r.status == 1)
        #expect(r.err == "sluice split: route `web` has no cohort `green` (cohorts: `stable`, `canary`)\n", "\(r.err)")
        r = try runSluiceCLI(["switch", "--admin", "127.0.0.1:\(a!.adminPort)", "web", "canary"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out == "web: switched to canary (stable=0% canary=100%) (version 3)\n")
        #expect(try bodies(a!.port) == ["canary"])
        r = try runSluiceCLI(["abort", "--config", p, "web"])
        #expect(r.out == "web: aborted, all traffic to stable (version 4)\n", "\(r.err)")
        #expect(try bodies(a!.port) == ["stable"])
        r = try runSluiceCLI(["history", "--config", p])
        #expect(r.status == 0)
        #expect(r.out.split(separator: "\n").contains { $0.hasPrefix("*  4 ") && $0.contains("abort") }, "\(r.out)")
        #expect(r.out.contains("runtime overrides in force:\n  web: abort (all to stable)"))
        // After an abort, going back to the 10% canary is refused (exit 1, what it would do, nothing changed)...
        for command in [["rollback", "--config", p, "--to", "2"], ["rollback", "--config", p], ["undo", "--config", p]] {
            r = try runSluiceCLI(command)
            #expect(r.status == 1, "\(command): \(r.out)")
            #expect(r.out == "")
            let to = command.contains("--to") ? "2" : "3"
            #expect(r.err.hasPrefix("sluice \(command[0]): refused: going back to version \(to) would send more traffic to a "
                                    + "cohort that is not the baseline (web: canary 0%→"), "\(r.err)")
            #expect(r.err.contains("Nothing changed. To publish it anyway, repeat with --force"))
        }
        #expect(try bodies(a!.port) == ["stable"])
        r = try runSluiceCLI(["history", "--config", p])
        #expect(r.out.split(separator: "\n").contains { $0.hasPrefix("*  4 ") }, "still version 4: \(r.out)")
        // ... unless forced.
        r = try runSluiceCLI(["rollback", "--config", p, "--to", "2", "--force"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.hasPrefix("rolled back to version 2, serving it as version 5 (was 4): "))
        r = try runSluiceCLI(["rollback", "--config", p, "--to", "99"])
        #expect(r.status == 1)
        #expect(r.err.contains("version 99 is not in the history"))

        // Restart: the split of version 2 (in force again after the rollback) is restored.
        #expect(a!.stop() == 0)
        a = nil
        let b = try SluiceProcess(yaml: yaml("stable: 95, canary: 5"))
        defer { _ = b.stop() }
        r = try runSluiceCLI(["history", "--config", b.configPath, "--json"])
        let history = try JSONDecoder().decode(HistoryReport.self, from: Data(r.out.utf8))
        #expect(history.currentVersion == 6)
        #expect(history.overrides["web"]?.summary == "split stable=90% canary=10%")
        r = try runSluiceCLI(["status", "--config", b.configPath])
        #expect(r.out.contains("runtime override: split stable=90% canary=10%"), "\(r.out)")

        // An invalid file: `sluice reload` prints every problem and fails; the old table serves.
        try yaml("stable: 95, canary: 6")(b.port).appending("\nadmin: { address: \"127.0.0.1:\(b.adminPort)\" }\n")
            .write(toFile: b.configPath, atomically: true, encoding: .utf8)
        r = try runSluiceCLI(["reload", "--config", b.configPath])
        #expect(r.status == 1)
        #expect(r.err.contains("sluice reload: config rejected (1 problem), still serving version 6"), "\(r.err)")
        #expect(r.err.contains("routes[0].split: weights sum to 101, must be 100"))
        r = try runSluiceCLI(["history", "--config", b.configPath, "--json"])
        #expect(try JSONDecoder().decode(HistoryReport.self, from: Data(r.out.utf8)).currentVersion == 6)
        #expect(try bodies(b.port).isSubset(of: ["stable", "canary"]))

        // A valid file is picked up by the watcher (the file changed web's split: the override goes).
        try yaml("stable: 0, canary: 100")(b.port).appending("\nadmin: { address: \"127.0.0.1:\(b.adminPort)\" }\n")
            .write(toFile: b.configPath, atomically: true, encoding: .utf8)
        // Wait for the watcher's own history entry (a probe of a few requests could meet only canary
        // answers by chance under the old 90/10 split, and SIGHUP would then win the race).
        #expect(eventually(5) {
            (try? runSluiceCLI(["history", "--config", b.configPath]))?.out.contains("config file changed") == true
        }, "the file change was not picked up")
        #expect(try bodies(b.port, 20) == ["canary"])
        // SIGHUP reloads too.
        kill(b.process.processIdentifier, SIGHUP)
        #expect(eventually(2) {
            let h = try? runSluiceCLI(["history", "--config", b.configPath])
            return h?.out.contains("SIGHUP") == true
        })
        r = try runSluiceCLI(["history", "--config", b.configPath])
        #expect(r.out.contains("no runtime overrides"), "\(r.out)")
        #expect(r.out.contains("config file changed"))
        // Reaching nothing fails clearly.
        r = try runSluiceCLI(["abort", "--admin", "127.0.0.1:\(try TestSocket.refusedPort())", "web"])
        #expect(r.status == 1)
        #expect(r.err.contains("cannot reach the admin API"))
    }
}
