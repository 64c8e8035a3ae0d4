import SluiceCore

/// Reporting each upstream attempt's outcome to the shared endpoint health state
/// (`EndpointHealth`): per-endpoint counters, and the consecutive failures that passive outlier
/// detection ejects on. A success is a relaxed load (and a store after a failure); a failure one
/// atomic add, plus an eventfd write when it reaches the group's threshold. No lock, no allocation.
extension Worker {
    /// The attempt of `x` at its current endpoint got a response head with `status`: 502, 503
    /// and 504 count as gateway failures, anything else as a success.
    @inline(__always)
    func reportEndpointResponse(_ x: Exchange, status: Int) {
        reportEndpoint(x, failed: RetryCause.isGatewayFailure(status: status))
    }

    /// The attempt of `x` at its current endpoint failed (`reason`). Connect failures are
    /// reported by `connectFailed`, so `noteUpstreamError` skips them here.
    @inline(__always)
    func reportEndpointError(_ x: Exchange, _ reason: UpstreamErrorReason) {
        switch reason {
        case .connectRefused, .connectTimeout: return
        case .responseTimeout, .reset, .badResponse, .tlsHandshake: reportEndpoint(x, failed: true)
        case .circuitOpen: return  // refused before anything was sent: says nothing about the endpoint
        }
    }

    /// An attempt that the route's retry rules take over (`.retry`, `.retryElsewhere`,
    /// `.fallback`): its failure never reaches `startResponse` or `noteUpstreamError`, so it is
    /// reported here, once. Connect failures were reported by `connectFailed`; a reset of a reused
    /// pooled connection is the stale-connection case, which says nothing about the endpoint.
    func reportRetriedAttempt(_ x: Exchange) {
        guard let cause = x.retryCause else { return }
        switch cause {
        case .connectFailure: return
        case .reset: if x.upstream?.reused ?? false { return }
        case .timeout, .status: break
        }
        reportEndpoint(x, failed: true)
    }

    /// Records the outcome on the endpoint's slot; only for requests routed with the worker's
    /// current table (the balancer's slots are that table's).
    func reportEndpoint(_ x: Exchange, failed: Bool) {
        guard let t = x.table, t === table, x.decision.upstream >= 0, x.decision.endpoint >= 0 else { return }
        let slot = balancer.slot(flat: t.flatIndex(upstream: x.decision.upstream, endpoint: x.decision.endpoint))
        guard slot >= 0 else { return }
        if failed {
            if health.recordFailure(slot: slot, worker: index) { healthSignal?.signal() }
        } else {
            health.recordSuccess(slot: slot, worker: index)
        }
    }
}
