// The exchange machine's part of retries: a failed attempt the driver reported as `.retryable`
// is tried again where `RetryPolicy.decide` says, or ends as the plain failure would have.

extension ExchangeMachine {
    /// `(.exchange, .retryable(cause, options))`.
    static func retryable(_ c: inout ConnectionState, _ x: inout ExchangeState, _ cause: RetryCause,
                          _ options: RetryOptions, _ limits: ExchangeLimits) -> ExchangeAction {
        let decision = RetryPolicy.decide(cause, method: x.request.method, responseStarted: x.responseStarted,
                                          attemptsMade: x.attempts, fellBack: x.fellBack, options: options)
        switch decision {
        case .otherEndpoint:
            x.attempts += 1
            return .retryElsewhere
        case .sameEndpoint:
            x.attempts += 1
            return .retry
        case .baseline:
            x.attempts += 1
            x.fellBack = true
            return .fallback
        case .giveUp:
            // What the failure would have meant without retries: an answered status goes to the
            // client as it is (the driver writes it), anything else is a 502/504 or a cut.
            guard let reason = cause.errorReason else { return .none }
            return upstreamFailed(&c, &x, reason, limits)
        }
    }
}
