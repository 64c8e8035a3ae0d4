import Foundation
import SluiceControl
import SluiceCore
import Testing

/// Runtime delay drills (`sluice fault ROUTE COHORT --delay 200ms --percent 10 --for 2m`), alone
/// and with an abort: the decision, the listing, the events, expiry and the admin endpoint.
@Suite struct FaultDelayDrillTests {
    @Test func aDelayDrillDelaysItsShareListsItselfAndExpires() throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        let clock = FaultTests.ManualClock()
        let faults = FaultController(routing: rig.controller, events: rig.events, monotonic: { clock.now },
                                     wall: { 1_800_000_000_000_000_000 + clock.now })
        faults.attach { _ in }
        let fault = RuntimeFault.delay(route: "web", cohort: "canary", nanos: 200_000_000, percent: 1_000)
        let started = try faults.start(fault, duration: 120_000_000_000, cause: "latency drill")
        #expect(started.summary.hasPrefix("web/canary: delay 200ms for 10% of requests, 120s left (until "), "\(started.summary)")
        // Exactly the requests whose delay roll is under 1000 are delayed, by 200 ms; none is aborted.
        var delayed = 0
        for e: UInt64 in 0..<2000 {
            let entropy = e &* 0x9e37_79b9_7f4a_7c15
            let d = decide(faults.table, TestRequest(headers: [("X-Canary", "always")]), entropy: entropy)
            #expect(d.action == .forward && d.cohort == 1)
            if FaultTests.roll(entropy, 0xbb67_ae85_84ca_a73b) < 1_000 {
                delayed += 1
                #expect(d.fault == .delay && d.delayNanos == 200_000_000)
            } else {
                #expect(d.fault == .none && d.delayNanos == 0)
            }
        }
        #expect(abs(delayed - 200) < 60, "\(delayed) of 2000 at 10%")
        // Listed (status and `fault list` read this report), and an event.
        let report = FaultReport(active: faults.active(), configured: [])
        #expect(report.text.contains("fault drills in force:\n  web/canary: delay 200ms for 10% of requests, 120s left"), "\(report.text)")
        clock.advance(seconds: 121)
        faults.expire()
        #expect(faults.active().isEmpty)
        #expect(decide(faults.table, TestRequest(headers: [("X-Canary", "always")]), entropy: 0).fault == .none)
        let events = rig.events.recent().filter { $0.kind == .fault }
        #expect(events.map { $0.details["action"] } == ["started", "expired"])
        #expect(events[0].details["fault"] == "delay 200ms for 10%" && events[0].cause == "latency drill")
    }

    @Test func anAbortAndADelayTogetherRollIndependently() throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        let faults = FaultController(routing: rig.controller, events: rig.events)
        faults.attach { _ in }
        let fault = RuntimeFault(route: "web", cohort: "canary", abortStatus: 503, percent: 2_000, delayNanos: 50_000_000, delayPercent: 5_000)
        let started = try faults.start(fault, duration: 60_000_000_000, cause: "x")
        #expect(started.summary.hasPrefix("web/canary: abort 503 for 20%, delay 50ms for 50% of requests"), "\(started.summary)")
        var counts = (abort: 0, delay: 0)
        for e: UInt64 in 0..<1000 {
            let entropy = e &* 0x9e37_79b9_7f4a_7c15
            let d = decide(faults.table, TestRequest(headers: [("X-Canary", "always")]), entropy: entropy)
            // The abort wins when both rolls hit (the request never reaches the upstream).
            if FaultTests.roll(entropy) < 2_000 {
                counts.abort += 1
                #expect(d.fault == .abort && d.action == .respond)
            } else if FaultTests.roll(entropy, 0xbb67_ae85_84ca_a73b) < 5_000 {
                counts.delay += 1
                #expect(d.fault == .delay && d.delayNanos == 50_000_000)
            } else {
                #expect(d.fault == .none)
            }
        }
        #expect(counts.abort > 120 && counts.abort < 280 && counts.delay > 300 && counts.delay < 500, "\(counts)")
        // The JSON round trip keeps both.
        let decoded = try JSONDecoder().decode(RuntimeFault.self, from: JSONEncoder().encode(fault))
        #expect(decoded == fault)
        // An abort-only drill's JSON from an older client (no delay keys) still decodes.
        let old = try JSONDecoder().decode(RuntimeFault.self, from: Data(
            #"{"route": "web", "cohort": "canary", "abort_status": 503, "percent": 500, "count_in_gates": true}"#.utf8))
        #expect(old == RuntimeFault(route: "web", cohort: "canary", abortStatus: 503, percent: 500))
    }

    @Test(arguments: [
        (RuntimeFault(route: "web", cohort: "canary", abortStatus: nil, percent: 500), "needs an abort status or a delay"),
        (RuntimeFault.delay(route: "web", cohort: "canary", nanos: 0, percent: 500), "a delay is from 1ms to 60s"),
        (RuntimeFault.delay(route: "web", cohort: "canary", nanos: 61_000_000_000, percent: 500), "a delay is from 1ms to 60s"),
        (RuntimeFault.delay(route: "web", cohort: "canary", nanos: 1_000_000, percent: 0), "delay percent 0 must be above 0"),
        (RuntimeFault.delay(route: "web", cohort: "canary", nanos: 1_000_000, percent: 10_001), "delay percent 100.01 must be above 0"),
        (RuntimeFault.delay(route: "web", cohort: "green", nanos: 1_000_000, percent: 500), "route `web` has no cohort `green`"),
    ] as [(RuntimeFault, String)])
    func badDelayDrills(fault: RuntimeFault, message: String) throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        let faults = FaultController(routing: rig.controller, events: rig.events)
        do {
            _ = try faults.start(fault, duration: 60_000_000_000, cause: "x")
            Issue.record("accepted")
        } catch {
            #expect(error.status == 400)
            #expect(error.description.contains(message), "\(error.description)")
        }
        #expect(faults.active().isEmpty && rig.events.recent().allSatisfy { $0.kind != .fault })
    }

    @Test func theAdminEndpointTakesADelay() throws {
        let rig = try AdminControlTests.Rig(token: nil)
        defer { rig.stop() }
        let faults = FaultController(routing: rig.controller, events: rig.base.events)
        faults.attach { _ in }
        faults.registerAdminEndpoints(on: rig.admin)
        let ok = try rig.call("POST", "/admin/routes/web/fault", #"{"cohort": "canary", "delay": "250ms", "percent": "10", "for": "1m"}"#)
        #expect(ok.status == 200, "\(ok.text)")
        let report = try JSONDecoder().decode(FaultReport.self, from: Data(ok.body))
        #expect(report.started?.fault == RuntimeFault.delay(route: "web", cohort: "canary", nanos: 250_000_000, percent: 1_000))
        // Both, with their own shares.
        let both = try rig.call("POST", "/admin/routes/web/fault",
                                #"{"cohort": "canary", "abort": 503, "percent": 5, "delay": "1s", "delay_percent": 50}"#)
        #expect(both.status == 200, "\(both.text)")
        let f = try #require(try JSONDecoder().decode(FaultReport.self, from: Data(both.body)).started?.fault)
        #expect(f == RuntimeFault(route: "web", cohort: "canary", abortStatus: 503, percent: 500, delayNanos: 1_000_000_000, delayPercent: 5_000))
        for (body, message) in [(#"{"cohort": "canary", "percent": 5}"#, "needs `abort`"),
                                (#"{"cohort": "canary", "delay": "soon", "percent": 5}"#, "delay:"),
                                (#"{"cohort": "canary", "delay": "2m", "percent": 5}"#, "a delay is from 1ms to 60s"),
                                (#"{"cohort": "canary", "delay": "1s", "percent": 5, "delay_percent": 101}"#, "delay_percent:")] {
            let r = try rig.call("POST", "/admin/routes/web/fault", body)
            #expect(r.status == 400 && r.text.contains(message), "\(body): \(r.text)")
        }
        let list = try JSONDecoder().decode(FaultReport.self, from: Data(try rig.call("GET", "/admin/faults").body))
        #expect(list.active.count == 1 && list.active[0].fault.delayNanos == 1_000_000_000)
    }
}
