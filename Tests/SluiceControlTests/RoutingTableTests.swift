import SluiceControl
import SluiceCore
import Testing

/// Route matching, rules, sticky modes, header bytes and endpoint balancing.
@Suite struct RoutingTableTests {
    static let matchConfig = """
        listeners: [{ name: public, address: 127.0.0.1:8080 }]
        upstreams:
          stable: { endpoints: ["127.0.0.1:9001"] }
        routes:
          - { name: host-exact, match: { host: api.example.com }, upstream: stable }
          - { name: host-wild, match: { host: "*.example.org" }, upstream: stable }
          - { name: path-exact, match: { path: /exact }, upstream: stable }
          - { name: method, match: { method: [PUT, PROPFIND], path_prefix: /m }, upstream: stable }
          - { name: header-value, match: { header: { name: X-Mode, value: blue } }, upstream: stable }
          - { name: header-prefix, match: { header: { name: X-Mode, prefix: gr } }, upstream: stable }
          - { name: header-regex, match: { header: { name: User-Agent, regex: '^curl/[0-9]+\\.' } }, upstream: stable }
          - { name: header-present, match: { header: { name: X-Debug, present: true } }, upstream: stable }
          - { name: cookie-value, match: { cookie: { name: beta, value: "1" } }, upstream: stable }
          - { name: cookie-present, match: { cookie: { name: tester, present: true } }, upstream: stable }
          - { name: query-value, match: { query: { name: variant, value: b } }, upstream: stable }
          - { name: query-present, match: { query: { name: debug, present: true } }, upstream: stable }
          - { name: source-v4, match: { source: [10.0.0.0/8], path_prefix: /src }, upstream: stable }
          - { name: source-v6, match: { source: ["fd00::/8", "::1/128"], path_prefix: /src }, upstream: stable }
          - { name: header-absent, match: { header: { name: X-Internal, absent: true }, path_prefix: /public }, upstream: stable }
          - name: all-of
            match:
              path_prefix: /both
              header: [{ name: A, value: "1" }, { name: B, value: "2" }]
            upstream: stable
          - { name: prefix, match: { path_prefix: /app }, upstream: stable }
        """

    struct MatchCase: CustomTestStringConvertible, Sendable {
        var request: @Sendable () -> TestRequest
        var client: SocketAddress = .v4(0x7f00_0001, port: 5000)
        var expected: String?
        var label: String
        var testDescription: String { label }
    }

    static let v4Client10 = SocketAddress.v4(0x0a01_0203, port: 5000)
    static let mapped10 = SocketAddress.v6(hi: 0, lo: 0x0000_ffff_0a00_0001, port: 5000)

