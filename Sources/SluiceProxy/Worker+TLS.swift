@preconcurrency import Glibc
import SluiceCore

/// TLS on the worker's connections: the per-worker contexts, and how OpenSSL's "want read / want
/// write" maps onto the loop's readiness flags. The byte-moving primitives (`readClient`,
/// `readUpstream`, `flush`, `sendOrQueue`) call `TLSConnection.read`/`write` instead of the
/// socket when a connection has a TLS session; everything above them is unchanged.
extension Worker {
    /// Uses `set` for new handshakes: listener contexts keep their session cache and take the new
    /// certificates and settings; upstream groups whose settings object changed get a new context
    /// (their pools then close idle connections made with the old one, see `rebuildPools`).
    func applyTLS(_ set: TLSSet) {
        tlsSet = set
        var servers = serverTLS
        while servers.count < set.listeners.count { servers.append(nil) }
        for (i, l) in set.listeners.enumerated() {
            guard let l else {
                servers[i] = nil
                continue
            }
            if let ctx = servers[i] {
                ctx.apply(l)
            } else {
                servers[i] = ServerTLSContext(config: l, listenerIndex: i)
            }
        }
        serverTLS = servers
        var clients: [String: ClientTLSContext] = [:]
        for (name, u) in set.upstreams {
            if let old = clientTLS[name], old.config === u {
                clients[name] = old
            } else if let ctx = ClientTLSContext(config: u) {
                clients[name] = ctx
            }
        }
        clientTLS = clients
    }

    /// The TLS context of `listener`, or nil for a plain listener.
    func serverContext(listener: Int) -> ServerTLSContext? {
        listener < serverTLS.count ? serverTLS[listener] : nil
    }

    /// A TLS session for a connection accepted on `listener`, or nil for a plain listener.
    /// `.failure` when the listener is TLS but no session could be made.
    func serverSession(listener: Int, fd: Int32) -> (TLSConnection?, failed: Bool) {
        guard let ctx = serverContext(listener: listener) else { return (nil, false) }
        guard let t = ctx.connection(fd: fd) else { return (nil, true) }
        return (t, false)
    }

    /// Counts a client handshake's outcome once: completed (full or resumed) or failed.
    func noteClientHandshake(_ c: ClientConnection, _ t: TLSConnection, failed: Bool) {
        guard !t.counted else { return }
        if t.handshakeDone {
            t.counted = true
            if recordMetrics { metrics.tlsHandshake(listener: Int(c.listenerIndex), result: t.resumed ? .resumed : .full) }
        } else if failed && t.handshakeStarted {
            t.counted = true
            if recordMetrics { metrics.tlsHandshake(listener: Int(c.listenerIndex), result: .failed) }
        }
    }
}

extension TLSConnection {
    /// After an epoll event: a write waiting for input becomes possible on input, a read waiting
    /// for output space on output.
    @inline(__always)
    func mapReadiness(_ events: UInt32, readable: inout Bool, writable: inout Bool) {
        if writeWantsRead && events & (EpollMask.input | EpollMask.readHangup | EpollMask.hangup | EpollMask.error) != 0 {
            writable = true
        }
        if readWantsWrite && events & (EpollMask.output | EpollMask.hangup | EpollMask.error) != 0 {
            readable = true
        }
    }
}

extension Worker {
    /// Reports a TLS failure on the upstream connection before any response byte (a failed
    /// verification, a refused client certificate, a protocol error) as `tls_handshake`: a 502.
    /// Returns true when it did.
    func upstreamTLSFailed(_ c: ClientConnection, _ x: Exchange, _ u: UpstreamConnection) -> Bool {
        guard let t = u.tls, !t.failure.isEmpty, x.state.responseBody.isAwaitingHead, u.inBuffer.isEmpty else { return false }
        noteUpstreamTLSFailure(u, t)
        perform(c, x, step(c, x, .upstreamFailed(.tlsHandshake)))
        return true
    }

    /// An upstream TLS handshake failed: the reason goes to standard error once per connection
    /// (the 502 and `sluice_upstream_errors_total{reason="tls_handshake"}` count it).
    func noteUpstreamTLSFailure(_ u: UpstreamConnection, _ t: TLSConnection) {
        let name = u.tlsContext?.config.serverName ?? u.pool.hostName
        let line = "sluice: upstream TLS handshake with \(name) (\(u.pool.address)) failed: \(t.failure)\n"
        line.withCString { p in _ = Glibc.write(2, p, strlen(p)) }
    }
}
