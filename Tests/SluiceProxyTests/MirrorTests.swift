import Foundation
@preconcurrency import Glibc
import SluiceControl
import SluiceCore
import Testing

/// A gate upstream handlers wait on until the test opens it.
final class Gate: @unchecked Sendable {
    private let condition = NSCondition()
    private var open = false
    private var waiting = 0
    private var passed = 0

    /// Blocks until `release` (at most `seconds`); counts who passed.
    func wait(seconds: Double = 20) {
        condition.lock()
        waiting += 1
        let end = Date().addingTimeInterval(seconds)
        while !open && condition.wait(until: end) {}
        waiting -= 1
        passed += 1
        condition.unlock()
    }

    func release() {
        condition.lock()
        open = true
        condition.broadcast()
        condition.unlock()
    }

    /// Handlers that went past the gate.
    var passedCount: Int { condition.lock(); defer { condition.unlock() }; return passed }
}

/// Issue 19, traffic mirroring through the real proxy: copies are fire and forget (the primary
/// never waits for or fails because of the mirror), bounded (drops counted), compared (exact
/// counts of each kind of difference), sampled, and limited to idempotent methods by default.
@Suite(.serialized)
struct MirrorTests {
    static func yaml(primary: UInt16, mirror: UInt16, mirrorOptions: String, limits: String = "") -> String {
        """
        listeners: [{ name: public, address: "127.0.0.1:0" }]
        \(limits)
        upstreams:
          app: { endpoints: ["127.0.0.1:\(primary)"] }
          shadow: { endpoints: ["127.0.0.1:\(mirror)"] }
        routes:
          - name: web
            upstream: app
            sticky: none
            mirror: { to: shadow, \(mirrorOptions) }
        """
    }

    /// Sends `paths` one after another on one keep-alive connection; returns the responses.
    static func run(_ proxy: ProxyHarness, _ paths: [String], method: String = "GET", body: String? = nil) throws -> [TestMessage] {
        let fd = try proxy.connect()
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        var out: [TestMessage] = []
        for p in paths {
            let bodyPart = body.map { "Content-Length: \($0.utf8.count)\r\n\r\n\($0)" } ?? "\r\n"
            try TestSocket.send(fd, "\(method) \(p) HTTP/1.1\r\nHost: shop\r\n\(bodyPart)")
            guard let m = try reader.readMessage(isResponse: true, requestMethod: method) else { throw TestError("no response to \(p)") }
            out.append(m)
        }
        return out
    }

    func counts(_ proxy: ProxyHarness) -> [String: Int] {
        var out: [String: Int] = [:]
        for (k, v) in proxy.metrics() where k.hasPrefix("sluice_mirror_requests_total{route=\"web\",mirror=\"shadow\"") {
            let result = k.components(separatedBy: "result=\"")[1].dropLast(2)
            if v > 0 { out[String(result)] = Int(v) }
        }
        return out
    }

    /// The primary answers every request while the mirror holds every copy it received (it has
    /// answered none): the primary did not wait for it. Then the mirror answers and the copies complete.
    @Test func thePrimaryNeverWaitsForAMirrorThatHoldsItsRequests() throws {
        let gate = Gate()
        let primary = try TestUpstream { _ in .ok("primary") }
        let mirror = try TestUpstream { _ in gate.wait(); return .ok("primary") }
        defer { gate.release(); primary.stop(); mirror.stop() }
        let proxy = try ProxyHarness(yaml: Self.yaml(primary: primary.port, mirror: mirror.port, mirrorOptions: "compare: false"))
        defer { proxy.stop() }
        let responses = try Self.run(proxy, (0..<40).map { "/item/\($0)" })
        #expect(responses.count == 40 && responses.allSatisfy { $0.status == 200 && $0.bodyText == "primary" })
        #expect(primary.requests.count == 40)
        // All 40 answered while the mirror has answered nothing.
        #expect(gate.passedCount == 0)
        #expect(eventually(5) { mirror.requests.count == 40 }, "\(mirror.requests.count)")
        #expect(gate.passedCount == 0)
        // The copies carry the mirror header and the request as the upstream got it; the primary's do not.
        let copy = try #require(mirror.requests.first)
        #expect(copy.header("X-Sluice-Mirror") == "1" && copy.startLine.hasPrefix("GET /item/"))
        #expect(copy.header("X-Forwarded-For") == "127.0.0.1" && copy.header("Host") == "shop")
        #expect(primary.requests.allSatisfy { $0.header("X-Sluice-Mirror") == nil })
        #expect(counts(proxy).isEmpty, "nothing is counted before the copies end: \(counts(proxy))")
        gate.release()
        #expect(eventually(5) { counts(proxy) == ["completed": 40] }, "\(counts(proxy))")
    }

