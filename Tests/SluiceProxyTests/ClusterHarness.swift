import Foundation
@preconcurrency import Glibc
import SluiceControl
import SluiceCore

/// An etcd server started by a test: free loopback ports, a temporary data directory.
final class EtcdServer {
    /// The etcd binary, when installed (`etcd-server`); tests that need it are skipped without it.
    static let binary: String? = ["/usr/bin/etcd", "/usr/local/bin/etcd"].first { FileManager.default.isExecutableFile(atPath: $0) }

    let clientPort: UInt16
    let peerPort: UInt16
    let dataDir: String
    private var process: Process?

    /// Starts etcd (on `clientPort` and `dataDir` when given: a restart of the same member).
    init(clientPort: UInt16? = nil, peerPort: UInt16? = nil, dataDir: String? = nil) throws {
        guard let binary = Self.binary else { throw TestError("etcd is not installed (apt-get install etcd-server)") }
        self.clientPort = try clientPort ?? TestSocket.closedPort()
        self.peerPort = try peerPort ?? TestSocket.closedPort()
        self.dataDir = dataDir ?? NSTemporaryDirectory() + "sluice-etcd-\(getpid())-\(self.clientPort)"
        try start(binary)
    }

    /// `http://127.0.0.1:PORT`.
    var url: String { "http://127.0.0.1:\(clientPort)" }

    private func start(_ binary: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["--name", "test", "--data-dir", dataDir,
                       "--listen-client-urls", url, "--advertise-client-urls", url,
                       "--listen-peer-urls", "http://127.0.0.1:\(peerPort)",
                       "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPort)",
                       "--initial-cluster", "test=http://127.0.0.1:\(peerPort)"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        let client = EtcdClient(endpoints: [try EtcdClient.Endpoint.parse(url).get()], timeoutMillis: 500)
        guard eventually(15, { (try? client.range("/health-probe")) != nil }) else {
            p.terminate()
            throw TestError("etcd did not start on \(url)")
        }
    }

    /// Stops etcd (SIGTERM) and waits for it.
    func stop() {
        guard let p = process else { return }
        p.terminate()
        p.waitUntilExit()
        process = nil
    }

    /// Starts it again on the same ports and data directory.
    func restart() throws {
        guard let binary = Self.binary else { return }
        try start(binary)
    }

    /// Stops it and removes its data.
    func destroy() {
        stop()
        try? FileManager.default.removeItem(atPath: dataDir)
    }
}

/// A real `sluice run` process in a fleet (its own listener and admin ports, its own config).
final class FleetReplica: @unchecked Sendable {
    let node: String
    let process = Process()
    let port: UInt16
    let adminPort: UInt16
    let configPath: String

    /// Starts `sluice run` with `yaml(listenerPort)` plus an admin section on a free port.
    init(node: String, yaml: (UInt16) -> String) throws {
        self.node = node
        let exe = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        let binary = exe.deletingLastPathComponent().appendingPathComponent("sluice")
        port = try TestSocket.closedPort()
        adminPort = try TestSocket.closedPort()
        configPath = NSTemporaryDirectory() + "sluice-fleet-\(getpid())-\(node)-\(port).yaml"
        try (yaml(port) + "\nadmin: { address: \"127.0.0.1:\(adminPort)\" }\n").write(toFile: configPath, atomically: true, encoding: .utf8)
        process.executableURL = binary
        process.arguments = ["run", "--config", configPath, "--workers", "1"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let p = port, a = adminPort
        // The admin API starts last: wait for both.
        guard eventually(10, { [p, a].allSatisfy { (try? TestSocket.connect(port: $0)).map { close($0); return true } ?? false } }) else {
            process.terminate()
            throw TestError("sluice \(node) did not start listening")
        }
    }

    /// An admin API call.
    func admin(_ method: String, _ path: String, _ body: String = "") -> AdminClientResponse? {
        try? AdminClient.request(method, path, to: .v4(0x7f00_0001, port: adminPort), body: Array(body.utf8), timeoutMillis: 5000)
    }

    /// `GET /admin/history`.
    func history() -> HistoryReport? {
        guard let r = admin("GET", "/admin/history"), r.status == 200 else { return nil }
        return try? JSONDecoder().decode(HistoryReport.self, from: Data(r.body))
    }

    /// `GET /admin/cluster`.
    func cluster() -> ClusterStatus? {
        guard let r = admin("GET", "/admin/cluster"), r.status == 200 else { return nil }
        return try? JSONDecoder().decode(ClusterStatus.self, from: Data(r.body))
    }

    /// One `/metrics` value (nil when absent).
    func metric(_ name: String) -> Double? {
        guard let r = admin("GET", "/metrics"), r.status == 200 else { return nil }
        for line in r.text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1))
        }
        return nil
    }

    /// Bodies of `n` requests (new connection each).
    func bodies(_ n: Int = 10) -> [String] {
        (0..<n).compactMap { _ in
            guard let fd = try? TestSocket.connect(port: port) else { return nil }
            defer { close(fd) }
            guard (try? TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) != nil else { return nil }
            return (try? TestReader(fd: fd).readMessage(isResponse: true))??.bodyText
        }
    }

    /// SIGKILL (a crash: the lease expires on its own).
    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGINT and wait; removes the config.
    @discardableResult
    func stop() -> Int32 {
        if process.isRunning {
            process.interrupt()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: configPath)
        return process.terminationStatus
    }
}

