import Foundation
@preconcurrency import Glibc
import Testing
import SluiceControl

/// Runs the `sluice` binary with `arguments`, killing it after `seconds` (a regression that starts
/// serving instead of refusing fails the test instead of hanging it). `reason` tells a crash
/// (`.uncaughtSignal`) from an exit.
func runSluiceBounded(_ arguments: [String], seconds: Double = 20)
    throws -> (status: Int32, reason: Process.TerminationReason, out: String, err: String) {
    let exe = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    let process = Process()
    process.executableURL = exe.deletingLastPathComponent().appendingPathComponent("sluice")
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env["SWIFT_BACKTRACE"] = "enable=no"  // a crash must end the process at once, not hang in the backtracer
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let deadline = Date().addingTimeInterval(seconds)
    let outData = LockedBox(Data()), errData = LockedBox(Data())
    let group = DispatchGroup()
    for (pipe, box) in [(out, outData), (err, errData)] {
        group.enter()
        DispatchQueue.global().async {
            let d = pipe.fileHandleForReading.readDataToEndOfFile()
            box.update { $0 = d }
            group.leave()
        }
    }
    while process.isRunning && Date() < deadline { usleep(20_000) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    group.wait()
    return (process.terminationStatus, process.terminationReason,
            String(decoding: outData.get(), as: UTF8.self), String(decoding: errData.get(), as: UTF8.self))
}

/// Issue 17's crash cases, through the real binary: each used to kill `sluice check`, `sluice
/// run` or a running instance; each is now a clear error while the old table keeps serving.
@Suite(.serialized)
struct HostileFilesCLITests {
    static let dir = NSTemporaryDirectory() + "sluice-hostile-cli-\(getpid())"

    /// Writes `text` to a fresh file in the test folder and returns its path.
    func file(_ name: String, _ text: String) throws -> String {
        try FileManager.default.createDirectory(atPath: Self.dir, withIntermediateDirectories: true)
        let path = Self.dir + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let base = """
        listeners: [{ name: public, address: "127.0.0.1:0" }]
        admin: { address: "127.0.0.1:0" }
        state_file: off
        upstreams:
          stable: { endpoints: ["127.0.0.1:9"] }
          canary: { endpoints: ["127.0.0.1:9"] }

        """

    @Test func checkRefusesADeeplyNestedRegexInsteadOfCrashing() throws {
        let deep = String(repeating: "(", count: 50_000) + "a" + String(repeating: ")", count: 50_000)
        let path = try file("deep.yaml", Self.base + """
            routes:
              - name: web
                match: { header: { name: X-A, regex: '\(deep)' } }
                upstream: stable
            """)
        let r = try runSluiceBounded(["check", "--config", path])
        #expect(r.reason == .exit && r.status == 1, "\(r)")
        // Problems on stderr, then one summary line (issue 18's CLI convention).
        #expect(r.err.hasPrefix("\(path):9:42: routes[0].match.header.regex: invalid regex `\(String(repeating: "(", count: 40))... "
                                + "(100001 bytes)`: pattern is too long (100001 bytes, at most 4096) (at offset 4096)\n"), "\(r.err)")
        #expect(r.err.hasSuffix("\(path): 1 problem, nothing changed\n"))
        // Within the length limit, nesting deeper than 32 levels.
        let nested = String(repeating: "(", count: 2_000) + String(repeating: ")", count: 2_000)
        try (Self.base + "routes: [{ name: web, upstream: stable, match: { header: { name: X-A, regex: '\(nested)' } } }]\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let n = try runSluiceBounded(["check", "--config", path])
        #expect(n.reason == .exit && n.status == 1)
        #expect(n.err.contains("groups nest too deep (at most 32 levels) (at offset 32)"), "\(n.err)")
    }

    @Test func checkRefusesDurationsThatUsedToTrapLater() throws {
        let path = try file("durations.yaml", Self.base + """
            timeouts: { client_header: 18446744073s }
            routes:
              - name: web
                split: { stable: 100, canary: 0 }
                rollout: { canary: canary, step_duration: 18446744073709ms }
            """)
        let r = try runSluiceBounded(["check", "--config", path])
        #expect(r.reason == .exit && r.status == 1, "\(r)")
        #expect(r.err == """
            \(path):7:28: timeouts.client_header: duration `18446744073s` is too long: client_header is at most 1d
              hint: e.g. `client_header: 10s`
            \(path):11:47: routes[0].rollout.step_duration: duration `18446744073709ms` is too long: step_duration is at most 30d
              hint: e.g. `step_duration: 10s`
            \(path): 2 problems, nothing changed

            """)
        // `run` refuses it the same way (exit 1, before listening), never a trap at start.
        let run = try runSluiceBounded(["run", "--config", path])
        #expect(run.reason == .exit && run.status == 1, "\(run)")
        #expect(run.err.contains("step_duration: duration `18446744073709ms` is too long"))
    }

    @Test func checkAndRunRefuseEndlessFiles() throws {
        let r = try runSluiceBounded(["check", "--config", "/dev/zero"])
        #expect(r.reason == .exit && r.status == 1, "\(r)")
        #expect(r.err.hasPrefix("/dev/zero: cannot read config file: /dev/zero: larger than 16MiB, the most sluice reads from one file\n"))
        let path = try file("ok.yaml", Self.base + "routes: [{ name: web, upstream: stable }]\n")
        let run = try runSluiceBounded(["run", "--config", path, "--state-file", "/dev/zero"])
        #expect(run.reason == .exit && run.status == 1, "\(run)")
        #expect(run.err.contains("cannot read state file /dev/zero: not a regular file"), "\(run.err)")
    }

    @Test func runRefusesAWorkerCountBeyondTheConfigBound() throws {
        let path = try file("workers.yaml", Self.base + "routes: [{ name: web, upstream: stable }]\n")
        let r = try runSluiceBounded(["run", "--config", path, "--workers", "100000000"])
        // A usage error (issue 18's convention): exit 64 with the message and the usage.
        #expect(r.reason == .exit && r.status == 64, "\(r)")
        #expect(r.err.contains("--workers must be 1...1024 (as `workers` in the config)"), "\(r.err)")
    }

    @Test(arguments: [
        ("{\"format\": 1, \"version\": 18446744073709551615, \"overrides\": {}}",
         "`version` 18446744073709551615 is out of range (at most 9007199254740991)"),
        ("{\"format\": 1, \"version\": 18446744073709551614, \"overrides\": {}}",
         "`version` 18446744073709551614 is out of range (at most 9007199254740991)"),
        ("{\"format\": 1, \"version\": 3, \"overrides\": {\"web\": {\"kind\": \"split\", \"since\": \"x\", \"version\": 2, "
            + "\"weights\": [{\"cohort\": \"stable\", \"weight\": 1e300}, {\"cohort\": \"canary\", \"weight\": 0}]}}}",
         "`overrides.web.weights[0].weight`: weight 1e+300 of cohort `stable` is not a percentage from 0 to 100"),
        ("{\"format\": 1, \"version\": 3, \"overrides\": {}, \"rollouts\": {\"web\": {\"state\": \"progressing\", \"step\": 0, "
            + "\"canary_weight\": 100, \"elapsed_at_step_ns\": 18446744073709551615, \"consecutive_failures\": 0, \"last_decision\": \"\"}}}",
         "`rollouts.web.elapsed_at_step_ns` 18446744073709551615 is out of range (at most 315360000000000000, 10 years)"),
    ])
    func runRefusesAHostileStateFile(state: String, problem: String) throws {
        let statePath = try file("state-\(UInt32.random(in: 0...UInt32.max)).json", state)
        let path = try file("run.yaml", Self.base.replacingOccurrences(of: "state_file: off", with: "state_file: \(statePath)") + """
            routes:
              - name: web
                split: { stable: 100, canary: 0 }
                rollout: { canary: canary }
            """)
        let r = try runSluiceBounded(["run", "--config", path])
        #expect(r.reason == .exit && r.status == 1, "\(r)")
        // One error line on stderr (a JSON log line when stderr is not a terminal, issue 18).
        #expect(r.err.contains("cannot start: state file \(statePath) is not valid: \(problem) "
                               + "(remove or fix it to start without the runtime overrides it holds)"), "\(r.err)")
    }

    @Test func aRunningSluiceRejectsHostileReloadsAndKeepsServing() throws {
        let stable = try NamedUpstream("stable"), canary = try NamedUpstream("canary")
        defer { stable.stop(); canary.stop() }
        func yaml(_ route: String) -> (UInt16) -> String {
            { port in
                """
                listeners: [{ name: public, address: "127.0.0.1:\(port)" }]
                upstreams:
                  stable: { endpoints: ["127.0.0.1:\(stable.port)"] }
                  canary: { endpoints: ["127.0.0.1:\(canary.port)"] }
                routes:
                \(route)
                """
            }
        }
        let good = "  - { name: web, split: { stable: 100, canary: 0 }, sticky: none, rollout: { canary: canary } }"
        let s = try SluiceProcess(yaml: yaml(good))
        defer { _ = s.stop() }
        let admin = "\nadmin: { address: \"127.0.0.1:\(s.adminPort)\" }\n"
        func get(_ target: String) throws -> TestMessage? {
            let fd = try TestSocket.connect(port: s.port)
            defer { close(fd) }
            try TestSocket.send(fd, "GET \(target) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return try TestReader(fd: fd).readMessage(isResponse: true)
        }
        #expect(try get("/")?.bodyText == "stable")

        let deep = String(repeating: "(", count: 50_000) + "a" + String(repeating: ")", count: 50_000)
        let hostile = [
            ("  - { name: web, upstream: stable, match: { header: { name: X-A, regex: '\(deep)' } } }", "pattern is too long"),
            ("  - { name: web, split: { stable: 100, canary: 0 }, rollout: { canary: canary, step_duration: 18446744073709ms } }",
             "step_duration: duration `18446744073709ms` is too long"),
            ("  - { name: web, upstream: stable, cohort_header: Content-Length }", "`Content-Length` cannot be the cohort header"),
            ("  - { name: web, respond: { status: 101 } }", "status 101 is an interim (1xx) response"),
        ]
        for (route, message) in hostile {
            try (yaml(route)(s.port) + admin).write(toFile: s.configPath, atomically: true, encoding: .utf8)
            let r = try runSluiceCLI(["reload", "--config", s.configPath])
            #expect(r.status == 1, "\(r)")
            #expect(r.err.contains("sluice reload: config rejected (1 problem), still serving version 1"), "\(r.err)")
            #expect(r.err.contains(message), "\(r.err)")
            // Alive and serving the old table; the rollout status (which trapped before) answers.
            #expect(s.process.isRunning)
            #expect(try get("/")?.bodyText == "stable")
            let rollouts = try runSluiceCLI(["rollout", "status", "--config", s.configPath, "web"])
            #expect(rollouts.status == 0 && rollouts.out.contains("web"), "\(rollouts)")
            let fd = try TestSocket.connect(port: s.adminPort)
            defer { close(fd) }
            try TestSocket.send(fd, "GET /admin/rollouts HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            let all = try TestReader(fd: fd).readMessage(isResponse: true)
            #expect(all?.status == 200 && all?.bodyText.contains("\"step_duration\"") == true, "\(String(describing: all?.bodyText))")
        }
    }

    @Test func aPlantedSymlinkAtTheStateTempFileIsNotFollowed() throws {
        let stable = try NamedUpstream("stable"), canary = try NamedUpstream("canary")
        defer { stable.stop(); canary.stop() }
        let victim = try file("victim-\(UInt32.random(in: 0...UInt32.max))", "precious\n")
        let s = try SluiceProcess(yaml: { port in
            """
            listeners: [{ name: public, address: "127.0.0.1:\(port)" }]
            upstreams:
              stable: { endpoints: ["127.0.0.1:\(stable.port)"] }
              canary: { endpoints: ["127.0.0.1:\(canary.port)"] }
            routes: [{ name: web, split: { stable: 100, canary: 0 }, sticky: none }]
            """
        })
        defer {
            _ = s.stop()
            unlink(s.configPath + ".state.json")
        }
        let temp = s.configPath + ".state.json.tmp-\(s.process.processIdentifier)"
        #expect(symlink(victim, temp) == 0)
        defer { unlink(temp) }
        let r = try runSluiceCLI(["split", "--config", s.configPath, "web", "stable=90", "canary=10"])
        #expect((r.out + r.err).contains("runtime state not saved (a restart would lose this change): refusing to write \(temp): "
                                         + "it exists and is a symbolic link"), "\(r)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious\n")
        // Once the link is gone, the next change writes the state file.
        unlink(temp)
        let again = try runSluiceCLI(["split", "--config", s.configPath, "web", "stable=80", "canary=20"])
        #expect(again.status == 0 && !(again.out + again.err).contains("not saved"), "\(again)")
        #expect(try RuntimeStateFile.read(path: s.configPath + ".state.json")?.overrides["web"]?.summary == "split stable=80% canary=20%")
    }
}
