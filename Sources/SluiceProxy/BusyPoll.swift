@preconcurrency import Glibc
internal import CSluiceSys

/// Opt-in busy polling (`busy_poll:`, off by default), HAProxy's `busy-polling` with a window:
/// after a batch of events, a worker that would sleep in epoll_wait first polls with a zero
/// timeout, again and again, until events arrive or `window` nanoseconds have passed since that
/// batch; only then does it sleep. While traffic flows, the next request finds the worker awake,
/// so the sender's CPU pays no cross-CPU wake-up (an inter-processor interrupt, expensive in a
/// VM) and the worker no scheduler round trip. The price is up to `window` of CPU after each
/// batch. An idle worker (no events for a whole window) sleeps as before: timer expiries and
/// empty wake-ups do not restart the window.
///
/// The spin never goes past the loop's own timeout (a due timer still fires on time) and does
/// not happen when the loop asked not to block (timeout 0). The mailbox needs nothing: its
/// eventfd is in the same epoll set, so a message ends the spin as any event does.
///
/// Owned by one worker and used only on its thread.
struct BusyPoll {
    /// The spin window in nanoseconds (0: off).
    let window: UInt64
    /// When the loop last came back to wait after a batch that had events (monotonic ns; 0: never).
    private(set) var windowStart: UInt64 = 0
    /// Whether the latest wait returned events.
    private var hadEvents = false
    /// Zero-timeout polls made while spinning (for tests: shows a spin happened, or did not).
    private(set) var spinPolls: UInt64 = 0

    /// Busy polling with this window (0: off).
    init(window: UInt64) {
        // The config allows at most 1 ms; a larger value from elsewhere is held to 10 ms so the
        // window arithmetic cannot wrap.
        self.window = min(window, 10_000_000)
    }

    /// Until when to spin before sleeping (monotonic ns), or nil not to spin: off, the loop
    /// asked not to block (`timeoutMs` 0), or the window that followed the last batch with
    /// events is over. Never later than the loop's timeout (`timeoutMs` < 0: none). Pure.
    func spinDeadline(now: UInt64, timeoutMs: Int32) -> UInt64? {
        guard window > 0, timeoutMs != 0, windowStart != 0 else { return nil }
        let end = windowStart &+ window
        guard now < end else { return nil }
        guard timeoutMs > 0 else { return end }
        return min(end, now &+ UInt64(timeoutMs) &* 1_000_000)
    }

    /// The epoll_wait timeout left at `t` of a wait that began at `now` with `timeoutMs`
    /// (negative: none), rounded up to whole milliseconds; 0 when it has passed. Pure.
    static func remainingTimeout(began now: UInt64, timeoutMs: Int32, at t: UInt64) -> Int32 {
        guard timeoutMs > 0 else { return timeoutMs }
        return Worker.millisecondsUntil(now &+ UInt64(timeoutMs) &* 1_000_000, from: t)
    }

    /// `epoll.wait` with the spin in front of it. `now` is the loop's clock reading from which
    /// `timeoutMs` was computed.
    mutating func wait(_ epoll: Epoll, _ events: UnsafeMutablePointer<epoll_event>, max: Int32,
                       timeoutMs: Int32, now: UInt64) -> Int {
        if window == 0 { return epoll.wait(events, max: max, timeoutMs: timeoutMs) }
        if hadEvents { windowStart = now }
        var timeout = timeoutMs
        if let deadline = spinDeadline(now: now, timeoutMs: timeoutMs) {
            var t = now
            repeat {
                spinPolls &+= 1
                let n = epoll.wait(events, max: max, timeoutMs: 0)
                if n > 0 {
                    hadEvents = true
                    return n
                }
                t = Sys.monotonicNanos()
            } while t < deadline
            timeout = Self.remainingTimeout(began: now, timeoutMs: timeoutMs, at: t)
            if timeout == 0 {
                hadEvents = false
                return 0
            }
        }
        let n = epoll.wait(events, max: max, timeoutMs: timeout)
        hadEvents = n > 0
        return n
    }
}
