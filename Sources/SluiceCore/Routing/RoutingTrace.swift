/// Receives the steps of one `RoutingTable.decide` call. The data path passes `NoTrace`, whose
/// empty methods vanish when `decide` is specialized for it; `sluice explain` passes a recorder,
/// so the explanation is the decision's own walk, never a second implementation of it.
protocol RoutingTrace {
    /// Route `route`'s conditions were evaluated: `failed` is the index (into `matchers`) of the
    /// first one that does not hold, or -1 when all hold (the route matched).
    mutating func route(_ route: Int, failed: Int)
    /// Rule `rule` (index into `rules`) was evaluated; `failed` as for `route`.
    mutating func rule(_ rule: Int, failed: Int)
    /// How the split picked the cohort (not called when a rule decided).
    mutating func split(_ step: SplitStep)
    /// Fault `fault` (index into `faults`) covered the request; the rolls (0..<10000) decided
    /// against its percentages.
    mutating func fault(_ fault: Int, abortRoll: Int, delayRoll: Int)
}

/// The data path's trace: records nothing.
struct NoTrace: RoutingTrace {
    @inline(__always) mutating func route(_ route: Int, failed: Int) {}
    @inline(__always) mutating func rule(_ rule: Int, failed: Int) {}
    @inline(__always) mutating func split(_ step: SplitStep) {}
    @inline(__always) mutating func fault(_ fault: Int, abortRoll: Int, delayRoll: Int) {}
}

/// Where the key that picked a bucket of the split came from.
public enum SplitStep: Sendable, Equatable {
    /// `sticky: none`: bucket `entropy % 10000`, fresh per request.
    case perRequest(bucket: Int)
    /// The configured cookie's value (a span of the request's bytes).
    case userCookie(value: ByteSpan, bucket: Int)
    /// The configured header's value (a span of the request's bytes).
    case userHeader(value: ByteSpan, bucket: Int)
    /// Sluice's own cookie, sent by the client (16 hex digits; a span of the request's bytes).
    case assignedCookie(value: ByteSpan, bucket: Int)
    /// No usable key: Sluice assigned `key` (the entropy) and sets its cookie.
    case assignedNew(key: UInt64, bucket: Int)

    /// The bucket (0..<10000) the step chose.
    public var bucket: Int {
        switch self {
        case .perRequest(let b), .userCookie(_, let b), .userHeader(_, let b), .assignedCookie(_, let b), .assignedNew(_, let b):
            return b
        }
    }
}
