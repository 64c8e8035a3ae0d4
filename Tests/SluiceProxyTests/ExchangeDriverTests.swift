import Foundation
@preconcurrency import Glibc
import Testing
import SluiceCore
import SluiceControl

/// The data-plane fixes of the exchange-machine redesign, seen from a client: the one close
/// rule on generated responses, and a slowly arriving head costing CPU linear in its size.
@Suite(.serialized)
struct ExchangeDriverTests {
    @Test("the last request a connection may serve, answered by respond: or by a 404, carries Connection: close")
    func lastAllowedRequestCloses() throws {
        let upstream = try TestUpstream { _ in .ok("proxied") }
        defer { upstream.stop() }
        let proxy = try ProxyHarness(yaml: """
            listeners:
              - name: public
                address: 127.0.0.1:0
            limits: { max_requests_per_connection: 3 }
            upstreams:
              app: { endpoints: ["127.0.0.1:\(upstream.port)"] }
            routes:
              - name: direct
                match: { path_prefix: "/direct" }
                respond: { status: 200, body: "direct" }
              - name: web
                match: { path_prefix: "/app" }
                upstream: app
                sticky: none
            """)
        defer { proxy.stop() }
        for last in ["/direct", "/nothing", "/app"] {
            let fd = try proxy.connect()
            defer { close(fd) }
            let reader = TestReader(fd: fd)
            // Two proxied requests, then the third (the last allowed) to the path under test.
            for (i, path) in ["/app", "/app", last].enumerated() {
                try TestSocket.send(fd, "GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
                let m = try #require(try reader.readMessage(isResponse: true))
                let expected = path == "/direct" ? 200 : path == "/nothing" ? 404 : 200
                #expect(m.status == expected, "request \(i + 1) to \(path)")
                if i < 2 {
                    #expect(m.header("Connection") == nil, "request \(i + 1) of 3 keeps the connection")
                } else {
                    #expect(m.header("Connection") == "close", "the last allowed request to \(path) says so")
                }
            }
            // And the proxy does close it.
            #expect(try reader.readMessage(isResponse: true) == nil)
            #expect(reader.eof)
        }
    }

    @Test("after a response the idle timeout counts from the end of the request, not from its head")
    func idleTimeoutCountsFromResponse() throws {
        let upstream = try TestUpstream { _ in .delayed(1.2, .ok("slow")) }
        defer { upstream.stop() }
        let proxy = try ProxyHarness(yaml: """
            listeners:
              - name: public
                address: 127.0.0.1:0
            timeouts: { client_header: 1s, client_idle: 3s }
            upstreams:
              app: { endpoints: ["127.0.0.1:\(upstream.port)"] }
            routes:
              - name: web
                match: { path_prefix: "/app" }
                upstream: app
                sticky: none
            """)
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        // A 404 (generated) and a proxied answer that takes longer than client_header: after each,
        // the connection stays usable for more than client_header while idle.
        for path in ["/nothing", "/app"] {
            try TestSocket.send(fd, "GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
            let m = try #require(try reader.readMessage(isResponse: true))
            #expect(m.status == (path == "/app" ? 200 : 404))
            usleep(1_500_000)
        }
        try TestSocket.send(fd, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try reader.readMessage(isResponse: true)?.status == 404)
    }

    @Test("response trailers: forbidden fields dropped, the rest relayed")
    func responseTrailersFiltered() throws {
        let body = "3\r\nabc\r\n0\r\nContent-Length: 5\r\nTransfer-Encoding: identity\r\nSet-Cookie: s=1\r\nX_U: 1\r\nX-Good: 1\r\n\r\n"
        let upstream = try TestUpstream { _ in .raw(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\(body)".utf8)) }
        defer { upstream.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [upstream.port])
        defer { proxy.stop() }
        let m = try proxy.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let raw = String(decoding: m.raw, as: UTF8.self)
        #expect(m.status == 200)
        #expect(m.bodyText == "abc")
        #expect(raw.hasSuffix("3\r\nabc\r\n0\r\nX-Good: 1\r\n\r\n"), "\(raw.debugDescription)")
    }

    @Test("pipelined requests to a respond: route read slowly: every response arrives, no reset")
    func directResponsesRespectBackpressure() throws {
        let proxy = try ProxyHarness(yaml: """
            listeners:
              - name: public
                address: 127.0.0.1:0
            routes:
              - name: direct
                match: { path_prefix: "/" }
                respond: { status: 200, body: "\(String(repeating: "d", count: 4000))" }
            """)
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        let count = 9000
        let request = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        // The writer blocks while the proxy applies backpressure, so it runs on its own thread.
        let writer = Thread {
            var all: [UInt8] = []
            for _ in 0..<count { all += request }
            try? TestSocket.send(fd, all)
        }
        writer.start()
        let reader = TestReader(fd: fd)
        var received = 0
        while received < count {
            guard let m = try reader.readMessage(isResponse: true) else { break }
            #expect(m.status == 200)
            received += 1
            if received % 500 == 0 { usleep(20_000) }  // a slow reader
        }
        #expect(received == count)
    }

    @Test("103 Early Hints reach an HTTP/1.1 client before the 200, not an HTTP/1.0 one; the next pipelined response is intact")
    func earlyHints() throws {
        let upstream = try TestUpstream { r in
            if r.startLine.contains("/plain") { return .ok("plain") }
            return .raw(Array(("HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n"
                + "Connection: X-Hop\r\nX-Hop: 1\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody").utf8))
        }
        defer { upstream.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [upstream.port])
        defer { proxy.stop() }

        let fd = try proxy.connect()
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        try TestSocket.send(fd, "GET /hints HTTP/1.1\r\nHost: h\r\n\r\nGET /plain HTTP/1.1\r\nHost: h\r\n\r\n")
        let processing = try #require(try reader.readMessage(isResponse: true))
        #expect(processing.status == 102)
        let hints = try #require(try reader.readMessage(isResponse: true))
        #expect(hints.status == 103)
        #expect(hints.header("Link") == "</s.css>; rel=preload")
        #expect(hints.header("X-Hop") == nil && hints.header("Connection") == nil, "hop-by-hop fields are not relayed")
        let final = try #require(try reader.readMessage(isResponse: true))
        #expect(final.status == 200, "the upstream's 100 is not relayed: Sluice answers Expect itself")
        #expect(final.bodyText == "body")
        let next = try #require(try reader.readMessage(isResponse: true))
        #expect(next.status == 200)
        #expect(next.bodyText == "plain")

        let fd10 = try proxy.connect()
        defer { close(fd10) }
        try TestSocket.send(fd10, "GET /hints HTTP/1.0\r\nHost: h\r\n\r\n")
        let only = try #require(try TestReader(fd: fd10).readMessage(isResponse: true))
        #expect(only.status == 200, "an HTTP/1.0 client gets no interim response")
        #expect(only.bodyText == "body")
    }

    @Test("a head that grows past a buffer on its way upstream (X-Forwarded-Host repeats Host) gets 431, at once")
    func upstreamHeadTooLarge() throws {
        let up = try TestUpstream { _ in .ok("never") }
        defer { up.stop() }
        // 40 KiB heads: the buffer is 68 KiB (max(68 KiB, 40 + 16 KiB)), so a 39.9 KB Host fits the
        // client's buffer and its copy in X-Forwarded-Host pushes the upstream head past it.
        let proxy = try ProxyHarness(upstreamPorts: [up.port], extra: "limits: { max_header_bytes: 40KiB }")
        defer { proxy.stop() }
        let host = String(repeating: "a", count: 39_900)
        let start = Date()
        let m = try proxy.request("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n")
        #expect(m.status == 431)
        #expect(Date().timeIntervalSince(start) < 5)
        #expect(up.requests.isEmpty)
    }

    @Test("a 60 KiB head in 100-byte reads: late reads cost at most 2x the CPU of early ones")
    func slowHeadIsLinear() throws {
        let upstream = try TestUpstream { _ in .ok("ok") }
        defer { upstream.stop() }
        let proxy = try SluiceProcess { port in """
            listeners:
              - name: public
                address: 127.0.0.1:\(port)
            limits: { max_header_bytes: 65536, max_header_count: 200 }
            timeouts: { client_header: 60s }
            upstreams:
              app: { endpoints: ["127.0.0.1:\(upstream.port)"] }
            routes:
              - name: web
                match: { path_prefix: "/" }
                upstream: app
                sticky: none
            """ }
        defer { _ = proxy.stop() }

        // 60 KiB: 100 field lines of about 600 bytes (each spans several reads).
        var head = "GET / HTTP/1.1\r\nHost: x\r\n"
        var i = 0
        while head.utf8.count < 60 * 1024 - 700 {
            head += "X-Pad-\(i): " + String(repeating: "v", count: 590) + "\r\n"
            i += 1
        }
        head += "\r\n"
        let bytes = Array(head.utf8)
        let pieces = stride(from: 0, to: bytes.count, by: 100).map { Array(bytes[$0..<min($0 + 100, bytes.count)]) }
        #expect(pieces.count >= 600)

        let fd = try TestSocket.connect(port: proxy.port)
        defer { close(fd) }
        var marks: [Int: UInt64] = [:]
        for (n, piece) in pieces.enumerated() {
            if n == 0 || n == 100 || n == 500 || n == 600 { marks[n] = processCPUNanos(proxy.process.processIdentifier) }
            try TestSocket.send(fd, piece)
            usleep(1000)  // each piece is its own read
        }
        let early = marks[100]! &- marks[0]!, late = marks[600]! &- marks[500]!
        let m = try #require(try TestReader(fd: fd).readMessage(isResponse: true))
        #expect(m.status == 200)
        print("slow 60 KiB head: CPU of reads 1-100 (0-10 KiB buffered) \(early / 1000) us, reads 501-600 (50-60 KiB) \(late / 1000) us, ratio \(String(format: "%.2f", Double(late) / Double(max(early, 1))))")
        #expect(early > 0)
        #expect(Double(late) <= 2 * Double(early), "late reads \(late) ns vs early \(early) ns")
    }
}

/// CPU time (user + system, nanoseconds) of every thread of process `pid`, from
/// /proc/PID/task/*/schedstat (nanosecond resolution, unlike the clock ticks of /proc/PID/stat).
func processCPUNanos(_ pid: Int32) -> UInt64 {
    let dir = "/proc/\(pid)/task"
    guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return 0 }
    var total: UInt64 = 0
    for t in tasks {
        guard let text = try? String(contentsOfFile: "\(dir)/\(t)/schedstat", encoding: .utf8),
              let first = text.split(separator: " ").first, let ns = UInt64(first) else { continue }
        total &+= ns
    }
    return total
}

/// Issue 17: `timeouts.upstream_response_header` is a deadline for the whole final head, not an
/// inactivity timer: an upstream trickling interim responses (or a head) cannot hold the exchange.
@Suite(.serialized)
struct ResponseHeaderDeadlineTests {
    @Test func aStreamOfInterimResponsesDoesNotExtendTheDeadline() throws {
        let interim = Array("HTTP/1.1 102 Processing\r\n\r\n".utf8)
        let up = try TestUpstream { _ in .paced(Array(repeating: (pause: 0.25, bytes: interim), count: 16)) }
        defer { up.stop() }
        let proxy = try ProxyHarness(yaml: ProxyHarness.singleUpstreamYAML(ports: [up.port],
                                                                           extra: "timeouts: { upstream_response_header: 1s }"))
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        let start = Date()
        try TestSocket.send(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let reader = TestReader(fd: fd)
        var final: TestMessage?
        while let m = try reader.readMessage(isResponse: true) {
            if m.status >= 200 { final = m; break }
        }
        let took = Date().timeIntervalSince(start)
        #expect(final?.status == 504, "\(String(describing: final?.startLine))")
        #expect(took >= 0.9 && took < 2.5, "answered after \(took) s; the upstream trickled for 4 s")
    }
}

/// Issue 13: `redirect_https: true` on a plain listener answers every request with a 308 to its
/// https:// URL; nothing is routed.
@Suite(.serialized)
struct RedirectHTTPSTests {
    @Test func plainListenerRedirects() throws {
        let up = try TestUpstream { _ in .ok("never") }
        defer { up.stop() }
        let proxy = try ProxyHarness(yaml: """
            listeners:
              - name: plain
                address: 127.0.0.1:0
                redirect_https: true
            upstreams:
              app: { endpoints: ["127.0.0.1:\(up.port)"] }
            routes:
              - name: web
                upstream: app
                sticky: none
            """)
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        try TestSocket.send(fd, "GET /a/b?c=1 HTTP/1.1\r\nHost: shop.example:8080\r\n\r\nHEAD http://other.example/x HTTP/1.1\r\nHost: h\r\n\r\n")
        let first = try #require(try reader.readMessage(isResponse: true))
        #expect(first.status == 308)
        #expect(first.header("Location") == "https://shop.example/a/b?c=1")
        #expect(first.header("Connection") == nil)
        let second = try #require(try reader.readMessage(isResponse: true, requestMethod: "HEAD"))
        #expect(second.status == 308)
        #expect(second.header("Location") == "https://other.example/x")
        #expect(up.requests.isEmpty)
        // A TLS listener cannot redirect (its own problem is reported, whatever else is wrong).
        do {
            _ = try ConfigLoader.parse(yaml: """
                listeners:
                  - { name: s, address: "127.0.0.1:0", redirect_https: true, tls: { certificates: [{ cert: /nope.pem, key: /nope.key }] } }
                routes: [{ name: web, respond: { status: 200, body: ok } }]
                """, file: "t.yaml")
            Issue.record("accepted")
        } catch {
            #expect("\(error)".contains("a TLS listener cannot redirect to https"), "\(error)")
        }
    }
}
