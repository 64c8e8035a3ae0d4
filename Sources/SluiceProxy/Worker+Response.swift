import SluiceCore

/// Reading the upstream and relaying its response: the head (through the machine's plan), then
/// the body as Content-Length bytes, decoded chunks, or bytes until close (re-chunked for
/// HTTP/1.1 clients by `HeadWriter.appendChunk`).
extension Worker {
    /// Reads from the upstream into its buffer. Returns true if bytes (or EOF) arrived.
    func readUpstream(_ u: UpstreamConnection, budget: inout Int) -> Bool {
        guard u.readable && !u.readEOF && budget > 0 && u.inBuffer.freeSpace > 0 else { return false }
        let space = u.inBuffer.writableSpace()
        budget -= 1
        switch u.tls.map({ $0.read(space.baseAddress!, space.count) }) ?? Sys.read(u.fd, space.baseAddress!, space.count) {
        case .done(let n):
            u.inBuffer.didWrite(n)
            u.lastProgress = now
            if n < space.count && u.tls == nil { u.readable = u.hangup }  // TLS: read until "want read"
            return true
        case .wouldBlock:
            u.readable = false
            return false
        case .eof:
            upstreamInputEnded(u, errno: 0)
            return true
        case .failed(let e):
            upstreamInputEnded(u, errno: e)
            return true
        }
    }

    /// A read (or splice) from the upstream met EOF, or failed with `errno`.
    func upstreamInputEnded(_ u: UpstreamConnection, errno: Int32) {
        u.readEOF = true
        u.readable = false
        if errno != 0 { u.failedErrno = errno }
    }

    /// Parses the response head and relays body bytes to the client. Returns progress.
    func pumpResponse(_ c: ClientConnection, _ x: Exchange, _ u: UpstreamConnection) -> Bool {
        var progressed = false
        while true {
            switch x.state.responseBody {
            case .done:
                return progressed
            case .awaitingHead:
                if u.inBuffer.isEmpty {
                    if u.readEOF || u.failedErrno != 0 || (u.hangup && !u.readable) {
                        perform(c, x, step(c, x, .upstreamLost(reused: u.reused, connected: u.connected)))
                        return true
                    }
                    return progressed
                }
                switch ResponseParser.parse(u.inBuffer.readable, requestMethod: x.state.request.method,
                                            into: &u.responseHead, limits: settings.limits.parser) {
                case .incomplete:
                    if u.readEOF || u.failedErrno != 0 {
                        perform(c, x, step(c, x, .upstreamFailed(u.failedErrno != 0 ? .reset : .badResponse)))
                        return true
                    }
                    return progressed
                case .invalid:
                    perform(c, x, step(c, x, .upstreamFailed(.badResponse)))
                    return true
                case .complete:
                    let status = u.responseHead.status
                    if status < 200 {
                        if status == 101 {
                            // We never ask for an upgrade, so a switch is a protocol violation.
                            perform(c, x, step(c, x, .upstreamFailed(.badResponse)))
                            return true
                        }
                        // Interim response (100 Continue, 103 Early Hints): dropped, never final.
                        u.inBuffer.consume(u.responseHead.headLength)
                        progressed = true
                        continue
                    }
                    if !startResponse(c, x, u) { return progressed }
                    progressed = true
                }
            case .length(let remaining):
                if u.inBuffer.isEmpty {
                    if u.readEOF || u.failedErrno != 0 {
                        perform(c, x, step(c, x, .upstreamFailed(.reset)))  // cut short: the client cannot be told
                        return true
                    }
                    return progressed
                }
                let n = min(Int(min(remaining, UInt64(Int.max))), u.inBuffer.count)
                // Nothing queued for the client: send straight from the upstream buffer (no copy).
                var failed: Int32 = 0
                guard let taken = sendOrQueue(c.fd, tls: c.tls, UnsafeRawBufferPointer(rebasing: u.inBuffer.readable[0..<n]),
                                              direct: c.outBuffer.isEmpty && c.writable, queue: &c.outBuffer,
                                              writable: &c.writable, failedErrno: &failed) else {
                    clientGone(c)
                    return true
                }
                if taken == 0 { return progressed }
                c.lastWriteProgress = now
                x.record.bytesOut &+= UInt64(taken)
                u.inBuffer.consume(taken)
                let left = remaining - UInt64(taken)
                x.state.responseBody = left == 0 ? .done : .length(remaining: left)
                progressed = true
            case .untilClose:
                if !u.inBuffer.isEmpty {
                    if !relayUntilClose(c, x, u) { return progressed }
                    progressed = true
                    continue
                }
                if u.readEOF {
                    if x.state.responseOutFraming == .chunked {
                        if c.outBuffer.freeSpace < 5 { return progressed }
                        scratch.removeAll(keepingCapacity: true)
                        HeadWriter.appendLastChunk(trailer: UnsafeRawBufferPointer(start: nil, count: 0), to: &scratch)
                        c.outBuffer.append(scratch)
                        x.record.bytesOut &+= UInt64(scratch.count)
                    }
                    x.state.responseBody = .done
                    return true
                }
                return progressed
            case .chunked(var decoder):
                if u.inBuffer.isEmpty {
                    if u.readEOF || u.failedErrno != 0 {
                        perform(c, x, step(c, x, .upstreamFailed(.reset)))
                        return true
                    }
                    return progressed
                }
                let chunkedOut = x.state.responseOutFraming == .chunked
                let room = c.outBuffer.freeSpace - (chunkedOut ? 32 : 0)
                if room <= 0 { return progressed }
                let input = UnsafeRawBufferPointer(rebasing: u.inBuffer.readable.prefix(room))
                switch decoder.decode(input) {
                case .data(let offset, let count, let consumed):
                    let data = UnsafeRawBufferPointer(rebasing: input[offset..<offset + count])
                    if chunkedOut {
                        scratch.removeAll(keepingCapacity: true)
                        HeadWriter.appendChunk(data, to: &scratch)
                        c.outBuffer.append(scratch)
                        x.record.bytesOut &+= UInt64(scratch.count)
                    } else {
                        c.outBuffer.append(data)
                        x.record.bytesOut &+= UInt64(count)
                    }
                    u.inBuffer.consume(consumed)
                    x.state.responseBody = .chunked(decoder)
                    progressed = true
                case .needMore(let consumed):
                    u.inBuffer.consume(consumed)
                    x.state.responseBody = .chunked(decoder)
                    if consumed > 0 { progressed = true; continue }
                    if input.count < u.inBuffer.count { return progressed }
                    if u.readEOF || u.failedErrno != 0 {
                        perform(c, x, step(c, x, .upstreamFailed(.reset)))
                        return true
                    }
                    return progressed
                case .done(let consumed, let trailerOffset, let trailerCount):
                    if chunkedOut {
                        scratch.removeAll(keepingCapacity: true)
                        HeadWriter.appendLastChunk(
                            trailer: UnsafeRawBufferPointer(rebasing: input[trailerOffset..<trailerOffset + trailerCount]),
                            droppedField: x.policy?.droppedRequestField ?? [], to: &scratch)
                        if scratch.count > c.outBuffer.freeSpace { return progressed }
                        c.outBuffer.append(scratch)
                        x.record.bytesOut &+= UInt64(scratch.count)
                    }
                    u.inBuffer.consume(consumed)
                    x.state.responseBody = .done
                    return true
                case .invalid:
                    // Malformed body mid-response: the client's response is cut short.
                    perform(c, x, step(c, x, .upstreamFailed(.badResponse)))
                    return true
                }
            }
        }
    }

