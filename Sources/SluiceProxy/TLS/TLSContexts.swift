@preconcurrency import Glibc
internal import COpenSSL

/// Options every Sluice TLS context has: TLS 1.0/1.1 off, no compression, no renegotiation, and
/// a peer closing without close_notify read as EOF (as nginx does).
private let commonOptions: UInt64 = sluice_SSL_OP_NO_TLSv1 | sluice_SSL_OP_NO_TLSv1_1 | sluice_SSL_OP_NO_COMPRESSION
    | sluice_SSL_OP_NO_RENEGOTIATION | sluice_SSL_OP_IGNORE_UNEXPECTED_EOF

/// TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3's own suites are OpenSSL's defaults).
private let tls12Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/// One worker's server `SSL_CTX` for one TLS listener: its session cache is this worker's;
/// ticket keys are the process's (`TLSTicketKeys`). It lives as long as the worker; a reload
/// replaces `config` (new certificates for new handshakes) and re-applies the settings.
final class ServerTLSContext {
    let ctx: OpaquePointer
    private(set) var config: ListenerTLS

    init?(config: ListenerTLS, listenerIndex: Int) {
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { return nil }
        self.ctx = ctx
        self.config = config
        _ = sluice_SSL_CTX_set_mode(ctx, sluice_SSL_MODE_nonblocking_writes())
        // Read ahead: one read(2) takes a record's header and body (and what follows), instead of
        // a 5-byte header read then the body. The loop reads until OpenSSL wants input, so bytes it
        // holds never wait for an edge that will not come.
        sluice_SSL_CTX_read_ahead_on(ctx)
        _ = SSL_CTX_set_cipher_list(ctx, tls12Ciphers)
        _ = sluice_SSL_CTX_sess_set_cache_size(ctx, 20_000)
        _ = SSL_CTX_set_timeout(ctx, 7200)
        let idContext = Array("sluice-\(listenerIndex)".utf8)
        _ = SSL_CTX_set_session_id_context(ctx, idContext, UInt32(idContext.count))
        sluice_SSL_CTX_set_servername_callback(ctx, { ssl, _, _ in
            guard let conn = TLSConnection.owner(ssl), let settings = conn.server else { return sluice_SSL_TLSEXT_ERR_OK }
            var host: String?
            if let name = SSL_get_servername(ssl, Int32(TLSEXT_NAMETYPE_host_name)) { host = String(cString: name) }
            let cert = settings.certificate(for: host)
            if cert !== settings.certificates[0] {
                _ = SSL_use_cert_and_key(ssl, cert.cert, cert.key, cert.chain, 1)
            }
            return sluice_SSL_TLSEXT_ERR_OK
        }, nil)
        SSL_CTX_set_alpn_select_cb(ctx, { ssl, out, outLength, input, inputLength, _ in
            // The first of our protocols the client offers; none in common is a fatal
            // no_application_protocol alert (RFC 7301 3.2).
            guard let conn = TLSConnection.owner(ssl), let settings = conn.server, let input, let out, let outLength else {
                return sluice_SSL_TLSEXT_ERR_NOACK
            }
            for proto in settings.alpn {
                let p = Array(proto.utf8)
                var i = 0
                while i < Int(inputLength) {
                    let len = Int(input[i])
                    if i + 1 + len > Int(inputLength) { break }
                    if len == p.count && (0..<len).allSatisfy({ input[i + 1 + $0] == p[$0] }) {
                        out.pointee = input + i + 1
                        outLength.pointee = UInt8(len)
                        return sluice_SSL_TLSEXT_ERR_OK
                    }
                    i += 1 + len
                }
            }
            return sluice_SSL_TLSEXT_ERR_ALERT_FATAL
        }, nil)
        _ = SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, { ssl, name, iv, cipher, mac, enc in
            guard let name, let iv, let cipher, let mac else { return -1 }
            let r = TLSTicketKeys.shared.callback(name: name, iv: iv, cipher: cipher, mac: mac, encrypt: enc == 1)
            // TLS 1.3 clients use a ticket once (RFC 8446 C.4; OpenSSL drops it after use), and
            // OpenSSL's server sends a new ticket after a resumed handshake only when asked to
            // renew: without this every other connection of such a client is a full handshake.
            if enc != 1 && r == 1 && SSL_version(ssl) == TLS1_3_VERSION { return 2 }
            return r
        })
        apply(config)
    }

    deinit {
        SSL_CTX_free(ctx)
    }

    /// Uses `config` for new handshakes from now on.
    func apply(_ config: ListenerTLS) {
        self.config = config
        var options = commonOptions | sluice_SSL_OP_CIPHER_SERVER_PREFERENCE
        _ = SSL_CTX_clear_options(ctx, sluice_SSL_OP_NO_TICKET)
        if !config.sessionTickets { options |= sluice_SSL_OP_NO_TICKET }
        _ = SSL_CTX_set_options(ctx, options)
        _ = sluice_SSL_CTX_set_session_cache_mode(ctx, config.sessionCache ? sluice_SSL_SESS_CACHE_SERVER() : sluice_SSL_SESS_CACHE_OFF())
        _ = sluice_SSL_CTX_set_min_proto_version(ctx, config.minVersion.protocolVersion)
        let cert = config.certificates[0]
        _ = SSL_CTX_use_cert_and_key(ctx, cert.cert, cert.key, cert.chain, 1)
    }

    /// A server session on accepted socket `fd`, presenting the default certificate until SNI
    /// picks another.
    func connection(fd: Int32) -> TLSConnection? {
        guard let ssl = SSL_new(ctx) else {
            ERR_clear_error()
            return nil
        }
        _ = SSL_set_fd(ssl, fd)
        SSL_set_accept_state(ssl)
        // The default certificate comes with the context (`apply`): SSL_new shares it by
        // reference, where setting it per connection cost about 2.5 µs (OpenSSL compares the key
        // with the certificate each time).
        return TLSConnection(ssl: ssl, server: config)
    }
}

