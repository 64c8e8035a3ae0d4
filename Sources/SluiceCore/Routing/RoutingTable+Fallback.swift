/// What `fallback_to_baseline` needs from the table: the route's retry settings, the baseline
/// decision for a request another cohort failed, and the cohort header rewritten for it.
extension RoutingTable {
    /// The retry settings of `decision`'s route (nil: none configured, or no route).
    @inlinable
    public func retrySpec(for decision: RouteDecision) -> RetrySpec? {
        let r = Int(decision.route)
        guard r >= 0 && r < routes.count else { return nil }
        return routes[r].retry
    }

    /// True when `decision`'s route has a baseline cohort other than the decision's own.
    public func hasOtherBaseline(_ decision: RouteDecision) -> Bool {
        let r = Int(decision.route)
        guard r >= 0 && r < routes.count else { return false }
        let b = routes[r].baseline
        return b >= 0 && Int(b) < routes[r].cohorts.count && b != decision.cohort
    }

    /// `decision` moved to its route's baseline cohort: that cohort's upstream and an endpoint
    /// of it picked by the group's `balance` (the sticky cookie decision is kept: the client's key
    /// is its own; `entropy` breaks least-request ties). Nil when the route has no other baseline.
    public func baselineDecision(for decision: RouteDecision, entropy: UInt64 = 0, balancer: inout BalancerState) -> RouteDecision? {
        guard hasOtherBaseline(decision) else { return nil }
        if !balancer.isBuilt(for: self) { balancer = BalancerState(table: self) }
        let r = Int(decision.route)
        let b = routes[r].baseline
        var out = decision
        out.cohort = b
        out.upstream = cohortUpstreams[Int(plans[r].cohortStart) + Int(b)]
        out.endpoint = pickEndpoint(upstream: out.upstream, entropy: entropy, balancer: &balancer)
        return out
    }

    /// Rewrites the cohort header line of `from` in a serialized upstream request head into the
    /// one of `to` (same route). Returns false when the line is not found (the head is unchanged).
    public func replaceCohortHeader(in head: inout [UInt8], route: Int32, from: Int32, to: Int32) -> Bool {
        let r = Int(route)
        guard r >= 0 && r < routes.count else { return false }
        let lines = routes[r].cohortHeaderLines
        guard from >= 0 && Int(from) < lines.count && to >= 0 && Int(to) < lines.count else { return false }
        let old = lines[Int(from)]
        guard !old.isEmpty && head.count >= old.count else { return false }
        var i = 0
        while i + old.count <= head.count {
            // A field line starts after a line feed (the request line comes first).
            if i > 0 && head[i - 1] == 0x0A && head[i] == old[0] && head[i..<(i + old.count)].elementsEqual(old) {
                head.replaceSubrange(i..<(i + old.count), with: lines[Int(to)])
                return true
            }
            i += 1
        }
        return false
    }
}
