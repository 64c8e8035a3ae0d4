import Testing
import SluiceCore

// The pure retry rules (RetryPolicy.decide), the budget (RetryBudget) and the machine's
// `.retryable` transitions, with exact expectations.

private func options(_ spec: RetrySpec = RetrySpec(), another: Bool = true, baseline: Bool = false, budget: Bool = true,
                     replayable: Bool = true) -> RetryOptions {
    RetryOptions(spec: spec, anotherEndpoint: another, baselineAvailable: baseline, budgetAllows: budget,
                 bodyReplayable: replayable)
}

private func decide(_ cause: RetryCause, _ method: HTTPMethod = .get, started: Bool = false, attempts: Int = 1,
                    fellBack: Bool = false, o: RetryOptions = options()) -> RetryDecision {
    RetryPolicy.decide(cause, method: method, responseStarted: started, attemptsMade: attempts, fellBack: fellBack, options: o)
}

@Suite struct RetryPolicyTests {
    @Test func idempotentMethodsAreRetriedOnResponsesAndResetsOthersNever() {
        for m in [HTTPMethod.get, .head, .options, .trace, .put, .delete] {
            #expect(decide(.status(503), m) == .otherEndpoint, "\(m)")
            #expect(decide(.reset, m) == .otherEndpoint, "\(m)")
            #expect(decide(.timeout, m) == .otherEndpoint, "\(m)")
        }
        for m in [HTTPMethod.post, .patch, .connect] {
            #expect(decide(.status(503), m) == .giveUp, "\(m)")
            #expect(decide(.reset, m) == .giveUp, "\(m)")
            #expect(decide(.timeout, m) == .giveUp, "\(m)")
            // Nothing reached the endpoint: a POST may go again.
            #expect(decide(.connectFailure(.connectRefused), m) == .otherEndpoint, "\(m)")
        }
    }

    @Test func nothingIsRetriedOnceTheResponseStartedOrTheBodyCannotBeSentAgain() {
        #expect(decide(.reset, started: true) == .giveUp)
        #expect(decide(.status(502), started: true) == .giveUp)
        #expect(decide(.status(502), o: options(replayable: false)) == .giveUp)
        #expect(decide(.connectFailure(.connectTimeout), o: options(replayable: false)) == .giveUp)
    }

    @Test func retryOnAttemptsBudgetAndTheSameEndpoint() {
        let only503 = RetrySpec(retryOn: RetrySpec.on503)
        #expect(decide(.status(503), o: options(only503)) == .otherEndpoint)
        #expect(decide(.status(502), o: options(only503)) == .giveUp)
        #expect(decide(.status(500), o: options()) == .giveUp, "500 is never a retry condition")
        #expect(decide(.reset, o: options(only503)) == .giveUp)
        // attempts counts the first one: 2 allows one retry.
        #expect(decide(.status(503), attempts: 2) == .giveUp)
        #expect(decide(.status(503), attempts: 2, o: options(RetrySpec(attempts: 3))) == .otherEndpoint)
        #expect(decide(.status(503), o: options(budget: false)) == .giveUp)
        #expect(decide(.connectFailure(.connectRefused), o: options(budget: false)) == .otherEndpoint, "connect failures are outside the budget")
        #expect(decide(.status(503), o: options(another: false)) == .sameEndpoint)
    }

    @Test func fallbackGoesOnceToTheBaselineForIdempotentRequests() {
        let fallback = RetrySpec.fallbackOnly()
        #expect(decide(.status(503), o: options(fallback, baseline: true)) == .baseline)
        #expect(decide(.status(503), o: options(fallback, baseline: true, budget: false)) == .baseline, "not budgeted")
        #expect(decide(.reset, o: options(fallback, baseline: true)) == .baseline)
        #expect(decide(.status(503), .post, o: options(fallback, baseline: true)) == .giveUp)
        #expect(decide(.status(503), fellBack: true, o: options(fallback, baseline: true)) == .giveUp, "once")
        #expect(decide(.status(503), o: options(fallback, baseline: false)) == .giveUp, "the baseline itself failed")
        #expect(decide(.status(503), started: true, o: options(fallback, baseline: true)) == .giveUp)
        var only503 = RetrySpec(retryOn: RetrySpec.on503)
        only503.fallbackToBaseline = true
        #expect(decide(.status(502), o: options(only503, baseline: true)) == .giveUp, "retry_on applies to the fallback")
    }

