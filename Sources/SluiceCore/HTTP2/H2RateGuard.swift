/// A token bucket over one kind of client frame on an HTTP/2 connection (stream resets, or
/// control frames): `rate` tokens a second, at most `2 × rate` saved up. Each frame takes one;
/// a frame that finds none is a flood, and the connection is closed (GOAWAY ENHANCE_YOUR_CALM).
///
/// Pure: the caller passes the monotonic time in nanoseconds.
public struct H2RateGuard: Sendable, Equatable {
    /// Tokens a second (0: no limit).
    public let rate: Int
    private var tokens: Int
    private var last: UInt64

    /// A full bucket at `now`.
    public init(rate: Int, now: UInt64) {
        self.rate = max(rate, 0)
        self.tokens = 2 * self.rate
        self.last = now
    }

    /// Takes one token for a frame at `now`. False: the frame exceeds the rate.
    public mutating func allow(now: UInt64) -> Bool {
        guard rate > 0 else { return true }
        if now > last {
            let elapsed = now - last
            // Whole tokens earned since `last`; the remainder of a token's time is kept.
            let perToken = 1_000_000_000 / UInt64(rate)
            let earned = perToken == 0 ? UInt64(2 * rate) : elapsed / max(perToken, 1)
            if earned > 0 {
                tokens = Int(min(UInt64(2 * rate), UInt64(tokens) + earned))
                last = tokens == 2 * rate ? now : last + earned * perToken
            }
        }
        guard tokens > 0 else { return false }
        tokens -= 1
        return true
    }
}
