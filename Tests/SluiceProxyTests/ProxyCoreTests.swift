import Foundation
@preconcurrency import Glibc
import Testing
import SluiceCore
import SluiceProxy

@Suite(.serialized)
struct ProxyForwardingTests {
    @Test func forwardsAndRewritesHeaders() throws {
        let up = try TestUpstream { _ in .ok("hello", headers: ["Connection: X-Secret", "X-Secret: drop", "Keep-Alive: timeout=5", "X-App: yes"]) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        let r = try proxy.request(
            "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nConnection: X-Hop, keep-alive\r\nX-Hop: 1\r\nKeep-Alive: 300\r\n"
                + "TE: trailers\r\nProxy-Connection: keep-alive\r\nUpgrade: websocket\r\nTrailer: X\r\nX-Forwarded-For: 10.1.1.1\r\n"
                + "X-Forwarded-Proto: https\r\nUser-Agent: t\r\n\r\n")
        #expect(r.status == 200)
        #expect(r.bodyText == "hello")
        #expect(r.header("X-App") == "yes")
        #expect(r.header("X-Secret") == nil)
        #expect(r.header("Keep-Alive") == nil)
        let seen = try #require(up.requests.first)
        #expect(seen.startLine == "GET /a/b?x=1 HTTP/1.1")
        #expect(seen.header("Host") == "example.com")
        #expect(seen.header("User-Agent") == "t")
        for hop in ["Connection", "X-Hop", "Keep-Alive", "TE", "Proxy-Connection", "Upgrade", "Trailer"] {
            #expect(seen.header(hop) == nil, "hop-by-hop \(hop) was forwarded")
        }
        // The client is not a trusted proxy: its X-Forwarded-* are replaced, not extended.
        #expect(seen.headers("X-Forwarded-For") == ["127.0.0.1"])
        #expect(seen.headers("X-Forwarded-Proto") == ["http"])
        #expect(seen.headers("X-Forwarded-Host") == ["example.com"])
    }

    @Test func trustedProxyForwardedHeadersAreKept() throws {
        let up = try TestUpstream { _ in .ok("ok") }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port], extra: "trusted_proxies: [\"127.0.0.0/8\"]")
        defer { proxy.stop() }
        _ = try proxy.request("GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 198.51.100.7, 10.0.0.2\r\n"
            + "X-Forwarded-Proto: https\r\nX-Forwarded-Host: public.example\r\n\r\n")
        let seen = try #require(up.requests.first)
        #expect(seen.headers("X-Forwarded-For") == ["198.51.100.7, 10.0.0.2, 127.0.0.1"])
        #expect(seen.headers("X-Forwarded-Proto") == ["https"])
        #expect(seen.headers("X-Forwarded-Host") == ["public.example"])
    }

    @Test func keepAliveReusesUpstreamConnections() throws {
        let up = try TestUpstream { r in .ok("path=" + r.startLine.split(separator: " ")[1]) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        for round in 0..<3 {
            let fd = try proxy.connect()
            let reader = TestReader(fd: fd)
            for i in 0..<20 {
                try TestSocket.send(fd, "GET /\(round)-\(i) HTTP/1.1\r\nHost: h\r\n\r\n")
                let m = try #require(try reader.readMessage(isResponse: true))
                #expect(m.bodyText == "path=/\(round)-\(i)")
            }
            close(fd)
        }
        #expect(up.requests.count == 60)
        #expect(up.connections == 1, "60 sequential requests over 3 client connections should use one upstream connection")
    }

    @Test func pooledExchangesCarryEachClientsOwnState() throws {
        // One worker hands its pooled exchanges from connection to connection: each request must see
        // its own client's address (X-Forwarded-For) and a fresh request id, also after an exchange
        // was cut short by a client that closed mid-body.
        let up = try TestUpstream { r in .ok("path=" + r.startLine.split(separator: " ")[1]) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        let a = try TestSocket.connect(port: proxy.port, from: 0x7f00_0001)
        defer { close(a) }
        let b = try TestSocket.connect(port: proxy.port, from: 0x7f00_0002)
        defer { close(b) }
        let clients = [(a, TestReader(fd: a), "127.0.0.1"), (b, TestReader(fd: b), "127.0.0.2")]
        var expectedPeers: [String] = []
        for i in 0..<6 {
            if i == 3 {
                let cut = try TestSocket.connect(port: proxy.port, from: 0x7f00_0003)
                try TestSocket.send(cut, "POST /cut HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n0123456789")
                usleep(100_000)
                close(cut)
                #expect(eventually(2) { up.connectionsEnded >= 1 }, "the cut exchange's upstream connection is closed")
            }
            for (fd, reader, peer) in clients {
                try TestSocket.send(fd, "GET /\(i) HTTP/1.1\r\nHost: h\r\n\r\n")
                let m = try #require(try reader.readMessage(isResponse: true))
                #expect(m.status == 200)
                #expect(m.bodyText == "path=/\(i)")
                expectedPeers.append(peer)
            }
        }
        let seen = up.requests.filter { $0.startLine.hasPrefix("GET ") }
        #expect(seen.map { $0.headers("X-Forwarded-For") } == expectedPeers.map { [$0] })
        let ids = seen.compactMap { $0.header("X-Request-Id") }
        #expect(ids.count == seen.count)
        #expect(Set(ids).count == ids.count, "every request gets its own id")
    }

    @Test func upstreamClosedConnectionIsNotReused() throws {
        // The upstream closes after each response (Connection: close): every request needs a new connection.
        let up = try TestUpstream { _ in .rawThenClose(Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".utf8)) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        for _ in 0..<5 {
            try TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            let m = try #require(try reader.readMessage(isResponse: true))
            #expect(m.status == 200)
            #expect(m.bodyText == "ok")
            #expect(m.header("Connection") == nil, "the upstream's close must not close the client connection")
        }
        #expect(up.connections == 5)
    }

    @Test func upstreamIdleCloseIsDetectedBeforeReuse() throws {
        // Keep-alive response, but the upstream closes the idle connection shortly after.
        let up = try TestUpstream { _ in .rawThenClose(Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8)) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        for _ in 0..<5 {
            let r = try proxy.request("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            #expect(r.status == 200)
            usleep(20_000)
        }
        #expect(up.connections == 5)
    }

    @Test func pipelinedRequestsAnsweredInOrder() throws {
        let up = try TestUpstream { r in
            let path = String(r.startLine.split(separator: " ")[1])
            // Make the first one slow so a reordering proxy would be caught.
            return path == "/1" ? .delayed(0.2, .ok(path)) : .ok(path)
        }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        try TestSocket.send(fd, (1...5).map { "GET /\($0) HTTP/1.1\r\nHost: h\r\n\r\n" }.joined())
        let reader = TestReader(fd: fd)
        for i in 1...5 {
            let m = try #require(try reader.readMessage(isResponse: true))
            #expect(m.bodyText == "/\(i)")
        }
    }

    @Test func http10WithAndWithoutKeepAlive() throws {
        let up = try TestUpstream { _ in .ok("one-oh") }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        // Without keep-alive: response then close.
        let fd = try proxy.connect()
        try TestSocket.send(fd, "GET / HTTP/1.0\r\n\r\n")
        let all = String(decoding: TestSocket.readAll(fd), as: UTF8.self)
        close(fd)
        #expect(all.hasPrefix("HTTP/1.1 200"))
        #expect(all.contains("Connection: close"))
        #expect(all.hasSuffix("one-oh"))
        // The upstream got a Host (HTTP/1.1 requires one) even though the client sent none.
        #expect(up.requests.last?.header("Host") == "127.0.0.1:\(up.port)")
        // With keep-alive: two requests on one connection.
        let fd2 = try proxy.connect()
        defer { close(fd2) }
        let reader = TestReader(fd: fd2)
        for _ in 0..<2 {
            try TestSocket.send(fd2, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            let m = try #require(try reader.readMessage(isResponse: true))
            #expect(m.header("Connection")?.lowercased() == "keep-alive")
            #expect(m.bodyText == "one-oh")
        }
    }

    @Test func expectContinue() throws {
        let up = try TestUpstream { r in .ok("got " + r.bodyText) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        try TestSocket.send(fd, "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        let reader = TestReader(fd: fd)
        let interim = try #require(try reader.readMessage(isResponse: true))
        #expect(interim.status == 100)
        try TestSocket.send(fd, "hello")
        let final = try #require(try reader.readMessage(isResponse: true))
        #expect(final.status == 200)
        #expect(final.bodyText == "got hello")
        #expect(up.requests.first?.header("Expect") == nil)
    }

    @Test func headAndBodilessStatuses() throws {
        let up = try TestUpstream { r in
            if r.startLine.hasPrefix("HEAD") { return .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n".utf8)) }
            if r.startLine.contains("/204") { return .raw(Array("HTTP/1.1 204 No Content\r\n\r\n".utf8)) }
            if r.startLine.contains("/304") { return .raw(Array("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n".utf8)) }
            return .raw(Array("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody".utf8))
        }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        try TestSocket.send(fd, "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
        let head = try #require(try reader.readMessage(isResponse: true, requestMethod: "HEAD"))
        #expect(head.status == 200)
        #expect(head.header("Content-Length") == "1234")
        try TestSocket.send(fd, "GET /204 HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(try reader.readMessage(isResponse: true)?.status == 204)
        try TestSocket.send(fd, "GET /304 HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(try reader.readMessage(isResponse: true)?.status == 304)
        try TestSocket.send(fd, "GET /hints HTTP/1.1\r\nHost: h\r\n\r\n")
        let hints = try #require(try reader.readMessage(isResponse: true))
        #expect(hints.status == 103, "the interim response is relayed first (RFC 9110 15.2)")
        let m = try #require(try reader.readMessage(isResponse: true))
        #expect(m.status == 200, "a 103 interim response must not be taken as the final response")
        #expect(m.bodyText == "body")
        // Nothing extra was sent after the bodiless responses (the stream is still in sync).
        #expect(reader.buffer.isEmpty)
    }

    @Test func chunkedBothWays() throws {
        let up = try TestUpstream { r in
            .raw(Array(("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5\r\nhello\r\n1;ext=1\r\n \r\n\(String(r.body.count, radix: 16))\r\n").utf8) + r.body
                + Array("\r\n0\r\nX-Trailer: t\r\n\r\n".utf8))
        }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        try TestSocket.send(fd, "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
        let m = try #require(try TestReader(fd: fd).readMessage(isResponse: true))
        #expect(m.status == 200)
        #expect(m.bodyText == "hello abcdefg")
        #expect(m.header("Transfer-Encoding") == "chunked")
        let seen = try #require(up.requests.first)
        #expect(seen.bodyText == "abcdefg")
        #expect(seen.header("Transfer-Encoding") == "chunked")
        #expect(seen.header("Content-Length") == nil)
        // Extensions are not passed on: the proxy re-frames the body.
        #expect(!String(decoding: seen.raw, as: UTF8.self).contains("a=b"))
    }

    @Test func closeDelimitedResponse() throws {
        let up = try TestUpstream { _ in .rawThenClose(Array("HTTP/1.1 200 OK\r\n\r\nuntil close".utf8)) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        // HTTP/1.1 client: re-framed as chunked, connection kept.
        let fd = try proxy.connect()
        let reader = TestReader(fd: fd)
        for _ in 0..<2 {
            try TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            let m = try #require(try reader.readMessage(isResponse: true))
            #expect(m.header("Transfer-Encoding") == "chunked")
            #expect(m.bodyText == "until close")
        }
        close(fd)
        // HTTP/1.0 client: close-delimited.
        let fd2 = try proxy.connect()
        try TestSocket.send(fd2, "GET / HTTP/1.0\r\n\r\n")
        let all = String(decoding: TestSocket.readAll(fd2), as: UTF8.self)
        close(fd2)
        #expect(all.hasSuffix("\r\n\r\nuntil close"))
        #expect(!all.contains("Transfer-Encoding"))
    }
}

@Suite(.serialized)
struct ProxyErrorTests {
    @Test func malformedRequestGets400AndClose() throws {
        let up = try TestUpstream { _ in .ok("x") }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        for bad in ["GET  / HTTP/1.1\r\nHost: h\r\n\r\n", "GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n",
                    "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"] {
            let fd = try proxy.connect()
            try TestSocket.send(fd, bad)
            let all = String(decoding: TestSocket.readAll(fd), as: UTF8.self)
            close(fd)
            #expect(all.hasPrefix("HTTP/1.1 400 "), "\(bad.debugDescription) -> \(all)")
            #expect(all.contains("Connection: close"))
        }
        #expect(up.requests.isEmpty, "nothing invalid reaches the upstream")
    }

    @Test func headerTooLarge431AndBodyTooLarge413() throws {
        let up = try TestUpstream { _ in .ok("x") }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port], extra: "limits: { max_header_bytes: 4KiB, max_body_bytes: 1000 }")
        defer { proxy.stop() }
        let big = String(repeating: "a", count: 5000)
        let r1 = try proxy.request("GET / HTTP/1.1\r\nHost: h\r\nX-Big: \(big)\r\n\r\n")
        #expect(r1.status == 431)
        let r2 = try proxy.request("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n" + String(repeating: "b", count: 1001))
        #expect(r2.status == 413)
        // Chunked bodies are counted as they stream.
        let chunk = String(repeating: "c", count: 600)
        let r3 = try proxy.request("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n\(chunk)\r\n258\r\n\(chunk)\r\n0\r\n\r\n")
        #expect(r3.status == 413)
        let ok = try proxy.request("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + String(repeating: "b", count: 1000))
        #expect(ok.status == 200)
    }

    @Test func upstreamRefused502() throws {
        let dead = try TestSocket.refusedPort()
        let proxy = try ProxyHarness(upstreamPorts: [dead])
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        for _ in 0..<2 {
            try TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            let m = try #require(try reader.readMessage(isResponse: true))
            #expect(m.status == 502)
            #expect(m.bodyText.contains("refused"))
        }
    }

    @Test func upstreamResetBeforeResponse502() throws {
        let up = try TestUpstream { _ in .close }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        let r = try proxy.request("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(r.status == 502)
    }

    @Test func upstreamTimeout504() throws {
        let up = try TestUpstream { _ in .delayed(1.5, .ok("late")) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port], extra: "timeouts: { upstream_response_header: 300ms }")
        defer { proxy.stop() }
        let start = Date()
        let r = try proxy.request("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(r.status == 504)
        #expect(Date().timeIntervalSince(start) < 1.4)
    }

    @Test func noRoute404() throws {
        let up = try TestUpstream { _ in .ok("x") }
        defer { up.stop() }
        let yaml = """
            listeners: [{ name: public, address: "127.0.0.1:0" }]
            upstreams:
              app: { endpoints: ["127.0.0.1:\(up.port)"] }
            routes:
              - name: api
                match: { path_prefix: "/api/" }
                upstream: app
                sticky: none
            """
        let proxy = try ProxyHarness(yaml: yaml)
        defer { proxy.stop() }
        #expect(try proxy.request("GET /other HTTP/1.1\r\nHost: h\r\n\r\n").status == 404)
        #expect(try proxy.request("GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n").status == 200)
    }

    @Test func clientDisappearingReleasesUpstream() throws {
        let up = try TestUpstream { _ in .delayed(0.5, .ok("late")) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        let fd = try proxy.connect()
        try TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(eventually(2) { up.requests.count == 1 })
        close(fd)
        // The proxy closes its upstream connection (state unknown): the next request needs a new one,
        // and it still works.
        usleep(700_000)
        let r = try proxy.request("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(r.status == 200)
        #expect(up.connections == 2)
    }
}

@Suite(.serialized)
struct ProxyTimeoutTests {
    @Test func slowHeaderIsCut() throws {
        let up = try TestUpstream { _ in .ok("x") }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port], extra: "timeouts: { client_header: 300ms }")
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        let start = Date()
        try TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: h\r\n")
        let all = String(decoding: TestSocket.readAll(fd), as: UTF8.self)
        let took = Date().timeIntervalSince(start)
        #expect(all.hasPrefix("HTTP/1.1 408"))
        #expect(took >= 0.25 && took < 3)
    }

    @Test func idleKeepAliveIsClosed() throws {
        let up = try TestUpstream { _ in .ok("x") }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port], extra: "timeouts: { client_idle: 300ms }")
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        try TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        let reader = TestReader(fd: fd)
        #expect(try reader.readMessage(isResponse: true)?.status == 200)
        let start = Date()
        #expect(try reader.readMessage(isResponse: true) == nil)  // EOF, no bytes
        #expect(Date().timeIntervalSince(start) >= 0.25)
    }

    @Test func gracefulDrainFinishesInFlight() throws {
        let up = try TestUpstream { _ in .delayed(0.5, .ok("finished")) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        let fd = try proxy.connect()
        defer { close(fd) }
        try TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(eventually(2) { up.requests.count == 1 })
        let done = LockedBox(false)
        let t = Thread {
            proxy.server.shutdown(drainTimeout: 5_000_000_000)
            done.set(true)
        }
        t.start()
        let m = try #require(try TestReader(fd: fd).readMessage(isResponse: true))
        #expect(m.bodyText == "finished")
        #expect(m.header("Connection") == "close")
        #expect(eventually(3) { done.get() })
        #expect(throws: (any Error).self) { _ = try TestSocket.connect(port: proxy.port) }
    }
}

/// A mutex-protected value for tests.
final class LockedBox<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ v: T) { value = v }
    func get() -> T { lock.withLock { value } }
    func set(_ v: T) { lock.withLock { value = v } }
    func update(_ f: (inout T) -> Void) { lock.withLock { f(&value) } }
}

@Suite(.serialized)
struct UpstreamPoolTests {
    @Test func idlePooledConnectionsAreClosedAfterTheIdleTimeout() throws {
        let up = try TestUpstream { _ in .ok("x") }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port], extra: "timeouts: { upstream_idle: 200ms }")
        defer { proxy.stop() }
        #expect(try proxy.request("GET / HTTP/1.1\r\nHost: h\r\n\r\n").status == 200)
        #expect(up.peerClosed == 0)
        #expect(eventually(3) { up.peerClosed == 1 }, "the idle upstream connection should be closed by the proxy")
        #expect(try proxy.request("GET / HTTP/1.1\r\nHost: h\r\n\r\n").status == 200)
        #expect(up.connections == 2)
    }

    /// Regression: after a large body the last read often fills the buffer exactly, and a pooled
    /// connection used to be discarded as "maybe dirty" (and bare EPOLLOUT edges closed idle ones).
    @Test func pooledConnectionIsReusedAfterLargeResponses() throws {
        let body = String(repeating: "z", count: 1 << 20)
        let up = try TestUpstream { _ in .ok(body) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        for _ in 0..<10 {
            try TestSocket.send(fd, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
            let m = try #require(try reader.readMessage(isResponse: true))
            #expect(m.body.count == 1 << 20)
            usleep(20_000)
        }
        #expect(up.connections == 1, "10 sequential 1 MiB responses should reuse one upstream connection")
    }

    @Test func poolKeepsAtMostMaxIdleConnections() throws {
        let up = try TestUpstream { _ in .delayed(0.3, .ok("x")) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port], extra: "limits: { upstream_max_idle: 2 }")
        defer { proxy.stop() }
        // Five concurrent requests need five upstream connections.
        let fds = try (0..<5).map { _ in try proxy.connect() }
        for fd in fds { try TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: h\r\n\r\n") }
        for fd in fds {
            #expect(try TestReader(fd: fd).readMessage(isResponse: true)?.status == 200)
            close(fd)
        }
        #expect(up.connections == 5)
        // Only two go back to the pool; the other three are closed.
        #expect(eventually(3) { up.peerClosed == 3 })
        usleep(100_000)
        #expect(up.peerClosed == 3)
    }
}

@Suite(.serialized)
struct UpstreamConnectTimeoutTests {
    /// An upstream whose accept queue is full: the kernel drops new SYNs, so a connect hangs
    /// until the proxy's connect timeout answers 504.
    @Test func connectTimeoutGives504() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
                _ = bind(fd, p, len)
                return getsockname(fd, p, &len)
            }
        }
        #expect(listen(fd, 0) == 0)
        let port = UInt16(bigEndian: sin.sin_port)
        // Fill the (tiny) accept queue; nobody ever accepts.
        var fillers: [Int32] = []
        defer { for f in fillers { close(f) } }
        for _ in 0..<4 {
            let f = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var target = sin
            _ = withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(f, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            fillers.append(f)
        }
        usleep(100_000)
        let proxy = try ProxyHarness(upstreamPorts: [port], extra: "timeouts: { upstream_connect: 300ms }")
        defer { proxy.stop() }
        let start = Date()
        let r = try proxy.request("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        let took = Date().timeIntervalSince(start)
        #expect(r.status == 504)
        #expect(r.bodyText.contains("connect timed out"))
        #expect(took >= 0.25 && took < 3, "took \(took) s")
        #expect(proxy.metrics()[#"sluice_upstream_errors_total{route="web",cohort="app",reason="connect_timeout"}"#] == 1)
    }
}
