#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value behind a pthread mutex, for control-plane state changed from several threads.
///
/// Why not `Synchronization.Mutex`: on Linux it is built on raw futex calls, which
/// ThreadSanitizer does not model, so `Tests/run-sanitizers.sh` would report every access under
/// it from two threads as a race. A pthread mutex is intercepted and understood.
///
/// `@unchecked Sendable`: `value` is only read or written inside `withLock`, with `mutex` held.
final class ControlLock<Value>: @unchecked Sendable {
    private var value: Value
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    /// A lock guarding `value`.
    init(_ value: Value) {
        self.value = value
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the lock held and the value borrowed mutably. Not reentrant.
    func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
