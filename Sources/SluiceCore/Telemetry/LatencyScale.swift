/// A log-linear (HDR-style) bucket scale for latencies, from which percentiles are read.
///
/// Durations are counted in whole microseconds. Below 64 µs every microsecond has its own
/// bucket; above, each power of two is split into 32 equal buckets, so a bucket's width is at
/// most 1/32 of its lower bound. A percentile is reported as the middle of its bucket, hence:
///
/// **Stated error:** a reported percentile is within 1/64 (1.5625 %) of the true sample value
/// for latencies of 32 µs and more, and within 0.5 µs below that. Latencies of 2^31 µs
/// (about 35.8 minutes) and more share the last bucket and are reported as about 34.6 minutes.
public enum LatencyScale {
    /// log2 of the number of buckets per power of two.
    @usableFromInline static let subBits = 5
    /// Buckets per power of two.
    @usableFromInline static let subCount = 32
    /// Values at or above `2^maxExponent` µs fall into the last bucket.
    @usableFromInline static let maxExponent = 31
    /// Number of buckets (864).
    public static let bucketCount = 32 + (31 - 5) * 32
    /// The largest relative error of a reported percentile at or above 32 µs.
    public static let relativeError = 1.0 / 64.0

    /// The bucket of a duration given in nanoseconds.
    @inlinable @inline(__always)
    public static func index(nanos: UInt64) -> Int {
        index(micros: nanos / 1000)
    }

    /// The bucket of a duration given in microseconds.
    @inlinable @inline(__always)
    public static func index(micros v: UInt64) -> Int {
        if v < 64 { return Int(v) }
        if v >= 1 << 31 { return bucketCount - 1 }
        let shift = (63 - v.leadingZeroBitCount) - subBits  // 1...25
        return shift * subCount + Int(truncatingIfNeeded: v >> UInt64(shift))
    }

    /// The bucket's range in microseconds: `[lower, lower + width)`.
    public static func range(ofBucket i: Int) -> (lower: UInt64, width: UInt64) {
        if i < 64 { return (UInt64(i), 1) }
        let shift = i / subCount - 1
        let m = UInt64(i % subCount + subCount)
        return (m << UInt64(shift), 1 << UInt64(shift))
    }

    /// The value reported for samples in bucket `i`, in seconds (the bucket's middle).
    public static func representativeSeconds(ofBucket i: Int) -> Double {
        let (lower, width) = range(ofBucket: i)
        return (Double(lower) + Double(width) / 2) / 1_000_000
    }

    /// The `q`-quantile (0 < q ≤ 1) of the samples counted in `counts` (one entry per bucket),
    /// in seconds: the middle of the bucket holding the sample of rank ⌈q·n⌉. Nil when empty.
    public static func quantile(_ q: Double, counts: [UInt64]) -> Double? {
        var total: UInt64 = 0
        for c in counts { total &+= c }
        guard total > 0 else { return nil }
        let wanted = max(1, min(total, UInt64((q * Double(total)).rounded(.up))))
        var seen: UInt64 = 0
        for (i, c) in counts.enumerated() where c > 0 {
            seen &+= c
            if seen >= wanted { return representativeSeconds(ofBucket: i) }
        }
        return representativeSeconds(ofBucket: counts.count - 1)
    }
}
