import Foundation
@testable import SluiceControl
import SluiceCore
import Testing

/// `health_check`, `outlier` and `dns_refresh` config, and the balancer with endpoint health:
/// skipping unavailable endpoints, panic mode, state kept across tables.
@Suite struct EndpointAvailabilityTests {
    static func yaml(_ upstream: String) -> String {
        """
        listeners: [{ name: public, address: 127.0.0.1:8080 }]
        upstreams:
          app: \(upstream)
        routes:
          - { name: web, match: { path_prefix: / }, upstream: app, sticky: none }
        """
    }

    static let fourEndpoints = #"{ endpoints: ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003", "127.0.0.1:9004"] }"#

    // MARK: Config

    @Test func defaults() throws {
        let config = try #require(mustLoad(Self.yaml(#"{ endpoints: ["127.0.0.1:9001"] }"#)))
        let a = config.table.upstreams[0].availability
        #expect(a.healthCheck == nil)
        #expect(a.outlier == OutlierSpec())
        #expect(a.outlier.consecutiveFailures == 5 && a.outlier.baseEjectionNanos == 10_000_000_000)
        #expect(a.outlier.maxEjectedPercent == 50 && a.outlier.maxEjectionNanos == 300_000_000_000)
        #expect(a.dnsRefreshNanos == 30_000_000_000)
    }

