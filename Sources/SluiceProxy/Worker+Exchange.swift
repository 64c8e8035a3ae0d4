@preconcurrency import Glibc
import SluiceCore

/// Carrying out the exchange machine's decisions. `step` reports an event to
/// `ExchangeMachine.handle`; `perform` is the only place that turns an `ExchangeAction` into IO.
extension Worker {
    /// Reports `event` for `c` (and its exchange, when it has one) to the machine.
    @inline(__always)
    func step(_ c: ClientConnection, _ x: Exchange?, _ event: ExchangeEvent) -> ExchangeAction {
        if let x {
            return ExchangeMachine.handle(event, connection: &c.conn, exchange: &x.state, limits: exchangeLimits)
        }
        var none = ExchangeState()
        return ExchangeMachine.handle(event, connection: &c.conn, exchange: &none, limits: exchangeLimits)
    }

    /// Carries out `action` for `c`'s exchange `x`.
    func perform(_ c: ClientConnection, _ x: Exchange, _ action: ExchangeAction) {
        switch action {
        case .none:
            return
        case .route:
            routeRequest(c, x)
        case .respond(let response, let upstreamError):
            if let upstreamError { noteUpstreamError(x, upstreamError) }
            abortUpstream(x)
            queueGenerated(c, x, response)
        case .forward(let plan):
            forward(c, x, plan)
        case .startResponse:
            // Written by `startResponse`, which asked for it (it holds the response head's bytes).
            return
        case .startTunnel:
            startTunnel(c, x)
        case .retry:
            reportRetriedAttempt(x)
            abortUpstream(x)
            noteRetry(x)
            if let pool = x.pool { attachUpstream(c, x, pool: pool, allowPooled: false) }
        case .retryElsewhere:
            reportRetriedAttempt(x)
            abortUpstream(x)
            noteRetry(x)
            let upstream = Int(x.decision.upstream), endpoint = Int(x.alternate)
            x.decision.endpoint = x.alternate
            if endpoint < 64 { x.triedEndpoints |= 1 << UInt64(endpoint) }
            let pool = pools[upstream][endpoint]
            x.pool = pool
            attachUpstream(c, x, pool: pool, allowPooled: true)
        case .fallback:
            reportRetriedAttempt(x)
            fallBack(c, x)
        case .cut(let reason):
            if let reason { noteUpstreamError(x, reason) }
            abortUpstream(x)
        case .close:
            abortUpstream(x)
            closeClient(c)
        case .complete(let reusable):
            releaseUpstream(x, protocolAllowsReuse: reusable)
            requestFinished(c, x)
        }
    }

    // MARK: - Request heads

    func advanceAwaitingHead(_ c: ClientConnection, budget: inout Int) -> Bool {
        if let x = c.exchange, x.delayUntil != 0 {
            // Held by a fault drill's delay: nothing to parse; a client that leaves ends it.
            if c.readEOF || c.hangup {
                closeClient(c)
            }
            return false
        }
        var undecided = false
        if c.conn.requestsServed == 0 && c.stream == nil && (!c.inBuffer.isEmpty || c.tls != nil) {
            switch detectHTTP2(c) {
            case .started: return true
            case .undecided: undecided = true
            case .http1: break
            }
            if c.conn.phase == .closed { return false }
        }
        // A pipelined request waits until the previous response has left the output buffer: that
        // buffer is the backpressure, for generated responses as for proxied ones.
        if !undecided && !c.inBuffer.isEmpty && c.outBuffer.isEmpty {
            let x = attachExchange(c)
            switch RequestParser.parse(c.inBuffer.readable, into: &x.head, progress: &x.progress,
                                       limits: settings.limits.parser) {
            case .complete:
                beginRequest(c, x, parsed: true)
                perform(c, x, step(c, x, .headParsed(RequestFacts(x.head))))
                return true
            case .invalid(let error):
                beginRequest(c, x, parsed: false)
                perform(c, x, step(c, x, .headInvalid(error)))
                return true
            case .incomplete:
                break
            }
        }
        if c.readEOF || (c.hangup && !c.readable) {
            // Client closed between requests (or mid-head): nothing to answer.
            closeClient(c)
            return false
        }
        if c.conn.draining && c.inBuffer.isEmpty && c.outBuffer.isEmpty {
            closeClient(c)
            return false
        }
        let wasEmpty = c.inBuffer.isEmpty
        let got = readClient(c, budget: &budget)
        if got && wasEmpty && !c.inBuffer.isEmpty {
            // First byte of a new head: the header timeout starts now.
            attachExchange(c)
            c.phaseStart = now
            setClientDeadline(c, now &+ settings.timeouts.clientHeader)
        }
        return got
    }

