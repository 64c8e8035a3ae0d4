import SluiceCore

extension RolloutController {
    /// Adds the rollout endpoints to `admin` (the POSTs need the bearer token when one is configured):
    ///
    /// | endpoint | does |
    /// | --- | --- |
    /// | `POST /admin/routes/{route}/rollout/start` | start at step 1 (from pending, promoted, rolled back or aborted) |
    /// | `POST /admin/routes/{route}/rollout/pause` | hold the step, its clock stopped |
    /// | `POST /admin/routes/{route}/rollout/resume` | continue the step (its share applied again if the split was changed) |
    /// | `POST /admin/routes/{route}/rollout/promote` | canary to 100% now |
    /// | `POST /admin/routes/{route}/rollout/abort` | canary to 0% now (everything to the baseline) |
    /// | `GET /admin/routes/{route}/rollout` | the status (`RolloutStatus`) |
    /// | `GET /admin/rollouts` | every route's status |
    ///
    /// A command answers 200 with a `RolloutCommandResult`; 409 with the reason when it does not
    /// apply now (`cannot resume: ...`) or the route has no rollout, 400 for an unknown route.
    /// Bodies may carry `"cause"`. `GET /metrics` is replaced by one that appends the
    /// `sluice_rollout_*` families (`table` gives the serving table, as for `AdminServer`).
    public func registerAdminEndpoints(on admin: AdminServer) {
        let hub = self.hub
        let routing = self.routing
        admin.register("GET", "/metrics") { [self] _ in
            .text(hub.renderMetrics(table: routing.table) + renderMetrics(), contentType: PrometheusExposition.contentType)
        }
        admin.register("GET", "/admin/rollouts") { [self] _ in
            .json(statuses())
        }
        admin.register("GET", "/admin/routes/{route}/rollout") { [self] request in
            let route = request.pathParameters["route"] ?? ""
            if let status = status(route: route) { return .json(status) }
            let error: ControlError = routing.table.routeIndex(named: route) == nil
                ? .invalidChange(.unknownRoute(route, known: routing.table.routes.map(\.name)))
                : .conflict("route `\(route)` has no rollout (add a `rollout:` to it in the config)")
            return .json(error.body, status: error.status)
        }
        for command in RolloutCommand.allCases {
            admin.register("POST", "/admin/routes/{route}/rollout/\(command.rawValue)") { [self] request in
                let route = request.pathParameters["route"] ?? ""
                do throws(ControlError) {
                    let body = try RoutingController.decode(CauseBody.self, request)
                    let cause = RoutingController.cause(body.cause, "POST /admin/routes/\(route)/rollout/\(command.rawValue)")
                    return .json(try self.command(command, route: route, cause: cause))
                } catch {
                    return .json(error.body, status: error.status)
                }
            }
        }
    }
}
