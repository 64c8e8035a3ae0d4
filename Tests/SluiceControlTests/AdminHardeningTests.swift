import Foundation
import Synchronization
import SluiceControl
import SluiceCore
import Testing

/// Raw client sockets for the admin hardening tests: blocking, loopback, with receive timeouts
/// so a server that never answers fails the test instead of hanging it.
enum RawAdmin {
    /// A connected socket to `address` (IPv4 loopback), with `timeoutMs` receive/send timeouts.
    static func connect(_ address: SocketAddress, timeoutMs: Int = 5000) throws -> Int32 {
        let fd = try rawConnect(address)
        var tv = timeval(tv_sec: timeoutMs / 1000, tv_usec: Int((timeoutMs % 1000) * 1000))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// Sends `text` (false when the send failed).
    @discardableResult
    static func send(_ fd: Int32, _ text: String) -> Bool {
        Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == text.utf8.count
    }

    /// Reads until the server closes or the receive timeout passes; nil when nothing came before the timeout.
    static func readAll(_ fd: Int32) -> String? {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 4096, 0) }
            if n <= 0 { return n < 0 && out.isEmpty ? nil : String(decoding: out, as: UTF8.self) }
            out += buf[0..<n]
        }
    }

    /// One request on a new connection; the whole answer (the server closes after it).
    static func exchange(_ address: SocketAddress, _ text: String, timeoutMs: Int = 5000) throws -> String {
        let fd = try connect(address, timeoutMs: timeoutMs)
        defer { close(fd) }
        send(fd, text)
        return readAll(fd) ?? ""
    }

    /// The status code of an HTTP answer (0 when there is none).
    static func status(_ answer: String) -> Int {
        let parts = answer.split(separator: " ", maxSplits: 2)
        return parts.count >= 2 ? Int(parts[1]) ?? 0 : 0
    }

    /// Raises the soft descriptor limit to the hard one (the flood tests hold 2 x 1,064 sockets).
    static func raiseDescriptorLimit() {
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
    }
}

/// The rebuilt admin server (issue 17): an event loop that slow, idle and unauthenticated
/// clients cannot block, the token checked before any body is read, cross-site refusals, and
/// topology GETs behind the token; plus issue 18's /ready, metrics listener and token sources.
@Suite(.serialized) struct AdminHardeningTests {
    static let token = "op-s3cret"

    /// A routing controller on a temp config with an admin server on 127.0.0.1:0.
    struct Rig {
        let base: ControllerRig
        let hub: MetricsHub
        let admin: AdminServer
        let health: ServiceHealth
        var controller: RoutingController { base.controller }
        var address: SocketAddress { admin.boundAddress! }

        init(token: String? = AdminHardeningTests.token, settings: AdminSettings = AdminSettings()) throws {
            base = try ControllerRig()
            hub = MetricsHub(workers: 1, listenerNames: ["public"], buildVersion: "test")
            health = ServiceHealth(notifySocket: nil)
            let controller = base.controller
            admin = try AdminServer(address: .v4(0x7f00_0001, port: 0), token: token, hub: hub, events: base.events,
                                    table: { controller.table }, settings: settings, health: health)
            controller.registerAdminEndpoints(on: admin, hub: hub)
            try admin.start()
        }

        func stop() {
            admin.stop()
            base.dir.remove()
        }

        func call(_ method: String, _ path: String, _ body: String = "", token: String? = nil) throws -> AdminClientResponse {
            try AdminClient.request(method, path, to: address, token: token, body: Array(body.utf8))
        }
    }

    // MARK: Admin under attack

