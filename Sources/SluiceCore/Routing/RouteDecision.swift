/// What to do with one request: the result of `RoutingTable.decide`. A plain value, indices only.
public struct RouteDecision: Equatable, Sendable {
    /// The kind of outcome.
    public enum Action: Sendable {
        /// Send the request to `upstreams[upstream].endpoints[endpoint]`.
        case forward
        /// Answer with `responses[response]`.
        case respond
        /// No route matched: answer 404.
        case notFound
    }

    /// The kind of outcome.
    public var action: Action
    /// Index into `routes`, or -1 for `.notFound`.
    public var route: Int32
    /// Index into `routes[route].cohorts`, or -1 when not forwarding.
    public var cohort: Int32
    /// Index into `upstreams`, or -1 when not forwarding.
    public var upstream: Int32
    /// Index into `upstreams[upstream].endpoints`, or -1 when not forwarding.
    public var endpoint: Int32
    /// Index into `responses` for `.respond`, else -1.
    public var response: Int32
    /// Sluice assigned a new sticky key: append `route.appendSetCookie(stickyKey:)` to the response.
    public var setStickyCookie: Bool
    /// The assigned sticky key when `setStickyCookie` is true, else 0.
    public var stickyKey: UInt64
    /// A fault drill's injection: `.abort` (a `.respond` decision that keeps `route` and
    /// `cohort`, answered with `responses[response]`) or `.delay` (forward after `delayNanos`).
    public var fault: FaultKind = .none
    /// The injected request is kept out of the rollout gates' statistics (`count_in_gates: false`).
    public var faultOutsideGates: Bool = false
    /// For `.delay`: how long to hold the request before forwarding it (the data plane's timer).
    public var delayNanos: UInt64 = 0
    /// The rule (index into the table's rules) that decided, or -1 (the split, or no rule).
    public var rule: Int32 = -1

    /// Creates a decision.
    public init(action: Action, route: Int32 = -1, cohort: Int32 = -1, upstream: Int32 = -1, endpoint: Int32 = -1,
                response: Int32 = -1, setStickyCookie: Bool = false, stickyKey: UInt64 = 0) {
        self.action = action
        self.route = route
        self.cohort = cohort
        self.upstream = upstream
        self.endpoint = endpoint
        self.response = response
        self.setStickyCookie = setStickyCookie
        self.stickyKey = stickyKey
    }

    /// No route matched.
    public static let notFound = RouteDecision(action: .notFound)
}
