import SluiceCore

/// The admin API's settings beyond its address and token (`admin:` and `metrics:` in the config).
public struct AdminSettings: Sendable, Equatable {
    /// Host names accepted in `Host`/`Origin` of state-changing calls besides the admin's own
    /// address and `localhost` (`admin.allowed_hosts`; lowercased, no port).
    public var allowedHosts: [String] = []
    /// GET endpoints that need no token even when one is set (`admin.public_endpoints`,
    /// a subset of `/metrics`, `/healthz`, `/ready`; all three by default).
    public var publicEndpoints: [String] = AdminPolicy.defaultPublicPaths
    /// Client networks allowed to connect (`admin.allow`); empty: anyone who can reach the address.
    public var allow: [AddressPrefix] = []
    /// Most connections held at once (`admin.max_connections`); when full, the oldest connection
    /// that has not shown the token (and is not being answered) is closed to make room.
    public var maxConnections: Int = 1024
    /// Time allowed for a whole request, head and body, from the connection's accept
    /// (`admin.request_timeout`, nanoseconds).
    public var requestTimeout: UInt64 = 10_000_000_000
    /// Where the token came from: `admin.token`, `admin.token_file` or `$SLUICE_ADMIN_TOKEN` (nil: no token).
    public var tokenSource: String?
    /// The separate metrics listener (`metrics:`), when configured.
    public var metrics: MetricsListenerSpec?

    /// Defaults.
    public init() {}
}

/// `metrics:`: a listener that serves only `/metrics`, `/healthz` and `/ready`, so Prometheus and
/// health checks can reach a pod without the admin API being exposed.
public struct MetricsListenerSpec: Sendable, Equatable {
    /// Where it listens (`metrics.address`).
    public var address: SocketAddress
    /// Client networks allowed to connect (`metrics.allow`); empty: anyone.
    public var allow: [AddressPrefix]

    /// Creates a spec.
    public init(address: SocketAddress, allow: [AddressPrefix] = []) {
        self.address = address
        self.allow = allow
    }
}
