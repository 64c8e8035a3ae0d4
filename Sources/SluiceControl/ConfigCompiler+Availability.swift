import SluiceCore
import Yams

/// `upstreams.NAME.health_check`, `.outlier` and `.dns_refresh`, and resolving host-name
/// endpoints to every address.
extension ConfigCompiler {
    /// Upstream keys this file reads.
    static let availabilityKeys = ["health_check", "outlier", "dns_refresh"]

    /// The availability settings of an upstream mapping (defaults for absent keys).
    mutating func compileAvailability(_ m: YAMLMap) -> EndpointAvailabilitySpec {
        var spec = EndpointAvailabilitySpec()
        spec.dnsRefreshNanos = defaultDNSRefresh
        if let n = m["health_check"] { spec.healthCheck = compileHealthCheck(n, m.path("health_check")) }
        if let n = m["outlier"], let o = compileOutlier(n, m.path("outlier")) { spec.outlier = o }
        if let n = m["dns_refresh"], let d = compileDNSRefresh(n, m.path("dns_refresh")) { spec.dnsRefreshNanos = d }
        return spec
    }

    /// `dns_refresh:` (top level or per upstream): a duration of at least 1 s, or `off` (0).
    mutating func compileDNSRefresh(_ n: Node, _ path: String) -> UInt64? {
        if case .scalar(let s) = n, s.string == "off" { return 0 }
        guard let d = reader.duration(n, path, max: 86_400_000_000_000) else { return nil }
        guard d >= 1_000_000_000 else {
            reader.report(n, path, "dns_refresh must be at least 1s (or `off`)", hint: "e.g. `dns_refresh: 30s`")
            return nil
        }
        return d
    }

    /// `health_check: { path, interval, timeout, healthy, unhealthy, expect, host }`.
    mutating func compileHealthCheck(_ node: Node, _ path: String) -> HealthCheckSpec? {
        let example = "{ path: /healthz, interval: 2s, timeout: 1s, healthy: 2, unhealthy: 2, expect: [200-399] }"
        guard let m = reader.map(node, path, known: ["path", "interval", "timeout", "healthy", "unhealthy", "expect", "host"],
                                 example: example) else { return nil }
        var spec = HealthCheckSpec()
        var ok = true
        if let n = m["path"], let p = reader.string(n, m.path("path")) {
            if !p.hasPrefix("/") || p.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F }) {
                reader.report(n, m.path("path"), "`\(p)` is not a request path",
                              hint: "an origin-form target without spaces, e.g. `/healthz`")
                ok = false
            } else {
                spec.path = p
            }
        }
        if let n = m["interval"] {
            if let d = reader.duration(n, m.path("interval"), max: 3_600_000_000_000) {
                if d < 10_000_000 {
                    reader.report(n, m.path("interval"), "the check interval must be at least 10ms", hint: "e.g. `interval: 2s`")
                    ok = false
                } else {
                    spec.intervalNanos = d
                }
            } else {
                ok = false
            }
        }
        if let n = m["timeout"] {
            if let d = reader.duration(n, m.path("timeout"), max: 3_600_000_000_000) {
                if d < 1_000_000 {
                    reader.report(n, m.path("timeout"), "the check timeout must be at least 1ms", hint: "e.g. `timeout: 1s`")
                    ok = false
                } else {
                    spec.timeoutNanos = d
                }
            } else {
                ok = false
            }
        }
        if spec.timeoutNanos > spec.intervalNanos {
            reader.report(m["timeout"] ?? node, m.path("timeout"),
                          "the check timeout (\(ConfigValues.formatDuration(spec.timeoutNanos))) is longer than its interval (\(ConfigValues.formatDuration(spec.intervalNanos)))",
                          hint: "a check must end before the next one starts; e.g. `interval: 2s, timeout: 1s`")
            ok = false
        }
        if let n = m["healthy"] {
            if let v = reader.int(n, m.path("healthy"), in: 1...100) { spec.healthy = v } else { ok = false }
        }
        if let n = m["unhealthy"] {
            if let v = reader.int(n, m.path("unhealthy"), in: 1...100) { spec.unhealthy = v } else { ok = false }
        }
        if let n = m["expect"] {
            if let ranges = compileStatusRanges(n, m.path("expect")) { spec.expect = ranges } else { ok = false }
        }
        if let n = m["host"], let h = reader.string(n, m.path("host")) {
            if h.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F || $0 == UInt8(ascii: "/") }) {
                reader.report(n, m.path("host"), "`\(h)` is not a Host value", hint: "e.g. `host: app.internal`")
                ok = false
            } else {
                spec.host = h
            }
        }
        return ok ? spec : nil
    }

    /// `expect: [200, 200-399, ...]`: codes or inclusive ranges within 100...599.
    mutating func compileStatusRanges(_ node: Node, _ path: String) -> [ClosedRange<Int>]? {
        guard let items = reader.list(node, path, allowSingle: true, example: "[200-399]") else { return nil }
        if items.isEmpty {
            reader.report(node, path, "expect needs at least one status or range", hint: "e.g. `expect: [200-399]`")
            return nil
        }
        var out: [ClosedRange<Int>] = []
        for (i, item) in items.enumerated() {
            let itemPath = ConfigReader.join(path, i)
            guard case .scalar(let s) = item else {
                reader.report(item, itemPath, "expected a status such as `200` or a range such as `200-399`, found \(ConfigReader.describe(item))")
                return nil
            }
            let parts = s.string.split(separator: "-", omittingEmptySubsequences: false).map { String($0).trimmingSpaces() }
            let numbers = parts.compactMap { Int($0) }
            guard (parts.count == 1 || parts.count == 2), numbers.count == parts.count,
                  numbers.allSatisfy({ (100...599).contains($0) }), numbers.first! <= numbers.last! else {
                reader.report(item, itemPath, "`\(s.string)` is not a status (100-599) or a range `LOW-HIGH`",
                              hint: "e.g. `expect: [200-399]` or `expect: [200, 204]`")
                return nil
            }
            out.append(numbers.first!...numbers.last!)
        }
        return out
    }

    /// `outlier: off` or `outlier: { consecutive_failures, base_ejection, max_ejection, max_ejected_percent }`.
    mutating func compileOutlier(_ node: Node, _ path: String) -> OutlierSpec? {
        if case .scalar(let s) = node, s.string == "off" || s.string == "false" { return .off }
        let example = "{ consecutive_failures: 5, base_ejection: 10s, max_ejected_percent: 50 }"
        guard let m = reader.map(node, path, known: ["consecutive_failures", "base_ejection", "max_ejection", "max_ejected_percent"],
                                 example: example) else { return nil }
        var spec = OutlierSpec()
        var ok = true
        if let n = m["consecutive_failures"] {
            if let v = reader.int(n, m.path("consecutive_failures"), in: 0...10_000) { spec.consecutiveFailures = v } else { ok = false }
        }
        if let n = m["base_ejection"] {
            if let d = reader.duration(n, m.path("base_ejection"), max: 86_400_000_000_000) {
                if d < 1_000_000 {
                    reader.report(n, m.path("base_ejection"), "base_ejection must be at least 1ms", hint: "e.g. `base_ejection: 10s`")
                    ok = false
                } else {
                    spec.baseEjectionNanos = d
                    // An explicit base longer than the default cap raises the cap with it.
                    if !m.has("max_ejection") { spec.maxEjectionNanos = max(spec.maxEjectionNanos, d) }
                }
            } else {
                ok = false
            }
        }
        if let n = m["max_ejection"] {
            if let d = reader.duration(n, m.path("max_ejection"), max: 86_400_000_000_000) { spec.maxEjectionNanos = d } else { ok = false }
        }
        if spec.maxEjectionNanos < spec.baseEjectionNanos {
            reader.report(m["max_ejection"] ?? m["base_ejection"] ?? node, m.path(m.has("max_ejection") ? "max_ejection" : "base_ejection"),
                          "max_ejection (\(ConfigValues.formatDuration(spec.maxEjectionNanos))) is shorter than base_ejection (\(ConfigValues.formatDuration(spec.baseEjectionNanos)))",
                          hint: "the longest ejection must be at least the first one; max_ejection defaults to 300s")
            ok = false
        }
        if let n = m["max_ejected_percent"] {
            if let v = reader.int(n, m.path("max_ejected_percent"), in: 0...100) { spec.maxEjectedPercent = v } else { ok = false }
        }
        return ok ? spec : nil
    }
}

