@preconcurrency import Glibc
import SluiceCore

/// Driving a client connection: the per-event loop, reads, flushes, lingering and closing.
extension Worker {
    /// Advances everything that can advance on this client's connection and its upstream.
    func drive(_ c: ClientConnection) {
        if let h = c.h2 {
            driveHTTP2(c, h)
            return
        }
        var budget = Worker.readBudget
        var rounds = 0
        while c.conn.phase != .closed {
            rounds += 1
            var progressed = false
            switch c.conn.phase {
            case .awaitingHead:
                progressed = advanceAwaitingHead(c, budget: &budget)
                if let h = c.h2 {
                    driveHTTP2(c, h)
                    return
                }
            case .exchange:
                if let x = c.exchange { progressed = advanceExchange(c, x, budget: &budget) }
            case .closing:
                if c.hangup && !c.outBuffer.isEmpty && !c.writable {
                    closeClient(c)
                    return
                }
            case .lingering:
                progressed = discardInput(c, budget: &budget)
            case .tunnel:
                if let x = c.exchange { progressed = advanceTunnel(c, x, budget: &budget) }
            case .closed:
                return
            }
            if c.conn.phase == .closed { return }
            if !c.outBuffer.isEmpty && c.writable {
                if flushClient(c) { progressed = true }
                if c.conn.phase == .closed { return }
            }
            if c.conn.phase == .closing && c.outBuffer.isEmpty {
                if c.conn.unreadInput && !c.readEOF && !c.hangup {
                    // Unread request bytes would make close() send a reset that can destroy the
                    // response in flight: half-close and read until the client closes.
                    startLingering(c)
                    continue
                }
                closeClient(c)
                return
            }
            if !progressed { break }
            if budget <= 0 || rounds > 256 {
                // Fairness: let other connections run; continue on the next loop iteration.
                pending.append(c)
                break
            }
        }
        if c.conn.phase != .closed {
            // Buffers with nothing pending give their blocks back to the worker's pool (they take one
            // again when bytes come): a connection waiting for a request, or for its upstream's answer,
            // holds none, so buffer memory follows the bytes in flight, not the connections open.
            c.inBuffer.releaseIfEmpty()
            c.outBuffer.releaseIfEmpty()
            let u = c.exchange?.upstream
            if let u {
                u.inBuffer.releaseIfEmpty()
                u.outBuffer.releaseIfEmpty()
                if let s = u.h2 { upstreamStreamDriven(s) }
            }
            if c.conn.phase == .awaitingHead && c.inBuffer.isEmpty && c.outBuffer.isEmpty {
                // Idle between requests: the exchange goes back to the worker's pool too.
                detachExchange(c)
            }
            updateClientTimer(c)
            if let u, let x = c.exchange { updateUpstreamTimer(u, x) }
        }
        if let s = c.stream { streamDriven(s) }
    }

    /// Gives `c` an exchange from the pool unless it has one: from the first byte of a request head
    /// on, the head and the request's accounting need it.
    @discardableResult
    func attachExchange(_ c: ClientConnection) -> Exchange {
        if let x = c.exchange { return x }
        let x = exchanges.take()
        x.reset()
        x.usePeer(c.peer)
        c.exchange = x
        return x
    }

    /// Returns `c`'s exchange, if any, to the pool.
    func detachExchange(_ c: ClientConnection) {
        guard let x = c.exchange.take() else { return }
        exchanges.give(x)
    }

    /// Ends `c`'s exchange, if any: recorded, its upstream let go, back to the pool.
    func releaseExchange(_ c: ClientConnection) {
        guard let x = c.exchange else { return }
        if x.record.active || x.record.logPending { endRequest(c, x) }
        releaseCompressor(x)
        abortUpstream(x)
        x.reset()  // drop its table, pool and upstream references before it waits in the pool
        detachExchange(c)
    }

    /// Half-closes a connection whose response is flushed and reads (discarding) until the client
    /// closes, so unread request bytes do not turn the close into a reset.
    func startLingering(_ c: ClientConnection) {
        if c.stream != nil {
            // A stream has no socket to half-close: unread request DATA is discarded as it comes.
            closeClient(c)
            return
        }
        c.tls?.shutdownQuietly()
        _ = shutdown(c.fd, Int32(SHUT_WR))
        ExchangeMachine.startLingering(&c.conn)
        c.inBuffer.clear()
        c.deadline = 0
        setClientDeadline(c, now &+ Worker.lingerTime)
    }

    func discardInput(_ c: ClientConnection, budget: inout Int) -> Bool {
        if c.readEOF || (c.hangup && !c.readable) {
            closeClient(c)
            return false
        }
        c.inBuffer.clear()
        return readClient(c, budget: &budget)
    }

