import SluiceCore

/// Parsers for the config's scalar formats: durations, sizes, weights, host:port. Pure functions
/// with messages written for the person editing the file.
enum ConfigValues {
    /// Why a value was rejected.
    struct Problem: Error, Equatable {
        /// What is wrong.
        var message: String
        /// How to write it instead.
        var hint: String?
    }

    /// The default upper bound of a duration in the config: 30 days.
    static let maxDuration: UInt64 = 30 * 86_400 * 1_000_000_000
    /// The upper bound of every `timeouts:` value: 24 hours.
    static let maxTimeout: UInt64 = 86_400 * 1_000_000_000
    /// The upper bound of a sticky cookie's `max_age`: 400 days (browsers cap Max-Age there, RFC 6265bis).
    static let maxCookieAge: UInt64 = 400 * 86_400 * 1_000_000_000
    /// The upper bound of a rollout's `interval` and of a p99 gate's `max`: 1 hour.
    static let maxRolloutInterval: UInt64 = 3_600 * 1_000_000_000
    /// The default upper bound of a size in the config: 1 TiB.
    static let maxSize: UInt64 = 1 << 40

    /// `ns` in the largest config unit that writes it exactly: `30d`, `24h`, `90m`, `10s`, `250ms`
    /// (`1500000ns`-style values, never produced by the bounds above, fall back to `ms` with decimals).
    static func formatDuration(_ ns: UInt64) -> String {
        let units: [(UInt64, String)] = [(86_400_000_000_000, "d"), (3_600_000_000_000, "h"), (60_000_000_000, "m"),
                                         (1_000_000_000, "s"), (1_000_000, "ms")]
        for (size, name) in units where ns >= size && ns % size == 0 { return "\(ns / size)\(name)" }
        return RolloutFormat.duration(nanos: ns)
    }

    /// `bytes` in the largest binary unit that writes it exactly: `1TiB`, `64MiB`, `1500` (bytes).
    static func formatSize(_ bytes: UInt64) -> String {
        let units: [(UInt64, String)] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (size, name) in units where bytes >= size && bytes % size == 0 { return "\(bytes / size)\(name)" }
        return "\(bytes)"
    }

    /// Parses `250ms`, `10s`, `5m`, `1h`, `30d` or a bare integer (seconds) into nanoseconds;
    /// with `microseconds`, also `50us` (or `50µs`), for the one key that needs them (`busy_poll`).
    static func parseDuration(_ raw: String, microseconds: Bool = false) -> Result<UInt64, Problem> {
        let text = raw.trimmingSpaces().replacingUnderscores()
        let hint = microseconds ? "write a whole number with a unit: `50us`, `1ms` (a bare number means seconds)"
            : "write a whole number with a unit: `250ms`, `10s`, `5m`, `1h`, `30d` (a bare number means seconds)"
        let digits = text.prefix(while: { $0.isASCII && $0.isNumber })
        let unit = text.dropFirst(digits.count)
        guard !digits.isEmpty, let value = UInt64(digits) else {
            return .failure(Problem(message: "invalid duration `\(raw)`", hint: hint))
        }
        let multiplier: UInt64
        switch unit {
        case "us" where microseconds, "\u{B5}s" where microseconds, "\u{3BC}s" where microseconds: multiplier = 1_000  // µ: micro sign or Greek mu
        case "ms": multiplier = 1_000_000
        case "", "s": multiplier = 1_000_000_000
        case "m": multiplier = 60 * 1_000_000_000
        case "h": multiplier = 3_600 * 1_000_000_000
        case "d": multiplier = 86_400 * 1_000_000_000
        default:
            return .failure(Problem(message: "invalid duration `\(raw)`: unknown unit `\(unit)`", hint: hint))
        }
        let (ns, overflow) = value.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { return .failure(Problem(message: "duration `\(raw)` is too long", hint: nil)) }
        return .success(ns)
    }

