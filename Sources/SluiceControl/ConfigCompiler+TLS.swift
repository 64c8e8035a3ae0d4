#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceProxy
import Yams

/// `tls:` blocks of listeners and upstreams: files are read and checked here, so a missing file,
/// an unreadable or mismatched key or an expired certificate is an error at its key's line.
extension ConfigCompiler {
    static let listenerTLSKeys = ["certificates", "min_version", "alpn", "session_tickets", "session_cache"]
    static let upstreamTLSKeys = ["ca", "server_name", "cert", "key", "verify"]
    /// ALPN protocol ids Sluice can serve (it speaks HTTP/1.x only, so far).
    static let supportedALPN = ["h2", "http/1.1"]

    /// A path from the config, relative ones resolved against the config file's directory.
    func filePath(_ text: String) -> String {
        reader.file.hasPrefix("<") ? text : ConfigLoader.resolve(text, relativeTo: reader.file)
    }

    /// Seconds since the epoch (certificate validity is checked against it).
    static func wallClock() -> Int64 { Int64(time(nil)) }

    /// Reads one `{ cert, key }` pair, reporting problems at the key at fault.
    mutating func loadCertificate(certNode: Node, certPath: String, keyNode: Node, keyPath: String) -> TLSCertificate? {
        guard let cert = reader.string(certNode, certPath), let key = reader.string(keyNode, keyPath) else { return nil }
        do {
            return try TLSCertificate.load(certPath: filePath(cert), keyPath: filePath(key), now: Self.wallClock())
        } catch {
            if error.field == .key {
                reader.report(keyNode, keyPath, error.message, hint: "give the PEM private key that belongs to the certificate")
            } else {
                reader.report(certNode, certPath, error.message,
                              hint: "give a PEM certificate (the leaf first, then its intermediates) that is valid now")
            }
            return nil
        }
    }

    /// A listener's `tls:`.
    mutating func compileListenerTLS(_ node: Node, _ path: String, http2: Bool = false) -> ListenerTLS? {
        let example = "{ certificates: [{ cert: /etc/sluice/tls/a.pem, key: /etc/sluice/tls/a.key }] }"
        guard let m = reader.map(node, path, known: Self.listenerTLSKeys, required: ["certificates"], example: example) else {
            return nil
        }
        var ok = true
        var certificates: [TLSCertificate] = []
        if let c = m["certificates"], let items = reader.list(c, m.path("certificates"), example: "[{ cert: a.pem, key: a.key }]") {
            if items.isEmpty {
                reader.report(c, m.path("certificates"), "a TLS listener needs at least one certificate",
                              hint: "e.g. `certificates: [{ cert: a.pem, key: a.key }]`")
                ok = false
            }
            for (i, item) in items.enumerated() {
                let itemPath = ConfigReader.join(m.path("certificates"), i)
                guard let cm = reader.map(item, itemPath, known: ["cert", "key"], required: ["cert", "key"],
                                          example: "{ cert: a.pem, key: a.key }"),
                      let cn = cm["cert"], let kn = cm["key"],
                      let cert = loadCertificate(certNode: cn, certPath: cm.path("cert"), keyNode: kn, keyPath: cm.path("key"))
                else {
                    ok = false
                    continue
                }
                certificates.append(cert)
            }
        } else {
            ok = false
        }
        var minVersion = TLSMinVersion.tls12
        if let v = m["min_version"], let text = reader.string(v, m.path("min_version")) {
            if let parsed = TLSMinVersion(rawValue: text) {
                minVersion = parsed
            } else {
                reader.report(v, m.path("min_version"), "unsupported TLS version `\(text)`",
                              hint: "use \"1.2\" (the default) or \"1.3\"; TLS 1.0 and 1.1 are never accepted")
                ok = false
            }
        }
        // With HTTP/2 on, `h2` is offered first (the client's preference does not reorder ours).
        var alpn = http2 ? ["h2", "http/1.1"] : ["http/1.1"]
        if let a = m["alpn"], let items = reader.list(a, m.path("alpn"), allowSingle: true, example: "[http/1.1]") {
            alpn = []
            for (i, item) in items.enumerated() {
                guard let p = reader.string(item, ConfigReader.join(m.path("alpn"), i)) else { ok = false; continue }
                if !Self.supportedALPN.contains(p) {
                    reader.report(item, ConfigReader.join(m.path("alpn"), i), "unsupported ALPN protocol `\(p)`",
                                  hint: "Sluice serves `h2` and `http/1.1`: e.g. `alpn: [h2, http/1.1]`")
                    ok = false
                } else if p == "h2" && !http2 {
                    reader.report(item, ConfigReader.join(m.path("alpn"), i), "`h2` in `alpn` needs `http2: true` on the listener",
                                  hint: "remove `h2`, or set `http2: true` (the default on TLS listeners)")
                    ok = false
                }
                alpn.append(p)
            }
            if items.isEmpty {
                reader.report(a, m.path("alpn"), "`alpn` needs at least one protocol", hint: "use `alpn: [http/1.1]`")
                ok = false
            }
        }
        var tickets = true
        if let t = m["session_tickets"] {
            if let b = reader.bool(t, m.path("session_tickets")) { tickets = b } else { ok = false }
        }
        var cache = true
        if let t = m["session_cache"] {
            if let b = reader.bool(t, m.path("session_cache")) { cache = b } else { ok = false }
        }
        guard ok, !certificates.isEmpty else { return nil }
        return ListenerTLS(certificates: certificates, minVersion: minVersion, alpn: alpn, sessionTickets: tickets,
                           sessionCache: cache)
    }

