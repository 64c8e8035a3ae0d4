import Foundation
@preconcurrency import Glibc
import Testing
import SluiceCore
import SluiceProxy

/// Three real upstreams (stable-a, stable-b, canary) each answering with its own name and the
/// cohort header it received.
private final class CohortFixture {
    let stableA: TestUpstream
    let stableB: TestUpstream
    let canary: TestUpstream

    init() throws {
        func server(_ name: String) throws -> TestUpstream {
            try TestUpstream { r in .ok("\(name) \(r.header("X-Sluice-Cohort") ?? "-")") }
        }
        stableA = try server("stable-a")
        stableB = try server("stable-b")
        canary = try server("canary")
    }

    func yaml(split: String, sticky: String, rules: String = "") -> String {
        """
        listeners:
          - name: public
            address: 127.0.0.1:0
        upstreams:
          stable: { endpoints: ["127.0.0.1:\(stableA.port)", "127.0.0.1:\(stableB.port)"] }
          canary: { endpoints: ["127.0.0.1:\(canary.port)"] }
        routes:
          - name: load
            match: { path_prefix: "/load" }
            rules:
              - match: { header: { name: X-Load, value: "1" } }
                respond: { status: 200, body: "direct" }
            upstream: stable
            sticky: none
          - name: web
            match: { host: "*", path_prefix: "/" }
            baseline: stable
            \(sticky)
            rules:
              - match: { header: { name: X-Canary, value: always } }
                cohort: canary
              - match: { cookie: { name: beta, value: "1" } }
                cohort: canary
            \(rules)
            split: \(split)
        """
    }

    func stop() {
        stableA.stop()
        stableB.stop()
        canary.stop()
    }
}

@Suite(.serialized)
struct RoutingIntegrationTests {
    @Test func weightedSplitAsSeenByUpstreams() throws {
        let f = try CohortFixture()
        defer { f.stop() }
        let proxy = try ProxyHarness(yaml: f.yaml(split: "{ stable: 80, canary: 20 }", sticky: "sticky: none"), workers: 2)
        defer { proxy.stop() }
        let n = 2000
        let fd = try proxy.connect()
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        for i in 0..<n {
            try TestSocket.send(fd, "GET /r\(i) HTTP/1.1\r\nHost: h\r\n\r\n")
            let m = try #require(try reader.readMessage(isResponse: true))
            #expect(m.header("Set-Cookie") == nil, "sticky: none sets no cookie")
        }
        let canary = f.canary.requests.count
        let a = f.stableA.requests.count
        let b = f.stableB.requests.count
        #expect(canary + a + b == n)
        // 20% of 2000 = 400, standard deviation about 18: allow 5 sigma.
        #expect(abs(canary - 400) <= 90, "canary got \(canary) of \(n)")
        // Round robin inside the stable cohort: the two endpoints differ by at most one per worker.
        #expect(abs(a - b) <= 2, "stable endpoints got \(a) and \(b)")
        // Every upstream saw its cohort in X-Sluice-Cohort.
        #expect(f.canary.requests.allSatisfy { $0.header("X-Sluice-Cohort") == "canary" })
        #expect(f.stableA.requests.allSatisfy { $0.header("X-Sluice-Cohort") == "stable" })
    }

    @Test func headerAndCookieRules() throws {
        let f = try CohortFixture()
        defer { f.stop() }
        let proxy = try ProxyHarness(yaml: f.yaml(split: "{ stable: 100, canary: 0 }", sticky: "sticky: none"))
        defer { proxy.stop() }
        #expect(try proxy.request("GET / HTTP/1.1\r\nHost: h\r\n\r\n").bodyText.hasPrefix("stable"))
        #expect(try proxy.request("GET / HTTP/1.1\r\nHost: h\r\nX-Canary: always\r\n\r\n").bodyText == "canary canary")
        #expect(try proxy.request("GET / HTTP/1.1\r\nHost: h\r\nX-Canary: never\r\n\r\n").bodyText.hasPrefix("stable"))
        #expect(try proxy.request("GET / HTTP/1.1\r\nHost: h\r\nCookie: a=b; beta=1\r\n\r\n").bodyText == "canary canary")
        #expect(try proxy.request("GET / HTTP/1.1\r\nHost: h\r\nCookie: beta=2\r\n\r\n").bodyText.hasPrefix("stable"))
        // A rule that answers directly (load-test target): no upstream involved.
        let before = f.stableA.requests.count + f.stableB.requests.count
        let direct = try proxy.request("GET /load HTTP/1.1\r\nHost: h\r\nX-Load: 1\r\n\r\n")
        #expect(direct.status == 200)
        #expect(direct.bodyText == "direct")
        #expect(f.stableA.requests.count + f.stableB.requests.count == before)
    }

    @Test func clientCannotSpoofTheCohortHeader() throws {
        let f = try CohortFixture()
        defer { f.stop() }
        let proxy = try ProxyHarness(yaml: f.yaml(split: "{ stable: 100, canary: 0 }", sticky: "sticky: none"))
        defer { proxy.stop() }
        let r = try proxy.request("GET / HTTP/1.1\r\nHost: h\r\nx-sluice-cohort: canary\r\n\r\n")
        #expect(r.bodyText.hasPrefix("stable"))
        let seen = try #require((f.stableA.requests + f.stableB.requests).first)
        #expect(seen.headers("X-Sluice-Cohort") == ["stable"])
    }

