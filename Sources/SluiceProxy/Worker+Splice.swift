import SluiceCore

/// Splicing long Content-Length response bodies upstream socket -> pipe -> client socket: the
/// bytes never enter Sluice's memory, and a slow client leaves them in the kernel.
extension Worker {
    /// Takes a pipe for the rest of a Content-Length body when splicing pays: at least
    /// `splice_min_body` bytes to come, and no body bytes buffered on either side (what is
    /// buffered must reach the client first, and the pipe carries only what follows).
    func startSplice(_ c: ClientConnection, _ x: Exchange, _ u: UpstreamConnection) -> Bool {
        // A compared mirror needs the body's bytes (its hash): no splicing for those.
        guard x.compressor == nil, x.mirror?.compare != true, case .length(let remaining) = x.state.responseBody, u.readable, !u.readEOF,
              c.tls == nil, u.tls == nil, c.fd >= 0, u.fd >= 0,
              settings.limits.spliceMinBody > 0, remaining >= settings.limits.spliceMinBody,
              u.inBuffer.isEmpty, c.outBuffer.isEmpty, let p = pipes.take(now: now) else { return false }
        u.pipe = p
        return true
    }

    /// Moves Content-Length body bytes upstream socket → pipe → client socket with splice(2).
    /// A pipe the client does not empty is the backpressure: the upstream is not read while it is
    /// full. Returns true if bytes moved (or the connection ended).
    func spliceBody(_ c: ClientConnection, _ x: Exchange, _ u: UpstreamConnection, budget: inout Int) -> Bool {
        guard case .length(var remaining) = x.state.responseBody, var p = u.pipe else { return false }
        var progressed = false
        while true {
            var moved = false
            if p.count > 0 && c.writable {
                switch Sys.splice(from: p.readFD, to: c.fd, p.count) {
                case .done(let n):
                    p.count -= n
                    x.record.bytesOut &+= UInt64(n)
                    c.lastWriteProgress = now
                    moved = true
                case .wouldBlock:
                    c.writable = false
                case .eof, .failed:
                    u.pipe = p
                    clientGone(c)
                    return true
                }
            }
            if remaining > 0 && u.readable && budget > 0 && p.count < p.capacity {
                budget -= 1
                switch Sys.splice(from: u.fd, to: p.writeFD, Int(min(remaining, UInt64(p.capacity - p.count)))) {
                case .done(let n):
                    p.count += n
                    remaining -= UInt64(n)
                    u.lastProgress = now
                    moved = true
                case .wouldBlock:
                    // The socket is drained, or the pipe has no free page left: only an empty
                    // pipe tells which. (A non-empty one is retried once the client took it.)
                    if p.count == 0 {
                        u.readable = false
                        setLowWater(u, remaining >= Worker.lowWaterMinimum ? Int(min(remaining, UInt64(p.capacity))) : 0)
                    }
                case .eof:
                    upstreamInputEnded(u, errno: 0)
                    moved = true
                case .failed(let e):
                    upstreamInputEnded(u, errno: e)
                    moved = true
                }
            }
            if !moved || u.readEOF { break }
            progressed = true
        }
        if remaining == 0 && p.count == 0 {
            setLowWater(u, 0)  // the next response head must wake us at its first byte
            u.pipe = nil
            pipes.give(p)
            x.state.responseBody = .done
            return true
        }
        u.pipe = p
        x.state.responseBody = .length(remaining: remaining)
        return progressed || u.readEOF
    }

    /// Sets the upstream socket's SO_RCVLOWAT (0: back to 1 byte). While a long body is spliced,
    /// a low-water mark of a pipeful means one wakeup per pipeful instead of one per arriving
    /// segment: fewer wakeups here, and fewer cross-CPU wakeups paid by the upstream's sending side.
    /// Bytes held back by it are picked up by the upstream timer after `lowWaterWait` at the latest.
    func setLowWater(_ u: UpstreamConnection, _ bytes: Int) {
        guard bytes != u.lowWater else { return }
        Sys.setReceiveLowWater(u.fd, max(bytes, 1))
        u.lowWater = bytes
        u.lowWaterSince = now
    }
}
