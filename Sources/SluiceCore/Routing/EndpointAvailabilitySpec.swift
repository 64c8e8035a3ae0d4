/// An upstream group's active health check (`upstreams.NAME.health_check`): an HTTP/1.1 GET
/// sent to every endpoint every `interval` by the process's one checker thread.
public struct HealthCheckSpec: Sendable, Equatable {
    /// Request target of the check (starts with `/`).
    public var path: String = "/healthz"
    /// Time between two checks of one endpoint, in nanoseconds (jittered by up to a tenth).
    public var intervalNanos: UInt64 = 2_000_000_000
    /// How long one check may take (connect, send, status line), in nanoseconds.
    public var timeoutNanos: UInt64 = 1_000_000_000
    /// Consecutive passing checks that bring an unhealthy endpoint back.
    public var healthy: Int = 2
    /// Consecutive failing checks that take a healthy endpoint out of balancing.
    public var unhealthy: Int = 2
    /// Status ranges (inclusive) that pass; default 200-399.
    public var expect: [ClosedRange<Int>] = [200...399]
    /// `Host` of the check request; nil: the endpoint's label (`host:port` as written).
    public var host: String? = nil

    /// The defaults (`/healthz`, 2 s, 1 s, 2, 2, 200-399).
    public init() {}

    /// True when `status` passes the check.
    public func passes(status: Int) -> Bool {
        expect.contains { $0.contains(status) }
    }
}

/// Passive outlier detection of an upstream group (`upstreams.NAME.outlier`).
public struct OutlierSpec: Sendable, Equatable {
    /// Consecutive gateway or connect failures that eject an endpoint; 0 turns detection off.
    public var consecutiveFailures: Int = 5
    /// Ejection time of a first ejection, in nanoseconds; the n-th ejection lasts n times this.
    public var baseEjectionNanos: UInt64 = 10_000_000_000
    /// The longest one ejection lasts, in nanoseconds (Envoy's `max_ejection_time` default).
    public var maxEjectionNanos: UInt64 = 300_000_000_000
    /// At most this percentage of a group's endpoints is ejected at once (0...100).
    public var maxEjectedPercent: Int = 50

    /// The defaults (5 failures, 10 s, at most 300 s, 50 %).
    public init() {}

    /// Detection turned off (`outlier: off`).
    public static let off: OutlierSpec = {
        var s = OutlierSpec()
        s.consecutiveFailures = 0
        return s
    }()

    /// True when failures are counted and endpoints can be ejected.
    public var isOn: Bool { consecutiveFailures > 0 }
}

/// How an upstream group's endpoints are kept available: checks, ejection, host-name refresh.
public struct EndpointAvailabilitySpec: Sendable, Equatable {
    /// Active health check; nil: none.
    public var healthCheck: HealthCheckSpec? = nil
    /// Passive outlier detection (on by default).
    public var outlier = OutlierSpec()
    /// How often host names among the endpoints are resolved again, in nanoseconds (0: never).
    public var dnsRefreshNanos: UInt64 = 30_000_000_000

    /// The defaults: no active check, outlier detection on, DNS refresh every 30 s.
    public init() {}
}
