// Request-level resilience decisions: whether a failed attempt is tried again, where, and
// whether the retry budget allows it. Pure: the driver (SluiceProxy `Worker+Retry.swift`) gathers
// the facts (another endpoint left? budget? body replayable?) and carries the answer out through
// `ExchangeMachine` (`ExchangeMachine+Retry.swift`).
//
// The rules (issue 15), in the order `RetryPolicy.decide` applies them:
// - nothing is retried once any response byte went to the client;
// - a failure the route's `retry_on` does not name is not retried (a connect failure is always
//   eligible: nothing reached the endpoint);
// - a reset, a timeout or a 502/503/504 answer is retried only for an idempotent method (RFC 9110
//   9.2.2: GET HEAD OPTIONS TRACE PUT DELETE) and only when the request body can be sent again
//   (none sent yet, or all of what was sent is kept in the retry buffer);
// - `fallback_to_baseline`: a non-baseline cohort's failure goes once to the baseline cohort
//   (not counted against the budget: at most one extra request per canary request);
// - otherwise another endpoint of the same group (or the same endpoint again when the group
//   has no other) while `attempts` allows and the retry budget has room.

/// What went wrong with one attempt.
public enum RetryCause: Sendable, Equatable {
    /// The connection failed before any byte was sent (refused, unreachable, connect timeout).
    case connectFailure(UpstreamErrorReason)
    /// The upstream closed or reset the connection before its response head.
    case reset
    /// No response head within `per_try_timeout` (or `timeouts.upstream_response_header`).
    case timeout
    /// The upstream answered with this status (502, 503 or 504).
    case status(Int)

    /// Whether an upstream's answer is a gateway failure (502, 503, 504): the statuses `retry_on`
    /// can name, and what passive outlier detection counts against an endpoint.
    @inlinable
    public static func isGatewayFailure(status: Int) -> Bool { status >= 502 && status <= 504 }

    /// The `retry_on` bit that names this cause.
    @inlinable
    public var bit: UInt8 {
        switch self {
        case .connectFailure: return RetrySpec.onConnectFailure
        case .reset: return RetrySpec.onReset
        case .timeout: return RetrySpec.onTimeout
        case .status(502): return RetrySpec.on502
        case .status(503): return RetrySpec.on503
        case .status(504): return RetrySpec.on504
        case .status: return 0
        }
    }

    /// The `reason` label of `sluice_upstream_retries_total` (and its word index, see `RetryCause.labels`).
    @inlinable
    public var labelIndex: Int {
        switch self {
        case .connectFailure: return 0
        case .reset: return 1
        case .timeout: return 2
        case .status(502): return 3
        case .status(503): return 4
        default: return 5
        }
    }

    /// Labels by `labelIndex`.
    public static let labels = ["connect_failure", "reset", "timeout", "502", "503", "504"]

    /// The status the client gets when this failure is final (the failed attempt's status).
    @inlinable
    public var status: Int {
        switch self {
        case .connectFailure(let reason): return reason.status
        case .reset: return 502
        case .timeout: return 504
        case .status(let s): return s
        }
    }

    /// The upstream error reason of the failure (nil for an answered status).
    @inlinable
    public var errorReason: UpstreamErrorReason? {
        switch self {
        case .connectFailure(let reason): return reason
        case .reset: return .reset
        case .timeout: return .responseTimeout
        case .status: return nil
        }
    }
}

/// A route's `retries:` and `fallback_to_baseline:` settings (trivial, compiled into `Route`).
public struct RetrySpec: Sendable, Equatable {
    public static let onConnectFailure: UInt8 = 1
    public static let onReset: UInt8 = 2
    public static let onTimeout: UInt8 = 4
    public static let on502: UInt8 = 8
    public static let on503: UInt8 = 16
    public static let on504: UInt8 = 32
    /// The default `retry_on`: connect_failure, reset, timeout, 502, 503, 504.
    public static let defaultRetryOn: UInt8 = 63
    /// `retry_on` names in config order of their bits.
    public static let retryOnNames: [(String, UInt8)] = [
        ("connect_failure", onConnectFailure), ("reset", onReset), ("timeout", onTimeout),
        ("502", on502), ("503", on503), ("504", on504),
    ]

