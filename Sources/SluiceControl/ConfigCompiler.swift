#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceProxy
import Yams

/// Turns the composed YAML document into a `SluiceConfig`, reporting every problem it finds.
struct ConfigCompiler {
    /// Collected diagnostics and node readers.
    var reader: ConfigReader
    /// Host-name resolution for listener and endpoint addresses.
    let resolver: HostResolver
    /// Balance and circuit-breaker limits of each upstream group, by name (`ConfigCompiler+UpstreamLoad.swift`).
    var upstreamLoads: [String: UpstreamLoadSpec] = [:]
    /// Names already resolved (each name is looked up once per load).
    var resolved: [String: Result<SocketAddress, HostResolver.ResolveFailure>] = [:]

    /// Top-level keys.
    static let topKeys = ["workers", "listeners", "admin", "timeouts", "limits", "upstreams", "routes", "access_log", "trusted_proxies",
                          "state_file", "path_normalization", "forward_normalized_path", "cluster", "metrics", "dns_refresh", "http2",
                          "busy_poll"]

    /// `$SLUICE_ADMIN_TOKEN`, the admin token used when the config gives none.
    let environmentToken: String?

    /// A compiler reporting against `file` and resolving names with `resolver`.
    init(file: String, resolver: HostResolver, environmentToken: String? = nil) {
        self.reader = ConfigReader(file: file)
        self.resolver = resolver
        self.environmentToken = environmentToken
    }

    /// Compiles the document; nil when any problem was reported.
    mutating func compile(_ root: Node, version: UInt64) -> SluiceConfig? {
        guard let top = reader.map(root, "", known: Self.topKeys, required: ["listeners", "routes"],
                                   example: "listeners: [{ name: public, address: 127.0.0.1:8080 }]") else {
            return nil
        }
        let workers = top["workers"].flatMap { compileWorkers($0) } ?? Self.onlineCPUs()
        let busyPoll = top["busy_poll"].flatMap { compileBusyPoll($0) } ?? 0
        warnBusyPoll(busyPoll, workers: workers, node: top["busy_poll"])
        let listeners = top["listeners"].map { compileListeners($0) } ?? []
        let (adminAddress, adminToken, compiledAdmin) = compileAdmin(top["admin"], listeners: listeners)
        var adminSettings = compiledAdmin
        adminSettings.metrics = top["metrics"].flatMap { compileMetricsListener($0, listeners: listeners, admin: adminAddress) }
        let timeouts = top["timeouts"].map { compileTimeouts($0) } ?? Timeouts()
        let limits = top["limits"].map { compileLimits($0) } ?? Limits()
        var http2 = top["http2"].map { compileHTTP2($0, limits: limits) } ?? HTTP2Limits()
        if top["http2"] == nil { http2.maxHeaderListBytes = limits.parser.maxHeadBytes }
        let accessLog = top["access_log"].map { compileAccessLog($0) } ?? .off
        let trustedProxies = top["trusted_proxies"].map { compileTrustedProxies($0) } ?? []
        let stateFile = top["state_file"].map { compileStateFile($0) } ?? .default
        let cluster = top["cluster"].flatMap { compileCluster($0) }
        if let n = top["dns_refresh"], let d = compileDNSRefresh(n, "dns_refresh") { defaultDNSRefresh = d }
        let upstreams = top["upstreams"].map { compileUpstreams($0) } ?? []
        var routeCompiler = RouteCompiler(upstreams: upstreams)
        routeCompiler.tlsUpstreams = Set(tlsSet.upstreams.keys)
        if let n = top["path_normalization"], let b = reader.bool(n, "path_normalization") { routeCompiler.defaultPathNormalization = b }
        if let f = top["forward_normalized_path"], let b = reader.bool(f, "forward_normalized_path") {
            routeCompiler.defaultForwardNormalizedPath = b
        }
        if routeCompiler.defaultForwardNormalizedPath && !routeCompiler.defaultPathNormalization {
            reader.report(top.keyNode("forward_normalized_path"), "forward_normalized_path",
                          "`forward_normalized_path: true` needs `path_normalization` on",
                          hint: "paths matched raw are forwarded raw; remove one of the two")
        }
        let routes = top["routes"].map { routeCompiler.compileRoutes($0, reader: &reader) } ?? []

        guard reader.isClean else { return nil }
        let table = RoutingTable(version: version, upstreams: upstreams, routes: routes,
                                 loads: upstreams.map { upstreamLoads[$0.name] ?? UpstreamLoadSpec() })
        var config = SluiceConfig(
            workers: workers, listeners: listeners, adminAddress: adminAddress, adminToken: adminToken,
            timeouts: timeouts, limits: limits, accessLog: accessLog, table: table, sourcePath: nil)
        config.trustedProxies = trustedProxies
        config.accessLogFormat = accessLogFormat
        config.cluster = cluster
        config.admin = adminSettings
        config.tls = tlsSet
        config.http2 = http2
        config.busyPoll = busyPoll
        config.warnings = warnings
        stateFileSetting = stateFile
        if case .path(let p) = stateFile { config.stateFile = p }
        return config
    }