    /// Routes a parsed request with the worker's current table and reports the outcome.
    func routeRequest(_ c: ClientConnection, _ x: Exchange) {
        if settings.listeners[Int(c.listenerIndex)].redirectHTTPS {
            // `redirect_https`: nothing is routed; the answer is a 308 to the https URL.
            x.redirectLocation(head: x.head, bytes: c.inBuffer.readable)
            c.inBuffer.consume(x.head.headLength)
            perform(c, x, step(c, x, .routed(.redirectHTTPS)))
            return
        }
        let table = self.table
        let decision = table.decide(head: x.head, bytes: c.inBuffer.readable, client: c.peer, entropy: nextEntropy(),
                                    balancer: &balancer)
        x.decision = decision
        x.table = table
        x.record.series = series.series(for: decision)
        if decision.action == .forward, table.policy(for: decision).compresses {
            let bytes = c.inBuffer.readable
            let head = x.head
            if let value = Worker.acceptEncodingName.withUnsafeBytes({ head.fieldValue(named: $0, in: bytes) }) {
                x.acceptsGzip = CompressionPolicy.acceptsGzip(UnsafeRawBufferPointer(rebasing: bytes[value.range]))
            }
        }
        let outcome: RouteOutcome
        switch decision.action {
        case .notFound:
            outcome = .notFound
        case .respond:
            outcome = .respond(configured: decision.response, status: table.responses[Int(decision.response)].status)
        case .forward:
            // `x.head.upgrade` read in place: binding `x.head` would copy the head (a retain and a
            // release of its field list per request).
            let upgrade = x.head.upgrade.count > 0
                && table.policy(for: decision).allowsUpgrade(UnsafeRawBufferPointer(rebasing: c.inBuffer.readable[x.head.upgrade.range]))
            outcome = .forward(upgrade: upgrade)
        }
        if case .forward = outcome {} else { c.inBuffer.consume(x.head.headLength) }
        if decision.fault == .delay && decision.delayNanos > 0, case .forward = outcome {
            // A fault drill's delay: hold the request (its head stays in the buffer) until the
            // client's timer fires, then forward it (`resumeDelayed`).
            x.delayUntil = now &+ decision.delayNanos
            x.delayedOutcome = outcome
            setClientDeadline(c, x.delayUntil)
            return
        }
        perform(c, x, step(c, x, .routed(outcome)))
    }

    /// A delayed request's time has come: forward it as routed.
    func resumeDelayed(_ c: ClientConnection, _ x: Exchange) {
        let outcome = x.delayedOutcome
        x.delayUntil = 0
        c.deadline = 0
        perform(c, x, step(c, x, .routed(outcome)))
    }

