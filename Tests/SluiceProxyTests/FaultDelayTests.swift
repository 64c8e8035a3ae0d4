import Foundation
@preconcurrency import Glibc
import Testing

/// Issue 19's delay drills, carried out by the data plane: the request is held on the client's
/// timer, then forwarded; a client that leaves meanwhile ends it; the injection is counted.
@Suite(.serialized)
struct FaultDelayTests {
    @Test func aDelayDrillHoldsThenForwards() throws {
        let up = try TestUpstream { _ in .ok("late") }
        defer { up.stop() }
        let proxy = try ProxyHarness(yaml: """
            listeners: [{ name: public, address: "127.0.0.1:0" }]
            upstreams:
              app: { endpoints: ["127.0.0.1:\(up.port)"] }
            routes:
              - name: web
                upstream: app
                sticky: none
                fault: { delay: { duration: 300ms, percent: 100 }, when_header: X-Drill }
            """)
        defer { proxy.stop() }
        // Without the drill header: no delay.
        var start = Date()
        #expect(try proxy.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n").bodyText == "late")
        #expect(Date().timeIntervalSince(start) < 0.25)
        // With it: held about 300 ms, then answered by the upstream; on a keep-alive connection
        // the next request is served normally.
        let fd = try proxy.connect()
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        start = Date()
        try TestSocket.send(fd, "GET /a HTTP/1.1\r\nHost: x\r\nX-Drill: 1\r\n\r\n")
        #expect(try reader.readMessage(isResponse: true)?.bodyText == "late")
        let held = Date().timeIntervalSince(start)
        #expect(held >= 0.29, "held \(held) s")
        try TestSocket.send(fd, "GET /b HTTP/1.1\r\nHost: x\r\nX-Drill: 1\r\n\r\n")
        #expect(try reader.readMessage(isResponse: true)?.bodyText == "late")
        #expect(up.requests.count == 3)
        #expect(proxy.metrics()["sluice_faults_injected_total{route=\"web\",cohort=\"app\",kind=\"delay\"}"] == 2)
        // A client that leaves while held: nothing reaches the upstream, the request counts as 499.
        let gone = try proxy.connect()
        try TestSocket.send(gone, "GET /c HTTP/1.1\r\nHost: x\r\nX-Drill: 1\r\n\r\n")
        usleep(50_000)
        close(gone)
        usleep(400_000)
        #expect(up.requests.count == 3)
        #expect(eventually(2) { proxy.metrics()["sluice_requests_total{route=\"web\",cohort=\"app\",code=\"499\"}"] == 1 })
    }
}
