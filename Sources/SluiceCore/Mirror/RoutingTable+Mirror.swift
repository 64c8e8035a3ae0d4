/// A compiled mirror: its spec and the route it belongs to.
package struct MirrorPlan: Sendable, Equatable {
    /// What to mirror, where, and how to compare.
    package var spec: MirrorSpec
    /// The route (index into the table's routes).
    package var route: Int32

    /// Collects a table's mirrors while it is compiled: rule mirrors in rule order (the table's
    /// rules are appended in the same order), then the route's.
    struct Compiled {
        var plans: [MirrorPlan] = []
        var routeMirrors: [Int32] = []
        var ruleMirrors: [Int32] = []

        /// Adds route `route`'s mirror and its rules' (call once per route, before its rules are appended).
        mutating func add(route: Int, spec: RouteSpec) {
            for rule in spec.rules {
                if let m = rule.mirror, case .cohort = rule.action {
                    plans.append(MirrorPlan(spec: m, route: Int32(route)))
                    ruleMirrors.append(Int32(plans.count - 1))
                } else {
                    ruleMirrors.append(-1)
                }
            }
            if let m = spec.mirror {
                plans.append(MirrorPlan(spec: m, route: Int32(route)))
                routeMirrors.append(Int32(plans.count - 1))
            } else {
                routeMirrors.append(-1)
            }
        }
    }
}

extension RoutingTable {
    /// Whether any route or rule mirrors (the data path's one check for requests that are not mirrored).
    @inline(__always)
    package var mirrors: Bool { !mirrorPlans.isEmpty }

    /// The mirror covering a forwarded `decision` (index into `mirrorPlans`), or -1: the deciding
    /// rule's own, else the route's. Sampling and methods are `MirrorPolicy.selects`.
    package func mirrorIndex(for decision: RouteDecision) -> Int {
        guard decision.action == .forward, decision.route >= 0 else { return -1 }
        if decision.rule >= 0, Int(decision.rule) < ruleMirrors.count, ruleMirrors[Int(decision.rule)] >= 0 {
            return Int(ruleMirrors[Int(decision.rule)])
        }
        return Int(decision.route) < routeMirrors.count ? Int(routeMirrors[Int(decision.route)]) : -1
    }
}
