/// The request-head fields of one access-log line, copied out of the connection's input buffer
/// when the head is parsed (the buffer is reused before the line is written). The arrays keep
/// their capacity across `reset`, so a warm capture allocates nothing per request.
///
/// Data-plane use: `reset()` when an exchange starts, `capture(head, in: bytes)` once its head is
/// parsed, and at the end `withRecord(&record) { AccessLogLine.append($0, format: f, to: &buffer) }`.
public struct AccessLogCapture {
    /// Request method.
    public var method: [UInt8] = []
    /// Request target (path and query), at most `Limit.path` bytes.
    public var path: [UInt8] = []
    /// Host header value (or the authority of an absolute-form target).
    public var host: [UInt8] = []
    /// `HTTP/1.0` or `HTTP/1.1`.
    public var proto: [UInt8] = []
    /// User-Agent header value.
    public var userAgent: [UInt8] = []
    /// Referer header value.
    public var referer: [UInt8] = []
    /// traceparent header value.
    public var traceparent: [UInt8] = []

    /// Longest value kept per field, in bytes (longer ones are cut: a log line stays bounded).
    public enum Limit {
        public static let path = 2048
        public static let host = 256
        public static let userAgent = 512
        public static let referer = 1024
        public static let traceparent = 256
    }

    /// An empty capture.
    public init() {}

    /// Empties every field, keeping capacity.
    public mutating func reset() {
        method.removeAll(keepingCapacity: true)
        path.removeAll(keepingCapacity: true)
        host.removeAll(keepingCapacity: true)
        proto.removeAll(keepingCapacity: true)
        userAgent.removeAll(keepingCapacity: true)
        referer.removeAll(keepingCapacity: true)
        traceparent.removeAll(keepingCapacity: true)
    }

    static let userAgentName: [UInt8] = Array("user-agent".utf8)
    static let refererName: [UInt8] = Array("referer".utf8)
    static let traceparentName: [UInt8] = Array("traceparent".utf8)
    static let http10: StaticString = "HTTP/1.0"
    static let http11: StaticString = "HTTP/1.1"

    static let http2: StaticString = "HTTP/2.0"

    /// The request came over HTTP/2 (its head was rewritten as HTTP/1.1 inside Sluice).
    public mutating func markHTTP2() {
        proto.removeAll(keepingCapacity: true)
        HeadWriter.appendStatic(Self.http2, to: &proto)
    }

    /// Copies the fields of a parsed `head` whose spans point into `bytes`.
    public mutating func capture(_ head: RequestHead, in bytes: UnsafeRawBufferPointer) {
        reset()
        Self.copy(head.methodSpan, from: bytes, limit: 32, to: &method)
        Self.copy(head.target, from: bytes, limit: Limit.path, to: &path)
        Self.copy(head.host, from: bytes, limit: Limit.host, to: &host)
        HeadWriter.appendStatic(head.version == .http10 ? Self.http10 : Self.http11, to: &proto)
        Self.userAgentName.withUnsafeBytes { name in
            if let v = head.fieldValue(named: name, in: bytes) { Self.copy(v, from: bytes, limit: Limit.userAgent, to: &userAgent) }
        }
        Self.refererName.withUnsafeBytes { name in
            if let v = head.fieldValue(named: name, in: bytes) { Self.copy(v, from: bytes, limit: Limit.referer, to: &referer) }
        }
        Self.traceparentName.withUnsafeBytes { name in
            if let v = head.fieldValue(named: name, in: bytes) { Self.copy(v, from: bytes, limit: Limit.traceparent, to: &traceparent) }
        }
    }

    static func copy(_ span: ByteSpan, from bytes: UnsafeRawBufferPointer, limit: Int, to out: inout [UInt8]) {
        let range = span.range
        guard range.lowerBound >= 0, range.upperBound <= bytes.count, !range.isEmpty else { return }
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[range.lowerBound..<min(range.upperBound, range.lowerBound + limit)]))
    }

    /// Calls `body` with `record` whose method, path, host, protocol, user agent, referer and
    /// traceparent point into this capture (valid only during the call).
    public func withRecord(_ record: AccessLogRecord, _ body: (AccessLogRecord) -> Void) {
        var r = record
        method.withUnsafeBytes { m in path.withUnsafeBytes { p in host.withUnsafeBytes { h in proto.withUnsafeBytes { v in
            userAgent.withUnsafeBytes { ua in referer.withUnsafeBytes { re in traceparent.withUnsafeBytes { t in
                r.method = m; r.path = p; r.host = h; r.proto = v; r.userAgent = ua; r.referer = re; r.traceparent = t
                body(r)
            }}}
        }}}}
    }
}
