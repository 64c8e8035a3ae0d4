import CNghttp2
import SluiceCore

/// HTTP/2 streams as exchanges: a stream's request goes into its connection object as an
/// HTTP/1.1 request (`H2RequestHead`), the exchange answers as to an HTTP/1.1 client, and the
/// answer is read back (`H1ResponseReader`) into HEADERS, DATA and trailers. Flow control ties
/// into the same bounded buffers: a stream's window is given back only as its exchange takes
/// the bytes, and its response is read from the exchange only as nghttp2 sends it.
extension Worker {
    // MARK: - Callbacks' entry points (inside nghttp2: record, do not drive)

    /// A client opened stream `id`. False: refused (the stream is reset).
    func h2StreamOpened(_ h: H2Connection, id: Int32) -> Bool {
        guard let session = h.session, h.failure == nil,
              h.openStreams < settings.http2.maxConcurrentStreams else { return false }
        let s = h2.take(capacity: bufferCapacity, buffers: buffers, limits: settings.limits.parser)
        s.open(id: id, on: h, now: now)
        guard nghttp2_session_set_stream_user_data(session, id, Unmanaged.passUnretained(s).toOpaque()) == 0 else {
            s.connection = nil
            h2.give(s)
            return false
        }
        h.openStreams += 1
        h.streamsSeen += 1
        if recordMetrics { metrics.http2(listener: Int(h.client.listenerIndex), connections: 0, streams: 1) }
        return true
    }

    /// A frame arrived whole. False: the connection must end (`h.failure` says why).
    func h2FrameReceived(_ h: H2Connection, _ frame: UnsafePointer<nghttp2_frame>) -> Bool {
        let hd = frame.pointee.hd
        let endStream = hd.flags & H2Callbacks.endStream != 0
        switch Int(hd.type) {
        case Int(NGHTTP2_HEADERS.rawValue):
            guard let s = h.stream(hd.stream_id) else { return true }
            if !s.headComplete {
                s.headComplete = true
                s.bodiless = endStream
                h.markReady(s)
            }
            if endStream {
                s.requestEnded = true
                h.markReady(s)
            }
        case Int(NGHTTP2_DATA.rawValue):
            if endStream, let s = h.stream(hd.stream_id) {
                s.requestEnded = true
                h.markReady(s)
            }
            if hd.length == 0 && !endStream && !h.control.allow(now: now) {
                h.failure = .controlFlood
                return false
            }
        case Int(NGHTTP2_RST_STREAM.rawValue):
            // Counted here, for every RST_STREAM; its stream's close (next) is not counted again.
            h.stream(hd.stream_id)?.resetByClient = true
            if !h.resets.allow(now: now) {
                h.failure = .rapidReset
                return false
            }
        case Int(NGHTTP2_PING.rawValue), Int(NGHTTP2_SETTINGS.rawValue):
            if hd.flags & H2Callbacks.ackFlag == 0 && !h.control.allow(now: now) {
                h.failure = .controlFlood
                return false
            }
        case Int(NGHTTP2_WINDOW_UPDATE.rawValue):
            // Acknowledgements of DATA sent are not a flood (see `H2Connection.windowUpdates`).
            h.windowUpdates += 1
            if h.windowUpdates > H2Connection.windowUpdatesPerDataFrame * h.dataFramesSent && !h.control.allow(now: now) {
                h.failure = .controlFlood
                return false
            }
        case Int(NGHTTP2_PRIORITY.rawValue):
            if !h.control.allow(now: now) {
                h.failure = .controlFlood
                return false
            }
        default:
            break
        }
        return true
    }

