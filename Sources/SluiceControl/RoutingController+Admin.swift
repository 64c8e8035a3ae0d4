#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SluiceCore

extension RoutingController {
    /// Adds the routing endpoints to `admin` (the mutating ones need the bearer token when
    /// one is configured):
    ///
    /// | endpoint | body | does |
    /// | --- | --- | --- |
    /// | `POST /admin/reload` | | reload the config file (422 with `diagnostics` when invalid) |
    /// | `POST /admin/routes/{route}/split` | `{"weights": {"stable": 90, "canary": 10}}` | set the split |
    /// | `POST /admin/routes/{route}/switch` | `{"cohort": "green"}` | all traffic to one cohort |
    /// | `POST /admin/routes/{route}/abort` | | all traffic to the baseline |
    /// | `POST /admin/routes/{route}/clear` | | remove the route's runtime override |
    /// | `POST /admin/rollback` | `{"to": 7, "force": true}` (both optional) | publish an earlier version again (409 when it would raise a non-baseline cohort's traffic, unless `force`) |
    /// | `POST /admin/undo` | `{"force": true}` (optional) | publish the previous version again (same guard) |
    /// | `GET /admin/history` | | recent versions and the overrides in force |
    ///
    /// Every body may carry `"cause": "..."` (recorded in the history and events). Success is
    /// 200 with a `ChangeResult`; failures carry a `ControlErrorBody`. `GET /admin/stats` is
    /// replaced by one that shows each route's override (`hub` provides the figures).
    public func registerAdminEndpoints(on admin: AdminServer, hub: MetricsHub) {
        admin.register("GET", "/admin/stats") { [self] _ in
            let (table, overrides) = snapshot()
            return .json(StatsReport.build(hub: hub, table: table, overrides: overrides))
        }
        admin.register("GET", "/admin/history") { [self] request in
            var report = history()
            if let l = request.query["limit"] {
                guard let n = Int(l), n >= 0 else { return .error(400, "limit must be a non-negative integer") }
                if report.versions.count > n { report.versions.removeFirst(report.versions.count - n) }
            }
            return .json(report)
        }
        admin.register("POST", "/admin/reload") { [self] request in
            Self.answer { () throws(ControlError) in
                let body = try Self.decode(CauseBody.self, request)
                return try reloadFromFile(cause: Self.cause(body.cause, "POST /admin/reload"))
            }
        }
        admin.register("POST", "/admin/routes/{route}/split") { [self] request in
            Self.answer { () throws(ControlError) in
                let route = request.pathParameters["route"] ?? ""
                let body = try Self.decode(SplitBody.self, request)
                guard let given = body.weights, !given.isEmpty else {
                    throw .badRequest("the body needs `weights`, e.g. {\"weights\": {\"stable\": 90, \"canary\": 10}}")
                }
                var weights: [CohortWeight] = []
                for (cohort, value) in given.sorted(by: { $0.key < $1.key }) {
                    switch value.units {
                    case .success(let units): weights.append(CohortWeight(cohort: cohort, weight: units))
                    case .failure(let problem): throw .badRequest("weight of `\(cohort)`: \(problem.message)")
                    }
                }
                return try setSplit(route: route, weights: weights, cause: Self.cause(body.cause, "POST /admin/routes/\(route)/split"),
                                    ifVersion: body.ifVersion)
            }
        }
        admin.register("POST", "/admin/routes/{route}/switch") { [self] request in
            Self.answer { () throws(ControlError) in
                let route = request.pathParameters["route"] ?? ""
                let body = try Self.decode(SwitchBody.self, request)
                guard let cohort = body.cohort, !cohort.isEmpty else {
                    throw .badRequest("the body needs `cohort`, e.g. {\"cohort\": \"green\"}")
                }
                return try switchTo(route: route, cohort: cohort, cause: Self.cause(body.cause, "POST /admin/routes/\(route)/switch"),
                                    ifVersion: body.ifVersion)
            }
        }
        admin.register("POST", "/admin/routes/{route}/abort") { [self] request in
            Self.answer { () throws(ControlError) in
                let route = request.pathParameters["route"] ?? ""
                let body = try Self.decode(CauseBody.self, request)
                return try abort(route: route, cause: Self.cause(body.cause, "POST /admin/routes/\(route)/abort"),
                                 local: body.local ?? false)
            }
        }
        admin.register("POST", "/admin/routes/{route}/clear") { [self] request in
            Self.answer { () throws(ControlError) in
                let route = request.pathParameters["route"] ?? ""
                let body = try Self.decode(CauseBody.self, request)
                return try clear(route: route, cause: Self.cause(body.cause, "POST /admin/routes/\(route)/clear"),
                                 ifVersion: body.ifVersion)
            }
        }
        admin.register("POST", "/admin/rollback") { [self] request in
            Self.answer { () throws(ControlError) in
                let body = try Self.decode(RollbackBody.self, request)
                return try rollback(to: body.to, force: body.force ?? false, cause: Self.cause(body.cause, "POST /admin/rollback"),
                                    ifVersion: body.ifVersion)
            }
        }
        registerSafetyEndpoints(on: admin)
    }

