/// `balance: least_request`: power of two choices on requests in flight.
///
/// The two candidates are two consecutive picks of the group's smooth weighted round robin
/// (`BalancerState.pick`), so weights count and whatever the round robin skips (endpoints the
/// health checks or outlier detection took out, when that is attached to the balancer) is never
/// a candidate; of the two, the endpoint with fewer requests in flight across all workers
/// (`UpstreamLoad.inFlight`) wins; a tie is broken by a bit of the request's entropy (with an even
/// number of endpoints the pairs come in the same order every time, so "the first" would load one). Two choices rather than the global
/// minimum: every worker reading the same counters would otherwise send its next requests to
/// the same endpoint at once (Mitzenmacher; Envoy's `LEAST_REQUEST` default `choice_count: 2`).
extension RoutingTable {
    /// An endpoint of `group` (index within the group) by power of two choices.
    public func pickLeastRequest(group: Int, tieBreak: UInt64, balancer: inout BalancerState) -> Int32 {
        let start = Int(groupEndpointStart[group])
        let count = Int(groupEndpointStart[group + 1]) - start
        if count == 1 { return balancer.pick(group: group, in: self) }
        // Both candidates come from the availability-aware pick (unavailable endpoints skipped
        // outside panic mode); a panic-mode choice is counted once, for the one kept.
        let a = balancer.pick(group: group, in: self, countingPanic: false)
        let b = balancer.pick(group: group, in: self, countingPanic: false)
        let chosen = LeastRequest.choose(a, load.inFlight(flat: start + Int(a)), b, load.inFlight(flat: start + Int(b)),
                                         tieBreak: tieBreak)
        if balancer.filter(group: group, in: self) == .panic { balancer.notePanicPick(flat: start + Int(chosen)) }
        return chosen
    }

    /// The flat index of endpoint `endpoint` of group `upstream` (for `UpstreamLoad`).
    public func flatEndpoint(upstream: Int32, endpoint: Int32) -> Int {
        Int(groupEndpointStart[Int(upstream)]) + Int(endpoint)
    }
}

/// The choice between two candidates (pure, for tests).
public enum LeastRequest {
    /// The candidate with fewer requests in flight; on a tie `a` when `tieBreak` is even, else `b`.
    @inlinable
    public static func choose(_ a: Int32, _ aInFlight: UInt64, _ b: Int32, _ bInFlight: UInt64, tieBreak: UInt64) -> Int32 {
        if aInFlight == bInFlight { return tieBreak & 1 == 0 ? a : b }
        return bInFlight < aInFlight ? b : a
    }
}
