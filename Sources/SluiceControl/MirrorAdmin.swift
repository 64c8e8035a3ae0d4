#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SluiceCore

/// The answer of `GET /admin/mirror/diffs`: the latest differing pairs (oldest first).
public struct MirrorDiffReport: Sendable, Codable, Equatable {
    /// The route asked for (nil: every route).
    public var route: String?
    /// The routes that mirror with `compare: true` in the serving table.
    public var comparing: [String]
    /// The pairs.
    public var diffs: [MirrorDiff]

    /// Creates a report.
    public init(route: String?, comparing: [String], diffs: [MirrorDiff]) {
        self.route = route
        self.comparing = comparing
        self.diffs = diffs
    }

    /// For people (`sluice mirror diffs ROUTE`).
    public var text: String {
        let scope = route.map { "route \($0)" } ?? "every route"
        guard !diffs.isEmpty else {
            if let route, !comparing.contains(route) {
                return "no differing pairs for \(scope) (it has no mirror with `compare: true`)\n"
            }
            return "no differing pairs for \(scope)\n"
        }
        var out = "\(diffs.count) differing pair\(diffs.count == 1 ? "" : "s") for \(scope), oldest first:\n"
        for d in diffs {
            out += "  \(d.time) \(d.route) -> \(d.mirror): \(d.summary)\n"
        }
        return out
    }
}

extension MirrorBoard {
    /// Adds `GET /admin/mirror/diffs` (`?route=NAME`) to `admin`; `table` gives the serving
    /// table (an unknown route is a 404 naming the known ones).
    public func registerAdminEndpoints(on admin: AdminServer, table: @escaping @Sendable () -> RoutingTable) {
        admin.register("GET", "/admin/mirror/diffs") { [self] request in
            let t = table()
            let comparing = t.mirrorPlans.filter(\.spec.compare).map { t.routes[Int($0.route)].name }
            var unique: [String] = []
            for name in comparing where !unique.contains(name) { unique.append(name) }
            let route = request.query["route"]
            if let route, t.routeIndex(named: route) == nil {
                return .error(404, RoutingChangeError.unknownRoute(route, known: t.routes.map(\.name)).description)
            }
            return .json(MirrorDiffReport(route: route, comparing: unique,
                                          diffs: diffs(route: route, format: { ControlClock.rfc3339(unixNanos: $0) })))
        }
    }
}
