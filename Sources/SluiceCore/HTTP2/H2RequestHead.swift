/// The HTTP/1.1 request head that stands for an HTTP/2 request inside Sluice.
///
/// An HTTP/2 stream is driven through the same exchange as an HTTP/1.1 request (routing, limits,
/// upstream pools, accounting): its header fields (already checked by nghttp2's HTTP messaging
/// rules: pseudo-headers, lowercase names, no connection-specific fields, `te` only `trailers`)
/// are written as an HTTP/1.1 head, which the strict HTTP/1 parser then reads like any other.
///
/// - `:method`, `:path` and `:authority` make the request line and `host` (a `host` field is
///   dropped when `:authority` is there: RFC 9113 8.3.1);
/// - `cookie` fields are joined with "; " into one (RFC 9113 8.2.3);
/// - the body is framed by the client's `content-length` when it sent one, by
///   `transfer-encoding: chunked` when the stream has a body without it, and not at all when
///   HEADERS ended the stream.
///
/// The byte arrays keep their capacity between streams (a pooled builder allocates nothing).
public struct H2RequestHead: Sendable {
    public private(set) var method: [UInt8] = []
    public private(set) var path: [UInt8] = []
    public private(set) var authority: [UInt8] = []
    public private(set) var scheme: [UInt8] = []
    /// Regular fields, already written as `name: value\r\n`.
    private var fields: [UInt8] = []
    private var cookies: [UInt8] = []
    private var host: [UInt8] = []
    /// The client sent `content-length`.
    public private(set) var hasContentLength = false
    /// Decoded header-list size so far (RFC 9113 6.5.2: name + value + 32 per field).
    public private(set) var listBytes = 0
    /// A field this head cannot carry (a name or value with CR, LF or NUL).
    public private(set) var malformed = false

    /// An empty builder.
    public init() {}

    /// Ready for the next stream (capacity kept).
    public mutating func reset() {
        method.removeAll(keepingCapacity: true)
        path.removeAll(keepingCapacity: true)
        authority.removeAll(keepingCapacity: true)
        scheme.removeAll(keepingCapacity: true)
        fields.removeAll(keepingCapacity: true)
        cookies.removeAll(keepingCapacity: true)
        host.removeAll(keepingCapacity: true)
        hasContentLength = false
        listBytes = 0
        malformed = false
    }

    /// Adds one decoded field. Returns the header-list size so far; past `limit` the field is
    /// counted but not kept (the caller answers 431, or closes the connection far past it).
    @discardableResult
    public mutating func add(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, limit: Int) -> Int {
        listBytes += name.count + value.count + 32
        guard listBytes <= limit else { return listBytes }
        if Self.hasLineBreak(name) || Self.hasLineBreak(value) { malformed = true }
        if name.first == UInt8(ascii: ":") {
            if Self.equal(name, Self.methodName) {
                method.append(contentsOf: value)
            } else if Self.equal(name, Self.pathName) {
                path.append(contentsOf: value)
            } else if Self.equal(name, Self.authorityName) {
                authority.append(contentsOf: value)
            } else if Self.equal(name, Self.schemeName) {
                scheme.append(contentsOf: value)
            } else {
                malformed = true
            }
            return listBytes
        }
        if Self.equal(name, Self.cookieName) {
            if !cookies.isEmpty { cookies.append(contentsOf: Self.cookieSeparator) }
            cookies.append(contentsOf: value)
            return listBytes
        }
        if Self.equal(name, Self.hostName) {
            host.removeAll(keepingCapacity: true)
            host.append(contentsOf: value)
            return listBytes
        }
        if Self.equal(name, Self.contentLengthName) { hasContentLength = true }
        fields.append(contentsOf: name)
        fields.append(UInt8(ascii: ":"))
        fields.append(UInt8(ascii: " "))
        fields.append(contentsOf: value)
        fields.append(13)
        fields.append(10)
        return listBytes
    }

    /// How the body follows the head written by `write`.
    public enum BodyFraming: Sendable, Equatable {
        /// No body (HEADERS ended the stream), or the client's own `content-length`.
        case asSent
        /// The DATA frames are written as chunks, ending with the last chunk.
        case chunked
    }

    /// Writes the HTTP/1.1 head to `out` (appending). `endStream`: HEADERS ended the stream.
    public func write(endStream: Bool, to out: inout [UInt8]) -> BodyFraming {
        out.append(contentsOf: method)
        out.append(UInt8(ascii: " "))
        if path.isEmpty {
            // CONNECT carries only :authority (the HTTP/1 parser decides what to do with it).
            out.append(contentsOf: authority)
        } else {
            out.append(contentsOf: path)
        }
        out.append(contentsOf: Self.version)
        let hostValue = authority.isEmpty ? host : authority
        if !hostValue.isEmpty {
            out.append(contentsOf: Self.hostPrefix)
            out.append(contentsOf: hostValue)
            out.append(13)
            out.append(10)
        }
        out.append(contentsOf: fields)
        if !cookies.isEmpty {
            out.append(contentsOf: Self.cookiePrefix)
            out.append(contentsOf: cookies)
            out.append(13)
            out.append(10)
        }
        var framing = BodyFraming.asSent
        if !endStream && !hasContentLength {
            out.append(contentsOf: Self.chunkedField)
            framing = .chunked
        }
        out.append(13)
        out.append(10)
        return framing
    }

    static func hasLineBreak(_ b: UnsafeRawBufferPointer) -> Bool {
        b.contains { $0 == 13 || $0 == 10 || $0 == 0 }
    }

    @inline(__always)
    static func equal(_ a: UnsafeRawBufferPointer, _ b: [UInt8]) -> Bool {
        a.count == b.count && a.elementsEqual(b)
    }

    static let methodName = Array(":method".utf8)
    static let pathName = Array(":path".utf8)
    static let authorityName = Array(":authority".utf8)
    static let schemeName = Array(":scheme".utf8)
    static let cookieName = Array("cookie".utf8)
    static let hostName = Array("host".utf8)
    static let contentLengthName = Array("content-length".utf8)
    static let cookieSeparator = Array("; ".utf8)
    static let version = Array(" HTTP/1.1\r\n".utf8)
    static let hostPrefix = Array("host: ".utf8)
    static let cookiePrefix = Array("cookie: ".utf8)
    static let chunkedField = Array("transfer-encoding: chunked\r\n".utf8)
}
