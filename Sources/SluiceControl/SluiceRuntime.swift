import Logging
import SluiceCore
import SluiceProxy

/// The control plane's logger for the runtime's own messages (the CLI bootstraps the handler).
private var runtimeLog: Logger { Logger(label: "sluice") }

extension SluiceConfig {
    /// The IO layer's settings for this config (`workers` overrides the config's worker count).
    public func proxySettings(workers override: Int? = nil) -> ProxySettings {
        var settings = ProxySettings(workers: override ?? workers, listeners: listeners, timeouts: timeouts, limits: limits,
                                     trustedProxies: trustedProxies)
        settings.accessLogFormat = accessLogFormat
        settings.tls = tls
        settings.http2 = http2
        settings.busyPoll = busyPoll
        return settings
    }
}

/// The proxy plus its control plane wired together: metrics hub, routing controller, fault
/// drills, rollout controller, admin API, event log, the fleet's store and the config file
/// watcher. `sluice run` and `sluice demo` start one; so do the integration tests that need
/// everything `run` wires (`ReloadUnderLoadTests`), so no test rebuilds the wiring by hand.
///
/// `@unchecked Sendable`: every stored property is a `let` to a thread-safe object.
public final class SluiceRuntime: @unchecked Sendable {
    public let server: ProxyServer
    public let hub: MetricsHub
    public let admin: AdminServer
    public let events: EventLog
    public let controller: RoutingController
    public let rollouts: RolloutController
    public let watcher: ConfigWatcher?
    /// With `cluster:`: the fleet's shared state in etcd.
    public let cluster: ClusterStore?
    /// Readiness (`GET /ready`) and the systemd notifications.
    public let health: ServiceHealth
    /// Runtime fault drills (between the routing controller and the workers).
    public let faults: FaultController
    /// Active health checks and outlier ejections (`HealthMonitor`).
    public let endpoints: HealthMonitor
    /// Host-name re-resolution (`dns_refresh`), when the config came from a file.
    public let dns: DNSRefresher?

