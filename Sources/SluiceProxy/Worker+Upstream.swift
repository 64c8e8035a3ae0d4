import SluiceCore

/// Upstream connections: the per-endpoint keep-alive pools, connecting, reuse, closing.
extension Worker {
    /// Matches the endpoint pools to the current table: pools of endpoints that remain are kept,
    /// the others retired (idle connections closed; in-flight ones finish).
    func rebuildPools() {
        var used = Set<PoolKey>()
        pools = table.upstreams.map { group in
            let tls = clientTLS[group.name]
            return group.endpoints.map { ep in
                let key = PoolKey(address: ep.address, tlsGroup: tls == nil ? "" : group.name)
                used.insert(key)
                if let p = poolsByAddress[key] {
                    p.retired = false
                    p.maxIdle = settings.limits.upstreamMaxIdle
                    p.hostName = PoolKey.host(of: ep.label)
                    p.wire = group.wire
                    if p.tls !== tls {
                        // New TLS settings: idle connections made with the old ones are closed.
                        p.tls = tls
                        for u in p.idle { closeUpstream(u) }
                        p.idle.removeAll()
                    }
                    return p
                }
                let p = EndpointPool(address: ep.address, maxIdle: settings.limits.upstreamMaxIdle,
                                     hostName: PoolKey.host(of: ep.label))
                p.tls = tls
                p.wire = group.wire
                poolsByAddress[key] = p
                return p
            }
        }
        for (addr, p) in poolsByAddress where !used.contains(addr) {
            p.retired = true
            for u in p.idle { closeUpstream(u) }
            p.idle.removeAll()
            for sess in p.h2Sessions where sess.streams == 0 { closeUpstreamSession(sess) }
            if p.open == 0 { poolsByAddress[addr] = nil }
        }
    }

    /// Gives the exchange an upstream connection: an idle pooled one, or a new connect.
    func attachUpstream(_ c: ClientConnection, _ x: Exchange, pool: EndpointPool, allowPooled: Bool) {
        var conn: UpstreamConnection?
        if pool.wire != .http1 {
            // HTTP/2: a stream on a shared connection (circuit breakers count HTTP/1.1 connections only).
            guard let s = openUpstreamStream(pool, metricsID: x.record.upstreamMetricsID) else {
                perform(c, x, step(c, x, connectFailed(x, .connectRefused, local: true)))
                return
            }
            conn = s.upstream
        } else if allowPooled {
            while let u = pool.idle.popLast() {
                if u.hangup || u.readEOF || u.readable {
                    // Closed (or spoke) while idle: never reuse.
                    closeUpstream(u)
                    continue
                }
                conn = u
                u.reused = true
                break
            }
        }
        if conn == nil && pool.wire == .http1 {
            var counted = x.table.map { acquireConnection($0, group: Int(x.decision.upstream)) } ?? .untracked
            if counted == .open, let t = x.table, reclaimIdleConnection(t, group: Int(x.decision.upstream)) {
                counted = acquireConnection(t, group: Int(x.decision.upstream))
            }
            if counted == .open {
                // A circuit breaker of the group is open (`max_connections`, `max_pending`).
                perform(c, x, step(c, x, .upstreamFailed(.circuitOpen)))
                return
            }
            conn = connectUpstream(pool, metricsID: x.record.upstreamMetricsID)
            guard let fresh = conn else {
                if case .counted(let load) = counted { releaseConnection(load, group: Int(x.decision.upstream), pending: true) }
                // No socket (EMFILE, a TLS session that could not be made): a failure of this
                // process, not of the endpoint, which must not be ejected for it.
                perform(c, x, step(c, x, connectFailed(x, .connectRefused, local: true)))
                return
            }
            if case .counted(let load) = counted {
                fresh.load = load
                fresh.loadGroup = Int(x.decision.upstream)
                fresh.pendingCounted = true
                if fresh.connected { connectionEstablished(fresh) }
            }
            if fresh.connected { x.record.upstreamConnectNanos = 0 }  // connected at once
        }
        let u = conn!
        u.client = c
        u.inBuffer.clear()
        u.outBuffer.clear()
        u.requestSentAt = 0
        u.lastProgress = now
        u.lastSendProgress = now
        u.deadline = 0
        x.upstream = u
        attemptStarted(x)
        if !u.outBuffer.append(x.upstreamHead) {
            // The head grew past a buffer (X-Forwarded-Host repeats a long Host): refuse it, 431.
            perform(c, x, step(c, x, .requestBodyInvalid(.headTooLarge)))
        }
    }

