import Foundation
@preconcurrency import Glibc
import Testing
import SluiceCore
import SluiceProxy

/// The known HTTP/2 attacks, each sent by `Tests/Support/h2/h2attack.py` (raw frames) while a
/// normal client (h2load, 2 connections x 10 streams) runs on the same proxy: the attacker's
/// connection must end (GOAWAY and close) within a bound, the normal client's requests must all
/// succeed, and the close is counted under its reason in `sluice_http2_connections_closed_total`.
/// Where a limit is a rate or a size, the same frames under the limit are shown not to be cut.
@Suite(.serialized)
struct HTTP2AttackTests {
    static let reasons = ["protocol_error", "rapid_reset", "control_flood", "header_bomb"]

    /// A proxy with an h2c listener in front of the test application, short client timeouts (the
    /// runs under a limit last 0.6 s, less than client_idle, so nothing but Sluice's verdict on
    /// their frames could close them).
    final class Target {
        let up: TestUpstream
        let proxy: ProxyHarness

        init() throws {
            up = try TestUpstream(handler: HTTP2Tests.app("app"))
            do {
                proxy = try ProxyHarness(yaml: """
                    listeners:
                      - { name: public, address: 127.0.0.1:0, http2: true }
                    upstreams:
                      app: { endpoints: ["127.0.0.1:\(up.port)"] }
                    routes:
                      - { name: web, match: { path_prefix: "/" }, upstream: app, sticky: none }
                    timeouts: { client_send: 1s, client_idle: 1s }
                    state_file: off
                    """)
            } catch {
                up.stop()
                throw error
            }
        }

        func stop() {
            proxy.stop()
            up.stop()
        }

        func closed(_ reason: String) -> Double {
            proxy.metrics()["sluice_http2_connections_closed_total{listener=\"public\",reason=\"\(reason)\"}"] ?? -1
        }

        /// Every close reason's count is 0 except `reason`'s, which is `count`.
        func expectClosedCounts(_ reason: String?, _ count: Double = 1, sourceLocation: SourceLocation = #_sourceLocation) {
            if let reason {
                #expect(eventually(3) { closed(reason) == count }, "\(reason): \(closed(reason))", sourceLocation: sourceLocation)
            }
            for other in HTTP2AttackTests.reasons where other != reason {
                #expect(closed(other) == 0, "\(other): \(closed(other))", sourceLocation: sourceLocation)
            }
        }