    /// nghttp2 closed stream `s` (ended both ways, or reset by either side) with `error`.
    func h2StreamClosed(_ h: H2Connection, _ s: H2Stream, error: UInt32) {
        s.id = 0
        if s.finished {
            releaseStream(s, h)
            return
        }
        // The client reset it (or the connection is ending) while its exchange runs.
        s.peerClosed = true
        h.markReady(s)
        // A stream nghttp2 reset for the client's error (DATA on a stream the client had ended,
        // a zero WINDOW_UPDATE, ...) while its exchange ran costs what a client's RST_STREAM
        // costs: an exchange started and thrown away. It takes a reset token too, or a client
        // could do rapid reset without ever sending RST_STREAM (CVE-2025-8671, "MadeYouReset").
        if error != NGHTTP2_NO_ERROR.rawValue && !s.resetByClient && !s.cut && h.failure == nil && !h.resets.allow(now: now) {
            h.failure = .rapidReset
        }
    }

    // MARK: - Request side

    /// Gives the stream's exchange what arrived: the head, body bytes, the end, or the reset.
    func feedStream(_ s: H2Stream, _ h: H2Connection) {
        let c = s.client
        if s.peerClosed {
            s.peerClosed = false
            if !s.finished {
                clientGone(c)
                if !s.finished { finishStream(s) }
            }
            return
        }
        guard !s.finished, s.headComplete else { return }
        if !s.headWritten {
            s.headWritten = true
            if s.head.listBytes > settings.http2.maxHeaderListBytes {
                respondDirectly(s, status: 431)
                return
            }
            if s.head.malformed {
                // nghttp2's HTTP messaging rules already drop fields with CR, LF or NUL and refuse
                // unknown pseudo-headers; this keeps such a field from ever being written into an
                // HTTP/1.1 head should those rules be relaxed (an option, a library change).
                respondDirectly(s, status: 400)
                return
            }
            scratch.removeAll(keepingCapacity: true)
            s.chunked = s.head.write(endStream: s.bodiless, to: &scratch) == .chunked
            s.reader.reset(method: s.head.method == Worker.headMethod ? .head : .get)
            guard scratch.withUnsafeBytes({ c.inBuffer.append($0) }) else {
                respondDirectly(s, status: 431)
                return
            }
        }
        moveRequestBody(s)
        drive(c)
    }

    static let headMethod = Array("HEAD".utf8)

    /// Moves DATA bytes from `bodyIn` into the exchange's input (as chunks when the request has
    /// no content-length); their window is given back as the exchange sends them on.
    func moveRequestBody(_ s: H2Stream) {
        let c = s.client
        s.movedIn += moveBody(&s.bodyIn, to: &c.inBuffer, chunked: s.chunked)
        s.bodyIn.releaseIfEmpty()
        if s.requestEnded && s.chunked && s.bodyIn.isEmpty && !s.lastChunkWritten && c.inBuffer.freeSpace >= 5 {
            _ = c.inBuffer.append(Worker.lastChunk)
            s.lastChunkWritten = true
        }
        ackRequestBody(s)
    }

    /// Gives back the window of the DATA bytes the exchange took from its input (sent upstream):
    /// what is still in the input is at most `client.inBuffer.count` bytes of DATA, so the rest of
    /// what was moved in has left. A stream's unsent body is thus at most its window, and a
    /// connection's at most the connection window, wherever it waits inside Sluice.
    func ackRequestBody(_ s: H2Stream) {
        let outstanding = s.movedIn - s.acked
        let n = s.client.inBuffer.isEmpty ? outstanding : outstanding - s.client.inBuffer.count
        guard n > 0, let h = s.connection, let session = h.session else { return }
        if s.id != 0 {
            _ = nghttp2_session_consume(session, s.id, n)
        } else {
            _ = nghttp2_session_consume_connection(session, n)
        }
        s.acked += n
        queueHTTP2(h)
    }

    static let crlf: [UInt8] = [13, 10]

