import Foundation
@preconcurrency import Glibc
import Testing
import SluiceControl
import SluiceCore
import SluiceProxy

/// Runs the `sluice` binary with `arguments` and extra environment variables.
func runSluiceCLI(_ arguments: [String], environment: [String: String]) throws -> (status: Int32, out: String, err: String) {
    let exe = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
    let process = Process()
    process.executableURL = exe.deletingLastPathComponent().appendingPathComponent("sluice")
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env["SLUICE_ADMIN_TOKEN"] = nil
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Issue 18's admin endpoints and signals through the real server objects and the real binary:
/// /ready against a real proxy drain, systemd's READY=1/STOPPING=1, the token from a file and
/// from the environment on the server and in every CLI command, `sluice health`, the metrics listener.
@Suite(.serialized)
struct AdminOperationsTests {
    @Test func readyTurnsFalseWhenTheDrainStartsWhileTheListenerStillAccepts() throws {
        let upstream = try NamedUpstream("stable")
        defer { upstream.stop() }
        let harness = try ProxyHarness(upstreamPorts: [upstream.port])
        let health = ServiceHealth(notifySocket: nil)
        let server = harness.server
        let admin = try AdminServer(config: harness.config, hub: harness.hub, events: EventLog(), server: server, health: health)
        try admin.start()
        defer { admin.stop() }
        let address = admin.boundAddress!
        #expect(try AdminClient.request("GET", "/ready", to: address).status == 503, "not ready before markReady")
        health.markReady()
        #expect(try AdminClient.request("GET", "/ready", to: address).status == 200)
        health.beginDrain()
        let draining = try AdminClient.request("GET", "/ready", to: address)
        #expect(draining.status == 503 && draining.text == "not ready: draining\n")
        // The proxy still accepts and serves: /ready went false first, so a load balancer stops
        // sending new connections before any is refused.
        let m = try harness.request("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(m.status == 200 && m.bodyText == "stable")
        health.drain(server, timeout: 2_000_000_000)
        #expect((try? TestSocket.connect(port: harness.port, timeoutSeconds: 1)).map { close($0); return false } ?? true,
                "the listener is closed after the drain")
        #expect(try AdminClient.request("GET", "/healthz", to: address).status == 200)
    }

    @Test func theBinaryNotifiesSystemdAndTakesTheTokenFromAFileOrTheEnvironment() throws {
        let upstream = try NamedUpstream("stable")
        defer { upstream.stop() }
        let dir = NSTemporaryDirectory() + "sluice-ops-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tokenFile = dir + "/admin-token"
        try "bin-t0ken\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let notifyPath = dir + "/notify.sock"
        let notify = try bindDatagram(notifyPath)
        defer { close(notify) }
        let port = try TestSocket.closedPort(), adminPort = try TestSocket.closedPort(), metricsPort = try TestSocket.closedPort()
        let configPath = dir + "/sluice.yaml"
        try """
            listeners: [{ name: public, address: "127.0.0.1:\(port)" }]
            state_file: off
            admin: { address: "127.0.0.1:\(adminPort)", token_file: admin-token }
            metrics: { address: "127.0.0.1:\(metricsPort)" }
            upstreams:
              stable: { endpoints: ["127.0.0.1:\(upstream.port)"] }
              canary: { endpoints: ["127.0.0.1:\(upstream.port)"] }
            routes:
              - name: web
                baseline: stable
                split: { stable: 90, canary: 10 }

            """.write(toFile: configPath, atomically: true, encoding: .utf8)
        let exe = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        let process = Process()
        process.executableURL = exe.deletingLastPathComponent().appendingPathComponent("sluice")
        process.arguments = ["run", "--config", configPath, "--workers", "1", "--no-watch"]
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = notifyPath
        env["SLUICE_ADMIN_TOKEN"] = nil
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        // Type=notify: READY=1 once it serves.
        let ready = receiveDatagram(notify, timeoutSeconds: 20)
        #expect(ready?.hasPrefix("READY=1\n") == true, "\(ready ?? "nothing")")
        let admin = "127.0.0.1:\(adminPort)", metrics = "127.0.0.1:\(metricsPort)"
        var r = try runSluiceCLI(["health", "--admin", admin], environment: [:])
        #expect(r.status == 0 && r.out == "\(admin)/healthz: ok\n", "\(r)")
        r = try runSluiceCLI(["health", "--ready", "--admin", metrics], environment: [:])
        #expect(r.status == 0 && r.out == "\(metrics)/ready: ready\n", "\(r)")
        // The token from the file protects reads and changes.
        r = try runSluiceCLI(["history", "--admin", admin], environment: [:])
        #expect(r.status == 1 && r.err.contains("requires Authorization: Bearer") && r.err.contains("--token-file"), "\(r)")
        r = try runSluiceCLI(["history", "--admin", admin, "--token-file", tokenFile], environment: [:])
        #expect(r.status == 0, "\(r)")
        r = try runSluiceCLI(["status", "--admin", admin, "--token-file", tokenFile], environment: [:])
        #expect(r.status == 0 && r.out.contains("web"), "\(r)")
        r = try runSluiceCLI(["abort", "web", "--admin", admin], environment: ["SLUICE_ADMIN_TOKEN": "bin-t0ken"])
        #expect(r.status == 0 && r.out.contains("aborted"), "\(r)")
        r = try runSluiceCLI(["clear", "web", "--config", configPath], environment: [:])
        #expect(r.status == 0, "--config reads admin.token_file: \(r)")
        r = try runSluiceCLI(["status", "--admin", admin, "--token", "wrong"], environment: [:])
        #expect(r.status == 1, "\(r)")
        r = try runSluiceCLI(["status", "--admin", admin, "--token", "x", "--token-file", tokenFile], environment: [:])
        #expect(r.status == 64, "usage error: \(r)")
        // The metrics listener refuses admin routes.
        let scrape = try AdminClient.request("GET", "/admin/history", to: .v4(0x7f00_0001, port: metricsPort), token: "bin-t0ken")
        #expect(scrape.status == 404)

        // SIGTERM: STOPPING=1, then the process exits and health checks fail.
        process.terminate()
        let stopping = receiveDatagram(notify, timeoutSeconds: 10)
        #expect(stopping?.hasPrefix("STOPPING=1\n") == true, "\(stopping ?? "nothing")")
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        r = try runSluiceCLI(["health", "--admin", admin, "--timeout", "1"], environment: [:])
        #expect(r.status == 1, "\(r)")

        // The environment gives the token when the config has none (here a non-loopback admin needs one).
        let envConfig = dir + "/env.yaml"
        try (try String(contentsOfFile: configPath, encoding: .utf8))
            .replacingOccurrences(of: "admin: { address: \"127.0.0.1:\(adminPort)\", token_file: admin-token }",
                                  with: "admin: { address: \"0.0.0.0:\(adminPort)\" }")
            .write(toFile: envConfig, atomically: true, encoding: .utf8)
        r = try runSluiceCLI(["check", "--config", envConfig], environment: [:])
        #expect(r.status == 1 && (r.out + r.err).contains("no admin token is set"), "\(r)")
        r = try runSluiceCLI(["check", "--config", envConfig], environment: ["SLUICE_ADMIN_TOKEN": "env-t0ken"])
        #expect(r.status == 0, "\(r)")
    }

    private func bindDatagram(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { close(fd); throw TestError("bind \(path): errno \(errno)") }
        return fd
    }

    private func receiveDatagram(_ fd: Int32, timeoutSeconds: Int) -> String? {
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 4096, 0) }
        return n < 0 ? nil : String(decoding: buf[0..<n], as: UTF8.self)
    }
}