    private func connectUpstream(_ pool: EndpointPool, metricsID: Int32) -> UpstreamConnection? {
        let fd: Int32
        do {
            fd = try Sys.tcpSocket(for: pool.address)
        } catch {
            return nil
        }
        Sys.setNoDelay(fd)
        let gen = registrations.nextGeneration(fd)
        let u = UpstreamConnection(fd: fd, generation: gen, pool: pool, capacity: bufferCapacity, buffers: buffers)
        u.connectStart = now
        if let ctx = pool.tls {
            guard let t = ctx.connection(fd: fd, host: pool.hostName, slot: pool.sessionSlot) else {
                Sys.close(fd)
                return nil
            }
            u.tls = t
            u.tlsContext = ctx
        }
        switch Sys.connect(fd, to: pool.address) {
        case .connected:
            u.connected = true
            u.writable = true
        case .inProgress:
            break
        case .failed(let e):
            u.failedErrno = e
        }
        do {
            try register(fd, .upstream(u), events: EpollMask.input | EpollMask.output | EpollMask.readHangup | EpollMask.edge)
        } catch {
            Sys.close(fd)
            unregister(fd)
            return nil
        }
        pool.open += 1
        u.metricsUpstream = metricsID
        if recordMetrics { metrics.upstreamConnectionOpened(upstream: metricsID) }
        if u.failedErrno != 0 {
            u.hangup = true
        }
        return u
    }

    /// The exchange is over: pools its upstream connection when the response allowed reuse and
    /// the socket is clean, closes it otherwise.
    func releaseUpstream(_ x: Exchange, protocolAllowsReuse: Bool) {
        attemptEnded(x)
        guard let u = x.upstream else { return }
        x.upstream = nil
        u.client = nil
        u.requestsServed += 1
        var reusable = u.h2 == nil && protocolAllowsReuse && !u.readEOF && u.failedErrno == 0 && !u.hangup
            && u.inBuffer.isEmpty && u.outBuffer.isEmpty && !u.pool.retired && u.pool.idle.count < u.pool.maxIdle
            && u.tlsContext === u.pool.tls && !(u.tls?.hasPendingInput ?? false)
        if reusable && u.readable {
            // The last read filled the buffer exactly, so the kernel may or may not hold more:
            // ask it (once) instead of discarding a healthy connection or pooling a dirty one.
            if Sys.hasPendingInput(u.fd) { reusable = false } else { u.readable = false }
        }
        if reusable {
            u.idleSince = now
            u.reused = false
            u.inBuffer.release()
            u.outBuffer.release()
            u.pool.idle.append(u)
            setUpstreamDeadline(u, now &+ settings.timeouts.upstreamIdle)
        } else {
            closeUpstream(u)
        }
    }

    func closeUpstream(_ u: UpstreamConnection) {
        if let s = u.h2 {
            u.client = nil
            u.deadline = 0
            closeUpstreamStream(s)
            return
        }
        if case .upstream(let reg) = registrations[u.fd], reg === u {
            u.tls?.shutdownQuietly()
            unregister(u.fd)
            Sys.close(u.fd)
            if recordMetrics { metrics.upstreamConnectionClosed(upstream: u.metricsUpstream) }
            if let load = u.load {
                releaseConnection(load, group: u.loadGroup, pending: u.pendingCounted)
                u.load = nil
                u.pendingCounted = false
            }
            u.pool.open -= 1
            if let i = u.pool.idle.firstIndex(where: { $0 === u }) { u.pool.idle.remove(at: i) }
            if u.pool.retired && u.pool.open == 0 {
                for (key, p) in poolsByAddress where p === u.pool { poolsByAddress[key] = nil }
            }
        }
        u.client = nil
        u.deadline = 0
        u.inBuffer.release()
        u.outBuffer.release()
        if let p = u.pipe {
            u.pipe = nil
            pipes.give(p)  // closed if bytes are left in it
        }
    }

    /// Drops the exchange's upstream connection, closing it (its state is unknown).
    func abortUpstream(_ x: Exchange) {
        attemptEnded(x)
        guard let u = x.upstream else { return }
        x.upstream = nil
        u.client = nil
        closeUpstream(u)
    }

    /// Counts an upstream failure for the exchange's route and cohort.
    func noteUpstreamError(_ x: Exchange, _ reason: UpstreamErrorReason) {
        x.record.errorReason = reason
        reportEndpointError(x, reason)
        guard recordMetrics else { return }
        metrics.recordUpstreamError(series: x.record.series, reason: reason)
    }

    /// Per-worker entropy for routing (xorshift64*: no shared state).
    @inline(__always)
    func nextEntropy() -> UInt64 {
        var x = entropyState
        x ^= x >> 12
        x ^= x << 25
        x ^= x >> 27
        entropyState = x
        return x &* 0x2545_F491_4F6C_DD1D
    }
}

/// What identifies an endpoint pool: the address, and for a TLS upstream the group whose TLS
/// settings its connections use ("" for plain TCP).
struct PoolKey: Hashable {
    let address: SocketAddress
    let tlsGroup: String

    /// The host part of an endpoint as written (`api.internal:8443` → `api.internal`, `[::1]:80` → `::1`).
    static func host(of label: String) -> String {
        if label.hasPrefix("["), let end = label.firstIndex(of: "]") {
            return String(label[label.index(after: label.startIndex)..<end])
        }
        if let colon = label.lastIndex(of: ":") { return String(label[..<colon]) }
        return label
    }
}