    /// Moves body bytes from `from` into `to` as far as they fit (each move one chunk when
    /// `chunked`: a size line of 16 hex digits, the data, CRLF). Returns the body bytes moved.
    /// Both directions of HTTP/2 use it: a client's DATA into its exchange, an upstream's DATA
    /// into the exchange's upstream input.
    func moveBody(_ from: inout IOBuffer, to: inout IOBuffer, chunked: Bool) -> Int {
        var moved = 0
        while !from.isEmpty {
            let room = to.freeSpace - (chunked ? Worker.chunkOverhead : 0)
            guard room > 0 else { break }
            let n = min(room, from.count)
            let data = UnsafeRawBufferPointer(rebasing: from.readable[0..<n])
            if chunked {
                scratch.removeAll(keepingCapacity: true)
                StickyHash.appendHex(UInt64(n), to: &scratch)
                scratch.append(13)
                scratch.append(10)
                _ = scratch.withUnsafeBytes { to.append($0) }
                _ = to.append(data)
                _ = to.append(Worker.crlf)
            } else {
                _ = to.append(data)
            }
            from.consume(n)
            moved += n
        }
        return moved
    }

    /// Bytes a chunk adds around its data: 16 hex digits and CRLF, then CRLF.
    static let chunkOverhead = 20
    static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)

    // MARK: - Response side

    /// After the stream's exchange ran (`drive`): its response bytes to the stream, more request
    /// body in, and the end when the exchange is over.
    func streamDriven(_ s: H2Stream) {
        let c = s.client
        guard !s.finished, let h = s.connection else { return }
        pumpResponse(s)
        ackRequestBody(s)
        if !s.bodyIn.isEmpty || (s.requestEnded && s.chunked && !s.lastChunkWritten) {
            if c.inBuffer.freeSpace > 16 { h.markReady(s) }
        }
        if c.conn.phase == .awaitingHead && c.conn.requestsServed > 0 && c.outBuffer.isEmpty {
            finishStream(s)
        }
        queueHTTP2(h)
    }

    /// Reads the exchange's HTTP/1.1 response from the stream's connection object into the
    /// stream: heads are submitted, body bytes move to `dataOut` (as much as it holds). Returns
    /// true when bytes were taken.
    @discardableResult
    func pumpResponse(_ s: H2Stream) -> Bool {
        let c = s.client
        guard s.id != 0, let h = s.connection, let session = h.session else {
            c.outBuffer.clear()
            return false
        }
        var took = false
        loop: while !c.outBuffer.isEmpty {
            let room = s.dataOut.freeSpace
            if s.reader.inBody && room < 16 { break }
            let r = c.outBuffer.readable
            switch s.reader.next(r, head: &s.responseHead, maxData: room) {
            case .needMore(let k):
                guard k > 0 else { break loop }
                c.outBuffer.consume(k)
            case .head(let k, let final, let hasBody):
                submitHead(s, session, bytes: r, final: final, hasBody: hasBody)
                c.outBuffer.consume(k)
            case .data(let offset, let count, let k):
                _ = s.dataOut.append(UnsafeRawBufferPointer(rebasing: r[offset..<offset + count]))
                c.outBuffer.consume(k)
            case .end(let k, let to, let tc):
                s.trailers.append(contentsOf: UnsafeRawBufferPointer(rebasing: r[to..<to + tc]))
                c.outBuffer.consume(k)
            case .invalid:
                s.cut = true
                c.outBuffer.clear()
            }
            took = true
            if s.submitted && s.reader.isDone { s.responseEnded = true }
        }
        c.writable = c.outBuffer.isEmpty
        if took { c.lastWriteProgress = now }
        if s.deferred && (!s.dataOut.isEmpty || s.responseEnded || s.cut) {
            s.deferred = false
            _ = nghttp2_session_resume_data(session, s.id)
        }
        return took
    }

    /// HEADERS for a response head at the start of `bytes` (`s.responseHead`): 1xx heads as
    /// interim HEADERS, the final one with a data provider when a body follows.
    private func submitHead(_ s: H2Stream, _ session: OpaquePointer, bytes: UnsafeRawBufferPointer, final: Bool, hasBody: Bool) {
        let head = s.responseHead
        if head.status == 101 { return }  // no Upgrade over HTTP/2 (never asked for: h2 requests carry none)
        h2.fields.removeAll(keepingCapacity: true)
        h2.offsets.removeAll(keepingCapacity: true)
        let status = head.status
        HeadWriter.appendDecimal(UInt64(status), to: &h2.fields)  // 100...599: the three bytes of :status
        for f in head.fields where !f.flags.contains(.hopByHop) {
            let name = UnsafeRawBufferPointer(rebasing: bytes[f.name.range])
            let value = UnsafeRawBufferPointer(rebasing: bytes[f.value.range])
            h2.offsets.append(h2.fields.count)
            for b in name { h2.fields.append(b >= 65 && b <= 90 ? b | 0x20 : b) }
            h2.offsets.append(h2.fields.count)
            h2.fields.append(contentsOf: value)
        }
        h2.offsets.append(h2.fields.count)
        let rv: Int32 = withFieldList(status: true) { nva, n in
            if !final {
                return nghttp2_submit_headers(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), s.id, nil, nva, n, nil)
            }
            guard hasBody else { return nghttp2_submit_response(session, s.id, nva, n, nil) }
            var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: Unmanaged.passUnretained(s).toOpaque()),
                                                 read_callback: H2Callbacks.readBody)
            return nghttp2_submit_response(session, s.id, nva, n, &provider)
        }
        guard final else { return }
        s.submitted = true
        if rv != 0 { s.cut = true }
        if !hasBody { s.responseEnded = true }
    }

    /// Calls `body` with the nghttp2 name/value list of `h2.fields` split at `h2.offsets`
    /// (pairs of name start, value start; the last offset ends the last value), `:status`
    /// first when `status` (the first three bytes).
    func withFieldList(status: Bool, _ body: (UnsafePointer<nghttp2_nv>, Int) -> Int32) -> Int32 {
        h2.nvs.removeAll(keepingCapacity: true)
        let offsets = h2.offsets
        return h2.fields.withUnsafeMutableBufferPointer { f -> Int32 in
            let base = f.baseAddress!
            let flags = UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
            if status {
                Worker.statusName.withUnsafeBufferPointer { name in
                    h2.nvs.append(nghttp2_nv(name: UnsafeMutablePointer(mutating: name.baseAddress!), value: base,
                                             namelen: name.count, valuelen: 3, flags: flags))
                }
            }
            var i = 0
            while i + 2 < offsets.count {
                let ns = offsets[i], vs = offsets[i + 1], ve = offsets[i + 2]
                h2.nvs.append(nghttp2_nv(name: base + ns, value: base + vs, namelen: vs - ns, valuelen: ve - vs, flags: flags))
                i += 2
            }
            return h2.nvs.withUnsafeBufferPointer { body($0.baseAddress!, $0.count) }
        }
    }

    static let statusName: [UInt8] = Array(":status".utf8)

    /// Trailer fields of `s` as HTTP/2 trailers (from inside the data callback). False: none sent.
    func h2SubmitTrailers(_ session: OpaquePointer, _ s: H2Stream) -> Bool {
        h2.fields.removeAll(keepingCapacity: true)
        h2.offsets.removeAll(keepingCapacity: true)
        s.trailers.withUnsafeBytes { t in
            var p = 0
            while p < t.count {
                var e = p
                while e < t.count && t[e] != 10 { e += 1 }
                var colon = p
                while colon < e && t[colon] != UInt8(ascii: ":") { colon += 1 }
                if colon < e {
                    h2.offsets.append(h2.fields.count)
                    for b in t[p..<colon] { h2.fields.append(b >= 65 && b <= 90 ? b | 0x20 : b) }
                    h2.offsets.append(h2.fields.count)
                    var vs = colon + 1
                    var ve = e > p && t[e - 1] == 13 ? e - 1 : e
                    while vs < ve && (t[vs] == 32 || t[vs] == 9) { vs += 1 }
                    while ve > vs && (t[ve - 1] == 32 || t[ve - 1] == 9) { ve -= 1 }
                    h2.fields.append(contentsOf: t[vs..<ve])
                }
                p = e + 1
            }
        }
        guard !h2.offsets.isEmpty else { return false }
        h2.offsets.append(h2.fields.count)
        return withFieldList(status: false) { nva, n in nghttp2_submit_trailer(session, s.id, nva, n) } == 0
    }

    /// Answers a stream Sluice refuses before any exchange (431: header list too large; 400: a
    /// field its HTTP/1.1 form cannot carry).
    private func respondDirectly(_ s: H2Stream, status: Int) {
        guard s.id != 0, let session = s.connection?.session else { return }
        h2.fields.removeAll(keepingCapacity: true)
        h2.offsets.removeAll(keepingCapacity: true)
        HeadWriter.appendDecimal(UInt64(status), to: &h2.fields)  // 100...599: the three bytes of :status
        _ = withFieldList(status: true) { nva, n in nghttp2_submit_response(session, s.id, nva, n, nil) }
        s.submitted = true
        s.responseEnded = true
        s.finished = true
        ExchangeMachine.closed(&s.client.conn)
        // A client that keeps its request open cannot hold the stream past `client_send`.
        s.client.lastWriteProgress = now
        setClientDeadline(s.client, now &+ settings.timeouts.clientSend)
    }

    // MARK: - End of a stream

    /// The stream's exchange is over (its response complete, or the exchange closed): the
    /// exchange goes back to the pool; an unfinished response resets the stream. The slot is
    /// freed when nghttp2 closes the stream.
    func finishStream(_ s: H2Stream) {
        guard !s.finished else { return }
        let c = s.client
        if s.id != 0 { pumpResponse(s) }
        if s.reader.endsWithExchange {
            s.reader.exchangeEnded()
            s.responseEnded = true
        }
        s.finished = true
        releaseExchange(c)
        ExchangeMachine.closed(&c.conn)
        c.deadline = 0
        c.inBuffer.clear()
        ackRequestBody(s)  // what the exchange left unread goes back to the connection window
        c.inBuffer.release()
        c.outBuffer.release()
        guard let h = s.connection else { return }
        if s.id == 0 {
            releaseStream(s, h)
            return
        }
        if let session = h.session {
            if !s.responseEnded || s.cut {
                // A cut response: the client must not take it for a whole one.
                _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), s.id, NGHTTP2_INTERNAL_ERROR.rawValue)
            } else {
                if s.deferred {
                    s.deferred = false
                    _ = nghttp2_session_resume_data(session, s.id)
                }
                // The rest of the response waits for the client's window: `client_send` bounds the
                // wait (`h2StreamSendTimedOut`), as it does while the exchange runs.
                c.lastWriteProgress = now
                setClientDeadline(c, now &+ settings.timeouts.clientSend)
            }
        }
        queueHTTP2(h)
    }

    /// The deadline of a finished stream still open: its response waits for the client's window,
    /// or the client has not ended its request. When nothing of the response moved for
    /// `client_send`, the stream is reset, so a client cannot hold streams, and the buffers they
    /// keep, for ever.
    func h2StreamSendTimedOut(_ s: H2Stream) {
        let c = s.client
        guard s.id != 0, let h = s.connection, let session = h.session else { return }
        let limit = c.lastWriteProgress &+ settings.timeouts.clientSend
        if now < limit {
            setClientDeadline(c, limit)
            return
        }
        // The response was sent whole and only the client's request is still open: NO_ERROR
        // (RFC 9113 8.1: stop sending the request); otherwise the response is cut.
        let complete = nghttp2_session_get_stream_local_close(session, s.id) == 1
        let code = complete ? NGHTTP2_NO_ERROR : NGHTTP2_INTERNAL_ERROR
        _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), s.id, code.rawValue)
        queueHTTP2(h)
    }

    /// Returns a closed stream's slot (its exchange ended and nghttp2 forgot it).
    func releaseStream(_ s: H2Stream, _ h: H2Connection) {
        guard s.connection === h else { return }
        if let session = h.session, s.id != 0 { _ = nghttp2_session_set_stream_user_data(session, s.id, nil) }
        h.openStreams -= 1
        h2.give(s)
    }
}
