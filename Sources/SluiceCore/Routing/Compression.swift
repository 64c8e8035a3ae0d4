/// A route's response compression (`compression:`): gzip at `level` for the listed media types.
public struct CompressionSpec: Sendable, Equatable {
    /// zlib level 1 (fastest) ... 9 (smallest).
    public var level: Int
    /// Responses with a known length below this are sent as they are.
    public var minBytes: UInt64
    /// Media types compressed: `type/subtype` or `type/*`, lowercased.
    public var types: [String]
    /// `types` as bytes, for matching without allocating.
    let typeBytes: [[UInt8]]

    /// The defaults of the config key.
    public static let defaultTypes = ["text/*", "application/json", "application/javascript", "image/svg+xml"]

    /// Creates a spec.
    public init(level: Int = 5, minBytes: UInt64 = 1024, types: [String] = CompressionSpec.defaultTypes) {
        self.level = level
        self.minBytes = minBytes
        self.types = types.map { $0.lowercased() }
        self.typeBytes = self.types.map { Array($0.utf8) }
    }
}

/// Whether a response is gzip-compressed: pure decisions on the request's Accept-Encoding and the
/// response head (the compressor itself is IO, in SluiceProxy).
public enum CompressionPolicy {
    /// True when an Accept-Encoding value accepts gzip: `gzip` (or `x-gzip`) with q > 0, or `*`
    /// with q > 0 when gzip is not listed (RFC 9110 12.5.3). `gzip;q=0` refuses.
    public static func acceptsGzip(_ value: UnsafeRawBufferPointer) -> Bool {
        var gzipQ: Bool? = nil
        var starQ: Bool? = nil
        var p = 0
        let n = value.count
        while p < n {
            // One element: coding [; q=value] up to a comma.
            while p < n && (value[p] == 0x20 || value[p] == 0x09 || value[p] == UInt8(ascii: ",")) { p += 1 }
            let start = p
            while p < n && value[p] != UInt8(ascii: ",") && value[p] != UInt8(ascii: ";") && value[p] != 0x20 && value[p] != 0x09 { p += 1 }
            let coding = UnsafeRawBufferPointer(rebasing: value[start..<p])
            var accepted = true
            while p < n && value[p] != UInt8(ascii: ",") {
                if value[p] == UInt8(ascii: "=") && p > 0 && (value[p - 1] | 0x20) == UInt8(ascii: "q") {
                    accepted = qIsPositive(value, p + 1)
                }
                p += 1
            }
            if equalsLowercase(coding, "gzip") || equalsLowercase(coding, "x-gzip") {
                gzipQ = (gzipQ ?? false) || accepted
            } else if equalsLowercase(coding, "*") {
                starQ = accepted
            }
        }
        if let gzipQ { return gzipQ }
        return starQ ?? false
    }

    /// True when the response may be compressed for this request: the client accepts gzip, the
    /// request is not HEAD, the status has a body and is not 206, the response is not already
    /// encoded and not `Cache-Control: no-transform`, its media type is listed, and its length is
    /// unknown or at least `minBytes`.
    public static func compresses(_ spec: CompressionSpec, acceptsGzip: Bool, method: HTTPMethod,
                                  head: ResponseHead, bytes: UnsafeRawBufferPointer) -> Bool {
        guard acceptsGzip, method != .head else { return false }
        let status = head.status
        guard status >= 200, status != 204, status != 206, status != 304 else { return false }
        switch head.framing {
        case .none: return false
        case .contentLength(let n): if n < spec.minBytes || n == 0 { return false }
        case .chunked, .untilClose: break
        }
        var typeOK = false
        for f in head.fields {
            let name = UnsafeRawBufferPointer(rebasing: bytes[f.name.range])
            let value = UnsafeRawBufferPointer(rebasing: bytes[f.value.range])
            if equalsLowercase(name, "content-encoding") {
                if !equalsLowercase(value, "identity") { return false }
            } else if equalsLowercase(name, "cache-control") {
                if contains(value, "no-transform") { return false }
            } else if equalsLowercase(name, "content-type") {
                typeOK = matchesType(value, spec.typeBytes)
            }
        }
        return typeOK
    }

    /// True when the media type of a Content-Type value (before `;`) matches a listed type.
    static func matchesType(_ value: UnsafeRawBufferPointer, _ types: [[UInt8]]) -> Bool {
        var end = 0
        while end < value.count && value[end] != UInt8(ascii: ";") && value[end] != 0x20 { end += 1 }
        for t in types {
            if t.count >= 2 && t[t.count - 1] == UInt8(ascii: "*") && t[t.count - 2] == UInt8(ascii: "/") {
                let prefix = t.count - 1  // "text/"
                if end > prefix && lowerEquals(value, 0, t, prefix) { return true }
            } else if end == t.count && lowerEquals(value, 0, t, t.count) {
                return true
            }
        }
        return false
    }

    private static func qIsPositive(_ v: UnsafeRawBufferPointer, _ start: Int) -> Bool {
        // qvalue = "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ]: positive unless all digits are 0.
        var p = start
        while p < v.count && (v[p] == 0x20 || v[p] == 0x09) { p += 1 }
        while p < v.count && v[p] != UInt8(ascii: ",") && v[p] != UInt8(ascii: ";") {
            let b = v[p]
            if b >= UInt8(ascii: "1") && b <= UInt8(ascii: "9") { return true }
            p += 1
        }
        return false
    }

    private static func lowerEquals(_ v: UnsafeRawBufferPointer, _ at: Int, _ t: [UInt8], _ count: Int) -> Bool {
        guard v.count >= at + count else { return false }
        for i in 0..<count {
            var c = v[at + i]
            if c >= 0x41 && c <= 0x5A { c |= 0x20 }
            if c != t[i] { return false }
        }
        return true
    }

    private static func equalsLowercase(_ v: UnsafeRawBufferPointer, _ s: StaticString) -> Bool {
        guard v.count == s.utf8CodeUnitCount else { return false }
        for i in 0..<v.count {
            var c = v[i]
            if c >= 0x41 && c <= 0x5A { c |= 0x20 }
            if c != s.utf8Start[i] { return false }
        }
        return true
    }

    private static func contains(_ v: UnsafeRawBufferPointer, _ s: StaticString) -> Bool {
        let n = s.utf8CodeUnitCount
        guard v.count >= n else { return false }
        var i = 0
        while i + n <= v.count {
            var same = true
            for j in 0..<n {
                var c = v[i + j]
                if c >= 0x41 && c <= 0x5A { c |= 0x20 }
                if c != s.utf8Start[j] { same = false; break }
            }
            if same { return true }
            i += 1
        }
        return false
    }
}