    /// Starts the proxy, the stats sampler, the rollout controller, the admin API and (for a
    /// config file, unless `watch` is false) the file watcher. Runtime overrides and rollouts in
    /// the state file are applied.
    ///
    /// `onFileChange` reports what a change of the config file did (a published version, or the
    /// rejected config); the CLI logs it.
    public static func start(_ config: SluiceConfig, settings: ProxySettings, cause: String, watch: Bool = true,
                             buildVersion: String,
                             onFileChange: @escaping @Sendable (Result<ChangeResult, ControlError>) -> Void = { _ in })
        throws -> SluiceRuntime {
        let hub = MetricsHub(workers: max(1, settings.workers), listenerNames: config.listeners.map(\.name),
                             buildVersion: buildVersion, sampleInterval: RolloutController.sampleInterval(for: config.table))
        let events = EventLog()
        hub.attach(events: events)
        let controller = try RoutingController(config: config, events: events, cause: cause)
        // With `cluster:`, the fleet's state is read (and applied) before the first table is served.
        var cluster: ClusterStore?
        if let settings = config.cluster {
            let store = try ClusterStore(settings: settings, events: events)
            store.attach(controller)
            if !store.isConnected {
                runtimeLog.warning("cluster store (etcd) unreachable: serving the state file's overrides, changes refused until it answers",
                                   metadata: ["etcd": "\(settings.endpoints.joined(separator: ", "))"])
            }
            cluster = store
        }
        let server = ProxyServer(settings: settings, table: controller.table, shards: hub.shards,
                                 seriesMap: { hub.seriesMap(for: $0) })
        // The fault controller sits between the routing controller and the workers: it publishes
        // the routing controller's tables with the drills in force applied.
        let faults = FaultController(routing: controller, events: events)
        faults.attach(server)
        // TLS settings (certificates, trust stores) reach new handshakes at start and at every reload.
        let listenerNames = config.listeners.map(\.name)
        controller.attach(tls: { set in
            server.publishTLS(set)
            hub.recordCertificates(set, listenerNames: listenerNames)
        })
        let health = ServiceHealth()
        let admin = try AdminServer(config: config, hub: hub, events: events, server: server, health: health)
        controller.registerAdminEndpoints(on: admin, hub: hub)
        faults.registerAdminEndpoints(on: admin)
        hub.attach(mirrors: server.mirrorBoard)
        server.mirrorBoard.registerAdminEndpoints(on: admin, table: { [faults] in faults.table })
        try faults.start()
        try server.start()
        try hub.startSampler()
        // After the server: a rollout resumed from the state file may publish a split at once.
        let rollouts = RolloutController(routing: controller, hub: hub)
        rollouts.registerAdminEndpoints(on: admin)
        if let cluster {
            rollouts.joinFleet(cluster)
            cluster.registerAdminEndpoints(on: admin, hub: hub, routing: controller, rollouts: rollouts)
            try cluster.start()
        }
        try rollouts.start()
        hub.attach(endpointHealth: server.endpointHealth)
        admin.registerEndpointHealth(server.endpointHealth)
        let endpoints = HealthMonitor(server: server, events: events)
        try endpoints.start()
        var dns: DNSRefresher?
        if config.sourcePath != nil {
            let refresher = DNSRefresher(controller: controller, events: events)
            try refresher.start()
            dns = refresher
        }
        try admin.start()
        if let stateFile = config.stateFile, let problem = StateFileCheck.problem(path: stateFile) {
            runtimeLog.warning("\(problem)", metadata: ["state_file": "\(stateFile)"])
        }
        for (route, o) in controller.overrides.sorted(by: { $0.key < $1.key }) {
            runtimeLog.notice("runtime override restored: \(o.summary)",
                       metadata: ["route": "\(route)", "state_file": "\(config.stateFile ?? "")", "since": "\(o.since)"])
        }
        for status in rollouts.statuses() where status.state != "pending" || status.lastDecision != nil {
            runtimeLog.notice("rollout restored: \(status.lastDecision?.summary ?? status.state)", metadata: ["route": "\(status.route)"])
        }
        var watcher: ConfigWatcher?
        if watch, let path = config.sourcePath {
            let w = ConfigWatcher(path: path) { [controller] in
                do throws(ControlError) {
                    if let result = try controller.reloadIfChanged(cause: "config file changed") { onFileChange(.success(result)) }
                } catch {
                    onFileChange(.failure(error))
                }
            }
            do {
                try w.start()
                watcher = w
            } catch {
                runtimeLog.warning("not watching the config file for changes (SIGHUP and `sluice reload` still work)",
                            metadata: ["path": "\(path)", "error": "\(error)"])
            }
        }
        // Listening, config loaded, admin API up: ready (READY=1 to systemd with Type=notify).
        health.markReady(status: "serving version \(controller.version)")
        return SluiceRuntime(server: server, hub: hub, admin: admin, events: events, controller: controller,
                             rollouts: rollouts, watcher: watcher, cluster: cluster, health: health, faults: faults,
                             endpoints: endpoints, dns: dns)
    }

    private init(server: ProxyServer, hub: MetricsHub, admin: AdminServer, events: EventLog, controller: RoutingController,
                 rollouts: RolloutController, watcher: ConfigWatcher?, cluster: ClusterStore?, health: ServiceHealth,
                 faults: FaultController, endpoints: HealthMonitor, dns: DNSRefresher?) {
        self.endpoints = endpoints
        self.dns = dns
        self.server = server
        self.hub = hub
        self.admin = admin
        self.events = events
        self.controller = controller
        self.rollouts = rollouts
        self.watcher = watcher
        self.cluster = cluster
        self.health = health
        self.faults = faults
    }

    /// Stops the rollouts (saving their state), drains the proxy and stops the control plane.
    public func stop(drainTimeout: UInt64) {
        // Not ready from the first moment (GET /ready 503, STOPPING=1), while the listeners still accept.
        health.beginDrain()
        rollouts.stop()
        cluster?.stop()
        faults.stop()
        watcher?.stop()
        dns?.stop()
        endpoints.stop()
        health.drain(server, timeout: drainTimeout)
        admin.stop()
        hub.stopSampler()
    }
}

