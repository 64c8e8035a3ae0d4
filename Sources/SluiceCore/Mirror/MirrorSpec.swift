/// Traffic mirroring (`mirror:` on a route or a rule): a copy of a share of the requests is sent
/// to another upstream, fire and forget, and (with `compare: true`) its response is compared with
/// the primary's. Validated by the control plane (`RouteCompiler+Mirror.swift`).
package struct MirrorSpec: Sendable, Equatable {
    /// The target as written (`to:`): a cohort of the route or an upstream group (metrics label `mirror`).
    package var name: String
    /// The upstream group the copies go to (index into the table's upstreams).
    package var upstream: Int
    /// Share of the eligible requests mirrored, 0.01% units (default 100%).
    package var percent: Int
    /// Compare the mirror's response with the primary's.
    package var compare: Bool
    /// Request bodies larger than this are not mirrored; with `compare`, at most this many bytes of
    /// each response body are kept to find the first differing byte.
    package var maxBodyBytes: Int
    /// Response fields compared (lowercased names).
    package var headers: [String]
    /// Methods mirrored (`MirrorSpec.methodBit`), default the idempotent ones (RFC 9110 §9.2.2).
    package var methods: UInt16
    /// How long a mirror exchange may take, connect to the last response byte.
    package var timeoutNanos: UInt64

    /// Default `max_body_bytes`: 1 MiB.
    package static let defaultMaxBodyBytes = 1 << 20
    /// Default compared fields.
    package static let defaultHeaders = ["content-type"]
    /// Default timeout: 10 s.
    package static let defaultTimeoutNanos: UInt64 = 10_000_000_000
    /// Default methods: GET, HEAD, PUT, DELETE, OPTIONS, TRACE.
    package static let defaultMethods: UInt16 = {
        var m: UInt16 = 0
        for method in [HTTPMethod.get, .head, .put, .delete, .options, .trace] { m |= methodBit(method) }
        return m
    }()

    /// Creates a spec with the documented defaults.
    package init(name: String, upstream: Int, percent: Int = 10_000, compare: Bool = false,
                 maxBodyBytes: Int = MirrorSpec.defaultMaxBodyBytes, headers: [String] = MirrorSpec.defaultHeaders,
                 methods: UInt16 = MirrorSpec.defaultMethods, timeoutNanos: UInt64 = MirrorSpec.defaultTimeoutNanos) {
        self.name = name
        self.upstream = upstream
        self.percent = percent
        self.compare = compare
        self.maxBodyBytes = maxBodyBytes
        self.headers = headers
        self.methods = methods
        self.timeoutNanos = timeoutNanos
    }

    /// The bit of `method` in `methods`.
    @inline(__always)
    package static func methodBit(_ method: HTTPMethod) -> UInt16 { 1 << UInt16(method.rawValue) }

    /// Method names accepted by `methods:` (CONNECT and extension methods cannot be mirrored).
    package static let methodNames: [(String, HTTPMethod)] = [
        ("GET", .get), ("HEAD", .head), ("POST", .post), ("PUT", .put), ("DELETE", .delete),
        ("OPTIONS", .options), ("PATCH", .patch), ("TRACE", .trace),
    ]
}

/// What became of one mirrored (or not mirrored) request: the `result` label of
/// `sluice_mirror_requests_total`.
public enum MirrorResult: Int, Sendable, CaseIterable {
    /// Compared: status, the configured fields and the body (length and hash) are the same.
    case match
    /// Compared: the statuses differ.
    case statusDiff
    /// Compared: same status, a configured field differs.
    case headerDiff
    /// Compared: same status and fields, the body differs (length or hash).
    case bodyDiff
    /// Sent without `compare`, and the mirror answered.
    case completed
    /// The mirror failed (refused, reset, timed out, a malformed response), or the primary did
    /// not complete a response to compare with.
    case error
    /// Not sent: the worker's cap on mirror exchanges or buffered bytes was reached.
    case dropped
    /// Not sent: the request body is larger than `max_body_bytes`.
    case tooLarge

    /// The label value.
    public var label: String {
        switch self {
        case .match: return "match"
        case .statusDiff: return "status_diff"
        case .headerDiff: return "header_diff"
        case .bodyDiff: return "body_diff"
        case .completed: return "completed"
        case .error: return "error"
        case .dropped: return "dropped"
        case .tooLarge: return "too_large"
        }
    }
}

/// The pure mirroring decisions.
package enum MirrorPolicy {
    /// Whether a request with `method` is mirrored by `spec`, given a uniform random `entropy`:
    /// the method is one of `methods` and the roll (independent of the split's and the faults')
    /// is under `percent`.
    @inline(__always)
    package static func selects(_ spec: MirrorSpec, method: HTTPMethod, entropy: UInt64) -> Bool {
        guard spec.methods & MirrorSpec.methodBit(method) != 0 else { return false }
        return roll(entropy: entropy) < spec.percent
    }

    /// The sampling roll, uniform over 0..<10000.
    @inline(__always)
    package static func roll(entropy: UInt64) -> Int {
        Int(truncatingIfNeeded: StickyHash.fmix64(entropy ^ 0x3c6e_f372_fe94_f82b) % StickyHash.buckets)
    }

    /// Whether a request body of `declared` bytes (nil: chunked, unknown yet) may be mirrored.
    @inline(__always)
    package static func bodyFits(_ spec: MirrorSpec, declared: UInt64?) -> Bool {
        guard let declared else { return true }
        return declared <= UInt64(spec.maxBodyBytes)
    }
}
