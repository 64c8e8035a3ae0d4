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

    /// Adds the release-safety endpoints (issue 19) to `admin`: `POST /admin/undo`.
    func registerSafetyEndpoints(on admin: AdminServer) {
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
