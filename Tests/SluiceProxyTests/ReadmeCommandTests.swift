import Foundation
@preconcurrency import Glibc
@testable import SluiceControl
import Testing

/// Every command in the README's ```sh blocks either runs here (offline, with the binary just
/// built) and succeeds, or is listed with the reason it cannot (root, Docker, a cluster, a
/// multi-minute build); a new command the test does not know fails it, so the README and the
/// binary cannot drift apart silently. The README's full config example loads.
@Suite(.serialized) struct ReadmeCommandTests {
    /// What the test does with a command.
    enum Plan: Equatable {
        /// Run it; it must exit 0.
        case run
        /// A server: start it, check it serves, stop it with SIGTERM (exit 0).
        case server
        /// Not run here, for this reason (files it names must exist).
        case skip(String)
    }

    static func plan(_ command: String) -> Plan? {
        let rules: [(String, Plan)] = [
            ("swift test", .skip("the test suite itself (CI runs it)")),
            ("swift build", .skip("a release build takes minutes; scripts/build-release.sh does the same")),
            ("scripts/build-release.sh", .skip("a release build takes minutes (CI builds debug)")),
            ("sudo ", .skip("installs into the system: needs root and systemd as PID 1")),
            ("docker ", .skip("needs a Docker engine")),
            ("kubectl ", .skip("needs a Kubernetes cluster (DeployTests checks the manifests)")),
        ]
        for (prefix, plan) in rules where command.hasPrefix(prefix) { return plan }
        let words = command.split(separator: " ").map(String.init)
        guard let exe = words.first, exe == "sluice" || exe.hasSuffix("/sluice"), words.count > 1 else {
            return command.hasPrefix("swift run sluice ") ? plan("sluice " + command.dropFirst(17)) : nil
        }
        switch words[1] {
        case "check", "help", "--help", "--version": return .run
        case "run", "demo": return .server
        default: return nil
        }
    }

    /// The commands of the README's ```sh blocks: comments dropped, `\` continuations joined.
    static func commands() throws -> [String] {
        let readme = try DeployTests.read("README.md")
        var out: [String] = []
        var inSh = false, pending = ""
        for raw in readme.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(raw)
            if line.hasPrefix("```") {
                inSh = !inSh && line == "```sh"
                continue
            }
            guard inSh else { continue }
            var text = line
            if let hash = text.range(of: " #") { text = String(text[..<hash.lowerBound]) }
            text = text.trimmingCharacters(in: .whitespaces)
            if text.hasSuffix("\\") {
                pending += text.dropLast() + " "
                continue
            }
            text = (pending + text).trimmingCharacters(in: .whitespaces)
            pending = ""
            if !text.isEmpty { out.append(text) }
        }
        return out
    }

    @Test func everyReadmeCommandRunsOrHasAReason() throws {
        let commands = try Self.commands()
        // `sluice --help` lists the subcommands, two spaces in.
        let subcommands = Set(try runSluiceCLI(["--help"]).out.split(separator: "\n")
            .filter { $0.hasPrefix("  ") && !$0.hasPrefix("   ") }.compactMap { $0.split(separator: " ").first.map(String.init) }
            .filter { $0 != "sluice" })
        #expect(subcommands.isSuperset(of: ["run", "check", "status", "split"]), "\(subcommands)")
        #expect(commands.count >= 10)
        var ran = 0
        for command in commands {
            guard let plan = Self.plan(command) else {
                Issue.record("README command the test does not know: `\(command)`: run it here or give the reason it cannot be")
                continue
            }
            let words = command.split(separator: " ").map(String.init)
            switch plan {
            case .skip(let reason):
                // The repository files it names exist.
                for (i, w) in words.enumerated() where (w.hasPrefix("config/") || w.hasPrefix("deploy/") || w.hasPrefix("scripts/"))
                    && (i == 0 || words[i - 1] != "exec") {  // `kubectl exec deploy/sluice` names a Deployment
                    let path = w.split(separator: ":").first.map(String.init) ?? w
                    #expect(FileManager.default.fileExists(atPath: DeployTests.root + "/" + path), "`\(command)` (\(reason)): no \(path)")
                }
                // A sluice command inside it has flags that exist.
                if let i = words.indices.first(where: { words[$0] == "sluice" && $0 + 1 < words.count
                                                          && subcommands.contains(words[$0 + 1]) }) {
                    try DeployTests().checkSluiceArguments(Array(words[(i + 1)...]), source: "README `\(command)`")
                }
            case .run:
                let args = Array(words.dropFirst(command.hasPrefix("swift run") ? 3 : 1))
                let r = try runSluiceCLI(args, cwd: DeployTests.root)
                #expect(r.status == 0, "`\(command)`: exit \(r.status)\n\(r.err)")
                ran += 1
            case .server:
                let args = Array(words.drop { !$0.hasSuffix("sluice") }.dropFirst())
                try runServer(args, command: command)
                ran += 1
            }
        }
        #expect(ran >= 3, "only \(ran) README commands ran")
    }

    /// Starts `sluice ARGS` from the repository root, checks it answers on 127.0.0.1:8080 (where
    /// the README's configs and the demo listen), and stops it with SIGTERM. When the port is
    /// taken (another program on this machine), the command must fail with a clear bind error.
    func runServer(_ args: [String], command: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DeployTests.sluiceBinary)
        process.arguments = args + (args.first == "run" ? ["--no-watch", "--state-file", "off"] : [])
        process.currentDirectoryURL = URL(fileURLWithPath: DeployTests.root)
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let answered = eventually(10) {
            guard process.isRunning, let fd = try? TestSocket.connect(port: 8080, timeoutSeconds: 1) else { return !process.isRunning }
            close(fd)
            return true
        }
        if !process.isRunning {
            let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(e.contains("Address already in use") || e.contains("cannot start"), "`\(command)` exited: \(e)")
            return
        }
        #expect(answered, "`\(command)` did not listen on 127.0.0.1:8080")
        if args.first == "demo" {
            // The demo answers through its built-in upstreams.
            let fd = try TestSocket.connect(port: 8080)
            defer { close(fd) }
            try TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let m = try #require(try TestReader(fd: fd).readMessage(isResponse: true))
            #expect(m.bodyText.hasPrefix("stable v1") || m.bodyText.hasPrefix("canary v2"), "\(m.bodyText)")
        }
        process.terminate()  // SIGTERM: drain and exit 0
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "`\(command)` exit \(process.terminationStatus)")
    }

    @Test func readmeConfigExampleLoads() throws {
        let readme = try DeployTests.read("README.md")
        let start = try #require(readme.range(of: "```yaml\nworkers: auto\n"))
        let end = try #require(readme.range(of: "```", range: start.upperBound..<readme.endIndex))
        let yaml = String(readme[readme.index(start.lowerBound, offsetBy: 8)..<end.lowerBound])
        let resolver = HostResolver { _ in .success([.v4(0x7f00_0001, port: 0)]) }
        let config = try ConfigLoader.load(text: yaml, path: "README.md", version: 1, resolver: resolver)
        #expect(config.table.routes.map(\.name) == ["web"])
    }

    @Test func planKnowsTheCommandKinds() {
        #expect(Self.plan(".build/release/sluice check --config config/canary.yaml") == .run)
        #expect(Self.plan("swift run sluice demo") == .server)
        #expect(Self.plan("sluice split web a=1") == nil)
        #expect(Self.plan("rm -rf /") == nil)
    }
}
