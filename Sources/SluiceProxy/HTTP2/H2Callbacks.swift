import CNghttp2
import SluiceCore

/// libnghttp2's callbacks for Sluice's server sessions. They run inside
/// `nghttp2_session_mem_recv` and `nghttp2_session_send`: each copies bytes or records what
/// happened on the `H2Connection` (its user data) and the `H2Stream` attached to a stream id;
/// the worker acts on the records once nghttp2 has returned (`Worker+HTTP2.swift`).
enum H2Callbacks {
    static let wouldBlock = Int(NGHTTP2_ERR_WOULDBLOCK.rawValue)
    static let deferred = Int(NGHTTP2_ERR_DEFERRED.rawValue)
    static let callbackFailure = Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)
    static let temporalFailure = Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
    static let headersType = UInt8(NGHTTP2_HEADERS.rawValue)
    static let dataType = UInt8(NGHTTP2_DATA.rawValue)
    static let endStream = UInt8(NGHTTP2_FLAG_END_STREAM.rawValue)
    static let ackFlag = UInt8(NGHTTP2_FLAG_ACK.rawValue)

    /// The option set every server session uses.
    static func makeOption(_ limits: HTTP2Limits) -> OpaquePointer? {
        var o: OpaquePointer?
        guard nghttp2_option_new(&o) == 0, let o else { return nil }
        // Windows are given back as the exchange takes request bytes, not as they arrive.
        nghttp2_option_set_no_auto_window_update(o, 1)
        nghttp2_option_set_max_continuations(o, Int(limits.maxContinuations))
        // No state kept for closed streams (only priority uses it).
        nghttp2_option_set_no_closed_streams(o, 1)
        nghttp2_option_set_max_outbound_ack(o, 1000)
        return o
    }

    /// The callback set every server session uses.
    static func makeCallbacks() -> OpaquePointer? {
        var cbs: OpaquePointer?
        guard nghttp2_session_callbacks_new(&cbs) == 0, let cbs else { return nil }
        nghttp2_session_callbacks_set_send_callback(cbs, { _, data, length, _, user in
            // Frames go into the connection's output buffer; the worker flushes it.
            let c = H2Connection.from(user).client
            let n = min(length, c.outBuffer.freeSpace)
            guard n > 0, let data else { return H2Callbacks.wouldBlock }
            _ = c.outBuffer.append(UnsafeRawBufferPointer(start: data, count: n))
            return n
        })
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, { session, frame, user in
            guard let frame, frame.pointee.hd.type == H2Callbacks.headersType,
                  frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST else { return 0 }
            let h = H2Connection.from(user)
            return h.worker.h2StreamOpened(h, id: frame.pointee.hd.stream_id) ? 0 : H2Callbacks.temporalFailure
        })
        nghttp2_session_callbacks_set_on_header_callback(cbs, { _, frame, name, nameLength, value, valueLength, _, user in
            guard let frame, let name else { return 0 }
            let h = H2Connection.from(user)
            guard let s = h.stream(frame.pointee.hd.stream_id) else { return 0 }
            let limit = h.worker.settings.http2.maxHeaderListBytes
            let n = UnsafeRawBufferPointer(start: name, count: nameLength)
            let v = UnsafeRawBufferPointer(start: value ?? name, count: value == nil ? 0 : valueLength)
            let total: Int
            if s.headWritten {
                // Request trailers are not forwarded (documented); they still count.
                s.trailerBytes += nameLength + valueLength + 32
                total = s.trailerBytes
            } else {
                total = s.head.add(name: n, value: v, limit: limit)
            }
            if total > 4 * limit {
                h.failure = .headerBomb
                return H2Callbacks.callbackFailure
            }
            return 0
        })
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, { _, frame, user in
            guard let frame else { return 0 }
            let h = H2Connection.from(user)
            return h.worker.h2FrameReceived(h, frame) ? 0 : H2Callbacks.callbackFailure
        })
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, { session, _, id, data, length, user in
            let h = H2Connection.from(user)
            guard let data, let s = h.stream(id), !s.finished else {
                // Nobody takes these bytes: their window is given back at once.
                _ = nghttp2_session_consume(session, id, length)
                return 0
            }
            guard s.bodyIn.freeSpace >= length else {
                // More than the window allows cannot arrive (nghttp2 checks it); refuse anyway.
                return H2Callbacks.temporalFailure
            }
            _ = s.bodyIn.append(UnsafeRawBufferPointer(start: data, count: length))
            h.markReady(s)
            return 0
        })
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, { _, id, error, user in
            let h = H2Connection.from(user)
            guard let s = h.stream(id) else { return 0 }
            // Not a callback failure when the resets are too many: this also runs inside
            // `nghttp2_session_send`, after which the session could not send its GOAWAY; the
            // worker ends the connection on `h.failure`.
            h.worker.h2StreamClosed(h, s, error: error)
            return 0
        })
        return cbs
    }

    /// The data provider's read callback: the stream's response body, from `dataOut`.
    static let readBody: nghttp2_data_source_read_callback = { session, _, buf, length, flags, source, user in
        guard let source, let ptr = source.pointee.ptr, let buf, let flags else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
        let s = Unmanaged<H2Stream>.fromOpaque(ptr).takeUnretainedValue()
        let n = min(length, s.dataOut.count)
        if n > 0 || s.responseEnded { H2Connection.from(user).dataFramesSent += 1 }
        if n > 0 {
            let r = s.dataOut.readable
            UnsafeMutableRawPointer(buf).copyMemory(from: r.baseAddress!, byteCount: n)
            s.dataOut.consume(n)
            H2Connection.from(user).drained.append(s)
        }
        guard s.dataOut.isEmpty else { return n }
        if s.responseEnded {
            flags.pointee |= UInt32(NGHTTP2_DATA_FLAG_EOF.rawValue)
            if !s.trailers.isEmpty, let session, H2Connection.from(user).worker.h2SubmitTrailers(session, s) {
                flags.pointee |= UInt32(NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue)
            }
            return n
        }
        if s.cut {
            // The response was cut upstream: the stream is reset, not ended.
            return n > 0 ? n : Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        if n == 0 {
            s.deferred = true
            return H2Callbacks.deferred
        }
        return n
    }
}