    @Test func budgetAllowsAPercentageOfRequestsOverTenSecondsPlusThreePerSecond() {
        let table = RoutingTable(version: 1, upstreams: [
            UpstreamGroup(name: "a", endpoints: [Endpoint(address: .v4(0x7f00_0001, port: 1), label: "127.0.0.1:1")]),
        ], routes: [RouteSpec(name: "web", cohorts: [CohortSpec(name: "a", upstream: 0, weight: 10_000)])])
        var b = RetryBudget()
        b.use(table)
        let s: UInt64 = 1_000_000_000
        // No requests: the floor alone, 30 per window.
        var granted = 0
        for _ in 0..<100 where b.takeRetry(route: 0, percent: 20, nanos: 100 * s) { granted += 1 }
        #expect(granted == 30)
        // 1000 requests in the window: 20% = 200 more.
        for _ in 0..<1000 { b.noteRequest(route: 0, nanos: 101 * s) }
        granted = 0
        for _ in 0..<1000 where b.takeRetry(route: 0, percent: 20, nanos: 101 * s) { granted += 1 }
        #expect(granted == 200)
        // Ten seconds later the window has moved past all of it: the floor again.
        granted = 0
        for _ in 0..<100 where b.takeRetry(route: 0, percent: 20, nanos: 112 * s) { granted += 1 }
        #expect(granted == 30)
        let unknown = b.takeRetry(route: 5, percent: 20, nanos: 112 * s)
        #expect(!unknown, "an unknown route has no budget")
    }

    @Test func machineCarriesTheDecisionOut() {
        var c = ConnectionState()
        var x = ExchangeState()
        let limits = ExchangeLimits()
        var f = RequestFacts()
        f.method = .get
        let a_route = ExchangeMachine.handle(.headParsed(f), connection: &c, exchange: &x, limits: limits)
        #expect(a_route == .route)
        _ = ExchangeMachine.handle(.routed(.forward(upgrade: false)), connection: &c, exchange: &x, limits: limits)
        let a_retryElsewhere = ExchangeMachine.handle(.retryable(.status(503), options()), connection: &c, exchange: &x, limits: limits)
        #expect(a_retryElsewhere == .retryElsewhere)
        #expect(x.attempts == 2)
        // Out of attempts: an answered status goes to the client as it is.
        let a_none = ExchangeMachine.handle(.retryable(.status(503), options()), connection: &c, exchange: &x, limits: limits)
        #expect(a_none == .none)
        #expect(c.phase == .exchange)
        // A reset with no attempt left is a 502.
        guard case .respond(let r, let reason) = ExchangeMachine.handle(.retryable(.reset, options()), connection: &c,
                                                                       exchange: &x, limits: limits) else {
            Issue.record("expected a generated response")
            return
        }
        #expect(r.status == 502 && reason == .reset)
        #expect(c.phase == .awaitingHead)

        // Fallback: once, then the baseline's failure is final (a timeout: 504).
        x = ExchangeState()
        _ = ExchangeMachine.handle(.headParsed(f), connection: &c, exchange: &x, limits: limits)
        _ = ExchangeMachine.handle(.routed(.forward(upgrade: false)), connection: &c, exchange: &x, limits: limits)
        let fb = options(RetrySpec.fallbackOnly(), baseline: true)
        let a_fallback = ExchangeMachine.handle(.retryable(.status(503), fb), connection: &c, exchange: &x, limits: limits)
        #expect(a_fallback == .fallback)
        #expect(x.fellBack)
        guard case .respond(let r2, _) = ExchangeMachine.handle(.retryable(.timeout, fb), connection: &c, exchange: &x,
                                                               limits: limits) else {
            Issue.record("expected a generated response")
            return
        }
        #expect(r2.status == 504)
    }
}

