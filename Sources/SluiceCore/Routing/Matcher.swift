/// A compiled condition. Byte strings are spans into the routing table's byte pool (header
/// names and hosts already lowercased); lists are spans into the table's side arrays.
/// A closed enum of trivial payloads: evaluating one touches no reference counts.
enum Matcher: Sendable {
    /// Host (without port) equals the pool bytes, ASCII case-insensitive.
    case hostExact(ByteSpan)
    /// Host ends with the pool bytes (`.example.com`) and is longer than them.
    case hostSuffix(ByteSpan)
    /// Path equals the pool bytes.
    case path(ByteSpan)
    /// Path starts with the pool bytes.
    case pathPrefix(ByteSpan)
    /// Method bit (1 << HTTPMethod.rawValue) is in `mask`, or for `.other`, the method bytes
    /// equal one of the pool strings listed by `custom` (a span of `RoutingTable.spanPool`).
    case methods(mask: UInt16, custom: ByteSpan)
    /// A header (name lowercased in the pool) passes `test`.
    case header(name: ByteSpan, test: CompiledTest)
    /// A cookie passes `test`.
    case cookie(name: ByteSpan, test: CompiledTest)
    /// A query parameter passes `test`.
    case query(name: ByteSpan, test: CompiledTest)
    /// The client is in one of the networks listed by the span (of `RoutingTable.prefixes`).
    case source(ByteSpan)
}

/// A compiled value test.
enum CompiledTest: Sendable {
    /// Equals the pool bytes.
    case equals(ByteSpan)
    /// Starts with the pool bytes.
    case prefix(ByteSpan)
    /// `RoutingTable.regexes[index]` matches.
    case regex(Int32)
    /// Present.
    case present
    /// Absent.
    case absent
}

/// Everything a condition is evaluated against during one `decide` call.
/// The pointers are valid only for the duration of that call.
struct MatchInput {
    /// The request's bytes (the buffer the head was parsed from).
    let bytes: UnsafeRawBufferPointer
    /// The table's byte pool.
    let pool: UnsafeRawBufferPointer
    /// The host without port and trailing dot.
    let hostName: ByteSpan
    /// The client's address.
    let client: SocketAddress
    /// The path `path` and `path_prefix` conditions see: the raw path, or its normalized form
    /// for a route that normalizes (set per route by `decide`).
    var path: UnsafeRawBufferPointer
}

extension RoutingTable {
    /// The index of the first matcher in `matchers[start..<start+count]` that does not hold, or
    /// -1 when all hold (`decide`'s walk; the index tells `sluice explain` which condition failed).
    @inline(__always)
    func firstFailing(start: Int32, count: Int32, head: borrowing RequestHead, input: MatchInput) -> Int {
        var i = Int(start)
        let end = i + Int(count)
        while i < end {
            if !matches(matchers[i], head: head, input: input) { return i }
            i += 1
        }
        return -1
    }

    /// Evaluates one matcher.
    func matches(_ matcher: Matcher, head: borrowing RequestHead, input: MatchInput) -> Bool {
        let bytes = input.bytes
        switch matcher {
        case .hostExact(let s):
            return RoutingBytes.equalsLowercased(bytes, input.hostName, slice(input.pool, s))
        case .hostSuffix(let s):
            let host = input.hostName
            guard host.count > s.count else { return false }
            let tail = ByteSpan(start: host.start + host.count - s.count, count: s.count)
            return RoutingBytes.equalsLowercased(bytes, tail, slice(input.pool, s))
        case .path(let s):
            return RoutingBytes.equals(input.path, start: 0, count: input.path.count, slice(input.pool, s))
        case .pathPrefix(let s):
            return RoutingBytes.hasPrefix(input.path, start: 0, count: input.path.count, slice(input.pool, s))
        case .methods(let mask, let custom):
            if head.method != .other { return mask & (1 << UInt16(head.method.rawValue)) != 0 }
            var i = Int(custom.start)
            while i < Int(custom.start) + Int(custom.count) {
                let name = slice(input.pool, spanPool[i])
                if RoutingBytes.equals(bytes, start: Int(head.methodSpan.start), count: Int(head.methodSpan.count), name) {
                    return true
                }
                i += 1
            }
            return false
        case .header(let name, let test):
            let lowered = slice(input.pool, name)
            switch test {
            case .present: return head.fieldIndex(named: lowered, in: bytes) >= 0
            case .absent: return head.fieldIndex(named: lowered, in: bytes) < 0
            default:
                var i = head.fieldIndex(named: lowered, in: bytes)
                while i >= 0 {
                    if passes(test, value: head.fields[i].value, input: input) { return true }
                    i = head.fieldIndex(named: lowered, in: bytes, from: i + 1)
                }
                return false
            }
        case .cookie(let name, let test):
            let value = head.cookieValue(named: slice(input.pool, name), in: bytes)
            return passes(test, value: value, input: input)
        case .query(let name, let test):
            let value = head.queryValue(named: slice(input.pool, name), in: bytes)
            return passes(test, value: value, input: input)
        case .source(let list):
            var i = Int(list.start)
            while i < Int(list.start) + Int(list.count) {
                if prefixes[i].contains(input.client) { return true }
                i += 1
            }
            return false
        }
    }

    /// Applies a value test to an optional value.
    @inline(__always)
    private func passes(_ test: CompiledTest, value: ByteSpan?, input: MatchInput) -> Bool {
        guard let value else {
            if case .absent = test { return true }
            return false
        }
        let bytes = input.bytes
        switch test {
        case .present: return true
        case .absent: return false
        case .equals(let s):
            return RoutingBytes.equals(bytes, start: Int(value.start), count: Int(value.count), slice(input.pool, s))
        case .prefix(let s):
            return RoutingBytes.hasPrefix(bytes, start: Int(value.start), count: Int(value.count), slice(input.pool, s))
        case .regex(let index):
            return regexes[Int(index)].matches(slice(bytes, value))
        }
    }

    /// The bytes of `span` inside `buffer`.
    @inline(__always)
    func slice(_ buffer: UnsafeRawBufferPointer, _ span: ByteSpan) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: buffer[Int(span.start)..<Int(span.start) + Int(span.count)])
    }
}
