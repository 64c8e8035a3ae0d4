import Foundation
@preconcurrency import Glibc
import Testing

/// Issue 15's first rule: a request whose connection to an endpoint failed before any byte was
/// sent goes to another endpoint of the same cohort, so a stopped endpoint costs users nothing,
/// and since nothing reached the dead one, no request is sent twice.
@Suite(.serialized)
struct DeadEndpointTests {
    @Test func oneOfTwoEndpointsStoppedCostsNothing() throws {
        let live = try TestUpstream { r in .ok(r.startLine.hasPrefix("POST") ? "posted" : "got") }
        defer { live.stop() }
        let dead = try TestSocket.closedPort()
        let proxy = try ProxyHarness(upstreamPorts: [live.port, dead])
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        var failures = 0
        for i in 0..<1000 {
            try TestSocket.send(fd, "GET /g\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
            if try reader.readMessage(isResponse: true)?.status != 200 { failures += 1 }
        }
        for i in 0..<1000 {
            let body = "n=\(i)"
            try TestSocket.send(fd, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            if try reader.readMessage(isResponse: true, requestMethod: "POST")?.bodyText != "posted" { failures += 1 }
        }
        #expect(failures == 0)
        let posts = live.requests.filter { $0.startLine.hasPrefix("POST") }
        #expect(posts.count == 1000, "each POST reached the upstream once")
        #expect(Set(posts.map(\.bodyText)).count == 1000)
        #expect(live.requests.count == 2000)
    }
}
