import SluiceControl
import SluiceCore
import Testing

/// Sticky hashing and the bucket layout of splits.
@Suite struct CohortSplitTests {
    /// Counts, per cohort, how many of `count` keys `user-<i>` land in it.
    static func shares(_ table: RoutingTable, count: Int) -> [Int] {
        var counts = [Int](repeating: 0, count: table.routes[0].cohorts.count)
        var key: [UInt8] = []
        key.reserveCapacity(32)
        for i in 0..<count {
            _ = writeUserKey(i, into: &key)
            let bucket = StickyHash.bucket(key)
            counts[Int(table.cohort(route: 0, bucket: bucket))] += 1
        }
        return counts
    }

    @Test("over 1,000,000 keys each cohort's share is within ±0.2 points of its weight",
          arguments: [
              [("stable", 95.0), ("canary", 5.0)],
              [("stable", 50.0), ("canary", 30.0), ("third", 20.0)],
          ])
    func distribution(_ split: [(String, Double)]) throws {
        let upstreamIndex = ["stable": 0, "canary": 1, "third": 2]
        let t = table(routes: [RouteSpec(name: "web", cohorts: split.map {
            CohortSpec(name: $0.0, upstream: upstreamIndex[$0.0]!, weight: Int($0.1 * 100))
        })])
        let n = 1_000_000
        let counts = Self.shares(t, count: n)
        for (i, (name, weight)) in split.enumerated() {
            let share = Double(counts[i]) * 100 / Double(n)
            #expect(abs(share - weight) <= 0.2, "\(name): \(share)% for weight \(weight)%")
        }
    }

    @Test(arguments: [
        ("", UInt64(0xefd0_1f60_ba99_2926), 4_342),
        ("user-0", 0x0c5d_b902_0abd_2642, 7_650),
        ("user-1", 0x41a2_fca5_c684_01c5, 5_477),
        ("hello", 0xe9c5_62c0_fdb2_3244, 5_124),
        ("0123456789abcdef", 0x9fe5_24d3_3625_dec6, 2_966),
    ])
    func hashIsFixedAcrossReleases(key: String, hash: UInt64, bucket: Int) {
        // sluice-hash-v1 is part of the contract (values computed by an independent implementation):
        // changing them would move every user to another bucket on upgrade.
        #expect(StickyHash.hash(Array(key.utf8)) == hash)
        #expect(StickyHash.bucket(Array(key.utf8)) == bucket)
    }

    @Test func assignedKeysHashTheirCookieText() {
        #expect(StickyHash.bucket(assignedKey: 0x0123_4567_89ab_cdef) == 2_966)
        // The same key always gets the same bucket, and the assigned-key path hashes the hex text.
        for key: UInt64 in [0, 1, 0xdead_beef, 0x0123_4567_89ab_cdef, .max] {
            var hex: [UInt8] = []
            StickyHash.appendHex(key, to: &hex)
            #expect(hex.count == 16)
            #expect(StickyHash.bucket(assignedKey: key) == StickyHash.bucket(hex))
            #expect(hex.withUnsafeBytes { StickyHash.parseAssignedKey($0) } == key)
        }
    }

    @Test func twoCohortLayoutPutsCanaryAtTheTop() {
        let t = table(routes: [RouteSpec(name: "web", cohorts: [
            CohortSpec(name: "stable", upstream: 0, weight: 9_500),
            CohortSpec(name: "canary", upstream: 1, weight: 500),
        ])])
        #expect(t.cohort(route: 0, bucket: 0) == 0)
        #expect(t.cohort(route: 0, bucket: 9_499) == 0)
        #expect(t.cohort(route: 0, bucket: 9_500) == 1)
        #expect(t.cohort(route: 0, bucket: 9_999) == 1)
    }

    @Test func baselineNeedNotBeFirstInConfigOrder() {
        // Split written canary-first with baseline stable: canary still owns the top buckets.
        let t = table(routes: [RouteSpec(name: "web", cohorts: [
            CohortSpec(name: "canary", upstream: 1, weight: 1_000),
            CohortSpec(name: "stable", upstream: 0, weight: 9_000),
        ], baseline: 1)])
        #expect(t.cohort(route: 0, bucket: 8_999) == 1)
        #expect(t.cohort(route: 0, bucket: 9_000) == 0)
    }

