import CSluiceAtomics

/// How an upstream group balances and what it accepts at once (`balance`, `max_connections`,
/// `max_pending`, `max_requests` of an `upstreams:` entry).
public struct UpstreamLoadSpec: Sendable, Equatable {
    /// How a cohort's endpoint is picked.
    public enum Balance: Sendable, Equatable {
        /// Smooth weighted round robin (`BalancerState.pick`).
        case roundRobin
        /// Power of two choices on requests in flight (`RoutingTable.pickLeastRequest`).
        case leastRequest
    }

    public var balance: Balance
    /// Connections open to the group's endpoints, all workers together (0: unlimited).
    public var maxConnections: Int
    /// Requests waiting for a new connection to be established (0: unlimited).
    public var maxPending: Int
    /// Requests in flight to the group (0: unlimited).
    public var maxRequests: Int

    /// Round robin, no limits (the defaults).
    public init(balance: Balance = .roundRobin, maxConnections: Int = 0, maxPending: Int = 0, maxRequests: Int = 0) {
        self.balance = balance
        self.maxConnections = maxConnections
        self.maxPending = maxPending
        self.maxRequests = maxRequests
    }

    /// The group's load is counted (a limit is set, or least-request balancing needs the counts).
    @inlinable
    public var tracked: Bool { balance == .leastRequest || maxConnections > 0 || maxPending > 0 || maxRequests > 0 }
}

/// The live load of every upstream group and endpoint of one routing table, shared by all
/// workers: per group, connections open, requests waiting for a connection and requests in
/// flight; per endpoint, requests in flight (for least-request balancing). Circuit breaking
/// (`tryAcquire…`) and `pickLeastRequest` read it.
///
/// Counted only for groups whose spec is `tracked`: the others cost nothing per request.
/// Counters are relaxed atomic read-modify-writes (several workers write), a handful per
/// request of a tracked group. A limit is checked by incrementing first and undoing when over,
/// so concurrent workers never admit more than the limit together.
///
/// One per table built from the config (`RoutingTable.load`); runtime changes of the split share
/// it. A reload builds a new table and so new counters from zero: requests still in flight on
/// the old table finish on the old counters, so for the length of a drain the two together may
/// exceed a limit by what was in flight at the reload.
public final class UpstreamLoad: @unchecked Sendable {
    // @unchecked Sendable: the words are only touched with atomic operations; the pointers and
    // the specs never change after init.

    /// Per group, in the table's upstream order.
    public let specs: [UpstreamLoadSpec]
    /// Per group: connections, pending, requests (3 words each).
    @usableFromInline let groupWords: UnsafeMutablePointer<UInt64>
    /// Per flat endpoint: requests in flight.
    @usableFromInline let endpointWords: UnsafeMutablePointer<UInt64>
    @usableFromInline let endpointCount: Int

    /// Zeroed counters for `specs.count` groups and `endpoints` endpoints in all.
    public init(specs: [UpstreamLoadSpec], endpoints: Int) {
        self.specs = specs
        groupWords = .allocate(capacity: max(1, specs.count * 3))
        groupWords.initialize(repeating: 0, count: max(1, specs.count * 3))
        endpointCount = endpoints
        endpointWords = .allocate(capacity: max(1, endpoints))
        endpointWords.initialize(repeating: 0, count: max(1, endpoints))
    }

    deinit {
        groupWords.deallocate()
        endpointWords.deallocate()
    }

    /// Which counter of a group.
    public enum Counter: Int, Sendable {
        case connections = 0, pending = 1, requests = 2
    }

    /// True when `group`'s load is counted.
    @inlinable
    public func isTracked(_ group: Int) -> Bool {
        group >= 0 && group < specs.count && specs[group].tracked
    }

    /// The limit of `counter` for `group` (0: unlimited).
    @inlinable
    public func limit(_ counter: Counter, group: Int) -> Int {
        let s = specs[group]
        switch counter {
        case .connections: return s.maxConnections
        case .pending: return s.maxPending
        case .requests: return s.maxRequests
        }
    }

    /// Counts one more of `counter` for `group` if its limit allows; false (nothing counted) when
    /// the circuit is open.
    @inlinable
    public func tryAcquire(_ counter: Counter, group: Int) -> Bool {
        guard group >= 0 && group < specs.count else { return true }
        let p = groupWords + group * 3 + counter.rawValue
        let before = csluice_fetch_add(p, 1)
        let max = limit(counter, group: group)
        if max > 0 && before >= UInt64(max) {
            _ = csluice_fetch_add(p, UInt64.max)  // undo
            return false
        }
        return true
    }

    /// Gives back one `counter` of `group` (after a successful `tryAcquire`).
    @inlinable
    public func release(_ counter: Counter, group: Int) {
        guard group >= 0 && group < specs.count else { return }
        _ = csluice_fetch_add(groupWords + group * 3 + counter.rawValue, UInt64.max)
    }

    /// The current value of `counter` for `group`.
    public func value(_ counter: Counter, group: Int) -> Int {
        guard group >= 0 && group < specs.count else { return 0 }
        return Int(Int64(bitPattern: csluice_load_relaxed(groupWords + group * 3 + counter.rawValue)))
    }

    /// Requests in flight to flat endpoint `flat`.
    @inlinable
    public func inFlight(flat: Int) -> UInt64 {
        guard flat >= 0 && flat < endpointCount else { return 0 }
        return csluice_load_relaxed(endpointWords + flat)
    }

    /// Adds `delta` (+1 or -1) to flat endpoint `flat`'s requests in flight.
    @inlinable
    public func addInFlight(flat: Int, _ delta: Int64) {
        guard flat >= 0 && flat < endpointCount else { return }
        _ = csluice_fetch_add(endpointWords + flat, UInt64(bitPattern: delta))
    }
}