    static let matchCases: [MatchCase] = [
        MatchCase(request: { TestRequest(host: "api.example.com") }, expected: "host-exact", label: "host exact"),
        MatchCase(request: { TestRequest(host: "API.Example.COM:8443") }, expected: "host-exact", label: "host case and port ignored"),
        MatchCase(request: { TestRequest(host: "api.example.com.") }, expected: "host-exact", label: "host trailing dot"),
        MatchCase(request: { TestRequest(host: "api.example.com.evil") }, expected: nil, label: "host longer"),
        MatchCase(request: { TestRequest(host: "x.example.org") }, expected: "host-wild", label: "wildcard one label"),
        MatchCase(request: { TestRequest(host: "a.b.Example.org") }, expected: "host-wild", label: "wildcard two labels"),
        MatchCase(request: { TestRequest(host: "example.org") }, expected: nil, label: "wildcard needs a label"),
        MatchCase(request: { TestRequest(host: "badexample.org") }, expected: nil, label: "wildcard needs the dot"),
        MatchCase(request: { TestRequest("GET", "/exact") }, expected: "path-exact", label: "path exact"),
        MatchCase(request: { TestRequest("GET", "/exact?x=1") }, expected: "path-exact", label: "path exact ignores query"),
        MatchCase(request: { TestRequest("GET", "/exact/more") }, expected: nil, label: "path exact is not a prefix"),
        MatchCase(request: { TestRequest("PUT", "/m") }, expected: "method", label: "method listed"),
        MatchCase(request: { TestRequest("PROPFIND", "/m") }, expected: "method", label: "custom method listed"),
        MatchCase(request: { TestRequest("GET", "/m") }, expected: nil, label: "method not listed"),
        MatchCase(request: { TestRequest("put", "/m") }, expected: nil, label: "methods are case-sensitive"),
        MatchCase(request: { TestRequest(headers: [("X-Mode", "blue")]) }, expected: "header-value", label: "header value"),
        MatchCase(request: { TestRequest(headers: [("x-mode", "blue")]) }, expected: "header-value", label: "header name any case"),
        MatchCase(request: { TestRequest(headers: [("X-Mode", "BLUE")]) }, expected: nil, label: "header value is case-sensitive"),
        MatchCase(request: { TestRequest(headers: [("X-Mode", "red"), ("X-Mode", "blue")]) }, expected: "header-value",
                  label: "any of several fields"),
        MatchCase(request: { TestRequest(headers: [("X-Mode", "green")]) }, expected: "header-prefix", label: "header prefix"),
        MatchCase(request: { TestRequest(headers: [("User-Agent", "curl/8.4.0")]) }, expected: "header-regex", label: "header regex"),
        MatchCase(request: { TestRequest(headers: [("User-Agent", "x curl/8.4.0")]) }, expected: nil, label: "regex anchored"),
        MatchCase(request: { TestRequest(headers: [("X-Debug", "")]) }, expected: "header-present", label: "header present, empty"),
        MatchCase(request: { TestRequest(headers: [("Cookie", "a=b; beta=1")]) }, expected: "cookie-value", label: "cookie value"),
        MatchCase(request: { TestRequest(headers: [("Cookie", "beta=\"1\"")]) }, expected: "cookie-value", label: "cookie quoted"),
        MatchCase(request: { TestRequest(headers: [("Cookie", "a=b"), ("Cookie", "beta=1")]) }, expected: "cookie-value",
                  label: "second cookie field"),
        MatchCase(request: { TestRequest(headers: [("Cookie", "beta=2")]) }, expected: nil, label: "cookie other value"),
        MatchCase(request: { TestRequest(headers: [("Cookie", "Beta=1")]) }, expected: nil, label: "cookie names are case-sensitive"),
        MatchCase(request: { TestRequest(headers: [("Cookie", "tester=")]) }, expected: "cookie-present", label: "cookie present"),
        MatchCase(request: { TestRequest("GET", "/?variant=b") }, expected: "query-value", label: "query value"),
        MatchCase(request: { TestRequest("GET", "/x?a=1&variant=b&c") }, expected: "query-value", label: "query among others"),
        MatchCase(request: { TestRequest("GET", "/?variant=bb") }, expected: nil, label: "query other value"),
        MatchCase(request: { TestRequest("GET", "/?debug") }, expected: "query-present", label: "query present without ="),
        MatchCase(request: { TestRequest("GET", "/src") }, client: v4Client10, expected: "source-v4", label: "source v4"),
        MatchCase(request: { TestRequest("GET", "/src") }, client: mapped10, expected: "source-v4", label: "source v4-mapped v6"),
        MatchCase(request: { TestRequest("GET", "/src") }, client: .v6(hi: 0, lo: 1, port: 1), expected: "source-v6",
                  label: "source v6 ::1"),
        MatchCase(request: { TestRequest("GET", "/src") }, client: .v6(hi: 0xfd12_0000_0000_0000, lo: 7, port: 1),
                  expected: "source-v6", label: "source v6 fd00::/8"),
        MatchCase(request: { TestRequest("GET", "/src") }, client: .v4(0xc0a8_0101, port: 1), expected: nil, label: "source outside"),
        MatchCase(request: { TestRequest("GET", "/public") }, expected: "header-absent", label: "header absent"),
        MatchCase(request: { TestRequest("GET", "/public", headers: [("X-Internal", "1")]) }, expected: nil, label: "header not absent"),
        MatchCase(request: { TestRequest("GET", "/both", headers: [("A", "1"), ("B", "2")]) }, expected: "all-of", label: "all conditions"),
        MatchCase(request: { TestRequest("GET", "/both", headers: [("A", "1")]) }, expected: nil, label: "one condition missing"),
        MatchCase(request: { TestRequest("GET", "/app/x") }, expected: "prefix", label: "path prefix"),
        MatchCase(request: { TestRequest("GET", "/apple") }, expected: "prefix", label: "path prefix is a byte prefix"),
        MatchCase(request: { TestRequest("GET", "/") }, expected: nil, label: "nothing matches: 404"),
        MatchCase(request: { TestRequest(host: nil) }, expected: nil, label: "no host"),
    ]

