import Foundation
@preconcurrency import Glibc
import Testing
import SluiceCore
import SluiceControl
import SluiceProxy

/// HTTP/2 from clients, as users meet it: curl (`--http2` over TLS, `--http2-prior-knowledge` on
/// an h2c listener), h2load, and raw frames from `Tests/Support/h2/h2attack.py`, through a real
/// proxy to real HTTP/1.1 upstreams; each test checks what the client got and what the upstreams
/// received.
@Suite(.serialized)
struct HTTP2Tests {
    /// 1 MiB of a pattern that shows any lost, doubled or reordered byte.
    static let big: [UInt8] = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }

    /// 200 KB of text (compressible).
    static let text: [UInt8] = Array((0..<4000).map { "line \($0) of a text that gzip will shrink a lot\n" }.joined().utf8.prefix(200_000))

    /// The test application: echo, a 1 MiB download, a slow answer, a chunked answer with
    /// trailers, and a hello naming the upstream.
    static func app(_ name: String, slow: TimeInterval = 2) -> @Sendable (TestMessage) -> UpstreamReply {
        { r in
            let parts = r.startLine.split(separator: " ")
            let method = parts.first.map(String.init) ?? ""
            let path = parts.count > 1 ? String(parts[1]) : ""
            if path.hasPrefix("/app/echo") {
                return .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: \(r.body.count)\r\nX-Upstream: \(name)\r\n\r\n".utf8) + r.body)
            }
            if path.hasPrefix("/app/big") {
                let head = Array("HTTP/1.1 200 OK\r\nContent-Length: \(big.count)\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
                return .raw(method == "HEAD" ? head : head + big)
            }
            if path.hasPrefix("/app/text") {
                return .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: \(text.count)\r\nContent-Type: text/plain\r\n\r\n".utf8) + text)
            }
            if path.hasPrefix("/app/slow") {
                return .delayed(slow, .ok("slow"))
            }
            if path.hasPrefix("/app/cut") {
                return .rawThenClose(Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..".utf8))
            }
            if path.hasPrefix("/app/untilclose") {
                return .rawThenClose(Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end".utf8))
            }
            if path.hasPrefix("/app/trailers") {
                return .raw(Array(("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n\r\n"
                    + "5\r\nhello\r\n0\r\ngrpc-status: 0\r\n\r\n").utf8))
            }
            return .ok("\(name) \(path)", headers: ["X-Upstream: \(name)"])
        }
    }

    static func tlsListener(_ f: TLSFixture, name: String, extra: String = "") -> String {
        """
          - name: \(name)
            address: 127.0.0.1:0
            \(extra)
            tls:
              certificates: [{ cert: \(f.path("a.pem")), key: \(f.path("a.key")) }]
        """
    }

    /// Bytes of a file made for a request body (random, so a misplaced byte shows).
    static func randomFile(_ dir: String, _ name: String, count: Int, ascii: Bool = false) throws -> (String, [UInt8]) {
        var g = SystemRandomNumberGenerator()
        let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        let bytes = (0..<count).map { _ in ascii ? letters[Int(g.next() % UInt64(letters.count))] : UInt8.random(in: 0...255, using: &g) }
        let path = dir + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return (path, bytes)
    }

    /// curl over h2c (prior knowledge) and over TLS (ALPN h2): GET, HEAD, POST with a
    /// content-length body and with a streamed (chunked upstream) body, checked byte for byte by
    /// the echoing upstream, a 1 MiB download, trailers, a gzip-compressed answer, a 404 from the
    /// route table; an HTTP/1.1 request on
    /// the h2c listener still works, and a TLS listener with `http2: false` answers curl --http2
    /// in HTTP/1.1. Metrics count connections and streams per listener; the access log says
    /// `HTTP/2.0`.
    @Test func curlOverTLSAndPriorKnowledge() throws {
        let f = try TLSFixture()
        defer { f.remove() }
        let up = try TestUpstream(handler: Self.app("app"))
        defer { up.stop() }
        let logPath = f.path("access.log")
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(logFD >= 0)
        let yaml = """
            listeners:
              - { name: h2c, address: 127.0.0.1:0, http2: true }
            \(Self.tlsListener(f, name: "https"))
            \(Self.tlsListener(f, name: "https-h1", extra: "http2: false"))
            upstreams:
              app: { endpoints: ["127.0.0.1:\(up.port)"] }
            routes:
              - name: text
                match: { path_prefix: "/app/text" }
                upstream: app
                sticky: none
                compression: { gzip: true }
              - name: app
                match: { path_prefix: "/app/" }
                upstream: app
                sticky: none
            """
        let proxy = try ProxyHarness(yaml: yaml, accessLogFD: logFD)
        var stopped = false
        defer { if !stopped { proxy.stop() } }
        let ports = proxy.server.boundAddresses.map(\.port)
        let (binPath, binBody) = try Self.randomFile(f.dir, "body.bin", count: 300_000)
        let (textPath, textBody) = try Self.randomFile(f.dir, "body.txt", count: 250_000, ascii: true)
        let text = String(decoding: textBody, as: UTF8.self)

        let clients: [(listener: String, base: String, args: [String], proto: String)] = [
            ("h2c", "http://127.0.0.1:\(ports[0])", ["--http2-prior-knowledge"], "http"),
            ("https", "https://a.test:\(ports[1])", ["--http2", "--cacert", f.path("ca.pem"), "--resolve", "a.test:\(ports[1]):127.0.0.1"],
             "https"),
        ]
        for c in clients {
            let before = up.requests.count
            var r = try H2Client.curl(c.args + ["\(c.base)/app/hello?x=1"])
            #expect(r.code == "200" && r.version == "2", "\(c.listener): \(r.code) \(r.version) \(r.error)")
            #expect(r.bodyText == "app /app/hello?x=1")
            #expect(r.headers.lowercased().contains("x-upstream: app"), "\(r.headers)")

            r = try H2Client.curl(c.args + ["-I", "\(c.base)/app/big"])
            #expect(r.code == "200" && r.version == "2", "\(c.listener) HEAD: \(r.code) \(r.error)")
            #expect(r.headers.lowercased().contains("content-length: 1048576"), "\(r.headers)")
            #expect(r.bodyText == r.headers, "curl -I writes only the head to its output: no body bytes came")

            r = try H2Client.curl(c.args + ["--data-binary", "@" + binPath, "-H", "Content-Type: application/octet-stream",
                                            "\(c.base)/app/echo/length"])
            #expect(r.code == "200" && r.version == "2", "\(c.listener) POST: \(r.code) \(r.error)")
            #expect(r.body.count == binBody.count && r.body == binBody, "\(c.listener): echoed \(r.body.count) bytes")

            // From stdin: curl does not know the length, so the request has no content-length and
            // Sluice sends it upstream chunked.
            let stdinRun = try Spawned.run("/usr/bin/curl", ["-sS", "-X", "POST", "-T", "-", "-w", "\n%{http_code} %{http_version}"]
                                           + c.args + ["\(c.base)/app/echo/stream"], input: textBody, timeout: 30)
            #expect(stdinRun.out.hasSuffix("\n200 2"), "\(c.listener) chunked POST: \(stdinRun.out.suffix(40)) \(stdinRun.err)")
            #expect(stdinRun.out.dropLast(6) == text[...], "\(c.listener): streamed body echoed")

            r = try H2Client.curl(c.args + ["\(c.base)/app/big"])
            #expect(r.code == "200" && r.body.count == Self.big.count && r.body == Self.big, "\(c.listener) download: \(r.body.count) \(r.error)")

            // A chunked upstream response with trailers: valid HTTP/2 for curl (no
            // connection-specific fields), the body unframed.
            r = try H2Client.curl(c.args + ["\(c.base)/app/trailers"])
            #expect(r.code == "200" && r.version == "2" && r.bodyText == "hello", "\(c.listener) trailers: \(r.code) \(r.error)")
            #expect(!r.headers.lowercased().contains("transfer-encoding"), "\(r.headers)")

            // gzip on the way out (chunked inside Sluice, DATA frames here): curl inflates it.
            r = try H2Client.curl(c.args + ["--compressed", "\(c.base)/app/text"])
            #expect(r.code == "200" && r.version == "2" && r.body == Self.text, "\(c.listener) gzip: \(r.code) \(r.body.count) \(r.error)")
            #expect(r.headers.lowercased().contains("content-encoding: gzip"), "\(r.headers)")

            r = try H2Client.curl(c.args + ["\(c.base)/nowhere"])
            #expect(r.code == "404" && r.version == "2", "\(c.listener): \(r.code)")

            // What the upstream received: HTTP/1.1 requests, framed as the client's body was.
            let got = Array(up.requests[before...])
            try #require(got.count == 7, "\(got.map(\.startLine))")
            #expect(got[0].startLine == "GET /app/hello?x=1 HTTP/1.1")
            #expect(got[0].header("Host") != nil)
            #expect(got.allSatisfy { $0.header("X-Forwarded-Proto") == c.proto })
            #expect(got[1].startLine == "HEAD /app/big HTTP/1.1")
            #expect(got[2].startLine == "POST /app/echo/length HTTP/1.1")
            #expect(got[2].header("Content-Length") == "300000" && got[2].header("Transfer-Encoding") == nil)
            #expect(got[2].header("Content-Type") == "application/octet-stream")
            #expect(got[2].body == binBody)
            #expect(got[3].startLine == "POST /app/echo/stream HTTP/1.1")
            #expect(got[3].header("Transfer-Encoding") == "chunked" && got[3].header("Content-Length") == nil)
            #expect(got[3].body == textBody)
            #expect(got[4].startLine == "GET /app/big HTTP/1.1")
        }

        // HTTP/1.1 still works on the h2c listener; a TLS listener with http2 off answers in HTTP/1.1.
        var r = try H2Client.curl(["--http1.1", "http://127.0.0.1:\(ports[0])/app/one"])
        #expect(r.code == "200" && r.version == "1.1" && r.bodyText == "app /app/one")
        r = try H2Client.curl(["--http2", "--cacert", f.path("ca.pem"), "--resolve", "a.test:\(ports[2]):127.0.0.1",
                               "https://a.test:\(ports[2])/app/two"])
        #expect(r.code == "200" && r.version == "1.1" && r.bodyText == "app /app/two", "\(r.code) \(r.version) \(r.error)")

        // Eight curl runs per HTTP/2 listener, one stream each.
        let m = proxy.metrics()
        #expect(m["sluice_http2_connections_total{listener=\"h2c\"}"] == 8)
        #expect(m["sluice_http2_streams_total{listener=\"h2c\"}"] == 8)
        #expect(m["sluice_http2_connections_total{listener=\"https\"}"] == 8)
        #expect(m["sluice_http2_streams_total{listener=\"https\"}"] == 8)
        #expect(m["sluice_http2_connections_total{listener=\"https-h1\"}"] ?? 0 == 0)
        #expect(m.filter { $0.key.hasPrefix("sluice_http2_connections_closed_total") }.values.allSatisfy { $0 == 0 })

        proxy.stop()  // flushes the access log
        stopped = true
        close(logFD)
        let lines = try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n")
        let objects = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:] }
        let h2 = objects.filter { $0["protocol"] as? String == "HTTP/2.0" }
        #expect(h2.count == 16, "\(lines.joined(separator: "\n"))")
        #expect(objects.count == 18)
        #expect(h2.filter { $0["status"] as? Int == 404 }.count == 2)
        #expect(h2.filter { $0["method"] as? String == "POST" }.count == 4)
        #expect(h2.filter { ($0["path"] as? String) == "/app/hello?x=1" && ($0["route"] as? String) == "app" }.count == 2)
        #expect(objects.filter { $0["protocol"] as? String == "HTTP/1.1" }.count == 2)
    }

    /// `h2load -n 100000 -c 10 -m 100` over h2c: every response 2xx, and the 90/10 split seen by
    /// the two upstreams (counts within one percentage point: the binomial standard deviation is
    /// about 0.1 point at this count).
    @Test func h2loadHundredThousandRequestsSplitNinetyTen() throws {
        let stable = try TestUpstream(handler: Self.app("stable"))
        defer { stable.stop() }
        let canary = try TestUpstream(handler: Self.app("canary"))
        defer { canary.stop() }
        let proxy = try ProxyHarness(yaml: """
            listeners:
              - { name: public, address: 127.0.0.1:0, http2: true }
            upstreams:
              stable: { endpoints: ["127.0.0.1:\(stable.port)"] }
              canary: { endpoints: ["127.0.0.1:\(canary.port)"] }
            routes:
              - name: web
                match: { path_prefix: "/" }
                split: { stable: 90, canary: 10 }
                sticky: none
            state_file: off
            """)
        defer { proxy.stop() }
        let total = 100_000
        let r = try H2Client.h2load(["-n", "\(total)", "-c", "10", "-m", "100", "http://127.0.0.1:\(proxy.port)/load"], timeout: 600)
        #expect(r.total == total && r.succeeded == total && r.status2xx == total, "\(r.output)")
        #expect(r.failed == 0 && r.errored == 0 && r.timedOut == 0)
        let s = stable.requests.count, c = canary.requests.count
        #expect(s + c == total, "stable \(s) + canary \(c)")
        let share = Double(c) / Double(total)
        #expect(abs(share - 0.10) < 0.01, "canary share \(share)")
        let m = proxy.metrics()
        #expect(m["sluice_http2_connections_total{listener=\"public\"}"] == 10)
        #expect(m["sluice_http2_streams_total{listener=\"public\"}"] == Double(total))
        print("h2load through sluice (debug build): \(r.output.split(separator: "\n").first { $0.hasPrefix("finished") } ?? "")")
    }

    /// One sticky key lands in the same cohort over HTTP/1.1 and HTTP/2: the route's own cookie
    /// (sent among other cookies, as HTTP/2 clients split them into several `cookie` fields), a
    /// header key, and
    /// Sluice's assigned `sluice_sticky` cookie, set on an HTTP/2 response and sent back over HTTP/1.1.
    @Test func stickyCohortIsTheSameOverHTTP1AndHTTP2() throws {
        let stable = try TestUpstream(handler: Self.app("stable"))
        defer { stable.stop() }
        let canary = try TestUpstream(handler: Self.app("canary"))
        defer { canary.stop() }
        let proxy = try ProxyHarness(yaml: """
            listeners:
              - { name: public, address: 127.0.0.1:0, http2: true }
            upstreams:
              stable: { endpoints: ["127.0.0.1:\(stable.port)"] }
              canary: { endpoints: ["127.0.0.1:\(canary.port)"] }
            routes:
              - name: keyed
                match: { path_prefix: "/keyed" }
                split: { stable: 50, canary: 50 }
                sticky: { cookie: session_id }
              - name: by-header
                match: { path_prefix: "/by-header" }
                split: { stable: 50, canary: 50 }
                sticky: { header: X-User-Id }
              - name: assigned
                match: { path_prefix: "/" }
                split: { stable: 50, canary: 50 }
            state_file: off
            """)
        defer { proxy.stop() }
        let base = "http://127.0.0.1:\(proxy.port)"
        func cohort(_ r: H2Client.CurlResult) -> String { String(r.bodyText.split(separator: " ").first ?? "") }
        var seen: Set<String> = []
        for i in 0..<16 {
            let key = "user-\(i)"
            let h1 = try H2Client.curl(["--http1.1", "-H", "Cookie: theme=dark; session_id=\(key)", "\(base)/keyed/a"])
            let h2 = try H2Client.curl(["--http2-prior-knowledge", "-H", "Cookie: theme=dark", "-H", "Cookie: session_id=\(key)",
                                        "-H", "Cookie: lang=en", "\(base)/keyed/b"])
            let h2again = try H2Client.curl(["--http2-prior-knowledge", "-H", "Cookie: session_id=\(key)", "\(base)/keyed/c"])
            #expect(h1.code == "200" && h1.version == "1.1" && h2.code == "200" && h2.version == "2")
            #expect(cohort(h1) == cohort(h2) && cohort(h2) == cohort(h2again), "\(key): \(h1.bodyText) / \(h2.bodyText) / \(h2again.bodyText)")
            seen.insert(cohort(h1))
        }
        #expect(seen == ["stable", "canary"], "16 keys at 50/50 reach both cohorts: \(seen)")
        // A header key (`sticky: { header: X-User-Id }`): the same over both protocols too.
        var seenByHeader: Set<String> = []
        for i in 0..<12 {
            let h1 = try H2Client.curl(["--http1.1", "-H", "X-User-Id: u\(i)", "\(base)/by-header/a"])
            let h2 = try H2Client.curl(["--http2-prior-knowledge", "-H", "x-user-id: u\(i)", "\(base)/by-header/b"])
            #expect(h1.version == "1.1" && h2.version == "2" && cohort(h1) == cohort(h2), "u\(i): \(h1.bodyText) / \(h2.bodyText)")
            seenByHeader.insert(cohort(h2))
        }
        #expect(seenByHeader == ["stable", "canary"], "\(seenByHeader)")
        // The upstream received the HTTP/2 cookies joined into one field.
        let joined = (stable.requests + canary.requests).filter { $0.startLine.hasPrefix("GET /keyed/b") }
        #expect(joined.count == 16)
        #expect(joined.allSatisfy { $0.headers("Cookie").count == 1 && $0.header("Cookie")!.hasPrefix("theme=dark; session_id=user-") },
                "\(joined.first.map { $0.headers("Cookie") } ?? [])")

        // Sluice's own cookie: assigned on an HTTP/2 response, honoured over HTTP/1.1.
        for _ in 0..<6 {
            let first = try H2Client.curl(["--http2-prior-knowledge", "\(base)/page"])
            let line = first.headers.split(separator: "\r\n").first { $0.lowercased().hasPrefix("set-cookie: sluice_sticky=") }
            let cookie = try #require(line.map { String($0.dropFirst("set-cookie: ".count).split(separator: ";")[0]) }, "\(first.headers)")
            for proto in ["--http1.1", "--http2-prior-knowledge", "--http1.1"] {
                let again = try H2Client.curl([proto, "-H", "Cookie: \(cookie)", "\(base)/page"])
                #expect(cohort(again) == cohort(first), "\(cookie) over \(proto): \(again.bodyText) vs \(first.bodyText)")
            }
        }
    }

    /// `max_concurrent_streams`: a client opening more streams at once (before it could see the
    /// SETTINGS) gets the extra ones reset; the others are answered and the connection stays.
    @Test func streamsOverTheConcurrencyLimitAreRefused() throws {
        let up = try TestUpstream(handler: Self.app("app", slow: 1))
        defer { up.stop() }
        let proxy = try ProxyHarness(yaml: ProxyHarness.singleUpstreamYAML(ports: [up.port], extra: "http2: { max_concurrent_streams: 10 }")
            .replacingOccurrences(of: "address: 127.0.0.1:0", with: "address: 127.0.0.1:0\n    http2: true"))
        defer { proxy.stop() }
        let paths = (0..<12).flatMap { ["--path", "/app/slow/\($0)"] }
        let r = try H2Client.attack("requests", port: proxy.port, paths, timeout: 20)
        let answered = r.streams.values.filter { $0.status == 200 && $0.ended && $0.body_head == "slow" }
        let refused = r.streams.values.filter { $0.reset != nil && $0.status == nil }
        #expect(answered.count == 10 && refused.count == 2, "\(r)")
        #expect(!r.closed && r.goaway == nil)
        #expect(up.requests.count == 10)
        #expect(proxy.metrics()["sluice_http2_streams_total{listener=\"public\"}"] == 10)
    }

    /// A client that acknowledges every DATA frame with WINDOW_UPDATEs (one for the stream, one for
    /// the connection, as many HTTP/2 libraries do) while downloading 24 MiB on one connection
    /// (about 3,000 WINDOW_UPDATEs in well under a second) is not taken for a control-frame flood.
    @Test func aClientAcknowledgingEveryDataFrameIsNotAFlood() throws {
        let up = try TestUpstream(handler: Self.app("app"))
        defer { up.stop() }
        let proxy = try ProxyHarness(yaml: ProxyHarness.singleUpstreamYAML(ports: [up.port])
            .replacingOccurrences(of: "address: 127.0.0.1:0", with: "address: 127.0.0.1:0\n    http2: true"))
        defer { proxy.stop() }
        let paths = (0..<24).flatMap { ["--path", "/app/big/\($0)"] }
        let r = try H2Client.attack("requests", port: proxy.port, paths, timeout: 60)
        #expect(!r.closed && r.goaway == nil, "\(r.goaway.map { "GOAWAY \($0)" } ?? "closed")")
        #expect(r.streams.count == 24 && r.streams.values.allSatisfy { $0.status == 200 && $0.ended && $0.data == Self.big.count },
                "\(r.streams.values.map(\.data))")
        #expect(proxy.metrics()["sluice_http2_connections_closed_total{listener=\"public\",reason=\"control_flood\"}"] == 0)
    }

    /// How upstream responses end reaches the stream: a body cut short by the upstream resets the
    /// stream (the client must not take a short body for a whole one), a body delimited by the
    /// upstream's close ends the stream normally, a refused connect is a 502; the connection
    /// serves on. Then a client that goes away with streams in flight: their upstream exchanges
    /// are given up (the upstream sees its connections closed) and the proxy serves the next client.
    @Test func upstreamEndingsAndAClientLeavingMidStream() throws {
        let up = try TestUpstream(handler: Self.app("app", slow: 3))
        defer { up.stop() }
        let dead = try TestSocket.closedPort()
        let logPath = NSTemporaryDirectory() + "sluice-h2-endings-\(getpid()).log"
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer {
            close(logFD)
            unlink(logPath)
        }
        let proxy = try ProxyHarness(yaml: """
            listeners:
              - { name: public, address: 127.0.0.1:0, http2: true }
            upstreams:
              app: { endpoints: ["127.0.0.1:\(up.port)"] }
              dead: { endpoints: ["127.0.0.1:\(dead)"] }
            routes:
              - { name: dead, match: { path_prefix: "/dead" }, upstream: dead, sticky: none }
              - { name: web, match: { path_prefix: "/" }, upstream: app, sticky: none }
            state_file: off
            """, accessLogFD: logFD)
        defer { proxy.stop() }
        let r = try H2Client.attack("requests", port: proxy.port,
                                    ["--path", "/app/cut", "--path", "/app/untilclose", "--path", "/dead/x", "--path", "/app/hello"],
                                    timeout: 20)
        let cut = try #require(r.stream(1)), untilClose = try #require(r.stream(3))
        let refused = try #require(r.stream(5)), hello = try #require(r.stream(7))
        #expect(cut.reset != nil && !cut.ended && cut.data <= 10, "\(cut)")
        #expect(untilClose.ended && untilClose.reset == nil && untilClose.body_head == "until the end", "\(untilClose)")
        #expect(refused.status == 502 && refused.ended, "\(refused)")
        #expect(hello.status == 200 && hello.ended && hello.body_head == "app /app/hello")
        #expect(!r.closed)

        // Leaving with three slow streams in flight (their upstream answers after 3 s): each is
        // logged as a 499, and the upstream finds the three connections closed when it answers.
        let endedBefore = up.connectionsEnded
        let leaving = try H2Client.attack("requests", port: proxy.port,
                                          ["--path", "/app/slow/1", "--path", "/app/slow/2", "--path", "/app/slow/3"], timeout: 0.5)
        #expect(leaving.streams.count == 3 && leaving.streams.values.allSatisfy { !$0.ended })
        #expect(up.requests.filter { $0.startLine.contains("/app/slow/") }.count == 3)
        #expect(eventually(3) {
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").filter { $0.contains("\"status\":499") && $0.contains("/app/slow/") }.count == 3
        }, "three 499 lines")
        #expect(eventually(6) { up.connectionsEnded - endedBefore >= 3 }, "the proxy let go of its upstream connections")
        let next = try H2Client.curl(["--http2-prior-knowledge", "http://127.0.0.1:\(proxy.port)/app/next"])
        #expect(next.code == "200" && next.bodyText == "app /app/next")
    }

    /// An answer made by a timer (here the 504 of `upstream_response_header: 1s`, the upstream
    /// answering after 6 s) is sent when the timer fires, as on HTTP/1.1: three streams opened
    /// 0.8 s apart each get their 504 about 1 s after they were sent. (The frames were queued after
    /// the worker's end-of-batch send and waited for the next unrelated wake-up, up to seconds.)
    @Test func anAnswerMadeByATimerIsSentAtOnce() throws {
        let up = try TestUpstream(handler: Self.app("app", slow: 6))
        defer { up.stop() }
        let proxy = try ProxyHarness(yaml: ProxyHarness.singleUpstreamYAML(ports: [up.port], extra: "timeouts: { upstream_response_header: 1s }")
            .replacingOccurrences(of: "address: 127.0.0.1:0", with: "address: 127.0.0.1:0\n    http2: true"))
        defer { proxy.stop() }
        let r = try H2Client.attack("requests", port: proxy.port,
                                    ["--path", "/app/slow/1", "--path", "/app/slow/2", "--path", "/app/slow/3", "--gap", "0.8"], timeout: 20)
        for (i, id) in [1, 3, 5].enumerated() {
            let s = try #require(r.stream(id))
            #expect(s.status == 504 && s.ended, "\(s)")
            let after = (s.t_end ?? .infinity) - 0.8 * Double(i)
            #expect(after >= 0.9 && after < 1.6, "stream \(id): 504 \(after) s after its request")
        }
    }

    /// A reload changes nothing for an open HTTP/2 connection: the stream in flight finishes with
    /// the cohort it was given, and streams opened after the reload on the same connection follow
    /// the new split.
    @Test func reloadKeepsOpenConnectionsAndNewStreamsFollowTheNewTable() throws {
        let stable = try TestUpstream(handler: Self.app("stable", slow: 1.5))
        defer { stable.stop() }
        let canary = try TestUpstream(handler: Self.app("canary", slow: 1.5))
        defer { canary.stop() }
        func yaml(_ split: String) -> String {
            """
            listeners:
              - { name: public, address: 127.0.0.1:0, http2: true }
            upstreams:
              stable: { endpoints: ["127.0.0.1:\(stable.port)"] }
              canary: { endpoints: ["127.0.0.1:\(canary.port)"] }
            routes:
              - { name: web, match: { path_prefix: "/" }, split: { \(split) }, sticky: none }
            state_file: off
            """
        }
        let proxy = try ProxyHarness(yaml: yaml("stable: 100, canary: 0"))
        defer { proxy.stop() }
        let client = try H2Client.Running("requests", port: proxy.port,
                                          ["--path", "/app/slow", "--path", "/app/after-1", "--path", "/app/after-2", "--gap", "1"],
                                          timeout: 20)
        #expect(eventually(5) { stable.requests.count == 1 })
        let moved = try ConfigLoader.parse(yaml: yaml("stable: 0, canary: 100"), file: "t.yaml", version: 2)
        proxy.server.publish(moved.table)
        let r = try client.finish(timeout: 40)
        #expect(!r.closed && r.goaway == nil, "\(r)")
        let slow = try #require(r.stream(1)), after1 = try #require(r.stream(3)), after2 = try #require(r.stream(5))
        #expect(slow.status == 200 && slow.ended && slow.body_head == "slow")
        #expect(stable.requests.map(\.startLine) == ["GET /app/slow HTTP/1.1"])
        #expect(after1.body_head == "canary /app/after-1" && after2.body_head == "canary /app/after-2", "\(after1) \(after2)")
        #expect(proxy.metrics()["sluice_http2_connections_total{listener=\"public\"}"] == 1)
    }

    /// Streams of one connection are independent: a stream whose upstream answers after 2 s does
    /// not hold back a 1 MiB download and a small answer opened after it on the same connection,
    /// and then completes itself. A chunked response's trailers arrive as a trailing HEADERS.
    @Test func aSlowStreamDoesNotStallTheOthers() throws {
        let up = try TestUpstream(handler: Self.app("app", slow: 2))
        defer { up.stop() }
        let proxy = try ProxyHarness(yaml: ProxyHarness.singleUpstreamYAML(ports: [up.port])
            .replacingOccurrences(of: "address: 127.0.0.1:0", with: "address: 127.0.0.1:0\n    http2: true"))
        defer { proxy.stop() }
        let r = try H2Client.attack("requests", port: proxy.port,
                                    ["--path", "/app/slow", "--path", "/app/big", "--path", "/app/hello", "--path", "/app/trailers"],
                                    timeout: 20)
        let slow = try #require(r.stream(1)), big = try #require(r.stream(3)), hello = try #require(r.stream(5))
        let trailers = try #require(r.stream(7))
        #expect(!r.closed && r.goaway == nil)
        #expect(slow.status == 200 && slow.ended && slow.body_head == "slow", "\(slow)")
        #expect(big.status == 200 && big.ended && big.data == Self.big.count, "\(big)")
        #expect(hello.status == 200 && hello.ended && hello.body_head == "app /app/hello", "\(hello)")
        // The others finished before the slow stream's upstream even answered.
        let slowHead = try #require(slow.t_headers)
        #expect((big.t_end ?? .infinity) < slowHead && (hello.t_end ?? .infinity) < slowHead,
                "slow head at \(slowHead); big ended \(big.t_end ?? -1), hello \(hello.t_end ?? -1)")
        #expect(trailers.status == 200 && trailers.ended && trailers.headers == 2 && trailers.body_head == "hello", "\(trailers)")
    }

    /// A client that never opens its window (SETTINGS_INITIAL_WINDOW_SIZE 0, no WINDOW_UPDATE)
    /// while 100 streams each ask for 1 MiB: Sluice holds a bounded amount (upstream reads stop),
    /// resets each stream after `timeouts.client_send`, and closes the connection (GOAWAY) once it
    /// has been idle for `timeouts.client_idle`. The real binary, so its memory is its own.
    @Test func zeroWindowClientIsTimedOutWithBoundedMemory() throws {
        let up = try TestUpstream(handler: Self.app("app"))
        defer { up.stop() }
        let sluice = try SluiceProcess { port in
            """
            listeners:
              - { name: public, address: "127.0.0.1:\(port)", http2: true }
            upstreams:
              app: { endpoints: ["127.0.0.1:\(up.port)"] }
            routes:
              - { name: web, match: { path_prefix: "/" }, upstream: app, sticky: none }
            timeouts: { client_send: 2s, client_idle: 2s }
            state_file: off
            """
        }
        defer { _ = sluice.stop() }
        let baseline = sluice.rss
        let attacker = try H2Client.Running("zero-window", port: sluice.port, ["--streams", "100", "--path", "/app/big"], timeout: 20)
        // While the streams are held: every request reached the upstream, nothing was sent.
        #expect(eventually(5) { up.requests.count == 100 })
        usleep(1_000_000)
        let held = sluice.rss
        let r = try attacker.finish(timeout: 40)
        #expect(r.closed, "\(r)")
        #expect(r.goaway == H2Client.noError, "\(r)")
        #expect(r.rst_received == 100, "every stream reset: \(r.rst_received)")
        let resets = r.streams.values.compactMap(\.t_end)
        #expect(resets.count == 100 && r.streams.values.allSatisfy { $0.data == 0 && $0.status == 200 })
        // Not before the send timeout; the close not before the idle timeout after that.
        #expect((resets.min() ?? 0) >= 1.5, "first reset at \(resets.min() ?? 0) s")
        #expect(r.seconds >= (resets.max() ?? 0) + 1.5, "closed at \(r.seconds) s, last reset at \(resets.max() ?? 0) s")
        // 100 MiB asked for; what Sluice held while the client read nothing stays small.
        #expect(held - baseline < 48 << 20, "RSS grew from \(baseline >> 20) MiB to \(held >> 20) MiB while the client held its window shut")
        print("zero-window: RSS \(baseline >> 20) MiB before, \(held >> 20) MiB with 100 streams of 1 MiB held")
    }

    /// Drain: GOAWAY (NO_ERROR) carrying the last stream id reaches the client while its stream is
    /// in flight; the stream still completes, then the connection closes. An idle HTTP/2 connection
    /// gets its GOAWAY and is closed at once.
    @Test func drainSendsGoawayAndTheInFlightStreamFinishes() throws {
        let up = try TestUpstream(handler: Self.app("app", slow: 1.5))
        defer { up.stop() }
        let proxy = try ProxyHarness(yaml: ProxyHarness.singleUpstreamYAML(ports: [up.port])
            .replacingOccurrences(of: "address: 127.0.0.1:0", with: "address: 127.0.0.1:0\n    http2: true"))
        defer { proxy.stop() }
        let client = try H2Client.Running("requests", port: proxy.port, ["--path", "/app/hello", "--path", "/app/slow", "--until-close"],
                                          timeout: 20)
        // A second connection, idle once its one stream is answered.
        let idle = try H2Client.Running("requests", port: proxy.port, ["--path", "/app/idle", "--until-close"], timeout: 20)
        #expect(eventually(5) {
            up.requests.contains { $0.startLine.hasPrefix("GET /app/slow") } && up.requests.contains { $0.startLine.hasPrefix("GET /app/idle") }
        })
        usleep(100_000)
        proxy.server.drain()
        let i = try idle.finish(timeout: 40)
        #expect(i.goaway == H2Client.noError && i.goaway_last_stream == 1 && i.closed, "\(i)")
        #expect(i.stream(1)?.status == 200 && i.stream(1)?.ended == true)
        let r = try client.finish(timeout: 40)
        // The idle connection was closed at once, long before the slow stream (1.5 s) ended.
        #expect(i.seconds < (r.stream(3)?.t_end ?? 0), "idle closed at \(i.seconds) s")
        let hello = try #require(r.stream(1)), slow = try #require(r.stream(3))
        #expect(r.goaway == H2Client.noError && r.goaway_last_stream == 3, "\(r)")
        #expect(hello.status == 200 && hello.ended)
        #expect(slow.status == 200 && slow.ended && slow.reset == nil && slow.body_head == "slow", "\(slow)")
        #expect((r.goaway_at ?? .infinity) < (slow.t_end ?? 0), "GOAWAY at \(r.goaway_at ?? -1), slow stream ended at \(slow.t_end ?? -1)")
        #expect(r.closed && r.seconds >= (slow.t_end ?? .infinity))
    }
}
