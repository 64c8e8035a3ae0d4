import SluiceCore

/// Counting upstream load for circuit breaking and least-request balancing (`UpstreamLoad`,
/// shared by all workers): a request in flight per group from forward to its end, an attempt in
/// flight per endpoint while it has an upstream connection, connections open and connects in
/// progress per group. Only for groups whose spec is tracked; the others cost one check.
extension Worker {
    /// What counting a new connection gave.
    enum ConnectionCount: Equatable {
        /// The group is not tracked: nothing counted.
        case untracked
        /// Counted (connection and pending) in this load.
        case counted(UpstreamLoad)
        /// Over `max_connections` or `max_pending`: nothing counted.
        case open

        static func == (a: ConnectionCount, b: ConnectionCount) -> Bool {
            switch (a, b) {
            case (.untracked, .untracked), (.open, .open): return true
            case (.counted(let x), .counted(let y)): return x === y
            default: return false
            }
        }
    }

    /// Counts the routed request against its group's `max_requests`; false when the circuit is open.
    func admitRequest(_ x: Exchange) -> Bool {
        guard let t = x.table else { return true }
        let g = Int(x.decision.upstream)
        guard t.load.isTracked(g) else { return true }
        guard t.load.tryAcquire(.requests, group: g) else { return false }
        x.load = t.load
        x.loadGroup = g
        return true
    }

    /// The request is over (recorded): its group request count is given back.
    func requestEnded(_ x: Exchange) {
        guard let load = x.load, x.loadGroup >= 0 else { return }
        load.release(.requests, group: x.loadGroup)
        x.loadGroup = -1
    }

    /// An attempt has its upstream connection: the endpoint's in-flight count rises (tracked groups).
    func attemptStarted(_ x: Exchange) {
        attemptEnded(x)
        guard let t = x.table, t.load.isTracked(Int(x.decision.upstream)) else { return }
        let flat = t.flatEndpoint(upstream: x.decision.upstream, endpoint: x.decision.endpoint)
        t.load.addInFlight(flat: flat, 1)
        x.load = t.load
        x.loadFlat = flat
    }

    /// The attempt's upstream connection is released or dropped.
    func attemptEnded(_ x: Exchange) {
        guard x.loadFlat >= 0, let load = x.load else { return }
        load.addInFlight(flat: x.loadFlat, -1)
        x.loadFlat = -1
    }

    /// Counts a new connection of `group` (and its connect in progress) against its limits.
    func acquireConnection(_ table: RoutingTable, group: Int) -> ConnectionCount {
        let load = table.load
        guard load.isTracked(group) else { return .untracked }
        guard load.tryAcquire(.connections, group: group) else { return .open }
        guard load.tryAcquire(.pending, group: group) else {
            load.release(.connections, group: group)
            return .open
        }
        return .counted(load)
    }

    /// Over `max_connections`: closes one of this worker's idle pooled connections to `group` (to
    /// any of its endpoints), so an idle connection to one endpoint does not refuse a request that
    /// needs a new one to another (or a fresh one for a retry). True when one was closed. Only on
    /// the refusal path; idle connections in other workers' pools still count until they time out.
    func reclaimIdleConnection(_ t: RoutingTable, group: Int) -> Bool {
        guard t === table, group >= 0, group < pools.count, t.load.limit(.connections, group: group) > 0 else { return false }
        for p in pools[group] {
            if let u = p.idle.first {
                closeUpstream(u)
                return true
            }
        }
        return false
    }

    /// A counted connection closed (or never opened).
    func releaseConnection(_ load: UpstreamLoad, group: Int, pending: Bool) {
        if pending { load.release(.pending, group: group) }
        load.release(.connections, group: group)
    }

    /// A counted connection's connect completed: it no longer waits.
    func connectionEstablished(_ u: UpstreamConnection) {
        guard u.pendingCounted, let load = u.load else { return }
        load.release(.pending, group: u.loadGroup)
        u.pendingCounted = false
    }
}