    /// Serializes the upstream request (while the head's bytes are in the buffer) and attaches an
    /// upstream connection.
    private func forward(_ c: ClientConnection, _ x: Exchange, _ plan: ForwardPlan) {
        let decision = x.decision
        let pool = pools[Int(decision.upstream)][Int(decision.endpoint)]
        let bytes = c.inBuffer.readable
        x.upstreamHead.removeAll(keepingCapacity: true)
        x.peerText.withUnsafeBytes { peerBytes in
            pool.hostBytes.withUnsafeBytes { host in
                x.requestID.withUnsafeBytes { id in
                    let policy = x.policy
                    HeadWriter.appendRequestStart(x.head, bytes: bytes, clientAddress: peerBytes, forwardedProto: c.isSecure ? .https : .http,
                                                  fallbackHost: host, trustForwarded: c.trusted,
                                                  normalizingPath: policy?.forwardsNormalizedPath ?? false, policy: policy,
                                                  requestID: id, to: &x.upstreamHead)
                }
            }
        }
        if plan.upgrade {
            // The protocol switch the route allows: Upgrade and Connection go to the upstream.
            x.upgradeValue.removeAll(keepingCapacity: true)
            x.upgradeValue.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[x.head.upgrade.range]))
            HeadWriter.appendStatic("Connection: upgrade\r\nUpgrade: ", to: &x.upstreamHead)
            x.upstreamHead.append(contentsOf: x.upgradeValue)
            HeadWriter.appendStatic("\r\n", to: &x.upstreamHead)
        }
        HeadWriter.appendFraming(plan.upstreamFraming, closeConnection: false, http10KeepAlive: false, to: &x.upstreamHead)
        if x.mirror == nil, let t = x.table, t.mirrors { startMirror(c, x, upgrade: plan.upgrade) }
        c.inBuffer.consume(x.head.headLength)
        x.pool = pool
        if decision.endpoint >= 0 && decision.endpoint < 64 { x.triedEndpoints = 1 << UInt64(decision.endpoint) }
        x.record.upstreamMetricsID = series.upstream(for: decision)
        if let t = x.table { prepareRetries(x, table: t) }
        if recordMetrics {
            metrics.addInFlight(series: x.record.series, 1)
            x.record.inFlightCounted = true
        }
        c.deadline = 0
        c.lastReadProgress = now
        if !admitRequest(x) {
            // A circuit breaker of the group is open (`max_requests`): 503 at once, nothing sent.
            perform(c, x, step(c, x, .upstreamFailed(.circuitOpen)))
            return
        }
        if plan.sendContinue && c.inBuffer.isEmpty {
            // We answer 100-continue ourselves (Expect is not forwarded), as nginx does.
            let interim: StaticString = "HTTP/1.1 100 Continue\r\n\r\n"
            c.outBuffer.append(UnsafeRawBufferPointer(start: interim.utf8Start, count: interim.utf8CodeUnitCount))
        }
        attachUpstream(c, x, pool: pool, allowPooled: true)
    }

    /// Queues a response Sluice generated (the machine has already moved the phase on).
    private func queueGenerated(_ c: ClientConnection, _ x: Exchange, _ response: GeneratedResponse) {
        scratch.removeAll(keepingCapacity: true)
        x.location.withUnsafeBytes { location in
            response.append(to: &scratch, responses: x.table?.responses ?? [], location: location)
        }
        if !c.outBuffer.append(scratch) {
            // Larger than an output buffer (a configured response of more than `bufferCapacity`
            // bytes cannot be queued): give up on the connection.
            closeClient(c)
            return
        }
        x.record.status = response.status
        x.record.bytesOut &+= UInt64(scratch.count)
        requestFinished(c, x)
    }

    /// After a response is queued (or the exchange completed): record the request, note input
    /// left unread, and make the exchange ready for the next head on this connection.
    func requestFinished(_ c: ClientConnection, _ x: Exchange) {
        endRequest(c, x)
        releaseCompressor(x)
        if c.conn.phase == .awaitingHead {
            // Waiting for the next head: its header (or idle) deadline counts from now.
            c.phaseStart = now
            c.deadline = 0
        } else if !c.inBuffer.isEmpty {
            ExchangeMachine.noteUnreadInput(&c.conn)
        }
        x.reset()
    }

    /// Gives an unfinished response's deflate stream back (a finished one was given back already).
    func releaseCompressor(_ x: Exchange) {
        if let z = x.compressor {
            x.compressor = nil
            compressors.give(z)
        }
    }

    static let acceptEncodingName: [UInt8] = Array("accept-encoding".utf8)

    /// The event for a connection that failed before any byte was sent, with whether another
    /// endpoint of the group is left to try (only on the table the request was routed with).
    /// `local`: the socket could not even be made here (descriptors exhausted, TLS setup): not the
    /// endpoint's failure, so outlier detection does not count it.
    func connectFailed(_ x: Exchange, _ reason: UpstreamErrorReason, local: Bool = false) -> ExchangeEvent {
        x.alternate = -1
        if !local { reportEndpoint(x, failed: true) }
        if let t = x.table, t === table,
           let e = table.alternateEndpoint(upstream: x.decision.upstream, tried: x.triedEndpoints, balancer: &balancer) {
            x.alternate = e
        }
        if x.alternate < 0 || x.state.requestBodyBytes > 0, let event = retryableEvent(x, .connectFailure(reason)) {
            return event
        }
        x.retryCause = .connectFailure(reason)
        return .connectFailed(reason, another: x.alternate >= 0)
    }

    // MARK: - Proxying

    func advanceExchange(_ c: ClientConnection, _ x: Exchange, budget: inout Int) -> Bool {
        guard let u = x.upstream else { return false }
        var progressed = false

        if c.hangup && (x.state.requestBody.isDone || !c.readable) {
            // The client went away mid-exchange (as nginx, a half-close counts): the upstream
            // connection's state is unknown, so it is closed rather than pooled.
            perform(c, x, step(c, x, .clientGone))
            return false
        }

        // Connect completion. The request body stays with the client until the connection is
        // up, so a failed connect can be retried on another endpoint with nothing lost.
        if !u.connected {
            guard u.failedErrno != 0 || u.writable || u.hangup else { return false }
            let err = u.failedErrno != 0 ? u.failedErrno : Sys.pendingError(u.fd)
            if err != 0 || u.hangup && !u.writable {
                perform(c, x, step(c, x, connectFailed(x, .connectRefused)))
                return true
            }
            u.connected = true
            if u.pendingCounted { connectionEstablished(u) }
            u.lastProgress = now
            u.deadline = 0
            x.record.upstreamConnectNanos = now &- u.connectStart
            progressed = true
        }

        // Request body: client -> upstream buffer (a retry first sends again what was kept).
        if x.replayOffset >= 0 {
            if replayBody(x, u) { progressed = true }
        } else if pumpRequestBody(c, x, u, budget: &budget) {
            progressed = true
        }
        if c.conn.phase != .exchange || x.upstream !== u { return true }

        // Flush to upstream.
        if !u.outBuffer.isEmpty && u.writable {
            switch flushUpstream(u) {
            case .idle: break
            case .wrote:
                if x.record.upstreamSentAt == 0 { x.record.upstreamSentAt = now }
                u.lastSendProgress = now
                progressed = true
            case .failed(let e):
                u.hangup = true
                u.writable = false
                if e != 0 { u.failedErrno = e }
                u.outBuffer.clear()
                if upstreamTLSFailed(c, x, u) { return true }
                if x.state.responseBody.isAwaitingHead && u.inBuffer.isEmpty {
                    perform(c, x, step(c, x, lostEvent(x, u)))
                    return true
                }
            }
        }
        if u.requestSentAt == 0, u.outBuffer.isEmpty, x.state.requestBody.isDone, x.replayOffset < 0 {
            u.requestSentAt = now
        }

        // Read from upstream: a long Content-Length body is spliced once nothing is buffered for it.
        if u.pipe != nil || startSplice(c, x, u) {
            if spliceBody(c, x, u, budget: &budget) { progressed = true }
            if c.conn.phase != .exchange { return true }
        } else if readUpstream(u, budget: &budget) {
            progressed = true
        }
        if upstreamTLSFailed(c, x, u) { return true }

        // Response: upstream buffer -> client buffer.
        if pumpResponse(c, x, u) { progressed = true }
        if c.conn.phase != .exchange { return true }

        // Both directions complete: end the exchange.
        if x.state.responseBody.isDone {
            if x.state.requestBody.isDone {
                perform(c, x, step(c, x, .bodiesComplete))
                return true
            }
            if c.conn.closeAfterResponse {
                // The upstream answered before the body was fully sent: close both when flushed.
                perform(c, x, step(c, x, .responseCompleteFirst))
                return true
            }
        }
        return progressed
    }
}