    /// Attempts in all, the first one included (1: no retries; `retries:` absent: 1).
    public var attempts: Int
    /// Which failures are retried (bits above).
    public var retryOn: UInt8
    /// Longest wait for each attempt's response head, in nanoseconds (0: `timeouts.upstream_response_header`).
    public var perTryTimeoutNanos: UInt64
    /// Retries may be at most this percentage of the route's requests over 10 s (plus 3 per second).
    public var budgetPercent: Int
    /// A non-baseline cohort's retryable failure is tried once on the baseline cohort.
    public var fallbackToBaseline: Bool

    /// Creates settings; the defaults are those of `retries: {}`.
    public init(attempts: Int = 2, retryOn: UInt8 = RetrySpec.defaultRetryOn, perTryTimeoutNanos: UInt64 = 0,
                budgetPercent: Int = 20, fallbackToBaseline: Bool = false) {
        self.attempts = attempts
        self.retryOn = retryOn
        self.perTryTimeoutNanos = perTryTimeoutNanos
        self.budgetPercent = budgetPercent
        self.fallbackToBaseline = fallbackToBaseline
    }

    /// Retries nothing beyond the connect-failure rule; only `fallback_to_baseline` (when set).
    public static func fallbackOnly() -> RetrySpec { RetrySpec(attempts: 1, fallbackToBaseline: true) }
}

/// The facts of the moment a retry is considered, gathered by the driver.
public struct RetryOptions: Sendable, Equatable {
    /// The route's settings.
    public var spec: RetrySpec
    /// An endpoint of the group not tried yet for this request is available.
    public var anotherEndpoint: Bool
    /// The route has a baseline cohort other than the one that failed, and this request has not
    /// fallen back yet.
    public var baselineAvailable: Bool
    /// The retry budget has room for one more retry now.
    public var budgetAllows: Bool
    /// The request body can be sent again: none of it was sent, or all that was sent is kept.
    public var bodyReplayable: Bool

    /// Creates the facts.
    public init(spec: RetrySpec, anotherEndpoint: Bool, baselineAvailable: Bool, budgetAllows: Bool, bodyReplayable: Bool) {
        self.spec = spec
        self.anotherEndpoint = anotherEndpoint
        self.baselineAvailable = baselineAvailable
        self.budgetAllows = budgetAllows
        self.bodyReplayable = bodyReplayable
    }
}

/// Where a failed attempt goes next.
public enum RetryDecision: Sendable, Equatable {
    /// Nowhere: the failure is the answer (a 502/503/504, or the upstream's own status).
    case giveUp
    /// A fresh connection to another endpoint of the same group.
    case otherEndpoint
    /// A fresh connection to the same endpoint (the group has no other).
    case sameEndpoint
    /// The route's baseline cohort (`fallback_to_baseline`).
    case baseline
}

/// The pure retry rules (see the file comment).
public enum RetryPolicy {
    /// Decides what happens after `cause`. `attemptsMade` counts the attempts so far (the failed
    /// one included); `fellBack`: this request already went to the baseline.
    @inlinable
    public static func decide(_ cause: RetryCause, method: HTTPMethod, responseStarted: Bool, attemptsMade: Int,
                              fellBack: Bool, options o: RetryOptions) -> RetryDecision {
        if responseStarted || !o.bodyReplayable { return .giveUp }
        let connect: Bool
        if case .connectFailure = cause { connect = true } else { connect = false }
        if !connect && !method.isIdempotent { return .giveUp }
        // fallback_to_baseline looks at the default list when `retries:` names none of its own.
        let named = o.spec.retryOn & cause.bit != 0
        if o.spec.fallbackToBaseline && o.baselineAvailable && !fellBack && (named || connect) {
            return .baseline
        }
        if !named && !connect { return .giveUp }
        if attemptsMade >= o.spec.attempts || fellBack { return .giveUp }
        if !o.budgetAllows && !connect { return .giveUp }
        return o.anotherEndpoint ? .otherEndpoint : .sameEndpoint
    }
}