    /// 64 connections trickling a head one byte every 2 s and 1,000 idle connections stay
    /// connected while an operator's abort (with the token) completes, 20 times in a row. Returns
    /// the 20 abort times in milliseconds.
    func floodAndAbort(maxConnections: Int) throws -> (times: [Double], health: [Double], counters: AdminLoopCounters) {
        RawAdmin.raiseDescriptorLimit()
        var settings = AdminSettings()
        settings.maxConnections = maxConnections
        settings.requestTimeout = 120_000_000_000  // capacity, not the deadline, must protect the operator here
        let rig = try Rig(settings: settings)
        defer { rig.stop() }
        let address = rig.address
        var slow: [Int32] = []
        var idle: [Int32] = []
        defer { for fd in slow + idle { close(fd) } }
        for _ in 0..<64 { slow.append(try RawAdmin.connect(address)) }
        for _ in 0..<1000 { idle.append(try RawAdmin.connect(address)) }
        // The slowloris: one byte of a plausible head per connection every 2 s.
        let trickle = Array("POST /admin/routes/web/split HTTP/1.1\r\nHost: 127.0.0.1\r\n".utf8)
        let stop = Atomic<Bool>(false)
        let slowFDs = slow
        let sender = Thread {
            var i = 0
            while !stop.load(ordering: .relaxed) {
                for fd in slowFDs {
                    var b = trickle[i % trickle.count]
                    _ = Glibc.send(fd, &b, 1, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                }
                i += 1
                for _ in 0..<20 where !stop.load(ordering: .relaxed) { usleep(100_000) }
            }
        }
        sender.start()
        defer { stop.store(true, ordering: .relaxed) }
        // Let the server accept everything (and the trickle start) before the operator arrives.
        #expect(eventuallyTrue(10) { rig.admin.counters.accepted >= 1064 })
        var times: [Double] = []
        var health: [Double] = []
        for i in 0..<20 {
            let start = ControlClock.monotonicNanos()
            let response = try rig.call("POST", "/admin/routes/web/abort", #"{"cause": "incident \#(i)"}"#, token: Self.token)
            let elapsed = Double(ControlClock.monotonicNanos() - start) / 1e6
            times.append(elapsed)
            #expect(response.status == 200, "abort \(i): \(response.status) \(response.text)")
            #expect(rig.base.weights() == ["stable": 100, "canary": 0], "abort \(i) applied")
            // Undo, so that the next abort is a change again (not measured).
            #expect(try rig.call("POST", "/admin/routes/web/clear", token: Self.token).status == 200)
            // /healthz is answered on the loop itself: its time is the loop's responsiveness alone,
            // without the handler's work (the routing lock, two fsyncs of the state file).
            let healthStart = ControlClock.monotonicNanos()
            #expect(try rig.call("GET", "/healthz").status == 200)
            health.append(Double(ControlClock.monotonicNanos() - healthStart) / 1e6)
            usleep(250_000)  // the 20 aborts span several rounds of the trickle
        }
        #expect(rig.controller.version == 41, "20 aborts and 20 clears applied")
        return (times, health, rig.admin.counters)
    }

    @Test func operatorAbortsWhileSlowAndIdleClientsHoldConnections() throws {
        let (times, health, counters) = try floodAndAbort(maxConnections: 4096)
        print("admin flood (64 slow + 1000 idle, max_connections 4096): abort ms = \(times.map { String(format: "%.1f", $0) })"
              + ", max \(String(format: "%.1f", times.max() ?? 0)); healthz max \(String(format: "%.1f", health.max() ?? 0)) ms"
              + "; counters \(counters)")
        // The issue's requirement: under 1 s each, 20 times in a row.
        #expect(times.allSatisfy { $0 < 1000 }, "abort times (ms): \(times)")
        // Every attacking connection was still held (none evicted or timed out): the loop served the
        // operator beside them, not by dropping them.
        #expect(counters.evicted == 0 && counters.timedOut == 0)
        #expect(counters.open >= 1064)
    }

    @Test func operatorAbortsWhenTheConnectionCapIsFull() throws {
        // The default cap (1024) is below the 1,064 attacking connections: the oldest ones without
        // the token are closed to make room, and the operator gets through.
        let (times, health, counters) = try floodAndAbort(maxConnections: AdminSettings().maxConnections)
        print("admin flood (64 slow + 1000 idle, max_connections 1024): abort ms = \(times.map { String(format: "%.1f", $0) })"
              + ", max \(String(format: "%.1f", times.max() ?? 0)); healthz max \(String(format: "%.1f", health.max() ?? 0)) ms"
              + "; counters \(counters)")
        #expect(times.allSatisfy { $0 < 1000 }, "abort times (ms): \(times)")
        #expect(counters.evicted >= 40)
        #expect(counters.open <= 1024)
    }

    @Test func theOldestConnectionWithoutTheTokenMakesRoom() throws {
        var settings = AdminSettings()
        settings.maxConnections = 16
        let rig = try Rig(settings: settings)
        defer { rig.stop() }
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        for _ in 0..<16 { fds.append(try RawAdmin.connect(rig.address, timeoutMs: 3000)) }
        #expect(eventuallyTrue(5) { rig.admin.counters.open == 16 })
        let ok = try rig.call("POST", "/admin/routes/web/abort", token: Self.token)
        #expect(ok.status == 200)
        // The first idle connection was the one closed (EOF without an answer).
        #expect(RawAdmin.readAll(fds[0]) == "")
        #expect(rig.admin.counters.evicted >= 1)
        // A connection that showed the token is not evicted while its body is still coming.
        let operatorFD = try RawAdmin.connect(rig.address, timeoutMs: 3000)
        defer { close(operatorFD) }
        RawAdmin.send(operatorFD, "POST /admin/routes/web/clear HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(Self.token)\r\n"
                          + "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n")
        usleep(100_000)
        for _ in 0..<40 { fds.append(try RawAdmin.connect(rig.address, timeoutMs: 3000)) }
        usleep(200_000)
        RawAdmin.send(operatorFD, "{}")
        let answer = RawAdmin.readAll(operatorFD) ?? ""
        #expect(RawAdmin.status(answer) == 200, "\(answer)")
    }

    @Test func aFloodOnTheMetricsListenerLeavesTheAdminListenersRoom() throws {
        var settings = AdminSettings()
        settings.maxConnections = 16
        settings.metrics = MetricsListenerSpec(address: .v4(0x7f00_0001, port: 0))
        let rig = try Rig(settings: settings)
        defer { rig.stop() }
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        for _ in 0..<8 { fds.append(try RawAdmin.connect(rig.address, timeoutMs: 3000)) }
        #expect(eventuallyTrue(5) { rig.admin.counters.open == 8 })
        for _ in 0..<40 { fds.append(try RawAdmin.connect(rig.admin.metricsBoundAddress!, timeoutMs: 3000)) }
        #expect(eventuallyTrue(5) { rig.admin.counters.accepted == 48 })
        let counters = rig.admin.counters
        #expect(counters.evicted == 24 && counters.open == 24, "\(counters)")
        // Only metrics-listener connections made room: the 8 admin ones are all still open.
        for fd in fds.prefix(8) {
            var byte: UInt8 = 0
            #expect(recv(fd, &byte, 1, Int32(MSG_DONTWAIT)) == -1 && errno == EAGAIN)
        }
        #expect(try rig.call("POST", "/admin/routes/web/abort", token: Self.token).status == 200)
    }

    @Test func slowRequestsMeetTheirDeadline() throws {
        var settings = AdminSettings()
        settings.requestTimeout = 300_000_000
        let rig = try Rig(settings: settings)
        defer { rig.stop() }
        let partial = try RawAdmin.connect(rig.address, timeoutMs: 3000)
        defer { close(partial) }
        RawAdmin.send(partial, "GET /admin/stats HTTP/1.1\r\nHost: 1")
        let idle = try RawAdmin.connect(rig.address, timeoutMs: 3000)
        defer { close(idle) }
        let start = ControlClock.monotonicNanos()
        let answer = RawAdmin.readAll(partial) ?? "(timeout)"
        #expect(answer.hasPrefix("HTTP/1.1 408 "), "\(answer)")
        #expect(RawAdmin.readAll(idle)?.hasPrefix("HTTP/1.1 408 ") == true)
        #expect(ControlClock.monotonicNanos() - start < 2_000_000_000)
        // A body that stops coming is cut off the same way (the deadline covers head and body).
        let body = try RawAdmin.connect(rig.address, timeoutMs: 3000)
        defer { close(body) }
        RawAdmin.send(body, "POST /admin/routes/web/split HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(Self.token)\r\n"
                      + "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"weights\"")
        #expect(RawAdmin.readAll(body)?.hasPrefix("HTTP/1.1 408 ") == true)
        #expect(rig.controller.version == 1)
        #expect(rig.admin.counters.timedOut >= 3)
    }

    @Test func theTokenIsCheckedBeforeTheBodyIsRead() throws {
        let rig = try Rig()
        defer { rig.stop() }
        // A wrong token is refused as soon as the head is in: the 1 MB body is never sent.
        let fd = try RawAdmin.connect(rig.address, timeoutMs: 3000)
        defer { close(fd) }
        let start = ControlClock.monotonicNanos()
        RawAdmin.send(fd, "POST /admin/routes/web/split HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer wrong\r\n"
                      + "Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
        let answer = RawAdmin.readAll(fd) ?? "(timeout)"
        #expect(answer.hasPrefix("HTTP/1.1 401 "), "\(answer)")
        #expect(ControlClock.monotonicNanos() - start < 2_000_000_000)
        // With the token, a body over the limit is refused before it is read, too.
        let big = try RawAdmin.exchange(rig.address, "POST /admin/routes/web/split HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                        + "Authorization: Bearer \(Self.token)\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
        #expect(big.hasPrefix("HTTP/1.1 413 "), "\(big)")
        // Malformed heads meet the strict parser (bare LF, two Hosts).
        #expect(try RawAdmin.exchange(rig.address, "GET /healthz HTTP/1.1\nHost: a\n\n").hasPrefix("HTTP/1.1 400 "))
        #expect(try RawAdmin.exchange(rig.address, "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").hasPrefix("HTTP/1.1 400 "))
        #expect(rig.controller.version == 1)
    }

    @Test func slowHandlersRunOffTheLoopAndBehindTheOperator() throws {
        // Without a token: reads go to the read lane, changes to the priority lane.
        let rig = try Rig(token: nil)
        defer { rig.stop() }
        rig.admin.register("GET", "/admin/slow") { _ in
            usleep(1_200_000)
            return .text("slow\n")
        }
        let address = rig.address
        let slowDone = LockedCounter()
        for _ in 0..<3 {
            Thread {
                if (try? AdminClient.request("GET", "/admin/slow", to: address))?.status == 200 { slowDone.add() }
            }.start()
        }
        usleep(200_000)  // the first slow read is running, two are queued behind it (one read lane)
        let start = ControlClock.monotonicNanos()
        #expect(try rig.call("GET", "/healthz").status == 200, "answered on the loop")
        let abort = try rig.call("POST", "/admin/routes/web/abort")
        let elapsed = ControlClock.monotonicNanos() - start
        #expect(abort.status == 200)
        #expect(elapsed < 1_000_000_000, "the abort waited \(elapsed / 1_000_000) ms behind slow reads")
        #expect(slowDone.value == 0, "the reads were still running")
        #expect(eventuallyTrue(15) { slowDone.value == 3 })
    }

    @Test func expectContinueAndARefusedBodyStillGetTheirAnswer() throws {
        let rig = try Rig()
        defer { rig.stop() }
        // Expect: 100-continue (curl sends it for bodies over 1 KiB): 100 after the head passed the checks.
        let fd = try RawAdmin.connect(rig.address, timeoutMs: 3000)
        defer { close(fd) }
        let body = #"{"cause": "expect"}"#
        RawAdmin.send(fd, "POST /admin/routes/web/abort HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(Self.token)\r\n"
                      + "Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
        var interim = [UInt8](repeating: 0, count: 25)
        let n = interim.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 25, Int32(MSG_WAITALL)) }
        #expect(n == 25 && String(decoding: interim, as: UTF8.self) == "HTTP/1.1 100 Continue\r\n\r\n")
        RawAdmin.send(fd, body)
        #expect(RawAdmin.status(RawAdmin.readAll(fd) ?? "") == 200)
        #expect(rig.base.events.recent().last?.cause == "expect")
        // A wrong token with a 200 KB body sent at once: the 401 is written after the head, the rest
        // is read and discarded (no reset that would lose the answer).
        let big = String(repeating: "x", count: 200_000)
        let answer = try RawAdmin.exchange(rig.address, "POST /admin/routes/web/clear HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                           + "Authorization: Bearer nope\r\nContent-Type: application/json\r\n"
                                           + "Content-Length: \(big.utf8.count)\r\n\r\n" + big)
        #expect(answer.hasPrefix("HTTP/1.1 401 "), "\(answer.prefix(80))")
    }

    // MARK: Cross-site requests

    @Test(arguments: [
        ("Origin: http://evil.example\r\nContent-Type: application/json\r\n", 403),
        ("Origin: null\r\nContent-Type: application/json\r\n", 403),
        ("Origin: http://127.0.0.1.evil.example\r\nContent-Type: application/json\r\n", 403),
        ("Sec-Fetch-Site: cross-site\r\nContent-Type: application/json\r\n", 403),
        ("Content-Type: text/plain\r\n", 415),
        ("Content-Type: application/x-www-form-urlencoded\r\n", 415),
        ("Content-Type: multipart/form-data; boundary=x\r\n", 415),
        ("", 415),
    ])
    func crossSiteChangesAreRefusedAndNotApplied(headers: String, status: Int) throws {
        // The default admin: loopback, no token.
        let rig = try Rig(token: nil)
        defer { rig.stop() }
        let body = #"{"weights":{"stable":0,"canary":100}}"#
        let answer = try RawAdmin.exchange(rig.address, "POST /admin/routes/web/split HTTP/1.1\r\nHost: \(rig.address)\r\n"
                                           + headers + "Content-Length: \(body.utf8.count)\r\n\r\n" + body)
        #expect(RawAdmin.status(answer) == status, "\(answer)")
        #expect(rig.controller.version == 1, "not applied")
        #expect(rig.base.weights() == ["stable": 95, "canary": 5])
    }

    @Test func aForeignHostIsRefusedAndOwnNamesAreAccepted() throws {
        var settings = AdminSettings()
        settings.allowedHosts = ["sluice-admin.internal"]
        let rig = try Rig(token: nil, settings: settings)
        defer { rig.stop() }
        let port = rig.address.port
        func abort(host: String, origin: String? = nil) throws -> Int {
            RawAdmin.status(try RawAdmin.exchange(rig.address, "POST /admin/routes/web/abort HTTP/1.1\r\nHost: \(host)\r\n"
                                                  + (origin.map { "Origin: \($0)\r\n" } ?? "") + "Content-Length: 0\r\n\r\n"))
        }
        // DNS rebinding: the page's name is in Host.
        #expect(try abort(host: "evil.example:\(port)") == 403)
        #expect(try abort(host: "127.0.0.2:\(port)") == 403)
        #expect(rig.controller.version == 1)
        #expect(try abort(host: "127.0.0.1:\(port)") == 200)
        #expect(try abort(host: "localhost:\(port)", origin: "http://localhost:\(port)") == 200)
        #expect(try abort(host: "LOCALHOST") == 200)
        #expect(try abort(host: "sluice-admin.internal:\(port)", origin: "https://sluice-admin.internal") == 200)
        #expect(try abort(host: "127.0.0.1:\(port)", origin: "http://evil.example") == 403)
        // A rebinding page could read the topology without a token: a foreign Host is refused there too,
        // but not on the open endpoints (probes and scrapers send whatever Host they like).
        #expect(RawAdmin.status(try RawAdmin.exchange(rig.address, "GET /admin/history HTTP/1.1\r\nHost: evil.example\r\n\r\n")) == 403)
        #expect(RawAdmin.status(try RawAdmin.exchange(rig.address, "GET /admin/history HTTP/1.1\r\nHost: localhost\r\n\r\n")) == 200)
        #expect(RawAdmin.status(try RawAdmin.exchange(rig.address, "GET /metrics HTTP/1.1\r\nHost: evil.example\r\n\r\n")) == 200)
        #expect(RawAdmin.status(try RawAdmin.exchange(rig.address, "GET /healthz HTTP/1.1\r\nHost: pod-ip\r\n\r\n")) == 200)
        // The curl of the issue, exactly.
        let curl = try RawAdmin.exchange(rig.address, "POST /admin/routes/web/split HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
                                         + "Origin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: 37\r\n\r\n"
                                         + #"{"weights":{"stable":0,"canary":100}}"#)
        #expect(RawAdmin.status(curl) == 403)
    }

    @Test func policyHostAndOriginRules() {
        let policy = AdminPolicy(token: nil, allowedHosts: ["Admin.Example"])
        let loopback = SocketAddress.v4(0x7f00_0001, port: 9901)
        let v6 = SocketAddress.v6(hi: 0x2001_0db8_0000_0000, lo: 1, port: 9901)
        #expect(policy.isOwnHost("127.0.0.1", local: loopback))
        #expect(policy.isOwnHost("localhost", local: loopback) && policy.isOwnHost("localhost.", local: loopback))
        #expect(!policy.isOwnHost("localhost", local: v6))
        #expect(policy.isOwnHost("2001:db8::1", local: v6))
        #expect(!policy.isOwnHost("2001:db8::2", local: v6))
        #expect(policy.isOwnHost("admin.example", local: v6))
        #expect(!policy.isOwnHost("evil.example", local: loopback))
        #expect(!policy.isOwnHost("", local: loopback))
        func request(_ headers: [String: String]) -> AdminRequest { AdminRequest(method: "POST", path: "/x", headers: headers) }
        #expect(policy.crossSiteRefusal(request(["host": "[2001:db8::1]:9901"]), local: v6, hasBody: false) == nil)
        #expect(policy.crossSiteRefusal(request(["host": "127.0.0.1:9901", "content-type": "application/json; charset=utf-8"]),
                                        local: loopback, hasBody: true) == nil)
        #expect(policy.crossSiteRefusal(request(["host": "127.0.0.1:9901", "origin": "http://user@127.0.0.1"]),
                                        local: loopback, hasBody: false)?.status == 403)
        #expect(policy.crossSiteRefusal(request([:]), local: loopback, hasBody: false)?.status == 403)
    }