    @Test func ramp1To100NeverMovesAKeyFromCanaryBackToStable() {
        let steps = [100, 500, 2_500, 5_000, 10_000]
        let tables = steps.map { w in
            table(routes: [RouteSpec(name: "web", cohorts: [
                CohortSpec(name: "stable", upstream: 0, weight: 10_000 - w),
                CohortSpec(name: "canary", upstream: 1, weight: w),
            ])])
        }
        var key: [UInt8] = []
        var moved = 0
        var canaryCounts = [Int](repeating: 0, count: steps.count)
        for i in 0..<200_000 {
            _ = writeUserKey(i, into: &key)
            let bucket = StickyHash.bucket(key)
            var wasCanary = false
            for (s, t) in tables.enumerated() {
                let isCanary = t.cohort(route: 0, bucket: bucket) == 1
                if wasCanary && !isCanary { moved += 1 }
                if isCanary { canaryCounts[s] += 1 }
                wasCanary = isCanary
            }
        }
        #expect(moved == 0)
        #expect(canaryCounts.last == 200_000)
        #expect(canaryCounts == canaryCounts.sorted())
    }

    @Test func changingOneOfThreeCohortsMovesKeysOnlyBetweenItAndTheBaseline() {
        func make(_ b: Int, _ c: Int) -> RoutingTable {
            table(routes: [RouteSpec(name: "web", cohorts: [
                CohortSpec(name: "stable", upstream: 0, weight: 10_000 - b - c),
                CohortSpec(name: "canary", upstream: 1, weight: b),
                CohortSpec(name: "third", upstream: 2, weight: c),
            ])])
        }
        let before = make(1_000, 2_000)
        let after = make(3_000, 2_000)  // canary grows 10% -> 30% against the baseline
        for bucket in 0..<10_000 {
            let a = before.cohort(route: 0, bucket: bucket), b = after.cohort(route: 0, bucket: bucket)
            if a == b { continue }
            #expect(a == 0 && b == 1, "bucket \(bucket) moved from \(a) to \(b)")
        }
        // Third keeps exactly its buckets.
        let thirdBefore = (0..<10_000).filter { before.cohort(route: 0, bucket: $0) == 2 }
        let thirdAfter = (0..<10_000).filter { after.cohort(route: 0, bucket: $0) == 2 }
        #expect(thirdBefore == thirdAfter)
        #expect(thirdBefore.count == 2_000)
    }

    @Test func cohortHeavierThanItsLaneFallsBackToStacking() {
        // Two non-baseline cohorts: lanes of 50%; 60% does not fit, so cohorts stack from the top.
        let t = table(routes: [RouteSpec(name: "web", cohorts: [
            CohortSpec(name: "stable", upstream: 0, weight: 1_000),
            CohortSpec(name: "canary", upstream: 1, weight: 6_000),
            CohortSpec(name: "third", upstream: 2, weight: 3_000),
        ])])
        var counts = [0, 0, 0]
        for b in 0..<10_000 { counts[Int(t.cohort(route: 0, bucket: b))] += 1 }
        #expect(counts == [1_000, 6_000, 3_000])
        #expect(t.cohort(route: 0, bucket: 9_999) == 1)
        #expect(t.cohort(route: 0, bucket: 3_999) == 2)
        #expect(t.cohort(route: 0, bucket: 999) == 0)
    }

    @Test func sameKeyInCookieAndInHeaderGetsTheSameCohort() throws {
        let config = try #require(mustLoad("""
            listeners: [{ name: public, address: 127.0.0.1:8080 }]
            upstreams:
              a: { endpoints: ["127.0.0.1:9001"] }
              b: { endpoints: ["127.0.0.1:9002"] }
              c: { endpoints: ["127.0.0.1:9003"] }
              d: { endpoints: ["127.0.0.1:9004"] }
            routes:
              - name: by-cookie
                match: { path_prefix: /cookie }
                sticky: { cookie: session_id }
                split: { a: 25, b: 25, c: 25, d: 25 }
              - name: by-header
                match: { path_prefix: /header }
                sticky: { header: X-User-Id }
                split: { a: 25, b: 25, c: 25, d: 25 }
            """))
        var seen = Set<Int32>()
        for i in 0..<2_000 {
            let key = "user-\(i)"
            let viaCookie = decide(config.table, TestRequest("GET", "/cookie", headers: [("Cookie", "x=1; session_id=\(key)")]))
            let viaHeader = decide(config.table, TestRequest("GET", "/header", headers: [("x-user-id", key)]))
            #expect(viaCookie.cohort == viaHeader.cohort)
            #expect(viaCookie.cohort == config.table.cohort(route: 0, bucket: StickyHash.bucket(Array(key.utf8))))
            #expect(!viaCookie.setStickyCookie && !viaHeader.setStickyCookie)
            // Asking again (with different entropy) gives the same answer.
            #expect(decide(config.table, TestRequest("GET", "/cookie", headers: [("Cookie", "session_id=\(key)")]),
                           entropy: UInt64(i) &* 7919).cohort == viaCookie.cohort)
            seen.insert(viaCookie.cohort)
        }
        #expect(seen.count == 4)
    }
}
