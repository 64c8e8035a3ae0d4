import SluiceCore

extension ClusterStore {
    /// Adds `GET /admin/cluster` (this replica in its fleet: `ClusterStatus`) and replaces
    /// `GET /metrics` with one that appends the `sluice_cluster_*` families.
    public func registerAdminEndpoints(on admin: AdminServer, hub: MetricsHub, routing: RoutingController,
                                       rollouts: RolloutController) {
        admin.register("GET", "/admin/cluster") { [self] _ in
            .json(status())
        }
        admin.register("GET", "/metrics") { [self] _ in
            .text(hub.renderMetrics(table: routing.table) + rollouts.renderMetrics() + renderMetrics(),
                  contentType: PrometheusExposition.contentType)
        }
    }
}
