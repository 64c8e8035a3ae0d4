#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SluiceCore

extension RoutingController {
    /// Publishes the version that served before the current one again (`sluice undo`), with
    /// `rollback`'s guard: refused unless `force` when it would raise a non-baseline cohort's traffic.
    public func undo(force: Bool = false, cause: String) throws(ControlError) -> ChangeResult {
        try rollback(to: nil, force: force, cause: cause)
    }

    /// Adds the release-safety endpoints (issue 19) to `admin`: `POST /admin/undo`, `POST /admin/explain`.
    func registerSafetyEndpoints(on admin: AdminServer) {
        registerExplainEndpoint(on: admin)
        admin.register("POST", "/admin/undo") { [self] request in
            Self.answer { () throws(ControlError) in
                let body = try Self.decode(UndoBody.self, request)
                return try undo(force: body.force ?? false, cause: Self.cause(body.cause, "POST /admin/undo"))
            }
        }
    }
}

/// `{"force": true, "cause": "..."}`.
struct UndoBody: Decodable {
    /// Publish it even if it sends more traffic to a non-baseline cohort.
    var force: Bool?
    /// Why.
    var cause: String?
}

extension RoutingController {
    /// Explains `input` against the serving table (runtime overrides included) with the
    /// process's parser limits and trusted proxies; a random entropy when the input has none.
    public func explain(_ input: ExplainInput) throws(ControlError) -> ExplainReport {
        let (table, overrides) = snapshot()
        let settings = startSettings
        return try Explainer.explain(input, table: table, overrides: overrides, trustedProxies: settings.trustedProxies,
                                     limits: settings.limits.parser, randomEntropy: UInt64.random(in: 0...UInt64.max))
    }

    /// `POST /admin/explain` with an `ExplainInput` body: 200 with an `ExplainReport`, 400 for a
    /// request that cannot be built or that the proxy would reject. Reads only: no token needed.
    func registerExplainEndpoint(on admin: AdminServer) {
        admin.register("POST", "/admin/explain", mutating: false) { [self] request in
            do throws(ControlError) {
                let input = try Self.decode(ExplainInput.self, request)
                return .json(try explain(input))
            } catch {
                return .json(error.body, status: error.status)
            }
        }
    }
}
