/// A range of bytes inside the buffer a head was parsed from: offsets, not copies.
public struct ByteSpan: Equatable, Sendable {
    /// Offset of the first byte from the start of the parsed buffer.
    public var start: Int32
    /// Number of bytes.
    public var count: Int32

    /// An empty span at offset 0.
    public static let empty = ByteSpan(start: 0, count: 0)

    /// Creates a span.
    @inlinable
    public init(start: Int32, count: Int32) {
        self.start = start
        self.count = count
    }

    /// Creates a span from Int offsets.
    @inlinable
    public init(start: Int, count: Int) {
        self.start = Int32(truncatingIfNeeded: start)
        self.count = Int32(truncatingIfNeeded: count)
    }

    /// The span as a half-open Int range.
    @inlinable
    public var range: Range<Int> { Int(start)..<Int(start) + Int(count) }
}

/// One header field of a parsed head: where its name and value are in the buffer.
public struct FieldSpan: Equatable, Sendable {
    /// Name bytes (as received; compare case-insensitively).
    public var name: ByteSpan
    /// Value bytes with leading and trailing whitespace (OWS) removed.
    public var value: ByteSpan
    /// Classification bits, see `FieldFlags`.
    public var flags: FieldFlags

    /// Creates a field span.
    @inlinable
    public init(name: ByteSpan, value: ByteSpan, flags: FieldFlags) {
        self.name = name
        self.value = value
        self.flags = flags
    }
}

/// What the parser learned about a field, so writers need not compare names again.
public struct FieldFlags: OptionSet, Equatable, Sendable {
    public var rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Hop-by-hop: Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade,
    /// Transfer-Encoding, or a name listed in a Connection header. Never forwarded.
    public static let hopByHop = FieldFlags(rawValue: 1 << 0)
    /// Content-Length (framing is re-written by the proxy, so it is not copied either).
    public static let contentLength = FieldFlags(rawValue: 1 << 1)
    /// Host.
    public static let host = FieldFlags(rawValue: 1 << 2)
    /// Expect.
    public static let expect = FieldFlags(rawValue: 1 << 3)
    /// X-Forwarded-For.
    public static let xForwardedFor = FieldFlags(rawValue: 1 << 4)
    /// X-Forwarded-Proto or X-Forwarded-Host.
    public static let xForwardedOther = FieldFlags(rawValue: 1 << 5)
    /// Cookie.
    public static let cookie = FieldFlags(rawValue: 1 << 6)
    /// The name contains `_` (request fields so named are not forwarded, as nginx does).
    public static let underscoreName = FieldFlags(rawValue: 1 << 7)
    /// Forwarded or X-Real-IP: what a client says about the path it came by (kept only from a
    /// trusted proxy, like X-Forwarded-For).
    public static let clientForwarding = FieldFlags(rawValue: 1 << 8)
    /// X-Request-Id.
    public static let requestID = FieldFlags(rawValue: 1 << 9)
}

/// HTTP version of a message. Only 1.0 and 1.1 are accepted.
public enum HTTPVersion: UInt8, Sendable {
    case http10
    case http11
}

/// Request methods the proxy cares about by name; anything else valid is `.other`.
public enum HTTPMethod: UInt8, Sendable {
    case get, head, post, put, delete, options, patch, trace, connect, other

    /// Idempotent (RFC 9110 9.2.2): GET, HEAD, PUT, DELETE, OPTIONS, TRACE.
    @inlinable
    public var isIdempotent: Bool {
        switch self {
        case .get, .head, .put, .delete, .options, .trace: return true
        case .post, .patch, .connect, .other: return false
        }
    }
}

/// How a message body is delimited on the wire (RFC 9112 section 6).
public enum BodyFraming: Equatable, Sendable {
    /// No body at all.
    case none
    /// Exactly this many bytes follow the head.
    case contentLength(UInt64)
    /// Chunked transfer coding (the final and only coding).
    case chunked
    /// Responses only: the body ends when the connection closes.
    case untilClose
}

/// A parsed request head. Spans refer to the buffer given to the parser; `fields` keeps
/// its capacity across requests so steady-state parsing allocates nothing.
public struct RequestHead: Sendable {
    public var method: HTTPMethod = .get
    public var methodSpan: ByteSpan = .empty
    /// The raw request-target (origin-form `/path?query`, or absolute-form, or `*`).
    public var target: ByteSpan = .empty
    /// The path part of the target (for absolute-form, the path after the authority).
    public var path: ByteSpan = .empty
    /// The query after `?` (without the `?`); count 0 when there is none.
    public var query: ByteSpan = .empty
    public var version: HTTPVersion = .http11
    public var fields: [FieldSpan] = []
    /// Bytes of the head including the final empty line.
    public var headLength: Int = 0
    public var framing: BodyFraming = .none
    /// True when the client asked to keep the connection open (1.1 default, 1.0 with keep-alive).
    public var keepAlive: Bool = true
    /// `Expect: 100-continue` was present.
    public var expectContinue: Bool = false
    /// Index into `fields` of the single Host field, or -1 when absent.
    public var hostIndex: Int32 = -1
    /// Span of the host name to route on (Host value, or the authority of an absolute-form target).
    public var host: ByteSpan = .empty
    /// The Upgrade field's value when an HTTP/1.1 request asks for a protocol switch (`Connection:
    /// upgrade` and an Upgrade field); empty otherwise.
    public var upgrade: ByteSpan = .empty