    /// Runs a change and turns its result or error into a response.
    static func answer(_ body: () throws(ControlError) -> ChangeResult) -> AdminResponse {
        do {
            return .json(try body())
        } catch {
            return .json(error.body, status: error.status)
        }
    }

    /// The recorded cause: what the client said (at most 200 characters), else `fallback`.
    static func cause(_ given: String?, _ fallback: String) -> String {
        guard let given, !given.isEmpty else { return "admin API: " + fallback }
        return String(given.prefix(200))
    }

    /// Decodes a JSON body (an empty body is `{}`).
    static func decode<T: Decodable>(_ type: T.Type, _ request: AdminRequest) throws(ControlError) -> T {
        let bytes = request.body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) ? Array("{}".utf8) : request.body
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw .badRequest("the body is not the JSON expected: \(Self.describe(error))")
        }
    }

    /// A short description of a decoding error.
    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
             DecodingError.keyNotFound(_, let context), DecodingError.dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return (path.isEmpty ? "" : "`\(path)`: ") + context.debugDescription
        default:
            return "\(error)"
        }
    }
}

/// A body with only an optional cause.
struct CauseBody: Decodable {
    /// Why (recorded in the history and events).
    var cause: String?
    /// Abort only: on this replica only, shared with the fleet later (`cluster:`).
    var local: Bool?
    /// Refuse the change unless this version is current (stale otherwise).
    var ifVersion: UInt64?

    enum CodingKeys: String, CodingKey {
        case cause, local, ifVersion = "if_version"
    }
}

/// `{"weights": {"stable": 90, "canary": "10"}, "cause": "..."}`.
struct SplitBody: Decodable {
    /// Weight per cohort name.
    var weights: [String: WeightValue]?
    /// Why.
    var cause: String?
    /// Refuse the change unless this version is current.
    var ifVersion: UInt64?

    enum CodingKeys: String, CodingKey {
        case weights, cause, ifVersion = "if_version"
    }
}

/// `{"cohort": "green", "cause": "..."}`.
struct SwitchBody: Decodable {
    /// The cohort to send everything to.
    var cohort: String?
    /// Why.
    var cause: String?
    /// Refuse the change unless this version is current.
    var ifVersion: UInt64?

    enum CodingKeys: String, CodingKey {
        case cohort, cause, ifVersion = "if_version"
    }
}

/// `{"to": 7, "cause": "..."}`.
struct RollbackBody: Decodable {
    /// The version to go back to (nil: the one before the current).
    var to: UInt64?
    /// Publish it even if it sends more traffic to a non-baseline cohort.
    var force: Bool?
    /// Why.
    var cause: String?
    /// Refuse the change unless this version is current.
    var ifVersion: UInt64?

    enum CodingKeys: String, CodingKey {
        case to, force, cause, ifVersion = "if_version"
    }
}

/// A weight given as a JSON number (`90`, `4.5`) or string (`"90"`, `"4.5%"`), as a percentage.
struct WeightValue: Decodable {
    /// The weight in 0.01% units, or why it is not one.
    var units: Result<Int, ConfigValues.Problem>

    /// Reads a number or a string; a value that is not a weight is kept as a failure (so the
    /// error names the cohort), not thrown.
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let d = try? c.decode(Double.self) {
            let scaled = d * 100
            let rounded = scaled.rounded()
            if !d.isFinite || d < 0 || d > 100 {
                units = .failure(ConfigValues.Problem(message: "\(d) is not a percentage from 0 to 100"))
            } else if abs(scaled - rounded) > 1e-6 {
                units = .failure(ConfigValues.Problem(message: "\(d) has more than two decimals (the split's granularity is 0.01%)"))
            } else {
                units = .success(Int(rounded))
            }
        } else {
            units = ConfigValues.parseWeight(try c.decode(String.self))
        }
    }
}
