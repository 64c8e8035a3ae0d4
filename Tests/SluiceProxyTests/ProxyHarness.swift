import Foundation
@preconcurrency import Glibc
import SluiceControl
import SluiceCore
import SluiceProxy

/// Starts a real ProxyServer (real epoll loops, real sockets) on an ephemeral loopback port
/// from a YAML config, for integration tests.
final class ProxyHarness: Sendable {
    let server: ProxyServer
    let port: UInt16
    let config: SluiceConfig

    /// `yaml` is a full config; its listener address should be 127.0.0.1:0.
    /// Metrics hub the server records into.
    let hub: MetricsHub

    init(yaml: String, workers: Int = 1, accessLogFD: Int32 = -1) throws {
        config = try ConfigLoader.parse(yaml: yaml, file: "test.yaml")
        var settings = config.proxySettings(workers: workers)  // the same settings `sluice run` derives
        settings.accessLogFD = accessLogFD
        let hub = MetricsHub(workers: workers, listenerNames: config.listeners.map(\.name), buildVersion: "test")
        self.hub = hub
        server = ProxyServer(settings: settings, table: config.table, shards: hub.shards,
                             seriesMap: { hub.seriesMap(for: $0) })
        hub.attach(endpointHealth: server.endpointHealth)
        hub.attach(mirrors: server.mirrorBoard)
        try server.start()
        port = server.boundAddresses[0].port
    }

    /// A config with one route to one upstream group.
    static func singleUpstreamYAML(ports: [UInt16], extra: String = "", routeExtra: String = "") -> String {
        let endpoints = ports.map { "\"127.0.0.1:\($0)\"" }.joined(separator: ", ")
        return """
            listeners:
              - name: public
                address: 127.0.0.1:0
            upstreams:
              app: { endpoints: [\(endpoints)] }
            routes:
              - name: web
                match: { path_prefix: "/" }
                upstream: app
                sticky: none
            \(routeExtra)
            \(extra)
            """
    }

    convenience init(upstreamPorts: [UInt16], extra: String = "", workers: Int = 1) throws {
        try self.init(yaml: ProxyHarness.singleUpstreamYAML(ports: upstreamPorts, extra: extra), workers: workers)
    }

    func stop() {
        server.shutdown(drainTimeout: 2_000_000_000)
    }

    /// The current Prometheus exposition as `series -> value` (`name{labels}` exactly as rendered).
    func metrics() -> [String: Double] {
        var out: [String: Double] = [:]
        for line in hub.renderMetrics(table: server.table).split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            out[String(line[..<space])] = Double(line[line.index(after: space)...])
        }
        return out
    }

    /// Opens a client connection to the proxy.
    func connect() throws -> Int32 { try TestSocket.connect(port: port) }

    /// One request on a fresh connection; returns the response.
    func request(_ raw: String, method: String = "GET") throws -> TestMessage {
        let fd = try connect()
        defer { close(fd) }
        try TestSocket.send(fd, raw)
        guard let m = try TestReader(fd: fd).readMessage(isResponse: true, requestMethod: method) else {
            throw TestError("no response")
        }
        return m
    }
}

/// Polls `condition` every 10 ms for up to `seconds`.
func eventually(_ seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}
