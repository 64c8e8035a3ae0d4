/// The path a route's `path` and `path_prefix` conditions see: RFC 3986 normalization, so that
/// `/./admin`, `//admin`, `/%61dmin` and `/public/../admin` all match a rule written for `/admin`.
///
/// In one pass, in this order of meaning (RFC 3986 6.2.2):
/// - percent-escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded (`%61` → `a`,
///   `%2e` → `.`, so `%2e%2e` is a `..` segment); other escapes are kept with uppercase hex digits
///   (`%2f` → `%2F`: an encoded `/` stays data, never a separator); a `%` not followed by two hex
///   digits is data too and is written `%25` (so `/%%361` becomes `/%2561`, not `/%61`, and
///   normalizing twice gives the same path: no double decoding between two normalizing proxies);
/// - empty segments are merged (`//` → `/`), a trailing `/` is kept;
/// - dot segments are removed (5.2.4): `.` is dropped, `..` drops the segment before it and never
///   climbs above the root (`/../a` → `/a`); a path ending in `/.` or `/..` keeps a trailing `/`;
/// - case is kept (`/ADMIN` stays `/ADMIN`: paths are case-sensitive, RFC 3986 6.2.2.1).
///
/// A path that does not start with `/` (`*`, or an empty absolute-form path) is left as it is.
/// The normalized path is at most `capacity(for:)` bytes; nothing here allocates.
public enum PathNormalizer {
    /// True when normalizing `path` may change it: it contains `%`, `//` or `/.`. Most paths do
    /// not, and are matched as they are without copying (`/style.css` has no `/.`).
    @inlinable
    public static func needsNormalization(_ path: UnsafeRawBufferPointer) -> Bool {
        var previousSlash = false
        for b in path {
            if b == UInt8(ascii: "%") { return true }
            if previousSlash && (b == UInt8(ascii: "/") || b == UInt8(ascii: ".")) { return true }
            previousSlash = b == UInt8(ascii: "/")
        }
        return false
    }

    /// Bytes `normalize` may need for a path of `count` bytes: a bare `%` becomes `%25`, and a
    /// last segment gets its closing `/` before it is judged.
    @inlinable
    public static func capacity(for count: Int) -> Int { 3 * count + 1 }

    /// Writes the normalized form of `path` to `out`, which must hold at least
    /// `capacity(for: path.count)` bytes, and returns its length. A path not starting with `/` is
    /// copied unchanged.
    public static func normalize(_ path: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int {
        precondition(out.count >= capacity(for: path.count), "the output needs capacity(for: path.count) bytes")
        let count = path.count
        guard count > 0, path[0] == UInt8(ascii: "/") else {
            if count > 0 { out.baseAddress!.copyMemory(from: path.baseAddress!, byteCount: count) }
            return count
        }
        // `out[0..<n]` always ends with `/` between segments; a segment is written after it and
        // then judged: `.` and `..` are taken back out, anything else gets its closing `/`.
        out[0] = UInt8(ascii: "/")
        var n = 1
        var i = 1
        var lastWasSegment = false
        while i <= count {
            // One segment: input up to the next `/` (or the end), decoded into out[segStart..<n].
            let segStart = n
            var dots = 0       // decoded `.` bytes in the segment
            var other = false  // any other byte
            while i < count && path[i] != UInt8(ascii: "/") {
                var b = path[i]
                if b == UInt8(ascii: "%"), i + 2 < count,
                   let hi = hexValue(path[i + 1]), let lo = hexValue(path[i + 2]) {
                    let decoded = hi << 4 | lo
                    if isUnreserved(decoded) {
                        b = decoded
                        i += 3
                    } else {
                        out[n] = UInt8(ascii: "%")
                        out[n + 1] = upperHex(hi)
                        out[n + 2] = upperHex(lo)
                        n += 3
                        i += 3
                        other = true
                        continue
                    }
                } else if b == UInt8(ascii: "%") {
                    out[n] = UInt8(ascii: "%")
                    out[n + 1] = UInt8(ascii: "2")
                    out[n + 2] = UInt8(ascii: "5")
                    n += 3
                    i += 1
                    other = true
                    continue
                } else {
                    i += 1
                }
                if b == UInt8(ascii: ".") { dots += 1 } else { other = true }
                out[n] = b
                n += 1
            }
            let length = n - segStart
            if length == 0 {
                // Empty segment: merged (and at the end, the trailing `/` already written stays).
                lastWasSegment = false
            } else if !other && dots == 1 {
                n = segStart
                lastWasSegment = false
            } else if !other && dots == 2 {
                n = segStart
                if n > 1 {
                    // Drop the previous segment: back over its closing `/`, then to the `/` before it.
                    n -= 1
                    while n > 0 && out[n - 1] != UInt8(ascii: "/") { n -= 1 }
                }
                lastWasSegment = false
            } else {
                out[n] = UInt8(ascii: "/")
                n += 1
                lastWasSegment = true
            }
            i += 1  // past the `/` (or past the end)
        }
        if lastWasSegment { n -= 1 }  // `/a/b/` became `/a/b/`; `/a/b` must not gain a `/`
        return n
    }

    /// Appends the normalized form of `path` to `out`. Allocates only if `out` must grow.
    public static func append(normalizing path: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        let start = out.count
        let room = capacity(for: path.count)
        out.append(contentsOf: repeatElement(0, count: room))
        let n = out.withUnsafeMutableBytes { normalize(path, into: UnsafeMutableRawBufferPointer(rebasing: $0[start...])) }
        out.removeLast(room - n)
    }

    /// The normalized form of `path` (control plane and tests).
    public static func normalized(_ path: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        path.withUnsafeBytes { append(normalizing: $0, to: &out) }
        return out
    }

    /// The normalized form of `path` (control plane and tests).
    public static func normalized(_ path: String) -> String {
        String(decoding: normalized(Array(path.utf8)), as: UTF8.self)
    }

    @inline(__always)
    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    @inline(__always)
    static func upperHex(_ v: UInt8) -> UInt8 { v < 10 ? UInt8(ascii: "0") + v : UInt8(ascii: "A") + v - 10 }

    /// RFC 3986 `unreserved`: ALPHA / DIGIT / "-" / "." / "_" / "~".
    @inline(__always)
    static func isUnreserved(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}
