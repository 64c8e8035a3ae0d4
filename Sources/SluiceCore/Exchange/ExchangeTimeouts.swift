/// Which deadline a client connection is under, from its state: the timeout decisions of the
/// exchange (what happens when one passes is `ExchangeMachine.handle(.clientTimedOut)`).
public enum ClientDeadline: Equatable, Sendable {
    /// Keep the deadline already set (or none).
    case keep
    /// No deadline applies now.
    case clear
    /// The deadline is this monotonic time.
    case at(UInt64)
}

/// What the client's deadline depends on, as the driver sees it.
public struct ClientTimerFacts: Sendable {
    public var phase: ConnectionPhase
    /// A deadline is currently set.
    public var hasDeadline: Bool
    /// Request bytes are buffered (a head in progress, or body bytes not yet moved).
    public var inputBuffered: Bool
    /// Response bytes wait for a client that is not writable.
    public var outputBlocked: Bool
    /// The request body was fully read (or there is none).
    public var requestBodyDone: Bool
    /// Requests completed on the connection (a connection that served one is idle, not new).
    public var requestsServed: Int
    public var phaseStart: UInt64
    public var lastReadProgress: UInt64
    public var lastWriteProgress: UInt64
    /// When a tunnel whose cohort or endpoint was removed closes (0: never).
    public var retireAt: UInt64

    /// Creates the facts.
    public init(phase: ConnectionPhase, hasDeadline: Bool, inputBuffered: Bool, outputBlocked: Bool, requestBodyDone: Bool,
                requestsServed: Int, phaseStart: UInt64, lastReadProgress: UInt64, lastWriteProgress: UInt64,
                retireAt: UInt64 = 0) {
        self.retireAt = retireAt
        self.phase = phase
        self.hasDeadline = hasDeadline
        self.inputBuffered = inputBuffered
        self.outputBlocked = outputBlocked
        self.requestBodyDone = requestBodyDone
        self.requestsServed = requestsServed
        self.phaseStart = phaseStart
        self.lastReadProgress = lastReadProgress
        self.lastWriteProgress = lastWriteProgress
    }
}

extension ExchangeMachine {
    /// The client's deadline: the header timeout for a head in progress (or a new connection), the
    /// idle timeout between requests, the send timeout while the client does not take its
    /// response, the idle timeout while its body is awaited; none while only the upstream is awaited.
    public static func clientDeadline(_ f: ClientTimerFacts, _ t: Timeouts) -> ClientDeadline {
        switch f.phase {
        case .awaitingHead:
            // The previous response still leaving: the client is reading, the send timeout applies.
            if f.outputBlocked { return .at(f.lastWriteProgress &+ t.clientSend) }
            if f.hasDeadline { return .keep }
            let base = !f.inputBuffered && f.requestsServed > 0 ? t.clientIdle : t.clientHeader
            return .at(f.phaseStart &+ base)
        case .exchange:
            if f.outputBlocked { return .at(f.lastWriteProgress &+ t.clientSend) }
            if f.requestBodyDone { return .clear }
            if !f.inputBuffered { return .at(f.lastReadProgress &+ t.clientIdle) }
            return .clear
        case .closing:
            return .at(f.lastWriteProgress &+ t.clientSend)
        case .tunnel:
            // Idle both ways for tunnel_idle; a tunnel retired by a reload closes at its time.
            let idle = max(f.lastReadProgress, f.lastWriteProgress) &+ t.tunnelIdle
            return .at(f.retireAt != 0 ? min(idle, f.retireAt) : idle)
        case .lingering, .closed:
            return .keep
        }
    }
}
