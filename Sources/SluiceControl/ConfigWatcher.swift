#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Synchronization

/// Watches a config file for changes with inotify and calls `onChange` after a quiet period.
///
/// It watches the file's DIRECTORY, not the file: editors write a new file and rename it over
/// the old one (the old inode, and a watch on it, go away), and Kubernetes updates a mounted
/// ConfigMap by swapping the `..data` symlink in that directory. Events watched: close after
/// writing, moved in, created, deleted, moved out. When the path is a symlink into another
/// directory, that directory is watched too (and re-resolved after every change). Events are
/// debounced (`debounce`, default 100 ms, at most 1 s from the first event), then `onChange`
/// runs on the watcher's thread; it decides whether the content really changed
/// (`RoutingController.reloadIfChanged`).
///
/// Control plane only: one thread of its own, `poll` on the inotify descriptor with a timeout
/// so `stop` is noticed.
public final class ConfigWatcher: Sendable {
    /// The config file watched (as given; it may be a symlink).
    public let path: String
    /// Quiet time after the last event before `onChange` runs, in nanoseconds.
    public let debounce: UInt64
    private let onChange: @Sendable () -> Void
    private let running = Mutex<(thread: pthread_t, stop: StopSignal)?>(nil)

    /// A watcher of `path` calling `onChange` (on the watcher thread) after changes.
    public init(path: String, debounce: UInt64 = 100_000_000, onChange: @escaping @Sendable () -> Void) {
        self.path = path
        self.debounce = debounce
        self.onChange = onChange
    }

    deinit {
        stop()
    }

    /// Starts watching. Throws when inotify cannot be set up or the thread cannot start.
    public func start() throws(AdminError) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw AdminError("inotify_init1: \(AdminSocket.errnoText())") }
        var watches = Watches(fd: fd)
        guard watches.refresh(for: path) else {
            let text = AdminSocket.errnoText()
            close(fd)
            throw AdminError("cannot watch the directory of \(path): \(text)")
        }
        let stop = StopSignal()
        let thread: pthread_t
        let initial = watches
        do throws(AdminError) {
            thread = try ControlThread.spawn { [path, debounce, onChange] in
                var w = initial
                Self.loop(fd: fd, watches: &w, path: path, debounce: debounce, stop: stop, onChange: onChange)
                close(fd)
            }
        } catch {
            close(fd)
            throw error
        }
        running.withLock { $0 = (thread, stop) }
    }

    /// Stops watching and waits for the thread. Idempotent.
    public func stop() {
        let r = running.withLock { current -> (thread: pthread_t, stop: StopSignal)? in
            defer { current = nil }
            return current
        }
        guard let r else { return }
        r.stop.stop()
        if pthread_equal(r.thread, pthread_self()) == 0 { pthread_join(r.thread, nil) } else { pthread_detach(r.thread) }
    }

    /// The watches of one inotify descriptor: the config's directory and, for a symlinked
    /// config, the directory of the file it resolves to.
    struct Watches: Sendable {
        /// The inotify descriptor.
        let fd: Int32
        /// Watched directory → watch descriptor.
        var byDirectory: [String: Int32] = [:]

        /// No watches yet on `fd`.
        init(fd: Int32) { self.fd = fd }

        /// Events that can mean the config changed: written and closed, renamed in or out,
        /// created, deleted, or the directory itself removed or moved.
        static let mask = UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO) | UInt32(IN_CREATE) | UInt32(IN_DELETE)
            | UInt32(IN_MOVED_FROM) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)

        /// Watches the directories `path` needs now and drops the others. False when the
        /// config's own directory cannot be watched.
        mutating func refresh(for path: String) -> Bool {
            var wanted = [ConfigWatcher.directory(of: path)]
            if let real = ConfigWatcher.realPath(path) {
                let dir = ConfigWatcher.directory(of: real)
                if dir != wanted[0] { wanted.append(dir) }
            }
            var ok = true
            for (i, dir) in wanted.enumerated() where byDirectory[dir] == nil {
                let wd = inotify_add_watch(fd, dir, Self.mask)
                if wd >= 0 { byDirectory[dir] = wd } else if i == 0 { ok = false }
            }
            for (dir, wd) in byDirectory where !wanted.contains(dir) {
                _ = inotify_rm_watch(fd, wd)
                byDirectory[dir] = nil
            }
            return ok
        }

        /// Forgets a watch the kernel removed (its directory was deleted or moved).
        mutating func forget(_ wd: Int32) {
            for (dir, w) in byDirectory where w == wd { byDirectory[dir] = nil }
        }
    }

    private static func loop(fd: Int32, watches: inout Watches, path: String, debounce: UInt64, stop: StopSignal,
                             onChange: @Sendable () -> Void) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var firstEvent: UInt64 = 0
        var lastEvent: UInt64 = 0
        var pending = false
        while !stop.isStopped {
            var timeout: Int32 = 200
            if pending {
                let now = ControlClock.monotonicNanos()
                let due = min(lastEvent &+ debounce, firstEvent &+ 1_000_000_000)
                timeout = due <= now ? 0 : Int32(min((due - now + 999_999) / 1_000_000, 200))
            }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, timeout)
            if n > 0 {
                // Drain every queued event; names do not matter, the content check decides.
                while true {
                    let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if got <= 0 { break }
                    var offset = 0
                    while offset + 16 <= got {
                        let (wd, mask, length) = buffer.withUnsafeBytes { raw -> (Int32, UInt32, Int) in
                            (raw.loadUnaligned(fromByteOffset: offset, as: Int32.self),
                             raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self),
                             Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)))
                        }
                        if mask & UInt32(IN_IGNORED) != 0 { watches.forget(wd) }
                        offset += 16 + length
                    }
                }
                let now = ControlClock.monotonicNanos()
                if !pending { firstEvent = now }
                lastEvent = now
                pending = true
                continue
            }
            if pending {
                let now = ControlClock.monotonicNanos()
                if now >= lastEvent &+ debounce || now >= firstEvent &+ 1_000_000_000 {
                    pending = false
                    _ = watches.refresh(for: path)
                    onChange()
                }
            } else if watches.byDirectory.isEmpty {
                // The directory went away: watch it again once it is back.
                if watches.refresh(for: path) { onChange() }
            }
        }
    }

    /// The directory part of `path` (`.` for a bare name).
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// `realpath(path)`, nil when it cannot be resolved now.
    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}
