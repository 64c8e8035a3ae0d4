import SluiceCore

/// Carrying out retries and the fallback to the baseline (`RetryPolicy` decides, through
/// `ExchangeMachine`'s `.retryable` event): the route's settings and budget, keeping a small
/// request body so a retry can send it again, and moving a request to the baseline cohort.
/// Nothing here runs for a request whose route has no `retries:`/`fallback_to_baseline:` beyond
/// one optional check, and nothing allocates unless a retryable request has a body.
extension Worker {
    /// At forward: takes the route's settings, counts the request in the route's budget, and
    /// starts keeping the body when a retry could need it (idempotent, small enough).
    func prepareRetries(_ x: Exchange, table: RoutingTable) {
        guard let spec = table.retrySpec(for: x.decision) else { return }
        x.retry = spec
        retryBudget.noteRequest(route: Int(x.decision.route), nanos: now)
        let r = x.state.request
        let limit = settings.limits.retryBufferBytes
        guard !r.bodyless, r.method.isIdempotent, limit > 0 else { return }
        switch r.framing {
        case .contentLength(let n) where n <= limit: break
        case .chunked: break  // length unknown: kept until it passes the limit
        default: return
        }
        x.retryBody.removeAll(keepingCapacity: true)
        x.keepingBody = true
    }

    /// Keeps request body bytes as they are sent upstream (as framed for the upstream).
    @inline(__always)
    func keepBody(_ x: Exchange, _ bytes: UnsafeRawBufferPointer) {
        guard x.keepingBody else { return }
        if x.retryBody.count + bytes.count > Int(settings.limits.retryBufferBytes) {
            // Too large to keep: this request is not retried once any of its body was sent.
            x.keepingBody = false
            x.retryBody.removeAll(keepingCapacity: false)
            return
        }
        x.retryBody.append(contentsOf: bytes)
    }

    /// The request body could be sent again: none (or none yet) of it was sent, or all of it is kept.
    func bodyReplayable(_ x: Exchange) -> Bool {
        if x.state.request.bodyless || x.keepingBody { return true }
        if case .contentLength = x.state.request.framing { return x.state.requestBodyBytes == 0 }
        return false
    }

    /// The `.retryable` event for `cause` with the facts the policy needs, or nil when the route
    /// has nothing to say about it (the plain failure event applies).
    func retryableEvent(_ x: Exchange, _ cause: RetryCause) -> ExchangeEvent? {
        guard let spec = x.retry, let t = x.table, t === table else { return nil }
        guard spec.retryOn & cause.bit != 0 || spec.fallbackToBaseline else { return nil }
        // An interim response (103 Early Hints) relayed to the client is a response byte: no retry.
        guard x.record.bytesOut == 0 else { return nil }
        x.alternate = -1
        if let e = table.alternateEndpoint(upstream: x.decision.upstream, tried: x.triedEndpoints, balancer: &balancer) {
            x.alternate = e
        }
        var options = RetryOptions(spec: spec, anotherEndpoint: x.alternate >= 0,
                                   baselineAvailable: spec.fallbackToBaseline && table.hasOtherBaseline(x.decision),
                                   budgetAllows: true, bodyReplayable: bodyReplayable(x))
        let decision = RetryPolicy.decide(cause, method: x.state.request.method, responseStarted: x.state.responseStarted,
                                          attemptsMade: x.state.attempts, fellBack: x.state.fellBack, options: options)
        if decision == .otherEndpoint || decision == .sameEndpoint {
            if case .connectFailure = cause {} else {
                options.budgetAllows = retryBudget.takeRetry(route: Int(x.decision.route), percent: spec.budgetPercent,
                                                             nanos: now)
            }
        }
        x.retryCause = cause
        return .retryable(cause, options)
    }

