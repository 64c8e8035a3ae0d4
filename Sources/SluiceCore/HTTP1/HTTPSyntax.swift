// Byte classes and small scanners shared by the request parser, the response parser and the
// chunked decoder (RFC 9110 section 5, RFC 9112 sections 2-7). Everything here works on raw
// bytes through pointers and allocates nothing.

/// A read-only 256-entry table of byte-class bits (see `HTTPSyntax`).
///
/// Unsafe-pointer contract: `bits` points at 256 bytes allocated once for the life of the
/// process and never written after initialisation, so reading it from any thread is safe.
struct ByteClassTable {
    /// The 256 class bytes, indexed by byte value.
    let bits: UnsafePointer<UInt8>

    /// True when byte `b` has every bit of `mask`.
    @inline(__always)
    func has(_ b: UInt8, _ mask: UInt8) -> Bool { bits[Int(b)] & mask != 0 }
}

/// Where a field line's name and (OWS-trimmed) value are, as offsets into the buffer.
struct FieldLine {
    /// Offset of the name's first byte (the line's first byte).
    var nameStart: Int
    /// Offset just after the name.
    var nameEnd: Int
    /// The name contains `_` (found while scanning it, so nobody has to scan it again).
    var nameHasUnderscore: Bool
    /// Offset of the value's first non-OWS byte.
    var valueStart: Int
    /// Offset just after the value's last non-OWS byte (== `valueStart` when empty).
    var valueEnd: Int
    /// Offset just after the line's CRLF.
    var next: Int
}

/// The outcome of scanning one line of a field section.
enum FieldLineScan {
    /// A well-formed `name: value CRLF` line.
    case field(FieldLine)
    /// The empty line that ends the section; the payload is the offset just after its CRLF.
    case endOfSection(Int)
    /// The line is not complete within the bytes given.
    case needMore
    /// The line can never be valid.
    case invalid(HTTPParseError)
}

/// What a field section said about framing, connection handling and Host, gathered while its
/// lines were parsed. Filled by `HTTPSyntax.parseFieldSection`.
struct FieldSectionSummary {
    /// Content-Length value agreed by every Content-Length field (valid when `hasContentLength`).
    var contentLength: UInt64 = 0
    /// At least one Content-Length field was seen.
    var hasContentLength = false
    /// Number of Transfer-Encoding fields.
    var transferEncodingFields = 0
    /// Non-empty transfer codings listed across all Transfer-Encoding fields.
    var transferCodings = 0
    /// How many of those codings are exactly `chunked`.
    var chunkedCodings = 0
    /// The last coding listed (in the last Transfer-Encoding field) is `chunked`.
    var lastCodingIsChunked = false
    /// Number of Host fields.
    var hostCount = 0
    /// Index in `fields` of the first Host field, -1 when none.
    var hostIndex = -1
    /// Number of Connection fields (their tokens are handled by `applyConnectionOptions`, unless
    /// `connectionIsKeepAlive`).
    var connectionFields = 0
    /// The only Connection field so far is exactly `keep-alive` (case-insensitive): the common
    /// case, which needs no pass over the fields (a Keep-Alive field is hop-by-hop already).
    var connectionIsKeepAlive = false
    /// An Expect field equal to `100-continue` was seen.
    var expectContinue = false
    /// Index in `fields` of the first Upgrade field, -1 when none.
    var upgradeIndex = -1

    /// Nothing seen yet.
    init() {}

    /// True when the codings are exactly one `chunked` (the only Transfer-Encoding we accept).
    @inline(__always)
    var transferEncodingIsChunked: Bool { transferCodings == 1 && chunkedCodings == 1 }
}

/// The outcome of parsing a whole field section.
enum FieldSectionScan {
    /// The section ended; the payload is the offset just after its empty line.
    case complete(Int)
    /// The section is not complete within the bytes given; the payload is the offset of the
    /// first line not yet complete (where a later call can resume).
    case needMore(resumeAt: Int)
    /// The section can never be valid.
    case invalid(HTTPParseError)
}

/// Connection options that change how the connection is handled.
struct ConnectionOptions {
    /// A `close` token was listed.
    var close = false
    /// A `keep-alive` token was listed.
    var keepAlive = false
    /// An `upgrade` token was listed.
    var upgrade = false
    /// No options seen yet.
    init() {}
}