    /// An empty head, ready to be filled by the parser.
    public init() {}
}

/// A parsed response head. Spans refer to the buffer given to the parser.
public struct ResponseHead: Sendable {
    public var version: HTTPVersion = .http11
    public var status: Int = 0
    /// The reason phrase (may be empty).
    public var reason: ByteSpan = .empty
    public var fields: [FieldSpan] = []
    public var headLength: Int = 0
    public var framing: BodyFraming = .none
    /// False when the upstream said `Connection: close` or is HTTP/1.0 without keep-alive.
    public var keepAlive: Bool = true

    /// An empty head, ready to be filled by the parser.
    public init() {}
}

/// Limits the parser enforces. Every limit has a default a production user would pick.
public struct ParserLimits: Sendable, Equatable {
    /// Longest request line (method, target, version) before 414.
    public var maxRequestLine: Int = 8192
    /// Largest head (request line or status line plus fields) before 431 (502 for responses).
    public var maxHeadBytes: Int = 32768
    /// Most header fields before 431.
    public var maxFields: Int = 100
    /// Longest chunk-size line (size plus extensions) before 400.
    public var maxChunkLine: Int = 1024
    /// Largest trailer section before 400.
    public var maxTrailerBytes: Int = 8192

    /// Defaults.
    public init() {}
}

/// Why a head or body could not be parsed; carries the status the client should get.
public enum HTTPParseError: Error, Equatable, Sendable {
    case badRequestLine
    case unsupportedVersion
    case uriTooLong
    case headTooLarge
    case tooManyFields
    case badFieldName
    case badFieldValue
    case obsFold
    case spaceBeforeColon
    case missingHost
    case multipleHost
    case bothContentLengthAndTransferEncoding
    case badContentLength
    case conflictingContentLength
    case unsupportedTransferEncoding
    /// Transfer-Encoding whose final coding is not chunked, or in an HTTP/1.0 request (400).
    case transferEncodingNotChunked
    case badChunkSize
    case chunkSizeOverflow
    case chunkLineTooLong
    case badChunkTerminator
    case badTrailer
    case trailerTooLarge
    case badStatusLine

    /// The status to answer a client with (responses parse errors become 502 in the proxy).
    public var status: Int {
        switch self {
        case .uriTooLong: return 414
        case .headTooLarge, .tooManyFields: return 431
        case .unsupportedVersion: return 505
        case .unsupportedTransferEncoding: return 501
        default: return 400
        }
    }

    /// One line a person can read, sent as the error response body and logged.
    public var reason: String {
        switch self {
        case .badRequestLine: return "malformed request line"
        case .unsupportedVersion: return "HTTP version not supported (only HTTP/1.0 and HTTP/1.1)"
        case .uriTooLong: return "request line too long"
        case .headTooLarge: return "header section too large"
        case .tooManyFields: return "too many header fields"
        case .badFieldName: return "invalid character in a header field name"
        case .badFieldValue: return "invalid character in a header field value"
        case .obsFold: return "obsolete line folding is not allowed"
        case .spaceBeforeColon: return "whitespace between a header field name and the colon"
        case .missingHost: return "HTTP/1.1 request without a Host header"
        case .multipleHost: return "more than one Host header"
        case .bothContentLengthAndTransferEncoding: return "both Content-Length and Transfer-Encoding"
        case .badContentLength: return "invalid Content-Length"
        case .conflictingContentLength: return "conflicting Content-Length values"
        case .unsupportedTransferEncoding: return "unsupported Transfer-Encoding (only a final chunked is accepted)"
        case .transferEncodingNotChunked: return "Transfer-Encoding without a final chunked, or in an HTTP/1.0 request"
        case .badChunkSize: return "invalid chunk size"
        case .chunkSizeOverflow: return "chunk size too large"
        case .chunkLineTooLong: return "chunk extension too long"
        case .badChunkTerminator: return "chunk data not followed by CRLF"
        case .badTrailer: return "malformed trailer section"
        case .trailerTooLarge: return "trailer section too large"
        case .badStatusLine: return "malformed status line"
        }
    }
}

/// The outcome of one parse attempt over the bytes received so far.
public enum ParseStatus: Equatable, Sendable {
    /// A whole head was parsed; `headLength` bytes belong to it.
    case complete
    /// More bytes are needed (and the limits are not exceeded yet).
    case incomplete
    /// The bytes can never form a valid head.
    case invalid(HTTPParseError)
}
