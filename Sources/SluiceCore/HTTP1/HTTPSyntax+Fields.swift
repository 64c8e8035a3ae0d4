/// The field-section parser shared by request heads, response heads and chunked trailers: one
/// field line at a time, names classified as they are read, Content-Length and Connection
/// options checked.
extension HTTPSyntax {

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
                    summary.connectionIsKeepAlive = summary.connectionFields == 1
                        && equalsLowercase(base, line.valueStart, line.valueEnd, "keep-alive")
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
                    // A Keep-Alive field is hop-by-hop already: no other field has this name.
                    return true
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
}
