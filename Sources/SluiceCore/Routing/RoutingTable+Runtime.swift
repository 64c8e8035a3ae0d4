/// One cohort's weight in a runtime split, in 0.01% units (0...10000).
public struct CohortWeight: Sendable, Equatable, Hashable {
    /// Cohort name (a cohort of the route).
    public var cohort: String
    /// Share in 0.01% units.
    public var weight: Int

    /// Creates a weight.
    public init(cohort: String, weight: Int) {
        self.cohort = cohort
        self.weight = weight
    }

    /// A weight in 0.01% units written as a percentage without trailing zeros: `90`, `4.5`, `0.25`.
    public static func percentText(_ units: Int) -> String {
        let sign = units < 0 ? "-" : ""
        let u = units < 0 ? -units : units
        let whole = u / 100, frac = u % 100
        if frac == 0 { return "\(sign)\(whole)" }
        if frac % 10 == 0 { return "\(sign)\(whole).\(frac / 10)" }
        return "\(sign)\(whole).\(frac < 10 ? "0" : "")\(frac)"
    }
}

/// A change to one route made at runtime (admin API, CLI), applied on top of a table compiled
/// from the config file.
public enum RouteChange: Sendable, Equatable, Hashable {
    /// New split weights. Cohorts not named get weight 0 (split cohorts keep their lane of the
    /// bucket layout, so a ramp stays monotonic); rules are unchanged.
    case split(route: String, weights: [CohortWeight])
    /// Every request of the route goes to `cohort` (blue/green switch): its weight becomes 100%
    /// and rules that forward to a cohort forward to it (rules that answer directly stay).
    case switchTo(route: String, cohort: String)
    /// Every request of the route goes to its baseline, as `switchTo` the baseline does.
    case abort(route: String)

    /// The route the change applies to.
    public var route: String {
        switch self {
        case .split(let route, _), .switchTo(let route, _), .abort(let route): return route
        }
    }
}

/// Why a runtime change cannot be applied to a table. The message names the problem and what
/// would be valid.
public enum RoutingChangeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No route of that name.
    case unknownRoute(String, known: [String])
    /// The route answers directly (`respond:`) and has no cohorts to split.
    case noCohorts(route: String)
    /// The route has no cohort of that name.
    case unknownCohort(route: String, cohort: String, known: [String])
    /// A cohort was named twice in one split.
    case duplicateCohort(route: String, cohort: String)
    /// A weight outside 0...100%.
    case weightOutOfRange(route: String, cohort: String, weight: Int)
    /// The weights do not add up to 100%.
    case weightsSum(route: String, sum: Int)
    /// A split with no cohort.
    case emptySplit(route: String)

    /// A message for people.
    public var description: String {
        func list(_ names: [String]) -> String { names.map { "`\($0)`" }.joined(separator: ", ") }
        switch self {
        case .unknownRoute(let route, let known):
            return "unknown route `\(route)`" + (known.isEmpty ? "" : " (routes: \(list(known)))")
        case .noCohorts(let route):
            return "route `\(route)` answers directly (`respond:`) and has no cohorts"
        case .unknownCohort(let route, let cohort, let known):
            return "route `\(route)` has no cohort `\(cohort)` (cohorts: \(list(known)))"
        case .duplicateCohort(let route, let cohort):
            return "cohort `\(cohort)` is given twice for route `\(route)`"
        case .weightOutOfRange(let route, let cohort, let weight):
            return "weight \(CohortWeight.percentText(weight))% of `\(cohort)` (route `\(route)`) is outside 0...100"
        case .weightsSum(let route, let sum):
            return "weights of route `\(route)` sum to \(CohortWeight.percentText(sum)), must be 100"
        case .emptySplit(let route):
            return "a split of route `\(route)` needs at least one cohort"
        }
    }
}

extension RoutingTable {
    /// Index of the route named `name`, if any.
    public func routeIndex(named name: String) -> Int? {
        routes.firstIndex { $0.name == name }
    }

    /// The cohort each rule of route `route` forwards to, in rule order (-1: the rule answers directly).
    public func ruleCohorts(route: Int) -> [Int32] {
        let plan = plans[route]
        return rules[Int(plan.ruleStart)..<Int(plan.ruleStart + plan.ruleCount)].map(\.cohort)
    }

    /// The same table under another version number (a rollback republishes an earlier table
    /// as a new version). Shares every array with `self`.
    public func renumbered(version: UInt64) -> RoutingTable {
        RoutingTable(copying: self, version: version)
    }

