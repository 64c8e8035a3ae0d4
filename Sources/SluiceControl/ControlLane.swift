#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Synchronization

/// A serial job queue with its own thread: one lane of the admin API's handlers.
///
/// A dedicated thread rather than a Dispatch queue: a Dispatch queue runs on the process's shared
/// pool, whose threads other work can hold, and an operator's `abort` must not wait for a pool
/// thread. Jobs run in the order submitted; `stop` lets the job in progress finish and drops the rest.
///
/// Threading: `state` is locked; the semaphore is created in `init`, destroyed in `deinit`, and
/// otherwise only posted and waited on, which is why the class may be `@unchecked Sendable`.
final class ControlLane: @unchecked Sendable {
    private struct State {
        var jobs: [@Sendable () -> Void] = []
        var stopped = false
    }

    private let state = Mutex(State())
    private let semaphore: UnsafeMutablePointer<sem_t>

    /// Starts the lane's thread.
    init() throws(AdminError) {
        semaphore = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
        sem_init(semaphore, 0, 0)
        do throws(AdminError) {
            try ControlThread.detach { [self] in run() }
        } catch {
            sem_destroy(semaphore)
            semaphore.deallocate()
            throw error
        }
    }

    deinit {
        sem_destroy(semaphore)
        semaphore.deallocate()
    }

    /// Queues `job` (dropped after `stop`).
    func submit(_ job: @escaping @Sendable () -> Void) {
        let accepted = state.withLock { s -> Bool in
            guard !s.stopped else { return false }
            s.jobs.append(job)
            return true
        }
        if accepted { sem_post(semaphore) }
    }

    /// Drops queued jobs and ends the thread once the job in progress (if any) returns.
    func stop() {
        state.withLock { s in
            s.stopped = true
            s.jobs.removeAll()
        }
        sem_post(semaphore)
    }

    private func run() {
        while true {
            while sem_wait(semaphore) != 0 && errno == EINTR {}
            let (job, stopped) = state.withLock { s -> ((@Sendable () -> Void)?, Bool) in
                (s.jobs.isEmpty ? nil : s.jobs.removeFirst(), s.stopped)
            }
            if let job { job() } else if stopped { return }
        }
    }
}