    /// A mirror ten times slower, one that never answers (its copies time out), and one that
    /// refuses connections: every primary response succeeds, and the copies end as counted.
    @Test(arguments: ["slow", "silent", "refusing"])
    func aBadMirrorNeverFailsThePrimary(kind: String) throws {
        let primary = try TestUpstream { _ in .delayed(0.002, .ok("primary")) }
        let gate = Gate()
        let mirror = try TestUpstream { _ in
            switch kind {
            case "slow": return .delayed(0.02, .ok("primary"))
            default: gate.wait(); return .close
            }
        }
        var mirrorPort = mirror.port
        if kind == "refusing" { mirrorPort = try TestSocket.closedPort() }
        defer { gate.release(); primary.stop(); mirror.stop() }
        let proxy = try ProxyHarness(yaml: Self.yaml(primary: primary.port, mirror: mirrorPort,
                                                     mirrorOptions: "compare: true, timeout: 500ms"))
        defer { proxy.stop() }
        let responses = try Self.run(proxy, (0..<30).map { "/x/\($0)" })
        #expect(responses.count == 30 && responses.allSatisfy { $0.status == 200 && $0.bodyText == "primary" })
        #expect(primary.requests.count == 30)
        switch kind {
        case "slow":
            #expect(eventually(5) { counts(proxy) == ["match": 30] }, "\(counts(proxy))")
        case "silent":
            #expect(gate.passedCount == 0)
            #expect(eventually(5) { counts(proxy) == ["error": 30] }, "\(counts(proxy))")
        default:
            #expect(eventually(5) { counts(proxy) == ["error": 30] }, "\(counts(proxy))")
        }
    }

    /// At `mirror_max_in_flight: 4` with a mirror that holds every copy, the 5th and later copies
    /// are not sent and are counted `dropped`; the primary answers all.
    @Test func copiesOverTheCapAreDroppedAndCounted() throws {
        let gate = Gate()
        let primary = try TestUpstream { _ in .ok("p") }
        let mirror = try TestUpstream { _ in gate.wait(); return .ok("p") }
        defer { gate.release(); primary.stop(); mirror.stop() }
        let proxy = try ProxyHarness(yaml: Self.yaml(primary: primary.port, mirror: mirror.port, mirrorOptions: "compare: true",
                                                     limits: "limits: { mirror_max_in_flight: 4 }"))
        defer { proxy.stop() }
        let responses = try Self.run(proxy, (0..<20).map { "/d/\($0)" })
        #expect(responses.allSatisfy { $0.status == 200 } && responses.count == 20)
        #expect(eventually(5) { counts(proxy) == ["dropped": 16] }, "\(counts(proxy))")
        #expect(eventually(5) { mirror.requests.count == 4 })
        gate.release()
        #expect(eventually(5) { counts(proxy) == ["dropped": 16, "match": 4] }, "\(counts(proxy))")
        // Room again: the next copies are sent.
        _ = try Self.run(proxy, ["/after"])
        #expect(eventually(5) { counts(proxy)["match"] == 5 }, "\(counts(proxy))")
    }

