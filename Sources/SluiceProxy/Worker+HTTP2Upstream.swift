import CNghttp2
@preconcurrency import Glibc
import SluiceCore

/// HTTP/2 to upstreams (`protocol: h2c` / `h2`, for gRPC services): a few connections per endpoint
/// per worker, each carrying many exchanges' requests as streams. An exchange sees its stream as
/// an upstream connection (`H2UpstreamStream.upstream`): it writes an HTTP/1.1 request and reads an
/// HTTP/1.1 response (chunked, with the HTTP/2 trailers in its last chunk), so routing, retries,
/// timeouts and accounting are the same as for HTTP/1.1 upstreams.
extension Worker {
    // MARK: - Opening a stream

    /// A stream on a connection to `pool`'s endpoint for the exchange (a new connection when none
    /// has room). Nil when no socket could be made.
    func openUpstreamStream(_ pool: EndpointPool, metricsID: Int32) -> H2UpstreamStream? {
        // A connection still not up after the connect timeout (a silent endpoint) takes no more
        // streams: its own are timed out by their exchanges; it is failed here.
        for sess in pool.h2Sessions where !sess.connected && now &- sess.connectStart > settings.timeouts.upstreamConnect {
            failUpstreamSession(sess, errno: ETIMEDOUT)
        }
        var session = pool.h2Sessions.first(where: { $0.hasRoom })
        if session == nil {
            session = connectUpstreamSession(pool, metricsID: metricsID)
        }
        guard let sess = session else { return nil }
        let s = h2up.take(capacity: bufferCapacity, buffers: buffers, pool: pool, limits: settings.limits.parser)
        s.open(on: sess)
        s.upstream.connectStart = sess.connected ? now : sess.connectStart
        sess.streams += 1
        sess.lastActive = now
        sess.deadline = 0
        return s
    }

