import Foundation
@preconcurrency import Glibc
@testable import SluiceControl
import SluiceCore
import SluiceProxy
import Testing

/// `dns_refresh` and reloads with endpoint health: a host name's addresses change under a
/// running proxy (an injected resolver), and endpoint state survives a reload.
@Suite(.serialized)
struct DNSRefreshTests {
    /// A running proxy whose routing controller reloads `path` with `resolver`.
    final class Rig: Sendable {
        let server: ProxyServer
        let controller: RoutingController
        let events: EventLog
        let hub: MetricsHub
        let path: String
        let port: UInt16

        init(yaml: String, resolver: HostResolver) throws {
            path = NSTemporaryDirectory() + "sluice-dns-\(UUID().uuidString).yaml"
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            var config = try ConfigLoader.load(path: path, version: 1, resolver: resolver)
            config.stateFile = nil
            events = EventLog()
            controller = try RoutingController(config: config, events: events, cause: "test", resolver: resolver,
                                               clock: { ControlClock.unixNanos() })
            hub = MetricsHub(workers: 1, listenerNames: config.listeners.map(\.name), buildVersion: "test")
            server = ProxyServer(settings: config.proxySettings(workers: 1), table: controller.table, shards: hub.shards,
                                 seriesMap: { [hub] in hub.seriesMap(for: $0) })
            hub.attach(endpointHealth: server.endpointHealth)
            controller.attach(server)
            try server.start()
            port = server.boundAddresses[0].port
        }

        func stop() {
            server.shutdown(drainTimeout: 2_000_000_000)
            unlink(path)
        }
    }

    static func yaml(_ endpoint: String, _ settings: String = "") -> String {
        """
        listeners: [{ name: public, address: 127.0.0.1:0 }]
        state_file: off
        upstreams:
          app: { endpoints: ["\(endpoint)"]\(settings) }
        routes:
          - { name: web, match: { path_prefix: / }, upstream: app, sticky: none }
        """
    }