    // MARK: The token on reads

    @Test func topologyReadsNeedTheTokenAndHealthAndMetricsStayOpen() throws {
        let rig = try Rig()
        defer { rig.stop() }
        let rollouts = RolloutController(routing: rig.controller, hub: rig.hub)
        rollouts.registerAdminEndpoints(on: rig.admin)
        for path in ["/admin/stats", "/admin/events", "/admin/history", "/admin/rollouts", "/admin/routes/web/rollout"] {
            #expect(try rig.call("GET", path).status == 401, "\(path) without the token")
            #expect(try rig.call("GET", path, token: "wrong").status == 401, "\(path) with a wrong token")
            #expect(try rig.call("GET", path, token: Self.token).status != 401, "\(path) with the token")
        }
        rig.health.markReady()
        for path in ["/metrics", "/healthz", "/ready"] {
            #expect(try rig.call("GET", path).status == 200, "\(path) stays open")
        }
        // Configured otherwise: every endpoint needs the token.
        var settings = AdminSettings()
        settings.publicEndpoints = []
        let closed = try Rig(settings: settings)
        defer { closed.stop() }
        closed.health.markReady()
        for path in ["/metrics", "/healthz", "/ready"] {
            #expect(try closed.call("GET", path).status == 401, "\(path) protected")
            #expect(try closed.call("GET", path, token: Self.token).status == 200)
        }
    }