        /// Runs the attack while a normal client runs for `seconds` (started a second before the
        /// attack, ending after it); checks the normal client's results and returns the attack's.
        func underAttack(_ mode: String, _ args: [String], seconds: Double = 4, sourceLocation: SourceLocation = #_sourceLocation)
            throws -> H2Client.AttackResult {
            let bystander = H2Bystander(port: proxy.port, path: "/app/hello", seconds: seconds)
            usleep(1_000_000)
            let r = try H2Client.attack(mode, port: proxy.port, args, timeout: 20)
            let attackEnded = Date().timeIntervalSince(bystander.started)
            let normal = bystander.finish()
            #expect(attackEnded < seconds, "the attack (\(attackEnded) s) ended while the normal client ran (\(seconds) s)",
                    sourceLocation: sourceLocation)
            #expect(normal.total > 100 && normal.succeeded == normal.total && normal.status2xx == normal.total,
                    "normal client: \(normal.output)", sourceLocation: sourceLocation)
            #expect(normal.failed == 0 && normal.errored == 0 && normal.timedOut == 0, sourceLocation: sourceLocation)
            // The upstream served the normal client (and is still fine).
            let after = try H2Client.curl(["--http2-prior-knowledge", "http://127.0.0.1:\(proxy.port)/app/after"])
            #expect(after.code == "200" && after.bodyText == "app /app/after", sourceLocation: sourceLocation)
            return r
        }
    }

    /// CVE-2023-44487: HEADERS then RST_STREAM, thousands a second. Resets under the burst
    /// (2 x max_resets_per_second = 200) are fine; past it: GOAWAY ENHANCE_YOUR_CALM, closed.
    @Test func rapidReset() throws {
        let t = try Target()
        defer { t.stop() }
        let calm = try H2Client.attack("rapid-reset", port: t.proxy.port, ["--count", "150", "--path", "/app/hello"], timeout: 0.6)
        #expect(!calm.closed && calm.goaway == nil && calm.sent == 150, "\(calm)")
        t.expectClosedCounts(nil)

        let r = try t.underAttack("rapid-reset", ["--count", "20000", "--path", "/app/hello"])
        #expect(r.closed && r.goaway == H2Client.enhanceYourCalm, "\(r)")
        #expect(r.seconds < 10, "closed after \(r.seconds) s")
        // Cut after about the burst, not after everything sent (stream ids go up by 2).
        let last = r.goaway_last_stream ?? .max
        #expect(last >= 2 * 200 && last < 2 * 1000, "last stream \(last) of \(r.sent) sent")
        t.expectClosedCounts("rapid_reset")
    }

    /// CVE-2025-8671 ("MadeYouReset"): no RST_STREAM from the client, but each request's body
    /// falls short of its content-length, so nghttp2 resets the stream itself (PROTOCOL_ERROR)
    /// while its exchange runs: each costs what a rapid reset costs, and is counted the same way.
    /// Before the fix these resets took no token: the attacker sent all 20,000 (each an upstream
    /// request started and thrown away) and was never cut.
    @Test func madeYouReset() throws {
        let t = try Target()
        defer { t.stop() }
        let r = try t.underAttack("made-you-reset", ["--count", "20000", "--path", "/app/hello"])
        #expect(r.closed && r.goaway == H2Client.enhanceYourCalm, "\(r)")
        #expect(r.seconds < 10, "closed after \(r.seconds) s")
        let last = r.goaway_last_stream ?? .max
        #expect(last < 2 * 2000, "last stream \(last) of \(r.sent) sent")
        t.expectClosedCounts("rapid_reset")
    }

    /// HEADERS without END_HEADERS, then CONTINUATION frames without end: closed after
    /// `max_continuations` (8), long before the header block could grow.
    @Test func continuationFlood() throws {
        let t = try Target()
        defer { t.stop() }
        let r = try t.underAttack("continuation", ["--count", "100000", "--path", "/app/hello"])
        #expect(r.closed, "\(r)")
        #expect(r.goaway == H2Client.protocolError || r.goaway == H2Client.enhanceYourCalm, "\(r)")
        #expect(r.seconds < 10)
        #expect(t.up.requests.allSatisfy { $0.header("x-continuation") == nil })
        t.expectClosedCounts("protocol_error")
    }

    /// HPACK bomb: one 4000-byte field enters the dynamic table, then 8000 one-byte references to
    /// it (12 KB on the wire, 32 MB decoded): closed with ENHANCE_YOUR_CALM once the decoded list
    /// passes four times max_header_list_size. Under that (a few references) the request is
    /// answered: 200 within the limit, 431 over it, and the connection stays.
    @Test func hpackBomb() throws {
        let t = try Target()
        defer { t.stop() }
        let small = try H2Client.attack("hpack-bomb", port: t.proxy.port, ["--refs", "5", "--path", "/app/hello"], timeout: 0.6)
        #expect(!small.closed && small.stream(1)?.status == 200, "\(small)")
        let over = try H2Client.attack("hpack-bomb", port: t.proxy.port, ["--refs", "12", "--path", "/app/hello"], timeout: 0.6)
        #expect(!over.closed && over.stream(1)?.status == 431, "\(over)")
        t.expectClosedCounts(nil)
        let before = t.up.requests.count

        let r = try t.underAttack("hpack-bomb", ["--refs", "8000", "--path", "/app/bomb"])
        #expect(r.closed && r.goaway == H2Client.enhanceYourCalm, "\(r)")
        #expect(r.seconds < 10)
        #expect(r.stream(1)?.status == nil, "the bomb's stream got no answer")
        #expect(!t.up.requests[before...].contains { $0.startLine.contains("/app/bomb") })
        t.expectClosedCounts("header_bomb")
    }

    /// PING flood: more than the burst of max_control_frames_per_second (2 x 200) in a row:
    /// GOAWAY ENHANCE_YOUR_CALM, closed. 300 pings are answered (ACKs) and nothing is closed.
    @Test func pingFlood() throws {
        let t = try Target()
        defer { t.stop() }
        let calm = try H2Client.attack("ping-flood", port: t.proxy.port, ["--count", "300"], timeout: 0.6)
        #expect(!calm.closed && calm.goaway == nil && calm.frames_received >= 300, "\(calm)")
        t.expectClosedCounts(nil)
        let r = try t.underAttack("ping-flood", ["--count", "100000"])
        #expect(r.closed && r.goaway == H2Client.enhanceYourCalm, "\(r)")
        #expect(r.seconds < 10)
        t.expectClosedCounts("control_flood")
    }

    /// SETTINGS flood (each one must be acknowledged): same limit as PING.
    @Test func settingsFlood() throws {
        let t = try Target()
        defer { t.stop() }
        let r = try t.underAttack("settings-flood", ["--count", "100000"])
        #expect(r.closed && r.goaway == H2Client.enhanceYourCalm, "\(r)")
        #expect(r.seconds < 10)
        t.expectClosedCounts("control_flood")
    }

    /// Clients that send requests and close their side in the same packet (50 connections, five
    /// streams each): the proxy (the real binary, so a crash shows as a failure here) stays up and
    /// serves the next client. A stream queued its connection for output after that connection had
    /// closed, and the end-of-batch send then read the freed connection: a crash any client could cause.
    @Test func requestsThenHangUpDoNotCrashTheProxy() throws {
        let up = try TestUpstream(handler: HTTP2Tests.app("app"))
        defer { up.stop() }
        let sluice = try SluiceProcess { port in
            """
            listeners:
              - { name: public, address: "127.0.0.1:\(port)", http2: true }
            upstreams:
              app: { endpoints: ["127.0.0.1:\(up.port)"] }
            routes:
              - { name: web, match: { path_prefix: "/" }, upstream: app, sticky: none }
            state_file: off
            """
        }
        defer { _ = sluice.stop() }
        let r = try H2Client.attack("hang-up", port: sluice.port, ["--count", "50", "--path", "/app/hello"], timeout: 60)
        #expect(r.sent == 50)
        #expect(sluice.process.isRunning, "the proxy exited (status \(sluice.process.isRunning ? 0 : sluice.process.terminationStatus))")
        if sluice.process.isRunning {
            let after = try H2Client.curl(["--http2-prior-knowledge", "http://127.0.0.1:\(sluice.port)/app/after"])
            #expect(after.code == "200" && after.bodyText == "app /app/after")
        }
    }

    /// A client that never ends its requests cannot keep a connection past the timeouts: a stream
    /// answered 431 (header list over the limit) and a stream answered 200 while the client still
    /// had its request open are reset after client_send (NO_ERROR once the response is complete,
    /// RFC 9113 8.1), and the connection is closed after client_idle.
    @Test func streamsTheClientLeavesOpenDoNotHoldTheConnection() throws {
        let up = try TestUpstream(handler: HTTP2Tests.app("app"))
        defer { up.stop() }
        let proxy = try ProxyHarness(yaml: """
            listeners:
              - { name: public, address: 127.0.0.1:0, http2: true }
            upstreams:
              app: { endpoints: ["127.0.0.1:\(up.port)"] }
            routes:
              - { name: web, match: { path_prefix: "/app/" }, upstream: app, sticky: none }
            timeouts: { client_send: 1s, client_idle: 1s }
            state_file: off
            """)
        defer { proxy.stop() }
        let big = try H2Client.attack("hpack-bomb", port: proxy.port, ["--refs", "12", "--open", "--path", "/app/x"], timeout: 10)
        #expect(big.stream(1)?.status == 431 && big.stream(1)?.reset != nil, "\(big)")
        #expect(big.closed && big.goaway == H2Client.noError && big.seconds < 6, "\(big)")
        // Answered 404 by the route table while the request is still open.
        let open = try H2Client.attack("requests", port: proxy.port, ["--path", "/elsewhere", "--open", "--until-close"], timeout: 10)
        let s = try #require(open.stream(1))
        #expect(s.status == 404 && s.ended, "\(s)")
        #expect(s.reset == H2Client.noError, "\(s)")
        #expect(open.closed && open.goaway == H2Client.noError && open.seconds < 6, "\(open)")
        #expect(up.requests.isEmpty)
    }

    /// WINDOW_UPDATE flood with nothing downloading: a control-frame flood. (A client sending one
    /// per DATA frame it receives is not one: `aClientAcknowledgingEveryDataFrameIsNotAFlood`.)
    @Test func windowUpdateFlood() throws {
        let t = try Target()
        defer { t.stop() }
        let r = try t.underAttack("window-update-flood", ["--count", "100000"])
        #expect(r.closed && r.goaway == H2Client.enhanceYourCalm, "\(r)")
        #expect(r.seconds < 10)
        t.expectClosedCounts("control_flood")
    }

    /// Zero-window hold: 100 streams of 1 MiB each with SETTINGS_INITIAL_WINDOW_SIZE 0 and never a
    /// WINDOW_UPDATE: every stream is reset after client_send (1 s), the connection closed after
    /// client_idle (1 s) more; not a protocol violation, so no close reason is counted.
    @Test func zeroWindowHold() throws {
        let t = try Target()
        defer { t.stop() }
        let r = try t.underAttack("zero-window", ["--streams", "100", "--path", "/app/big"], seconds: 8)
        #expect(r.closed && r.goaway == H2Client.noError, "\(r)")
        #expect(r.rst_received == 100 && r.streams.values.allSatisfy { $0.reset != nil && $0.data == 0 }, "\(r.rst_received) resets")
        #expect(r.seconds < 6, "closed after \(r.seconds) s")
        t.expectClosedCounts(nil)
    }

    /// Zero-window hold with small answers: each whole response fits in the stream's buffer, so its
    /// exchange ends at once and only the window holds the stream. Those streams too are reset after
    /// client_send and the connection closed after client_idle (a held stream keeps its buffers, so
    /// without this one connection could pin 100 of them for ever).
    @Test func zeroWindowHoldOfCompleteResponses() throws {
        let t = try Target()
        defer { t.stop() }
        let r = try t.underAttack("zero-window", ["--streams", "100", "--path", "/app/hello"], seconds: 8)
        #expect(r.closed && r.goaway == H2Client.noError, "\(r)")
        #expect(r.rst_received == 100 && r.streams.values.allSatisfy { $0.status == 200 && $0.reset != nil && $0.data == 0 },
                "\(r.rst_received) resets")
        #expect(r.seconds < 6, "closed after \(r.seconds) s")
        t.expectClosedCounts(nil)
    }
}
