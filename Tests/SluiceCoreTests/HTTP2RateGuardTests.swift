import Testing
import SluiceCore

/// `H2RateGuard`: the token bucket behind `max_resets_per_second` and
/// `max_control_frames_per_second` (rate a second, bursts of twice the rate). Time is passed in.
@Suite struct HTTP2RateGuardTests {
    static let ms: UInt64 = 1_000_000
    static let second: UInt64 = 1_000_000_000
    static let t0: UInt64 = 5 * second

    /// Number of frames allowed in a row at time `now`.
    static func drain(_ g: inout H2RateGuard, now: UInt64, max: Int = 100_000) -> Int {
        var n = 0
        while n < max && g.allow(now: now) { n += 1 }
        return n
    }

    @Test func aFullBucketAllowsABurstOfTwiceTheRate() {
        var g = H2RateGuard(rate: 10, now: Self.t0)
        let n1 = Self.drain(&g, now: Self.t0)
        #expect(n1 == 20)
        let ok1 = g.allow(now: Self.t0)
        #expect(!ok1)
        var big = H2RateGuard(rate: 100, now: Self.t0)
        let n2 = Self.drain(&big, now: Self.t0)
        #expect(n2 == 200)
    }

    @Test func tokensComeBackAtTheRateUpToTheBurst() {
        var g = H2RateGuard(rate: 10, now: Self.t0)
        _ = Self.drain(&g, now: Self.t0)
        // 99 ms: not yet a token (one per 100 ms).
        let ok2 = g.allow(now: Self.t0 + 99 * Self.ms)
        #expect(!ok2)
        let ok3 = g.allow(now: Self.t0 + 100 * Self.ms)
        #expect(ok3)
        let ok4 = g.allow(now: Self.t0 + 100 * Self.ms)
        #expect(!ok4)
        // One second later: ten more.
        let n3 = Self.drain(&g, now: Self.t0 + 1100 * Self.ms)
        #expect(n3 == 10)
        // A long quiet time refills to the burst, not beyond.
        let n4 = Self.drain(&g, now: Self.t0 + 60 * Self.second)
        #expect(n4 == 20)
    }

    /// The part of a token's time not yet used is kept: two 50 ms gaps make one token at 10/s.
    @Test func partialTokenTimeIsKept() {
        var g = H2RateGuard(rate: 10, now: Self.t0)
        _ = Self.drain(&g, now: Self.t0)
        let ok5 = g.allow(now: Self.t0 + 50 * Self.ms)
        #expect(!ok5)
        let ok6 = g.allow(now: Self.t0 + 100 * Self.ms)
        #expect(ok6)
        let ok7 = g.allow(now: Self.t0 + 150 * Self.ms)
        #expect(!ok7)
        let ok8 = g.allow(now: Self.t0 + 199 * Self.ms)
        #expect(!ok8)
        let ok9 = g.allow(now: Self.t0 + 200 * Self.ms)
        #expect(ok9)
    }

    /// A client that stays at the rate is never stopped; one at twice the rate is stopped once the
    /// burst is spent (after about burst / excess = 200 / 100 = 2 seconds at 100/s).
    @Test func steadyRateIsAllowedAndTwiceTheRateIsNot() {
        var g = H2RateGuard(rate: 100, now: Self.t0)
        for i in 0..<10_000 {
            let ok10 = g.allow(now: Self.t0 + UInt64(i) * 10 * Self.ms)
            #expect(ok10)
        }
        var fast = H2RateGuard(rate: 100, now: Self.t0)
        var firstRefusal = -1
        for i in 0..<2_000 where !fast.allow(now: Self.t0 + UInt64(i) * 5 * Self.ms) {
            firstRefusal = i
            break
        }
        #expect((395...405).contains(firstRefusal), "first refusal at frame \(firstRefusal)")
    }

    @Test func rateZeroIsUnlimited() {
        var g = H2RateGuard(rate: 0, now: Self.t0)
        let n5 = Self.drain(&g, now: Self.t0, max: 1_000_000)
        #expect(n5 == 1_000_000)
        var negative = H2RateGuard(rate: -5, now: Self.t0)
        #expect(negative.rate == 0)
        let ok11 = negative.allow(now: 0)
        #expect(ok11)
    }

    /// A clock that goes back (or stands still) earns nothing and does not trap; rates faster than
    /// one token a nanosecond do not divide by zero.
    @Test func oddClocksAndHugeRates() {
        var g = H2RateGuard(rate: 10, now: Self.t0)
        _ = Self.drain(&g, now: Self.t0)
        let ok12 = g.allow(now: 0)
        #expect(!ok12)
        let ok13 = g.allow(now: Self.t0 - 1)
        #expect(!ok13)
        let ok14 = g.allow(now: Self.t0 + 100 * Self.ms)
        #expect(ok14)
        var huge = H2RateGuard(rate: 2_000_000_000, now: Self.t0)
        let n6 = Self.drain(&huge, now: Self.t0, max: 10_000)
        #expect(n6 == 10_000)
        let ok15 = huge.allow(now: Self.t0 + 1)
        #expect(ok15)
        var top = H2RateGuard(rate: 1_000_000, now: 0)
        let n7 = Self.drain(&top, now: 0, max: 3_000_000)
        #expect(n7 == 2_000_000)
        let ok16 = top.allow(now: 1000)
        #expect(ok16)  // one token per microsecond
    }
}
