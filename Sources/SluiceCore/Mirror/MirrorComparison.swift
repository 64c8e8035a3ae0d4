/// An incremental 64-bit FNV-1a hash of a response body, fed as the bytes pass.
package struct BodyHash: Sendable, Equatable {
    /// The hash so far.
    package private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    /// An empty body's hash.
    package init() {}

    /// Adds `bytes`.
    @inline(__always)
    package mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var h = value
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        value = h
    }
}

/// One side of a mirrored exchange as it is compared: status, the configured fields' values,
/// the body's length and hash, its first bytes (at most `max_body_bytes`), and how long it took.
package struct MirrorSide: Sendable, Equatable {
    /// The final status (0: none arrived).
    package var status: Int = 0
    /// The compared fields' values, in the spec's order (nil: absent).
    package var headers: [[UInt8]?] = []
    /// Body bytes (decoded from chunked framing).
    package var bodyLength: UInt64 = 0
    /// Hash of the whole body.
    package var bodyHash = BodyHash()
    /// The body's first bytes, at most the spec's `max_body_bytes` (only with `compare`).
    package var prefix: [UInt8] = []
    /// Request start to the last response byte.
    package var latencyNanos: UInt64 = 0

    /// An empty side.
    package init() {}

    /// Clears it for reuse, keeping the prefix's capacity when it is small.
    package mutating func reset() {
        status = 0
        headers.removeAll(keepingCapacity: true)
        bodyLength = 0
        bodyHash = BodyHash()
        if prefix.capacity > 64 * 1024 { prefix = [] } else { prefix.removeAll(keepingCapacity: true) }
        latencyNanos = 0
    }

    /// Adds body bytes: length, hash, and the prefix while it is under `keep` bytes.
    @inline(__always)
    package mutating func addBody(_ bytes: UnsafeRawBufferPointer, keep: Int) {
        bodyLength &+= UInt64(bytes.count)
        bodyHash.add(bytes)
        let room = keep - prefix.count
        if room > 0 { prefix.append(contentsOf: bytes.prefix(room)) }
    }
}

/// What comparing two sides found.
package struct MirrorOutcome: Sendable, Equatable {
    /// The result (match, status_diff, header_diff or body_diff).
    package var result: MirrorResult
    /// The first compared field that differs (index into the spec's `headers`), with `headerDiff`.
    package var header: Int?
    /// The first differing body byte, with `bodyDiff`, when it lies within the kept prefixes
    /// (nil: the bodies differ beyond the bytes kept).
    package var firstDifferingByte: Int?
}

/// The pure comparison of a primary response and its mirror's.
package enum MirrorComparison {
    /// Compares in order: status, then each configured field (absent and present differ; values
    /// byte for byte), then the body (length and hash; the first differing byte from the prefixes).
    package static func compare(primary p: MirrorSide, mirror m: MirrorSide) -> MirrorOutcome {
        if p.status != m.status { return MirrorOutcome(result: .statusDiff) }
        for i in 0..<max(p.headers.count, m.headers.count) {
            let a = i < p.headers.count ? p.headers[i] : nil
            let b = i < m.headers.count ? m.headers[i] : nil
            if a != b { return MirrorOutcome(result: .headerDiff, header: i) }
        }
        if p.bodyLength == m.bodyLength && p.bodyHash == m.bodyHash { return MirrorOutcome(result: .match) }
        return MirrorOutcome(result: .bodyDiff, firstDifferingByte: firstDifference(p, m))
    }

    /// The first offset where the bodies differ, from what was kept of them (nil when the kept
    /// bytes agree and the difference lies further on).
    package static func firstDifference(_ p: MirrorSide, _ m: MirrorSide) -> Int? {
        let n = min(p.prefix.count, m.prefix.count)
        var i = 0
        while i < n {
            if p.prefix[i] != m.prefix[i] { return i }
            i += 1
        }
        // Equal over the common prefix: the shorter body ends here, if it ends within what was kept.
        if p.bodyLength != m.bodyLength && UInt64(n) == min(p.bodyLength, m.bodyLength) { return n }
        return nil
    }
}

/// A differing pair, as `GET /admin/mirror/diffs` shows it.
public struct MirrorDiff: Sendable, Codable, Equatable {
    /// When it was found (RFC 3339 UTC).
    public var time: String
    /// The route.
    public var route: String
    /// The mirror (its `to:`).
    public var mirror: String
    /// `GET /path?query HTTP/1.1` (at most 512 bytes).
    public var requestLine: String
    /// `status_diff`, `header_diff` or `body_diff`.
    public var result: String
    /// The primary's status.
    public var primaryStatus: Int
    /// The mirror's status.
    public var mirrorStatus: Int
    /// The compared field that differs (with `header_diff`).
    public var header: String?
    /// Its value in the primary's response (nil: absent).
    public var primaryHeader: String?
    /// Its value in the mirror's response (nil: absent).
    public var mirrorHeader: String?
    /// Body lengths.
    public var primaryBodyBytes: UInt64
    /// Body lengths.
    public var mirrorBodyBytes: UInt64
    /// The first differing body byte (with `body_diff`; nil when beyond the bytes kept).
    public var firstDifferingByte: Int?
    /// Latencies, seconds.
    public var primarySeconds: Double
    /// Latencies, seconds.
    public var mirrorSeconds: Double

    /// Creates a diff.
    public init(time: String, route: String, mirror: String, requestLine: String, result: String, primaryStatus: Int,
                mirrorStatus: Int, header: String? = nil, primaryHeader: String? = nil, mirrorHeader: String? = nil,
                primaryBodyBytes: UInt64, mirrorBodyBytes: UInt64, firstDifferingByte: Int? = nil,
                primarySeconds: Double, mirrorSeconds: Double) {
        self.time = time
        self.route = route
        self.mirror = mirror
        self.requestLine = requestLine
        self.result = result
        self.primaryStatus = primaryStatus
        self.mirrorStatus = mirrorStatus
        self.header = header
        self.primaryHeader = primaryHeader
        self.mirrorHeader = mirrorHeader
        self.primaryBodyBytes = primaryBodyBytes
        self.mirrorBodyBytes = mirrorBodyBytes
        self.firstDifferingByte = firstDifferingByte
        self.primarySeconds = primarySeconds
        self.mirrorSeconds = mirrorSeconds
    }

    /// JSON keys.
    enum CodingKeys: String, CodingKey {
        case time, route, mirror, requestLine = "request_line", result, primaryStatus = "primary_status",
             mirrorStatus = "mirror_status", header, primaryHeader = "primary_header", mirrorHeader = "mirror_header",
             primaryBodyBytes = "primary_body_bytes", mirrorBodyBytes = "mirror_body_bytes",
             firstDifferingByte = "first_differing_byte", primarySeconds = "primary_seconds", mirrorSeconds = "mirror_seconds"
    }

    /// One line for people: `GET /a HTTP/1.1: body_diff, 200 vs 200, 12 vs 14 bytes, first differing byte 3`.
    public var summary: String {
        var s = "\(requestLine): \(result), status \(primaryStatus) vs \(mirrorStatus)"
        if let header { s += ", \(header): \(primaryHeader.map { "\"\($0)\"" } ?? "absent") vs \(mirrorHeader.map { "\"\($0)\"" } ?? "absent")" }
        if result == MirrorResult.bodyDiff.label {
            s += ", body \(primaryBodyBytes) vs \(mirrorBodyBytes) bytes"
            s += firstDifferingByte.map { ", first differing byte \($0)" } ?? ", differing beyond the bytes kept"
        }
        return s
    }
}
