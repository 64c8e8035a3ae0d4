import CNghttp2
@preconcurrency import Glibc
import SluiceCore

/// HTTP/2 client connections: choosing HTTP/2 (ALPN `h2`, or the h2c preface on a plain listener
/// with `http2: true`), feeding nghttp2 the bytes read, sending what it queues, closing. Each
/// stream is an `H2Stream` driven like an HTTP/1.1 connection (`Worker+HTTP2Stream.swift`).
extension Worker {
    /// The client connection preface (RFC 9113 3.4).
    static let h2Preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// What the first bytes of a connection say about HTTP/2.
    enum H2Detection {
        /// HTTP/1.x (or HTTP/2 not enabled here).
        case http1
        /// The bytes so far are a prefix of the preface: wait for more.
        case undecided
        /// HTTP/2 started (`c.h2` is set).
        case started
    }

    /// Called before the first request head of a connection is parsed.
    func detectHTTP2(_ c: ClientConnection) -> H2Detection {
        guard c.h2 == nil, c.stream == nil, c.conn.requestsServed == 0 else { return .http1 }
        if let t = c.tls {
            // ALPN decided (`h2` is offered only on listeners with http2 on).
            guard t.handshakeDone, t.negotiatedH2 else { return .http1 }
            return startHTTP2(c) ? .started : .http1
        }
        let i = Int(c.listenerIndex)
        guard i < settings.listeners.count, settings.listeners[i].http2 else { return .http1 }
        let r = c.inBuffer.readable
        let n = min(r.count, Worker.h2Preface.count)
        guard n > 0 else { return .http1 }
        for k in 0..<n where r[k] != Worker.h2Preface[k] { return .http1 }
        if n < Worker.h2Preface.count { return .undecided }
        return startHTTP2(c) ? .started : .http1
    }

    /// Turns `c` into an HTTP/2 connection. False (and `c` closed) when nghttp2 cannot start.
    private func startHTTP2(_ c: ClientConnection) -> Bool {
        if h2.callbacks == nil {
            h2.callbacks = H2Callbacks.makeCallbacks()
            h2.option = H2Callbacks.makeOption(settings.http2)
        }
        let h = H2Connection(client: c, worker: self, limits: settings.http2, now: now)
        guard let cbs = h2.callbacks, let opt = h2.option,
              h.start(callbacks: cbs, option: opt, limits: settings.http2, streamWindow: h2StreamWindow) else {
            h.close()
            closeClient(c)
            return false
        }
        if let x = c.exchange {
            x.reset()
            detachExchange(c)
        }
        c.h2 = h
        c.deadline = 0
        c.lastReadProgress = now
        if recordMetrics { metrics.http2(listener: Int(c.listenerIndex), connections: 1, streams: 0) }
        return true
    }

    /// Each stream's receive window: the configured one, at most a connection buffer (the
    /// window is what `H2Stream.bodyIn` must be able to hold).
    var h2StreamWindow: Int { min(settings.http2.streamWindowBytes, bufferCapacity) }

    /// Advances an HTTP/2 connection: input to nghttp2, streams to their exchanges, output to
    /// the socket, until nothing moves (or the read budget is spent).
    func driveHTTP2(_ c: ClientConnection, _ h: H2Connection) {
        var budget = Worker.readBudget
        var rounds = 0
        h.queued = false
        if h.lingering {
            while readClient(c, budget: &budget) { c.inBuffer.clear() }
            c.inBuffer.clear()
            if c.readEOF || (c.hangup && !c.readable) { closeClient(c) }
            return
        }
        while c.conn.phase != .closed && rounds < 64 {
            rounds += 1
            var progressed = false
            if h.failure == nil, let s = h.session, !c.inBuffer.isEmpty {
                let r = c.inBuffer.readable
                let n = nghttp2_session_mem_recv(s, r.baseAddress!.assumingMemoryBound(to: UInt8.self), r.count)
                if n < 0 {
                    if h.failure == nil { h.failure = .protocolError }
                    c.inBuffer.clear()
                } else if n > 0 {
                    c.inBuffer.consume(n)
                    progressed = true
                }
            }
            // nghttp2 queued GOAWAY itself for a protocol error it found; for Sluice's own
            // verdicts (a flood, a bomb, resets, also those found while sending) it is asked to
            // (a second request is ignored).
            if let f = h.failure { h.terminate(f.code) }
            if runReadyStreams(h) { progressed = true }
            if sendHTTP2(c, h) { progressed = true }
            if c.conn.phase == .closed { return }
            if c.readEOF || (c.hangup && !c.readable) || h.session == nil {
                closeClient(c)
                return
            }
            if h.failure == nil && c.inBuffer.freeSpace > 0 && readClient(c, budget: &budget) { progressed = true }
            if !progressed { break }
        }
        guard c.conn.phase != .closed else { return }
        let outputDone = c.outBuffer.isEmpty && !h.wantsWrite
        if outputDone && h.failure != nil && !c.readEOF && !c.hangup {
            // The GOAWAY is out: half-close and drop what the client still sends (a flood goes on
            // arriving), so unread bytes do not turn the close into a reset.
            h.lingering = true
            c.tls?.shutdownQuietly()
            _ = shutdown(c.fd, Int32(SHUT_WR))
            c.inBuffer.clear()
            c.deadline = 0
            setClientDeadline(c, now &+ Worker.lingerTime)
            return
        }
        if outputDone && (h.failure != nil || (!h.wantsRead) || (h.draining && h.openStreams == 0)) {
            closeClient(c)
            return
        }
        if budget <= 0 && c.readable { queueHTTP2(h) }
        c.inBuffer.releaseIfEmpty()
        c.outBuffer.releaseIfEmpty()
        updateHTTP2Timer(c, h)
    }