    /// TLS settings of the listeners compiled so far (by listener index) and of upstream groups.
    var tlsSet = TLSSet()
    /// Top-level `dns_refresh:`, the default of every upstream's (nanoseconds, 0: off).
    var defaultDNSRefresh: UInt64 = 30_000_000_000
    /// Things that are valid but worth a warning (`sluice check` prints them).
    var warnings: [String] = []

    /// What `state_file:` said (the loader turns `.default` into a path next to the config file).
    var stateFileSetting: StateFileSetting = .default

    /// `state_file:` as written.
    enum StateFileSetting: Equatable {
        /// Not given: `<config file>.state.json` when loaded from a file, none otherwise.
        case `default`
        /// `off`: runtime overrides are not kept across restarts.
        case off
        /// A path (relative paths are relative to the config file's directory).
        case path(String)
    }

    /// `state_file:` (`off` or a path).
    mutating func compileStateFile(_ node: Node) -> StateFileSetting {
        guard let text = reader.string(node, "state_file") else { return .default }
        if text == "off" { return .off }
        if text.utf8.contains(0) || text.hasSuffix("/") {
            reader.report(node, "state_file", "`\(text)` is not a file path",
                          hint: "e.g. `state_file: /var/lib/sluice/state.json`, or `state_file: off`")
            return .default
        }
        return .path(text)
    }

    // MARK: Process settings

