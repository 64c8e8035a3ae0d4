#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Plain threads for the control plane (admin server, sampler): created with pthreads from
/// library code, so they carry no actor isolation.
enum ControlThread {
    /// Carries the body into the new thread.
    private final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// Starts a joinable thread running `body`.
    static func spawn(_ body: @escaping @Sendable () -> Void) throws(AdminError) -> pthread_t {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        #if canImport(Glibc)
        var thread = pthread_t()
        #else
        var thread: pthread_t?
        #endif
        let rc = pthread_create(&thread, nil, { arg in
            Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw AdminError("cannot start a thread: \(String(cString: strerror(rc)))")
        }
        #if canImport(Glibc)
        return thread
        #else
        return thread!
        #endif
    }

    /// Starts a detached thread running `body`.
    static func detach(_ body: @escaping @Sendable () -> Void) throws(AdminError) {
        let thread = try spawn(body)
        pthread_detach(thread)
    }
}

/// A stop request that a looping thread can sleep on and be woken by.
final class StopSignal: Sendable {
    private let stopped = Mutex(false)

    /// True once `stop` was called.
    var isStopped: Bool { stopped.withLock { $0 } }

    /// Asks the loop to stop.
    func stop() { stopped.withLock { $0 = true } }

    /// Sleeps up to `nanos`, in short steps, returning early (true) once stopped.
    func sleep(nanos: UInt64) -> Bool {
        let deadline = ControlClock.monotonicNanos() &+ nanos
        while !isStopped {
            let now = ControlClock.monotonicNanos()
            if now >= deadline { return false }
            let step = min(deadline - now, 50_000_000)
            var ts = timespec(tv_sec: Int(step / 1_000_000_000), tv_nsec: Int(step % 1_000_000_000))
            nanosleep(&ts, nil)
        }
        return true
    }
}

/// Clocks of the control plane.
public enum ControlClock {
    /// Monotonic time in nanoseconds (CLOCK_MONOTONIC).
    public static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Wall-clock time in nanoseconds since the Unix epoch (CLOCK_REALTIME).
    public static func unixNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// RFC 3339 UTC time with milliseconds, e.g. `2026-11-26T23:22:18.042Z`.
    public static func rfc3339(unixNanos: UInt64) -> String {
        var seconds = time_t(unixNanos / 1_000_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        let millis = Int32((unixNanos / 1_000_000) % 1000)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(millis, 3))Z"
    }
}

/// A control-plane failure: binding the admin socket, starting a thread, reaching the admin API.
public struct AdminError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, for people.
    public var message: String
    /// Creates an error.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}