    private func connectUpstreamSession(_ pool: EndpointPool, metricsID: Int32) -> H2UpstreamSession? {
        if h2up.callbacks == nil {
            h2up.callbacks = H2UpstreamCallbacks.makeCallbacks()
            var o: OpaquePointer?
            if nghttp2_option_new(&o) == 0, let o {
                nghttp2_option_set_no_auto_window_update(o, 1)
                nghttp2_option_set_no_closed_streams(o, 1)
                h2up.option = o
            }
        }
        guard let cbs = h2up.callbacks, let opt = h2up.option else { return nil }
        let fd: Int32
        do { fd = try Sys.tcpSocket(for: pool.address) } catch { return nil }
        Sys.setNoDelay(fd)
        let gen = registrations.nextGeneration(fd)
        let sess = H2UpstreamSession(fd: fd, generation: gen, pool: pool, worker: self, capacity: bufferCapacity, buffers: buffers)
        sess.connectStart = now
        if let ctx = pool.tls {
            guard let t = ctx.connection(fd: fd, host: pool.hostName, slot: pool.sessionSlot) else {
                Sys.close(fd)
                return nil
            }
            sess.tls = t
        }
        var s: OpaquePointer?
        guard nghttp2_session_client_new2(&s, cbs, Unmanaged.passUnretained(sess).toOpaque(), opt) == 0, let s else {
            Sys.close(fd)
            return nil
        }
        sess.session = s
        // Windows: a stream's is what its `bodyIn` holds. The connection's is every stream's at
        // once: a stream gives its window back only as its exchange takes the bytes, so with a
        // smaller one (it was a megabyte) sixteen exchanges with slow clients held it all and
        // every other stream on the connection stopped. Memory stays bounded by the streams'
        // windows (nghttp2 keeps no DATA; bytes for a stream nobody reads are consumed at once).
        var entries = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: UInt32(min(65535, bufferCapacity))),
        ]
        _ = nghttp2_submit_settings(s, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count)
        _ = nghttp2_session_set_local_window_size(s, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32.max)
        switch Sys.connect(fd, to: pool.address) {
        case .connected:
            sess.connected = true
            sess.writable = true
        case .inProgress:
            break
        case .failed(let e):
            sess.failedErrno = e
            sess.hangup = true
        }
        do {
            try register(fd, .h2upstream(sess), events: EpollMask.input | EpollMask.output | EpollMask.readHangup | EpollMask.edge)
        } catch {
            Sys.close(fd)
            unregister(fd)
            return nil
        }
        pool.open += 1
        pool.h2Sessions.append(sess)
        sess.metricsUpstream = metricsID
        if recordMetrics { metrics.upstreamConnectionOpened(upstream: metricsID) }
        return sess
    }

    // MARK: - Driving a connection

    /// An epoll event (or queued output) on an upstream HTTP/2 connection.
    func driveUpstreamSession(_ sess: H2UpstreamSession) {
        sess.queued = false
        guard let session = sess.session else {
            // Closed (failed, or GOAWAY and gone): streams that had their whole response still
            // hand what they hold to their exchanges.
            _ = runUpstreamStreams(sess)
            return
        }
        if !sess.connected {
            guard sess.failedErrno != 0 || sess.writable || sess.hangup else { return }
            let err = sess.failedErrno != 0 ? sess.failedErrno : Sys.pendingError(sess.fd)
            if err != 0 || (sess.hangup && !sess.writable) {
                failUpstreamSession(sess, errno: err != 0 ? err : ECONNREFUSED)
                return
            }
            sess.connected = true
            for s in h2up.slots where s.session === sess {
                s.upstream.connected = true
                s.upstream.writable = true
                sess.markReady(s)
            }
        }
        var budget = Worker.readBudget
        var rounds = 0
        while rounds < 64 && sess.session != nil {
            rounds += 1
            var progressed = false
            if sess.readable && !sess.readEOF && budget > 0 && sess.inBuffer.freeSpace > 0 {
                budget -= 1
                let space = sess.inBuffer.writableSpace()
                switch sess.tls.map({ $0.read(space.baseAddress!, space.count) }) ?? Sys.read(sess.fd, space.baseAddress!, space.count) {
                case .done(let n):
                    sess.inBuffer.didWrite(n)
                    if n < space.count && sess.tls == nil { sess.readable = sess.hangup }
                    progressed = true
                case .wouldBlock:
                    sess.readable = false
                case .eof, .failed:
                    sess.readEOF = true
                    sess.readable = false
                }
            }
            if !sess.inBuffer.isEmpty {
                let r = sess.inBuffer.readable
                let n = nghttp2_session_mem_recv(session, r.baseAddress!.assumingMemoryBound(to: UInt8.self), r.count)
                if n < 0 {
                    failUpstreamSession(sess, errno: EPROTO)
                    return
                }
                if n > 0 { progressed = true }
                sess.inBuffer.consume(n)
            }
            if runUpstreamStreams(sess) { progressed = true }
            if sess.session == nil { return }
            if sess.outBuffer.freeSpace > 0 && nghttp2_session_want_write(session) != 0 {
                let before = sess.outBuffer.count
                if nghttp2_session_send(session) < 0 {
                    failUpstreamSession(sess, errno: EPROTO)
                    return
                }
                if sess.outBuffer.count != before { progressed = true }
            }
            if !sess.outBuffer.isEmpty && sess.writable {
                switch flush(sess.fd, tls: sess.tls, &sess.outBuffer, writable: &sess.writable) {
                case .idle: break
                case .wrote: progressed = true
                case .failed(let e):
                    failUpstreamSession(sess, errno: e != 0 ? e : EPIPE)
                    return
                }
            }
            if !progressed { break }
        }
        if sess.readEOF || (sess.hangup && !sess.readable) {
            failUpstreamSession(sess, errno: sess.failedErrno != 0 ? sess.failedErrno : ECONNRESET)
            return
        }
        if sess.streams == 0 {
            if sess.closing || sess.pool.retired {
                closeUpstreamSession(sess)
                return
            }
            setSessionDeadline(sess, sess.lastActive &+ settings.timeouts.upstreamIdle)
        }
        sess.inBuffer.releaseIfEmpty()
        sess.outBuffer.releaseIfEmpty()
    }

    /// Streams with news go to their exchanges; streams whose body nghttp2 took may send more.
    private func runUpstreamStreams(_ sess: H2UpstreamSession) -> Bool {
        guard !sess.ready.isEmpty || !sess.drained.isEmpty else { return false }
        var rounds = 0
        while (!sess.ready.isEmpty || !sess.drained.isEmpty) && rounds < 8 {
            rounds += 1
            sess.drained.drain { s in
                guard s.session === sess else { return }
                s.upstream.writable = s.upstream.connected
                if let c = s.upstream.client { drive(c) }
            }
            sess.ready.drain { s in
                guard s.session === sess else { return }
                s.inReadyList = false
                feedUpstreamStream(s)
            }
        }
        return true
    }

    func queueUpstreamSession(_ sess: H2UpstreamSession) {
        guard !sess.queued else { return }
        sess.queued = true
        h2up.dirty.append(sess)
    }

    /// End of an event batch: sessions whose streams queued frames send them.
    func flushQueuedUpstreamSessions() {
        var rounds = 0
        while !h2up.dirty.isEmpty && rounds < 4 {
            rounds += 1
            h2up.dirty.drain { sess in
                if sess.queued { driveUpstreamSession(sess) }
            }
        }
    }

    private func setSessionDeadline(_ sess: H2UpstreamSession, _ d: UInt64) {
        sess.deadline = d
        if d != 0 && (sess.queuedDeadline == 0 || d < sess.queuedDeadline) {
            sess.queuedDeadline = d
            timers.push(.init(deadline: d, fd: sess.fd, generation: sess.generation))
        }
    }

    /// The session's deadline (idle with no stream) passed.
    func upstreamSessionTimer(_ sess: H2UpstreamSession, deadline: UInt64) {
        guard deadline == sess.queuedDeadline else { return }
        sess.queuedDeadline = 0
        guard sess.deadline != 0 else { return }
        if sess.streams == 0 && sess.deadline <= now {
            closeUpstreamSession(sess)
        } else if sess.streams == 0 {
            setSessionDeadline(sess, sess.deadline)
        }
    }

    /// The connection failed (connect refused, reset, protocol error): every stream's exchange is
    /// told (before a connection, as a failed connect: retried elsewhere), then it closes.
    func failUpstreamSession(_ sess: H2UpstreamSession, errno e: Int32) {
        let connected = sess.connected
        sess.closing = true
        for s in h2up.slots where s.session === sess && !s.closed {
            s.closed = true
            s.closeError = NGHTTP2_CONNECT_ERROR.rawValue
            let u = s.upstream
            u.failedErrno = e
            if connected { u.readEOF = true } else { u.hangup = true }
            sess.markReady(s)
        }
        sess.ready.drain { s in
            guard s.session === sess else { return }
            s.inReadyList = false
            feedUpstreamStream(s)
        }
        closeUpstreamSession(sess)
    }

    /// Closes the connection (its streams were failed or are done).
    func closeUpstreamSession(_ sess: H2UpstreamSession) {
        guard case .h2upstream(let reg) = registrations[sess.fd], reg === sess else { return }
        sess.tls?.shutdownQuietly()
        unregister(sess.fd)
        Sys.close(sess.fd)
        if let s = sess.session { nghttp2_session_del(s) }
        sess.session = nil
        sess.closing = true
        sess.deadline = 0
        if recordMetrics { metrics.upstreamConnectionClosed(upstream: sess.metricsUpstream) }
        sess.pool.open -= 1
        sess.pool.h2Sessions.removeAll(where: { $0 === sess })
        for s in h2up.slots where s.session === sess {
            // Streams whose exchange still holds them see a reset (their `session` stays until let go).
            s.closed = true
            s.id = 0
        }
        if sess.pool.retired && sess.pool.open == 0 {
            for (key, p) in poolsByAddress where p === sess.pool { poolsByAddress[key] = nil }
        }
        sess.inBuffer.release()
        sess.outBuffer.release()
    }
}