    /// What `workers: auto` (and no `workers:`) means: online CPUs, lowered to the cgroup v2
    /// CPU limit rounded up (`CPUQuota`).
    static func onlineCPUs() -> Int {
        CPUQuota.autoWorkers(onlineCPUs: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// `workers:` (a count or `auto`).
    mutating func compileWorkers(_ node: Node) -> Int? {
        if case .scalar(let s) = node, s.string == "auto" { return Self.onlineCPUs() }
        if case .scalar(let s) = node, Int(s.string.replacingUnderscores()) == nil {
            reader.report(node, "workers", "expected a number of worker threads or `auto`, found \(ConfigReader.describe(node))",
                          hint: "`workers: auto` starts one worker per online CPU, at most the cgroup CPU limit rounded up")
            return nil
        }
        return reader.int(node, "workers", in: 1...1024)
    }

    /// `listeners:` (names and addresses unique).
    mutating func compileListeners(_ node: Node) -> [ListenerSpec] {
        let example = "- { name: public, address: 127.0.0.1:8080 }"
        guard let items = reader.list(node, "listeners", example: example) else { return [] }
        if items.isEmpty {
            reader.report(node, "listeners", "at least one listener is required", hint: "e.g. `\(example)`")
        }
        var out: [ListenerSpec] = []
        var names: [String: Node] = [:]
        var addresses: [SocketAddress: Node] = [:]
        for (i, item) in items.enumerated() {
            let path = ConfigReader.join("listeners", i)
            guard let m = reader.map(item, path, known: ["name", "address", "tls", "redirect_https", "http2", "defer_accept"], required: ["address"],
                                     example: "{ name: public, address: 127.0.0.1:8080 }") else { continue }
            var name = "listener-\(i)"
            if let n = m["name"], let s = reader.string(n, m.path("name")) {
                if let first = names[s] {
                    reader.report(n, m.path("name"), "duplicate listener name `\(s)` (first used at line \(first.mark?.line ?? 0))",
                                  hint: "give each listener its own name")
                } else {
                    names[s] = n
                }
                name = s
            }
            guard let a = m["address"], let address = address(a, m.path("address"), allowPortZero: true) else { continue }
            if address.port != 0, let first = addresses[address] {
                reader.report(a, m.path("address"), "address \(address) is already used by a listener at line \(first.mark?.line ?? 0)",
                              hint: "each listener needs its own address or port")
            } else {
                addresses[address] = a
            }
            var redirect = false
            if let r = m["redirect_https"], let b = reader.bool(r, m.path("redirect_https")) {
                if b && m["tls"] != nil {
                    reader.report(r, m.path("redirect_https"), "a TLS listener cannot redirect to https",
                                  hint: "set `redirect_https: true` on the plain listener (port 80) only")
                } else {
                    redirect = b
                }
            }
            // HTTP/2: on by default on TLS listeners (ALPN h2), off on plain ones (h2c is opt-in).
            var http2 = m["tls"] != nil
            if let h = m["http2"], let b = reader.bool(h, m.path("http2")) { http2 = b }
            if http2 && redirect, let h = m["http2"] {
                reader.report(h, m.path("http2"), "a listener that redirects to https does not serve HTTP/2",
                              hint: "remove `http2` here; set it on the TLS listener")
            }
            var deferAccept = true
            if let d = m["defer_accept"], let b = reader.bool(d, m.path("defer_accept")) { deferAccept = b }
            out.append(ListenerSpec(name: name, address: address, redirectHTTPS: redirect, http2: http2, deferAccept: deferAccept))
            tlsSet.listeners.append(m["tls"].flatMap { compileListenerTLS($0, m.path("tls"), http2: http2) })
        }
        return out
    }

    /// `timeouts:` (durations into nanoseconds).
    mutating func compileTimeouts(_ node: Node) -> Timeouts {
        var t = Timeouts()
        let keys: [(String, WritableKeyPath<Timeouts, UInt64>)] = [
            ("client_header", \.clientHeader), ("client_idle", \.clientIdle), ("client_send", \.clientSend),
            ("tunnel_idle", \.tunnelIdle),
            ("upstream_connect", \.upstreamConnect), ("upstream_response_header", \.upstreamResponseHeader),
            ("upstream_idle", \.upstreamIdle), ("drain", \.drain),
        ]
        guard let m = reader.map(node, "timeouts", known: keys.map(\.0), example: "{ upstream_connect: 5s }") else { return t }
        for (key, path) in keys {
            guard let v = m[key], let ns = reader.duration(v, m.path(key), max: ConfigValues.maxTimeout) else { continue }
            if ns == 0 && key != "drain" {
                reader.report(v, m.path(key), "must be longer than 0", hint: "e.g. `\(key): 10s`")
                continue
            }
            t[keyPath: path] = ns
        }
        return t
    }

    /// `limits:` (sizes and counts into `Limits`).
    mutating func compileLimits(_ node: Node) -> Limits {
        var l = Limits()
        let keys = ["max_request_line", "max_header_bytes", "max_header_count", "max_body_bytes",
                    "max_requests_per_connection", "max_connections_per_worker", "upstream_max_idle", "splice_min_body",
                    "retry_buffer_bytes", "mirror_max_in_flight", "mirror_max_buffered_bytes"]
        guard let m = reader.map(node, "limits", known: keys, example: "{ max_body_bytes: 10MiB }") else { return l }
        func sizeIn(_ key: String, _ range: ClosedRange<UInt64>) -> UInt64? {
            guard let v = m[key], let n = reader.size(v, m.path(key)) else { return nil }
            guard range.contains(n) else {
                reader.report(v, m.path(key), "\(n) bytes is out of range, must be \(range.lowerBound)...\(range.upperBound)")
                return nil
            }
            return n
        }
        if let n = sizeIn("max_request_line", 64...(1 << 20)) { l.parser.maxRequestLine = Int(n) }
        if let n = sizeIn("max_header_bytes", 256...(64 << 20)) { l.parser.maxHeadBytes = Int(n) }
        if let n = sizeIn("max_body_bytes", 0...ConfigValues.maxSize) { l.maxBodyBytes = n }
        if let n = sizeIn("splice_min_body", 0...ConfigValues.maxSize) { l.spliceMinBody = n }
        if let n = sizeIn("retry_buffer_bytes", 0...(64 << 20)) { l.retryBufferBytes = n }
        if let n = sizeIn("mirror_max_buffered_bytes", (64 << 10)...(4 << 30)) { l.mirrorMaxBufferedBytes = Int(n) }
        if let v = m["mirror_max_in_flight"], let n = reader.int(v, m.path("mirror_max_in_flight"), in: 1...100_000) {
            l.mirrorMaxInFlight = n
        }
        if let v = m["max_header_count"], let n = reader.int(v, m.path("max_header_count"), in: 1...100_000) {
            l.parser.maxFields = n
        }
        if let v = m["max_requests_per_connection"], let n = reader.int(v, m.path("max_requests_per_connection"), in: 0...1_000_000_000) {
            l.maxRequestsPerConnection = n
        }
        if let v = m["max_connections_per_worker"], let n = reader.int(v, m.path("max_connections_per_worker"), in: 1...10_000_000) {
            l.maxConnectionsPerWorker = n
        }
        if let v = m["upstream_max_idle"], let n = reader.int(v, m.path("upstream_max_idle"), in: 0...1_000_000) {
            l.upstreamMaxIdle = n
        }
        if l.parser.maxRequestLine > l.parser.maxHeadBytes, let v = m["max_request_line"] {
            reader.report(v, m.path("max_request_line"),
                          "max_request_line (\(l.parser.maxRequestLine)) is larger than max_header_bytes (\(l.parser.maxHeadBytes))",
                          hint: "the header size limit includes the request line; raise max_header_bytes")
        }
        return l
    }

    /// `trusted_proxies:` (a list of CIDRs whose X-Forwarded-* headers are kept).
    mutating func compileTrustedProxies(_ node: Node) -> [AddressPrefix] {
        guard let items = reader.list(node, "trusted_proxies", allowSingle: true, example: "[\"10.0.0.0/8\", \"::1/128\"]") else {
            return []
        }
        var out: [AddressPrefix] = []
        for (i, item) in items.enumerated() {
            let path = ConfigReader.join("trusted_proxies", i)
            guard let text = reader.string(item, path) else { continue }
            guard let prefix = AddressPrefix.parse(text) else {
                reader.report(item, path, "`\(text)` is not an IPv4 or IPv6 address or CIDR network",
                              hint: "write e.g. `10.0.0.0/8`, `192.0.2.10` or `2001:db8::/32` (host bits below the prefix must be zero)")
                continue
            }
            out.append(prefix)
        }
        return out
    }

    /// `access_log:` (`path`, and optionally `fields` and `redact_query`, which go to `accessLogFormat`).
    mutating func compileAccessLog(_ node: Node) -> AccessLogTarget {
        guard let m = reader.map(node, "access_log", known: ["path", "fields", "redact_query"], required: ["path"],
                                 example: "{ path: stdout }"),
              let p = m["path"], let path = reader.string(p, m.path("path")) else { return .off }
        var format = AccessLogFormat.all
        if let f = m["fields"] { format.fields = compileAccessLogFields(f, m.path("fields")) ?? format.fields }
        if let r = m["redact_query"] {
            format = AccessLogFormat(fields: format.fields, redactQuery: compileRedactQuery(r, m.path("redact_query")))
        }
        accessLogFormat = format
        switch path {
        case "off": return .off
        case "stdout": return .stdout
        default: return .file(path)
        }
    }

    /// `access_log.fields` as compiled (every field unless the config lists some).
    var accessLogFormat = AccessLogFormat.all

    /// `access_log.fields`: field names, each once, at least one.
    mutating func compileAccessLogFields(_ node: Node, _ path: String) -> [AccessLogField]? {
        let known = AccessLogField.allCases.map(\.rawValue).joined(separator: ", ")
        guard let items = reader.list(node, path, example: "[time, client, method, path, status, duration_ms]") else { return nil }
        if items.isEmpty {
            reader.report(node, path, "at least one field is required", hint: "fields: \(known); or leave `fields` out for all of them")
            return nil
        }
        var out: [AccessLogField] = []
        for (i, item) in items.enumerated() {
            let itemPath = ConfigReader.join(path, i)
            guard let name = reader.string(item, itemPath) else { continue }
            guard let field = AccessLogField(rawValue: name) else {
                reader.report(item, itemPath, "unknown access-log field `\(name)`", hint: "fields: \(known)")
                continue
            }
            if out.contains(field) {
                reader.report(item, itemPath, "field `\(name)` is listed twice", hint: "list each field once")
                continue
            }
            out.append(field)
        }
        return out
    }

    /// `access_log.redact_query`: query parameter names whose values are logged as `REDACTED`.
    mutating func compileRedactQuery(_ node: Node, _ path: String) -> [String] {
        guard let items = reader.list(node, path, example: "[token, password]") else { return [] }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            let itemPath = ConfigReader.join(path, i)
            guard let name = reader.string(item, itemPath) else { continue }
            if name.utf8.contains(where: { $0 == UInt8(ascii: "&") || $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: ";")
                                        || $0 == UInt8(ascii: "?") || $0 <= 0x20 || $0 >= 0x7F }) {
                reader.report(item, itemPath, "`\(name)` is not a query parameter name",
                              hint: "write the name as it appears before `=`, e.g. `token` for `?token=...`")
                continue
            }
            out.append(name)
        }
        return out
    }