    /// A new table, numbered `version`, with `changes` applied in order (a later change to a
    /// route replaces an earlier one, since each starts from this table's route). Pure: `self`
    /// is not modified, and matchers, upstreams and responses are shared with it.
    public func applying(_ changes: [RouteChange], version: UInt64) throws(RoutingChangeError) -> RoutingTable {
        var newRoutes = routes
        var newRules = rules
        // Per route: weights and in-split flags when changed.
        var newWeights: [[Int]?] = Array(repeating: nil, count: routes.count)
        var newInSplit: [[Bool]?] = Array(repeating: nil, count: routes.count)
        for change in changes {
            guard let r = routeIndex(named: change.route) else {
                throw .unknownRoute(change.route, known: routes.map(\.name))
            }
            let route = routes[r]
            guard !route.cohorts.isEmpty else { throw .noCohorts(route: route.name) }
            let names = route.cohorts.map(\.name)
            var weights = route.cohorts.map(\.weight)
            var inSplit = route.cohorts.map(\.inSplit)
            // Rules of this route start from the compiled table again.
            let plan = plans[r]
            for i in Int(plan.ruleStart)..<Int(plan.ruleStart + plan.ruleCount) { newRules[i] = rules[i] }
            let target: Int?
            switch change {
            case .split(_, let given):
                guard !given.isEmpty else { throw .emptySplit(route: route.name) }
                weights = Array(repeating: 0, count: names.count)
                var seen = Set<String>()
                var sum = 0
                for w in given {
                    guard let c = names.firstIndex(of: w.cohort) else {
                        throw .unknownCohort(route: route.name, cohort: w.cohort, known: names)
                    }
                    guard seen.insert(w.cohort).inserted else { throw .duplicateCohort(route: route.name, cohort: w.cohort) }
                    guard (0...Int(StickyHash.buckets)).contains(w.weight) else {
                        throw .weightOutOfRange(route: route.name, cohort: w.cohort, weight: w.weight)
                    }
                    weights[c] = w.weight
                    inSplit[c] = true
                    sum += w.weight
                }
                guard sum == Int(StickyHash.buckets) else { throw .weightsSum(route: route.name, sum: sum) }
                target = nil
            case .switchTo(_, let cohort):
                guard let c = names.firstIndex(of: cohort) else {
                    throw .unknownCohort(route: route.name, cohort: cohort, known: names)
                }
                target = c
            case .abort:
                target = Int(route.baseline)
            }
            if let target {
                weights = Array(repeating: 0, count: names.count)
                weights[target] = Int(StickyHash.buckets)
                inSplit[target] = true
                for i in Int(plan.ruleStart)..<Int(plan.ruleStart + plan.ruleCount) where newRules[i].cohort >= 0 {
                    newRules[i].cohort = Int32(target)
                }
            }
            newWeights[r] = weights
            newInSplit[r] = inSplit
            newRoutes[r] = Route(
                name: route.name,
                cohorts: route.cohorts.indices.map { c in
                    Cohort(name: names[c], upstream: route.cohorts[c].upstream, weight: weights[c], inSplit: inSplit[c])
                },
                baseline: route.baseline, sticky: route.sticky, cohortHeader: route.cohortHeader,
                cohortResponseHeader: route.cohortResponseHeader, rollout: route.rollout,
                upgrade: route.upgradeProtocols.map { String(decoding: $0, as: UTF8.self) },
                compression: route.compression,
                normalizesPath: route.normalizesPath, forwardNormalizedPath: route.forwardNormalizedPath)
            newRoutes[r].retry = route.retry
        }
        // Split ranges are concatenated per route: rebuild the array, re-laying changed routes.
        var newPlans = plans
        var newRanges: [SplitRange] = []
        newRanges.reserveCapacity(splitRanges.count)
        for r in plans.indices {
            let plan = plans[r]
            let start = newRanges.count
            if let weights = newWeights[r], let inSplit = newInSplit[r] {
                newRanges += CohortSplit.layout(weights: weights, inSplit: inSplit, baseline: Int(routes[r].baseline))
            } else {
                newRanges += splitRanges[Int(plan.splitStart)..<Int(plan.splitStart + plan.splitCount)]
            }
            newPlans[r].splitStart = Int32(start)
            newPlans[r].splitCount = Int32(newRanges.count - start)
        }
        return RoutingTable(copying: self, version: version, routes: newRoutes, plans: newPlans, rules: newRules,
                            splitRanges: newRanges)
    }
}
