import SluiceControl
import SluiceCore
import Testing

/// Deriving tables at runtime: splits, switches and aborts build a new immutable table.
@Suite struct RuntimeTableTests {
    static let yaml = baseYAML + """
          third: { endpoints: ["127.0.0.1:9005"] }
        routes:
          - name: api
            match: { path_prefix: /api }
            upstream: stable
          - name: web
            baseline: stable
            sticky: none
            rules:
              - match: { header: { name: X-Canary, value: always } }
                cohort: canary
              - match: { path: /blocked }
                respond: { status: 403, body: "no" }
            split: { stable: 90, canary: 10 }
          - name: three
            match: { path_prefix: /three }
            sticky: none
            split: { stable: 80, canary: 10, third: 10 }
        """

    /// Owner cohort name of every bucket of route `r`.
    static func owners(_ t: RoutingTable, route r: Int) -> [String] {
        (0..<10_000).map { t.routes[r].cohorts[Int(t.cohort(route: r, bucket: $0))].name }
    }

    static func weights(_ t: RoutingTable, route: String) -> [String: Int] {
        let r = t.routeIndex(named: route)!
        var out: [String: Int] = [:]
        for c in t.routes[r].cohorts { out[c.name] = c.weight }
        return out
    }

    @Test func splitBuildsANewTableAndLeavesTheOldOneAlone() throws {
        let base = try #require(mustLoad(Self.yaml)).table
        let next = try base.applying([.split(route: "web", weights: [CohortWeight(cohort: "stable", weight: 7_500),
                                                                     CohortWeight(cohort: "canary", weight: 2_500)])],
                                     version: 2)
        #expect(next !== base)
        #expect(next.version == 2)
        #expect(base.version == 1)
        #expect(Self.weights(next, route: "web") == ["stable": 7_500, "canary": 2_500])
        #expect(Self.weights(base, route: "web") == ["stable": 9_000, "canary": 1_000])
        // The canary owns the top of the bucket range: [7500, 10000) now, [9000, 10000) before.
        let owners = Self.owners(next, route: 1)
        #expect(owners[..<7_500].allSatisfy { $0 == "stable" })
        #expect(owners[7_500...].allSatisfy { $0 == "canary" })
        #expect(Self.owners(base, route: 1)[..<9_000].allSatisfy { $0 == "stable" })
        // Other routes keep their layout.
        #expect(Self.owners(next, route: 2) == Self.owners(base, route: 2))
        #expect(Self.owners(next, route: 0) == Self.owners(base, route: 0))
        // Requests are routed by the new weights; rules still apply.
        let plain = decide(next, TestRequest("GET", "/"), entropy: 8_000)
        #expect(next.routes[Int(plain.route)].cohorts[Int(plain.cohort)].name == "canary")
        #expect(decide(base, TestRequest("GET", "/"), entropy: 8_000).cohort == 0)
        let ruled = decide(next, TestRequest(headers: [("X-Canary", "always")]), entropy: 0)
        #expect(next.routes[Int(ruled.route)].cohorts[Int(ruled.cohort)].name == "canary")
    }

