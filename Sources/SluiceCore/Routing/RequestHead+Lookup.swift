/// Header, cookie, query and host lookups on a parsed head, over the buffer it was parsed from.
///
/// Contract for every method: `bytes` is the buffer the head's spans point into. Nothing here
/// allocates; results are spans into `bytes`. Names passed as `UnsafeRawBufferPointer` are the
/// routing table's pre-lowercased byte strings.
extension RequestHead {
    /// Index into `fields` of the first field at or after `start` whose name equals
    /// `lowercasedName` ASCII case-insensitively; -1 when there is none.
    @inlinable
    public func fieldIndex(named lowercasedName: UnsafeRawBufferPointer, in bytes: UnsafeRawBufferPointer,
                           from start: Int = 0) -> Int {
        var i = start
        while i < fields.count {
            if RoutingBytes.equalsLowercased(bytes, fields[i].name, lowercasedName) { return i }
            i += 1
        }
        return -1
    }

    /// The value of the first field named `lowercasedName` (case-insensitive); nil when absent.
    @inlinable
    public func fieldValue(named lowercasedName: UnsafeRawBufferPointer, in bytes: UnsafeRawBufferPointer) -> ByteSpan? {
        let i = fieldIndex(named: lowercasedName, in: bytes)
        return i < 0 ? nil : fields[i].value
    }

    /// The value of the first field named `name` (any case); nil when absent. Convenience for
    /// tools and tests: lowercases `name` on each call.
    public func fieldValue(named name: String, in bytes: UnsafeRawBufferPointer) -> ByteSpan? {
        let lowered = RoutingBytes.lowercased(Array(name.utf8))
        return lowered.withUnsafeBytes { fieldValue(named: $0, in: bytes) }
    }

    /// The value of the first cookie named exactly `name` (cookie names are case-sensitive)
    /// across all `Cookie` fields, with surrounding double quotes removed; nil when absent.
    public func cookieValue(named name: UnsafeRawBufferPointer, in bytes: UnsafeRawBufferPointer) -> ByteSpan? {
        for field in fields {
            guard field.flags.contains(.cookie) || RoutingBytes.isCookieName(bytes, field.name) else {
                continue
            }
            // `a=1; b=2`: pairs separated by `;`, optional spaces around them.
            let end = Int(field.value.start) + Int(field.value.count)
            var i = Int(field.value.start)
            while i < end {
                while i < end && (bytes[i] == 0x20 || bytes[i] == 0x09) { i += 1 }
                let pairStart = i
                while i < end && bytes[i] != UInt8(ascii: ";") { i += 1 }
                var pairEnd = i
                i += 1  // skip `;`
                while pairEnd > pairStart && (bytes[pairEnd - 1] == 0x20 || bytes[pairEnd - 1] == 0x09) { pairEnd -= 1 }
                var eq = pairStart
                while eq < pairEnd && bytes[eq] != UInt8(ascii: "=") { eq += 1 }
                guard eq < pairEnd, RoutingBytes.equals(bytes, start: pairStart, count: eq - pairStart, name) else { continue }
                var valueStart = eq + 1
                var valueEnd = pairEnd
                if valueEnd - valueStart >= 2 && bytes[valueStart] == 0x22 && bytes[valueEnd - 1] == 0x22 {
                    valueStart += 1
                    valueEnd -= 1
                }
                return ByteSpan(start: valueStart, count: valueEnd - valueStart)
            }
        }
        return nil
    }

    /// The value of the first cookie named `name` (convenience).
    public func cookieValue(named name: String, in bytes: UnsafeRawBufferPointer) -> ByteSpan? {
        Array(name.utf8).withUnsafeBytes { cookieValue(named: $0, in: bytes) }
    }

