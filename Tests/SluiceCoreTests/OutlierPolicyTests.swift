import SluiceCore
import Testing

/// The pure availability decisions: ejection thresholds and times, the ejected-percent cap,
/// the decay of repeated ejections, panic mode and active-check transitions.
@Suite struct OutlierPolicyTests {
    static let spec: OutlierSpec = {
        var s = OutlierSpec()
        s.consecutiveFailures = 3
        s.baseEjectionNanos = 10_000_000_000
        s.maxEjectionNanos = 35_000_000_000
        s.maxEjectedPercent = 50
        return s
    }()

    @Test func ejectionTimeGrowsWithEachEjectionUpToTheCap() {
        #expect(OutlierPolicy.ejectionNanos(Self.spec, timesEjected: 1) == 10_000_000_000)
        #expect(OutlierPolicy.ejectionNanos(Self.spec, timesEjected: 2) == 20_000_000_000)
        #expect(OutlierPolicy.ejectionNanos(Self.spec, timesEjected: 3) == 30_000_000_000)
        #expect(OutlierPolicy.ejectionNanos(Self.spec, timesEjected: 4) == 35_000_000_000)
        #expect(OutlierPolicy.ejectionNanos(Self.spec, timesEjected: .max) == 35_000_000_000, "no overflow")
        #expect(OutlierPolicy.ejectionNanos(Self.spec, timesEjected: 0) == 10_000_000_000)
    }

    @Test func ejectsOnlyAtTheThreshold() {
        #expect(OutlierPolicy.eject(Self.spec, failures: 2, timesEjected: 0, groupSize: 4, alreadyEjected: 0) == nil)
        #expect(OutlierPolicy.eject(Self.spec, failures: 3, timesEjected: 0, groupSize: 4, alreadyEjected: 0) == 10_000_000_000)
        #expect(OutlierPolicy.eject(Self.spec, failures: 9, timesEjected: 1, groupSize: 4, alreadyEjected: 0) == 20_000_000_000)
        #expect(OutlierPolicy.eject(.off, failures: 1000, timesEjected: 0, groupSize: 4, alreadyEjected: 0) == nil)
    }

    @Test(arguments: [
        (size: 1, percent: 50, max: 0), (size: 2, percent: 50, max: 1), (size: 3, percent: 50, max: 1),
        (size: 4, percent: 50, max: 2), (size: 10, percent: 10, max: 1), (size: 10, percent: 0, max: 0),
        (size: 3, percent: 100, max: 3), (size: 0, percent: 50, max: 0),
    ])
    func maxEjectedIsTheFloorOfThePercentage(_ c: (size: Int, percent: Int, max: Int)) {
        #expect(OutlierPolicy.maxEjected(groupSize: c.size, percent: c.percent) == c.max)
    }

    @Test func neverMoreThanMaxEjectedPercent() {
        // 4 endpoints at 50 %: two may be out, not a third.
        #expect(OutlierPolicy.eject(Self.spec, failures: 3, timesEjected: 0, groupSize: 4, alreadyEjected: 1) != nil)
        #expect(OutlierPolicy.eject(Self.spec, failures: 3, timesEjected: 0, groupSize: 4, alreadyEjected: 2) == nil)
        // A lone endpoint is never ejected (50 % of 1 is 0).
        #expect(OutlierPolicy.eject(Self.spec, failures: 3, timesEjected: 0, groupSize: 1, alreadyEjected: 0) == nil)
    }

    @Test func repeatedEjectionsDecayWhileTheEndpointBehaves() {
        // One step per 2 × base (20 s) of good behaviour.
        #expect(OutlierPolicy.decayedEjections(Self.spec, timesEjected: 3, healthyNanos: 0) == 3)
        #expect(OutlierPolicy.decayedEjections(Self.spec, timesEjected: 3, healthyNanos: 19_999_999_999) == 3)
        #expect(OutlierPolicy.decayedEjections(Self.spec, timesEjected: 3, healthyNanos: 20_000_000_000) == 2)
        #expect(OutlierPolicy.decayedEjections(Self.spec, timesEjected: 3, healthyNanos: 600_000_000_000) == 0)
    }

    @Test(arguments: [(0, 1, true), (1, 1, false), (1, 2, false), (1, 3, true), (2, 4, false), (1, 4, true), (0, 0, false)])
    func panicWhenFewerThanHalfAreAvailable(_ c: (available: Int, total: Int, panics: Bool)) {
        #expect(OutlierPolicy.panics(available: c.available, total: c.total) == c.panics)
    }

    @Test func activeCheckNeedsConsecutiveResultsToFlip() {
        var spec = HealthCheckSpec()
        spec.unhealthy = 3
        spec.healthy = 2
        var s = ActiveCheckState()
        var changed = false
        #expect(s.healthy)
        changed = s.record(passed: false, spec)
        #expect(!changed)
        changed = s.record(passed: false, spec)
        #expect(!changed)
        changed = s.record(passed: true, spec)
        #expect(!changed, "a pass resets the failure streak")
        changed = s.record(passed: false, spec)
        #expect(!changed)
        changed = s.record(passed: false, spec)
        #expect(!changed)
        changed = s.record(passed: false, spec)
        #expect(changed, "third consecutive failure")
        #expect(!s.healthy)
        changed = s.record(passed: false, spec)
        #expect(!changed, "already down: no change")
        changed = s.record(passed: true, spec)
        #expect(!changed)
        changed = s.record(passed: true, spec)
        #expect(changed, "second consecutive pass")
        #expect(s.healthy)
    }

    @Test func expectRangesDecidePasses() {
        var spec = HealthCheckSpec()
        #expect(spec.passes(status: 200) && spec.passes(status: 399))
        #expect(!spec.passes(status: 404) && !spec.passes(status: 503) && !spec.passes(status: 199))
        spec.expect = [204...204, 500...502]
        #expect(spec.passes(status: 204) && spec.passes(status: 501))
        #expect(!spec.passes(status: 200))
    }
}