    @Test func aRampOnlyEverMovesKeysFromBaselineToCanary() throws {
        var t = try #require(mustLoad(Self.yaml)).table
        t = try t.applying([.split(route: "web", weights: [CohortWeight(cohort: "stable", weight: 9_999),
                                                          CohortWeight(cohort: "canary", weight: 1)])], version: 1)
        var previous = Self.owners(t, route: 1)
        for (i, w) in [100, 500, 2_500, 5_000, 10_000].enumerated() {
            t = try t.applying([.split(route: "web", weights: [CohortWeight(cohort: "stable", weight: 10_000 - w),
                                                              CohortWeight(cohort: "canary", weight: w)])],
                               version: UInt64(i + 2))
            let now = Self.owners(t, route: 1)
            for b in 0..<10_000 where previous[b] == "canary" { #expect(now[b] == "canary") }
            previous = now
        }
    }

    @Test func cohortsNotNamedGetZeroAndKeepTheirLane() throws {
        let base = try #require(mustLoad(Self.yaml)).table
        // `third` left out: weight 0, and `canary` keeps its lane (top half).
        let t = try base.applying([.split(route: "three", weights: [CohortWeight(cohort: "stable", weight: 7_000),
                                                                    CohortWeight(cohort: "canary", weight: 3_000)])],
                                  version: 2)
        #expect(Self.weights(t, route: "three") == ["stable": 7_000, "canary": 3_000, "third": 0])
        let before = Self.owners(base, route: 2), after = Self.owners(t, route: 2)
        // canary's buckets only grew; third's buckets went to the baseline, never to canary.
        for b in 0..<10_000 {
            if before[b] == "canary" { #expect(after[b] == "canary") }
            if before[b] == "third" { #expect(after[b] == "stable") }
        }
        #expect(after.filter { $0 == "canary" }.count == 3_000)
    }

    @Test func switchSendsEverythingToOneCohortRulesIncluded() throws {
        let base = try #require(mustLoad(Self.yaml)).table
        let t = try base.applying([.switchTo(route: "web", cohort: "canary")], version: 5)
        #expect(Self.weights(t, route: "web") == ["stable": 0, "canary": 10_000])
        #expect(Set(Self.owners(t, route: 1)) == ["canary"])
        // A `respond` rule still answers; a cohort rule now forwards to the switched cohort.
        let blocked = decide(t, TestRequest("GET", "/blocked"))
        #expect(blocked.action == .respond)
        let ruled = decide(t, TestRequest(headers: [("X-Canary", "always")]))
        #expect(t.routes[1].cohorts[Int(ruled.cohort)].name == "canary")
        // Back to stable: even the X-Canary rule now goes to stable.
        let back = try t.applying([.switchTo(route: "web", cohort: "stable")], version: 6)
        let ruledBack = decide(back, TestRequest(headers: [("X-Canary", "always")]))
        #expect(back.routes[1].cohorts[Int(ruledBack.cohort)].name == "stable")
        #expect(back.ruleCohorts(route: 1) == [0, -1])
    }

    @Test func abortSendsEverythingToTheBaseline() throws {
        let base = try #require(mustLoad(Self.yaml)).table
        let t = try base.applying([.abort(route: "web")], version: 2)
        #expect(Self.weights(t, route: "web") == ["stable": 10_000, "canary": 0])
        #expect(t.ruleCohorts(route: 1) == [0, -1])
        #expect(base.ruleCohorts(route: 1) == [1, -1])
        for entropy: UInt64 in [0, 9_999, 12_345_678] {
            let d = decide(t, TestRequest(headers: [("X-Canary", "always")]), entropy: entropy)
            #expect(d.cohort == 0)
            #expect(decide(t, TestRequest(), entropy: entropy).cohort == 0)
        }
        // A split after the abort starts from the compiled rules again.
        let split = try t.applying([.split(route: "web", weights: [CohortWeight(cohort: "stable", weight: 10_000)])], version: 3)
        #expect(split.ruleCohorts(route: 1) == [0, -1])
        let fromBase = try base.applying([.abort(route: "web"), .split(route: "web", weights: [CohortWeight(cohort: "stable", weight: 10_000)])],
                                         version: 3)
        #expect(fromBase.ruleCohorts(route: 1) == [1, -1], "a later change to a route replaces an earlier one")
    }

    @Test func renumberedSharesEverythingButTheVersion() throws {
        let base = try #require(mustLoad(Self.yaml)).table
        let t = base.renumbered(version: 42)
        #expect(t.version == 42)
        #expect(Self.owners(t, route: 1) == Self.owners(base, route: 1))
        #expect(t.routes.map(\.name) == base.routes.map(\.name))
    }

    @Test(arguments: [
        (RouteChange.split(route: "nope", weights: []), RoutingChangeError.unknownRoute("nope", known: ["api", "web", "three"])),
        (.switchTo(route: "web", cohort: "green"), .unknownCohort(route: "web", cohort: "green", known: ["stable", "canary"])),
        (.split(route: "web", weights: [CohortWeight(cohort: "stable", weight: 9_000), CohortWeight(cohort: "canary", weight: 900)]),
         .weightsSum(route: "web", sum: 9_900)),
        (.split(route: "web", weights: [CohortWeight(cohort: "stable", weight: 5_000), CohortWeight(cohort: "stable", weight: 5_000)]),
         .duplicateCohort(route: "web", cohort: "stable")),
        (.split(route: "web", weights: [CohortWeight(cohort: "stable", weight: 10_100), CohortWeight(cohort: "canary", weight: -100)]),
         .weightOutOfRange(route: "web", cohort: "stable", weight: 10_100)),
        (.split(route: "web", weights: []), .emptySplit(route: "web")),
        (.split(route: "web", weights: [CohortWeight(cohort: "canry", weight: 10_000)]),
         .unknownCohort(route: "web", cohort: "canry", known: ["stable", "canary"])),
    ])
    func invalidChangesAreRefused(change: RouteChange, expected: RoutingChangeError) throws {
        let base = try #require(mustLoad(Self.yaml)).table
        #expect(throws: expected) { try base.applying([change], version: 2) }
    }

    @Test func routesWithoutCohortsCannotBeSplit() throws {
        let t = try #require(mustLoad(baseYAML + """
            routes:
              - { name: health, match: { path: /healthz }, respond: { body: ok } }
              - { name: web, upstream: stable }
            """)).table
        #expect(throws: RoutingChangeError.noCohorts(route: "health")) { try t.applying([.abort(route: "health")], version: 2) }
        let e = RoutingChangeError.weightsSum(route: "web", sum: 9_950)
        #expect(e.description == "weights of route `web` sum to 99.5, must be 100")
    }

    @Test func diffNamesWhatChanged() throws {
        let base = try #require(mustLoad(Self.yaml)).table
        let split = try base.applying([.split(route: "web", weights: [CohortWeight(cohort: "stable", weight: 9_500),
                                                                      CohortWeight(cohort: "canary", weight: 500)])], version: 2)
        #expect(TableDiff.describe(from: base, to: split) == "web: stable 90→95, canary 10→5")
        let abort = try base.applying([.abort(route: "web")], version: 3)
        #expect(TableDiff.describe(from: base, to: abort) == "web: stable 90→100, canary 10→0, rules → stable")
        #expect(TableDiff.describe(from: base, to: base.renumbered(version: 9)) == "no change to routes, splits or endpoints")
        let moved = try #require(mustLoad(Self.yaml.replacingOccurrences(of: "127.0.0.1:9003", with: "api.internal:9004")
                .replacingOccurrences(of: "  - name: api\n    match: { path_prefix: /api }\n    upstream: stable\n", with: ""))).table
        #expect(TableDiff.describe(from: base, to: moved)
                == "routes removed: api; upstreams: canary endpoints 127.0.0.1:9003 → api.internal:9004 (10.1.2.3:9004)")
    }
}

/// Regression: a route-level `respond` whose rules forward to a cohort compiled a split of
/// weight 0 and hit a precondition (a crash at load, or at a reload of a running proxy).
@Suite struct RuntimeRespondRouteTests {
    @Test func aRespondRouteWithCohortRulesLoadsAndCanBeAborted() throws {
        let t = try #require(mustLoad(baseYAML + """
            routes:
              - name: x
                respond: { status: 200, body: ok }
                rules:
                  - match: { header: { name: A, value: b } }
                    cohort: canary
            """)).table
        #expect(decide(t, TestRequest()).action == .respond)
        let ruled = decide(t, TestRequest(headers: [("A", "b")]))
        #expect(ruled.action == .forward && t.routes[0].cohorts[Int(ruled.cohort)].name == "canary")
        let aborted = try t.applying([.abort(route: "x")], version: 2)
        #expect(decide(aborted, TestRequest()).action == .respond)
        #expect(decide(aborted, TestRequest(headers: [("A", "b")])).cohort == 0)
    }
}
