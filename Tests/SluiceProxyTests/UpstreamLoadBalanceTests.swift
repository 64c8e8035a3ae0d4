import Foundation
@preconcurrency import Glibc
import SluiceCore
import Testing

/// Every count a tracked upstream group takes (`UpstreamLoad`: requests, pending connects,
/// connections, per-endpoint requests in flight) is given back on every way an exchange ends:
/// success, refused endpoint, reset, garbage, response timeout with retries, a POST answered
/// 503, a client that leaves mid-request. A count that leaked would open the circuit for good
/// (or skew least-request) after enough failures.
@Suite(.serialized)
struct UpstreamLoadBalanceTests {
    @Test func everyExitPathGivesItsCountsBack() throws {
        let good = try TestUpstream { r in
            if r.startLine.contains("/slow") { return .delayed(0.5, .ok("slow")) }
            if r.startLine.contains("/reset") { return .close }
            if r.startLine.contains("/garbage") { return .rawThenClose(Array("NOT HTTP AT ALL\r\n\r\n".utf8)) }
            if r.startLine.contains("/hang") { return .delayed(3, .ok("late")) }
            if r.startLine.contains("/busy") { return .status(503, "busy") }
            return .ok("ok")
        }
        defer { good.stop() }
        let refused = try TestSocket.refusedPort()
        let yaml = """
            listeners:
              - name: public
                address: 127.0.0.1:0
            timeouts: { upstream_response_header: 300ms, upstream_idle: 200ms }
            upstreams:
              app: { endpoints: ["127.0.0.1:\(good.port)", "127.0.0.1:\(refused)"], balance: least_request,
                     max_requests: 1000, max_connections: 1000, max_pending: 1000, outlier: off }
            routes:
              - name: web
                upstream: app
                sticky: none
                retries: { attempts: 2, per_try_timeout: 200ms }
            """
        let proxy = try ProxyHarness(yaml: yaml, workers: 2)
        defer { proxy.stop() }
        var statuses: [String: [Int]] = [:]
        for path in ["/", "/reset", "/garbage", "/hang", "/busy"] {
            for _ in 0..<4 {
                statuses[path, default: []].append((try? proxy.request("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n"))?.status ?? 0)
            }
        }
        for _ in 0..<4 {
            let m = try? proxy.request("POST /busy HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", method: "POST")
            statuses["POST", default: []].append(m?.status ?? 0)
        }
        // Every request got an answer; the failures are 502/503/504 (which one depends on whether the
        // retry went to the refused endpoint).
        #expect(statuses["/"] == [200, 200, 200, 200], "\(statuses)")
        #expect(statuses.filter { $0.key != "/" }.values.allSatisfy { $0.allSatisfy { (502...504).contains($0) } }, "\(statuses)")
        // Clients that leave while their request waits for the upstream.
        for _ in 0..<4 {
            let fd = try proxy.connect()
            try TestSocket.send(fd, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            usleep(50_000)
            close(fd)
        }
        let load = proxy.server.table.load
        let settled = eventually(5) {
            load.value(.requests, group: 0) == 0 && load.value(.pending, group: 0) == 0
                && load.inFlight(flat: 0) == 0 && load.inFlight(flat: 1) == 0
                && load.value(.connections, group: 0) == 0  // idle connections closed after upstream_idle
        }
        #expect(settled, """
            requests \(load.value(.requests, group: 0)) pending \(load.value(.pending, group: 0)) \
            connections \(load.value(.connections, group: 0)) in flight \(load.inFlight(flat: 0)), \(load.inFlight(flat: 1))
            """)
    }
}