/// Shared HTTP/1 syntax: byte classes, case-insensitive comparison, number parsing, and the
/// field-section parser used for request heads, response heads and chunked trailers.
enum HTTPSyntax {
    // MARK: Byte classes

    /// `tchar` (RFC 9110 5.6.2): the characters of a token (method, field name, coding).
    static let tchar: UInt8 = 1 << 0
    /// Field value bytes: VCHAR, obs-text (0x80-0xFF), SP, HTAB.
    static let fieldChar: UInt8 = 1 << 1
    /// Request-target bytes: visible ASCII 0x21-0x7E except `#` (a fragment is never sent).
    static let targetChar: UInt8 = 1 << 2
    /// reg-name bytes (RFC 3986): unreserved, sub-delims and `%` (checked for two HEXDIG).
    static let regNameChar: UInt8 = 1 << 3
    /// `0-9`.
    static let digit: UInt8 = 1 << 4
    /// `0-9 A-F a-f`.
    static let hexDigit: UInt8 = 1 << 5
    /// qdtext of a quoted-string: HTAB, SP, 0x21, 0x23-0x5B, 0x5D-0x7E, obs-text.
    static let qdtext: UInt8 = 1 << 6
    /// SP or HTAB (OWS / BWS).
    static let whitespace: UInt8 = 1 << 7

    /// The shared byte-class table.
    ///
    /// `nonisolated(unsafe)`: the pointee is written once here, before the pointer is
    /// published by the lazy global initialiser, and is only read afterwards.
    nonisolated(unsafe) static let table: ByteClassTable = {
        let bits = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
        for i in 0..<256 {
            let b = UInt8(i)
            var c: UInt8 = 0
            let isAlpha = (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
            let isDigit = b >= 0x30 && b <= 0x39
            let isHexLetter = (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)
            let tcharPunct: [UInt8] = Array("!#$%&'*+-.^_`|~".utf8)
            if isAlpha || isDigit || tcharPunct.contains(b) { c |= tchar }
            if (b >= 0x21 && b <= 0x7E) || b >= 0x80 || b == 0x20 || b == 0x09 { c |= fieldChar }
            if b >= 0x21 && b <= 0x7E && b != UInt8(ascii: "#") { c |= targetChar }
            let regNamePunct: [UInt8] = Array("-._~!$&'()*+,;=%".utf8)
            if isAlpha || isDigit || regNamePunct.contains(b) { c |= regNameChar }
            if isDigit { c |= digit }
            if isDigit || isHexLetter { c |= hexDigit }
            if b == 0x09 || b == 0x20 || b == 0x21 || (b >= 0x23 && b <= 0x5B)
                || (b >= 0x5D && b <= 0x7E) || b >= 0x80 {
                c |= qdtext
            }
            if b == 0x20 || b == 0x09 { c |= whitespace }
            bits[i] = c
        }
        return ByteClassTable(bits: UnsafePointer(bits))
    }()

    /// ASCII carriage return.
    static let cr = UInt8(ascii: "\r")
    /// ASCII line feed.
    static let lf = UInt8(ascii: "\n")
    /// ASCII space.
    static let sp = UInt8(ascii: " ")
    /// ASCII horizontal tab.
    static let htab = UInt8(ascii: "\t")
    /// ASCII colon.
    static let colon = UInt8(ascii: ":")
    /// ASCII comma.
    static let comma = UInt8(ascii: ",")

    // MARK: Comparison and numbers

    /// ASCII lowercase of one byte (other bytes unchanged).
    @inline(__always)
    static func lower(_ b: UInt8) -> UInt8 {
        (b &- 0x41) < 26 ? b | 0x20 : b
    }

    /// True when `base[start..<end]` equals `literal` ignoring ASCII case.
    ///
    /// `literal` must be lowercase ASCII; `base[start..<end]` must be readable.
    @inline(__always)
    static func equalsLowercase(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int,
                                _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard end - start == n else { return false }
        let lit = literal.utf8Start
        var i = 0
        while i < n {
            if lower(base[start + i]) != lit[i] { return false }
            i += 1
        }
        return true
    }

    /// True when `base[start..<end]` equals `literal` exactly (case-sensitive).
    @inline(__always)
    static func equals(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int,
                       _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard end - start == n else { return false }
        let lit = literal.utf8Start
        var i = 0
        while i < n {
            if base[start + i] != lit[i] { return false }
            i += 1
        }
        return true
    }

    /// True when the two ranges hold the same bytes ignoring ASCII case.
    @inline(__always)
    static func equalsIgnoringCase(_ base: UnsafePointer<UInt8>, _ a: Int, _ aEnd: Int,
                                   _ b: Int, _ bEnd: Int) -> Bool {
        let n = aEnd - a
        guard bEnd - b == n else { return false }
        var i = 0
        while i < n {
            if lower(base[a + i]) != lower(base[b + i]) { return false }
            i += 1
        }
        return true
    }

    /// Parses `1*DIGIT` in `base[start..<end]`; nil when empty, not all digits, or over UInt64.
    @inline(__always)
    static func parseDecimal(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int,
                             _ cls: ByteClassTable) -> UInt64? {
        guard start < end else { return nil }
        var value: UInt64 = 0
        var i = start
        while i < end {
            let b = base[i]
            guard cls.has(b, digit) else { return nil }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(b &- 0x30))
            if o1 || o2 { return nil }
            value = s
            i += 1
        }
        return value
    }

