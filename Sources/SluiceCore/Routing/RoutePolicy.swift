/// What a routing decision asks of the messages it applies to: the header edits of its route
/// (cohort header to the upstream and a client copy of it dropped, sticky Set-Cookie and cohort
/// header to the client) and the route and cohort names for the access log.
///
/// A value the routing layer computes from a table and a decision (`RoutingTable.policy(for:)`);
/// `HeadWriter` applies it. The IO layer carries it without knowing what a cohort is.
public struct RoutePolicy: Sendable {
    /// The table the decision was made on (kept alive by the exchange that uses it).
    @usableFromInline let table: RoutingTable
    @usableFromInline let decision: RouteDecision

    /// The policy of `decision` made on `table`.
    @inlinable
    public init(table: RoutingTable, decision: RouteDecision) {
        self.table = table
        self.decision = decision
    }

    /// True when the decision names a route of the table.
    @inlinable
    var hasRoute: Bool { decision.route >= 0 && Int(decision.route) < table.routes.count }

    /// True when the decision names a cohort of its route.
    @inlinable
    var hasCohort: Bool { hasRoute && decision.cohort >= 0 && Int(decision.cohort) < table.routes[Int(decision.route)].cohorts.count }

    /// The lowercased name of the request field the upstream gets from Sluice only (the cohort
    /// header): a copy the client sent is dropped. Empty when the request is not forwarded.
    @inlinable
    public var droppedRequestField: [UInt8] {
        hasCohort ? table.routes[Int(decision.route)].cohortHeaderLowercased : []
    }

    /// Appends the fields the route adds to the upstream request (the cohort header).
    @inlinable
    public func appendRequestFields(to out: inout [UInt8]) {
        guard hasCohort else { return }
        table.routes[Int(decision.route)].appendCohortHeader(cohort: decision.cohort, to: &out)
    }

    /// Appends the fields the route adds to the response (sticky Set-Cookie, cohort header).
    @inlinable
    public func appendResponseFields(to out: inout [UInt8]) {
        guard hasRoute else { return }
        // Through the array each time, not `let route = ...`: binding copies the whole `Route`
        // (a retain and a release of each of its many references), once per response.
        let r = Int(decision.route)
        if decision.setStickyCookie { table.routes[r].appendSetCookie(stickyKey: decision.stickyKey, to: &out) }
        if table.routes[r].cohortResponseHeader && hasCohort { table.routes[r].appendCohortHeader(cohort: decision.cohort, to: &out) }
    }

    /// True when the route lets a client switch to the protocol its Upgrade field names first
    /// (`upgrade:`, websocket by default); h2c never.
    public func allowsUpgrade(_ value: UnsafeRawBufferPointer) -> Bool {
        guard hasRoute, !value.isEmpty else { return false }
        // The first protocol of the list, without its `/version`.
        var end = 0
        while end < value.count && value[end] != UInt8(ascii: ",") && value[end] != UInt8(ascii: "/")
            && value[end] != 0x20 && value[end] != 0x09 { end += 1 }
        for p in table.routes[Int(decision.route)].upgradeProtocols where p.count == end {
            var same = true
            for i in 0..<end {
                var c = value[i]
                if c >= 0x41 && c <= 0x5A { c |= 0x20 }
                if c != p[i] { same = false; break }
            }
            if same { return true }
        }
        return false
    }

    /// The route sends the upstream the normalized path (`forward_normalized_path: true`).
    public var forwardsNormalizedPath: Bool { hasRoute && table.routes[Int(decision.route)].forwardNormalizedPath }

    /// True when the route compresses responses (without copying its `CompressionSpec`).
    public var compresses: Bool { hasRoute && table.routes[Int(decision.route)].compression != nil }

    /// The route's response compression, nil when off (or no route).
    public var compression: CompressionSpec? { hasRoute ? table.routes[Int(decision.route)].compression : nil }

    /// The route's name for the access log ("" when no route matched).
    public var routeName: String { hasRoute ? table.routes[Int(decision.route)].name : "" }

    /// The cohort's name for the access log ("" when the request was not forwarded).
    public var cohortName: String { hasCohort ? table.routes[Int(decision.route)].cohorts[Int(decision.cohort)].name : "" }
}

extension RoutingTable {
    /// True when the table has a route `route` with a cohort `cohort` (by name).
    public func hasCohort(route: String, cohort: String) -> Bool {
        routes.contains { $0.name == route && $0.cohorts.contains { $0.name == cohort } }
    }

    /// The header edits and log names of `decision`, made on this table.
    @inlinable
    public func policy(for decision: RouteDecision) -> RoutePolicy {
        RoutePolicy(table: self, decision: decision)
    }
}
