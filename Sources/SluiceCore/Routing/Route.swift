/// One route of a routing table: its cohorts and the bytes it adds to requests and responses.
public struct Route: Sendable {
    /// The route's name as written in the config.
    public let name: String
    /// The route's cohorts: split entries in config order, then cohorts only rules name (weight 0).
    public let cohorts: [Cohort]
    /// Index into `cohorts` of the baseline cohort (where "abort" and "rollback" send everyone).
    public let baseline: Int32
    /// How requests are kept in the same cohort.
    public let sticky: StickyPolicy
    /// The request header that carries the cohort name to the upstream, as configured.
    public let cohortHeader: String
    /// Also send the cohort header to the client.
    public var cohortResponseHeader: Bool
    /// `cohortHeader` lowercased, to find (and drop) a client-sent copy of it.
    public let cohortHeaderLowercased: [UInt8]
    /// The automated canary rollout configured for the route (`rollout:`), if any. The split
    /// itself is changed only through the routing controller; this is the plan it follows.
    public let rollout: RolloutSpec?
    /// The route's `path` and `path_prefix` conditions see the normalized path (`PathNormalizer`).
    public let normalizesPath: Bool
    /// Send the upstream the normalized path (`forward_normalized_path: true`): the request line's
    /// path is written with `PathNormalizer.append(normalizing:to:)`, the query as received.
    public let forwardNormalizedPath: Bool

    /// Response compression (`compression:`), nil when off.
    public internal(set) var compression: CompressionSpec?
    /// Retries and fallback (`retries:`, `fallback_to_baseline:`), nil when neither is set
    /// (`RetryPolicy.swift`).
    public internal(set) var retry: RetrySpec?
    /// Protocols a client may switch to (`Upgrade:` tokens, lowercased); empty: no tunnels.
    public internal(set) var upgradeProtocols: [[UInt8]] = [Array("websocket".utf8)]

    /// `<cohortHeader>: <cohort name>\r\n` for each cohort.
    let cohortHeaderLines: [[UInt8]]
    /// `Set-Cookie: <name>=` for sluice-assigned cookies.
    let setCookiePrefix: [UInt8]
    /// `; Path=/[; Max-Age=N]; HttpOnly; SameSite=Lax\r\n`.
    let setCookieSuffix: [UInt8]

    /// Creates a route (the routing table builder precomputes the header bytes).
    init(name: String, cohorts: [Cohort], baseline: Int32, sticky: StickyPolicy, cohortHeader: String,
         cohortResponseHeader: Bool, rollout: RolloutSpec? = nil, upgrade: [String]? = nil,
         compression: CompressionSpec? = nil, normalizesPath: Bool = true, forwardNormalizedPath: Bool = false) {
        self.compression = compression
        self.name = name
        self.normalizesPath = normalizesPath
        self.forwardNormalizedPath = forwardNormalizedPath
        self.cohorts = cohorts
        self.baseline = baseline
        self.sticky = sticky
        self.cohortHeader = cohortHeader
        self.cohortResponseHeader = cohortResponseHeader
        self.rollout = rollout
        if let upgrade { self.upgradeProtocols = upgrade.map { Array($0.lowercased().utf8) } }
        self.cohortHeaderLowercased = Array(cohortHeader.lowercased().utf8)
        self.cohortHeaderLines = cohorts.map { Array("\(cohortHeader): \($0.name)\r\n".utf8) }
        let cookieName = sticky.assignedCookie?.name ?? StickyPolicy.defaultCookieName
        let maxAge = sticky.assignedCookie?.maxAge
        self.setCookiePrefix = Array("Set-Cookie: \(cookieName)=".utf8)
        var suffix = "; Path=/"
        if let maxAge { suffix += "; Max-Age=\(maxAge)" }
        suffix += "; HttpOnly; SameSite=Lax\r\n"
        self.setCookieSuffix = Array(suffix.utf8)
    }

    /// Appends the cohort header line, e.g. `X-Sluice-Cohort: canary\r\n`.
    /// Allocates only if `out` must grow.
    public func appendCohortHeader(cohort: Int32, to out: inout [UInt8]) {
        out.append(contentsOf: cohortHeaderLines[Int(cohort)])
    }

    /// Appends `Set-Cookie: <name>=<16 lowercase hex digits>; Path=/; HttpOnly; SameSite=Lax\r\n`
    /// (with `; Max-Age=N` after `Path=/` when `max_age` is configured).
    /// Allocates only if `out` must grow.
    public func appendSetCookie(stickyKey: UInt64, to out: inout [UInt8]) {
        out.append(contentsOf: setCookiePrefix)
        StickyHash.appendHex(stickyKey, to: &out)
        out.append(contentsOf: setCookieSuffix)
    }
}

/// A named share of a route's traffic, sent to one upstream group.
public struct Cohort: Sendable {
    /// The cohort's name (by default the upstream's name); sent in the cohort header.
    public let name: String
    /// Index into `RoutingTable.upstreams`.
    public let upstream: Int32
    /// Share of the split in 0.01% units (0...10000); the weights of a route sum to 10000.
    public let weight: Int
    /// True when the cohort is part of the split (it owns a lane of the bucket layout, even at
    /// weight 0); false for a cohort only rules send traffic to.
    public let inSplit: Bool

    /// Creates a cohort.
    public init(name: String, upstream: Int32, weight: Int, inSplit: Bool = true) {
        self.name = name
        self.upstream = upstream
        self.weight = weight
        self.inSplit = inSplit
    }
}

/// How a route keeps a client in the same cohort across requests.
public enum StickyPolicy: Sendable, Equatable {
    /// Every request is split anew from the entropy it is given; no cookie.
    case none
    /// The value of this request cookie is the key. Without it (an anonymous visitor), Sluice's
    /// own cookie `assignCookie` keeps the client in place exactly as `.assigned` does (read, or
    /// assigned and set); once the user's cookie appears, it wins.
    case cookie(String, assignCookie: String = StickyPolicy.defaultCookieName, maxAge: UInt64? = nil)
    /// The value of this request header is the key; without it, Sluice's own cookie as for `.cookie`.
    case header(String, assignCookie: String = StickyPolicy.defaultCookieName, maxAge: UInt64? = nil)
    /// Sluice's own cookie (default `sluice_sticky`) holds the key; without it, sluice assigns a
    /// key from entropy and sets the cookie. `maxAge` in seconds, nil for a session cookie.
    case assigned(cookie: String, maxAge: UInt64?)

    /// The cookie name sluice uses when the config does not name one.
    public static let defaultCookieName = "sluice_sticky"

    /// Sluice's own cookie (name, Max-Age in seconds) used when the route has no other key for a
    /// client; nil for `.none` (every request is split anew).
    public var assignedCookie: (name: String, maxAge: UInt64?)? {
        switch self {
        case .none: return nil
        case .cookie(_, let name, let age), .header(_, let name, let age), .assigned(let name, let age): return (name, age)
        }
    }
}
