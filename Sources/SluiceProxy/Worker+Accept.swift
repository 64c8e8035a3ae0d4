@preconcurrency import Glibc
import SluiceCore

/// Listeners: accepting, pausing when out of descriptors or connections, draining, shutdown.
extension Worker {
    /// Connections accepted per listener event on a plain listener: the accept queue is level-
    /// triggered, so what is left is reported again at the next wait.
    static let acceptBurst = 64
    /// The same on a TLS listener, smaller: each new connection's handshake (about 0.1-0.2 ms of
    /// CPU) runs in this loop iteration, and 64 of them would hold back the requests of connections
    /// already open by several milliseconds (bench/compare tlsclose: p99 1.08-1.29x nginx's with
    /// 64, 0.99-1.02x with 8, at the same req/s).
    static let tlsAcceptBurst = 8

    func acceptConnections(listener: Int) {
        guard listenersActive && !draining else { return }
        let lfd = listenerFDs[listener]
        let isTLS = serverContext(listener: listener) != nil
        for _ in 0..<(isTLS ? Worker.tlsAcceptBurst : Worker.acceptBurst) {
            if clientCount >= settings.limits.maxConnectionsPerWorker {
                pauseAccepting(retryAfter: 0)
                return
            }
            switch Sys.accept(lfd) {
            case .accepted(let fd, let peer):
                let gen = registrations.nextGeneration(fd)
                let c = ClientConnection(
                    fd: fd, generation: gen, peer: peer, listenerIndex: listener,
                    inCapacity: bufferCapacity, outCapacity: bufferCapacity, pool: buffers)
                let (tls, tlsFailed) = serverSession(listener: listener, fd: fd)
                if tlsFailed {
                    Sys.close(fd)
                    continue
                }
                c.tls = tls
                do {
                    try register(fd, .client(c), events: EpollMask.input | EpollMask.output | EpollMask.readHangup | EpollMask.edge)
                } catch {
                    Sys.close(fd)
                    unregister(fd)
                    continue
                }
                clientCount += 1
                if recordMetrics { metrics.connectionAccepted(listener: listener) }
                c.trusted = settings.trustedProxies.contains { $0.contains(peer) }
                c.phaseStart = now
                c.lastReadProgress = now
                c.lastWriteProgress = now
                setClientDeadline(c, now &+ settings.timeouts.clientHeader)
                if settings.listeners[listener].deferAccept {
                    // TCP_DEFER_ACCEPT: the kernel queued this connection when its first bytes
                    // came (usually; after about a second of silence it is handed over anyway,
                    // and this read finds nothing), so read them in the wake-up that accepted it:
                    // right after this event batch, not nested in the accept loop.
                    c.readable = true
                    pending.append(c)
                }
                // Otherwise not marked readable: registering reports a request that is already
                // there (the ADD polls the socket), and a read now would mostly find nothing
                // (EAGAIN: one wasted syscall per connection when the first event is a bare EPOLLOUT).
            case .wouldBlock, .skipped:
                return
            case .exhausted:
                // Out of descriptors: keep the listener, stop accepting for a moment.
                pauseAccepting(retryAfter: 100_000_000)
                return
            }
        }
    }

    func pauseAccepting(retryAfter: UInt64) {
        guard listenersActive else { return }
        listenersActive = false
        for fd in listenerFDs { epoll.remove(fd) }
        if retryAfter > 0 { acceptPausedUntil = now &+ retryAfter }
    }

    func resumeAccepting() {
        guard !listenersActive, !draining else { return }
        listenersActive = true
        for (i, fd) in listenerFDs.enumerated() {
            try? register(fd, .listener(Int32(i)), events: EpollMask.input)
            acceptConnections(listener: i)
            // Paused again (the connection cap or descriptors ran out): the remaining listeners
            // stay out of epoll until the next resume.
            if !listenersActive { return }
        }
    }

    /// Stops accepting; idle connections close now, the others after their current response.
    func beginDrain() {
        guard !draining else { return }
        draining = true
        for fd in listenerFDs {
            epoll.remove(fd)
            unregister(fd)
            Sys.close(fd)
        }
        listenerFDs = []
        listenersActive = false
        for reg in registrations.all {
            guard case .client(let c) = reg else { continue }
            if let h = c.h2 {
                drainHTTP2(c, h)
                continue
            }
            // (Not idle: a new connection still waiting on `pending` for its first read.)
            let idle = c.conn.phase == .awaitingHead && c.inBuffer.isEmpty && c.outBuffer.isEmpty && !c.readable
            if step(c, c.exchange, .drain(idle: idle)) == .close { closeClient(c) }
        }
    }

    func shutdownEverything() {
        draining = true  // closing clients below must not resume accepting
        for reg in registrations.all {
            switch reg {
            case .client(let c): closeClient(c)
            case .upstream(let u): closeUpstream(u)
            case .mirror(let m): closeMirror(m)
            case .h2upstream(let sess): closeUpstreamSession(sess)
            default: break
            }
        }
        for fd in listenerFDs { Sys.close(fd) }
        listenerFDs = []
        pipes.closeAll()
        Sys.close(epoll.fd)
        Sys.close(wake.fd)
    }
}
