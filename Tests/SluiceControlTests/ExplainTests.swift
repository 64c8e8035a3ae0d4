import Foundation
import SluiceControl
import SluiceCore
import Testing

/// `Explainer` (the report `sluice explain` and `POST /admin/explain` give) with exact
/// expectations, and the endpoint against a live controller's table (overrides included).
@Suite struct ExplainTests {
    static let yaml = baseYAML + """
        trusted_proxies: [10.9.0.0/16]
        routes:
          - name: api
            match: { host: api.example, path_prefix: /api }
            upstream: canary
          - name: web
            match: { host: "*.example", method: [GET, PUT] }
            baseline: stable
            sticky: { cookie: session_id }
            cohort_response_header: true
            rules:
              - match: { header: { name: X-Canary, value: always } }
                cohort: canary
              - match: { path: /blocked }
                respond: { status: 403, body: "no" }
            split: { stable: 50, canary: 50 }
        """

    static func explain(_ input: ExplainInput, entropy: UInt64 = 0) throws -> ExplainReport {
        let config = try #require(mustLoad(yaml))
        return try Explainer.explain(input, table: config.table, overrides: [:], trustedProxies: config.trustedProxies,
                                     limits: ParserLimits(), randomEntropy: entropy)
    }

    @Test func stickyCookieKeyHashAndBucket() throws {
        let r = try Self.explain(ExplainInput(url: "http://shop.example/cart?x=1", headers: ["X-Canary: never"],
                                              cookies: ["a=b", "session_id=user-0"], from: "10.1.2.3"))
        #expect(r.request == ["GET /cart?x=1 HTTP/1.1", "Host: shop.example", "X-Canary: never", "Cookie: a=b; session_id=user-0"])
        #expect(r.from == "10.1.2.3" && r.entropy == "0000000000000000" && r.version == 1)
        #expect(r.routes == [
            .init(name: "api", result: "no_match", condition: "host = api.example", request: "host shop.example"),
            .init(name: "web", result: "matched"),
        ])
        #expect(r.rules == [
            .init(rule: "rules[0]", result: "no_match", action: "cohort canary", condition: "header x-canary = \"always\"",
                  request: "header x-canary: \"never\""),
            .init(rule: "rules[1]", result: "no_match", action: "respond 403", condition: "path = /blocked", request: "path /cart"),
        ])
        #expect(r.action == "forward" && r.route == "web" && r.cohort == "canary" && r.decidedBy == "split")
        // sluice-hash-v1("user-0") = 0x0c5db9020abd2642, bucket 7650: the canary's 5000..<10000.
        #expect(r.split == .init(source: "cookie session_id", key: "user-0", hash: "0c5db9020abd2642", bucket: 7650,
                                 range: [5000, 10000], weights: "stable=50% canary=50%"))
        #expect(r.upstream == "canary" && r.endpoint == "127.0.0.1:9003" && r.endpoints == ["127.0.0.1:9003 weight 1"])
        #expect(r.upstreamHeaders == ["Host: shop.example", "X-Canary: never", "Cookie: a=b; session_id=user-0",
                                      "X-Forwarded-For: 10.1.2.3", "X-Forwarded-Proto: http", "X-Forwarded-Host: shop.example",
                                      "X-Sluice-Cohort: canary", "X-Request-Id: (32 random hex digits, generated per request)"])
        #expect(r.responseHeaders == ["X-Sluice-Cohort: canary"])
    }

    @Test func anonymousVisitorGetsTheAssignedKeyFromEntropy() throws {
        let r = try Self.explain(ExplainInput(url: "http://shop.example/", cookies: ["session_id="], entropy: "0x0123456789abcdef"))
        #expect(r.cohort == "stable")
        #expect(r.split == .init(source: "assigned", key: "0123456789abcdef", hash: "9fe524d33625dec6", bucket: 2966,
                                 range: [0, 5000], weights: "stable=50% canary=50%",
                                 note: "cookie session_id missing or empty; no valid sluice_sticky cookie: Sluice assigns the key and sets the cookie"))
        #expect(r.responseHeaders == ["Set-Cookie: sluice_sticky=0123456789abcdef; Path=/; HttpOnly; SameSite=Lax",
                                      "X-Sluice-Cohort: stable"])
        // The cookie sent back: read, not set again.
        let back = try Self.explain(ExplainInput(url: "http://shop.example/", cookies: ["sluice_sticky=0123456789abcdef"], entropy: "5"))
        #expect(back.split?.source == "cookie sluice_sticky" && back.split?.bucket == 2966 && back.cohort == "stable")
        #expect(back.responseHeaders == ["X-Sluice-Cohort: stable"])
    }

    @Test func rulesDirectResponsesAndNoMatch() throws {
        let rule = try Self.explain(ExplainInput(method: "PUT", url: "http://a.example/x", headers: ["X-Canary: always"]))
        #expect(rule.rules.map(\.result) == ["matched"] && rule.decidedBy == "rules[0]" && rule.cohort == "canary" && rule.split == nil)
        let blocked = try Self.explain(ExplainInput(url: "http://a.example/blocked"))
        #expect(blocked.action == "respond" && blocked.status == 403 && blocked.decidedBy == "rules[1]" && blocked.upstreamHeaders == nil)
        let none = try Self.explain(ExplainInput(method: "POST", url: "http://a.example/x", from: "::1"))
        #expect(none.action == "not_found" && none.route == nil)
        #expect(none.routes == [
            .init(name: "api", result: "no_match", condition: "host = api.example", request: "host a.example"),
            .init(name: "web", result: "no_match", condition: "method in GET, PUT", request: "method POST"),
        ])
        #expect(none.notes == ["no route matched: the proxy answers 404"])
        // A route tried after the match is reported as not tried.
        let api = try Self.explain(ExplainInput(url: "http://api.example/api/v1"))
        #expect(api.routes.map(\.result) == ["matched", "not_tried"] && api.cohort == "canary")
        #expect(api.split?.source == "per_request")
    }

    @Test func forwardedFieldsFollowTheTrustedProxies() throws {
        let cohortSpoof = "X-Sluice-Cohort: canary"
        let untrusted = try Self.explain(ExplainInput(url: "http://shop.example/", headers: ["X-Forwarded-For: 1.2.3.4", cohortSpoof],
                                                      cookies: ["session_id=0123456789abcdef"], from: "10.1.2.3"))
        #expect(untrusted.upstreamHeaders?.filter { $0.hasPrefix("X-Forwarded-For") } == ["X-Forwarded-For: 10.1.2.3"])
        // Key bucket 2966: stable. The client's own cohort field is dropped.
        #expect(untrusted.cohort == "stable")
        #expect(untrusted.upstreamHeaders?.filter { $0.hasPrefix("X-Sluice-Cohort") } == ["X-Sluice-Cohort: stable"])
        let trusted = try Self.explain(ExplainInput(url: "http://shop.example/", headers: ["X-Forwarded-For: 1.2.3.4"],
                                                    cookies: ["session_id=user-1"], from: "10.9.0.7"))
        #expect(trusted.upstreamHeaders?.filter { $0.hasPrefix("X-Forwarded-For") } == ["X-Forwarded-For: 1.2.3.4, 10.9.0.7"])
        #expect(trusted.notes.contains("10.9.0.7 is a trusted proxy: its X-Forwarded-* fields are kept"))
    }

    @Test(arguments: [
        (ExplainInput(url: "shop.example/x"), "url `shop.example/x`: expected http://HOST/PATH or /PATH"),
        (ExplainInput(url: "/x"), "the proxy would answer 400: HTTP/1.1 request without a Host header"),
        (ExplainInput(method: "GE T", url: "/x"), "`GE T` is not an HTTP method"),
        (ExplainInput(url: "http://a.example/a b"), "contains spaces or control characters"),
        (ExplainInput(url: "http://a.example/", headers: ["NoColon"]), "header `NoColon`: expected `Name: value`"),
        (ExplainInput(url: "http://a.example/", headers: ["Bad Name: x"]), "the proxy would answer 400"),
        (ExplainInput(url: "http://a.example/", from: "10.1.2"), "from `10.1.2`: expected an IPv4 or IPv6 address"),
        (ExplainInput(url: "http://a.example/", entropy: "zz"), "entropy `zz`"),
        (ExplainInput(url: "http:///x"), "has no host"),
    ] as [(ExplainInput, String)])
    func badInputsAreClearErrors(input: ExplainInput, message: String) throws {
        do {
            _ = try Self.explain(input)
            Issue.record("accepted \(input)")
        } catch let error as ControlError {
            #expect(error.status == 400)
            #expect(error.description.contains(message), "\(error.description)")
        }
    }

    @Test func walkIsDecide() throws {
        // The walk's decision is `decide`'s for the same request and entropy (it is `decide`, traced).
        let t = try #require(mustLoad(Self.yaml)).table
        for (i, request) in [TestRequest(host: "api.example"), TestRequest("GET", "/api/x", host: "api.example"),
                             TestRequest(host: "x.example", headers: [("Cookie", "session_id=abc")]),
                             TestRequest("PUT", "/blocked", host: "x.example"), TestRequest(host: "x.example")].enumerated() {
            for e: UInt64 in [0, 7, 9_999, .max] {
                var b1 = BalancerState(table: t), b2 = BalancerState(table: t)
                let walk = request.bytes.withUnsafeBytes {
                    t.walk(head: request.head, bytes: $0, client: .v4(0x7f00_0001, port: 1), entropy: e, balancer: &b1)
                }
                #expect(walk.decision == decide(t, request, client: .v4(0x7f00_0001, port: 1), entropy: e, balancer: &b2), "request \(i)")
            }
        }
    }

    @Test func textReport() throws {
        let r = try Self.explain(ExplainInput(url: "http://shop.example/cart", cookies: ["session_id=user-0"], from: "10.1.2.3"))
        #expect(r.text == """
            request (table version 1, from 10.1.2.3, entropy 0000000000000000)
              GET /cart HTTP/1.1
              Host: shop.example
              Cookie: session_id=user-0
            routes
              api  no match: host = api.example (the request has host shop.example)
              web  matched
            rules of web
              rules[0]  no match: header x-canary = "always" (the request has header x-canary absent)  -> cohort canary
              rules[1]  no match: path = /blocked (the request has path /cart)  -> respond 403
            decision: forward to web / canary, decided by the split
              key: cookie session_id = "user-0", hash 0c5db9020abd2642, bucket 7650 -> canary (buckets 5000..<10000 of stable=50% canary=50%)
            upstream: canary, endpoint 127.0.0.1:9003 (of 127.0.0.1:9003 weight 1)
            upstream request fields
              Host: shop.example
              Cookie: session_id=user-0
              X-Forwarded-For: 10.1.2.3
              X-Forwarded-Proto: http
              X-Forwarded-Host: shop.example
              X-Sluice-Cohort: canary
              X-Request-Id: (32 random hex digits, generated per request)
            added to the response
              X-Sluice-Cohort: canary
            note: the endpoint is a fresh balancer's first pick; each worker rotates over the group's endpoints (smooth weighted round robin)

            """)
    }

    @Test func adminEndpointUsesTheLiveTableWithOverrides() throws {
        let rig = try AdminControlTests.Rig(token: "t0k")
        defer { rig.stop() }
        let body = #"{"url": "http://shop.example/", "headers": ["X-Canary: always"], "cookies": ["x=1"], "from": "10.1.2.3"}"#
        // With a token set, explaining (it reveals the topology) needs it (issue 17); the rule
        // sends the request to the canary.
        #expect(try rig.call("POST", "/admin/explain", body).status == 401)
        let before = try rig.call("POST", "/admin/explain", body, token: "t0k")
        #expect(before.status == 200, "\(before.text)")
        let r1 = try JSONDecoder().decode(ExplainReport.self, from: Data(before.body))
        #expect(r1.cohort == "canary" && r1.decidedBy == "rules[0]" && r1.override == nil && r1.version == 1)
        #expect(before.text.contains(#""decided_by" : "rules[0]""#) && before.text.contains(#""upstream_headers" : ["#))
        // After an abort the live table sends the rule to the baseline, and explain says so.
        #expect(try rig.call("POST", "/admin/routes/web/abort", token: "t0k").status == 200)
        let r2 = try JSONDecoder().decode(ExplainReport.self, from: Data(try rig.call("POST", "/admin/explain", body, token: "t0k").body))
        #expect(r2.cohort == "stable" && r2.decidedBy == "rules[0]" && r2.override == "abort (all to stable)" && r2.version == 2)
        #expect(r2.rules == [.init(rule: "rules[0]", result: "matched", action: "cohort stable")])
        // Bad input: 400 with the problem.
        let bad = try rig.call("POST", "/admin/explain", #"{"url": "nope"}"#, token: "t0k")
        #expect(bad.status == 400)
        #expect(try rig.error(bad).error == "url `nope`: expected http://HOST/PATH or /PATH")
        #expect(try rig.call("POST", "/admin/explain", "{}", token: "t0k").status == 400)
        #expect(try rig.call("GET", "/admin/explain").status == 405)
    }
}
