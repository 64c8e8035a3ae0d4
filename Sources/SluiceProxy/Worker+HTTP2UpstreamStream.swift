import CNghttp2
@preconcurrency import Glibc
import SluiceCore

/// One exchange's stream on an upstream HTTP/2 connection: its HTTP/1.1 request out as HEADERS
/// and DATA, HEADERS, DATA and trailers back in as an HTTP/1.1 response.
extension Worker {
    // MARK: - Request: the exchange's HTTP/1.1 bytes to HTTP/2

    /// `flush` for an upstream connection: the socket, or the stream's session.
    @inline(__always)
    func flushUpstream(_ u: UpstreamConnection) -> FlushOutcome {
        if let s = u.h2 { return pumpUpstreamRequest(s) }
        return flush(u.fd, tls: u.tls, &u.outBuffer, writable: &u.writable)
    }

    /// Moves what the exchange wrote into the stream: the head becomes HEADERS (once whole), the
    /// body bytes wait in `requestOut` for nghttp2.
    private func pumpUpstreamRequest(_ s: H2UpstreamStream) -> FlushOutcome {
        let u = s.upstream
        guard let sess = s.session, let session = sess.session, !s.closed else { return .failed(ECONNRESET) }
        var took = false
        if !s.submitted {
            switch RequestParser.parse(u.outBuffer.readable, into: &s.requestHead, progress: &s.requestProgress,
                                       limits: settings.limits.parser) {
            case .incomplete:
                return .idle
            case .invalid:
                return .failed(EPROTO)
            case .complete:
                guard submitUpstreamRequest(s, session, secure: sess.tls != nil) else { return .failed(EPROTO) }
                u.outBuffer.consume(s.requestHead.headLength)
                took = true
            }
        }
        var head = ResponseHead()
        loop: while !u.outBuffer.isEmpty {
            let room = s.requestOut.freeSpace
            guard room >= 16 else { break }
            switch s.bodyReader.next(u.outBuffer.readable, head: &head, maxData: room) {
            case .data(let offset, let count, let k):
                _ = s.requestOut.append(UnsafeRawBufferPointer(rebasing: u.outBuffer.readable[offset..<offset + count]))
                u.outBuffer.consume(k)
            case .needMore(let k):
                guard k > 0 else { break loop }
                u.outBuffer.consume(k)
            case .end(let k, _, _):
                u.outBuffer.consume(k)
            case .head, .invalid:
                return .failed(EPROTO)
            }
            took = true
        }
        if s.bodyReader.isDone { s.requestEnded = true }
        u.writable = u.outBuffer.isEmpty
        if s.deferred && (!s.requestOut.isEmpty || s.requestEnded) {
            s.deferred = false
            _ = nghttp2_session_resume_data(session, s.id)
        }
        queueUpstreamSession(sess)
        return took ? .wrote : .idle
    }

