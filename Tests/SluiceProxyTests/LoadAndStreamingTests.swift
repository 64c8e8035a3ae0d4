import Foundation
@preconcurrency import Glibc
import Testing
import SluiceCore
import SluiceProxy

@Suite(.serialized)
struct LoadTests {
    @Test func tenThousandKeepAliveRequestsOver64Connections() throws {
        let up = try TestUpstream { r in
            let path = String(r.startLine.split(separator: " ")[1])
            let body = String(repeating: path, count: 1 + path.count % 7)
            return .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\nX-Req: \(path)\r\n\r\n\(body)".utf8))
        }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port], workers: 2)
        defer { proxy.stop() }
        let connections = 64
        let total = 10_000
        let failures = LockedBox<[String]>([])
        let served = LockedBox(0)
        let group = DispatchGroup()
        for c in 0..<connections {
            group.enter()
            let t = Thread {
                defer { group.leave() }
                do {
                    let fd = try proxy.connect()
                    defer { close(fd) }
                    let reader = TestReader(fd: fd)
                    var i = c
                    while i < total {
                        let path = "/c\(c)-r\(i)"
                        try TestSocket.send(fd, "GET \(path) HTTP/1.1\r\nHost: load\r\n\r\n")
                        guard let m = try reader.readMessage(isResponse: true) else { throw TestError("EOF") }
                        let body = String(repeating: path, count: 1 + path.count % 7)
                        let expected = "HTTP/1.1 200 OK\r\nX-Req: \(path)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                        if m.raw != Array(expected.utf8) {
                            failures.update { $0.append("\(path): \(String(decoding: m.raw, as: UTF8.self).debugDescription)") }
                        }
                        served.update { $0 += 1 }
                        i += connections
                    }
                } catch {
                    failures.update { $0.append("connection \(c): \(error)") }
                }
            }
            t.start()
        }
        #expect(group.wait(timeout: .now() + 120) == .success)
        #expect(failures.get().isEmpty, "\(failures.get().prefix(5))")
        #expect(served.get() == total)
        #expect(up.requests.count == total)
        // Keep-alive both ways: far fewer upstream connections than requests.
        #expect(up.connections <= 2 * connections)
    }
}

/// Runs the real `sluice` binary (built next to the test bundle) so its memory can be measured alone.
final class SluiceProcess {
    let process = Process()
    let port: UInt16
    let configPath: String

    /// Port of the process's admin API (a free port picked at start).
    let adminPort: UInt16

    /// `yaml` gets the listener port; an `admin:` section on a free port is added.
    init(workers: Int = 1, yaml: (UInt16) -> String) throws {
        let exe = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        let binary = exe.deletingLastPathComponent().appendingPathComponent("sluice")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw TestError("sluice binary not found at \(binary.path); run `swift build` first")
        }
        port = try TestSocket.closedPort()
        adminPort = try TestSocket.closedPort()
        configPath = NSTemporaryDirectory() + "sluice-test-\(getpid())-\(port).yaml"
        try (yaml(port) + "\nadmin: { address: \"127.0.0.1:\(adminPort)\" }\n").write(toFile: configPath, atomically: true, encoding: .utf8)
        process.executableURL = binary
        process.arguments = ["run", "--config", configPath, "--workers", "\(workers)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let p = port
        guard eventually(10, { (try? TestSocket.connect(port: p)).map { close($0); return true } ?? false }) else {
            process.terminate()
            throw TestError("sluice did not start listening")
        }
    }

    /// One sample of the process's /metrics (`name{labels}` -> value); empty if unreachable.
    func metrics() -> [String: Double] {
        guard let fd = try? TestSocket.connect(port: adminPort) else { return [:] }
        defer { close(fd) }
        guard (try? TestSocket.send(fd, "GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")) != nil,
              let m = try? TestReader(fd: fd).readMessage(isResponse: true) else { return [:] }
        var out: [String: Double] = [:]
        for line in m.bodyText.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            out[String(line[..<space])] = Double(line[line.index(after: space)...])
        }
        return out
    }

    /// Peak resident set size (VmHWM) in bytes.
    var peakRSS: Int { statusField("VmHWM") }
    /// Current resident set size (VmRSS) in bytes.
    var rss: Int { statusField("VmRSS") }

    private func statusField(_ name: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }

    func stop() -> Int32 {
        process.interrupt()  // SIGINT: graceful drain
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: configPath)
        return process.terminationStatus
    }
}

@Suite(.serialized)
struct StreamingTests {
    static let gib = 1 << 30
    static let limit = 64 << 20

    @Test func oneGiBUploadAndDownloadStayUnder64MiB() throws {
        let up = try TestUpstream(discardBodies: true) { r in
            if r.startLine.hasPrefix("GET") {
                return .stream(head: "HTTP/1.1 200 OK\r\nContent-Length: \(StreamingTests.gib)\r\n\r\n", count: StreamingTests.gib)
            }
            return .ok("stored")
        }
        defer { up.stop() }
        let sluice = try SluiceProcess { port in
            ProxyHarness.singleUpstreamYAML(ports: [up.port]).replacingOccurrences(of: "127.0.0.1:0", with: "127.0.0.1:\(port)")
        }
        // Upload.
        let fd = try TestSocket.connect(port: sluice.port, timeoutSeconds: 60)
        try TestSocket.send(fd, "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: \(StreamingTests.gib)\r\n\r\n")
        let piece = [UInt8](repeating: 0x61, count: 1 << 20)
        for _ in 0..<(StreamingTests.gib >> 20) { try TestSocket.send(fd, piece) }
        let reader = TestReader(fd: fd)
        let resp = try #require(try reader.readMessage(isResponse: true))
        #expect(resp.bodyText == "stored")
        #expect(up.bodyBytes == StreamingTests.gib)
        // Download, with a slow start: the client reads nothing for a while (backpressure must hold).
        try TestSocket.send(fd, "GET /download HTTP/1.1\r\nHost: h\r\n\r\n")
        usleep(1_500_000)
        let rssWhileStalled = sluice.rss
        var received = 0
        var headDone = false
        var pending: [UInt8] = []
        while received < StreamingTests.gib {
            let chunk = try TestSocket.recv(fd, max: 1 << 20)
            if chunk.isEmpty { break }
            if !headDone {
                pending += chunk
                if let r = pending.firstRange(of: [13, 10, 13, 10]) {
                    headDone = true
                    received += pending.count - r.upperBound
                    pending = []
                }
            } else {
                received += chunk.count
            }
        }
        close(fd)
        #expect(received == StreamingTests.gib)
        let peak = sluice.peakRSS
        #expect(sluice.stop() == 0)
        #expect(rssWhileStalled < StreamingTests.limit, "RSS while the client was not reading: \(rssWhileStalled)")
        #expect(peak > 0 && peak < StreamingTests.limit, "peak RSS of the proxy: \(peak) bytes")
        print("streaming: peak RSS \(peak >> 20) MiB after 1 GiB up + 1 GiB down; \(rssWhileStalled >> 20) MiB while stalled")
    }
}
