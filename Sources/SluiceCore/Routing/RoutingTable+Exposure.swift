/// A cohort that one routing table sends more traffic to than another: what makes a rollback
/// unsafe (it would reopen a canary).
public struct ExposureIncrease: Sendable, Equatable, Codable {
    /// The route.
    public var route: String
    /// The cohort that would get more traffic (not the route's baseline in either table).
    public var cohort: String
    /// Its split weight now, in 0.01% units (0 when the route or cohort does not exist now).
    public var fromWeight: Int
    /// Its split weight in the other table, in 0.01% units.
    public var toWeight: Int
    /// Rules (0-based, in config order) that would forward to it again (after an abort or a
    /// switch pointed them elsewhere).
    public var rules: [Int]

    /// Creates an increase.
    public init(route: String, cohort: String, fromWeight: Int, toWeight: Int, rules: [Int] = []) {
        self.route = route
        self.cohort = cohort
        self.fromWeight = fromWeight
        self.toWeight = toWeight
        self.rules = rules
    }

    /// JSON keys (snake case).
    enum CodingKeys: String, CodingKey {
        case route, cohort, fromWeight = "from_weight", toWeight = "to_weight", rules
    }
}

extension RoutingTable {
    /// What publishing `self` in place of `current` would raise: per route (by name) and per
    /// cohort (by name) that is the route's baseline in neither table, a higher split weight,
    /// or rules that forward to the cohort where they did not before. Empty when `self` sends
    /// no cohort but a baseline more traffic than `current` does (a safe rollback).
    ///
    /// Pure; order: routes in `self`'s order, cohorts in route order.
    public func exposureIncreases(comparedTo current: RoutingTable) -> [ExposureIncrease] {
        var out: [ExposureIncrease] = []
        for (r, route) in routes.enumerated() {
            let c = current.routeIndex(named: route.name)
            let now = c.map { current.routes[$0] }
            let baselines: Set<String> = [
                route.baseline >= 0 ? route.cohorts[Int(route.baseline)].name : "",
                now.flatMap { $0.baseline >= 0 ? $0.cohorts[Int($0.baseline)].name : nil } ?? "",
            ]
            let newRules = ruleCohorts(route: r).map { $0 >= 0 ? route.cohorts[Int($0)].name : nil }
            let oldRules: [String?] = c.map { i in current.ruleCohorts(route: i).map { $0 >= 0 ? now!.cohorts[Int($0)].name : nil } } ?? []
            for cohort in route.cohorts where !baselines.contains(cohort.name) {
                let from = now?.cohorts.first { $0.name == cohort.name }?.weight ?? 0
                var reopened: [Int] = []
                for (i, target) in newRules.enumerated() where target == cohort.name {
                    if i >= oldRules.count || oldRules[i] != cohort.name { reopened.append(i) }
                }
                if cohort.weight > from || !reopened.isEmpty {
                    out.append(ExposureIncrease(route: route.name, cohort: cohort.name, fromWeight: from,
                                                toWeight: cohort.weight, rules: reopened))
                }
            }
        }
        return out
    }
}