    /// The event for an upstream connection lost before any response byte: the stale-pooled-
    /// connection rule for a reused one, the route's retry rules for a fresh one.
    func lostEvent(_ x: Exchange, _ u: UpstreamConnection) -> ExchangeEvent {
        if !u.reused && u.connected, let event = retryableEvent(x, .reset) { return event }
        if u.reused { x.retryCause = .reset }
        return .upstreamLost(reused: u.reused, connected: u.connected)
    }

    /// A retry starts (`.retry`, `.retryElsewhere`): counted, and the new attempt's accounting reset.
    func noteRetry(_ x: Exchange) {
        let cause = x.retryCause ?? .connectFailure(.connectRefused)
        x.retryCause = nil
        x.retries += 1
        if recordMetrics { metrics.recordRetry(series: x.record.series, cause: cause) }
        beginAttempt(x)
    }

    /// Per-attempt state back to its start: the kept body is sent again first.
    func beginAttempt(_ x: Exchange) {
        x.record.upstreamFirstByteNanos = nil
        x.record.upstreamSentAt = 0
        x.replayOffset = x.keepingBody && !x.retryBody.isEmpty ? 0 : -1
    }

    /// Sends the kept body again on a retry's connection, before any further body byte from the
    /// client. Returns progress.
    func replayBody(_ x: Exchange, _ u: UpstreamConnection) -> Bool {
        guard x.replayOffset >= 0 else { return false }
        let n = min(u.outBuffer.freeSpace, x.retryBody.count - x.replayOffset)
        if n > 0 {
            let start = x.replayOffset
            x.retryBody.withUnsafeBytes { _ = u.outBuffer.append(UnsafeRawBufferPointer(rebasing: $0[start..<(start + n)])) }
            x.replayOffset += n
        }
        if x.replayOffset >= x.retryBody.count { x.replayOffset = -1 }
        return n > 0
    }

    /// `.fallback`: the failed attempt is recorded as a request of its cohort (its status in the
    /// request counters, hence the windowed stats and the rollout gates), and the request goes to
    /// the route's baseline cohort with the cohort header rewritten.
    func fallBack(_ c: ClientConnection, _ x: Exchange) {
        abortUpstream(x)
        let cause = x.retryCause ?? .reset
        x.retryCause = nil
        guard let t = x.table, t === table, let d = t.baselineDecision(for: x.decision, entropy: nextEntropy(), balancer: &balancer) else {
            perform(c, x, step(c, x, .upstreamFailed(cause.errorReason ?? .badResponse)))
            return
        }
        let failed = x.record.series
        if recordMetrics {
            metrics.recordRequest(series: failed, status: cause.status, durationNanos: now &- x.record.start,
                                  bytesIn: x.record.headBytes &+ x.state.requestBodyBytes, bytesOut: 0)
            if let reason = cause.errorReason { metrics.recordUpstreamError(series: failed, reason: reason) }
            metrics.recordFallback(series: failed)
        }
        _ = t.replaceCohortHeader(in: &x.upstreamHead, route: d.route, from: x.decision.cohort, to: d.cohort)
        x.fallbackFrom = x.decision.cohort
        x.decision = d
        x.record.series = series.series(for: d)
        x.record.upstreamMetricsID = series.upstream(for: d)
        if recordMetrics && x.record.inFlightCounted {
            metrics.addInFlight(series: failed, -1)
            metrics.addInFlight(series: x.record.series, 1)
        }
        // The request now loads the baseline's group: the failed group's `max_requests` count is
        // given back and the baseline's taken; over the baseline's limit, 503 circuit_open at once.
        requestEnded(x)
        if !admitRequest(x) {
            perform(c, x, step(c, x, .upstreamFailed(.circuitOpen)))
            return
        }
        let pool = pools[Int(d.upstream)][Int(d.endpoint)]
        x.pool = pool
        x.triedEndpoints = d.endpoint >= 0 && d.endpoint < 64 ? 1 << UInt64(d.endpoint) : 0
        beginAttempt(x)
        attachUpstream(c, x, pool: pool, allowPooled: true)
    }
}
