import Foundation
import SluiceControl
@testable import SluiceCore
import Testing

/// `mirror:` in the config: defaults, targets (cohort or upstream), rule mirrors, validation.
@Suite struct MirrorConfigTests {
    @Test func defaultsAndTargets() throws {
        let t = try #require(mustLoad((baseYAML + """
            routes:
              - name: web
                split: { stable: 90, canary: 10 }
                mirror: { to: canary }
                rules:
                  - match: { path_prefix: /api }
                    cohort: stable
                    mirror: { to: third, percent: 12.5, compare: true, max_body_bytes: 64KiB, headers: [Content-Type, ETag], methods: [get, post], timeout: 2s }
                  - match: { path_prefix: /plain }
                    cohort: stable
              - name: other
                upstream: stable
            """).replacingOccurrences(of: "canary: { endpoints: [\"127.0.0.1:9003\"] }",
                                     with: "canary: { endpoints: [\"127.0.0.1:9003\"] }\n  third: { endpoints: [\"127.0.0.1:9005\"] }"))).table
        #expect(t.mirrorPlans.count == 2)
        let rule = t.mirrorPlans[0].spec, route = t.mirrorPlans[1].spec
        // Route mirror: the documented defaults.
        #expect(route == MirrorSpec(name: "canary", upstream: 1))
        #expect(route.percent == 10_000 && !route.compare && route.maxBodyBytes == 1 << 20 && route.headers == ["content-type"])
        #expect(route.timeoutNanos == 10_000_000_000)
        for m in [HTTPMethod.get, .head, .put, .delete, .options, .trace] { #expect(route.methods & MirrorSpec.methodBit(m) != 0) }
        for m in [HTTPMethod.post, .patch, .connect, .other] { #expect(route.methods & MirrorSpec.methodBit(m) == 0) }
        #expect(rule.name == "third" && rule.upstream == 2 && rule.percent == 1_250 && rule.compare && rule.maxBodyBytes == 65_536)
        #expect(rule.headers == ["content-type", "etag"] && rule.timeoutNanos == 2_000_000_000)
        #expect(rule.methods == MirrorSpec.methodBit(.get) | MirrorSpec.methodBit(.post))
        // Which mirror covers a decision: the deciding rule's, else the route's; none on `other`.
        let api = decide(t, TestRequest("GET", "/api/x"), entropy: 1)
        #expect(api.rule == 0 && t.mirrorIndex(for: api) == 0)
        let plain = decide(t, TestRequest("GET", "/plain"), entropy: 1)
        #expect(plain.rule == 1 && t.mirrorIndex(for: plain) == 1)
        #expect(t.mirrorIndex(for: decide(t, TestRequest("GET", "/"), entropy: 1)) == 1)
        #expect(t.mirrorIndex(for: decide(t, TestRequest("GET", "/", host: "x"), entropy: 1)) == 1)
        // A runtime change keeps the mirrors.
        let changed = try t.applying([.abort(route: "web")], version: 2)
        #expect(changed.mirrorPlans == t.mirrorPlans && changed.mirrorIndex(for: decide(changed, TestRequest("GET", "/api"), entropy: 1)) == 0)
    }

    @Test(arguments: [
        ("mirror: { percent: 10 }", "missing required key `to`"),
        ("mirror: { to: nowhere }", "`nowhere` is neither a cohort of this route nor an upstream"),
        ("mirror: { to: canry }", "did you mean `canary`"),
        ("mirror: { to: canary, percent: 0 }", "a mirror at 0% sends nothing"),
        ("mirror: { to: canary, percent: 101 }", "percentage `101` is over 100"),
        ("mirror: { to: canary, compare: maybe }", "compare"),
        ("mirror: { to: canary, max_body_bytes: 1TiB }", "max_body_bytes is at most"),
        ("mirror: { to: canary, headers: [\"a b\"] }", "`a b` is not a valid header name"),
        ("mirror: { to: canary, methods: [CONNECT] }", "`CONNECT` cannot be mirrored"),
        ("mirror: { to: canary, methods: [] }", "an empty list mirrors nothing"),
        ("mirror: { to: canary, timeout: 0s }", "must be longer than 0"),
        ("mirror: { to: canary, colour: red }", "unknown key `colour`"),
        ("mirror: canary", "expected a mapping"),
    ])
    func configErrors(mirror: String, message: String) {
        let problems = diagnostics(baseYAML + """
            routes:
              - name: web
                split: { stable: 95, canary: 5 }
                \(mirror)
            """)
        #expect(problems.contains { $0.description.contains(message) }, "\(problems.map(\.description))")
        #expect(problems.allSatisfy { $0.description.contains("mirror") }, "\(problems.map(\.description))")
    }

    @Test func mirrorsOnDirectResponsesAreRefusedAndLimitsAreChecked() {
        let onRespond = diagnostics(baseYAML + """
            routes:
              - name: web
                split: { stable: 95, canary: 5 }
                rules:
                  - match: { path: /x }
                    respond: { status: 200 }
                    mirror: { to: canary }
            """)
        #expect(onRespond.map(\.message) == ["a rule that answers directly forwards nothing to mirror"])
        let limits = diagnostics(baseYAML + """
            limits: { mirror_max_in_flight: 0, mirror_max_buffered_bytes: 1KiB }
            routes:
              - { name: web, upstream: stable }
            """)
        #expect(limits.count == 2, "\(limits.map(\.description))")
        let ok = mustLoad(baseYAML + """
            limits: { mirror_max_in_flight: 8, mirror_max_buffered_bytes: 4MiB }
            routes:
              - { name: web, upstream: stable }
            """)
        #expect(ok?.proxySettings(workers: 1).limits.mirrorMaxInFlight == 8)
        #expect(ok?.proxySettings(workers: 1).limits.mirrorMaxBufferedBytes == 4 << 20)
    }

    @Test func aTLSUpstreamIsRefusedAsAMirror() {
        let problems = diagnostics("""
            listeners: [{ name: public, address: "127.0.0.1:8080" }]
            upstreams:
              stable: { endpoints: ["127.0.0.1:9001"] }
              secure: { endpoints: ["127.0.0.1:9443"], tls: true }
            routes:
              - { name: web, upstream: stable, mirror: { to: secure } }
            """)
        #expect(problems.map(\.message) == ["upstream `secure` is reached over TLS; mirror copies are sent in plain HTTP only"],
                "\(problems.map(\.description))")
    }

    @Test func theDiffsEndpointNeedsTheTokenAndKnowsTheRoutes() throws {
        let rig = try AdminControlTests.Rig(token: "t0k")
        defer { rig.stop() }
        let board = MirrorBoard(workers: 1)
        let controller = rig.controller
        board.registerAdminEndpoints(on: rig.admin, table: { controller.table })
        board.shards[0].keep(MirrorDiff(time: "", route: "web", mirror: "canary", requestLine: "GET / HTTP/1.1", result: "status_diff",
                                        primaryStatus: 200, mirrorStatus: 502, primaryBodyBytes: 0, mirrorBodyBytes: 0,
                                        primarySeconds: 0.001, mirrorSeconds: 0.002), unixNanos: 1_800_000_000_000_000_000)
        #expect(try rig.call("GET", "/admin/mirror/diffs").status == 401)
        let ok = try rig.call("GET", "/admin/mirror/diffs?route=web", token: "t0k")
        #expect(ok.status == 200)
        let report = try JSONDecoder().decode(MirrorDiffReport.self, from: Data(ok.body))
        #expect(report.route == "web" && report.diffs.count == 1 && report.diffs[0].time == "2027-01-15T08:00:00.000Z")
        #expect(report.text.contains("1 differing pair for route web, oldest first:\n  2027-01-15T08:00:00.000Z web -> canary: GET / HTTP/1.1: status_diff, status 200 vs 502\n"),
                "\(report.text)")
        let unknown = try rig.call("GET", "/admin/mirror/diffs?route=nope", token: "t0k")
        #expect(unknown.status == 404 && unknown.text.contains("unknown route `nope`"), "\(unknown.text)")
    }
}
