@preconcurrency import Glibc
internal import COpenSSL

/// One TLS session over a non-blocking socket (`SSL_set_fd`): `read` and `write` stand in for
/// `read(2)`/`send(2)` and give the same `IOResult`s, so the driver moves bytes the same way on
/// TLS and plain connections. The handshake runs inside the first reads and writes.
///
/// OpenSSL may need the other direction to make progress: a read that needs to write (handshake
/// messages, key updates) sets `readWantsWrite`, a write that needs to read sets
/// `writeWantsRead`; the loop then treats the socket's next writable (readable) event as a
/// readable (writable) one for this connection (`Worker.dispatch`).
///
/// Writes use `SSL_MODE_ENABLE_PARTIAL_WRITE` and `SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER`: a write
/// that would block is retried later from the connection's output `IOBuffer`, whose bytes may
/// have moved but start with the same content (the driver never writes TLS data straight from
/// another buffer: see `Worker.sendOrQueue`).
///
/// Owned by one worker thread, like the connection it belongs to.
final class TLSConnection {
    let ssl: OpaquePointer
    /// The listener's settings this connection's handshake uses (server side; nil for upstreams).
    let server: ListenerTLS?
    /// Where a new client session is kept for the next connection to the same endpoint.
    var sessionSlot: TLSSessionSlot?
    var readWantsWrite = false
    var writeWantsRead = false
    /// The handshake completed.
    var handshakeDone = false
    /// The handshake's outcome was counted in the metrics.
    var counted = false
    /// The first TLS failure (protocol error or failed verification), as text.
    var failure = ""

    init(ssl: OpaquePointer, server: ListenerTLS?) {
        self.ssl = ssl
        self.server = server
        _ = SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        SSL_free(ssl)
    }

    /// ALPN chose `h2` (server side).
    var negotiatedH2: Bool {
        var p: UnsafePointer<UInt8>?
        var n: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &p, &n)
        guard n == 2, let p else { return false }
        return p[0] == UInt8(ascii: "h") && p[1] == UInt8(ascii: "2")
    }

    /// The connection owning `ssl` (for OpenSSL callbacks).
    static func owner(_ ssl: OpaquePointer?) -> TLSConnection? {
        guard let ssl, let p = SSL_get_ex_data(ssl, 0) else { return nil }
        return Unmanaged<TLSConnection>.fromOpaque(p).takeUnretainedValue()
    }

    @inline(__always)
    private func checkHandshake() {
        if !handshakeDone && SSL_is_init_finished(ssl) == 1 { handshakeDone = true }
    }

    /// Reads decrypted bytes (driving the handshake first when it is not done).
    func read(_ ptr: UnsafeMutableRawPointer, _ count: Int) -> IOResult {
        readWantsWrite = false
        let n = SSL_read(ssl, ptr, Int32(clamping: count))
        if n > 0 {
            checkHandshake()
            return .done(Int(n))
        }
        return failed(n, reading: true)
    }

    /// Writes bytes to be encrypted (driving the handshake first when it is not done). A partial
    /// write is `.done(k)` with k < count.
    func write(_ ptr: UnsafeRawPointer, _ count: Int) -> IOResult {
        writeWantsRead = false
        let n = SSL_write(ssl, ptr, Int32(clamping: count))
        if n > 0 {
            checkHandshake()
            return .done(Int(n))
        }
        return failed(n, reading: false)
    }

    private func failed(_ n: Int32, reading: Bool) -> IOResult {
        let e = errno
        let code = SSL_get_error(ssl, n)
        if !handshakeDone && SSL_get_state(ssl) == TLS_ST_SW_SESSION_TICKET {
            // TLS 1.3: the client's Finished was verified and only our session tickets were still
            // being sent when the peer left (or the socket filled): the handshake did complete.
            handshakeDone = true
        }
        switch code {
        case SSL_ERROR_WANT_READ:
            checkHandshake()
            if !reading { writeWantsRead = true }
            return .wouldBlock
        case SSL_ERROR_WANT_WRITE:
            if reading { readWantsWrite = true }
            return .wouldBlock
        case SSL_ERROR_ZERO_RETURN:
            ERR_clear_error()
            return .eof
        case SSL_ERROR_SYSCALL:
            ERR_clear_error()
            if e == 0 || e == EAGAIN { return reading ? .eof : .failed(EPIPE) }
            return .failed(e)
        default:
            noteFailure()
            return .failed(EPROTO)
        }
    }

    /// Records why the session failed (the verification result when that was it).
    private func noteFailure() {
        var text = [CChar](repeating: 0, count: 256)
        sluice_err_reason(&text, text.count)
        var why = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let verify = SSL_get_verify_result(ssl)
        if verify != X509_V_OK, let s = X509_verify_cert_error_string(verify) {
            why = String(cString: s)
        }
        if failure.isEmpty { failure = why.isEmpty ? "TLS protocol error" : why }
    }

    /// Sends close_notify without waiting for the peer's (the socket closes right after).
    func shutdownQuietly() {
        if handshakeDone {
            _ = SSL_shutdown(ssl)
        }
        ERR_clear_error()
    }

    /// Whether the peer began a handshake (a connection closed before its ClientHello is not one).
    var handshakeStarted: Bool { handshakeDone || SSL_get_state(ssl) != TLS_ST_BEFORE }

    /// Whether this session was resumed (ticket or cache).
    var resumed: Bool { sluice_SSL_session_reused(ssl) == 1 }

    /// Bytes OpenSSL holds that have not been read yet: decrypted, or read ahead from the socket
    /// and not yet processed.
    var hasPendingInput: Bool { SSL_has_pending(ssl) == 1 }

    /// The version as OpenSSL's static C string (valid for the process's life: no copy per log line).
    var logVersion: UnsafeRawBufferPointer {
        let p = SSL_get_version(ssl)!
        return UnsafeRawBufferPointer(start: p, count: strlen(p))
    }

    /// The cipher suite name as OpenSSL's static C string (empty before the handshake).
    var logCipher: UnsafeRawBufferPointer {
        guard let c = SSL_get_current_cipher(ssl), let n = SSL_CIPHER_get_name(c) else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        return UnsafeRawBufferPointer(start: n, count: strlen(n))
    }

    /// "TLSv1.3".
    var versionText: String { String(cString: SSL_get_version(ssl)) }

    /// The negotiated cipher suite, e.g. "TLS_AES_256_GCM_SHA384".
    var cipherText: String {
        guard let c = SSL_get_current_cipher(ssl), let n = SSL_CIPHER_get_name(c) else { return "" }
        return String(cString: n)
    }
}

/// The latest session an upstream endpoint gave this worker, offered by the next connection to
/// it (resumption across pooled connections). Owned by one worker thread.
final class TLSSessionSlot {
    var session: OpaquePointer?

    /// Takes ownership of `s` (an `SSL_SESSION*` reference).
    func store(_ s: OpaquePointer) {
        if let old = session { SSL_SESSION_free(old) }
        session = s
    }

    deinit {
        if let s = session { SSL_SESSION_free(s) }
    }
}