/// One worker's client `SSL_CTX` for one upstream group's `tls:` settings.
final class ClientTLSContext {
    let ctx: OpaquePointer
    let config: UpstreamTLS

    init?(config: UpstreamTLS) {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { return nil }
        self.ctx = ctx
        self.config = config
        _ = sluice_SSL_CTX_set_mode(ctx, sluice_SSL_MODE_nonblocking_writes())
        // Read ahead: one read(2) takes a record's header and body (and what follows), instead of
        // a 5-byte header read then the body. The loop reads until OpenSSL wants input, so bytes it
        // holds never wait for an edge that will not come.
        sluice_SSL_CTX_read_ahead_on(ctx)
        _ = SSL_CTX_set_options(ctx, commonOptions)
        _ = sluice_SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)
        if let store = config.store { SSL_CTX_set1_cert_store(ctx, store) }
        SSL_CTX_set_verify(ctx, config.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nil)
        if let cert = config.clientCertificate {
            _ = SSL_CTX_use_cert_and_key(ctx, cert.cert, cert.key, cert.chain, 1)
        }
        if config.alpnH2 {
            let protos: [UInt8] = [2, UInt8(ascii: "h"), UInt8(ascii: "2")]
            _ = SSL_CTX_set_alpn_protos(ctx, protos, UInt32(protos.count))
        }
        // Sessions are not cached inside OpenSSL: the new-session callback hands each to the
        // endpoint's slot, and the next connection to that endpoint offers it.
        _ = sluice_SSL_CTX_set_session_cache_mode(ctx, sluice_SSL_SESS_CACHE_CLIENT())
        SSL_CTX_sess_set_new_cb(ctx, { ssl, session in
            guard let conn = TLSConnection.owner(ssl), let slot = conn.sessionSlot, let session else { return 0 }
            slot.store(session)
            return 1
        })
        ERR_clear_error()
    }

    deinit {
        SSL_CTX_free(ctx)
    }

    /// A client session on socket `fd` for an endpoint whose configured host is `host` (used
    /// for SNI and verification unless `server_name` is set), offering the slot's session.
    func connection(fd: Int32, host: String, slot: TLSSessionSlot) -> TLSConnection? {
        guard let ssl = SSL_new(ctx) else {
            ERR_clear_error()
            return nil
        }
        _ = SSL_set_fd(ssl, fd)
        SSL_set_connect_state(ssl)
        let name = config.serverName ?? host
        var probe = in6_addr()
        let isIP = inet_pton(AF_INET, name, &probe) == 1 || inet_pton(AF_INET6, name, &probe) == 1
        if isIP {
            if config.verify { _ = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) }
        } else {
            _ = sluice_SSL_set_tlsext_host_name(ssl, name)
            if config.verify { _ = SSL_set1_host(ssl, name) }
        }
        if let s = slot.session { _ = SSL_set_session(ssl, s) }
        ERR_clear_error()
        let conn = TLSConnection(ssl: ssl, server: nil)
        conn.sessionSlot = slot
        return conn
    }
}