    /// Reads from the client into its input buffer. Returns true if bytes (or EOF) arrived.
    func readClient(_ c: ClientConnection, budget: inout Int) -> Bool {
        guard c.readable, !c.readEOF, budget > 0 else { return false }
        let space = c.inBuffer.writableSpace()
        guard space.count > 0 else { return false }
        budget -= 1
        let result: IOResult
        if let t = c.tls {
            result = t.read(space.baseAddress!, space.count)
            noteClientHandshake(c, t, failed: result != .wouldBlock && !t.handshakeDone)
        } else {
            result = Sys.read(c.fd, space.baseAddress!, space.count)
        }
        switch result {
        case .done(let n):
            c.inBuffer.didWrite(n)
            c.lastReadProgress = now
            // Short read: the kernel buffer is drained (not so with TLS, which returns a record
            // at a time: there, reading until "want read" is what says it).
            if n < space.count && c.tls == nil { c.readable = c.hangup }
            return true
        case .wouldBlock:
            c.readable = false
            return false
        case .eof:
            c.readEOF = true
            c.readable = false
            return true
        case .failed:
            c.readEOF = true
            c.readable = false
            c.hangup = true
            return true
        }
    }

    /// Writes queued response bytes. Returns true if any were written (or the client is gone).
    func flushClient(_ c: ClientConnection) -> Bool {
        if let s = c.stream { return pumpResponse(s) }
        switch flush(c.fd, tls: c.tls, &c.outBuffer, writable: &c.writable) {
        case .idle:
            return false
        case .wrote:
            c.lastWriteProgress = now
            return true
        case .failed:
            clientGone(c)
            return true
        }
    }

    /// The client closed, reset, or cannot be written to: the machine decides (it closes).
    func clientGone(_ c: ClientConnection) {
        if let x = c.exchange {
            perform(c, x, step(c, x, .clientGone))
        } else {
            closeClient(c)
        }
    }

    func closeClient(_ c: ClientConnection) {
        guard c.conn.phase != .closed else { return }
        if let s = c.stream {
            finishStream(s)
            return
        }
        if let h = c.h2 { closeHTTP2(c, h) }
        releaseExchange(c)
        ExchangeMachine.closed(&c.conn)
        c.deadline = 0
        if let t = c.tls {
            noteClientHandshake(c, t, failed: true)
            t.shutdownQuietly()
        }
        unregister(c.fd)
        Sys.close(c.fd)
        c.inBuffer.release()
        c.outBuffer.release()
        clientCount -= 1
        if recordMetrics { metrics.connectionClosed(listener: Int(c.listenerIndex)) }
        if !listenersActive && !draining && acceptPausedUntil == 0 && clientCount < settings.limits.maxConnectionsPerWorker {
            resumeAccepting()
        }
    }
}

/// What a flush did.
enum FlushOutcome {
    /// Nothing to write, or the socket took nothing.
    case idle
    /// Bytes were written.
    case wrote
    /// The peer is gone (reset, broken pipe).
    case failed(Int32)
}

extension Worker {
    /// Writes what `buffer` holds to `fd` until it is empty or the socket is full (then
    /// `writable` becomes false). The one flush loop, for both sides.
    @inline(__always)
    func flush(_ fd: Int32, tls: TLSConnection?, _ buffer: inout IOBuffer, writable: inout Bool) -> FlushOutcome {
        var wrote = false
        while !buffer.isEmpty {
            let r = buffer.readable
            switch tls.map({ $0.write(r.baseAddress!, r.count) }) ?? Sys.write(fd, r.baseAddress!, r.count) {
            case .done(let n):
                buffer.consume(n)
                wrote = true
            case .wouldBlock:
                writable = false
                return wrote ? .wrote : .idle
            case .eof:
                return .failed(0)
            case .failed(let e):
                return .failed(e)
            }
        }
        return wrote ? .wrote : .idle
    }

    /// Sends `data` straight to `fd` when `direct` (nothing queued before it and the socket
    /// writable), queueing in `queue` what the kernel did not take; otherwise queues as much as
    /// fits. Returns how many bytes of `data` were taken (sent or queued), or nil when the peer is
    /// gone. The one "write straight or buffer" path, for both sides.
    ///
    /// On a TLS connection bytes are always queued (then flushed): OpenSSL retries a write that
    /// would block from the same bytes, which only the queue keeps.
    @inline(__always)
    func sendOrQueue(_ fd: Int32, tls: TLSConnection?, _ data: UnsafeRawBufferPointer, direct: Bool, queue: inout IOBuffer,
                     writable: inout Bool, failedErrno: inout Int32) -> Int? {
        guard direct && tls == nil && fd >= 0 else {
            let n = min(data.count, queue.freeSpace)
            if n > 0 { queue.append(UnsafeRawBufferPointer(rebasing: data[0..<n])) }
            return n
        }
        switch Sys.write(fd, data.baseAddress!, data.count) {
        case .done(let w):
            return w
        case .wouldBlock:
            writable = false
            let n = min(data.count, queue.freeSpace)
            queue.append(UnsafeRawBufferPointer(rebasing: data[0..<n]))
            return n
        case .eof:
            return nil
        case .failed(let e):
            failedErrno = e
            return nil
        }
    }
}
