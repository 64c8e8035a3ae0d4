/// The fixed upper bounds of `sluice_request_duration_seconds` (1 ms to 10 s, then +Inf).
public enum DurationBuckets {
    /// Number of buckets, +Inf included.
    public static let count = 14
    /// Finite upper bounds in nanoseconds (a duration equal to a bound belongs to that bucket).
    public static let boundsNanos: [UInt64] = [
        1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000, 100_000_000,
        250_000_000, 500_000_000, 1_000_000_000, 2_500_000_000, 5_000_000_000, 10_000_000_000,
    ]
    /// The `le` label of each bucket, as Prometheus expects it.
    public static let labels: [String] = [
        "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
    ]

    /// The bucket of a duration: the first bound it does not exceed, 13 (+Inf) above 10 s.
    @inlinable @inline(__always)
    public static func index(nanos: UInt64) -> Int {
        // Compare against constants rather than a global array: no lazy-global check per request.
        if nanos <= 25_000_000 {
            if nanos <= 1_000_000 { return 0 }
            if nanos <= 2_500_000 { return 1 }
            if nanos <= 5_000_000 { return 2 }
            if nanos <= 10_000_000 { return 3 }
            return 4
        }
        if nanos <= 500_000_000 {
            if nanos <= 50_000_000 { return 5 }
            if nanos <= 100_000_000 { return 6 }
            if nanos <= 250_000_000 { return 7 }
            return 8
        }
        if nanos <= 1_000_000_000 { return 9 }
        if nanos <= 2_500_000_000 { return 10 }
        if nanos <= 5_000_000_000 { return 11 }
        if nanos <= 10_000_000_000 { return 12 }
        return 13
    }
}
