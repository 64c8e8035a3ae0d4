import Foundation
@preconcurrency import Glibc
import Testing

/// One error style for every command: usage errors exit 64 with the usage, runtime errors exit 1
/// with one line on standard error; `sluice check` prints problems on standard error and one
/// summary line.
@Suite struct CLIConventionTests {
    /// A config file in a fresh temp dir.
    static func configFile(_ text: String) throws -> String {
        let dir = NSTemporaryDirectory() + "sluice-cli-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/sluice.yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let valid = """
        listeners: [{ name: public, address: 127.0.0.1:0 }]
        upstreams: { stable: { endpoints: ["127.0.0.1:9"] } }
        routes:
          - name: health
            match: { path: /healthz }
            respond: { status: 200, body: "ok" }
          - name: web
            split: { stable: 100 }
        """

    static let invalid = """
        listeners: [{ name: public, address: 127.0.0.1:0 }]
        upstreams: { stable: { endpoints: ["127.0.0.1:9"] } }
        routes:
          - name: web
            split: { stable: 90, nope: 10 }
            sticky: sometimes
        """

    @Test func checkPrintsProblemsOnStderrAndOneSummaryLine() throws {
        let good = try Self.configFile(Self.valid)
        var r = try runSluiceCLI(["check", "--config", good])
        #expect(r.status == 0 && r.err.isEmpty)
        #expect(r.out.hasPrefix("\(good): OK\n"))
        // A route that only responds says so, instead of an empty split.
        #expect(r.out.contains("  route health: direct responses only (no cohorts)\n"), "\(r.out)")
        #expect(!r.out.split(separator: "\n").contains { $0.hasSuffix(": ") || $0.hasSuffix(":") })

        let bad = try Self.configFile(Self.invalid)
        r = try runSluiceCLI(["check", "--config", bad])
        #expect(r.status == 1)
        #expect(r.out.isEmpty, "problems go to stderr: \(r.out)")
        let lines = r.err.split(separator: "\n")
        #expect(lines.last == "\(bad): 2 problems, nothing changed", "\(r.err)")
        // Each problem (with its hint line), then exactly one summary line.
        #expect(lines.filter { $0.hasPrefix("\(bad):") }.count == 3, "\(r.err)")
        #expect(lines.dropLast().allSatisfy { $0.hasPrefix("\(bad):5:") || $0.hasPrefix("\(bad):6:") || $0.hasPrefix("  hint: ") },
                "\(r.err)")
        #expect(r.err.contains("nope") && r.err.contains("sometimes"))
    }

    @Test func usageErrorsExit64WithTheUsage() throws {
        let good = try Self.configFile(Self.valid)
        for args in [
            ["run", "--config", good, "--workers", "0"],
            ["run"],
            ["status", "--admin", "not-an-address"],
            ["status", "--window", "7m"],
            ["split", "--admin", "127.0.0.1:1", "web", "stable=abc"],
            ["split", "--config", good, "--admin", "127.0.0.1:1", "web", "stable=100"],
            ["no-such-command"],
        ] {
            let r = try runSluiceCLI(args)
            #expect(r.status == 64, "\(args): \(r.status) \(r.err)")
            #expect(r.err.contains("Usage: sluice") || r.err.contains("USAGE: sluice"), "\(args): \(r.err)")
            #expect(r.out.isEmpty, "\(args)")
        }
    }

    @Test func runtimeErrorsExit1WithOneLine() throws {
        // Nothing listens on port 1: every command that needs the admin API says so in one line.
        for args in [["status", "--admin", "127.0.0.1:1", "--timeout", "1"], ["reload", "--admin", "127.0.0.1:1", "--timeout", "1"],
                     ["split", "--admin", "127.0.0.1:1", "--timeout", "1", "web", "stable=100"],
                     ["history", "--admin", "127.0.0.1:1", "--timeout", "1"]] {
            let r = try runSluiceCLI(args)
            #expect(r.status == 1, "\(args): \(r.status) \(r.err)")
            #expect(r.err.split(separator: "\n").count == 1, "\(args): \(r.err)")
            #expect(r.err.hasPrefix("sluice \(args[0]): cannot reach the admin API at 127.0.0.1:1"), "\(args): \(r.err)")
        }
        // A missing config file for a control command, and an invalid one for `run` and `status`.
        var r = try runSluiceCLI(["reload", "--config", "/nonexistent/sluice.yaml"])
        #expect(r.status == 1 && r.err.split(separator: "\n").count == 1, "\(r.err)")
        let bad = try Self.configFile(Self.invalid)
        r = try runSluiceCLI(["status", "--config", bad])
        #expect(r.status == 1 && r.err.split(separator: "\n").count == 1, "\(r.err)")
        #expect(r.err.contains("2 problems"))
        r = try runSluiceCLI(["run", "--config", bad])
        #expect(r.status == 1, "\(r.err)")
        #expect(r.err.split(separator: "\n").last == "sluice run: cannot start: \(bad) has 2 problems", "\(r.err)")
    }
}

/// `sluice run`'s own messages as a log collector sees them (stdout and stderr are pipes).
@Suite struct ServerLogProcessTests {
    @Test func startFailureIsOneJSONErrorLineOnStderr() throws {
        // 192.0.2.1 (TEST-NET-1) is not an address of this machine: bind fails at start.
        let path = try CLIConventionTests.configFile("""
            listeners: [{ name: public, address: 192.0.2.1:8080 }]
            admin: { address: 127.0.0.1:0 }
            state_file: off
            upstreams: { stable: { endpoints: ["127.0.0.1:9"] } }
            routes: [{ name: web, split: { stable: 100 } }]
            """)
        let r = try runSluiceCLI(["run", "--config", path])
        #expect(r.status == 1)
        #expect(r.out.isEmpty, "\(r.out)")
        let lines = r.err.split(separator: "\n")
        #expect(lines.count == 1, "\(r.err)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data((lines.first ?? "").utf8)) as? [String: Any])
        #expect(object["level"] as? String == "error")
        #expect((object["msg"] as? String)?.hasPrefix("cannot start:") == true, "\(object)")
        #expect((object["time"] as? String)?.hasSuffix("Z") == true)
    }
}

/// A state file that cannot be written is reported when the server starts.
@Suite struct StateFileWarningTests {
    @Test func unwritableStateFileIsAWarningAtStart() throws {
        let port = try TestSocket.closedPort()
        let path = try CLIConventionTests.configFile("""
            listeners: [{ name: public, address: "127.0.0.1:\(port)" }]
            admin: { address: 127.0.0.1:0 }
            state_file: /nonexistent-dir/sluice/state.json
            upstreams: { stable: { endpoints: ["127.0.0.1:9"] } }
            routes: [{ name: web, split: { stable: 100 } }]
            """)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DeployTests.sluiceBinary)
        process.arguments = ["run", "--config", path, "--no-watch"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Signals are blocked from the start and handled once it serves, after the warning: wait
        // until it listens, then SIGTERM.
        #expect(eventually(10) { (try? TestSocket.connect(port: port, timeoutSeconds: 1)).map { close($0); return true } ?? false })
        process.terminate()
        process.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let warning = try #require(text.split(separator: "\n").first { $0.contains("\"level\":\"warning\"") }, "\(text)")
        #expect(warning.contains("cannot write the state file /nonexistent-dir/sluice/state.json"))
        #expect(warning.contains("will not survive a restart"))
        #expect(process.terminationStatus == 0)
    }
}
