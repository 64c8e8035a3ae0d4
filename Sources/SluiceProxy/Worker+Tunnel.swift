@preconcurrency import Glibc
import SluiceCore

/// Upgrade tunnels (WebSocket): after the upstream's 101 the connection carries bytes both ways,
/// with the same bounded buffers as bodies (a side is read only while the other side takes what
/// was read), until either side closes, the tunnel is idle for `timeouts.tunnel_idle`, or a
/// reload removed its cohort or endpoint (then it closes after `timeouts.drain`).
extension Worker {
    /// Relays the 101 head (with the Upgrade the upstream agreed to) and opens the tunnel.
    func startTunnel(_ c: ClientConnection, _ x: Exchange) {
        guard let u = x.upstream else { return }
        let rh = u.responseHead
        let bytes = u.inBuffer.readable
        scratch.removeAll(keepingCapacity: true)
        HeadWriter.appendResponseStart(rh, bytes: bytes, keepContentLength: false, policy: x.policy, to: &scratch)
        HeadWriter.appendStatic("Connection: upgrade\r\nUpgrade: ", to: &scratch)
        if let value = Worker.upgradeValue(rh, bytes) {
            scratch.append(contentsOf: value)
        } else {
            // The upstream did not say: the protocol the client asked for.
            x.upgradeValue.withUnsafeBytes { scratch.append(contentsOf: $0) }
        }
        HeadWriter.appendStatic("\r\n\r\n", to: &scratch)
        guard c.outBuffer.append(scratch) else {
            perform(c, x, step(c, x, .tunnelEnded))
            return
        }
        u.inBuffer.consume(rh.headLength)
        x.record.status = 101
        x.record.upstreamStatus = 101
        x.record.bytesOut &+= UInt64(scratch.count)
        // The handshake is a request like any other in the metrics; the tunnel's life is not (it
        // would swamp the latency the rollout gates read): it has its own gauge and summary.
        if recordMetrics { metrics.tunnelOpened(series: x.record.series) }
        endRequest(c, x, logNow: false)
        x.record.tunnelStart = now
        u.deadline = 0
    }

    /// The value of the response's Upgrade field, if any.
    static func upgradeValue(_ rh: ResponseHead, _ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        let name: StaticString = "upgrade"
        for f in rh.fields where f.name.count == 7 {
            var same = true
            for i in 0..<7 {
                var b = bytes[Int(f.name.start) + i]
                if b >= 0x41 && b <= 0x5A { b |= 0x20 }
                if b != name.utf8Start[i] { same = false; break }
            }
            if same { return UnsafeRawBufferPointer(rebasing: bytes[f.value.range]) }
        }
        return nil
    }

    /// Moves bytes both ways. Returns progress.
    func advanceTunnel(_ c: ClientConnection, _ x: Exchange, budget: inout Int) -> Bool {
        guard let u = x.upstream else {
            perform(c, x, step(c, x, .tunnelEnded))
            return true
        }
        var progressed = false
        // Client -> upstream.
        while true {
            if !c.inBuffer.isEmpty {
                let direct = u.outBuffer.isEmpty && u.writable
                guard let taken = sendOrQueue(u.fd, tls: u.tls, c.inBuffer.readable, direct: direct, queue: &u.outBuffer,
                                              writable: &u.writable, failedErrno: &u.failedErrno) else {
                    perform(c, x, step(c, x, .tunnelEnded))
                    return true
                }
                if taken == 0 { break }
                c.inBuffer.consume(taken)
                x.state.requestBodyBytes &+= UInt64(taken)
                progressed = true
                continue
            }
            if !readClient(c, budget: &budget) { break }
            progressed = true
        }
        // Upstream -> client.
        while true {
            if !u.inBuffer.isEmpty {
                var failed: Int32 = 0
                guard let taken = sendOrQueue(c.fd, tls: c.tls, u.inBuffer.readable, direct: c.outBuffer.isEmpty && c.writable,
                                              queue: &c.outBuffer, writable: &c.writable, failedErrno: &failed) else {
                    perform(c, x, step(c, x, .tunnelEnded))
                    return true
                }
                if taken == 0 { break }
                u.inBuffer.consume(taken)
                x.record.bytesOut &+= UInt64(taken)
                c.lastWriteProgress = now
                progressed = true
                continue
            }
            if !readUpstream(u, budget: &budget) { break }
            progressed = true
        }
        if !u.outBuffer.isEmpty && u.writable {
            if case .failed = flush(u.fd, tls: u.tls, &u.outBuffer, writable: &u.writable) {
                perform(c, x, step(c, x, .tunnelEnded))
                return true
            }
        }
        // Either side closed (or failed): once what it sent has been passed on, the tunnel ends.
        let clientDone = c.readEOF || (c.hangup && !c.readable)
        let upstreamDone = u.readEOF || u.failedErrno != 0 || (u.hangup && !u.readable)
        if (clientDone && c.inBuffer.isEmpty && u.outBuffer.isEmpty) || (upstreamDone && u.inBuffer.isEmpty) {
            // The client's queued bytes are flushed by the closing phase.
            perform(c, x, step(c, x, .tunnelEnded))
            return true
        }
        return progressed
    }

    /// After a reload: tunnels whose route, cohort or endpoint is gone close after `timeouts.drain`,
    /// spread over a quarter of it so they do not all reconnect at once.
    func retireOrphanedTunnels() {
        var orphans: [ClientConnection] = []
        for reg in registrations.all {
            guard case .client(let c) = reg, c.conn.phase == .tunnel, let x = c.exchange, x.retireAt == 0 else { continue }
            let policy = x.policy
            let endpointGone = x.upstream?.pool.retired ?? true
            if endpointGone || !table.hasCohort(route: policy?.routeName ?? "", cohort: policy?.cohortName ?? "") {
                orphans.append(c)
            }
        }
        let drain = settings.timeouts.drain
        for (i, c) in orphans.enumerated() {
            guard let x = c.exchange else { continue }
            let spread = Double(drain / 4) * Double(i) / Double(orphans.count)
            x.retireAt = now &+ drain &+ UInt64(spread)
            updateClientTimer(c)
        }
    }
}
