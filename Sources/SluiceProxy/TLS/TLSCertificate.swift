@preconcurrency import Glibc
internal import COpenSSL

/// Why a certificate or key file could not be used (a config error at the key naming the file).
public struct TLSFileError: Error, Sendable {
    /// Which key of the config the problem belongs to.
    public enum Field: Sendable { case cert, key, ca }
    /// The key at fault.
    public let field: Field
    /// What is wrong, naming the file.
    public let message: String
}

/// A certificate (with its chain) and its private key, read from PEM files and checked: the key
/// matches the certificate, and the certificate is inside its validity period.
///
/// Immutable after `load`; the OpenSSL objects are reference-counted and only read afterwards
/// (OpenSSL allows that from any thread), hence `@unchecked Sendable`.
public final class TLSCertificate: @unchecked Sendable {
    /// The leaf certificate (`X509*`).
    let cert: OpaquePointer
    /// Its private key (`EVP_PKEY*`).
    let key: OpaquePointer
    /// The intermediates that followed the leaf in the cert file (`STACK_OF(X509)*`, may be empty).
    let chain: OpaquePointer
    /// The subjectAltName DNS names, lowercased (`*.example.com` kept as written).
    public let names: [String]
    /// The subject, one line (`/CN=...`).
    public let subject: String
    /// notAfter, seconds since the epoch.
    public let notAfter: Int64
    /// The files it was read from.
    public let certPath: String
    /// The key file.
    public let keyPath: String

    private init(cert: OpaquePointer, key: OpaquePointer, chain: OpaquePointer, names: [String], subject: String,
                 notAfter: Int64, certPath: String, keyPath: String) {
        self.cert = cert
        self.key = key
        self.chain = chain
        self.names = names
        self.subject = subject
        self.notAfter = notAfter
        self.certPath = certPath
        self.keyPath = keyPath
    }

    deinit {
        X509_free(cert)
        EVP_PKEY_free(key)
        sluice_x509_stack_free(chain)
    }

    /// The name shown in metrics and logs: the first SAN name, or the subject.
    public var displayName: String { names.first ?? subject }

    /// Reads `certPath` (leaf then intermediates, PEM) and `keyPath` (PEM private key) and checks
    /// them against each other and against `now` (seconds since the epoch).
    public static func load(certPath: String, keyPath: String, now: Int64) throws(TLSFileError) -> TLSCertificate {
        let certs = try readCertificates(certPath, field: .cert)
        let leaf = certs[0]
        let chain = sluice_x509_stack_new()!
        for c in certs.dropFirst() { _ = sluice_x509_stack_push(chain, c) }
        guard let key = try readKey(keyPath) else {
            X509_free(leaf)
            sluice_x509_stack_free(chain)
            throw TLSFileError(field: .key, message: "\(keyPath): no PEM private key in the file")
        }
        func fail(_ field: TLSFileError.Field, _ message: String) -> TLSFileError {
            X509_free(leaf)
            EVP_PKEY_free(key)
            sluice_x509_stack_free(chain)
            return TLSFileError(field: field, message: message)
        }
        if X509_check_private_key(leaf, key) != 1 {
            ERR_clear_error()
            throw fail(.key, "the key in \(keyPath) does not match the certificate in \(certPath)")
        }
        let notAfter = Int64(sluice_x509_not_after(leaf))
        let notBefore = Int64(sluice_x509_not_before(leaf))
        var subjectBuf = [CChar](repeating: 0, count: 512)
        sluice_x509_subject(leaf, &subjectBuf, Int32(subjectBuf.count))
        let subject = String(decoding: subjectBuf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if notAfter >= 0 && notAfter < now {
            throw fail(.cert, "the certificate in \(certPath) (\(subject)) expired at \(Self.utcText(notAfter))")
        }
        if notBefore > now {
            throw fail(.cert, "the certificate in \(certPath) (\(subject)) is not valid before \(Self.utcText(notBefore))")
        }
        return TLSCertificate(cert: leaf, key: key, chain: chain, names: dnsNames(leaf), subject: subject,
                              notAfter: notAfter, certPath: certPath, keyPath: keyPath)
    }

    /// Whether this certificate's SAN covers `host` (lowercased): exact, or a `*.` wildcard
    /// standing for exactly one leftmost label.
    func matches(_ host: String) -> Bool {
        for n in names {
            if n == host { return true }
            if n.hasPrefix("*.") {
                let suffix = n.dropFirst(1)  // ".example.com"
                if host.hasSuffix(suffix) {
                    let label = host.dropLast(suffix.count)
                    if !label.isEmpty && !label.contains(".") { return true }
                }
            }
        }
        return false
    }

    /// "2026-12-03 10:00:00 UTC".
    static func utcText(_ t: Int64) -> String {
        var time = time_t(t)
        var tm = Glibc.tm()
        gmtime_r(&time, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday)) \(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) UTC"
    }

    /// Says why `path` cannot be opened for reading, or nil when it can.
    static func unreadable(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            if e == ENOENT { return "\(path): no such file" }
            return "\(path): cannot be read (\(String(cString: strerror(e))))"
        }
        close(fd)
        return nil
    }

    /// Every PEM certificate in `path`, in order (at least one).
    static func readCertificates(_ path: String, field: TLSFileError.Field) throws(TLSFileError) -> [OpaquePointer] {
        if let why = unreadable(path) { throw TLSFileError(field: field, message: why) }
        guard let bio = BIO_new_file(path, "r") else {
            ERR_clear_error()
            throw TLSFileError(field: field, message: "\(path): cannot be opened")
        }
        defer { BIO_free(bio) }
        var out: [OpaquePointer] = []
        while let x = PEM_read_bio_X509(bio, nil, nil, nil) { out.append(x) }
        ERR_clear_error()  // the read past the last certificate leaves "no start line"
        if out.isEmpty {
            throw TLSFileError(field: field, message: "\(path): no PEM certificate in the file")
        }
        return out
    }

    /// The private key in `path` (nil when the file holds none).
    static func readKey(_ path: String) throws(TLSFileError) -> OpaquePointer? {
        if let why = unreadable(path) { throw TLSFileError(field: .key, message: why) }
        guard let bio = BIO_new_file(path, "r") else {
            ERR_clear_error()
            throw TLSFileError(field: .key, message: "\(path): cannot be opened")
        }
        defer { BIO_free(bio) }
        let key = PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        if key == nil {
            var text = [CChar](repeating: 0, count: 256)
            sluice_err_reason(&text, text.count)
            let reason = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw TLSFileError(field: .key, message: "\(path): not a readable PEM private key" + (reason.isEmpty ? "" : " (\(reason))"))
        }
        return key
    }

    /// The certificate's SAN DNS names, lowercased.
    static func dnsNames(_ x: OpaquePointer) -> [String] {
        var buf = [CChar](repeating: 0, count: 16384)
        let used = Int(sluice_x509_dns_names(x, &buf, Int32(buf.count)))
        guard used > 0 else { return [] }
        var out: [String] = []
        var start = 0
        for i in 0..<used where buf[i] == 0 {
            let bytes = buf[start..<i].map { UInt8(bitPattern: $0) }
            out.append(String(decoding: bytes, as: UTF8.self).lowercased())
            start = i + 1
        }
        return out
    }
}