    /// Parses a size: bare integer bytes, or `8KiB`/`8k`/`8KB`, `1MiB`/`1m`/`1MB`, `1GiB`/`1g`/`1GB`
    /// (units are binary and case-insensitive).
    static func parseSize(_ raw: String) -> Result<UInt64, Problem> {
        let text = raw.trimmingSpaces().replacingUnderscores()
        let hint = "write a whole number of bytes, or use a unit: `8KiB`, `1MiB`, `1GiB` (also `8k`, `1m`, `1g`)"
        let digits = text.prefix(while: { $0.isASCII && $0.isNumber })
        let unit = text.dropFirst(digits.count).lowercased()
        guard !digits.isEmpty, let value = UInt64(digits) else {
            return .failure(Problem(message: "invalid size `\(raw)`", hint: hint))
        }
        let shift: UInt64
        switch unit {
        case "", "b": shift = 0
        case "k", "kb", "kib": shift = 10
        case "m", "mb", "mib": shift = 20
        case "g", "gb", "gib": shift = 30
        case "t", "tb", "tib": shift = 40
        default:
            return .failure(Problem(message: "invalid size `\(raw)`: unknown unit `\(unit)`", hint: hint))
        }
        guard value <= UInt64.max >> shift else { return .failure(Problem(message: "size `\(raw)` is too large", hint: nil)) }
        return .success(value << shift)
    }