    @Test func everyKeyIsRead() throws {
        let config = try #require(mustLoad(Self.yaml("""
            { endpoints: ["127.0.0.1:9001"],
                health_check: { path: /ready, interval: 500ms, timeout: 200ms, healthy: 3, unhealthy: 4, expect: [200, 300-302], host: app.internal },
                outlier: { consecutive_failures: 7, base_ejection: 2s, max_ejection: 20s, max_ejected_percent: 30 },
                dns_refresh: 5s }
            """)))
        let a = config.table.upstreams[0].availability
        let check = try #require(a.healthCheck)
        #expect(check.path == "/ready" && check.intervalNanos == 500_000_000 && check.timeoutNanos == 200_000_000)
        #expect(check.healthy == 3 && check.unhealthy == 4 && check.host == "app.internal")
        #expect(check.expect == [200...200, 300...302])
        #expect(a.outlier.consecutiveFailures == 7 && a.outlier.baseEjectionNanos == 2_000_000_000)
        #expect(a.outlier.maxEjectionNanos == 20_000_000_000 && a.outlier.maxEjectedPercent == 30)
        #expect(a.dnsRefreshNanos == 5_000_000_000)
        let empty = try #require(mustLoad(Self.yaml(#"{ endpoints: ["127.0.0.1:9001"], health_check: {}, outlier: off, dns_refresh: off }"#)))
        #expect(empty.table.upstreams[0].availability.healthCheck == HealthCheckSpec())
        #expect(!empty.table.upstreams[0].availability.outlier.isOn)
        #expect(empty.table.upstreams[0].availability.dnsRefreshNanos == 0)
    }

    @Test(arguments: [
        (#"health_check: { path: healthz }"#, "upstreams.app.health_check.path", "not a request path"),
        (#"health_check: { interval: 5ms }"#, "upstreams.app.health_check.interval", "at least 10ms"),
        (#"health_check: { interval: 1s, timeout: 2s }"#, "upstreams.app.health_check.timeout", "longer than its interval"),
        (#"health_check: { timeout: 0s }"#, "upstreams.app.health_check.timeout", "at least 1ms"),
        (#"health_check: { healthy: 0 }"#, "upstreams.app.health_check.healthy", "out of range"),
        (#"health_check: { unhealthy: lots }"#, "upstreams.app.health_check.unhealthy", "whole number"),
        (#"health_check: { expect: [200-99] }"#, "upstreams.app.health_check.expect[0]", "not a status"),
        (#"health_check: { expect: [700] }"#, "upstreams.app.health_check.expect[0]", "not a status"),
        (#"health_check: { expect: [] }"#, "upstreams.app.health_check.expect", "at least one"),
        (#"health_check: { host: "a b" }"#, "upstreams.app.health_check.host", "not a Host value"),
        (#"health_check: { intervall: 2s }"#, "upstreams.app.health_check", "unknown key `intervall`"),
        (#"health_check: yes"#, "upstreams.app.health_check", "expected a mapping"),
        (#"outlier: { consecutive_failures: -1 }"#, "upstreams.app.outlier.consecutive_failures", "out of range"),
        (#"outlier: { max_ejected_percent: 150 }"#, "upstreams.app.outlier.max_ejected_percent", "out of range"),
        (#"outlier: { base_ejection: 0s }"#, "upstreams.app.outlier.base_ejection", "at least 1ms"),
        (#"outlier: { base_ejection: 10s, max_ejection: 5s }"#, "upstreams.app.outlier.max_ejection", "shorter than base_ejection"),
        (#"outlier: { failures: 3 }"#, "upstreams.app.outlier", "unknown key `failures`"),
        (#"outlier: sometimes"#, "upstreams.app.outlier", "expected a mapping"),
        (#"dns_refresh: 500ms"#, "upstreams.app.dns_refresh", "at least 1s"),
        (#"dns_refresh: often"#, "upstreams.app.dns_refresh", "invalid duration"),
    ])
    func invalidKeysAreReportedWithTheirPath(_ c: (key: String, path: String, message: String)) {
        let d = diagnostics(Self.yaml(#"{ endpoints: ["127.0.0.1:9001"], "# + c.key + " }"))
        #expect(d.contains { $0.keyPath == c.path && $0.message.contains(c.message) && $0.line > 0 },
                "\(c.key): \(d.map(\.description))")
    }

    @Test func aTopLevelDNSRefreshIsEveryUpstreamsDefault() throws {
        let yaml = Self.yaml(#"{ endpoints: ["127.0.0.1:9001"] }"#)
            .replacingOccurrences(of: "upstreams:\n  app:", with: "upstreams:\n  own: { endpoints: [\"127.0.0.1:9002\"], dns_refresh: 2s }\n  app:")
        let config = try #require(mustLoad("dns_refresh: 1m\n" + yaml))
        #expect(config.table.upstreams.map(\.availability.dnsRefreshNanos) == [2_000_000_000, 60_000_000_000])
        let off = try #require(mustLoad("dns_refresh: off\n" + yaml))
        #expect(off.table.upstreams.map(\.availability.dnsRefreshNanos) == [2_000_000_000, 0])
        let bad = diagnostics("dns_refresh: 10ms\n" + yaml)
        #expect(bad.contains { $0.keyPath == "dns_refresh" && $0.message.contains("at least 1s") })
    }

    @Test func aHostNameBecomesOneEndpointPerAddress() throws {
        let resolver = HostResolver { name in
            name == "app.internal" ? .success([.v4(0x0a00_0002, port: 0), .v4(0x0a00_0001, port: 0), .v6(hi: 0, lo: 1, port: 0),
                                               .v4(0x0a00_0001, port: 0)]) : .failure(.init(message: "unknown"))
        }
        let config = try ConfigLoader.parse(yaml: Self.yaml(#"{ endpoints: [{ address: "app.internal:8080", weight: 3 }, "127.0.0.1:9001"] }"#),
                                             file: "t.yaml", version: 1, resolver: resolver)
        let endpoints = config.table.upstreams[0].endpoints
        #expect(endpoints.map { "\($0.address)" } == ["10.0.0.1:8080", "10.0.0.2:8080", "127.0.0.1:9001"],
                "every IPv4 address once, sorted; IPv6 only for names without IPv4")
        #expect(endpoints.map(\.label) == ["app.internal:8080", "app.internal:8080", "127.0.0.1:9001"])
        #expect(endpoints.map(\.weight) == [3, 3, 1])
    }

    // MARK: Balancer

    /// Picks `n` endpoints of group 0 and counts them by index.
    static func picks(_ table: RoutingTable, _ balancer: inout BalancerState, _ n: Int) -> [Int] {
        var counts = [Int](repeating: 0, count: table.upstreams[0].endpoints.count)
        for _ in 0..<n { counts[Int(balancer.pick(group: 0, in: table))] += 1 }
        return counts
    }

    @Test func unavailableEndpointsAreSkippedAndPanicBalancesOverAll() throws {
        let table = try #require(mustLoad(Self.yaml(Self.fourEndpoints))).table
        let health = EndpointHealth(capacity: 16, workers: 1)
        let slots = health.assign(table)
        var balancer = BalancerState(table: table, health: health, slots: slots, worker: 0)
        #expect(Self.picks(table, &balancer, 400) == [100, 100, 100, 100])
        // One failing its check, one ejected: the two others take everything.
        _ = health.setDownByCheck(slots[1], true)
        health.eject(slots[2], until: .max, timesEjected: 1)
        #expect(health.unavailableCount == 2)
        _ = health.setDownByCheck(slots[2], true)
        #expect(health.unavailableCount == 2, "a second flag on the same endpoint counts once")
        _ = health.setDownByCheck(slots[2], false)
        #expect(balancer.filter(group: 0, in: table) == .availableOnly)
        #expect(Self.picks(table, &balancer, 400) == [200, 0, 0, 200])
        #expect(health.state(slots[0])?.panicPicks == 0)
        // Three of four out: panic mode, balanced over all four, every pick counted.
        _ = health.setDownByCheck(slots[3], true)
        #expect(balancer.filter(group: 0, in: table) == .panic)
        #expect(Self.picks(table, &balancer, 400) == [100, 100, 100, 100])
        #expect(slots.compactMap { health.state($0)?.panicPicks }.reduce(0, +) == 400)
        // Back: all of them again, no panic.
        _ = health.setDownByCheck(slots[1], false)
        _ = health.setDownByCheck(slots[3], false)
        health.endEjection(slots[2], now: 1)
        #expect(balancer.filter(group: 0, in: table) == .all)
        #expect(Self.picks(table, &balancer, 400) == [100, 100, 100, 100])
        #expect(health.unavailableCount == 0, "the pick's one-load fast path is back")
    }

    @Test func aRetryPrefersAnAvailableUntriedEndpoint() throws {
        let table = try #require(mustLoad(Self.yaml(Self.fourEndpoints))).table
        let health = EndpointHealth(capacity: 16, workers: 1)
        let slots = health.assign(table)
        var balancer = BalancerState(table: table, health: health, slots: slots, worker: 0)
        _ = health.setDownByCheck(slots[1], true)
        for _ in 0..<8 {
            let e = try #require(table.alternateEndpoint(upstream: 0, tried: 1 << 0, balancer: &balancer))
            #expect(e == 2 || e == 3)
        }
        // Every available one tried: an unavailable untried one is still better than nothing.
        #expect(table.alternateEndpoint(upstream: 0, tried: 0b1101, balancer: &balancer) == 1)
        #expect(table.alternateEndpoint(upstream: 0, tried: 0b1111, balancer: &balancer) == nil)
    }

    /// An endpoint removed from the config while its health check had it down no longer counts
    /// as unavailable (nothing checks it any more; left set, every pick would take the slow path).
    @Test func aRemovedEndpointDownByCheckStopsCountingAsUnavailable() throws {
        let four = try #require(mustLoad(Self.yaml(Self.fourEndpoints))).table
        let three = try #require(mustLoad(Self.yaml(#"{ endpoints: ["127.0.0.1:9001", "127.0.0.1:9003", "127.0.0.1:9004"] }"#))).table
        let health = EndpointHealth(capacity: 16, workers: 1)
        let slots = health.assign(four)
        _ = health.setDownByCheck(slots[1], true)
        #expect(health.unavailableCount == 1)
        health.assign(three)
        #expect(health.unavailableCount == 0)
        // Back in the config, it starts up until its checks say otherwise.
        let again = health.assign(four)
        #expect(again[1] == slots[1])
        #expect(health.isAvailable(again[1]))
    }

    /// A fallback's baseline endpoint is picked by the baseline group's `balance`: with
    /// least_request, the busy endpoint is avoided (before, the baseline pick was round robin).
    @Test func aFallbackPicksTheBaselineEndpointByItsGroupsBalance() throws {
        let yaml = """
            listeners: [{ name: public, address: 127.0.0.1:8080 }]
            upstreams:
              stable: { endpoints: ["127.0.0.1:9001", "127.0.0.1:9002"], balance: least_request }
              canary: { endpoints: ["127.0.0.1:9003"] }
            routes:
              - { name: web, match: { path_prefix: / }, split: { stable: 90, canary: 10 }, baseline: stable, sticky: none, fallback_to_baseline: true }
            """
        let table = try #require(mustLoad(yaml)).table
        let stable = Int32(try #require(table.upstreams.firstIndex { $0.name == "stable" }))
        let canary = Int32(try #require(table.upstreams.firstIndex { $0.name == "canary" }))
        let route = table.routes[0]
        let canaryCohort = Int32(try #require(route.cohorts.firstIndex { $0.name == "canary" }))
        table.load.addInFlight(flat: table.flatEndpoint(upstream: stable, endpoint: 0), 5)
        var balancer = BalancerState(table: table)
        let failed = RouteDecision(action: .forward, route: 0, cohort: canaryCohort, upstream: canary, endpoint: 0)
        for i in 0..<20 {
            let d = try #require(table.baselineDecision(for: failed, entropy: UInt64(i) << 40, balancer: &balancer))
            #expect(d.upstream == stable && d.endpoint == 1, "pick \(i): \(d.endpoint)")
        }
    }

    /// Choosing a retry's alternate does not move the round robin: the first tries keep their
    /// order (before, each retry advanced it, so with two endpoints every request's first try went
    /// to the endpoint that had just failed).
    @Test func aRetryDoesNotMoveTheRoundRobin() throws {
        let table = try #require(mustLoad(Self.yaml(Self.fourEndpoints))).table
        var balancer = BalancerState(table: table)
        var firstTries: [Int32] = []
        for _ in 0..<8 {
            let e = balancer.pick(group: 0, in: table)
            firstTries.append(e)
            let alternate = try #require(table.alternateEndpoint(upstream: 0, tried: 1 << UInt64(e), balancer: &balancer))
            #expect(alternate != e)
        }
        #expect(firstTries == [0, 1, 2, 3, 0, 1, 2, 3])
    }

    @Test func healthStateCarriesOverToTheNextTableByUpstreamAndAddress() throws {
        let first = try #require(mustLoad(Self.yaml(Self.fourEndpoints))).table
        let health = EndpointHealth(capacity: 16, workers: 2)
        let slots = health.assign(first)
        health.eject(slots[1], until: .max, timesEjected: 1)
        _ = health.setDownByCheck(slots[3], true)
        #expect(health.recordFailure(slot: slots[0], worker: 1) == false)
        // A reload that drops 9001, reorders the rest and adds 9005.
        let second = try #require(mustLoad(Self.yaml(#"{ endpoints: ["127.0.0.1:9004", "127.0.0.1:9005", "127.0.0.1:9002"], health_check: {} }"#))).table
        let next = health.assign(second)
        #expect(next[0] == slots[3] && next[2] == slots[1], "same upstream and address, same slot")
        #expect(!Set(slots).contains(next[1]), "a new endpoint gets a new slot")
        var balancer = BalancerState(table: second, health: health, slots: next, worker: 0)
        #expect(Self.picks(second, &balancer, 10) == [0, 10, 0] || balancer.filter(group: 0, in: second) == .panic)
        #expect(balancer.filter(group: 0, in: second) == .panic, "two of three out")
        #expect(health.state(next[2])?.ejections == 1)
        // A group without a health check clears the check flag on its endpoints.
        let third = try #require(mustLoad(Self.yaml(#"{ endpoints: ["127.0.0.1:9004"] }"#))).table
        let last = health.assign(third)
        #expect(last[0] == slots[3])
        #expect(health.isAvailable(last[0]))
    }

    @Test func slotsOfRemovedEndpointsAreReusedWhenFull() throws {
        let health = EndpointHealth(capacity: 2, workers: 1)
        let a = try #require(mustLoad(Self.yaml(#"{ endpoints: ["127.0.0.1:9001", "127.0.0.1:9002"] }"#))).table
        let sa = health.assign(a)
        health.eject(sa[0], until: .max, timesEjected: 1)
        let b = try #require(mustLoad(Self.yaml(#"{ endpoints: ["127.0.0.1:9002", "127.0.0.1:9003"] }"#))).table
        let sb = health.assign(b)
        #expect(sb == [sa[1], sa[0]], "9003 takes 9001's freed slot")
        #expect(health.state(sb[1])?.ejected == false && health.state(sb[1])?.ejections == 0, "and starts clean")
        #expect(health.unavailableCount == 0)
        let c = try #require(mustLoad(Self.yaml(#"{ endpoints: ["127.0.0.1:9002", "127.0.0.1:9003", "127.0.0.1:9004"] }"#))).table
        #expect(health.assign(c)[2] == -1, "beyond capacity: untracked")
        var balancer = BalancerState(table: c, health: health, slots: health.current!.slots, worker: 0)
        #expect(Self.picks(c, &balancer, 3) == [1, 1, 1])
    }

    @Test func theEndpointsReportMarksEjectedAndUnhealthyEndpoints() throws {
        let table = try #require(mustLoad(Self.yaml(Self.fourEndpoints))).table
        let health = EndpointHealth(capacity: 16, workers: 1)
        let slots = health.assign(table)
        health.eject(slots[1], until: 5_000_000_000, timesEjected: 1)
        _ = health.setDownByCheck(slots[2], true)
        _ = health.setDownByCheck(slots[3], true)
        _ = health.recordFailure(slot: slots[0], worker: 0)
        let report = EndpointsReport.build(health, now: 2_500_000_000)
        let group = try #require(report.upstreams.first)
        #expect(group.upstream == "app" && group.panic, "one of four available")
        #expect(group.endpoints.map(\.state) == ["up", "ejected", "unhealthy", "unhealthy"])
        #expect(group.endpoints[1].ejectedForSeconds == 2.5 && group.endpoints[1].ejections == 1)
        #expect(group.endpoints[0].requests == 1 && group.endpoints[0].errors == 1 && group.endpoints[0].consecutiveFailures == 1)
        let text = report.text
        #expect(text.contains("app [panic]"))
        #expect(text.contains("DOWN: ejected (2.5s left)"))
        #expect(text.contains("DOWN: unhealthy"))
        let exposition = EndpointExposition.render(health)
        #expect(exposition.contains("sluice_upstream_endpoint_up{upstream=\"app\",endpoint=\"127.0.0.1:9002\"} 0"))
        #expect(exposition.contains("sluice_upstream_endpoint_up{upstream=\"app\",endpoint=\"127.0.0.1:9001\"} 1"))
        #expect(exposition.contains("sluice_upstream_panic{upstream=\"app\"} 1"))
        #expect(exposition.contains("# TYPE sluice_upstream_ejections_total counter"))
    }

    /// A group with circuit breakers or least_request shows its counts and limits, and each
    /// endpoint's attempts in flight; a plain group shows neither.
    @Test func theEndpointsReportShowsCircuitBreakerCounts() throws {
        let yaml = """
            listeners: [{ name: public, address: 127.0.0.1:8080 }]
            upstreams:
              app: { endpoints: ["127.0.0.1:9001", "127.0.0.1:9002"], balance: least_request, max_requests: 10, max_connections: 4 }
              plain: { endpoints: ["127.0.0.1:9003"] }
            routes:
              - { name: web, match: { path_prefix: / }, upstream: app, sticky: none }
              - { name: other, match: { path_prefix: /other }, upstream: plain, sticky: none }
            """
        let table = try #require(mustLoad(yaml)).table
        let app = try #require(table.upstreams.firstIndex { $0.name == "app" })
        let health = EndpointHealth(capacity: 16, workers: 1)
        health.assign(table)
        #expect(table.load.tryAcquire(.requests, group: app))
        #expect(table.load.tryAcquire(.requests, group: app))
        #expect(table.load.tryAcquire(.connections, group: app))
        table.load.addInFlight(flat: table.flatEndpoint(upstream: Int32(app), endpoint: 1), 2)
        let report = EndpointsReport.build(health)
        let a = try #require(report.upstreams.first { $0.upstream == "app" })
        #expect(a.load == EndpointsReport.Load(balance: "least_request", requests: 2, maxRequests: 10, pending: 0, maxPending: 0,
                                               connections: 1, maxConnections: 4))
        #expect(a.endpoints.map(\.inFlight) == [0, 2])
        let plain = try #require(report.upstreams.first { $0.upstream == "plain" })
        #expect(plain.load == nil && plain.endpoints.allSatisfy { $0.inFlight == nil })
        let json = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
        #expect(json.contains("\"max_requests\":10") && json.contains("\"in_flight\":2"))
    }

    @Test func anAddressListedTwiceIsOneSeries() throws {
        let table = try #require(mustLoad(Self.yaml(#"{ endpoints: ["127.0.0.1:9001", "127.0.0.1:9001", "127.0.0.1:9002"] }"#))).table
        let health = EndpointHealth(capacity: 16, workers: 1)
        health.assign(table)
        let exposition = EndpointExposition.render(health)
        for family in ["sluice_upstream_endpoint_up", "sluice_upstream_ejections_total", "sluice_upstream_endpoint_requests_total",
                       "sluice_upstream_endpoint_errors_total"] {
            let series = exposition.split(separator: "\n").filter { $0.hasPrefix(family + "{") }
            #expect(series.count == 2 && Set(series).count == 2, "\(series)")
        }
    }

    @Test func leastRequestSkipsUnavailableEndpointsAndCountsEachPanicPickOnce() throws {
        let yaml = Self.yaml(Self.fourEndpoints).replacingOccurrences(of: "app: {", with: "app: { balance: least_request,")
        let table = try #require(mustLoad(yaml)).table
        let health = EndpointHealth(capacity: 16, workers: 1)
        let slots = health.assign(table)
        var balancer = BalancerState(table: table, health: health, slots: slots, worker: 0)
        _ = health.setDownByCheck(slots[2], true)
        var counts = [0, 0, 0, 0]
        for i in 0..<200 { counts[Int(table.pickLeastRequest(group: 0, tieBreak: (UInt64(i) &* 0x9E37_79B9_7F4A_7C15) >> 40, balancer: &balancer))] += 1 }
        #expect(counts[2] == 0 && counts.reduce(0, +) == 200, "\(counts)")
        _ = health.setDownByCheck(slots[0], true)
        _ = health.setDownByCheck(slots[1], true)
        counts = [0, 0, 0, 0]
        for i in 0..<200 { counts[Int(table.pickLeastRequest(group: 0, tieBreak: (UInt64(i) &* 0x9E37_79B9_7F4A_7C15) >> 40, balancer: &balancer))] += 1 }
        #expect(counts.allSatisfy { $0 > 0 }, "panic: all four are candidates: \(counts)")
        #expect(slots.compactMap { health.state($0)?.panicPicks }.reduce(0, +) == 200, "one panic pick per request")
    }
}