    // MARK: Issue 18: /ready, the metrics listener

    @Test func readyFollowsStartAndDrain() throws {
        let rig = try Rig()
        defer { rig.stop() }
        let starting = try rig.call("GET", "/ready")
        #expect(starting.status == 503 && starting.text == "not ready: starting\n")
        rig.health.markReady()
        let ready = try rig.call("GET", "/ready")
        #expect(ready.status == 200 && ready.text == "ready\n")
        rig.health.beginDrain()
        let draining = try rig.call("GET", "/ready")
        #expect(draining.status == 503 && draining.text == "not ready: draining\n")
        rig.health.markReady()  // a drain is final
        #expect(try rig.call("GET", "/ready").status == 503)
        #expect(try rig.call("GET", "/healthz").status == 200, "alive while draining")
        let head = try rig.call("HEAD", "/ready")
        #expect(head.status == 503 && head.body.isEmpty)
    }

    @Test func theMetricsListenerServesMetricsAndHealthOnly() throws {
        var settings = AdminSettings()
        settings.metrics = MetricsListenerSpec(address: .v4(0x7f00_0001, port: 0))
        let rig = try Rig(token: nil, settings: settings)
        defer { rig.stop() }
        rig.health.markReady()
        let metrics = try #require(rig.admin.metricsBoundAddress)
        #expect(metrics.port != rig.address.port)
        let scrape = try AdminClient.request("GET", "/metrics", to: metrics)
        #expect(scrape.status == 200 && scrape.text.contains("sluice_cohort_weight"))
        #expect(try AdminClient.request("GET", "/healthz", to: metrics).status == 200)
        #expect(try AdminClient.request("GET", "/ready", to: metrics).status == 200)
        for (method, path) in [("GET", "/admin/stats"), ("GET", "/admin/history"), ("POST", "/admin/routes/web/abort"),
                               ("POST", "/admin/reload")] {
            let r = try AdminClient.request(method, path, to: metrics)
            #expect(r.status == 404 && r.text.contains("serves only /metrics"), "\(method) \(path)")
        }
        #expect(rig.controller.version == 1, "no admin route reached through the metrics listener")
        // Its own allow-list: a client outside it gets no answer; the admin listener is unaffected.
        var limited = AdminSettings()
        limited.metrics = MetricsListenerSpec(address: .v4(0x7f00_0001, port: 0), allow: [AddressPrefix.parse("10.0.0.0/8")!])
        let other = try Rig(token: nil, settings: limited)
        defer { other.stop() }
        let refused = try RawAdmin.exchange(other.admin.metricsBoundAddress!, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", timeoutMs: 2000)
        #expect(refused == "")
        #expect(other.admin.counters.refused == 1)
        #expect(try other.call("GET", "/metrics").status == 200)
        // admin.allow does the same for the admin listener.
        var adminLimited = AdminSettings()
        adminLimited.allow = [AddressPrefix.parse("10.0.0.0/8")!]
        let fenced = try Rig(token: nil, settings: adminLimited)
        defer { fenced.stop() }
        #expect(try RawAdmin.exchange(fenced.address, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeoutMs: 2000) == "")
        #expect(fenced.admin.counters.refused == 1)
        var loopbackAllowed = AdminSettings()
        loopbackAllowed.allow = [AddressPrefix.parse("10.0.0.0/8")!, AddressPrefix.parse("127.0.0.1")!]
        let open = try Rig(token: nil, settings: loopbackAllowed)
        defer { open.stop() }
        #expect(try open.call("GET", "/healthz").status == 200)
    }

    // MARK: Token sources

    @Test func tokenFromFileAndEnvironment() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try "  file-t0ken \n".write(toFile: dir.file("token"), atomically: true, encoding: .utf8)
        let fromFile = try load(adminTestYAML + "admin: { address: 0.0.0.0:9901, token_file: \(dir.file("token")) }\n")
        #expect(fromFile.adminToken == "  file-t0ken")
        #expect(fromFile.admin.tokenSource == "admin.token_file")
        // Relative to the config file's directory.
        let relative = try ConfigLoader.parse(yaml: adminTestYAML + "admin: { token_file: token }\n", file: dir.file("sluice.yaml"),
                                              version: 1, resolver: testResolver, environmentToken: nil)
        #expect(relative.adminToken == "  file-t0ken")
        // The environment gives the token when the file gives none (and so allows a non-loopback address).
        let yaml = adminTestYAML + "admin: { address: 0.0.0.0:9901 }\n"
        let fromEnv = try ConfigLoader.parse(yaml: yaml, file: "s.yaml", version: 1, resolver: testResolver, environmentToken: "env-t0ken")
        #expect(fromEnv.adminToken == "env-t0ken" && fromEnv.admin.tokenSource == "$SLUICE_ADMIN_TOKEN")
        #expect(throws: ConfigError.self) {
            try ConfigLoader.parse(yaml: yaml, file: "s.yaml", version: 1, resolver: testResolver, environmentToken: nil)
        }
        let both = try ConfigLoader.parse(yaml: adminTestYAML + "admin: { token: inline }\n", file: "s.yaml", version: 1,
                                          resolver: testResolver, environmentToken: "env-t0ken")
        #expect(both.adminToken == "inline", "the config's token wins over the environment")
        // Bad files are config errors with the key's position.
        try "".write(toFile: dir.file("empty"), atomically: true, encoding: .utf8)
        for (file, message) in [(dir.file("missing"), "cannot read token file"), (dir.file("empty"), "is empty"),
                                 (dir.path, "not a regular file"), ("/dev/zero", "not a regular file")] {
            let problems = diagnostics(adminTestYAML + "admin: { token_file: \(file) }\n")
            #expect(problems.first?.keyPath == "admin.token_file" && problems.first?.message.contains(message) == true,
                    "\(file): \(problems)")
        }
        try String(repeating: "x", count: 5000).write(toFile: dir.file("big"), atomically: true, encoding: .utf8)
        #expect(diagnostics(adminTestYAML + "admin: { token_file: \(dir.file("big")) }\n").first?.message.contains("larger than") == true)
        #expect(diagnostics(adminTestYAML + "admin: { token: a, token_file: \(dir.file("token")) }\n").first?.keyPath == "admin.token_file")
        // The other new keys.
        let full = try load(adminTestYAML + """
            admin: { address: 127.0.0.1:9901, allowed_hosts: [Sluice.Internal], public_endpoints: [/healthz], allow: [127.0.0.0/8],
                     max_connections: 64, request_timeout: 3s }
            metrics: { address: 0.0.0.0:9902, allow: [10.0.0.0/8] }

            """)
        #expect(full.admin.allowedHosts == ["sluice.internal"] && full.admin.publicEndpoints == ["/healthz"])
        #expect(full.admin.allow == [AddressPrefix.parse("127.0.0.0/8")!] && full.admin.maxConnections == 64)
        #expect(full.admin.requestTimeout == 3_000_000_000)
        #expect(full.admin.metrics == MetricsListenerSpec(address: .v4(0, port: 9902), allow: [AddressPrefix.parse("10.0.0.0/8")!]))
        for (bad, key) in [("admin: { public_endpoints: [/admin/stats] }", "admin.public_endpoints[0]"),
                           ("admin: { allowed_hosts: [\"http://x\"] }", "admin.allowed_hosts[0]"),
                           ("admin: { request_timeout: 1h }", "admin.request_timeout"),
                           ("metrics: { address: 127.0.0.1:8080 }", "metrics.address"),
                           ("metrics: { address: 127.0.0.1:9901 }", "metrics.address"),
                           ("metrics: { address: 127.0.0.1:9902, allow: [nope] }", "metrics.allow[0]")] {
            #expect(diagnostics(adminTestYAML + bad + "\n").first?.keyPath == key, "\(bad)")
        }
    }

    // MARK: systemd

    @Test func sdNotifyReachesADatagramSocket() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.file("notify.sock")
        let fd = try NotifyListener.bind(path)
        defer { close(fd) }
        let health = ServiceHealth(notifySocket: path)
        health.markReady(status: "serving version 1")
        #expect(NotifyListener.receive(fd) == "READY=1\nSTATUS=serving version 1")
        health.markReady()  // once
        health.beginDrain()
        #expect(NotifyListener.receive(fd) == "STOPPING=1\nSTATUS=draining")
        // The abstract namespace (`@name`), as systemd uses.
        let name = "@sluice-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let abstract = try NotifyListener.bind(name)
        defer { close(abstract) }
        #expect(SystemdNotify.send("READY=1", socket: name))
        #expect(NotifyListener.receive(abstract) == "READY=1")
        // No socket, or a relative path: nothing is sent, nothing fails.
        #expect(!SystemdNotify.send("READY=1", socket: nil))
        #expect(!SystemdNotify.send("READY=1", socket: "relative.sock"))
    }
}

/// A datagram socket standing in for systemd's notification socket.
enum NotifyListener {
    /// Binds an AF_UNIX datagram socket at `path` (`@name`: abstract), with a 5 s receive timeout.
    static func bind(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw AdminError("socket failed") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let length = socklen_t(2 + bytes.count + (bytes.first == 0 ? 0 : 1))
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) } }
        guard rc == 0 else { close(fd); throw AdminError("bind \(path) failed: \(errno)") }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// One datagram as text (nil after the timeout).
    static func receive(_ fd: Int32) -> String? {
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 4096, 0) }
        return n < 0 ? nil : String(decoding: buf[0..<n], as: UTF8.self)
    }
}

/// Polls `condition` every 10 ms for up to `seconds`.
func eventuallyTrue(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = ControlClock.monotonicNanos() + UInt64(seconds * 1e9)
    while ControlClock.monotonicNanos() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}
