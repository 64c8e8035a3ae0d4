/// Which trailer fields may pass through the proxy.
///
/// RFC 9110 6.5.1: a sender must not put in a trailer section fields that framing, routing,
/// request modifiers, authentication, response control or the payload's processing depend on,
/// and a recipient must not merge such fields into the header section. Sluice drops them, and
/// also every hop-by-hop and forwarding field, its own fields (`X-Request-Id`, `X-Sluice-*`, the
/// route's cohort header) and names with `_`, in both directions; the rest is forwarded as is.
public enum TrailerFilter {
    /// Lowercased names never forwarded in a trailer section.
    static let forbidden: [[UInt8]] = [
        // Framing and routing.
        "content-length", "transfer-encoding", "trailer", "host",
        // Hop-by-hop and forwarding.
        "connection", "keep-alive", "proxy-connection", "te", "upgrade", "via", "forwarded",
        "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-real-ip",
        // Request modifiers: controls, conditionals, content negotiation.
        "cache-control", "expect", "max-forwards", "pragma", "range", "if-match", "if-none-match",
        "if-modified-since", "if-unmodified-since", "if-range", "accept", "accept-charset",
        "accept-encoding", "accept-language",
        // Authentication and state.
        "authorization", "proxy-authorization", "www-authenticate", "proxy-authenticate",
        "authentication-info", "proxy-authentication-info", "cookie", "set-cookie",
        // Response control.
        "age", "expires", "date", "location", "retry-after", "vary", "warning",
        // Sluice's own.
        "x-request-id",
    ].map { Array($0.utf8) }

    /// True when the trailer field named `name` (as received) may be forwarded. `extra` is a
    /// lowercased name also dropped (the route's cohort header), empty for none.
    public static func allows(_ name: UnsafeRawBufferPointer, extra: [UInt8]) -> Bool {
        if name.isEmpty { return false }
        var i = 0
        while i < name.count {
            if name[i] == UInt8(ascii: "_") { return false }
            i += 1
        }
        if hasPrefix(name, "content-") || hasPrefix(name, "x-sluice-") || hasPrefix(name, "proxy-") { return false }
        if !extra.isEmpty && equals(name, extra) { return false }
        for f in forbidden where f.count == name.count {
            if equals(name, f) { return false }
        }
        return true
    }

    /// Appends the fields of `trailer` (complete `name: value CRLF` lines, as `ChunkedDecoder`
    /// validated them) that `allows` lets through.
    public static func appendAllowed(_ trailer: UnsafeRawBufferPointer, extra: [UInt8], to out: inout [UInt8]) {
        var lineStart = 0
        let n = trailer.count
        while lineStart < n {
            var lineEnd = lineStart
            while lineEnd < n && trailer[lineEnd] != 0x0A { lineEnd += 1 }
            let next = min(lineEnd + 1, n)
            var colon = lineStart
            while colon < lineEnd && trailer[colon] != UInt8(ascii: ":") { colon += 1 }
            let name = UnsafeRawBufferPointer(rebasing: trailer[lineStart..<colon])
            if colon < lineEnd && allows(name, extra: extra) {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: trailer[lineStart..<next]))
            }
            lineStart = next
        }
    }

    private static func equals(_ name: UnsafeRawBufferPointer, _ lowercased: [UInt8]) -> Bool {
        guard name.count == lowercased.count else { return false }
        for i in 0..<name.count {
            var c = name[i]
            if c >= 0x41 && c <= 0x5A { c |= 0x20 }
            if c != lowercased[i] { return false }
        }
        return true
    }

    private static func hasPrefix(_ name: UnsafeRawBufferPointer, _ prefix: StaticString) -> Bool {
        let p = UnsafeRawBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount)
        guard name.count >= p.count else { return false }
        for i in 0..<p.count {
            var c = name[i]
            if c >= 0x41 && c <= 0x5A { c |= 0x20 }
            if c != p[i] { return false }
        }
        return true
    }
}
