import Foundation
import SluiceControl
import SluiceCore
import Synchronization
import Testing

/// Fault drills: the config's `fault:`, the pure decision, runtime drills (`FaultController`).
@Suite struct FaultTests {
    /// MurmurHash3 fmix64, written again here: the fault roll is `fmix64(entropy ^ C) % 10000`.
    static func roll(_ entropy: UInt64, _ c: UInt64 = 0x6a09_e667_f3bc_c909) -> Int {
        var k = entropy ^ c
        k ^= k >> 33
        k = k &* 0xff51_afd7_ed55_8ccd
        k ^= k >> 33
        k = k &* 0xc4ce_b9fe_1a85_ec53
        k ^= k >> 33
        return Int(k % 10_000)
    }

    static let yaml = baseYAML + """
        routes:
          - name: web
            baseline: stable
            sticky: { header: X-User-Id }
            rules:
              - match: { header: { name: X-Canary, value: always } }
                cohort: canary
                fault: { abort: { status: 500, percent: 100 }, when_header: X-Drill }
            split: { stable: 50, canary: 50 }
            fault:
              - { cohort: canary, abort: { status: 503, percent: 25 }, count_in_gates: false }
        """

    @Test func configFaultAbortsExactlyTheRolledShareOfItsCohort() throws {
        let t = try #require(mustLoad(Self.yaml)).table
        // user-0 → bucket 7650 (canary); 0123456789abcdef → 2966 (stable).
        let canaryUser = TestRequest(headers: [("X-User-Id", "user-0")])
        let stableUser = TestRequest(headers: [("X-User-Id", "0123456789abcdef")])
        var aborted = 0
        for e: UInt64 in 0..<2000 {
            let d = decide(t, canaryUser, entropy: e &* 0x9e37_79b9_7f4a_7c15)
            let expectAbort = Self.roll(e &* 0x9e37_79b9_7f4a_7c15) < 2500
            #expect(d.cohort == 1 && d.route == 0)
            if expectAbort {
                aborted += 1
                #expect(d.action == .respond && d.fault == .abort && d.faultOutsideGates && d.upstream == -1)
                #expect(t.responses[Int(d.response)] == DirectResponse(status: 503, body: Array("fault injected by sluice: 503\n".utf8)))
            } else {
                #expect(d.action == .forward && d.fault == .none && !d.faultOutsideGates && d.upstream == 1)
            }
            // The stable cohort is never touched.
            #expect(decide(t, stableUser, entropy: e).fault == .none)
        }
        #expect(abs(aborted - 500) < 100, "\(aborted) of 2000 at 25%")
    }

