import CNghttp2
import SluiceCore

/// libnghttp2's callbacks for Sluice's client sessions to HTTP/2 upstreams. As on the server
/// side, they copy bytes and record; the worker acts once nghttp2 returned
/// (`Worker+HTTP2Upstream.swift`).
enum H2UpstreamCallbacks {
    /// The callback set every upstream session uses. (Response fields and trailers are bounded
    /// by the HTTP/1 head and trailer limits in `Worker.upstreamHeader`.)
    static func makeCallbacks() -> OpaquePointer? {
        var cbs: OpaquePointer?
        guard nghttp2_session_callbacks_new(&cbs) == 0, let cbs else { return nil }
        nghttp2_session_callbacks_set_send_callback(cbs, { _, data, length, _, user in
            let s = H2UpstreamSession.from(user)
            let n = min(length, s.outBuffer.freeSpace)
            guard n > 0, let data else { return H2Callbacks.wouldBlock }
            _ = s.outBuffer.append(UnsafeRawBufferPointer(start: data, count: n))
            return n
        })
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, { _, frame, user in
            guard let frame, let s = H2UpstreamSession.from(user).stream(frame.pointee.hd.stream_id) else { return 0 }
            if s.headWritten {
                s.trailers.removeAll(keepingCapacity: true)
            } else {
                s.fields.removeAll(keepingCapacity: true)
                s.status = 0
                s.hasContentLength = false
            }
            return 0
        })
        nghttp2_session_callbacks_set_on_header_callback(cbs, { _, frame, name, nameLength, value, valueLength, _, user in
            guard let frame, let name else { return 0 }
            let session = H2UpstreamSession.from(user)
            guard let s = session.stream(frame.pointee.hd.stream_id) else { return 0 }
            let n = UnsafeRawBufferPointer(start: name, count: nameLength)
            let v = UnsafeRawBufferPointer(start: value ?? name, count: value == nil ? 0 : valueLength)
            return session.worker.upstreamHeader(s, name: n, value: v) ? 0 : H2Callbacks.temporalFailure
        })
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, { _, frame, user in
            guard let frame else { return 0 }
            let session = H2UpstreamSession.from(user)
            let hd = frame.pointee.hd
            if hd.type == UInt8(NGHTTP2_GOAWAY.rawValue) { session.closing = true }
            guard hd.type == H2Callbacks.headersType || hd.type == H2Callbacks.dataType,
                  let s = session.stream(hd.stream_id) else { return 0 }
            if hd.type == H2Callbacks.headersType && !s.headWritten {
                guard session.worker.upstreamHeadReceived(s, endStream: hd.flags & H2Callbacks.endStream != 0) else {
                    return H2Callbacks.temporalFailure
                }
            }
            if hd.flags & H2Callbacks.endStream != 0 { s.ended = true }
            session.markReady(s)
            return 0
        })
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, { session, _, id, data, length, user in
            let owner = H2UpstreamSession.from(user)
            guard let data, let s = owner.stream(id), s.upstream.client != nil else {
                _ = nghttp2_session_consume(session, id, length)
                return 0
            }
            guard s.bodyIn.freeSpace >= length else { return H2Callbacks.temporalFailure }
            _ = s.bodyIn.append(UnsafeRawBufferPointer(start: data, count: length))
            owner.markReady(s)
            return 0
        })
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, { _, id, error, user in
            let owner = H2UpstreamSession.from(user)
            guard let s = owner.stream(id) else { return 0 }
            s.closed = true
            s.closeError = error
            owner.markReady(s)
            return 0
        })
        return cbs
    }

    /// The request body's data callback: bytes from `requestOut`.
    static let readRequestBody: nghttp2_data_source_read_callback = { _, _, buf, length, flags, source, user in
        guard let source, let ptr = source.pointee.ptr, let buf, let flags else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
        let s = Unmanaged<H2UpstreamStream>.fromOpaque(ptr).takeUnretainedValue()
        let n = min(length, s.requestOut.count)
        if n > 0 {
            UnsafeMutableRawPointer(buf).copyMemory(from: s.requestOut.readable.baseAddress!, byteCount: n)
            s.requestOut.consume(n)
            H2UpstreamSession.from(user).drained.append(s)
        }
        if s.requestOut.isEmpty && s.requestEnded {
            flags.pointee |= UInt32(NGHTTP2_DATA_FLAG_EOF.rawValue)
            return n
        }
        if n == 0 {
            s.deferred = true
            return H2Callbacks.deferred
        }
        return n
    }
}
