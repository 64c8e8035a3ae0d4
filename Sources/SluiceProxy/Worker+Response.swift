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
                if !u.inBuffer.isEmpty && x.record.upstreamFirstByteNanos == nil {
                    // The first byte of the upstream's answer (an interim response counts).
                    let nanos = x.record.upstreamSentAt == 0 ? 0 : now &- x.record.upstreamSentAt
                    x.record.upstreamFirstByteNanos = nanos
                    if recordMetrics { metrics.recordUpstreamFirstByte(series: x.record.series, nanos: nanos) }
                }
                if u.inBuffer.isEmpty {
                    if u.readEOF || u.failedErrno != 0 || (u.hangup && !u.readable) {
                        // After an interim response the upstream did get the request: no retry.
                        let answered = x.record.upstreamFirstByteNanos != nil
                        perform(c, x, step(c, x, answered ? .upstreamFailed(.reset) : lostEvent(x, u)))
                        return true
                    }
                    return progressed
                }
                switch ResponseParser.parse(u.inBuffer.readable, requestMethod: x.state.request.method,
                                            into: &u.responseHead, limits: settings.limits.parser) {
                case .incomplete:
                    if u.readEOF || u.failedErrno != 0 {
                        let reset = u.failedErrno != 0
                        perform(c, x, step(c, x, reset ? retryableEvent(x, .reset) ?? .upstreamFailed(.reset) : .upstreamFailed(.badResponse)))
                        return true
                    }
                    return progressed
                case .invalid:
                    perform(c, x, step(c, x, .upstreamFailed(.badResponse)))
                    return true
                case .complete:
                    let status = u.responseHead.status
                    if status == 101 && x.state.upgrade {
                        perform(c, x, step(c, x, .switchingProtocols))
                        return true
                    }
                    if status < 200 {
                        switch ExchangeMachine.interim(status, exchange: x.state) {
                        case .fail:
                            perform(c, x, step(c, x, .upstreamFailed(.badResponse)))
                            return true
                        case .relay:
                            if !relayInterim(c, x, u) { return progressed }
                        case .drop:
                            u.inBuffer.consume(u.responseHead.headLength)
                        }
                        progressed = true
                        continue
                    }
                    if !startResponse(c, x, u) { return progressed }
                    if x.upstream !== u || c.conn.phase != .exchange { return true }  // retried, or failed over
                    progressed = true
                }
            case .length(let remaining):
                if x.compressor != nil {
                    // Compressed: the body's bytes go through the deflate stream, framed anew.
                    if remaining == 0 {
                        if !finishCompressed(c, x, trailer: UnsafeRawBufferPointer(start: nil, count: 0)) { return progressed }
                        x.state.responseBody = .done
                        return true
                    }
                    if u.inBuffer.isEmpty {
                        if u.readEOF || u.failedErrno != 0 {
                            perform(c, x, step(c, x, .upstreamFailed(.reset)))
                            return true
                        }
                        return progressed
                    }
                    let n = min(Int(min(remaining, UInt64(Int.max))), u.inBuffer.count, compressibleInput(c, x))
                    if n <= 0 { return progressed }
                    let consumed = compressInto(c, x, UnsafeRawBufferPointer(rebasing: u.inBuffer.readable[0..<n]))
                    if consumed == 0 { return progressed }
                    if x.mirror != nil { mirrorPrimaryBody(x, UnsafeRawBufferPointer(rebasing: u.inBuffer.readable[0..<consumed])) }
                    u.inBuffer.consume(consumed)
                    x.state.responseBody = .length(remaining: remaining - UInt64(consumed))
                    progressed = true
                    continue
                }
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
                if x.mirror != nil { mirrorPrimaryBody(x, UnsafeRawBufferPointer(rebasing: u.inBuffer.readable[0..<taken])) }
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
                if u.readEOF && u.failedErrno != 0 {
                    // A reset is not the end of a close-delimited body: the response is cut short.
                    perform(c, x, step(c, x, .upstreamFailed(.reset)))
                    return true
                }
                if u.readEOF {
                    if x.compressor != nil {
                        if !finishCompressed(c, x, trailer: UnsafeRawBufferPointer(start: nil, count: 0)) { return progressed }
                        x.state.responseBody = .done
                        return true
                    }
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
                let room = x.compressor != nil ? compressibleInput(c, x) : c.outBuffer.freeSpace - (chunkedOut ? 32 : 0)
                if room <= 0 { return progressed }
                let input = UnsafeRawBufferPointer(rebasing: u.inBuffer.readable.prefix(room))
                switch decoder.decode(input) {
                case .data(let offset, let count, let consumed):
                    let data = UnsafeRawBufferPointer(rebasing: input[offset..<offset + count])
                    if x.mirror != nil { mirrorPrimaryBody(x, data) }
                    if x.compressor != nil {
                        // At most `Compressor.maxInput` bytes with no output pending: deflate takes all of them.
                        if compressInto(c, x, data) != data.count {
                            // Cannot happen (see `Compressor.maxInput`); never relay a body with a hole.
                            perform(c, x, step(c, x, .upstreamFailed(.badResponse)))
                            return true
                        }
                    } else {
                        queueBody(c, x, data, chunked: chunkedOut)
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
                    if x.compressor != nil {
                        let trailer = UnsafeRawBufferPointer(rebasing: input[trailerOffset..<trailerOffset + trailerCount])
                        if !finishCompressed(c, x, trailer: trailer) { return progressed }
                    } else if chunkedOut {
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
        if x.compressor != nil {
            let n = min(u.inBuffer.count, compressibleInput(c, x))
            if n <= 0 { return false }
            let consumed = compressInto(c, x, UnsafeRawBufferPointer(rebasing: u.inBuffer.readable[0..<n]))
            if x.mirror != nil { mirrorPrimaryBody(x, UnsafeRawBufferPointer(rebasing: u.inBuffer.readable[0..<consumed])) }
            u.inBuffer.consume(consumed)
            return consumed > 0
        }
        let chunkedOut = x.state.responseOutFraming == .chunked
        let room = c.outBuffer.freeSpace - (chunkedOut ? 32 : 0)
        let n = min(room, u.inBuffer.count)
        if n <= 0 { return false }
        queueBody(c, x, UnsafeRawBufferPointer(rebasing: u.inBuffer.readable[0..<n]), chunked: chunkedOut)
        if x.mirror != nil { mirrorPrimaryBody(x, UnsafeRawBufferPointer(rebasing: u.inBuffer.readable[0..<n])) }
        u.inBuffer.consume(n)
        return true
    }

    /// Queues body bytes for the client as they are, or as one chunk (the caller checked the room:
    /// the data plus 32 bytes of chunk framing).
    private func queueBody(_ c: ClientConnection, _ x: Exchange, _ data: UnsafeRawBufferPointer, chunked: Bool) {
        if chunked {
            scratch.removeAll(keepingCapacity: true)
            HeadWriter.appendChunk(data, to: &scratch)
            c.outBuffer.append(scratch)
            x.record.bytesOut &+= UInt64(scratch.count)
        } else {
            c.outBuffer.append(data)
            x.record.bytesOut &+= UInt64(data.count)
        }
    }

    /// Queues an interim response (102, 103 Early Hints with its Link fields, ...) for the client
    /// ahead of the final one: end-to-end fields only, no framing. False if there is no room yet.
    private func relayInterim(_ c: ClientConnection, _ x: Exchange, _ u: UpstreamConnection) -> Bool {
        let rh = u.responseHead
        scratch.removeAll(keepingCapacity: true)
        HeadWriter.appendResponseStart(rh, bytes: u.inBuffer.readable, keepContentLength: false, to: &scratch)
        HeadWriter.appendStatic("\r\n", to: &scratch)
        if scratch.count > c.outBuffer.freeSpace { return false }
        c.outBuffer.append(scratch)
        x.record.bytesOut &+= UInt64(scratch.count)
        u.inBuffer.consume(rh.headLength)
        return true
    }

    /// Writes the client response head as the machine plans it and sets up body relaying.
    /// False if the output buffer has no room for the head yet (nothing changes then).
    private func startResponse(_ c: ClientConnection, _ x: Exchange, _ u: UpstreamConnection) -> Bool {
        let rh = u.responseHead
        if x.retry != nil && RetryCause.isGatewayFailure(status: rh.status), let event = retryableEvent(x, .status(rh.status)) {
            // A retryable answer: its head is not forwarded; the request goes to another attempt.
            let action = step(c, x, event)
            if action != .none {
                perform(c, x, action)
                return true
            }
        }
        var gzip: CompressionSpec? = nil
        if x.acceptsGzip, let spec = x.policy?.compression,
           CompressionPolicy.compresses(spec, acceptsGzip: true, method: x.state.request.method, head: rh,
                                        bytes: u.inBuffer.readable) {
            gzip = spec
        }
        var compressor: Compressor? = nil
        if let spec = gzip {
            // Over the per-worker cap (or if zlib cannot allocate): the response goes as it is.
            compressor = compressors.take(level: spec.level)
            if compressor == nil { gzip = nil }
        }
        let facts = ResponseFacts(status: rh.status, framing: rh.framing, keepAlive: rh.keepAlive, compress: gzip != nil)
        let plan = ExchangeMachine.responsePlan(for: facts, connection: c.conn, exchange: x.state, limits: exchangeLimits)
        scratch.removeAll(keepingCapacity: true)
        HeadWriter.appendResponseStart(rh, bytes: u.inBuffer.readable, keepContentLength: plan.keepContentLength,
                                       policy: x.policy, gzip: gzip != nil, to: &scratch)
        HeadWriter.appendFraming(plan.framing, closeConnection: plan.closing, http10KeepAlive: plan.http10KeepAlive,
                                 to: &scratch)
        if scratch.count > c.outBuffer.freeSpace {
            if let compressor { compressors.give(compressor) }
            return false
        }
        x.compressor = compressor
        x.compressFinished = false
        _ = step(c, x, .responseHead(facts))
        x.record.upstreamStatus = rh.status
        reportEndpointResponse(x, status: Int(rh.status))
        c.outBuffer.append(scratch)
        x.record.status = rh.status
        x.record.bytesOut &+= UInt64(scratch.count)
        if x.mirror != nil { mirrorPrimaryHead(x, rh, u.inBuffer.readable) }
        u.inBuffer.consume(rh.headLength)
        return true
    }

    // MARK: - gzip

    /// How many body bytes may be offered to the compressor now (0 while its output waits for
    /// room in the client's buffer).
    func compressibleInput(_ c: ClientConnection, _ x: Exchange) -> Int {
        guard let z = x.compressor else { return 0 }
        if z.hasPendingOutput { queueCompressed(c, x) }
        return z.hasPendingOutput ? 0 : Compressor.maxInput
    }

    /// Compresses `data` (at most `compressibleInput` bytes) and queues what fits of the output
    /// for the client; returns the input bytes consumed (the rest of the output waits in the
    /// compressor, so nothing is ever dropped).
    @discardableResult
    func compressInto(_ c: ClientConnection, _ x: Exchange, _ data: UnsafeRawBufferPointer) -> Int {
        guard let z = x.compressor else { return 0 }
        let consumed = z.compress(data)
        if recordMetrics { metrics.recordCompression(series: x.record.series, bytesIn: UInt64(consumed), bytesOut: 0) }
        queueCompressed(c, x)
        return consumed
    }

    /// Ends the deflate stream and the body (last chunk with the filtered trailer for HTTP/1.1).
    /// False while the client's buffer has no room for what remains.
    func finishCompressed(_ c: ClientConnection, _ x: Exchange, trailer: UnsafeRawBufferPointer) -> Bool {
        guard let z = x.compressor else { return true }
        while true {
            queueCompressed(c, x)
            if z.hasPendingOutput { return false }
            if x.compressFinished { break }
            x.compressFinished = z.finish()
        }
        if x.state.responseOutFraming == .chunked {
            scratch.removeAll(keepingCapacity: true)
            HeadWriter.appendLastChunk(trailer: trailer, droppedField: x.policy?.droppedRequestField ?? [], to: &scratch)
            guard c.outBuffer.append(scratch) else { return false }
            x.record.bytesOut &+= UInt64(scratch.count)
        }
        compressors.give(z)
        x.compressor = nil
        return true
    }

    /// Moves as much of the compressor's pending output as fits into the client's buffer (one
    /// chunk for an HTTP/1.1 client).
    private func queueCompressed(_ c: ClientConnection, _ x: Exchange) {
        guard let z = x.compressor, z.hasPendingOutput else { return }
        let chunked = x.state.responseOutFraming == .chunked
        let room = c.outBuffer.freeSpace - (chunked ? 32 : 0)
        guard room > 0 else { return }
        let bytes = z.pendingOutput(max: room)
        if chunked {
            scratch.removeAll(keepingCapacity: true)
            HeadWriter.appendChunk(bytes, to: &scratch)
            guard c.outBuffer.append(scratch) else { return }
            x.record.bytesOut &+= UInt64(scratch.count)
        } else {
            guard c.outBuffer.append(bytes) else { return }
            x.record.bytesOut &+= UInt64(bytes.count)
        }
        if recordMetrics { metrics.recordCompression(series: x.record.series, bytesIn: 0, bytesOut: UInt64(bytes.count)) }
        z.took(bytes.count)
    }
}
