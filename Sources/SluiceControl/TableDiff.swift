import SluiceCore

/// What changed between two routing tables, in one line for people (history, events, CLI):
/// `web: stable 95→90, canary 5→10; upstreams: canary endpoints 127.0.0.1:9003 → 127.0.0.1:9004`.
///
/// It compares what a reload or a runtime change usually moves: routes present, each route's
/// cohorts, weights, baseline and the cohorts its rules forward to, and each upstream's
/// endpoints (as written, with the resolved address when a host name resolves differently).
/// Changes to match conditions are reported only as a changed route count when nothing else differs.
public enum TableDiff {
    /// The changes from `old` to `new`, `; `-separated; `no change to routes, splits or endpoints`
    /// when none of those differ.
    public static func describe(from old: RoutingTable, to new: RoutingTable) -> String {
        let parts = changes(from: old, to: new)
        return parts.isEmpty ? "no change to routes, splits or endpoints" : parts.joined(separator: "; ")
    }

    /// The changes as separate phrases (empty when nothing compared differs).
    public static func changes(from old: RoutingTable, to new: RoutingTable) -> [String] {
        var out: [String] = []
        let oldNames = old.routes.map(\.name), newNames = new.routes.map(\.name)
        let added = newNames.filter { !oldNames.contains($0) }
        let removed = oldNames.filter { !newNames.contains($0) }
        if !added.isEmpty { out.append("routes added: " + added.joined(separator: ", ")) }
        if !removed.isEmpty { out.append("routes removed: " + removed.joined(separator: ", ")) }
        let common = newNames.filter { oldNames.contains($0) }
        if common != oldNames.filter({ newNames.contains($0) }) { out.append("route order changed") }
        for name in common {
            let o = old.routeIndex(named: name)!, n = new.routeIndex(named: name)!
            if let line = routeChange(old: old, oldIndex: o, new: new, newIndex: n) { out.append("\(name): \(line)") }
        }
        out += upstreamChanges(old: old.upstreams, new: new.upstreams)
        return out
    }

    /// The changes of one route, e.g. `stable 95→90, canary 5→10`; nil when equal.
    static func routeChange(old: RoutingTable, oldIndex: Int, new: RoutingTable, newIndex: Int) -> String? {
        let a = old.routes[oldIndex], b = new.routes[newIndex]
        var parts: [String] = []
        for c in b.cohorts {
            guard let prior = a.cohorts.first(where: { $0.name == c.name }) else {
                parts.append("\(c.name) added at \(CohortWeight.percentText(c.weight))")
                continue
            }
            if prior.weight != c.weight {
                parts.append("\(c.name) \(CohortWeight.percentText(prior.weight))→\(CohortWeight.percentText(c.weight))")
            }
            let oldUpstream = old.upstreams[Int(prior.upstream)].name, newUpstream = new.upstreams[Int(c.upstream)].name
            if oldUpstream != newUpstream { parts.append("\(c.name) upstream \(oldUpstream)→\(newUpstream)") }
        }
        for c in a.cohorts where !b.cohorts.contains(where: { $0.name == c.name }) {
            parts.append("\(c.name) removed")
        }
        let oldBaseline = a.baseline >= 0 ? a.cohorts[Int(a.baseline)].name : nil
        let newBaseline = b.baseline >= 0 ? b.cohorts[Int(b.baseline)].name : nil
        if oldBaseline != newBaseline { parts.append("baseline \(oldBaseline ?? "none")→\(newBaseline ?? "none")") }
        let oldRules = old.ruleCohorts(route: oldIndex).map { $0 >= 0 ? a.cohorts[Int($0)].name : "respond" }
        let newRules = new.ruleCohorts(route: newIndex).map { $0 >= 0 ? b.cohorts[Int($0)].name : "respond" }
        if oldRules != newRules {
            let targets = Set(newRules.filter { $0 != "respond" })
            if oldRules.count == newRules.count, targets.count == 1, let t = targets.first {
                parts.append("rules → \(t)")
            } else {
                parts.append("rules changed")
            }
        }
        return parts.isEmpty ? nil : parts.joined(separator: ", ")
    }

    /// `upstreams: canary endpoints A → B`, `upstreams added: x`, ...
    static func upstreamChanges(old: [UpstreamGroup], new: [UpstreamGroup]) -> [String] {
        var out: [String] = []
        let oldNames = old.map(\.name), newNames = new.map(\.name)
        let added = newNames.filter { !oldNames.contains($0) }
        let removed = oldNames.filter { !newNames.contains($0) }
        if !added.isEmpty { out.append("upstreams added: " + added.joined(separator: ", ")) }
        if !removed.isEmpty { out.append("upstreams removed: " + removed.joined(separator: ", ")) }
        for group in new {
            guard let prior = old.first(where: { $0.name == group.name }) else { continue }
            let a = prior.endpoints.map(describe), b = group.endpoints.map(describe)
            if a != b {
                out.append("upstreams: \(group.name) endpoints \(a.joined(separator: ", ")) → \(b.joined(separator: ", "))")
            }
        }
        return out
    }

    /// An endpoint as written, with its resolved address when that is not the same text, and
    /// its weight when not 1: `api.internal:80 (10.1.2.3:80)`, `127.0.0.1:9001 weight 3`.
    static func describe(_ e: Endpoint) -> String {
        var text = e.label
        if "\(e.address)" != e.label { text += " (\(e.address))" }
        if e.weight != 1 { text += " weight \(e.weight)" }
        return text
    }
}
