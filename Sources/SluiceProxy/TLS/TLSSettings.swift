@preconcurrency import Glibc
internal import COpenSSL

/// The oldest TLS version a listener accepts (TLS 1.0 and 1.1 are never accepted).
public enum TLSMinVersion: String, Sendable {
    case tls12 = "1.2"
    case tls13 = "1.3"

    var protocolVersion: Int32 { self == .tls12 ? TLS1_2_VERSION : TLS1_3_VERSION }
}

/// A listener's `tls:` block, files read and checked. Immutable; shared by every worker, which
/// builds its own `SSL_CTX` from it (see `ServerTLSContext`).
public final class ListenerTLS: @unchecked Sendable {
    /// Certificates in config order; the first is the default for an unknown or absent SNI name.
    public let certificates: [TLSCertificate]
    /// `min_version`.
    public let minVersion: TLSMinVersion
    /// `alpn`, in preference order.
    public let alpn: [String]
    /// `session_tickets`.
    public let sessionTickets: Bool
    /// `session_cache`: the worker's server-side session cache.
    public let sessionCache: Bool

    /// Creates the settings (`certificates` not empty).
    public init(certificates: [TLSCertificate], minVersion: TLSMinVersion = .tls12, alpn: [String] = ["http/1.1"],
                sessionTickets: Bool = true, sessionCache: Bool = true) {
        precondition(!certificates.isEmpty)
        self.certificates = certificates
        self.minVersion = minVersion
        self.alpn = alpn
        self.sessionTickets = sessionTickets
        self.sessionCache = sessionCache
    }

    /// The certificate for an SNI host name: the first whose SAN matches exactly, else the first
    /// matching by wildcard, else the default (the first certificate).
    func certificate(for host: String?) -> TLSCertificate {
        guard let host, !host.isEmpty else { return certificates[0] }
        let h = host.lowercased()
        if let exact = certificates.first(where: { $0.names.contains(h) }) { return exact }
        return certificates.first(where: { $0.matches(h) }) ?? certificates[0]
    }
}

/// An upstream group's `tls:` block, files read and checked. Immutable; each worker builds its
/// own `SSL_CTX` from it (see `ClientTLSContext`).
public final class UpstreamTLS: @unchecked Sendable {
    /// `ca` (nil: the system's default trust store).
    public let caPath: String?
    /// The trust store (`X509_STORE*`, reference-counted; read-only once built).
    let store: OpaquePointer?
    /// `server_name`: the SNI name and the name verified (nil: the endpoint's host name).
    public let serverName: String?
    /// `cert`/`key`: the client certificate for mutual TLS.
    public let clientCertificate: TLSCertificate?
    /// `verify` (true unless written out as false).
    public let verify: Bool
    /// The group speaks HTTP/2 over TLS (`protocol: h2`): ALPN offers `h2` only. Set by the
    /// config compiler before the settings are shared.
    public var alpnH2 = false

    /// Reads the CA file (when given) and builds the trust store.
    public init(caPath: String?, serverName: String?, clientCertificate: TLSCertificate?, verify: Bool) throws(TLSFileError) {
        self.caPath = caPath
        self.serverName = serverName
        self.clientCertificate = clientCertificate
        self.verify = verify
        guard let store = X509_STORE_new() else { throw TLSFileError(field: .ca, message: "out of memory") }
        if let caPath {
            if let why = TLSCertificate.unreadable(caPath) {
                X509_STORE_free(store)
                throw TLSFileError(field: .ca, message: why)
            }
            if X509_STORE_load_file(store, caPath) != 1 {
                ERR_clear_error()
                X509_STORE_free(store)
                throw TLSFileError(field: .ca, message: "\(caPath): no PEM CA certificate in the file")
            }
        } else {
            _ = X509_STORE_set_default_paths(store)
            ERR_clear_error()
        }
        self.store = store
    }

    deinit {
        if let store { X509_STORE_free(store) }
    }
}

/// Every TLS setting of one config version: per listener (by index) and per upstream group (by
/// name). Published to the workers with each reload; new handshakes use it, open connections
/// keep what they started with.
public struct TLSSet: Sendable {
    /// Per listener index (nil: plain TCP).
    public var listeners: [ListenerTLS?]
    /// Per upstream group name.
    public var upstreams: [String: UpstreamTLS]

    /// Creates a set.
    public init(listeners: [ListenerTLS?] = [], upstreams: [String: UpstreamTLS] = [:]) {
        self.listeners = listeners
        self.upstreams = upstreams
    }

    /// Whether any listener or upstream uses TLS.
    public var isEmpty: Bool { listeners.allSatisfy { $0 == nil } && upstreams.isEmpty }
}