    /// A mirror that answers differently on known paths: exact counts of each difference, the
    /// differing pairs sampled with their details; an identical mirror: all match, no pairs.
    @Test func differencesAreFoundExactlyOnTheKnownSubset() throws {
        let primary = try TestUpstream { r in
            let path = String(r.startLine.split(separator: " ")[1])
            return .ok("hello world \(path)", headers: ["Content-Type: text/plain", "X-Served-By: primary"])
        }
        let mirror = try TestUpstream { r in
            let path = String(r.startLine.split(separator: " ")[1])
            if path.hasPrefix("/body/") {
                return .ok("hello wOrld \(path)", headers: ["Content-Type: text/plain"])
            }
            if path.hasPrefix("/longer/") {
                return .ok("hello world \(path)!", headers: ["Content-Type: text/plain"])
            }
            if path.hasPrefix("/status/") {
                return .raw(Array("HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\noops".utf8))
            }
            if path.hasPrefix("/header/") {
                return .ok("hello world \(path)", headers: ["Content-Type: application/json"])
            }
            // Chunked, with other fields that are not compared: still a match.
            let body = "hello world \(path)"
            let chunk = String(body.utf8.count, radix: 16)
            return .raw(Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Served-By: mirror\r\nTransfer-Encoding: chunked\r\n\r\n\(chunk)\r\n\(body)\r\n0\r\n\r\n".utf8))
        }
        defer { primary.stop(); mirror.stop() }
        let proxy = try ProxyHarness(yaml: Self.yaml(primary: primary.port, mirror: mirror.port, mirrorOptions: "compare: true"))
        defer { proxy.stop() }
        var paths: [String] = []
        for i in 0..<7 { paths += ["/same/\(i)", "/body/\(i)", "/status/\(i)", "/header/\(i)", "/longer/\(i)"] }
        paths += (7..<20).map { "/same/\($0)" }
        let responses = try Self.run(proxy, paths)
        #expect(responses.allSatisfy { $0.status == 200 && $0.bodyText.hasPrefix("hello world /") })
        let expected = ["match": 20, "body_diff": 14, "status_diff": 7, "header_diff": 7]
        #expect(eventually(5) { counts(proxy) == expected }, "\(counts(proxy))")
        let diffs = proxy.server.mirrorBoard.diffs(route: "web", format: { _ in "t" })
        #expect(diffs.count == 28)
        let body = try #require(diffs.first { $0.requestLine == "GET /body/3 HTTP/1.1" })
        #expect(body.result == "body_diff" && body.firstDifferingByte == 7 && body.primaryStatus == 200 && body.mirrorStatus == 200)
        let longer = try #require(diffs.first { $0.requestLine == "GET /longer/3 HTTP/1.1" })
        #expect(longer.firstDifferingByte == "hello world /longer/3".utf8.count && longer.mirrorBodyBytes == longer.primaryBodyBytes + 1)
        let status = try #require(diffs.first { $0.requestLine.hasPrefix("GET /status/") })
        #expect(status.result == "status_diff" && status.primaryStatus == 200 && status.mirrorStatus == 500)
        let header = try #require(diffs.first { $0.requestLine.hasPrefix("GET /header/") })
        #expect(header.result == "header_diff" && header.header == "content-type"
                && header.primaryHeader == "text/plain" && header.mirrorHeader == "application/json")
        #expect(proxy.server.mirrorBoard.diffs(route: "other", format: { _ in "" }).isEmpty)
        // The latency histogram has both sides for every compared pair.
        let m = proxy.metrics()
        #expect(m["sluice_mirror_duration_seconds_count{route=\"web\",mirror=\"shadow\",side=\"primary\"}"] == 48)
        #expect(m["sluice_mirror_duration_seconds_count{route=\"web\",mirror=\"shadow\",side=\"mirror\"}"] == 48)
    }

    @Test func anIdenticalMirrorMatchesEverything() throws {
        let handler: @Sendable (TestMessage) -> UpstreamReply = { r in
            .ok("same \(r.startLine) \(String(repeating: "x", count: 3000))", headers: ["Content-Type: text/html"])
        }
        let primary = try TestUpstream(handler: handler), mirror = try TestUpstream(handler: handler)
        defer { primary.stop(); mirror.stop() }
        let proxy = try ProxyHarness(yaml: Self.yaml(primary: primary.port, mirror: mirror.port,
                                                     mirrorOptions: "compare: true, headers: [content-type]"))
        defer { proxy.stop() }
        _ = try Self.run(proxy, (0..<50).map { "/p/\($0)" })
        _ = try Self.run(proxy, (0..<10).map { "/h/\($0)" }, method: "HEAD")
        #expect(eventually(5) { counts(proxy) == ["match": 60] }, "\(counts(proxy))")
        #expect(proxy.server.mirrorBoard.diffs(format: { _ in "" }).isEmpty)
    }

    /// Copies reuse a kept-alive connection to the mirror; a mirror that closes its idle
    /// connection gets a new one; an answer with `Connection: close` is not reused.
    @Test func mirrorConnectionsAreKeptAlive() throws {
        let primary = try TestUpstream { _ in .ok("same") }
        let mirror = try TestUpstream { r in
            r.startLine.contains("/close") ? .rawThenClose(Array("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\nsame".utf8))
                                           : .ok("same")
        }
        defer { primary.stop(); mirror.stop() }
        let proxy = try ProxyHarness(yaml: Self.yaml(primary: primary.port, mirror: mirror.port, mirrorOptions: "compare: true"))
        defer { proxy.stop() }
        for i in 0..<10 {
            _ = try Self.run(proxy, ["/k/\(i)"])
            #expect(eventually(5) { counts(proxy)["match"] == i + 1 })
        }
        #expect(mirror.connections == 1, "\(mirror.connections) connections for 10 sequential copies")
        _ = try Self.run(proxy, ["/close"])
        #expect(eventually(5) { counts(proxy)["match"] == 11 })
        _ = try Self.run(proxy, ["/after-close"])
        #expect(eventually(5) { counts(proxy)["match"] == 12 }, "\(counts(proxy))")
        #expect(mirror.connections == 2)
    }

