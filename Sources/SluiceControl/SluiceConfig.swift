import SluiceCore
import SluiceProxy

/// A loaded, validated config: process settings plus the compiled routing table.
public struct SluiceConfig: Sendable {
    /// Worker threads (`workers:`; `auto` = online CPUs, at most the cgroup v2 CPU limit rounded up).
    public var workers: Int
    /// Listening sockets.
    public var listeners: [ListenerSpec]
    /// Where the admin API listens (default 127.0.0.1:9901).
    public var adminAddress: SocketAddress
    /// Bearer token the admin API requires, when set (from `admin.token`, `admin.token_file` or
    /// `$SLUICE_ADMIN_TOKEN`).
    public var adminToken: String?
    /// The admin API's other settings, and the metrics listener (`admin:`, `metrics:`).
    public var admin = AdminSettings()
    /// Timeouts in nanoseconds.
    public var timeouts: Timeouts
    /// Resource and parser limits.
    public var limits: Limits
    /// Where access log lines go.
    public var accessLog: AccessLogTarget
    /// Which fields access-log lines have and which query parameters are redacted
    /// (`access_log.fields`, `access_log.redact_query`; default every field, nothing redacted).
    public var accessLogFormat: AccessLogFormat = .all
    /// The compiled routing table (its version is the one given to the loader).
    public var table: RoutingTable
    /// Peers whose X-Forwarded-For/-Proto/-Host are kept and extended (`trusted_proxies:`); from
    /// anyone else those headers are replaced.
    public var trustedProxies: [AddressPrefix] = []
    /// The file the config was read from (nil when parsed from a string, e.g. the demo).
    public var sourcePath: String?
    /// Where runtime overrides and the table version counter are kept across restarts
    /// (`state_file:`; by default `<config file>.state.json`); nil: not kept (`state_file: off`,
    /// or a config parsed from a string without `state_file:`).
    public var stateFile: String?
    /// Replicas sharing one routing state through etcd (`cluster:`); nil: this replica alone.
    public var cluster: ClusterSettings?
    /// TLS settings of listeners (by index) and upstream groups (by name), files read and checked.
    public var tls = TLSSet()
    /// Limits of client HTTP/2 connections (`http2:`).
    public var http2 = HTTP2Limits()
    /// How long a worker keeps polling without sleeping after a batch of events, in nanoseconds
    /// (`busy_poll:`; 0, the default: off). Applied at start.
    public var busyPoll: UInt64 = 0
    /// Valid but risky settings (e.g. `verify: false`), printed by `sluice check` and at start.
    public var warnings: [String] = []

    /// Creates a config.
    public init(workers: Int, listeners: [ListenerSpec], adminAddress: SocketAddress, adminToken: String?,
                timeouts: Timeouts, limits: Limits, accessLog: AccessLogTarget, table: RoutingTable,
                sourcePath: String?) {
        self.workers = workers
        self.listeners = listeners
        self.adminAddress = adminAddress
        self.adminToken = adminToken
        self.timeouts = timeouts
        self.limits = limits
        self.accessLog = accessLog
        self.table = table
        self.sourcePath = sourcePath
    }
}

/// Where access log lines are written (`access_log: { path: ... }`).
public enum AccessLogTarget: Sendable, Equatable {
    /// No access log (the default).
    case off
    /// Standard output.
    case stdout
    /// Appended to this file.
    case file(String)
}