extension ConfigCompiler {
    /// Reads an endpoint's `host:port`: a numeric address, or every address of a host name
    /// (`HostResolver.endpointAddresses`), each of which becomes an endpoint.
    mutating func endpointAddresses(_ node: Node, _ path: String) -> [SocketAddress]? {
        guard let text = reader.string(node, path) else { return nil }
        switch ConfigValues.parseHostPort(text, allowPortZero: false) {
        case .failure(let problem):
            reader.report(node, path, problem.message, hint: problem.hint)
            return nil
        case .success(let hp):
            if hp.isNumeric { return address(node, path, allowPortZero: false).map { [$0] } }
            switch resolver.endpointAddresses(hp.host) {
            case .success(let list): return list.map { $0.with(port: hp.port) }
            case .failure(let failure):
                reader.report(node, path, "cannot resolve host name `\(hp.host)`: \(failure.message)",
                              hint: "check the spelling and DNS, or write a numeric address such as `127.0.0.1:\(hp.port)`")
                return nil
            }
        }
    }
}

extension HostResolver {
    /// The addresses a host-name endpoint expands to: every IPv4 address of the name (IPv6
    /// addresses only when it has no IPv4 one, as `preferred` chooses), duplicates dropped, sorted
    /// so a refresh that gets the same set in another order changes nothing.
    package func endpointAddresses(_ name: String) -> Result<[SocketAddress], ResolveFailure> {
        switch resolve(name) {
        case .failure(let f): return .failure(f)
        case .success(let list):
            let v4 = list.filter { if case .v4 = $0 { return true } else { return false } }
            let chosen = v4.isEmpty ? list : v4
            var seen = Set<SocketAddress>()
            let unique = chosen.filter { seen.insert($0).inserted }
            guard !unique.isEmpty else { return .failure(ResolveFailure(message: "no address")) }
            return .success(unique.sorted { "\($0)" < "\($1)" })
        }
    }
}