    /// Parses a split weight: a percentage with up to two decimals (`95`, `2.5`, `0.01`, `5%`),
    /// into 0.01% units (0...10000).
    static func parseWeight(_ raw: String) -> Result<Int, Problem> {
        var text = Substring(raw.trimmingSpaces())
        if text.hasSuffix("%") { text = text.dropLast() }
        let hint = "weights are percentages from 0 to 100 with at most two decimals, e.g. `95`, `4.5`, `0.25`"
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = parts.first, !whole.isEmpty,
              whole.allSatisfy({ $0.isASCII && $0.isNumber }), whole.count <= 3, let units = Int(whole) else {
            return .failure(Problem(message: "invalid weight `\(raw)`", hint: hint))
        }
        var hundredths = 0
        if parts.count == 2 {
            let fraction = parts[1]
            guard !fraction.isEmpty, fraction.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                return .failure(Problem(message: "invalid weight `\(raw)`", hint: hint))
            }
            guard fraction.count <= 2 else {
                return .failure(Problem(message: "weight `\(raw)` has more than two decimals (the split's granularity is 0.01%)",
                                        hint: hint))
            }
            hundredths = Int(fraction)! * (fraction.count == 1 ? 10 : 1)
        }
        let value = units * 100 + hundredths
        guard value <= 10_000 else {
            return .failure(Problem(message: "weight `\(raw)` is over 100", hint: hint))
        }
        return .success(value)
    }

    /// Formats 0.01% units as a percentage without trailing zeros (`9950` → `99.5`).
    static func formatWeight(_ units: Int) -> String {
        let sign = units < 0 ? "-" : ""
        let u = abs(units)
        let whole = u / 100, frac = u % 100
        if frac == 0 { return "\(sign)\(whole)" }
        if frac % 10 == 0 { return "\(sign)\(whole).\(frac / 10)" }
        return "\(sign)\(whole).\(frac < 10 ? "0" : "")\(frac)"
    }

    /// A `host:port` split into its parts, or why it cannot be.
    struct HostPort: Equatable {
        /// Host text (brackets of an IPv6 literal removed).
        var host: String
        /// Port.
        var port: UInt16
        /// True when `host` is a numeric IPv4 or IPv6 address.
        var isNumeric: Bool
    }

    /// Splits and checks `host:port` (`127.0.0.1:9001`, `[::1]:9001`, `api.internal:80`).
    static func parseHostPort(_ raw: String, allowPortZero: Bool) -> Result<HostPort, Problem> {
        let text = raw.trimmingSpaces()
        let hint = "write host:port, e.g. `127.0.0.1:9001`, `[::1]:9001` or `api.internal:80`"
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                return .failure(Problem(message: "invalid address `\(raw)`: missing `]`", hint: hint))
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else {
                return .failure(Problem(message: "invalid address `\(raw)`: missing `:port`", hint: hint))
            }
            portPart = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                return .failure(Problem(message: "invalid address `\(raw)`: missing `:port`", hint: hint))
            }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
            if hostPart.contains(":") {
                return .failure(Problem(message: "invalid address `\(raw)`: an IPv6 address needs brackets",
                                        hint: "write it as `[\(hostPart)]:\(portPart)`"))
            }
        }
        guard !hostPart.isEmpty else {
            return .failure(Problem(message: "invalid address `\(raw)`: missing host", hint: hint))
        }
        guard !portPart.isEmpty, portPart.count <= 5, portPart.allSatisfy({ $0.isASCII && $0.isNumber }),
              let port = Int(portPart) else {
            return .failure(Problem(message: "invalid port `\(portPart)` in `\(raw)`", hint: "a port is a number from 1 to 65535"))
        }
        guard port <= 65_535, port > 0 || allowPortZero else {
            return .failure(Problem(message: "port \(port) in `\(raw)` is out of range",
                                    hint: allowPortZero ? "a port is a number from 0 (any free port) to 65535"
                                        : "a port is a number from 1 to 65535"))
        }
        if SocketAddress.parseIPv4(hostPart) != nil || SocketAddress.parseIPv6(hostPart) != nil {
            return .success(HostPort(host: String(hostPart), port: UInt16(port), isNumeric: true))
        }
        if text.hasPrefix("[") {
            return .failure(Problem(message: "invalid IPv6 address `\(hostPart)` in `\(raw)`", hint: hint))
        }
        // Looks like an IPv4 address but is not one: report rather than send it to DNS.
        if hostPart.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }) {
            return .failure(Problem(message: "invalid IPv4 address `\(hostPart)` in `\(raw)`",
                                    hint: "each of the four parts is a number from 0 to 255"))
        }
        guard isValidHostName(hostPart) else {
            return .failure(Problem(message: "invalid host name `\(hostPart)` in `\(raw)`",
                                    hint: "host names use letters, digits, `-` and `.`"))
        }
        return .success(HostPort(host: String(hostPart), port: UInt16(port), isNumeric: false))
    }

    /// True for a DNS-style host name: labels of letters, digits, `-` and `_`, separated by dots.
    static func isValidHostName(_ name: Substring) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        let trimmed = name.hasSuffix(".") ? name.dropLast() : name
        for label in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= 63, !label.hasPrefix("-"), !label.hasSuffix("-"),
                  label.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
                return false
            }
        }
        return true
    }

    /// Why a header name cannot be one Sluice adds to requests or responses (`cohort_header`),
    /// or nil when it can. ASCII case-insensitive. Refused: framing and body description
    /// (`Content-*`, `Transfer-Encoding`), hop-by-hop fields (`Connection`, `Keep-Alive`, `TE`,
    /// `Trailer`, `Upgrade`, `Proxy-*`), routing (`Host`), forwarding (`Forwarded`, `X-Forwarded-*`,
    /// `X-Real-IP`, `Via`), Sluice's own `X-Request-Id`, authentication and cookies
    /// (`Authorization`, `WWW-Authenticate`, `Cookie`, `Set-Cookie`), and `Expect`, `Date`, `Server`,
    /// `Location`: a second copy of any of them changes how a peer frames, routes, trusts or
    /// answers the message (two Content-Lengths smuggle a request).
    static func reservedHeaderReason(_ name: String) -> String? {
        let n = name.lowercased()
        switch n {
        case "content-length", "transfer-encoding": return "a framing field (a second copy smuggles requests)"
        case "connection", "keep-alive", "te", "trailer", "upgrade":
            return "a hop-by-hop field (it describes the connection, not the request)"
        case "host": return "the routing field Host"
        case "forwarded", "x-real-ip", "via": return "a forwarding field (upstreams trust it to name the client or the path)"
        case "x-request-id": return "Sluice's own request id field"
        case "authorization", "www-authenticate", "cookie", "set-cookie":
            return "an authentication or cookie field"
        case "expect", "date", "server", "location": return "a field with a protocol meaning of its own"
        default: break
        }
        if n.hasPrefix("content-") { return "a `Content-*` field (it describes the body)" }
        if n.hasPrefix("proxy-") { return "a hop-by-hop `Proxy-*` field" }
        if n.hasPrefix("x-forwarded-") { return "a forwarding field (upstreams trust it to name the client or the path)" }
        return nil
    }

    /// True for an HTTP token (RFC 9110 `tchar`s), as header and cookie names and methods must be.
    static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { b in
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"):
                return true
            default:
                return "!#$%&'*+-.^_`|~".utf8.contains(b)
            }
        }
    }
}

extension String {
    /// The string without leading and trailing spaces and tabs.
    func trimmingSpaces() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let start = firstIndex(where: { !isSpace($0) }), let end = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[start...end])
    }
}