    /// Sends what nghttp2 has queued through the connection's output buffer, and lets streams whose
    /// response bytes it took make more. Returns true when anything moved.
    private func sendHTTP2(_ c: ClientConnection, _ h: H2Connection) -> Bool {
        var progressed = false
        var rounds = 0
        while rounds < 64 {
            rounds += 1
            var moved = false
            if let s = h.session, c.outBuffer.freeSpace > 0, nghttp2_session_want_write(s) != 0 {
                let before = c.outBuffer.count
                if nghttp2_session_send(s) < 0 {
                    h.failure = h.failure ?? .internalError
                    c.inBuffer.clear()
                }
                if c.outBuffer.count != before { moved = true }
            }
            if !c.outBuffer.isEmpty && c.writable {
                if flushClient(c) { moved = true }
                if c.conn.phase == .closed { return true }
            }
            if !h.drained.isEmpty {
                h.drained.drain { s in
                    guard s.connection === h else { return }
                    if s.finished {
                        s.client.lastWriteProgress = now  // its send deadline (h2StreamSendTimedOut) moves on
                        return
                    }
                    s.client.writable = true
                    drive(s.client)
                }
                moved = true
            }
            if runReadyStreams(h) { moved = true }
            if !moved { break }
            progressed = true
        }
        return progressed
    }

    /// Hands each stream with news (a complete head, body bytes, its end, a reset) to its exchange.
    @discardableResult
    func runReadyStreams(_ h: H2Connection) -> Bool {
        guard !h.ready.isEmpty else { return false }
        var rounds = 0
        while !h.ready.isEmpty && rounds < 8 {
            rounds += 1
            h.ready.drain { s in
                guard s.connection === h else { return }
                s.inReadyList = false
                feedStream(s, h)
            }
        }
        return true
    }

    /// Asks for `h`'s output to be sent at the end of this event batch (a stream driven by its
    /// upstream's events queued response bytes).
    func queueHTTP2(_ h: H2Connection) {
        // A closed connection is never queued: its client object may be freed before the end of
        // the batch, and `h.client` is unowned.
        guard !h.queued, h.session != nil else { return }
        h.queued = true
        h2.dirty.append(h)
    }

    /// End of an event batch: connections whose streams queued output send it (one send per
    /// connection per batch, however many streams wrote).
    func flushQueuedHTTP2() {
        var rounds = 0
        while !h2.dirty.isEmpty && rounds < 4 {
            rounds += 1
            // A connection closed since it was queued has no session (and its client object may be gone).
            h2.dirty.drain { h in
                guard h.queued else { return }
                h.queued = false
                if h.session != nil && h.client.conn.phase != .closed && h.client.h2 === h { driveHTTP2(h.client, h) }
            }
        }
    }

    /// The connection's own deadline: output not moving for `client_send`, or no stream for
    /// `client_idle`. Each stream has its exchange's deadlines.
    private func updateHTTP2Timer(_ c: ClientConnection, _ h: H2Connection) {
        let t = settings.timeouts
        let d: UInt64
        if !c.outBuffer.isEmpty && !c.writable {
            d = c.lastWriteProgress &+ t.clientSend
        } else if h.openStreams == 0 {
            d = max(c.lastReadProgress, c.lastWriteProgress) &+ (h.draining ? min(t.clientIdle, 1_000_000_000) : t.clientIdle)
        } else {
            d = 0
        }
        if d == 0 { c.deadline = 0 } else { setClientDeadline(c, d) }
    }

    /// The connection's deadline passed: GOAWAY and close (or wait when output moved meanwhile).
    func http2TimedOut(_ c: ClientConnection, _ h: H2Connection) {
        if h.lingering {
            closeClient(c)
            return
        }
        if h.openStreams > 0 && (c.outBuffer.isEmpty || c.writable) {
            updateHTTP2Timer(c, h)
            return
        }
        h.terminate(NGHTTP2_NO_ERROR)
        _ = sendHTTP2(c, h)
        if c.conn.phase != .closed { closeClient(c) }
    }

    /// Drain: GOAWAY with the last stream id; streams in flight finish, then the connection closes.
    func drainHTTP2(_ c: ClientConnection, _ h: H2Connection) {
        guard !h.draining, let s = h.session else { return }
        h.draining = true
        _ = nghttp2_submit_goaway(s, UInt8(NGHTTP2_FLAG_NONE.rawValue), nghttp2_session_get_last_proc_stream_id(s),
                                  NGHTTP2_NO_ERROR.rawValue, nil, 0)
        driveHTTP2(c, h)
    }

    /// Before the connection closes: every stream's exchange ends, the session is freed.
    func closeHTTP2(_ c: ClientConnection, _ h: H2Connection) {
        for s in h2.slots where s.connection === h {
            s.id = 0
            if !s.finished { finishStream(s) } else { releaseStream(s, h) }
        }
        h.close()
        // Out of the end-of-batch send list (a stream finishing above may have queued it): the
        // list would read `h.client` after `c` is freed.
        h.queued = false
        h.ready.removeAll()
        h.drained.removeAll()
        c.h2 = nil
        if recordMetrics, let r = h.failure?.reason { metrics.http2Closed(listener: Int(c.listenerIndex), reason: r) }
    }
}