    /// Copies close-delimited body bytes to the client, as chunks for HTTP/1.1 clients.
    private func relayUntilClose(_ c: ClientConnection, _ x: Exchange, _ u: UpstreamConnection) -> Bool {
        let chunkedOut = x.state.responseOutFraming == .chunked
        let room = c.outBuffer.freeSpace - (chunkedOut ? 32 : 0)
        let n = min(room, u.inBuffer.count)
        if n <= 0 { return false }
        let data = UnsafeRawBufferPointer(rebasing: u.inBuffer.readable[0..<n])
        if chunkedOut {
            scratch.removeAll(keepingCapacity: true)
            HeadWriter.appendChunk(data, to: &scratch)
            c.outBuffer.append(scratch)
            x.record.bytesOut &+= UInt64(scratch.count)
        } else {
            c.outBuffer.append(data)
            x.record.bytesOut &+= UInt64(n)
        }
        u.inBuffer.consume(n)
        return true
    }

    /// Writes the client response head as the machine plans it and sets up body relaying.
    /// False if the output buffer has no room for the head yet (nothing changes then).
    private func startResponse(_ c: ClientConnection, _ x: Exchange, _ u: UpstreamConnection) -> Bool {
        let rh = u.responseHead
        let facts = ResponseFacts(status: rh.status, framing: rh.framing, keepAlive: rh.keepAlive)
        let plan = ExchangeMachine.responsePlan(for: facts, connection: c.conn, exchange: x.state, limits: exchangeLimits)
        scratch.removeAll(keepingCapacity: true)
        HeadWriter.appendResponseStart(rh, bytes: u.inBuffer.readable, keepContentLength: plan.keepContentLength,
                                       policy: x.policy, to: &scratch)
        HeadWriter.appendFraming(plan.framing, closeConnection: plan.closing, http10KeepAlive: plan.http10KeepAlive,
                                 to: &scratch)
        if scratch.count > c.outBuffer.freeSpace { return false }
        _ = step(c, x, .responseHead(facts))
        c.outBuffer.append(scratch)
        x.record.status = rh.status
        x.record.bytesOut &+= UInt64(scratch.count)
        u.inBuffer.consume(rh.headLength)
        return true
    }
}
