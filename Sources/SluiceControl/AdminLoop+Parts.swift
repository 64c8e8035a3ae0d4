#if canImport(Glibc)
@preconcurrency import Glibc
#endif
internal import CSluiceSys
import SluiceCore
import SluiceProxy
import Synchronization

// The admin loop's parts: listener roles, handler lanes, limits, the outbox that carries handler
// responses back to the loop, and the per-connection state.

/// Which routes a listening socket of the admin API serves.
enum AdminListenerRole: Sendable {
    /// Every endpoint (`admin.address`).
    case admin
    /// `/metrics`, `/healthz` and `/ready` only (`metrics.address`).
    case metrics
}

/// Where a request's handler runs. Each lane is one serial control thread, so a flood of open
/// or unauthenticated reads queues behind itself and never in front of an operator's call.
enum AdminLane: Sendable {
    /// Requests that showed the token (or, without a token, state-changing ones).
    case priority
    /// Other requests on the admin listener.
    case read
    /// Requests on the metrics listener.
    case metrics
}

/// What the server decided about a request once its head was in.
enum AdminDecision {
    /// Answer this now (an error, or nothing more to do) without reading a body.
    case respond(AdminResponse)
    /// Read the body (if any), then run `handler` on `lane` (or on the loop when `inline`).
    case proceed(handler: AdminHandler, lane: AdminLane, inline: Bool, authenticated: Bool, pathParameters: [String: String])
}

/// Limits of the admin event loop.
struct AdminLoopLimits: Sendable {
    /// Most connections held at once.
    var maxConnections = 1024
    /// Time for the whole request (head and body) from accept, nanoseconds.
    var requestTimeout: UInt64 = 10_000_000_000
    /// Time to write a response, nanoseconds.
    var writeTimeout: UInt64 = 10_000_000_000
    /// Time to read and discard what a client still sends after its response (so that closing
    /// does not reset the connection before the client read the response), nanoseconds.
    var lingerTimeout: UInt64 = 2_000_000_000
    /// Most bytes discarded while lingering.
    var lingerBytes = 256 * 1024
    /// Largest request body (admin bodies are small JSON objects).
    var maxBody = 64 * 1024
    /// Parser limits for request heads (16 KiB heads, 8 KiB request lines, 64 fields).
    var parser: ParserLimits = {
        var l = ParserLimits()
        l.maxHeadBytes = 16 * 1024
        l.maxRequestLine = 8 * 1024
        l.maxFields = 64
        return l
    }()
}

/// Counters of the admin loop (for tests and diagnostics).
public struct AdminLoopCounters: Sendable, Equatable {
    /// Connections open now.
    public var open: Int
    /// Connections accepted so far.
    public var accepted: Int
    /// Connections closed to make room for a new one (`max_connections` reached).
    public var evicted: Int
    /// Connections closed because their request (or response, or linger) took too long.
    public var timedOut: Int
    /// Connections refused: not in the allow-list, or full with nothing to evict.
    public var refused: Int
}

/// Results posted by the control threads to the loop: `(fd, generation, response bytes)`.
/// The wake-up is written under the same lock that `close` takes, so no thread writes to the
/// eventfd after the loop closed it (its number could belong to another file by then).
final class AdminOutbox: Sendable {
    private struct State {
        var items: [(fd: Int32, generation: UInt32, bytes: [UInt8])] = []
        var closed = false
    }
    private let state = Mutex(State())
    private let wake: WakeFD

    init(wake: WakeFD) { self.wake = wake }

    /// Queues a response for the connection `fd` of `generation` and wakes the loop (once per batch).
    func post(fd: Int32, generation: UInt32, bytes: [UInt8]) {
        state.withLock { s in
            guard !s.closed else { return }
            s.items.append((fd, generation, bytes))
            if s.items.count == 1 { wake.signal() }
        }
    }

    /// Wakes the loop (to stop), unless closed.
    func nudge() {
        state.withLock { s in if !s.closed { wake.signal() } }
    }

    /// Takes every queued response.
    func take() -> [(fd: Int32, generation: UInt32, bytes: [UInt8])] {
        state.withLock { s in
            defer { s.items.removeAll() }
            return s.items
        }
    }

    /// No more posts; after this the eventfd may be closed.
    func close() {
        state.withLock { $0.closed = true }
    }
}

/// One admin connection, owned by the loop thread.
final class AdminConnection {
    /// Where the connection is in its single request.
    enum Phase {
        /// Reading the request head.
        case head
        /// Reading a body of `length` bytes that follows a head of `headLength` bytes.
        case body(request: AdminRequest, decision: AdminDecision, headLength: Int, length: Int)
        /// The handler runs on a control thread; no deadline (the client's pace no longer matters).
        case dispatched
        /// Writing the response.
        case writing
        /// Response written and write side shut; reading and discarding until EOF or the linger deadline.
        case lingering
    }

    let fd: Int32
    let generation: UInt32
    let peer: SocketAddress
    let local: SocketAddress
    let role: AdminListenerRole
    let acceptedAt: UInt64
    var phase: Phase = .head
    var deadline: UInt64
    /// Showed the admin token: never evicted.
    var authenticated = false
    /// Bytes received for the current request (head, then body); empty for an idle connection.
    var buffer: [UInt8] = []
    var head = RequestHead()
    var out: [UInt8] = []
    var outOffset = 0
    var discarded = 0

    init(fd: Int32, generation: UInt32, peer: SocketAddress, local: SocketAddress, role: AdminListenerRole,
         now: UInt64, deadline: UInt64) {
        self.fd = fd
        self.generation = generation
        self.peer = peer
        self.local = local
        self.role = role
        self.acceptedAt = now
        self.deadline = deadline
    }

    /// True while it may be closed to make room: it has not shown the token and no handler runs for it.
    var isEvictable: Bool {
        if authenticated { return false }
        if case .dispatched = phase { return false }
        return true
    }
}

/// A listening socket of the admin loop.
struct AdminListenerSlot {
    var fd: Int32
    var role: AdminListenerRole
    var allow: [AddressPrefix]
    var registered = true
}