    /// Large bodies (past the splice threshold, over many reads): compared by hash and length
    /// as they stream; the first differing byte is found within `max_body_bytes`, and reported
    /// as unknown beyond it.
    @Test(arguments: [(1 << 20, Optional(200_000)), (100_000, nil)] as [(Int, Int?)])
    func largeBodiesAreComparedAsTheyStream(maxBody: Int, offset: Int?) throws {
        let size = 300_000
        var same = [UInt8](repeating: 0, count: size)
        for i in 0..<size { same[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 8) }
        var changed = same
        changed[200_000] ^= 0xff
        let head = Array("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: \(size)\r\n\r\n".utf8)
        let sameReply = head + same, changedReply = head + changed
        let primary = try TestUpstream { _ in .raw(sameReply) }
        let mirror = try TestUpstream { r in .raw(r.startLine.contains("/diff") ? changedReply : sameReply) }
        defer { primary.stop(); mirror.stop() }
        let proxy = try ProxyHarness(yaml: Self.yaml(primary: primary.port, mirror: mirror.port,
                                                     mirrorOptions: "compare: true, max_body_bytes: \(maxBody)"))
        defer { proxy.stop() }
        let responses = try Self.run(proxy, ["/same/1", "/diff/1", "/same/2"])
        #expect(responses.allSatisfy { $0.body == same })
        #expect(eventually(5) { counts(proxy) == ["match": 2, "body_diff": 1] }, "\(counts(proxy))")
        let diff = try #require(proxy.server.mirrorBoard.diffs(format: { _ in "" }).first)
        #expect(diff.requestLine == "GET /diff/1 HTTP/1.1" && diff.firstDifferingByte == offset)
        #expect(diff.primaryBodyBytes == UInt64(size) && diff.mirrorBodyBytes == UInt64(size))
    }

    /// `percent: 25` mirrors about a quarter; POST is not mirrored by default; with
    /// `methods: [POST]` it is, body included; a body over `max_body_bytes` is not (counted).
    @Test func samplingMethodsAndBodies() throws {
        let primary = try TestUpstream { r in .ok("ok \(r.body.count)") }
        let mirror = try TestUpstream { r in .ok("ok \(r.body.count)") }
        defer { primary.stop(); mirror.stop() }
        var proxy = try ProxyHarness(yaml: Self.yaml(primary: primary.port, mirror: mirror.port, mirrorOptions: "percent: 25"))
        _ = try Self.run(proxy, (0..<400).map { "/s/\($0)" })
        _ = try Self.run(proxy, (0..<20).map { "/post/\($0)" }, method: "POST", body: "data")
        #expect(eventually(5) { (counts(proxy)["completed"] ?? 0) == mirror.requests.count })
        let sampled = mirror.requests.count
        #expect(sampled >= 60 && sampled <= 140, "\(sampled) of 400 at 25%")
        #expect(mirror.requests.allSatisfy { $0.startLine.hasPrefix("GET /s/") }, "a POST was mirrored")
        proxy.stop()

        proxy = try ProxyHarness(yaml: Self.yaml(primary: primary.port, mirror: mirror.port,
                                                 mirrorOptions: "methods: [POST, GET], max_body_bytes: 10, compare: true"))
        defer { proxy.stop() }
        let before = mirror.requests.count
        let posted = try Self.run(proxy, (0..<5).map { "/post/\($0)" }, method: "POST", body: "0123456789")
        #expect(posted.allSatisfy { $0.bodyText == "ok 10" })
        _ = try Self.run(proxy, ["/big"], method: "POST", body: "0123456789A")
        // A chunked body within the limit is mirrored as sent.
        let fd = try proxy.connect()
        defer { close(fd) }
        try TestSocket.send(fd, "POST /chunked HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        #expect(try TestReader(fd: fd).readMessage(isResponse: true)?.bodyText == "ok 5")
        // A chunked body that passes the limit on the way: the copy is abandoned, the primary is whole.
        try TestSocket.send(fd, "POST /chunked-big HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n")
        #expect(try TestReader(fd: fd).readMessage(isResponse: true)?.bodyText == "ok 12")
        #expect(eventually(5) { counts(proxy) == ["match": 6, "too_large": 2] }, "\(counts(proxy))")
        let copies = Array(mirror.requests[before...])
        #expect(copies.filter { !$0.startLine.hasPrefix("POST /chunked-big") }.count == 6)
        #expect(copies.filter { $0.startLine.hasPrefix("POST /post/") }.allSatisfy { $0.bodyText == "0123456789" })
        #expect(copies.first { $0.startLine.hasPrefix("POST /chunked") }?.bodyText == "abcde")
        #expect(!copies.contains { $0.startLine.hasPrefix("POST /big") })
    }
}
