import Testing
@testable import SluiceCore

struct TelemetryLatencyScaleTests {
    /// Every microsecond value falls into a bucket that contains it, buckets are ordered, and
    /// each bucket is at most 1/32 of its lower bound wide above 64 µs.
    @Test func bucketsContainTheirValuesWithBoundedWidth() {
        var values: [UInt64] = Array(0..<5000)
        var v: UInt64 = 5000
        while v < 1 << 31 {
            values += [v - 1, v, v + 1]
            v = v + v / 7 + 1
        }
        values += [(1 << 31) - 1]
        var lastIndex = -1
        for value in values.sorted() {
            let i = LatencyScale.index(micros: value)
            #expect(i >= lastIndex)
            lastIndex = i
            let (lower, width) = LatencyScale.range(ofBucket: i)
            #expect(lower <= value && value < lower + width, "value \(value) bucket \(i)")
            if value >= 64 { #expect(width * 32 <= lower, "bucket \(i) too wide") } else { #expect(width == 1) }
        }
        #expect(LatencyScale.index(micros: (1 << 31) - 1) == LatencyScale.bucketCount - 1)
        #expect(LatencyScale.index(micros: UInt64.max) == LatencyScale.bucketCount - 1)
        #expect(LatencyScale.index(nanos: 1_999) == 1)
    }

    @Test func eachBucketStartsWhereThePreviousEnds() {
        var expected: UInt64 = 0
        for i in 0..<LatencyScale.bucketCount {
            let (lower, width) = LatencyScale.range(ofBucket: i)
            #expect(lower == expected, "bucket \(i)")
            expected = lower + width
        }
        #expect(expected == 1 << 31)
    }

    @Test func quantilesOfAKnownDistributionAreWithinTheStatedError() {
        // 100,000 latencies spread log-uniformly from 50 µs to 5 s.
        var counts = [UInt64](repeating: 0, count: LatencyScale.bucketCount)
        var samples: [UInt64] = []
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<100_000 {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let u = Double(x >> 11) / Double(1 << 53)
            let micros = UInt64(50 * pow10(u * 5))
            samples.append(micros)
            counts[LatencyScale.index(micros: micros)] += 1
        }
        samples.sort()
        for q in [0.5, 0.9, 0.95, 0.99, 0.999] {
            let exact = Double(samples[Int((q * Double(samples.count)).rounded(.up)) - 1]) / 1e6
            let reported = LatencyScale.quantile(q, counts: counts)!
            #expect(abs(reported - exact) <= exact * LatencyScale.relativeError, "q=\(q) exact \(exact) reported \(reported)")
        }
        #expect(LatencyScale.quantile(0.5, counts: [UInt64](repeating: 0, count: LatencyScale.bucketCount)) == nil)
    }

    /// 10^e without Foundation.
    func pow10(_ e: Double) -> Double {
        var result = 1.0
        var whole = Int(e)
        while whole > 0 { result *= 10; whole -= 1 }
        let frac = e - Double(Int(e))
        // exp(frac · ln 10) by its series; frac < 1 so 30 terms are plenty.
        let y = frac * 2.302585092994046
        var term = 1.0, sum = 1.0
        for n in 1..<30 { term *= y / Double(n); sum += term }
        return result * sum
    }
}
