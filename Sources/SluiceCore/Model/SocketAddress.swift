/// An IP socket address as a plain value (no sockaddr, no syscalls): what config
/// produces, what routing matches client CIDRs against, and what the IO layer connects to.
public enum SocketAddress: Hashable, Sendable, CustomStringConvertible {
    /// IPv4 address in host byte order (`0x7f000001` is 127.0.0.1) and port.
    case v4(UInt32, port: UInt16)
    /// IPv6 address as 16 network-order bytes (high 64 bits, low 64 bits, each big-endian value) and port.
    case v6(hi: UInt64, lo: UInt64, port: UInt16)

    /// The port.
    public var port: UInt16 {
        switch self {
        case .v4(_, let p): return p
        case .v6(_, _, let p): return p
        }
    }

    /// The same address with another port.
    public func with(port: UInt16) -> SocketAddress {
        switch self {
        case .v4(let a, _): return .v4(a, port: port)
        case .v6(let hi, let lo, _): return .v6(hi: hi, lo: lo, port: port)
        }
    }

    /// True for 127.0.0.0/8 and ::1 (and IPv4-mapped loopback).
    public var isLoopback: Bool {
        switch self {
        case .v4(let a, _): return a >> 24 == 127
        case .v6(let hi, let lo, _):
            if hi == 0 && lo == 1 { return true }
            if hi == 0 && lo >> 32 == 0xffff { return (lo & 0xffff_ffff) >> 24 == 127 }
            return false
        }
    }

    /// The address without the port, as text (`127.0.0.1`, `::1`).
    public var hostText: String {
        var out: [UInt8] = []
        appendHostText(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the address without the port as text (`127.0.0.1`, `::1`; IPv6 in RFC 5952 form).
    /// Allocates nothing beyond `out`'s growth, so a worker can format a client's address into a
    /// reused array per exchange instead of keeping a copy per connection.
    public func appendHostText(to out: inout [UInt8]) {
        switch self {
        case .v4(let a, _):
            for shift in stride(from: UInt32(24), through: 0, by: -8) {
                HeadWriter.appendDecimal(UInt64((a >> shift) & 0xff), to: &out)
                if shift > 0 { out.append(UInt8(ascii: ".")) }
            }
        case .v6(let hi, let lo, _):
            func group(_ i: Int) -> UInt64 { ((i < 4 ? hi : lo) >> UInt64(48 - 16 * (i & 3))) & 0xffff }
            // Compress the longest run of two or more zero groups, the first one on a tie (RFC 5952).
            var runStart = -1, runLength = 0, i = 0
            while i < 8 {
                guard group(i) == 0 else { i += 1; continue }
                var j = i
                while j < 8 && group(j) == 0 { j += 1 }
                if j - i > runLength && j - i > 1 { runStart = i; runLength = j - i }
                i = j
            }
            i = 0
            while i < 8 {
                if i == runStart {
                    out.append(UInt8(ascii: ":"))
                    out.append(UInt8(ascii: ":"))
                    i += runLength
                    continue
                }
                if i > 0 && i != runStart + runLength { out.append(UInt8(ascii: ":")) }
                HeadWriter.appendHex(group(i), to: &out)
                i += 1
            }
        }
    }

    /// `host:port`, with brackets around IPv6 hosts.
    public var description: String {
        switch self {
        case .v4: return "\(hostText):\(port)"
        case .v6: return "[\(hostText)]:\(port)"
        }
    }

    /// Parses a numeric `a.b.c.d` IPv4 address (no port).
    public static func parseIPv4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let octet = UInt32(part), octet <= 255 else { return nil }
            if part.count > 1 && part.first == "0" { return nil }  // no ambiguous octal forms
            value = value << 8 | octet
        }
        return value
    }

    /// Parses a numeric IPv6 address (no brackets, no port, no zone) into (hi, lo).
    public static func parseIPv6(_ text: Substring) -> (UInt64, UInt64)? {
        var groups: [UInt16] = []
        var tailGroups: [UInt16] = []
        var sawDouble = false
        let halves = text.components(separatedByDoubleColon: ())
        guard let halves else { return nil }
        func parseGroups(_ s: Substring, into out: inout [UInt16], allowV4Tail: Bool) -> Bool {
            if s.isEmpty { return true }
            let items = s.split(separator: ":", omittingEmptySubsequences: false)
            for (n, item) in items.enumerated() {
                if allowV4Tail && n == items.count - 1 && item.contains(".") {
                    guard let v4 = parseIPv4(item) else { return false }
                    out.append(UInt16(v4 >> 16)); out.append(UInt16(v4 & 0xffff))
                    continue
                }
                guard !item.isEmpty, item.count <= 4, let g = UInt16(item, radix: 16) else { return false }
                out.append(g)
            }
            return true
        }
        if halves.count == 1 {
            guard parseGroups(halves[0], into: &groups, allowV4Tail: true), groups.count == 8 else { return nil }
        } else {
            sawDouble = true
            guard parseGroups(halves[0], into: &groups, allowV4Tail: false),
                  parseGroups(halves[1], into: &tailGroups, allowV4Tail: true),
                  groups.count + tailGroups.count <= 7 else { return nil }
        }
        if sawDouble {
            groups += Array(repeating: 0, count: 8 - groups.count - tailGroups.count) + tailGroups
        }
        var hi: UInt64 = 0, lo: UInt64 = 0
        for i in 0..<4 { hi = hi << 16 | UInt64(groups[i]) }
        for i in 4..<8 { lo = lo << 16 | UInt64(groups[i]) }
        return (hi, lo)
    }

    /// Parses `a.b.c.d:port` or `[v6]:port`; nil when not a numeric address with a port.
    public static func parse(_ text: String) -> SocketAddress? {
        guard let (host, port) = splitHostPort(text) else { return nil }
        if let v4 = parseIPv4(host) { return .v4(v4, port: port) }
        if let (hi, lo) = parseIPv6(host) { return .v6(hi: hi, lo: lo, port: port) }
        return nil
    }

    /// Splits `host:port` or `[v6]:port` into host text (brackets removed) and port.
    public static func splitHostPort(_ text: String) -> (Substring, UInt16)? {
        let s = Substring(text)
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            let host = s[s.index(after: s.startIndex)..<close]
            let rest = s[s.index(after: close)...]
            guard rest.hasPrefix(":"), let port = parsePort(rest.dropFirst()) else { return nil }
            return (host, port)
        }
        guard let colon = s.lastIndex(of: ":"), !s[..<colon].contains(":") else { return nil }
        guard let port = parsePort(s[s.index(after: colon)...]) else { return nil }
        let host = s[..<colon]
        guard !host.isEmpty else { return nil }
        return (host, port)
    }

    private static func parsePort(_ s: Substring) -> UInt16? {
        guard !s.isEmpty, s.count <= 5, s.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(s), v <= 65535 else {
            return nil
        }
        return UInt16(v)
    }
}

extension Substring {
    /// Splits on the first `::`; nil when `::` appears more than once.
    fileprivate func components(separatedByDoubleColon _: Void) -> [Substring]? {
        var i = startIndex
        var found: String.Index?
        while i < endIndex {
            let next = index(after: i)
            if self[i] == ":" && next < endIndex && self[next] == ":" {
                if found != nil { return nil }
                found = i
                i = index(after: next)
                continue
            }
            i = next
        }
        guard let f = found else { return [self] }
        return [self[startIndex..<f], self[index(f, offsetBy: 2)...]]
    }
}
