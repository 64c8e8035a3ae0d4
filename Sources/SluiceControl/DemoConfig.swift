/// The config `sluice demo` runs: one listener, the admin API, two built-in upstreams and a
/// 90/10 canary split with a sluice-assigned sticky cookie and an `X-Canary: always` override.
public enum DemoConfig {
    /// The demo config as YAML (also a commented starting point for real configs).
    public static let yaml: String = """
        # Sluice demo: a 90/10 canary split in front of two built-in upstreams.
        listeners:
          - name: public
            address: 127.0.0.1:8080
        admin:
          address: 127.0.0.1:9901
        upstreams:
          stable: { endpoints: ["127.0.0.1:9101"] }
          canary: { endpoints: ["127.0.0.1:9102"] }
        routes:
          - name: web
            match: { host: "*", path_prefix: "/" }
            baseline: stable
            # No `sticky:` key: sluice assigns each new client a key and sets the `sluice_sticky`
            # cookie, so a client stays in its cohort.
            rules:
              - match: { header: { name: X-Canary, value: always } }
                cohort: canary
            split: { stable: 90, canary: 10 }
        """
}