    @Test func ruleFaultAppliesOnlyWithItsHeaderAndWinsOverTheRouteFault() throws {
        let t = try #require(mustLoad(Self.yaml)).table
        let drill = decide(t, TestRequest(headers: [("X-Canary", "always"), ("X-Drill", "1")]), entropy: 42)
        #expect(drill.action == .respond && drill.fault == .abort && !drill.faultOutsideGates && drill.cohort == 1)
        #expect(t.responses[Int(drill.response)].status == 500)
        // Without the header the rule's fault does not cover it, and the route's canary fault does not either
        // (the rule's fault is the rule's only): only the route faults apply, at 25%.
        for e: UInt64 in 0..<200 {
            let d = decide(t, TestRequest(headers: [("X-Canary", "always")]), entropy: e)
            #expect((d.fault == .abort) == (Self.roll(e) < 2500))
            if d.fault == .abort { #expect(t.responses[Int(d.response)].status == 503) }
        }
    }

    @Test func aRuleDrillStopsWhenAnAbortPointsTheRuleAtTheBaseline() throws {
        let config = try #require(mustLoad(Self.yaml))
        let request = TestRequest(headers: [("X-Canary", "always"), ("X-Drill", "1")])
        #expect(decide(config.table, request, entropy: 9).fault == .abort)
        let aborted = try config.table.applying([.abort(route: "web")], version: 2)
        let d = decide(aborted, request, entropy: 9)
        #expect(d.action == .forward && d.cohort == 0 && d.fault == .none)
    }

    @Test func runtimeFaultsComeFirstAndKeepTheConfigs() throws {
        let t = try #require(mustLoad(Self.yaml)).table
        let f = t.applyingFaults([RuntimeFault(route: "web", cohort: "canary", abortStatus: 502, percent: 10_000)])
        #expect(f.version == t.version)
        let d = decide(f, TestRequest(headers: [("X-User-Id", "user-0")]), entropy: 1)
        #expect(d.fault == .abort && f.responses[Int(d.response)].status == 502 && !d.faultOutsideGates)
        let specs = f.faultSpecs(route: 0)
        #expect(specs.route.map(\.runtime) == [true, false] && specs.route.map(\.abortStatus) == [502, 503])
        #expect(specs.rules.map { $0?.abortStatus } == [500])
        // Replacing the runtime faults drops the old ones, the config's stay.
        let back = f.applyingFaults([])
        #expect(back.faultSpecs(route: 0).route.map(\.abortStatus) == [503])
        #expect(decide(back, TestRequest(headers: [("X-Canary", "always"), ("X-Drill", "1")]), entropy: 3).fault == .abort)
        // Unknown routes or cohorts are skipped.
        #expect(t.applyingFaults([RuntimeFault(route: "nope", cohort: nil, abortStatus: 503, percent: 100)]).faultSpecs(route: 0).route.count == 1)
    }

    @Test(arguments: [
        ("fault: { abort: { status: 503, percent: 0 } }", "a fault at 0% injects nothing"),
        ("fault: { abort: { status: 503, percent: 101 } }", "percentage `101` is over 100"),
        ("fault: { abort: { status: 99, percent: 5 } }", "fault.abort.status"),
        ("fault: { abort: { status: 503 } }", "percent"),
        ("fault: { delay: { duration: 0s, percent: 10 } }", "must be longer than 0"),
        ("fault: { delay: { duration: 2m, percent: 10 } }", "too long"),
        ("fault: { delay: { percent: 10 } }", "duration"),
        ("fault: { when_header: X-Drill }", "a fault needs `abort`"),
        ("fault: { cohort: canry, abort: { status: 503, percent: 5 } }", "cohort `canry` is not a cohort of this route"),
        ("fault: { abort: { status: 503, percent: 5 }, when_header: \"a b\" }", "`a b` is not a valid header name"),
        ("fault: { abort: { status: 503, percent: 5 }, colour: red }", "unknown key `colour`"),
    ])
    func configErrors(fault: String, message: String) {
        let problems = diagnostics(baseYAML + """
            routes:
              - name: web
                split: { stable: 95, canary: 5 }
                \(fault)
            """)
        #expect(problems.contains { $0.description.contains(message) }, "\(problems.map(\.description))")
    }

    @Test func ruleFaultErrors() {
        let onRespond = diagnostics(baseYAML + """
            routes:
              - name: web
                split: { stable: 95, canary: 5 }
                rules:
                  - match: { path: /x }
                    respond: { status: 200 }
                    fault: { abort: { status: 503, percent: 5 } }
            """)
        #expect(onRespond.map(\.message) == ["a rule that answers directly forwards nothing to inject faults into"])
        let withCohort = diagnostics(baseYAML + """
            routes:
              - name: web
                split: { stable: 95, canary: 5 }
                rules:
                  - match: { path: /x }
                    cohort: canary
                    fault: { cohort: canary, abort: { status: 503, percent: 5 } }
            """)
        #expect(withCohort.map(\.message) == ["a rule's fault applies to the cohort the rule forwards to"])
    }

    // MARK: Runtime drills

    final class ManualClock: Sendable {
        let value = Mutex<UInt64>(1_000_000_000_000)
        var now: UInt64 { value.withLock { $0 } }
        func advance(seconds: UInt64) { value.withLock { $0 += seconds * 1_000_000_000 } }
    }

    @Test func drillsStartListExpireAndEndWithTheirCohort() throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        let clock = ManualClock()
        let published = PublishRecorder()
        let faults = FaultController(routing: rig.controller, events: rig.events, monotonic: { clock.now },
                                     wall: { 1_800_000_000_000_000_000 + clock.now })
        faults.attach { published.record($0) }
        let fault = RuntimeFault(route: "web", cohort: "canary", abortStatus: 503, percent: 10_000)
        let started = try faults.start(fault, duration: 120_000_000_000, cause: "drill")
        #expect(started.remainingSeconds == 120)
        #expect(started.summary.hasPrefix("web/canary: abort 503 for 100% of requests, 120s left (until 2027-"))
        // The workers got the table with the drill: every canary decision is an abort.
        let served = try #require(published.all.last)
        #expect(served.version == 1 && faults.table === served)
        let canary = decide(served, TestRequest(headers: [("X-Canary", "always")]), entropy: 5)
        #expect(canary.fault == .abort && canary.cohort == 1)
        clock.advance(seconds: 60)
        #expect(faults.active().map(\.remainingSeconds) == [60])
        faults.expire()
        #expect(faults.active().count == 1, "not yet")
        // A routing change keeps the drill on the new table.
        _ = try rig.controller.setSplit(route: "web", weights: split(["stable": 50, "canary": 50]), cause: "ramp")
        #expect(published.all.last!.version == 2)
        #expect(decide(published.all.last!, TestRequest(headers: [("X-Canary", "always")]), entropy: 5).fault == .abort)
        clock.advance(seconds: 60)
        faults.expire()
        #expect(faults.active().isEmpty)
        #expect(decide(published.all.last!, TestRequest(headers: [("X-Canary", "always")]), entropy: 5).fault == .none)
        let events = rig.events.recent().filter { $0.kind == .fault }
        #expect(events.map { $0.details["action"] } == ["started", "expired"])
        #expect(events[0].cause == "drill" && events[0].details["fault"] == "abort 503 for 100%" && events[0].newVersion == 1)
        // Clearing: none in force is a conflict; a started one ends.
        #expect(throws: ControlError.self) { try faults.clear(route: "web", cohort: nil, cause: "x") }
        _ = try faults.start(fault, duration: 10_000_000_000, cause: "again")
        #expect(try faults.clear(route: "web", cohort: "canary", cause: "done") == [fault])
        #expect(decide(faults.table, TestRequest(headers: [("X-Canary", "always")]), entropy: 5).fault == .none)
        // A reload that removes the cohort ends its drill.
        _ = try faults.start(fault, duration: 10_000_000_000, cause: "again")
        try rig.dir.write("sluice.yaml", baseYAML + "routes:\n  - { name: web, upstream: stable }\n")
        _ = try rig.controller.reloadFromFile(cause: "test")
        #expect(faults.active().isEmpty)
        #expect(rig.events.recent().last { $0.kind == .fault }?.details["action"] == "ended")
    }

