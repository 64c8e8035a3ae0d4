import SluiceCore

/// Moving a request body from the client to the upstream: Content-Length bytes as they are,
/// chunked bodies decoded and re-chunked (`HeadWriter.appendChunk`).
extension Worker {
    /// Moves request body bytes from the client buffer towards the upstream. Returns progress.
    func pumpRequestBody(_ c: ClientConnection, _ x: Exchange, _ u: UpstreamConnection, budget: inout Int) -> Bool {
        var progressed = false
        while true {
            switch x.state.requestBody {
            case .done:
                return progressed
            case .length(let remaining):
                if c.inBuffer.isEmpty {
                    if let result = refillRequestBody(c, x, progressed: progressed, budget: &budget) { return result }
                    progressed = true
                    continue
                }
                let n = min(Int(min(remaining, UInt64(Int.max))), c.inBuffer.count)
                let direct = u.connected && u.writable && u.outBuffer.isEmpty && u.failedErrno == 0
                guard let taken = sendOrQueue(u.fd, tls: u.tls, UnsafeRawBufferPointer(rebasing: c.inBuffer.readable[0..<n]),
                                              direct: direct, queue: &u.outBuffer, writable: &u.writable,
                                              failedErrno: &u.failedErrno) else {
                    u.hangup = true
                    u.writable = false
                    return progressed
                }
                if taken == 0 { return progressed }
                u.lastSendProgress = now
                if x.keepingBody { keepBody(x, UnsafeRawBufferPointer(rebasing: c.inBuffer.readable[0..<taken])) }
                if x.mirror != nil { mirrorRequestBytes(x, UnsafeRawBufferPointer(rebasing: c.inBuffer.readable[0..<taken]), payload: taken) }
                c.inBuffer.consume(taken)
                x.state.requestBodyBytes += UInt64(taken)
                progressed = true
                let left = remaining - UInt64(taken)
                x.state.requestBody = left == 0 ? .done : .length(remaining: left)
            case .chunked(var decoder):
                let room = u.outBuffer.freeSpace - 32
                if room <= 0 { return progressed }
                if c.inBuffer.isEmpty {
                    if let result = refillRequestBody(c, x, progressed: progressed, budget: &budget) { return result }
                    progressed = true
                    continue
                }
                let input = UnsafeRawBufferPointer(rebasing: c.inBuffer.readable.prefix(room))
                let step = decoder.decode(input)
                switch step {
                case .data(let offset, let count, let consumed):
                    scratch.removeAll(keepingCapacity: true)
                    HeadWriter.appendChunk(UnsafeRawBufferPointer(rebasing: input[offset..<offset + count]), to: &scratch)
                    u.outBuffer.append(scratch)
                    if x.keepingBody { scratch.withUnsafeBytes { keepBody(x, $0) } }
                    if x.mirror != nil { scratch.withUnsafeBytes { mirrorRequestBytes(x, $0, payload: count) } }
                    c.inBuffer.consume(consumed)
                    x.state.requestBodyBytes += UInt64(count)
                    x.state.requestBody = .chunked(decoder)
                    progressed = true
                    let limit = settings.limits.maxBodyBytes
                    if limit > 0 && x.state.requestBodyBytes > limit {
                        perform(c, x, self.step(c, x, .requestBodyTooLarge))
                        return true
                    }
                case .needMore(let consumed):
                    c.inBuffer.consume(consumed)
                    x.state.requestBody = .chunked(decoder)
                    if consumed > 0 { progressed = true; continue }
                    if c.inBuffer.freeSpace == 0 && input.count == c.inBuffer.count {
                        // Cannot happen within the limits (trailers are bounded); guard anyway.
                        perform(c, x, self.step(c, x, .requestBodyInvalid(.badChunkSize)))
                        return true
                    }
                    if input.count < c.inBuffer.count { return progressed }  // waiting for upstream buffer room
                    if let result = refillRequestBody(c, x, progressed: progressed, budget: &budget) { return result }
                    progressed = true
                case .done(let consumed, let trailerOffset, let trailerCount):
                    scratch.removeAll(keepingCapacity: true)
                    HeadWriter.appendLastChunk(
                        trailer: UnsafeRawBufferPointer(rebasing: input[trailerOffset..<trailerOffset + trailerCount]),
                        droppedField: x.policy?.droppedRequestField ?? [], to: &scratch)
                    if scratch.count > u.outBuffer.freeSpace { return progressed }
                    u.outBuffer.append(scratch)
                    if x.keepingBody { scratch.withUnsafeBytes { keepBody(x, $0) } }
                    if x.mirror != nil { scratch.withUnsafeBytes { mirrorRequestBytes(x, $0, payload: 0) } }
                    c.inBuffer.consume(consumed)
                    x.state.requestBody = .done
                    progressed = true
                case .invalid(let error):
                    perform(c, x, self.step(c, x, .requestBodyInvalid(error)))
                    return true
                }
            }
        }
    }

    /// The request body needs more bytes from the client: reads them. Returns nil when bytes (or
    /// EOF) arrived and pumping goes on, or the value `pumpRequestBody` returns: `progressed` when
    /// nothing can be read now, true when the client closed before its whole body arrived (the body
    /// is shorter than announced, so the upstream connection is closed with the client's).
    private func refillRequestBody(_ c: ClientConnection, _ x: Exchange, progressed: Bool, budget: inout Int) -> Bool? {
        if c.readEOF {
            perform(c, x, step(c, x, .clientGone))
            return true
        }
        return readClient(c, budget: &budget) ? nil : progressed
    }
}
