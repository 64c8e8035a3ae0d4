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
    /// Number of Connection fields (their tokens are handled by `applyConnectionOptions`).
    var connectionFields = 0
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

    // MARK: Field lines

    /// Scans one line of a field section starting at `start`, reading no further than `end`.
    ///
    /// Accepts `field-name ":" OWS field-value OWS CRLF` with a non-empty token name and value
    /// bytes from VCHAR, obs-text, SP and HTAB, or the empty line `CRLF`. Rejects obs-fold,
    /// whitespace before the colon, and bare CR or LF anywhere.
    @inline(__always)
    static func scanFieldLine(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int,
                              _ cls: ByteClassTable) -> FieldLineScan {
        var p = start
        guard p < end else { return .needMore }
        let first = base[p]
        if first == cr {
            guard p + 1 < end else { return .needMore }
            return base[p + 1] == lf ? .endOfSection(p + 2) : .invalid(.badFieldValue)
        }
        if first == lf { return .invalid(.badFieldValue) }
        if first == sp || first == htab { return .invalid(.obsFold) }

        // field-name = token
        var underscore = false
        while p < end && cls.has(base[p], tchar) {
            if base[p] == UInt8(ascii: "_") { underscore = true }
            p += 1
        }
        guard p < end else { return .needMore }
        let nameEnd = p
        if base[p] != colon {
            if p == start || !cls.has(base[p], whitespace) { return .invalid(.badFieldName) }
            while p < end && cls.has(base[p], whitespace) { p += 1 }
            guard p < end else { return .needMore }
            return .invalid(base[p] == colon ? .spaceBeforeColon : .badFieldName)
        }
        if p == start { return .invalid(.badFieldName) }
        p += 1

        // OWS field-value OWS
        while p < end && cls.has(base[p], whitespace) { p += 1 }
        let valueStart = p
        // Eight bytes at a time while none is a CTL or DEL (obs-text passes), then bytewise.
        while p + 8 <= end {
            let w = load8(base, p)
            if hasByteBelow(w, 0x20) || hasByte(w, 0x7F) { break }
            p += 8
        }
        while p < end && cls.has(base[p], fieldChar) { p += 1 }
        guard p < end else { return .needMore }
        var valueEnd = p
        while valueEnd > valueStart && cls.has(base[valueEnd - 1], whitespace) { valueEnd -= 1 }
        guard base[p] == cr else { return .invalid(.badFieldValue) }
        guard p + 1 < end else { return .needMore }
        guard base[p + 1] == lf else { return .invalid(.badFieldValue) }
        return .field(FieldLine(nameStart: start, nameEnd: nameEnd, nameHasUnderscore: underscore,
                                valueStart: valueStart, valueEnd: valueEnd, next: p + 2))
    }

    /// What a field name means to the parser beyond its flags.
    enum FieldKind {
        /// Nothing the parser acts on.
        case other
        /// Connection (tokens read after the section).
        case connection
        /// Transfer-Encoding (codings counted).
        case transferEncoding
        /// Content-Length (value parsed and merged).
        case contentLength
        /// Host (counted; validated by the request parser).
        case host
        /// Expect (`100-continue` noted).
        case expect
        /// Upgrade (the first one's index noted).
        case upgrade
    }

    /// Flags and kind of a field from its name (case-insensitive).
    @inline(__always)
    static func classify(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int)
        -> (FieldFlags, FieldKind) {
        switch end - start {
        case 2:
            if equalsLowercase(base, start, end, "te") { return (.hopByHop, .other) }
        case 4:
            if equalsLowercase(base, start, end, "host") { return (.host, .host) }
        case 6:
            if equalsLowercase(base, start, end, "cookie") { return (.cookie, .other) }
            if equalsLowercase(base, start, end, "expect") { return (.expect, .expect) }
        case 7:
            if equalsLowercase(base, start, end, "trailer") { return (.hopByHop, .other) }
            if equalsLowercase(base, start, end, "upgrade") { return (.hopByHop, .upgrade) }
        case 9:
            if equalsLowercase(base, start, end, "forwarded") { return (.clientForwarding, .other) }
            if equalsLowercase(base, start, end, "x-real-ip") { return (.clientForwarding, .other) }
        case 10:
            if equalsLowercase(base, start, end, "connection") { return (.hopByHop, .connection) }
            if equalsLowercase(base, start, end, "keep-alive") { return (.hopByHop, .other) }
        case 12:
            if equalsLowercase(base, start, end, "x-request-id") { return (.requestID, .other) }
        case 14:
            if equalsLowercase(base, start, end, "content-length") {
                return (.contentLength, .contentLength)
            }
        case 15:
            if equalsLowercase(base, start, end, "x-forwarded-for") { return (.xForwardedFor, .other) }
        case 16:
            if equalsLowercase(base, start, end, "proxy-connection") { return (.hopByHop, .other) }
            if equalsLowercase(base, start, end, "x-forwarded-host") { return (.xForwardedOther, .other) }
        case 17:
            if equalsLowercase(base, start, end, "transfer-encoding") {
                return (.hopByHop, .transferEncoding)
            }
            if equalsLowercase(base, start, end, "x-forwarded-proto") { return (.xForwardedOther, .other) }
        default:
            break
        }
        return ([], .other)
    }

    /// Calls `body(start, end)` for each non-empty element of the comma-separated list in
    /// `base[start..<end]`, with OWS around elements removed (RFC 9110 5.6.1: empty elements
    /// are ignored). Stops early and returns false when `body` returns false.
    @inline(__always)
    static func forEachListElement(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int,
                                   _ cls: ByteClassTable,
                                   _ body: (Int, Int) -> Bool) -> Bool {
        var p = start
        while p < end {
            while p < end && (base[p] == comma || cls.has(base[p], whitespace)) { p += 1 }
            if p == end { break }
            let elementStart = p
            var elementEnd = p
            while p < end && base[p] != comma {
                if !cls.has(base[p], whitespace) { elementEnd = p + 1 }
                p += 1
            }
            if !body(elementStart, elementEnd) { return false }
        }
        return true
    }

    /// True when `base[start..<end]` is a non-empty token.
    @inline(__always)
    static func isToken(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int,
                        _ cls: ByteClassTable) -> Bool {
        guard start < end else { return false }
        var p = start
        while p < end {
            if !cls.has(base[p], tchar) { return false }
            p += 1
        }
        return true
    }

    /// Parses the field lines of a head from `start` up to its empty line, appending one
    /// `FieldSpan` per field (flags set by name) and filling `summary`.
    ///
    /// Reads no further than `end`. Returns `.complete(offset after the empty line)`,
    /// `.needMore` when `end` is reached first, or `.invalid`. Content-Length values are
    /// checked here (`.badContentLength`, `.conflictingContentLength`); what the other
    /// framing fields mean is left to the caller.
    static func parseFieldSection(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int,
                                  maxFields: Int, _ cls: ByteClassTable,
                                  fields: inout [FieldSpan],
                                  summary: inout FieldSectionSummary) -> FieldSectionScan {
        var p = start
        while true {
            switch scanFieldLine(base, p, end, cls) {
            case .needMore:
                return .needMore(resumeAt: p)
            case .invalid(let error):
                return .invalid(error)
            case .endOfSection(let next):
                return .complete(next)
            case .field(let line):
                if fields.count == maxFields { return .invalid(.tooManyFields) }
                var (flags, kind) = classify(base, line.nameStart, line.nameEnd)
                if line.nameHasUnderscore { flags.insert(.underscoreName) }
                switch kind {
                case .other:
                    break
                case .host:
                    if summary.hostCount == 0 { summary.hostIndex = fields.count }
                    summary.hostCount += 1
                case .connection:
                    summary.connectionFields += 1
                case .upgrade:
                    if summary.upgradeIndex < 0 { summary.upgradeIndex = fields.count }
                case .expect:
                    if equalsLowercase(base, line.valueStart, line.valueEnd, "100-continue") {
                        summary.expectContinue = true
                    }
                case .transferEncoding:
                    summary.transferEncodingFields += 1
                    _ = forEachListElement(base, line.valueStart, line.valueEnd, cls) { s, e in
                        summary.transferCodings += 1
                        summary.lastCodingIsChunked = equalsLowercase(base, s, e, "chunked")
                        if summary.lastCodingIsChunked { summary.chunkedCodings += 1 }
                        return true
                    }
                case .contentLength:
                    if let error = mergeContentLength(base, line.valueStart, line.valueEnd, cls,
                                                      &summary) {
                        return .invalid(error)
                    }
                }
                fields.append(FieldSpan(
                    name: ByteSpan(start: line.nameStart, count: line.nameEnd - line.nameStart),
                    value: ByteSpan(start: line.valueStart, count: line.valueEnd - line.valueStart),
                    flags: flags))
                p = line.next
            }
        }
    }

    /// Parses one Content-Length value (`1*DIGIT`, or a comma list of identical values) and
    /// merges it with the values seen before; returns the error, or nil when consistent.
    static func mergeContentLength(_ base: UnsafePointer<UInt8>, _ start: Int, _ end: Int,
                                   _ cls: ByteClassTable,
                                   _ summary: inout FieldSectionSummary) -> HTTPParseError? {
        // Strict: every element, including the ones a lenient list parser would drop as
        // empty, must be 1*DIGIT.
        var p = start
        while true {
            var elementStart = p
            while elementStart < end && cls.has(base[elementStart], whitespace) { elementStart += 1 }
            var elementEnd = elementStart
            while elementEnd < end && base[elementEnd] != comma { elementEnd += 1 }
            let nextElement = elementEnd + 1
            while elementEnd > elementStart && cls.has(base[elementEnd - 1], whitespace) {
                elementEnd -= 1
            }
            guard let value = parseDecimal(base, elementStart, elementEnd, cls) else {
                return .badContentLength
            }
            if summary.hasContentLength {
                if summary.contentLength != value { return .conflictingContentLength }
            } else {
                summary.hasContentLength = true
                summary.contentLength = value
            }
            if nextElement > end { return nil }
            p = nextElement
        }
    }

    /// Reads the tokens of every Connection field: notes `close` and `keep-alive`, and marks
    /// every field whose name is listed as hop-by-hop. A Connection element that is not a
    /// token makes the head invalid (`.badFieldValue`).
    ///
    /// Host is never marked: it cannot be hop-by-hop, and a client listing it would otherwise
    /// make the proxy forward an HTTP/1.1 request without Host.
    static func applyConnectionOptions(_ base: UnsafePointer<UInt8>, _ cls: ByteClassTable,
                                       fields: inout [FieldSpan],
                                       options: inout ConnectionOptions) -> HTTPParseError? {
        let count = fields.count
        var i = 0
        while i < count {
            let field = fields[i]
            i += 1
            let nameStart = Int(field.name.start)
            guard field.flags.contains(.hopByHop),
                  equalsLowercase(base, nameStart, nameStart + Int(field.name.count), "connection")
            else { continue }
            let valueStart = Int(field.value.start)
            let ok = forEachListElement(base, valueStart, valueStart + Int(field.value.count),
                                        cls) { s, e in
                guard isToken(base, s, e, cls) else { return false }
                if equalsLowercase(base, s, e, "close") {
                    options.close = true
                } else if equalsLowercase(base, s, e, "keep-alive") {
                    options.keepAlive = true
                } else if equalsLowercase(base, s, e, "upgrade") {
                    options.upgrade = true
                }
                var j = 0
                while j < count {
                    let name = fields[j].name
                    let ns = Int(name.start)
                    if fields[j].flags.isDisjoint(with: [.hopByHop, .host])
                        && equalsIgnoringCase(base, ns, ns + Int(name.count), s, e) {
                        fields[j].flags.insert(.hopByHop)
                    }
                    j += 1
                }
                return true
            }
            if !ok { return .badFieldValue }
        }
        return nil
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
