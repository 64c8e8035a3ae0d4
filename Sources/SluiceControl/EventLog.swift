import Synchronization
import SluiceCore

/// What kind of routing change an event records.
public enum RoutingEventKind: String, Sendable, Codable, CaseIterable {
    /// The process started serving its first table.
    case start
    /// A new config was loaded and published (SIGHUP, a change of the file, the admin API).
    case reload
    /// A new config was rejected; the old table keeps serving.
    case reloadRejected = "reload_rejected"
    /// A route's split weights changed.
    case split
    /// All of a route's traffic moved to another cohort (blue/green switch).
    case `switch`
    /// A rollout was aborted: traffic went back to the baseline.
    case abort
    /// An earlier table version was published again (`sluice rollback`), or an automated
    /// rollback sent traffic back to the baseline because a cohort was unhealthy.
    case rollback
    /// A route's runtime override was removed (`sluice clear`): the config file's split applies.
    case clear
    /// Runtime overrides were read from the state file at start and applied.
    case restore
    /// A runtime override was dropped because the new config no longer fits it (route or
    /// cohort gone) or changed that route's split itself.
    case overrideDropped = "override_dropped"
    /// A canary rollout's decision: started, a step promoted, a gate breached, rolled back,
    /// paused, resumed, promoted, aborted, restored after a restart (the cause has the numbers).
    case rollout
    /// With `cluster:`: the shared store connected or became unreachable, a rollout leadership
    /// was taken or lost, a local abort was shared, the routing file differs from the fleet's.
    case cluster
    /// A fault drill started, was cleared, expired or ended because its route or cohort went
    /// away (`sluice fault`; `details.action` says which). The table version does not change.
    case fault
    /// An upstream endpoint left or rejoined balancing: ejected or returned (outlier detection),
    /// unhealthy or healthy (active check); `details` name the upstream, endpoint and action.
    case endpoint
    /// A host name of an upstream resolved to another set of addresses (`dns_refresh`), or failed
    /// to resolve (the last good addresses stay).
    case dns
}

/// One routing change.
public struct RoutingEvent: Sendable, Codable, Equatable {
    /// Sequence number, from 1, increasing (for "events since N").
    public var id: UInt64
    /// Wall-clock time, RFC 3339 UTC with milliseconds.
    public var time: String
    /// Kind of change.
    public var kind: RoutingEventKind
    /// Table version before the change (nil for `start`).
    public var oldVersion: UInt64?
    /// Table version after the change (nil when nothing was published, e.g. `reload_rejected`).
    public var newVersion: UInt64?
    /// What caused it, free text (e.g. `SIGHUP`, `admin API`, `canary error rate 4.1% > 1%`).
    public var cause: String
    /// Further facts (e.g. `route`, `weights`, `error`).
    public var details: [String: String]

    /// Creates an event.
    public init(id: UInt64, time: String, kind: RoutingEventKind, oldVersion: UInt64?, newVersion: UInt64?,
                cause: String, details: [String: String] = [:]) {
        self.id = id
        self.time = time
        self.kind = kind
        self.oldVersion = oldVersion
        self.newVersion = newVersion
        self.cause = cause
        self.details = details
    }

    enum CodingKeys: String, CodingKey {
        case id, time, kind, oldVersion = "old_version", newVersion = "new_version", cause, details
    }

    /// Encodes with explicit nulls for absent versions.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(time, forKey: .time)
        try c.encode(kind, forKey: .kind)
        try c.encode(oldVersion, forKey: .oldVersion)
        try c.encode(newVersion, forKey: .newVersion)
        try c.encode(cause, forKey: .cause)
        try c.encode(details, forKey: .details)
    }
}

/// The recent routing changes, newest last: a ring of the last `capacity` events (default 1000).
/// Thread-safe (a mutex); control plane only.
public final class EventLog: Sendable {
    /// How many events are kept.
    public let capacity: Int
    private let clock: @Sendable () -> UInt64
    private struct State {
        var ring: [RoutingEvent] = []
        var head = 0
        var nextId: UInt64 = 1
        var reloads = ReloadCounters()
    }
    private let state = Mutex(State())

    /// An empty log; `clock` gives wall-clock Unix nanoseconds (tests pass a fixed one).
    public init(capacity: Int = 1000, clock: @escaping @Sendable () -> UInt64 = { ControlClock.unixNanos() }) {
        self.capacity = max(1, capacity)
        self.clock = clock
    }

    /// Records a change and returns it (with its id and time).
    @discardableResult
    public func record(_ kind: RoutingEventKind, oldVersion: UInt64?, newVersion: UInt64?, cause: String,
                       details: [String: String] = [:]) -> RoutingEvent {
        let now = clock()
        let time = ControlClock.rfc3339(unixNanos: now)
        let capacity = self.capacity
        return state.withLock { s in
            let event = RoutingEvent(id: s.nextId, time: time, kind: kind, oldVersion: oldVersion, newVersion: newVersion,
                                     cause: cause, details: details)
            s.nextId += 1
            s.reloads.count(kind, unixNanos: now)
            if s.ring.count < capacity {
                s.ring.append(event)
            } else {
                s.ring[s.head] = event
                s.head = (s.head + 1) % capacity
            }
            return event
        }
    }

    /// The outcome of config loads so far (`start`, `reload` and `reload_rejected` events, all of
    /// them, not only those still in the ring), for the `sluice_config_*reload*` metrics.
    public var reloadCounters: ReloadCounters {
        state.withLock { $0.reloads }
    }

    /// Events oldest first: those with an id above `afterId` (all when nil), at most the last `limit`.
    public func recent(limit: Int? = nil, after afterId: UInt64? = nil) -> [RoutingEvent] {
        var events = state.withLock { s in Array(s.ring[s.head...] + s.ring[..<s.head]) }
        if let afterId { events.removeAll { $0.id <= afterId } }
        if let limit, events.count > limit { events.removeFirst(events.count - max(0, limit)) }
        return events
    }
}

extension ReloadCounters {
    /// Counts a routing event: `start` and `reload` are successful loads, `reload_rejected` a failed one.
    mutating func count(_ kind: RoutingEventKind, unixNanos: UInt64) {
        switch kind {
        case .start:
            lastSuccessful = true
            lastSuccessUnixNanos = unixNanos
        case .reload:
            successes += 1
            lastSuccessful = true
            lastSuccessUnixNanos = unixNanos
        case .reloadRejected:
            failures += 1
            lastSuccessful = false
        case .split, .switch, .abort, .rollback, .clear, .restore, .overrideDropped, .rollout, .cluster, .fault, .endpoint, .dns:
            break
        }
    }
}