    // MARK: Upstreams

    /// `upstreams:` in config order (index = upstream id).
    mutating func compileUpstreams(_ node: Node) -> [UpstreamGroup] {
        guard case .mapping(let mapping) = node else {
            reader.report(node, "upstreams", "expected a mapping of upstream names to upstreams, found \(ConfigReader.describe(node))",
                          hint: "e.g. `upstreams: { stable: { endpoints: [\"127.0.0.1:9001\"] } }`")
            return []
        }
        var groups: [UpstreamGroup] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let key) = keyNode else {
                reader.report(keyNode, "upstreams", "upstream names must be strings, found \(ConfigReader.describe(keyNode))")
                continue
            }
            let name = key.string
            let path = ConfigReader.join("upstreams", name)
            if !Self.isValidName(name) {
                reader.report(keyNode, path, "invalid upstream name `\(name)`",
                              hint: "names use letters, digits, `-`, `_` and `.`")
            }
            guard let m = reader.map(value, path, known: ["endpoints", "tls", "protocol"] + Self.upstreamLoadKeys + Self.availabilityKeys,
                                     required: ["endpoints"],
                                     example: "{ endpoints: [\"127.0.0.1:9001\"] }"),
                  let e = m["endpoints"],
                  let items = reader.list(e, m.path("endpoints"), example: "[\"127.0.0.1:9001\", \"127.0.0.1:9002\"]") else {
                // Keep the index space stable so later references still resolve.
                groups.append(UpstreamGroup(name: name, endpoints: []))
                continue
            }
            upstreamLoads[name] = compileUpstreamLoad(m)
            if let t = m["tls"], let tls = compileUpstreamTLS(t, m.path("tls"), upstream: name) {
                tlsSet.upstreams[name] = tls
            }
            if items.isEmpty {
                reader.report(e, m.path("endpoints"), "an upstream needs at least one endpoint",
                              hint: "e.g. `endpoints: [\"127.0.0.1:9001\"]`")
            }
            var endpoints: [Endpoint] = []
            for (i, item) in items.enumerated() {
                let itemPath = ConfigReader.join(m.path("endpoints"), i)
                var addressNode = item
                var addressPath = itemPath
                var weight = 1
                if case .mapping = item {
                    guard let em = reader.map(item, itemPath, known: ["address", "weight"], required: ["address"],
                                              example: "{ address: 127.0.0.1:9001, weight: 3 }"),
                          let a = em["address"] else { continue }
                    addressNode = a
                    addressPath = em.path("address")
                    if let w = em["weight"] {
                        guard let n = reader.int(w, em.path("weight"), in: 1...1_000_000) else { continue }
                        weight = n
                    }
                }
                guard let label = reader.string(addressNode, addressPath),
                      let addresses = endpointAddresses(addressNode, addressPath) else { continue }
                for address in addresses {
                    endpoints.append(Endpoint(address: address, weight: weight, label: label.trimmingSpaces()))
                }
            }
            var group = UpstreamGroup(name: name, endpoints: endpoints, availability: compileAvailability(m))
            if let p = m["protocol"], let text = reader.string(p, m.path("protocol")) {
                if let wire = UpstreamProtocol(rawValue: text) {
                    group.wire = wire
                    if wire == .h2 { tlsSet.upstreams[name]?.alpnH2 = true }
                    if wire == .h2 && m["tls"] == nil {
                        reader.report(p, m.path("protocol"), "`protocol: h2` is HTTP/2 over TLS and needs a `tls:` block",
                                      hint: "add `tls: {}` (verified against the system CA store), or use `protocol: h2c` for cleartext")
                    } else if wire == .h2c && m["tls"] != nil {
                        reader.report(p, m.path("protocol"), "`protocol: h2c` is cleartext HTTP/2, but the group has `tls:`",
                                      hint: "use `protocol: h2` for HTTP/2 over TLS")
                    }
                } else {
                    reader.report(p, m.path("protocol"), "unknown upstream protocol `\(text)`",
                                  hint: "use `http1` (the default), `h2c` (HTTP/2 cleartext, e.g. gRPC) or `h2` (HTTP/2 over TLS)")
                }
            }
            groups.append(group)
        }
        return groups
    }

    // MARK: Addresses

    /// Reads `host:port`, resolving a host name (each name once per load).
    mutating func address(_ node: Node, _ path: String, allowPortZero: Bool) -> SocketAddress? {
        guard let text = reader.string(node, path) else { return nil }
        switch ConfigValues.parseHostPort(text, allowPortZero: allowPortZero) {
        case .failure(let problem):
            reader.report(node, path, problem.message, hint: problem.hint)
            return nil
        case .success(let hp):
            if hp.isNumeric {
                if let v4 = SocketAddress.parseIPv4(Substring(hp.host)) { return .v4(v4, port: hp.port) }
                if let (hi, lo) = SocketAddress.parseIPv6(Substring(hp.host)) { return .v6(hi: hi, lo: lo, port: hp.port) }
            }
            let result: Result<SocketAddress, HostResolver.ResolveFailure>
            if let cached = resolved[hp.host] {
                result = cached
            } else {
                result = resolver.preferred(hp.host)
                resolved[hp.host] = result
            }
            switch result {
            case .success(let a): return a.with(port: hp.port)
            case .failure(let failure):
                reader.report(node, path, "cannot resolve host name `\(hp.host)`: \(failure.message)",
                              hint: "check the spelling and DNS, or write a numeric address such as `127.0.0.1:\(hp.port)`")
                return nil
            }
        }
    }

    /// True for names of upstreams, routes and cohorts: letters, digits, `-`, `_`, `.`.
    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128 && name.allSatisfy {
            $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".")
        }
    }
}
