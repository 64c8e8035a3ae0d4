import Foundation
@preconcurrency import Glibc
import Testing
import SluiceCore
import SluiceProxy

@Suite(.serialized)
struct SlowClientTests {
    @Test func clientThatDoesNotReadIsClosedAfterSendTimeout() throws {
        let up = try TestUpstream { _ in
            .stream(head: "HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n", count: 64 << 20)
        }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port], extra: "timeouts: { client_send: 300ms }")
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        try TestSocket.send(fd, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
        // Never read. The proxy gives up after the send timeout and closes the upstream side too.
        let start = Date()
        #expect(eventually(5) { up.connectionsEnded == 1 }, "the upstream connection should be closed by the proxy")
        #expect(Date().timeIntervalSince(start) < 4)
        // Reading now drains what was in flight, then EOF/reset: far less than the 64 MiB body.
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var total = 0
        var sawEnd = false
        while true {
            guard let chunk = try? TestSocket.recv(fd, max: 1 << 20) else { sawEnd = true; break }  // reset
            if chunk.isEmpty { sawEnd = true; break }  // EOF
            total += chunk.count
        }
        #expect(sawEnd)
        #expect(total < 32 << 20, "received \(total) bytes from a connection that should have been cut")
    }

    @Test func connectionsOverTheWorkerLimitWaitInTheAcceptQueue() throws {
        let up = try TestUpstream { _ in .ok("served") }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port], extra: "limits: { max_connections_per_worker: 2 }")
        defer { proxy.stop() }
        // Half a request head each: with TCP_DEFER_ACCEPT (the default) a connection is accepted,
        // and takes a slot, once its first bytes arrive.
        let idle1 = try proxy.connect()
        let idle2 = try proxy.connect()
        defer { close(idle2) }
        try TestSocket.send(idle1, "GET / HTTP/1.1\r\n")
        try TestSocket.send(idle2, "GET / HTTP/1.1\r\n")
        #expect(eventually(5) { proxy.metrics()[#"sluice_connections_active{listener="public"}"#] == 2 })
        let waiting = try proxy.connect()  // completes in the kernel's accept queue
        defer { close(waiting) }
        try TestSocket.send(waiting, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        var pfd = pollfd(fd: waiting, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pfd, 1, 300) == 0, "a connection over the limit must not be served yet")
        close(idle1)
        let m = try #require(try TestReader(fd: waiting).readMessage(isResponse: true))
        #expect(m.bodyText == "served")
    }

    /// TCP_DEFER_ACCEPT (the default): a connection that has sent nothing stays in the kernel and
    /// takes no slot; after about a second it is handed over, and the header timeout closes it.
    @Test func aSilentConnectionTakesNoSlotWithDeferAccept() throws {
        let up = try TestUpstream { _ in .ok("served") }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port], extra: """
            limits: { max_connections_per_worker: 1 }
            timeouts: { client_header: 1s }
            """)
        defer { proxy.stop() }
        let accepted = #"sluice_connections_accepted_total{listener="public"}"#
        let silent = try proxy.connect()
        defer { close(silent) }
        // Served at once although the only slot would be the silent connection's without defer.
        let m = try proxy.request("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(m.bodyText == "served")
        #expect(proxy.metrics()[accepted] == 1, "only the connection that sent a request was accepted")
        // Then the kernel hands the silent one over; its header timeout (1 s) closes it.
        #expect(eventually(10) { proxy.metrics()[accepted] == 2 })
        var buf = [UInt8](repeating: 0, count: 4096)
        var pfd = pollfd(fd: silent, events: Int16(POLLIN), revents: 0)
        var closed = false
        let deadline = Date().addingTimeInterval(10)
        while !closed && Date() < deadline {
            guard poll(&pfd, 1, 200) > 0 else { continue }
            let n = read(silent, &buf, buf.count)
            closed = n <= 0 || String(decoding: buf[..<n], as: UTF8.self).hasPrefix("HTTP/1.1 408")
        }
        #expect(closed, "the silent connection should be closed by its header timeout once accepted")
    }

    /// `defer_accept: false`: every completed handshake is accepted at once, so a silent
    /// connection holds a slot until its header timeout.
    @Test func withoutDeferAcceptASilentConnectionHoldsItsSlot() throws {
        let up = try TestUpstream { _ in .ok("served") }
        defer { up.stop() }
        let yaml = """
            listeners:
              - { name: public, address: 127.0.0.1:0, defer_accept: false }
            upstreams:
              app: { endpoints: ["127.0.0.1:\(up.port)"] }
            routes:
              - { name: web, match: { path_prefix: "/" }, upstream: app, sticky: none }
            limits: { max_connections_per_worker: 1 }
            timeouts: { client_header: 3s }
            """
        let proxy = try ProxyHarness(yaml: yaml)
        defer { proxy.stop() }
        let silent = try proxy.connect()
        defer { close(silent) }
        #expect(eventually(5) { proxy.metrics()[#"sluice_connections_active{listener="public"}"#] == 1 })
        let waiting = try proxy.connect()
        defer { close(waiting) }
        try TestSocket.send(waiting, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        var pfd = pollfd(fd: waiting, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pfd, 1, 300) == 0, "the silent connection holds the only slot")
        // Its header timeout (3 s) frees the slot; then the waiting request is served.
        let m = try #require(try TestReader(fd: waiting).readMessage(isResponse: true))
        #expect(m.bodyText == "served")
    }

    /// TCP_NODELAY is set on the listening socket only; accepted sockets must carry it (Linux
    /// copies it at accept), or every small response would wait for Nagle.
    @Test func acceptedSocketsInheritNoDelayFromTheListener() throws {
        let l = try Sys.listen(on: .v4(0x7f00_0001, port: 0), deferAccept: 1)
        defer { close(l) }
        let port = try Sys.localAddress(l).port
        let client = try TestSocket.connect(port: port)
        defer { close(client) }
        try TestSocket.send(client, "x")  // deferred: handed over once bytes arrive
        var accepted: Int32 = -1
        #expect(eventually(5) {
            if case .accepted(let fd, _) = Sys.accept(l) { accepted = fd }
            return accepted >= 0
        })
        defer { if accepted >= 0 { close(accepted) } }
        var v: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        #expect(getsockopt(accepted, Int32(IPPROTO_TCP), TCP_NODELAY, &v, &len) == 0)
        #expect(v == 1)
    }

    /// 5,000 slowloris connections (a header trickled a byte at a time) held open while a
    /// well-behaved client keeps being served. The proxy runs as its own process (the real binary,
    /// 2 workers) so its descriptors are its own. Figures are printed, not asserted (shared machine).
    @Test func goodClientIsServedWhileFiveThousandSlowClientsHang() throws {
        let up = try TestUpstream { _ in .ok("fine") }
        defer { up.stop() }
        let sluice = try SluiceProcess(workers: 2) { port in
            ProxyHarness.singleUpstreamYAML(ports: [up.port], extra: "timeouts: { client_header: 30s }")
                .replacingOccurrences(of: "127.0.0.1:0", with: "127.0.0.1:\(port)")
        }
        defer { _ = sluice.stop() }

        func goodClientLatencies(_ n: Int) throws -> [Double] {
            let fd = try TestSocket.connect(port: sluice.port)
            defer { close(fd) }
            let reader = TestReader(fd: fd)
            var out: [Double] = []
            for _ in 0..<n {
                let start = DispatchTime.now().uptimeNanoseconds
                try TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                guard let m = try reader.readMessage(isResponse: true), m.bodyText == "fine" else { throw TestError("bad response") }
                out.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            return out.sorted()
        }
        let baseline = try goodClientLatencies(300)

        var slow: [Int32] = []
        defer { for fd in slow { close(fd) } }
        let active = #"sluice_connections_active{listener="public"}"#
        for i in 0..<5000 {
            let fd = try TestSocket.connect(port: sluice.port)
            try TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ")
            slow.append(fd)
            if i % 500 == 499 {
                // Let the proxy accept them before opening more, so the kernel's accept queue never
                // overflows (an overflow drops connections on a busy machine: not what is tested here).
                let expected = Double(i + 1)
                #expect(eventually(20) { sluice.metrics()[active] ?? 0 >= expected })
            }
        }
        // Trickle one more byte on every slow connection, twice, around the good client's requests.
        for fd in slow { try TestSocket.send(fd, "a") }
        let loaded = try goodClientLatencies(300)
        for fd in slow { try TestSocket.send(fd, "b") }
        // Every slow connection is still open (held, not refused or answered).
        var stillOpen = 0
        for fd in slow {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 0) == 0 { stillOpen += 1 }
        }
        #expect(stillOpen == 5000)
        #expect(sluice.metrics()[active] ?? 0 >= 5000)
        #expect(loaded.count == 300)
        func pct(_ a: [Double], _ p: Double) -> Double { a[min(a.count - 1, Int(Double(a.count) * p))] }
        print(String(format: "slow clients: 5000 held; good client p50 %.3f ms p99 %.3f ms (baseline p50 %.3f ms p99 %.3f ms); proxy RSS %d MiB",
                     pct(loaded, 0.5), pct(loaded, 0.99), pct(baseline, 0.5), pct(baseline, 0.99), sluice.rss >> 20))
    }
}
