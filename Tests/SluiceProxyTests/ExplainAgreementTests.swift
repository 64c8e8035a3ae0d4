import Foundation
@preconcurrency import Glibc
import Testing
import SluiceControl
import SluiceCore

/// Issue 19: `explain` uses the data path's routing code, so it can never disagree with it.
/// 1,000 random requests (host, path, method, headers, cookies, source address) go through the
/// real `sluice` binary and through `POST /admin/explain` on the same process; the route and
/// cohort the upstream reports must be the ones explain gives.
@Suite(.serialized)
struct ExplainAgreementTests {
    /// SplitMix64: a fixed-seed generator, so a failure is reproducible.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
    }

    /// Every route names its cohort header after itself, so the upstream's echo of the
    /// `X-Route-*` field it received tells the route and the cohort.
    static func yaml(upstream: UInt16, port: UInt16) -> String {
        """
        listeners:
          - name: public
            address: 127.0.0.1:\(port)
        upstreams:
          stable: { endpoints: ["127.0.0.1:\(upstream)"] }
          canary: { endpoints: ["127.0.0.1:\(upstream)"] }
          green: { endpoints: ["127.0.0.1:\(upstream)"] }
        routes:
          - name: api
            match: { host: api.example, path_prefix: /api }
            cohort_header: X-Route-api
            baseline: stable
            sticky: { header: X-User-Id }
            rules:
              - match: { header: { name: X-Canary, value: always } }
                cohort: canary
              - match: { source: [127.1.0.0/16] }
                cohort: canary
            split: { stable: 70, canary: 30 }
          - name: blocked
            match: { path_prefix: /blocked }
            respond: { status: 403, body: "blocked" }
          - name: shop
            match: { host: "*.shop.example" }
            cohort_header: X-Route-shop
            baseline: stable
            sticky: { cookie: session_id }
            rules:
              - match: { cookie: { name: beta, value: "1" } }
                cohort: green
              - match: { query: { name: variant, value: b }, method: [GET, OPTIONS] }
                cohort: canary
              - match: { header: { name: X-Internal, absent: true }, path_prefix: /internal }
                respond: { status: 401, body: "internal" }
            split: { stable: 50, canary: 25, green: 25 }
          - name: none
            match: { path_prefix: /none }
            cohort_header: X-Route-none
            baseline: stable
            sticky: none
            split: { stable: 100, canary: 0 }
          - name: web
            match: { host: "*", path_prefix: "/" }
            cohort_header: X-Route-web
            baseline: stable
            rules:
              - match: { header: { name: User-Agent, regex: "^curl/" } }
                cohort: canary
            split: { stable: 90, canary: 10 }
        """
    }

    struct Sample {
        var method: String
        var host: String
        var target: String
        var headers: [String]
        var cookies: [String]
        var source: UInt32
    }

    static func randomSample(_ g: inout Seeded) -> Sample {
        func pick<T>(_ items: [T]) -> T { items[Int(g.next() % UInt64(items.count))] }
        func chance(_ percent: UInt64) -> Bool { g.next() % 100 < percent }
        let host = pick(["api.example", "a.shop.example", "b.c.shop.example", "shop.example", "other.example", "API.Example:8080"])
        let target = pick(["/api/x", "/api", "/blocked/1", "/none", "/", "/cart?variant=b", "/cart?variant=a", "/internal/x", "/x?y=1"])
        var headers: [String] = []
        if chance(40) { headers.append("X-User-Id: u\(g.next() % 500)") }
        if chance(15) { headers.append("X-Canary: \(pick(["always", "never"]))") }
        if chance(30) { headers.append("User-Agent: \(pick(["curl/8.4.0", "Mozilla/5.0", "xcurl/1"]))") }
        if chance(20) { headers.append("X-Internal: 1") }
        if chance(10) { headers.append("X-Route-web: canary") }  // a client cannot choose the cohort
        var cookies: [String] = []
        if chance(40) { cookies.append("session_id=s\(g.next() % 500)") }
        if chance(15) { cookies.append("beta=\(pick(["1", "0"]))") }
        if chance(30) {
            var hex: [UInt8] = []
            StickyHash.appendHex(g.next(), to: &hex)
            cookies.append("sluice_sticky=" + (chance(80) ? String(decoding: hex, as: UTF8.self) : "not-hex"))
        }
        if chance(10) { cookies.append("session_id=") }
        let source = pick([0x7f00_0001, 0x7f01_0203, 0x7f02_0005, 0x7f01_ff01] as [UInt32])
        return Sample(method: pick(["GET", "GET", "GET", "DELETE", "OPTIONS"]), host: host, target: target, headers: headers,
                      cookies: cookies, source: source)
    }

    /// What the proxy did, as (action, route, cohort).
    struct Outcome: Equatable, CustomStringConvertible {
        var action: String
        var route: String?
        var cohort: String?
        var description: String { "\(action) \(route ?? "-") \(cohort ?? "-")" }
    }

    @Test func explainAgreesWithTheProxyOn1000RandomRequests() throws {
        let upstream = try TestUpstream { r in
            let routeFields = r.headers.filter { $0.0.lowercased().hasPrefix("x-route-") }
                .map { "\($0.0.lowercased().dropFirst("x-route-".count))=\($0.1)" }
            return .ok(routeFields.joined(separator: ",") + "|" + (r.header("X-Forwarded-For") ?? ""))
        }
        defer { upstream.stop() }
        let sluice = try SluiceProcess(workers: 2) { port in Self.yaml(upstream: upstream.port, port: port) }
        defer { _ = sluice.stop() }

        var g = Seeded(state: 19)
        var seen: [String: Int] = [:]
        for i in 0..<1000 {
            let s = Self.randomSample(&g)
            var raw = "\(s.method) \(s.target) HTTP/1.1\r\nHost: \(s.host)\r\n"
            for h in s.headers { raw += h + "\r\n" }
            if !s.cookies.isEmpty { raw += "Cookie: " + s.cookies.joined(separator: "; ") + "\r\n" }
            raw += "Connection: close\r\n\r\n"
            let fd = try TestSocket.connect(port: sluice.port, from: s.source)
            defer { close(fd) }
            try TestSocket.send(fd, raw)
            let m = try #require(try TestReader(fd: fd).readMessage(isResponse: true), "request \(i): no response")
            // What the proxy did, from what the client and the upstream saw.
            var proxy: Outcome
            var forwardedFor: String?
            switch m.status {
            case 200:
                let parts = m.bodyText.split(separator: "|", omittingEmptySubsequences: false)
                // Sluice appends the route's cohort field after the client's fields; a client's copy of
                // it is dropped, a client's X-Route-web on another route is just another field.
                let fields = parts[0].split(separator: ",")
                let spoofed = s.headers.contains("X-Route-web: canary")
                #expect(fields.count == (spoofed && !fields.last!.hasPrefix("web=") ? 2 : 1), "request \(i): the upstream got \(parts[0])")
                let kv = fields.last?.split(separator: "=") ?? []
                proxy = Outcome(action: "forward", route: kv.first.map(String.init), cohort: kv.last.map(String.init))
                forwardedFor = parts.count > 1 ? String(parts[1]) : nil
            case 404: proxy = Outcome(action: "not_found")
            default: proxy = Outcome(action: "respond", route: m.bodyText)
            }
            // The entropy the proxy used shows in the cookie it assigned; otherwise a sticky key,
            // a rule or a one-cohort split decided and entropy does not matter.
            var entropy: String?
            if let cookie = m.header("Set-Cookie") {
                entropy = String(cookie.dropFirst("sluice_sticky=".count).prefix(16))
            }
            let input = ExplainInput(method: s.method, url: "http://\(s.host)\(s.target)", headers: s.headers, cookies: s.cookies,
                                     from: SocketAddress.v4(s.source, port: 0).hostText, entropy: entropy)
            let response = try AdminClient.request("POST", "/admin/explain", to: .v4(0x7f00_0001, port: sluice.adminPort), token: nil,
                                                   body: Array(try JSONEncoder().encode(input)))
            #expect(response.status == 200, "request \(i): \(response.text)")
            let report = try JSONDecoder().decode(ExplainReport.self, from: Data(response.body))
            var explained = Outcome(action: report.action, route: report.route, cohort: report.cohort)
            if report.action == "respond" {
                // The proxy's client sees the direct response's body: the route is known from the config.
                explained = Outcome(action: "respond", route: ["blocked": "blocked", "shop": "internal"][report.route ?? ""])
            }
            #expect(proxy == explained, "request \(i): \(raw.debugDescription) from \(input.from ?? ""): proxy \(proxy), explain \(explained)")
            if report.action == "forward" {
                #expect(report.upstreamHeaders?.contains("X-Forwarded-For: \(forwardedFor ?? "?")") == true, "request \(i)")
                #expect(report.upstreamHeaders?.contains("X-Route-\(report.route ?? ""): \(report.cohort ?? "")") == true)
                #expect((m.header("Set-Cookie") != nil) == (report.responseHeaders?.contains { $0.hasPrefix("Set-Cookie: ") } == true))
            }
            seen["\(explained)", default: 0] += 1
        }
        // The sample covers every way of deciding: each route, each cohort, direct answers and 404-free catch-all.
        for outcome in ["forward api stable", "forward api canary", "forward shop stable", "forward shop canary", "forward shop green",
                        "forward none stable", "forward web stable", "forward web canary", "respond blocked -", "respond internal -"] {
            #expect(seen[outcome, default: 0] >= 5, "\(outcome): \(seen[outcome, default: 0]) of 1000 (\(seen))")
        }
    }
}