    @Test(arguments: [
        (RuntimeFault(route: "nope", cohort: "canary", abortStatus: 503, percent: 500), 60, "unknown route `nope`"),
        (RuntimeFault(route: "web", cohort: "green", abortStatus: 503, percent: 500), 60, "route `web` has no cohort `green`"),
        (RuntimeFault(route: "web", cohort: "canary", abortStatus: 700, percent: 500), 60, "abort status 700"),
        (RuntimeFault(route: "web", cohort: "canary", abortStatus: 503, percent: 0), 60, "percent 0 must be above 0"),
        (RuntimeFault(route: "web", cohort: "canary", abortStatus: 503, percent: 500), 0, "a drill lasts from 1s to 24h"),
        (RuntimeFault(route: "web", cohort: "canary", abortStatus: 503, percent: 500), 90_000, "a drill lasts from 1s to 24h"),
        (RuntimeFault(route: "web", cohort: "canary", abortStatus: 503, percent: 500, whenHeader: "a b"), 60, "not a valid header name"),
    ] as [(RuntimeFault, UInt64, String)])
    func badDrills(fault: RuntimeFault, seconds: UInt64, message: String) throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        let faults = FaultController(routing: rig.controller, events: rig.events)
        do {
            _ = try faults.start(fault, duration: seconds * 1_000_000_000, cause: "x")
            Issue.record("accepted")
        } catch {
            #expect(error.status == 400)
            #expect(error.description.contains(message), "\(error.description)")
        }
        #expect(faults.active().isEmpty && rig.events.recent().allSatisfy { $0.kind != .fault })
    }

    @Test func adminEndpointsAndExplainSeeTheDrill() throws {
        let rig = try AdminControlTests.Rig(token: "t0k")
        defer { rig.stop() }
        let faults = FaultController(routing: rig.controller, events: rig.base.events)
        faults.attach { _ in }
        faults.registerAdminEndpoints(on: rig.admin)
        let body = #"{"cohort": "canary", "abort": 503, "percent": "100", "for": "2m", "cause": "game day"}"#
        #expect(try rig.call("POST", "/admin/routes/web/fault", body).status == 401)
        let ok = try rig.call("POST", "/admin/routes/web/fault", body, token: "t0k")
        #expect(ok.status == 200, "\(ok.text)")
        let report = try JSONDecoder().decode(FaultReport.self, from: Data(ok.body))
        #expect(report.started?.fault == RuntimeFault(route: "web", cohort: "canary", abortStatus: 503, percent: 10_000))
        #expect(report.active.count == 1 && report.active[0].cause == "game day")
        // The drills in force reveal the topology: with a token set, listing them needs it (issue 17).
        #expect(try rig.call("GET", "/admin/faults").status == 401)
        let list = try JSONDecoder().decode(FaultReport.self, from: Data(try rig.call("GET", "/admin/faults", token: "t0k").body))
        #expect(list.active.count == 1 && list.configured == [])
        let explained = try JSONDecoder().decode(ExplainReport.self, from: Data(try rig.call(
            "POST", "/admin/explain", #"{"url": "http://x/", "headers": ["X-Canary: always"]}"#, token: "t0k").body))
        #expect(explained.action == "respond" && explained.status == 503 && explained.cohort == "canary")
        #expect(explained.fault?.hasPrefix("runtime drill (sluice fault): abort 503 for 100%; abort roll ") == true, "\(explained.fault ?? "")")
        #expect(try rig.call("POST", "/admin/routes/web/fault", #"{"cohort": "canary", "percent": 5}"#, token: "t0k").status == 400)
        #expect(try rig.call("POST", "/admin/routes/web/fault", #"{"cohort": "canary", "abort": 503, "percent": 5, "for": "soon"}"#,
                             token: "t0k").status == 400)
        let cleared = try rig.call("POST", "/admin/routes/web/fault/clear", "{}", token: "t0k")
        #expect(cleared.status == 200)
        #expect(try JSONDecoder().decode(FaultReport.self, from: Data(cleared.body)).active.isEmpty)
        #expect(try rig.call("POST", "/admin/routes/web/fault/clear", "{}", token: "t0k").status == 409)
    }
}
