import SluiceCore

/// Who may call an admin endpoint.
public enum AdminAccess: Sendable, Equatable {
    /// Anyone who can reach the listener (`/metrics`, `/healthz`, `/ready` by default).
    case open
    /// Reading that reveals topology (stats, events, history, rollouts, ...): the token when one is set.
    case read
    /// Changing state: the token when one is set, and no cross-site request (Origin, Host, Content-Type).
    case mutate
}

/// The admin API's request checks that need no IO: the bearer token, which endpoints stay open,
/// and the cross-site rules for state-changing requests. Pure: the server gives it the request
/// and the local address the request arrived on.
///
/// Cross-site requests (a web page in a browser on the host, or DNS rebinding) are refused when
/// they change state (and a foreign `Host` also when they read the topology, which a rebinding
/// page could otherwise read without a token):
/// - an `Origin` that is not the admin's own address or an allowed host (or `Origin: null`), or
///   `Sec-Fetch-Site: cross-site`: 403;
/// - a `Host` that is not the admin's own address (the address the connection arrived on, by
///   IP literal; `localhost` when that address is loopback) or a name in `admin.allowed_hosts`: 403.
///   Ports are not compared (a port-forward changes them; rebinding needs a name, not a port);
/// - a `Content-Type` other than `application/json` (any parameters allowed), or a body without
///   one: 415. A browser sends text/plain, form and multipart bodies cross-site without asking;
///   `application/json` needs a CORS preflight, which this server never grants.
public struct AdminPolicy: Sendable, Equatable {
    /// The bearer token, when one is set (empty counts as none).
    public var token: String?
    /// Host names (lowercased, without port) accepted in `Host` and `Origin` besides the admin's own address.
    public var allowedHosts: [String]
    /// GET paths that need no token even when one is set.
    public var publicPaths: [String]

    /// The endpoints open by default: metrics and health checks.
    public static let defaultPublicPaths = ["/metrics", "/healthz", "/ready"]

    /// Creates a policy.
    public init(token: String?, allowedHosts: [String] = [], publicPaths: [String] = AdminPolicy.defaultPublicPaths) {
        self.token = (token ?? "").isEmpty ? nil : token
        self.allowedHosts = allowedHosts.map { $0.lowercased() }
        self.publicPaths = publicPaths
    }

    /// The access class of an endpoint registered at `path` (a pattern) for `method`.
    public func access(method: String, path: String, mutating: Bool) -> AdminAccess {
        if mutating { return .mutate }
        return publicPaths.contains(path) ? .open : .read
    }

    /// True when a token is set and `authorization` carries it (`Bearer <token>`, compared in constant time).
    public func hasValidToken(_ authorization: String?) -> Bool {
        guard let token else { return false }
        guard let value = authorization else { return false }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return false }
        let given = Array(String(parts[1]).trimmingSpaces().utf8)
        let wanted = Array(token.utf8)
        var diff = UInt8(given.count == wanted.count ? 0 : 1)
        for i in 0..<wanted.count { diff |= wanted[i] ^ (i < given.count ? given[i] : 0) }
        return diff == 0
    }

    /// True when a request with `authorization` may call an endpoint of class `access`.
    public func isAuthorized(_ access: AdminAccess, authorization: String?) -> Bool {
        if access == .open || token == nil { return true }
        return hasValidToken(authorization)
    }

    /// The refusal of a state-changing `request` that arrived on `local` and looks cross-site, nil when it may go on.
    public func crossSiteRefusal(_ request: AdminRequest, local: SocketAddress, hasBody: Bool) -> AdminResponse? {
        if let site = request.header("sec-fetch-site"), site.lowercased() == "cross-site" {
            return .error(403, "cross-site request refused (Sec-Fetch-Site: cross-site)")
        }
        if let origin = request.header("origin") {
            guard let host = Self.originHost(origin), isOwnHost(host, local: local) else {
                return .error(403, "request from a foreign Origin refused (\(origin)); state-changing admin calls are "
                                  + "accepted only from the admin's own address or admin.allowed_hosts")
            }
        }
        if let refusal = foreignHostRefusal(request, local: local) { return refusal }
        if let type = request.header("content-type") {
            let media = type.split(separator: ";", maxSplits: 1).first.map { String($0).trimmingSpaces().lowercased() } ?? ""
            guard media == "application/json" else {
                return .error(415, "Content-Type must be application/json (got `\(type)`)")
            }
        } else if hasBody {
            return .error(415, "a request body needs Content-Type: application/json")
        }
        return nil
    }

    /// The refusal of a request whose `Host` is not the admin's own address or an allowed host
    /// (DNS rebinding: a page whose name now points at 127.0.0.1 sends its own name), nil when it may go on.
    /// Applied to state-changing requests and to the reads that reveal topology.
    public func foreignHostRefusal(_ request: AdminRequest, local: SocketAddress) -> AdminResponse? {
        let host = request.header("host") ?? ""
        guard !host.isEmpty, isOwnHost(Self.hostWithoutPort(host), local: local) else {
            return .error(403, "Host `\(host)` is not the admin API's address; add the name to admin.allowed_hosts to use it")
        }
        return nil
    }

    /// True when `host` (no port, brackets removed, any case) names the admin itself: the IP
    /// literal of `local`, `localhost` when `local` is loopback, or an allowed host.
    public func isOwnHost(_ host: String, local: SocketAddress) -> Bool {
        var name = host.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        if name.isEmpty { return false }
        if name == "localhost" { return local.isLoopback }
        if let v4 = SocketAddress.parseIPv4(Substring(name)) {
            if case .v4(let own, _) = local { return own == v4 }
            if case .v6(0, let lo, _) = local { return lo == 0xffff_0000_0000 | UInt64(v4) }
            return false
        }
        if let (hi, lo) = SocketAddress.parseIPv6(Substring(name)) {
            if case .v6(let h, let l, _) = local { return h == hi && l == lo }
            return false
        }
        return allowedHosts.contains(name)
    }

    /// The host of a `Host` value (`name:port`, `[v6]:port`, `name`), brackets removed.
    static func hostWithoutPort(_ authority: String) -> String {
        let s = Substring(authority.trimmingSpaces())
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return "" }
            return String(s[s.index(after: s.startIndex)..<close])
        }
        if let colon = s.lastIndex(of: ":") {
            // A bare IPv6 address has several colons and no port.
            if s[..<colon].contains(":") { return String(s) }
            return String(s[..<colon])
        }
        return String(s)
    }

    /// The host of an `Origin` (`scheme://host[:port]`), nil for `null` or anything else.
    static func originHost(_ origin: String) -> String? {
        let o = origin.trimmingSpaces().lowercased()
        for scheme in ["http://", "https://"] where o.hasPrefix(scheme) {
            let authority = String(o.dropFirst(scheme.count))
            if authority.isEmpty || authority.contains("/") || authority.contains("@") { return nil }
            return hostWithoutPort(authority)
        }
        return nil
    }
}
