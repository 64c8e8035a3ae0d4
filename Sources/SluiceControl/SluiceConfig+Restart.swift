extension SluiceConfig {
    /// Top-level settings that differ in `loaded` but take effect only at a restart (a reload
    /// applies routes and upstreams; these are reported as warnings), by config key.
    package func restartOnlyChanges(_ loaded: SluiceConfig) -> [String] {
        let a = self, b = loaded
        var out: [String] = []
        if a.workers != b.workers { out.append("workers") }
        if a.listeners != b.listeners { out.append("listeners") }
        var adminA = a.admin, adminB = b.admin
        adminA.metrics = nil
        adminB.metrics = nil
        if a.adminAddress != b.adminAddress || a.adminToken != b.adminToken || adminA != adminB { out.append("admin") }
        if a.admin.metrics != b.admin.metrics { out.append("metrics") }
        if a.timeouts != b.timeouts { out.append("timeouts") }
        if a.limits != b.limits { out.append("limits") }
        if a.http2 != b.http2 { out.append("http2") }
        if a.accessLog != b.accessLog || a.accessLogFormat != b.accessLogFormat { out.append("access_log") }
        if a.trustedProxies != b.trustedProxies { out.append("trusted_proxies") }
        if a.cluster != b.cluster { out.append("cluster") }
        if a.busyPoll != b.busyPoll { out.append("busy_poll") }
        // `state_file` is not compared: `sluice run --state-file` overrides it, and it is read at start only.
        return out
    }

    /// Whether `loaded`'s listener TLS settings can go to the running workers: they are matched to
    /// the listening sockets by position, so the listeners (name, address, TLS or not, in order)
    /// must be the ones this config started with. Certificates and TLS settings may differ.
    package func listenerTLSLinesUp(with loaded: SluiceConfig) -> Bool {
        listeners.count == loaded.listeners.count
            && zip(listeners, loaded.listeners).allSatisfy { $0.name == $1.name && $0.address == $1.address }
            && zip(tls.listeners, loaded.tls.listeners).allSatisfy { ($0 == nil) == ($1 == nil) }
            && tls.listeners.count == loaded.tls.listeners.count
    }
}