    /// HEADERS for the request head in `u.outBuffer` (`s.requestHead`). False when nghttp2 refused.
    private func submitUpstreamRequest(_ s: H2UpstreamStream, _ session: OpaquePointer, secure: Bool) -> Bool {
        let head = s.requestHead
        let bytes = s.upstream.outBuffer.readable
        h2.fields.removeAll(keepingCapacity: true)
        h2.offsets.removeAll(keepingCapacity: true)
        func add(_ name: StaticString, _ value: UnsafeRawBufferPointer) {
            h2.offsets.append(h2.fields.count)
            h2.fields.append(contentsOf: UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            h2.offsets.append(h2.fields.count)
            h2.fields.append(contentsOf: value)
        }
        add(":method", UnsafeRawBufferPointer(rebasing: bytes[head.methodSpan.range]))
        let scheme: StaticString = secure ? "https" : "http"
        add(":scheme", UnsafeRawBufferPointer(start: scheme.utf8Start, count: scheme.utf8CodeUnitCount))
        add(":authority", UnsafeRawBufferPointer(rebasing: bytes[head.host.range]))
        add(":path", UnsafeRawBufferPointer(rebasing: bytes[head.target.range]))
        for f in head.fields where !f.flags.contains(.hopByHop) && !f.flags.contains(.host) {
            h2.offsets.append(h2.fields.count)
            for b in UnsafeRawBufferPointer(rebasing: bytes[f.name.range]) { h2.fields.append(b >= 65 && b <= 90 ? b | 0x20 : b) }
            h2.offsets.append(h2.fields.count)
            h2.fields.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[f.value.range]))
        }
        // Sluice relays trailers, so it accepts them (gRPC servers require this field).
        let te: StaticString = "trailers"
        add("te", UnsafeRawBufferPointer(start: te.utf8Start, count: te.utf8CodeUnitCount))
        h2.offsets.append(h2.fields.count)
        s.bodyReader.startBody(head.framing)
        let hasBody = !s.bodyReader.isDone
        s.requestEnded = !hasBody
        let id = withFieldList(status: false) { nva, n -> Int32 in
            guard hasBody else { return nghttp2_submit_request(session, nil, nva, n, nil, nil) }
            var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: Unmanaged.passUnretained(s).toOpaque()),
                                                 read_callback: H2UpstreamCallbacks.readRequestBody)
            return nghttp2_submit_request(session, nil, nva, n, &provider, nil)
        }
        guard id > 0 else { return false }
        s.id = id
        s.submitted = true
        _ = nghttp2_session_set_stream_user_data(session, id, Unmanaged.passUnretained(s).toOpaque())
        return true
    }

    // MARK: - Response: HTTP/2 to the exchange's HTTP/1.1 bytes

    /// A response (or trailer) field from nghttp2. False: the head is too large (stream reset).
    func upstreamHeader(_ s: H2UpstreamStream, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Bool {
        if name.count == 11, name.elementsEqual(Worker.grpcStatusName), let c = s.upstream.client?.exchange {
            c.record.grpcStatus = GRPCStatus.parse(value)
        }
        if s.headWritten {
            guard s.trailers.count + name.count + value.count + 4 <= settings.limits.parser.maxTrailerBytes else { return false }
            s.trailers.append(contentsOf: name)
            s.trailers.append(contentsOf: Worker.colonSpace)
            s.trailers.append(contentsOf: value)
            s.trailers.append(contentsOf: Worker.crlf)
            return true
        }
        if name.count == 7, name.elementsEqual(Worker.statusName) {
            s.status = value.count == 3 ? value.reduce(0) { $0 * 10 + Int($1 &- 48) } : 0
            return s.status >= 100 && s.status <= 599
        }
        guard s.fields.count + name.count + value.count + 4 <= settings.limits.parser.maxHeadBytes - 64 else { return false }
        if name.count == 14, name.elementsEqual(Worker.contentLengthName) { s.hasContentLength = true }
        s.fields.append(contentsOf: name)
        s.fields.append(contentsOf: Worker.colonSpace)
        s.fields.append(contentsOf: value)
        s.fields.append(contentsOf: Worker.crlf)
        return true
    }

    static let grpcStatusName = Array("grpc-status".utf8)
    static let contentLengthName = Array("content-length".utf8)
    static let colonSpace = Array(": ".utf8)

    /// A response head (1xx or final) is complete: it is written as an HTTP/1.1 head.
    func upstreamHeadReceived(_ s: H2UpstreamStream, endStream: Bool) -> Bool {
        // Interim heads wait in `pendingHead` while the exchange's input is full; an upstream
        // sending 1xx heads without end (HEADERS are not flow-controlled) must not grow it for
        // ever: past a head limit of them, the stream is reset.
        guard s.status != 0, s.pendingHead.count <= settings.limits.parser.maxHeadBytes else { return false }
        // Appended in place (a copy of the array would allocate for every response).
        s.pendingHead.append(contentsOf: Worker.http11Prefix)
        HeadWriter.appendDecimal(UInt64(s.status), to: &s.pendingHead)
        s.pendingHead.append(contentsOf: Worker.spaceCRLF)
        s.pendingHead.append(contentsOf: s.fields)
        if s.status >= 200 {
            s.headWritten = true
            let bodiless = s.status == 204 || s.status == 304
            if !bodiless && !s.hasContentLength {
                if endStream {
                    s.pendingHead.append(contentsOf: Worker.zeroLength)
                } else {
                    s.pendingHead.append(contentsOf: Worker.chunkedField)
                    s.chunked = true
                }
            }
        }
        s.pendingHead.append(contentsOf: Worker.crlf)
        s.fields.removeAll(keepingCapacity: true)
        return true
    }

    static let http11Prefix = Array("HTTP/1.1 ".utf8)
    static let spaceCRLF = Array(" \r\n".utf8)
    static let zeroLength = Array("content-length: 0\r\n".utf8)
    static let chunkedField = Array("transfer-encoding: chunked\r\n".utf8)

    /// Moves what arrived for the stream into its exchange's input (heads, body as chunks, the
    /// last chunk with trailers, or the reset) and drives the exchange.
    func feedUpstreamStream(_ s: H2UpstreamStream) {
        let u = s.upstream
        if !s.pendingHead.isEmpty {
            if s.pendingHead.withUnsafeBytes({ u.inBuffer.append($0) }) { s.pendingHead.removeAll(keepingCapacity: true) }
        }
        if s.pendingHead.isEmpty {
            s.unacked += moveBody(&s.bodyIn, to: &u.inBuffer, chunked: s.chunked)
            if s.ended && s.bodyIn.isEmpty && !s.endWritten && s.headWritten {
                if s.chunked {
                    let need = 5 + s.trailers.count
                    if u.inBuffer.freeSpace >= need {
                        _ = u.inBuffer.append(Worker.zeroCRLF)
                        _ = s.trailers.withUnsafeBytes { u.inBuffer.append($0) }
                        _ = u.inBuffer.append(Worker.crlf)
                        s.endWritten = true
                    }
                } else {
                    s.endWritten = true
                }
            }
        }
        if s.unacked > 0, s.id != 0, !s.closed, let sess = s.session, let session = sess.session {
            _ = nghttp2_session_consume(session, s.id, s.unacked)
            s.unacked = 0
            queueUpstreamSession(sess)
        }
        s.bodyIn.releaseIfEmpty()
        if s.closed && !s.ended && u.failedErrno == 0 {
            // Reset (or refused) before the whole response: the exchange sees a cut connection.
            u.readEOF = true
            u.failedErrno = s.closeError == NGHTTP2_REFUSED_STREAM.rawValue ? ECONNREFUSED : ECONNRESET
        }
        if let c = u.client { drive(c) }
        // The exchange's input was full: the rest follows when it has taken some, either in this
        // batch (room already) or when the exchange next runs (`upstreamStreamDriven`).
        upstreamStreamDriven(s)
    }

    /// After the stream's exchange ran (`drive`): when it made room in its input for response
    /// bytes (or the end) still held by the stream, the stream is fed at the end of the batch.
    /// Without this a response larger than the buffers, to a client slower than the upstream,
    /// stopped for good once the exchange's input filled: nothing fed the stream again, and its
    /// window, given back only as bytes move on, stayed shut.
    func upstreamStreamDriven(_ s: H2UpstreamStream) {
        guard let sess = s.session, s.canFeed(freeSpace: s.upstream.inBuffer.freeSpace) else { return }
        sess.markReady(s)
        queueUpstreamSession(sess)
    }

    static let zeroCRLF = Array("0\r\n".utf8)

    /// The exchange let go of its stream: reset it if it is still open, free the slot.
    func closeUpstreamStream(_ s: H2UpstreamStream) {
        guard let sess = s.session else { return }
        if let session = sess.session, s.id != 0 {
            if !s.closed {
                _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), s.id, NGHTTP2_CANCEL.rawValue)
            }
            _ = nghttp2_session_set_stream_user_data(session, s.id, nil)
        }
        sess.streams -= 1
        sess.lastActive = now
        h2up.give(s)
        queueUpstreamSession(sess)
    }

    /// A timer of an upstream stream (negative fd): its upstream connection object.
    func upstreamStream(fd: Int32, generation: UInt32) -> UpstreamConnection? {
        h2up.lookup(fd: fd, generation: generation)?.upstream
    }
}