    /// The value of the first query parameter named exactly `name`; an empty span for a
    /// parameter without `=`; nil when absent. Names and values are compared as sent
    /// (not percent-decoded).
    public func queryValue(named name: UnsafeRawBufferPointer, in bytes: UnsafeRawBufferPointer) -> ByteSpan? {
        let end = Int(query.start) + Int(query.count)
        var i = Int(query.start)
        while i < end {
            let pairStart = i
            while i < end && bytes[i] != UInt8(ascii: "&") { i += 1 }
            let pairEnd = i
            i += 1
            var eq = pairStart
            while eq < pairEnd && bytes[eq] != UInt8(ascii: "=") { eq += 1 }
            guard RoutingBytes.equals(bytes, start: pairStart, count: eq - pairStart, name) else { continue }
            let valueStart = eq < pairEnd ? eq + 1 : pairEnd
            return ByteSpan(start: valueStart, count: pairEnd - valueStart)
        }
        return nil
    }

    /// The value of the first query parameter named `name` (convenience).
    public func queryValue(named name: String, in bytes: UnsafeRawBufferPointer) -> ByteSpan? {
        Array(name.utf8).withUnsafeBytes { queryValue(named: $0, in: bytes) }
    }

    /// The host to route on without its port and without a trailing dot (`Example.com.:8080`
    /// gives `Example.com`, `[::1]:80` gives `[::1]`). Empty when the request had no host.
    public func hostName(in bytes: UnsafeRawBufferPointer) -> ByteSpan {
        let start = Int(host.start)
        var end = start + Int(host.count)
        if end > start && bytes[start] == UInt8(ascii: "[") {
            var i = start
            while i < end && bytes[i] != UInt8(ascii: "]") { i += 1 }
            if i < end { end = i + 1 }
        } else {
            var i = end
            while i > start {
                let b = bytes[i - 1]
                if b == UInt8(ascii: ":") { end = i - 1; break }
                if b < 0x30 || b > 0x39 { break }
                i -= 1
            }
        }
        if end > start && bytes[end - 1] == UInt8(ascii: ".") { end -= 1 }
        return ByteSpan(start: start, count: end - start)
    }
}

/// ASCII byte helpers for routing (no Foundation, no allocation on the comparison paths).
@usableFromInline
enum RoutingBytes {
    /// True when `span` of `bytes` is `Cookie` in any case.
    static func isCookieName(_ bytes: UnsafeRawBufferPointer, _ span: ByteSpan) -> Bool {
        guard span.count == 6 else { return false }
        let s = Int(span.start)
        return lower(bytes[s]) == UInt8(ascii: "c") && lower(bytes[s + 1]) == UInt8(ascii: "o")
            && lower(bytes[s + 2]) == UInt8(ascii: "o") && lower(bytes[s + 3]) == UInt8(ascii: "k")
            && lower(bytes[s + 4]) == UInt8(ascii: "i") && lower(bytes[s + 5]) == UInt8(ascii: "e")
    }

    /// The byte lowercased if it is an ASCII capital letter.
    @inlinable @inline(__always)
    static func lower(_ b: UInt8) -> UInt8 {
        b &- UInt8(ascii: "A") < 26 ? b | 0x20 : b
    }

    /// `bytes` with ASCII capitals lowercased.
    static func lowercased(_ bytes: [UInt8]) -> [UInt8] { bytes.map(lower) }

    /// True when `span` of `bytes` equals `lowered` ignoring ASCII case (`lowered` is lowercase).
    @inlinable
    static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ span: ByteSpan, _ lowered: UnsafeRawBufferPointer) -> Bool {
        let count = Int(span.count)
        guard count == lowered.count else { return false }
        let start = Int(span.start)
        var i = 0
        while i < count {
            if lower(bytes[start &+ i]) != lowered[i] { return false }
            i &+= 1
        }
        return true
    }

    /// True when the `count` bytes at `start` equal `other` exactly.
    @inlinable
    static func equals(_ bytes: UnsafeRawBufferPointer, start: Int, count: Int, _ other: UnsafeRawBufferPointer) -> Bool {
        guard count == other.count else { return false }
        var i = 0
        while i < count {
            if bytes[start &+ i] != other[i] { return false }
            i &+= 1
        }
        return true
    }

    /// True when the `count` bytes at `start` begin with `prefix` exactly.
    @inlinable
    static func hasPrefix(_ bytes: UnsafeRawBufferPointer, start: Int, count: Int, _ prefix: UnsafeRawBufferPointer) -> Bool {
        guard count >= prefix.count else { return false }
        return equals(bytes, start: start, count: prefix.count, prefix)
    }
}