    /// The value of one hex digit (the byte must be a HEXDIG).
    @inline(__always)
    static func hexValue(_ b: UInt8) -> UInt64 {
        b <= 0x39 ? UInt64(b &- 0x30) : UInt64((b | 0x20) &- 0x61 &+ 10)
    }

    // MARK: Eight bytes at a time

    /// 0x01 in every byte of a word.
    static let onesWord: UInt64 = 0x0101_0101_0101_0101
    /// 0x80 in every byte of a word.
    static let highsWord: UInt64 = 0x8080_8080_8080_8080

    /// Loads 8 bytes at `base + p` (any alignment); `base[p..<p+8]` must be readable.
    @inline(__always)
    static func load8(_ base: UnsafePointer<UInt8>, _ p: Int) -> UInt64 {
        UnsafeRawPointer(base + p).loadUnaligned(as: UInt64.self)
    }

    /// True when some byte of `w` is below `n` (n <= 0x80; bytes >= 0x80 never count).
    @inline(__always)
    static func hasByteBelow(_ w: UInt64, _ n: UInt8) -> Bool {
        (w &- onesWord &* UInt64(n)) & ~w & highsWord != 0
    }

    /// True when some byte of `w` equals `b`.
    @inline(__always)
    static func hasByte(_ w: UInt64, _ b: UInt8) -> Bool {
        let x = w ^ (onesWord &* UInt64(b))
        return (x &- onesWord) & ~x & highsWord != 0
    }

    /// True when `base[start..<end]` contains `b` (eight bytes at a time).
    @inline(__always)
    static func containsByte(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ b: UInt8) -> Bool {
        var p = start
        while p + 8 <= end {
            if hasByte(load8(base, p), b) { return true }
            p += 8
        }
        while p < end {
            if base[p] == b { return true }
            p += 1
        }
        return false
    }

    // MARK: Authority

    /// True when `base[start..<end]` is `host [":" port]` as allowed in Host and in the
    /// authority of an absolute-form target: a non-empty reg-name or IPv4 address (with
    /// valid `%HH` escapes) or a bracketed IPv6 literal, then optionally `:` and 1 to 5
    /// digits. Userinfo (`@`), an empty host and an empty port are rejected.
    static func isValidAuthority(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int,
                                 _ cls: ByteClassTable) -> Bool {
        guard start < end else { return false }
        var p = start
        if base[p] == UInt8(ascii: "[") {
            p += 1
            let inner = p
            while p < end {
                let b = base[p]
                if b == UInt8(ascii: "]") { break }
                guard cls.has(b, hexDigit) || b == colon || b == UInt8(ascii: ".") else {
                    return false
                }
                p += 1
            }
            guard p < end, p - inner >= 2 else { return false }
            p += 1
        } else {
            while p < end && base[p] != colon {
                let b = base[p]
                guard cls.has(b, regNameChar) else { return false }
                if b == UInt8(ascii: "%") {
                    guard p + 2 < end, cls.has(base[p + 1], hexDigit), cls.has(base[p + 2], hexDigit)
                    else { return false }
                    p += 2
                }
                p += 1
            }
            guard p > start else { return false }
        }
        if p == end { return true }
        guard base[p] == colon else { return false }
        p += 1
        let digits = end - p
        guard digits >= 1 && digits <= 5 else { return false }
        while p < end {
            guard cls.has(base[p], digit) else { return false }
            p += 1
        }
        return true
    }
}