    /// `n` GETs on one connection: (statuses, bodies).
    static func send(_ port: UInt16, _ n: Int) throws -> [String] {
        let fd = try TestSocket.connect(port: port)
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        var bodies: [String] = []
        for _ in 0..<n {
            try TestSocket.send(fd, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            let m = try reader.readMessage(isResponse: true)
            bodies.append(m?.status == 200 ? m!.bodyText : "status \(m?.status ?? 0)")
        }
        return bodies
    }

    @Test func addressesAddedAndRemovedByARefreshReachBalancingWithoutDroppingRequests() throws {
        // Two upstreams on the same port, at 127.0.0.1 and 127.0.0.2 (both loopback on Linux).
        let one = try TestUpstream { _ in .ok("one") }
        defer { one.stop() }
        let two = try TestUpstream(host: 0x7f00_0002, port: one.port) { _ in .ok("two") }
        defer { two.stop() }
        let answers = Locked<[SocketAddress]?>([.v4(0x7f00_0001, port: 0)])
        let resolver = HostResolver { name in
            guard name == "app.test", let list = answers.withLock({ $0 }) else {
                return .failure(.init(message: "Name or service not known"))
            }
            return .success(list)
        }
        let rig = try Rig(yaml: Self.yaml("app.test:\(one.port)", ", dns_refresh: 1s"), resolver: resolver)
        defer { rig.stop() }
        let refresher = DNSRefresher(controller: rig.controller, resolver: resolver, events: rig.events)
        #expect(Set(try Self.send(rig.port, 10)) == ["one"])
        #expect(refresher.refresh(now: 0, force: true) == .init(), "same answer: nothing to do")

        // The name gains an address while a client keeps sending: every request is answered.
        let background = Locked<[String]>([])
        let stopLoad = Locked(false)
        let load = Thread {
            while !stopLoad.withLock({ $0 }) {
                let got = (try? Self.send(rig.port, 5)) ?? ["error"]
                background.withLock { $0 += got }
            }
        }
        load.start()
        usleep(50_000)
        answers.withLock { $0 = [.v4(0x7f00_0002, port: 0), .v4(0x7f00_0001, port: 0)] }
        let grown = refresher.refresh(now: 0, force: true)
        #expect(grown.changed.count == 1 && grown.reloadedVersion != nil)
        #expect(rig.controller.table.upstreams[0].endpoints.map { "\($0.address)" } == ["127.0.0.1:\(one.port)", "127.0.0.2:\(one.port)"])
        usleep(50_000)
        _ = try Self.send(rig.port, 10)
        #expect(eventually(3) { two.requests.count > 0 }, "the new address takes traffic")
        let oneBefore = one.requests.count
        #expect(eventually(3) { one.requests.count > oneBefore }, "and the old one still does")

        // A failed resolution keeps the last good addresses.
        answers.withLock { $0 = nil }
        let failed = refresher.refresh(now: 0, force: true)
        #expect(failed.failed == ["app.test"] && failed.reloadedVersion == nil)
        #expect(rig.controller.table.upstreams[0].endpoints.count == 2)
        #expect(rig.events.recent().contains { $0.kind == .dns && $0.details["action"] == "failed" })

        // The first address goes away.
        answers.withLock { $0 = [.v4(0x7f00_0002, port: 0)] }
        #expect(refresher.refresh(now: 0, force: true).reloadedVersion != nil)
        usleep(50_000)
        stopLoad.withLock { $0 = true }
        while !load.isFinished { usleep(10_000) }
        #expect(Set(try Self.send(rig.port, 10)) == ["two"])
        let seen = background.withLock { $0 }
        #expect(!seen.isEmpty && seen.allSatisfy { $0 == "one" || $0 == "two" }, "no request failed: \(Set(seen))")
        #expect(rig.events.recent().filter { $0.kind == .dns && $0.details["action"] == "changed" }.count == 2)
        #expect(rig.events.recent().contains { $0.kind == .reload && $0.cause.hasPrefix("dns refresh") })
    }

    @Test func dueGroupsOnlyAndOffMeansNever() throws {
        let count = Locked(0)
        let resolver = HostResolver { _ in
            count.withLock { $0 += 1 }
            return .success([.v4(0x7f00_0001, port: 0)])
        }
        let rig = try Rig(yaml: Self.yaml("app.test:9", ", dns_refresh: 10s"), resolver: resolver)
        defer { rig.stop() }
        let refresher = DNSRefresher(controller: rig.controller, resolver: resolver, events: nil)
        let base = count.withLock { $0 }
        refresher.refresh(now: 1_000)
        refresher.refresh(now: 5_000_000_000)
        #expect(count.withLock { $0 } == base + 1, "not due again before 10 s")
        refresher.refresh(now: 10_000_001_000)
        #expect(count.withLock { $0 } == base + 2)
        let off = try Rig(yaml: Self.yaml("app.test:9", ", dns_refresh: off"), resolver: resolver)
        defer { off.stop() }
        let before = count.withLock { $0 }
        DNSRefresher(controller: off.controller, resolver: resolver, events: nil).refresh(now: 0, force: true)
        #expect(count.withLock { $0 } == before)
    }

    @Test func anEjectedOrUnhealthyEndpointStaysOutAcrossAReload() throws {
        let a = try TestUpstream { _ in .ok("a") }
        let b = try TestUpstream { _ in .status(503, "b") }
        defer { a.stop(); b.stop() }
        let yaml = """
            listeners: [{ name: public, address: 127.0.0.1:0 }]
            state_file: off
            upstreams:
              app: { endpoints: ["127.0.0.1:\(a.port)", "127.0.0.1:\(b.port)"], outlier: { consecutive_failures: 2, base_ejection: 60s } }
            routes:
              - { name: web, match: { path_prefix: / }, upstream: app, sticky: none }
            """
        let rig = try Rig(yaml: yaml, resolver: .system)
        defer { rig.stop() }
        let monitor = HealthMonitor(server: rig.server, events: rig.events)
        try monitor.start()
        defer { monitor.stop() }
        _ = try Self.send(rig.port, 4)
        let bUp = "sluice_upstream_endpoint_up{upstream=\"app\",endpoint=\"127.0.0.1:\(b.port)\"}"
        func metric(_ name: String) -> Double? {
            for line in rig.hub.renderMetrics(table: rig.server.table).split(separator: "\n") where line.hasPrefix(name + " ") {
                return Double(line.split(separator: " ").last!)
            }
            return nil
        }
        #expect(eventually(3) { metric(bUp) == 0 })
        // A reload that reorders the endpoints and adds a route: b stays ejected.
        let reordered = yaml.replacingOccurrences(of: "[\"127.0.0.1:\(a.port)\", \"127.0.0.1:\(b.port)\"]",
                                                  with: "[\"127.0.0.1:\(b.port)\", \"127.0.0.1:\(a.port)\"]")
            + "\n  - { name: other, match: { path_prefix: /other }, upstream: app }\n"
        try reordered.write(toFile: rig.path, atomically: true, encoding: .utf8)
        let result = try rig.controller.reloadFromFile(cause: "test reload")
        #expect(result.version > 1)
        #expect(rig.server.table.routes.count == 2)
        #expect(metric(bUp) == 0)
        let before = b.requests.count
        #expect(Set(try Self.send(rig.port, 20)) == ["a"])
        #expect(b.requests.count == before, "the reload did not re-admit b")
    }
}