    @Test(arguments: matchCases)
    func matchKinds(_ c: MatchCase) throws {
        let config = try #require(mustLoad(Self.matchConfig))
        let d = decide(config.table, c.request(), client: c.client)
        if let expected = c.expected {
            #expect(d.action == .forward)
            #expect(d.route >= 0 && config.table.routes[Int(d.route)].name == expected)
            #expect(d.upstream == 0 && d.endpoint == 0)
        } else {
            #expect(d == .notFound)
        }
    }

    @Test func routesAreTriedInOrder() throws {
        let config = try #require(mustLoad(baseYAML + """
            routes:
              - { name: api, match: { path_prefix: /api }, upstream: canary }
              - { name: all, match: { path_prefix: / }, upstream: stable }
              - { name: never, match: { path_prefix: /api/v2 }, upstream: canary }
            """))
        #expect(decide(config.table, TestRequest("GET", "/api/v2/x")).route == 0)
        #expect(decide(config.table, TestRequest("GET", "/other")).route == 1)
        let d = decide(config.table, TestRequest("GET", "/api"))
        #expect(d == RouteDecision(action: .forward, route: 0, cohort: 0, upstream: 1, endpoint: 0))
    }

    static let exampleConfig = """
        listeners:
          - name: public
            address: 127.0.0.1:8080
        admin:
          address: 127.0.0.1:9901
        upstreams:
          stable: { endpoints: ["127.0.0.1:9001", "127.0.0.1:9002"] }
          canary: { endpoints: ["127.0.0.1:9003"] }
        routes:
          - name: web
            match: { host: "*", path_prefix: "/" }
            baseline: stable                 # where "abort" and "rollback" send everyone
            sticky: { cookie: session_id }   # or { header: X-User-Id }; absent: sluice assigns and sets its own cookie
            rules:                           # first match wins, before the split
              - match: { header: { name: X-Canary, value: always } }
                cohort: canary
              - match: { cookie: { name: beta, value: "1" } }
                cohort: canary
            split: { stable: 95, canary: 5 }
        """

    @Test func rulesWinBeforeTheSplit() throws {
        let config = try #require(mustLoad(Self.exampleConfig))
        let t = config.table
        // Find a session that the split puts in stable, then force it to canary with each rule.
        let session = try #require((0..<1000).map { "s\($0)" }.first {
            t.cohort(route: 0, bucket: StickyHash.bucket(Array($0.utf8))) == 0
        })
        let plain = decide(t, TestRequest(headers: [("Cookie", "session_id=\(session)")]))
        #expect(plain.action == .forward && plain.cohort == 0 && plain.upstream == 0)
        let forced = decide(t, TestRequest(headers: [("Cookie", "session_id=\(session)"), ("X-Canary", "always")]))
        var expected = RouteDecision(action: .forward, route: 0, cohort: 1, upstream: 1, endpoint: 0)
        expected.rule = 0  // the deciding rule (for its mirror)
        #expect(forced == expected)
        let beta = decide(t, TestRequest(headers: [("Cookie", "session_id=\(session); beta=1")]))
        #expect(beta.cohort == 1 && !beta.setStickyCookie && beta.rule == 1 && plain.rule == -1)
        let notAlways = decide(t, TestRequest(headers: [("Cookie", "session_id=\(session)"), ("X-Canary", "sometimes")]))
        #expect(notAlways.cohort == 0)
    }

    @Test func firstMatchingRuleWinsAndRespondRulesAnswer() throws {
        let config = try #require(mustLoad(baseYAML + """
            routes:
              - name: web
                split: { stable: 50, canary: 50 }
                rules:
                  - match: { header: { name: X-Force, value: stable } }
                    cohort: stable
                  - match: { header: { name: X-Force, prefix: st } }
                    respond: { status: 418, body: "teapot" }
                  - match: { path: /health }
                    respond: { status: 200, body: "ok\\n", content_type: "text/plain; charset=utf-8" }
                  - match: { header: { name: X-Force, value: canary } }
                    cohort: canary
            """))
        let t = config.table
        #expect(decide(t, TestRequest(headers: [("X-Force", "stable")])).cohort == 0)
        let teapot = decide(t, TestRequest(headers: [("X-Force", "sta")]))
        #expect(teapot == RouteDecision(action: .respond, route: 0, response: 0))
        #expect(t.responses[0] == DirectResponse(status: 418, contentType: "text/plain", body: Array("teapot".utf8)))
        // /health with X-Force: stable: the earlier cohort rule wins.
        #expect(decide(t, TestRequest("GET", "/health", headers: [("X-Force", "stable")])).action == .forward)
        let health = decide(t, TestRequest("GET", "/health"))
        #expect(health.action == .respond && health.response == 1)
        #expect(t.responses[1] == DirectResponse(status: 200, contentType: "text/plain; charset=utf-8", body: Array("ok\n".utf8)))
        for e: UInt64 in 0..<50 {
            #expect(decide(t, TestRequest(headers: [("X-Force", "canary")]), entropy: e).cohort == 1)
        }
    }

    @Test func routeLevelRespondAndRuleOnlyCohorts() throws {
        let config = try #require(mustLoad(baseYAML + """
            routes:
              - name: load-target
                match: { path_prefix: /bench }
                respond: { status: 204 }
              - name: web
                upstream: stable
                rules:
                  - match: { header: { name: X-Canary, value: always } }
                    cohort: canary
            """))
        let t = config.table
        let bench = decide(t, TestRequest("POST", "/bench/x"))
        #expect(bench == RouteDecision(action: .respond, route: 0, response: 0))
        #expect(t.responses[0] == DirectResponse(status: 204, contentType: "text/plain", body: []))
        #expect(t.routes[0].cohorts.isEmpty && t.routes[0].baseline == -1)
        // `upstream:` route: single cohort at 100%, no sticky cookie; the rule adds a 0% cohort.
        let web = t.routes[1]
        #expect(web.cohorts.map(\.name) == ["stable", "canary"])
        #expect(web.cohorts.map(\.weight) == [10_000, 0])
        #expect(web.sticky == StickyPolicy.none)
        for e: UInt64 in [0, 9_999, 123_456_789] {
            let d = decide(t, TestRequest("GET", "/"), entropy: e)
            #expect(d.cohort == 0 && d.upstream == 0 && !d.setStickyCookie)
        }
        #expect(decide(t, TestRequest("GET", "/", headers: [("X-Canary", "always")])).upstream == 1)
    }

    @Test func declaredCohortsMapNamesToUpstreams() throws {
        let config = try #require(mustLoad(baseYAML + """
            routes:
              - name: web
                cohorts: { blue: { upstream: stable }, green: { upstream: canary } }
                split: { blue: 0, green: 100 }
                baseline: blue
                sticky: none
                cohort_header: X-Deployment
                cohort_response_header: true
            """))
        let t = config.table
        let d = decide(t, TestRequest(), entropy: 42)
        #expect(d.cohort == 1 && d.upstream == 1)
        var out: [UInt8] = []
        t.routes[0].appendCohortHeader(cohort: d.cohort, to: &out)
        #expect(out == Array("X-Deployment: green\r\n".utf8))
        #expect(t.routes[0].cohortResponseHeader)
        #expect(t.routes[0].cohortHeader == "X-Deployment")
    }

    @Test func sluiceAssignedCookieRoundTrips() throws {
        let config = try #require(mustLoad(baseYAML + """
            routes:
              - name: web
                split: { stable: 50, canary: 50 }
            """))
        let t = config.table
        #expect(t.routes[0].sticky == .assigned(cookie: "sluice_sticky", maxAge: nil))
        var cohorts = Set<Int32>()
        for i: UInt64 in 0..<500 {
            let entropy = i &* 0x9e37_79b9_7f4a_7c15
            let first = decide(t, TestRequest(), entropy: entropy)
            #expect(first.setStickyCookie && first.stickyKey == entropy)
            #expect(first.cohort == t.cohort(route: 0, bucket: StickyHash.bucket(assignedKey: entropy)))
            var header: [UInt8] = []
            t.routes[0].appendSetCookie(stickyKey: first.stickyKey, to: &header)
            let text = String(decoding: header, as: UTF8.self)
            let value = String(text.dropFirst("Set-Cookie: sluice_sticky=".count).prefix(16))
            // A later request with that cookie, whatever its entropy, lands in the same cohort.
            let again = decide(t, TestRequest(headers: [("Cookie", "other=1; sluice_sticky=\(value)")]), entropy: ~entropy)
            #expect(again.cohort == first.cohort && !again.setStickyCookie && again.stickyKey == 0)
            cohorts.insert(first.cohort)
        }
        #expect(cohorts.count == 2)
        // A malformed sluice cookie is replaced.
        let bad = decide(t, TestRequest(headers: [("Cookie", "sluice_sticky=nothex")]), entropy: 7)
        #expect(bad.setStickyCookie && bad.stickyKey == 7)
    }

    @Test func setCookieBytesAreExact() throws {
        let config = try #require(mustLoad(baseYAML + """
            routes:
              - name: a
                match: { path_prefix: /a }
                split: { stable: 90, canary: 10 }
              - name: b
                split: { stable: 90, canary: 10 }
                sticky: { assign_cookie: ab, max_age: 30d }
            """))
        var out = Array("HTTP/1.1 200 OK\r\n".utf8)
        config.table.routes[0].appendSetCookie(stickyKey: 0x0123_4567_89ab_cdef, to: &out)
        #expect(String(decoding: out, as: UTF8.self)
            == "HTTP/1.1 200 OK\r\nSet-Cookie: sluice_sticky=0123456789abcdef; Path=/; HttpOnly; SameSite=Lax\r\n")
        out = []
        config.table.routes[1].appendSetCookie(stickyKey: 10, to: &out)
        #expect(String(decoding: out, as: UTF8.self)
            == "Set-Cookie: ab=000000000000000a; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax\r\n")
    }

    @Test func cohortHeaderBytesAreExact() throws {
        let config = try #require(mustLoad(Self.exampleConfig))
        let route = config.table.routes[0]
        var out: [UInt8] = []
        route.appendCohortHeader(cohort: 1, to: &out)
        #expect(out == Array("X-Sluice-Cohort: canary\r\n".utf8))
        route.appendCohortHeader(cohort: 0, to: &out)
        #expect(out == Array("X-Sluice-Cohort: canary\r\nX-Sluice-Cohort: stable\r\n".utf8))
        #expect(route.cohortHeader == "X-Sluice-Cohort")
        #expect(route.cohortResponseHeader == false)
    }

    @Test(arguments: [(0, 0), (9_499, 0), (9_500, 1), (9_999, 1), (10_000, 0), (19_500, 1), (UInt64.max, 0)] as [(UInt64, Int32)])
    func stickyNoneSplitsOnEntropy(entropy: UInt64, cohort: Int32) throws {
        let config = try #require(mustLoad(baseYAML + """
            routes:
              - { name: web, split: { stable: 95, canary: 5 }, sticky: none }
            """))
        let d = decide(config.table, TestRequest(headers: [("Cookie", "sluice_sticky=0000000000000001")]), entropy: entropy)
        #expect(d.cohort == cohort && d.upstream == cohort && !d.setStickyCookie)
        // UInt64.max % 10000 = 1615, in stable.
    }

    @Test func smoothWeightedRoundRobinMatchesNginx() throws {
        let config = try #require(mustLoad("""
            listeners: [{ name: public, address: 127.0.0.1:8080 }]
            upstreams:
              pool:
                endpoints:
                  - { address: 127.0.0.1:9001, weight: 5 }
                  - { address: 127.0.0.1:9002, weight: 1 }
                  - { address: "127.0.0.1:9003", weight: 1 }
            routes: [{ name: web, upstream: pool }]
            """))
        let t = config.table
        #expect(t.upstreams[0].endpoints.map(\.weight) == [5, 1, 1])
        #expect(t.upstreams[0].endpoints.map(\.label) == ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"])
        var balancer = BalancerState(table: t)
        let request = TestRequest()
        var picks: [Int32] = []
        for _ in 0..<14 { picks.append(decide(t, request, balancer: &balancer).endpoint) }
        // a a b a c a a, twice.
        #expect(picks == [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0])
    }

    @Test func equalWeightsAlternateAndStateFromAnotherTableIsReset() throws {
        let first = try #require(mustLoad(Self.exampleConfig))
        let second = try load(Self.exampleConfig, version: 2)
        var balancer = BalancerState(table: first.table)
        let r = TestRequest(headers: [("X-Canary", "never")])
        let stableOnly = { (t: RoutingTable, b: inout BalancerState) -> Int32 in
            decide(t, r, entropy: 0, balancer: &b).endpoint
        }
        #expect(stableOnly(first.table, &balancer) == 0)
        #expect(stableOnly(first.table, &balancer) == 1)
        #expect(stableOnly(first.table, &balancer) == 0)
        // Handing the state to another table rebuilds it from zero.
        #expect(stableOnly(second.table, &balancer) == 0)
        #expect(stableOnly(second.table, &balancer) == 1)
    }

    @Test func decisionsArePure() throws {
        let config = try #require(mustLoad(Self.exampleConfig))
        let request = TestRequest(headers: [("Cookie", "session_id=abc")])
        var b1 = BalancerState(table: config.table), b2 = BalancerState(table: config.table)
        for e: UInt64 in 0..<100 {
            #expect(decide(config.table, request, entropy: e, balancer: &b1) == decide(config.table, request, entropy: e, balancer: &b2))
        }
    }
}