/// Back-to-back keep-alive requests to one replica (one every `pause`), each recorded with the
/// monotonic time it was sent and the body that answered.
final class ReplicaLoad: @unchecked Sendable {
    let replica: FleetReplica
    let records = LockedBox<[(sent: UInt64, body: String)]>([])
    private let running = LockedBox(true)
    private let done = DispatchSemaphore(value: 0)

    init(_ replica: FleetReplica, pause: UInt32 = 2000) {
        self.replica = replica
        let t = Thread { [self] in
            var fd: Int32 = -1
            var reader: TestReader?
            while running.get() {
                if fd < 0 {
                    guard let c = try? TestSocket.connect(port: replica.port) else { usleep(10_000); continue }
                    fd = c
                    reader = TestReader(fd: fd)
                }
                let sent = ControlClock.monotonicNanos()
                guard (try? TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: load\r\n\r\n")) != nil,
                      let m = try? reader?.readMessage(isResponse: true) else {
                    close(fd)
                    fd = -1
                    continue
                }
                records.update { $0.append((sent, m.bodyText)) }
                usleep(pause)
            }
            if fd >= 0 { close(fd) }
            done.signal()
        }
        t.start()
    }

    /// True when a response with `body` was sent at or after `time`.
    func saw(_ body: String, after time: UInt64) -> Bool {
        records.get().contains { $0.sent >= time && $0.body == body }
    }

    /// When a change at `t0` that ends `body` took effect here: the send time of the first
    /// response after the last `body` response sent at or after `t0` (t0 when there was none),
    /// minus t0. Nil while no response after it has come back.
    func delay(ending body: String, at t0: UInt64) -> UInt64? {
        let after = records.get().filter { $0.sent >= t0 }
        let lastIndex = after.lastIndex { $0.body == body }
        let next = lastIndex.map { $0 + 1 } ?? 0
        guard next < after.count else { return nil }
        return after[next].sent - t0
    }

    func stop() {
        running.set(false)
        done.wait()
    }
}

/// A fleet's config: `web` splitting `stable`/`canary` by `split`, with `cluster:` on `etcd`.
func fleetYAML(etcd: String, prefix: String, node: String, stable: UInt16, canary: UInt16, split: String,
               rollout: String = "", leaseTTL: String = "2s") -> (UInt16) -> String {
    { port in
        """
        listeners:
          - name: public
            address: 127.0.0.1:\(port)
        limits: { max_requests_per_connection: 0 }
        state_file: off
        upstreams:
          stable: { endpoints: ["127.0.0.1:\(stable)"] }
          canary: { endpoints: ["127.0.0.1:\(canary)"] }
        routes:
          - name: web
            baseline: stable
            sticky: none
            split: { \(split) }
        \(rollout)
        cluster:
          etcd: { endpoints: ["\(etcd)"], prefix: \(prefix) }
          node: \(node)
          lease_ttl: \(leaseTTL)
        """
    }
}

extension Result {
    /// The failure, if any.
    var failure: Failure? {
        if case .failure(let f) = self { return f }
        return nil
    }
}