@Suite struct UpstreamLoadTests {
    @Test func limitsAdmitUpToTheLimitAndCountsComeBack() {
        let load = UpstreamLoad(specs: [UpstreamLoadSpec(maxConnections: 2, maxPending: 1, maxRequests: 3), UpstreamLoadSpec()],
                                endpoints: 3)
        #expect(load.isTracked(0) && !load.isTracked(1) && !load.isTracked(7))
        let admitted = (0..<5).map { _ in load.tryAcquire(.requests, group: 0) }
        #expect(admitted == [true, true, true, false, false])
        #expect(load.value(.requests, group: 0) == 3, "a refused acquire is undone")
        load.release(.requests, group: 0)
        let again = load.tryAcquire(.requests, group: 0)
        #expect(again)
        let pending = [load.tryAcquire(.pending, group: 0), load.tryAcquire(.pending, group: 0)]
        #expect(pending == [true, false])
        let unlimited = (0..<100).allSatisfy { _ in load.tryAcquire(.requests, group: 1) }
        #expect(unlimited, "0 means no limit")
        load.addInFlight(flat: 2, 1)
        load.addInFlight(flat: 2, 1)
        load.addInFlight(flat: 2, -1)
        #expect(load.inFlight(flat: 2) == 1 && load.inFlight(flat: 0) == 0 && load.inFlight(flat: 99) == 0)
    }

    @Test func leastRequestChoosesTheLessBusyAndBreaksTiesWithEntropy() {
        #expect(LeastRequest.choose(0, 5, 1, 2, tieBreak: 0) == 1)
        #expect(LeastRequest.choose(0, 1, 1, 2, tieBreak: 1) == 0)
        #expect(LeastRequest.choose(0, 3, 1, 3, tieBreak: 0) == 0)
        #expect(LeastRequest.choose(0, 3, 1, 3, tieBreak: 1) == 1)
    }
}

@Suite struct FallbackDecisionTests {
    static let table = RoutingTable(version: 1, upstreams: [
        UpstreamGroup(name: "stable", endpoints: [Endpoint(address: .v4(0x7f00_0001, port: 1), label: "127.0.0.1:1"),
                                                  Endpoint(address: .v4(0x7f00_0001, port: 2), label: "127.0.0.1:2")]),
        UpstreamGroup(name: "canary", endpoints: [Endpoint(address: .v4(0x7f00_0001, port: 3), label: "127.0.0.1:3")]),
    ], routes: [RouteSpec(name: "web", cohorts: [CohortSpec(name: "stable", upstream: 0, weight: 9_000),
                                                 CohortSpec(name: "canary", upstream: 1, weight: 1_000)],
                          baseline: 0, cohortHeader: "X-Cohort")])

    @Test func theBaselineDecisionKeepsTheRouteAndPicksABaselineEndpoint() throws {
        var balancer = BalancerState(table: Self.table)
        let canary = RouteDecision(action: .forward, route: 0, cohort: 1, upstream: 1, endpoint: 0)
        #expect(Self.table.hasOtherBaseline(canary))
        let d = try #require(Self.table.baselineDecision(for: canary, balancer: &balancer))
        #expect(d.route == 0 && d.cohort == 0 && d.upstream == 0 && (0...1).contains(d.endpoint))
        let stable = RouteDecision(action: .forward, route: 0, cohort: 0, upstream: 0, endpoint: 1)
        #expect(!Self.table.hasOtherBaseline(stable), "the baseline has nowhere to fall back to")
        #expect(Self.table.baselineDecision(for: stable, balancer: &balancer) == nil)
        #expect(Self.table.baselineDecision(for: .notFound, balancer: &balancer) == nil)
    }

    @Test func theCohortHeaderIsRewrittenInTheSerializedHead() {
        var head = Array("GET / HTTP/1.1\r\nHost: x\r\nX-Cohort: canary\r\nAccept: */*\r\n\r\n".utf8)
        #expect(Self.table.replaceCohortHeader(in: &head, route: 0, from: 1, to: 0))
        #expect(String(decoding: head, as: UTF8.self) == "GET / HTTP/1.1\r\nHost: x\r\nX-Cohort: stable\r\nAccept: */*\r\n\r\n")
        var without = Array("GET /X-Cohort: canary HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        let before = without
        // Only a field line counts: the request line's text is never touched.
        let rewrote = Self.table.replaceCohortHeader(in: &without, route: 0, from: 1, to: 0)
        #expect(!rewrote && without == before)
        #expect(!Self.table.replaceCohortHeader(in: &head, route: 3, from: 1, to: 0))
    }

    @Test func retryableOutsideAnExchangeIsIgnored() {
        var c = ConnectionState()
        var x = ExchangeState()
        let o = RetryOptions(spec: RetrySpec(), anotherEndpoint: true, baselineAvailable: true, budgetAllows: true, bodyReplayable: true)
        let idle = ExchangeMachine.handle(.retryable(.status(503), o), connection: &c, exchange: &x, limits: ExchangeLimits())
        #expect(idle == .none && c.phase == .awaitingHead)
    }
}