    @Test func assignedStickyCookieKeepsTheUserInPlace() throws {
        let f = try CohortFixture()
        defer { f.stop() }
        let proxy = try ProxyHarness(yaml: f.yaml(split: "{ stable: 50, canary: 50 }", sticky: ""), workers: 2)
        defer { proxy.stop() }
        var cohortsSeen = Set<String>()
        for _ in 0..<20 {
            let first = try proxy.request("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            let setCookie = try #require(first.header("Set-Cookie"))
            #expect(setCookie.hasSuffix("; Path=/; HttpOnly; SameSite=Lax"))
            let pair = String(setCookie.split(separator: ";")[0])
            #expect(pair.hasPrefix("sluice_sticky="))
            let cohort = String(first.bodyText.split(separator: " ")[1])
            cohortsSeen.insert(cohort)
            // The same user, on new connections (possibly other workers), stays put and gets no new cookie.
            for _ in 0..<10 {
                let again = try proxy.request("GET / HTTP/1.1\r\nHost: h\r\nCookie: \(pair)\r\n\r\n")
                #expect(String(again.bodyText.split(separator: " ")[1]) == cohort)
                #expect(again.header("Set-Cookie") == nil)
            }
        }
        #expect(cohortsSeen == ["stable", "canary"], "20 users at 50/50 should land in both cohorts")
    }

    @Test func configuredStickyCookieAndHeader() throws {
        let f = try CohortFixture()
        defer { f.stop() }
        for (sticky, carrier) in [("sticky: { cookie: session_id }", "Cookie: session_id="), ("sticky: { header: X-User-Id }", "X-User-Id: ")] {
            let proxy = try ProxyHarness(yaml: f.yaml(split: "{ stable: 50, canary: 50 }", sticky: sticky))
            var seen = Set<String>()
            for user in 0..<30 {
                var cohorts = Set<String>()
                for _ in 0..<5 {
                    let r = try proxy.request("GET / HTTP/1.1\r\nHost: h\r\n\(carrier)user-\(user)\r\n\r\n")
                    #expect(r.header("Set-Cookie") == nil)
                    cohorts.insert(String(r.bodyText.split(separator: " ")[1]))
                }
                #expect(cohorts.count == 1, "user-\(user) flipped between \(cohorts)")
                seen.formUnion(cohorts)
            }
            #expect(seen.count == 2)
            proxy.stop()
        }
    }

    /// Issue 19: on a `sticky: { cookie: session_id }` (or `header:`) route, a client without that
    /// key gets Sluice's own cookie and keeps its cohort with it; its own key, once sent, wins.
    @Test func anonymousVisitorsStayPutUntilTheirOwnKeyAppears() throws {
        let f = try CohortFixture()
        defer { f.stop() }
        for (sticky, carrier) in [("sticky: { cookie: session_id }", "Cookie: session_id="), ("sticky: { header: X-User-Id }", "X-User-Id: ")] {
            let proxy = try ProxyHarness(yaml: f.yaml(split: "{ stable: 50, canary: 50 }", sticky: sticky), workers: 2)
            defer { proxy.stop() }
            let route = try #require(proxy.config.table.routes.firstIndex { $0.name == "web" })
            for _ in 0..<8 {
                // No cookie at all: Sluice assigns its own.
                let first = try proxy.request("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                let setCookie = try #require(first.header("Set-Cookie"), "\(sticky): no Set-Cookie for an anonymous visitor")
                #expect(setCookie.hasSuffix("; Path=/; HttpOnly; SameSite=Lax"))
                let pair = String(setCookie.split(separator: ";")[0])
                #expect(pair.hasPrefix("sluice_sticky=") && pair.count == "sluice_sticky=".count + 16)
                let cohort = String(first.bodyText.split(separator: " ")[1])
                // Sent back 20 times (new connections, either worker): same cohort, no new cookie.
                for _ in 0..<20 {
                    let again = try proxy.request("GET / HTTP/1.1\r\nHost: h\r\nCookie: \(pair)\r\n\r\n")
                    #expect(String(again.bodyText.split(separator: " ")[1]) == cohort)
                    #expect(again.header("Set-Cookie") == nil)
                }
                // The visitor logs in: a key whose bucket belongs to the other cohort moves them there.
                let wanted: Int32 = cohort == "stable" ? 1 : 0
                let key = try #require((0..<1000).map { "user-\($0)" }.first {
                    proxy.config.table.cohort(route: route, bucket: StickyHash.bucket(Array($0.utf8))) == wanted
                })
                let keyLine = carrier.hasPrefix("Cookie") ? "Cookie: \(pair); session_id=\(key)" : "Cookie: \(pair)\r\n\(carrier)\(key)"
                for _ in 0..<5 {
                    let mine = try proxy.request("GET / HTTP/1.1\r\nHost: h\r\n\(keyLine)\r\n\r\n")
                    #expect(mine.bodyText.split(separator: " ")[1] == (wanted == 1 ? "canary" : "stable"))
                    #expect(mine.header("Set-Cookie") == nil)
                }
            }
            // What the upstreams received agrees: every request carried its cohort's header.
            #expect(f.canary.requests.allSatisfy { $0.header("X-Sluice-Cohort") == "canary" })
        }
    }
}
