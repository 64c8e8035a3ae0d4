import SluiceProxy
import Synchronization

/// Whether the process should get traffic: what `GET /ready` answers and what systemd is told.
///
/// Ready means listening with a config loaded and not draining. It starts false, becomes true
/// with `markReady` (after the listeners are bound and the admin API runs) and false again,
/// for good, with `beginDrain`, which happens before the listeners close so load balancers and
/// Kubernetes stop sending new connections while requests in flight finish. Thread-safe.
public final class ServiceHealth: Sendable {
    private struct State {
        var ready = false
        var draining = false
    }

    private let state = Mutex(State())
    /// Where systemd notifications go (nil: `$NOTIFY_SOCKET` is not set, nothing is sent).
    public let notifySocket: String?

    /// A health state, not ready yet; `notifySocket` defaults to `$NOTIFY_SOCKET`.
    public init(notifySocket: String? = SystemdNotify.socketFromEnvironment) {
        self.notifySocket = notifySocket
    }

    /// True while ready (started and not draining).
    public var isReady: Bool { state.withLock { $0.ready && !$0.draining } }

    /// True once a drain started.
    public var isDraining: Bool { state.withLock { $0.draining } }

    /// Why the process is not ready (nil when it is).
    public var notReadyReason: String? {
        state.withLock { s in
            if s.draining { return "draining" }
            return s.ready ? nil : "starting"
        }
    }

    /// Listeners bound, config loaded, admin API up: ready (and `READY=1` to systemd). No effect once draining.
    public func markReady(status: String = "serving") {
        let changed = state.withLock { s -> Bool in
            guard !s.ready && !s.draining else { return false }
            s.ready = true
            return true
        }
        if changed { SystemdNotify.send("READY=1\nSTATUS=\(status)", socket: notifySocket) }
    }

    /// A drain starts: not ready from now on (and `STOPPING=1` to systemd).
    public func beginDrain() {
        let changed = state.withLock { s -> Bool in
            defer { s.draining = true }
            return !s.draining
        }
        if changed { SystemdNotify.send("STOPPING=1\nSTATUS=draining", socket: notifySocket) }
    }

    /// Drains `server`: not ready first, then the proxy stops accepting and lets requests in
    /// flight finish (up to `timeout` nanoseconds). Returns when the workers are gone.
    public func drain(_ server: ProxyServer, timeout: UInt64) {
        beginDrain()
        server.shutdown(drainTimeout: timeout)
    }
}