    /// An upstream group's `tls:`.
    mutating func compileUpstreamTLS(_ node: Node, _ path: String, upstream: String) -> UpstreamTLS? {
        let example = "{ ca: /etc/ssl/certs/ca-certificates.crt, server_name: api.internal }"
        // `tls: true` / `tls: {}`: TLS with the system trust store and the endpoint's name.
        if case .scalar = node, let b = reader.bool(node, path) {
            guard b else { return nil }
            return try? UpstreamTLS(caPath: nil, serverName: nil, clientCertificate: nil, verify: true)
        }
        guard let m = reader.map(node, path, known: Self.upstreamTLSKeys, example: example) else { return nil }
        var ok = true
        var ca: String?
        if let c = m["ca"], let text = reader.string(c, m.path("ca")) { ca = filePath(text) } else if m.has("ca") { ok = false }
        var serverName: String?
        if let s = m["server_name"], let text = reader.string(s, m.path("server_name")) {
            if text.isEmpty || text.contains(where: { $0 == " " || $0 == "/" || $0 == "\t" }) {
                reader.report(s, m.path("server_name"), "`\(text)` is not a host name", hint: "e.g. `server_name: api.internal`")
                ok = false
            }
            serverName = text
        } else if m.has("server_name") {
            ok = false
        }
        var verify = true
        if let v = m["verify"] {
            if let b = reader.bool(v, m.path("verify")) { verify = b } else { ok = false }
        }
        var client: TLSCertificate?
        switch (m["cert"], m["key"]) {
        case (let cn?, let kn?):
            client = loadCertificate(certNode: cn, certPath: m.path("cert"), keyNode: kn, keyPath: m.path("key"))
            if client == nil { ok = false }
        case (let cn?, nil):
            reader.report(cn, m.path("cert"), "a client certificate needs its `key`", hint: "add `key: client.key` next to `cert`")
            ok = false
        case (nil, let kn?):
            reader.report(kn, m.path("key"), "a client key needs its `cert`", hint: "add `cert: client.pem` next to `key`")
            ok = false
        case (nil, nil):
            break
        }
        if !verify {
            warnings.append("\(reader.file):\(m["verify"]?.mark?.line ?? 0): upstreams.\(upstream).tls.verify is false: "
                            + "the upstream's certificate and name are not checked (anyone on the path can impersonate it)")
        }
        guard ok else { return nil }
        do {
            return try UpstreamTLS(caPath: ca, serverName: serverName, clientCertificate: client, verify: verify)
        } catch {
            reader.report(m["ca"] ?? node, m.path("ca"), error.message, hint: "give a PEM file of trusted CA certificates")
            return nil
        }
    }
}

extension ConfigCompiler {
    /// Top-level `http2:` keys.
    static let http2Keys = ["max_concurrent_streams", "max_header_list_size", "initial_window_size", "connection_window_size",
                            "max_resets_per_second", "max_control_frames_per_second", "max_continuations"]

    /// `http2:` (limits of client HTTP/2 connections).
    mutating func compileHTTP2(_ node: Node, limits: Limits) -> HTTP2Limits {
        var l = HTTP2Limits()
        l.maxHeaderListBytes = limits.parser.maxHeadBytes
        guard let m = reader.map(node, "http2", known: Self.http2Keys, example: "{ max_concurrent_streams: 100 }") else { return l }
        func sizeIn(_ key: String, _ range: ClosedRange<UInt64>) -> Int? {
            guard let v = m[key], let n = reader.size(v, m.path(key)) else { return nil }
            guard range.contains(n) else {
                reader.report(v, m.path(key), "\(n) bytes is out of range, must be \(range.lowerBound)...\(range.upperBound)")
                return nil
            }
            return Int(n)
        }
        func count(_ key: String, _ range: ClosedRange<Int>) -> Int? {
            guard let v = m[key] else { return nil }
            return reader.int(v, m.path(key), in: range)
        }
        if let n = count("max_concurrent_streams", 1...10_000) { l.maxConcurrentStreams = n }
        // A request's header list must fit the HTTP/1.1 head it becomes inside Sluice.
        if let n = sizeIn("max_header_list_size", 1024...UInt64(limits.parser.maxHeadBytes)) { l.maxHeaderListBytes = n }
        if let n = sizeIn("initial_window_size", 1024...65535) { l.streamWindowBytes = n }
        if let n = sizeIn("connection_window_size", 65535...(64 << 20)) { l.connectionWindowBytes = n }
        if let n = count("max_resets_per_second", 0...1_000_000) { l.maxResetsPerSecond = n }
        if let n = count("max_control_frames_per_second", 0...1_000_000) { l.maxControlFramesPerSecond = n }
        if let n = count("max_continuations", 0...1000) { l.maxContinuations = n }
        return l
    }
}
