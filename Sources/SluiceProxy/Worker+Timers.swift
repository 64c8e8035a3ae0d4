import SluiceCore

/// Deadlines: one per connection, kept in a lazy min-heap that drives epoll_wait's timeout.
/// What a deadline is and what its expiry means are the exchange machine's decisions.
extension Worker {
    func setClientDeadline(_ c: ClientConnection, _ d: UInt64) {
        c.deadline = d
        if d != 0 && (c.queuedDeadline == 0 || d < c.queuedDeadline) {
            c.queuedDeadline = d
            timers.push(.init(deadline: d, fd: c.fd, generation: c.generation))
        }
    }

    func setUpstreamDeadline(_ u: UpstreamConnection, _ d: UInt64) {
        u.deadline = d
        if d != 0 && (u.queuedDeadline == 0 || d < u.queuedDeadline) {
            u.queuedDeadline = d
            timers.push(.init(deadline: d, fd: u.fd, generation: u.generation))
        }
    }

    func fireTimers() {
        while let e = timers.popDue(now: now) {
            let reg: Registration
            if e.fd <= H2UpstreamStreams.fdBase {
                // An upstream HTTP/2 stream's connection object.
                guard let u = upstreamStream(fd: e.fd, generation: e.generation) else { continue }
                reg = .upstream(u)
            } else if e.fd < 0 {
                // An HTTP/2 stream's connection object (no socket, not registered with epoll).
                guard let s = h2.lookup(fd: e.fd, generation: e.generation) else { continue }
                reg = .client(s.client)
            } else {
                reg = registrations.lookup(fd: e.fd, generation: e.generation)
            }
            switch reg {
            case .client(let c):
                guard e.deadline == c.queuedDeadline else { continue }
                c.queuedDeadline = 0
                if c.deadline != 0 && c.deadline <= now {
                    clientTimedOut(c)
                } else if c.deadline != 0 {
                    setClientDeadline(c, c.deadline)
                }
            case .upstream(let u):
                guard e.deadline == u.queuedDeadline else { continue }
                u.queuedDeadline = 0
                if u.deadline != 0 && u.deadline <= now {
                    upstreamTimedOut(u)
                } else if u.deadline != 0 {
                    setUpstreamDeadline(u, u.deadline)
                }
            case .mirror(let m):
                mirrorTimer(m)
            case .h2upstream(let sess):
                upstreamSessionTimer(sess, deadline: e.deadline)
            default:
                continue
            }
        }
    }

    private func clientTimedOut(_ c: ClientConnection) {
        c.deadline = 0
        if let h = c.h2 {
            http2TimedOut(c, h)
            return
        }
        if let s = c.stream, s.finished {
            h2StreamSendTimedOut(s)
            return
        }
        if let x = c.exchange, x.delayUntil != 0 {
            resumeDelayed(c, x)
            if c.conn.phase != .closed { drive(c) }
            return
        }
        let inputBuffered = !c.inBuffer.isEmpty
        let x: Exchange? = c.conn.phase == .awaitingHead && inputBuffered ? attachExchange(c) : c.exchange
        if let x, c.conn.phase == .awaitingHead && inputBuffered { beginRequest(c, x, parsed: false) }
        let action = step(c, x, .clientTimedOut(inputBuffered: inputBuffered, outputQueued: !c.outBuffer.isEmpty))
        if let x {
            perform(c, x, action)
        } else if action == .close {
            closeClient(c)
        }
        if c.conn.phase != .closed { drive(c) }
    }

    private func upstreamTimedOut(_ u: UpstreamConnection) {
        u.deadline = 0
        guard let c = u.client, let x = c.exchange else {
            closeUpstream(u)  // idle timeout in the pool
            return
        }
        if u.lowWater != 0 && now &- u.lastProgress < settings.timeouts.upstreamResponseHeader {
            // Not a timeout: the low-water mark waited long enough. Lowering it makes the kernel
            // report whatever has arrived.
            setLowWater(u, 0)
            updateUpstreamTimer(u, x)
            return
        }
        let event: ExchangeEvent
        if !u.connected {
            event = connectFailed(x, .connectTimeout)
        } else if x.state.responseBody.isAwaitingHead, let retry = retryableEvent(x, .timeout) {
            event = retry  // per_try_timeout (or the response-header timeout) of one attempt
        } else {
            event = .upstreamFailed(.responseTimeout)
        }
        perform(c, x, step(c, x, event))
        if c.conn.phase != .closed { drive(c) }
    }

    /// Recomputes a client's deadline from its state after it made progress.
    func updateClientTimer(_ c: ClientConnection) {
        let x = c.exchange
        let pipeBytes = x?.upstream?.pipe?.count ?? 0
        let facts = ClientTimerFacts(
            phase: c.conn.phase, hasDeadline: c.deadline != 0, inputBuffered: !c.inBuffer.isEmpty,
            outputBlocked: (!c.outBuffer.isEmpty || pipeBytes > 0) && !c.writable,
            requestBodyDone: x?.state.requestBody.isDone ?? true, requestsServed: c.conn.requestsServed,
            phaseStart: c.phaseStart, lastReadProgress: c.lastReadProgress, lastWriteProgress: c.lastWriteProgress,
            retireAt: x?.retireAt ?? 0)
        switch ExchangeMachine.clientDeadline(facts, settings.timeouts) {
        case .keep: break
        case .clear: c.deadline = 0
        case .at(let d): setClientDeadline(c, d)
        }
    }

    /// Recomputes the upstream's deadline: connect timeout, then the response-header deadline
    /// (counted from when the request was sent, for the whole head: a trickling head or a stream
    /// of 1xx responses does not extend it), then inactivity while the body is relayed.
    func updateUpstreamTimer(_ u: UpstreamConnection, _ x: Exchange) {
        let t = settings.timeouts
        if u.client?.conn.phase == .tunnel {
            if u.deadline != 0 { u.deadline = 0 }  // the client's tunnel deadline covers both sides
            return
        }
        if !u.connected {
            if u.deadline == 0 { setUpstreamDeadline(u, u.connectStart &+ t.upstreamConnect) }
            return
        }
        switch x.state.responseBody {
        case .awaitingHead:
            if u.requestSentAt != 0 {
                var wait = t.upstreamResponseHeader
                if let perTry = x.retry?.perTryTimeoutNanos, perTry > 0, perTry < wait { wait = perTry }
                setUpstreamDeadline(u, u.requestSentAt &+ wait)
            } else if !u.outBuffer.isEmpty && !u.writable {
                // The upstream stopped taking the request: as long without progress as it may
                // take to answer (nginx's proxy_send_timeout plays this part).
                setUpstreamDeadline(u, u.lastSendProgress &+ t.upstreamResponseHeader)
            } else if u.deadline != 0 {
                u.deadline = 0
            }
        case .done:
            if u.deadline != 0 { u.deadline = 0 }
        default:
            guard let c = u.client else { return }
            if u.inBuffer.freeSpace == 0 || c.outBuffer.freeSpace < 1024 || ((u.pipe?.count ?? 0) > 0 && !c.writable) {
                if u.deadline != 0 { u.deadline = 0 }  // held back by the client: its send timeout applies
            } else if u.lowWater != 0 {
                setUpstreamDeadline(u, min(u.lastProgress &+ t.upstreamResponseHeader, u.lowWaterSince &+ Worker.lowWaterWait))
            } else {
                setUpstreamDeadline(u, u.lastProgress &+ t.upstreamResponseHeader)
            }
        }
    }
}
