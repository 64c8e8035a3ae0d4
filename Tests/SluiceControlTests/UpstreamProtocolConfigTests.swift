import Testing
import SluiceControl
import SluiceCore

/// `upstreams.X.protocol` (http1, h2c, h2): defaults, and clear errors with the key path.
@Suite struct UpstreamProtocolConfigTests {
    func upstream(_ extra: String) -> String {
        """
        listeners:
          - name: public
            address: 127.0.0.1:8080
        upstreams:
          app: { endpoints: ["127.0.0.1:9001"]\(extra) }
        routes:
          - { name: web, upstream: app }
        """
    }

    @Test func defaultsAndValues() throws {
        #expect(try #require(mustLoad(upstream(""))).table.upstreams[0].wire == .http1)
        #expect(try #require(mustLoad(upstream(", protocol: http1"))).table.upstreams[0].wire == .http1)
        #expect(try #require(mustLoad(upstream(", protocol: h2c"))).table.upstreams[0].wire == .h2c)
        let h2 = try #require(mustLoad(upstream(", protocol: h2, tls: { verify: false }")))
        #expect(h2.table.upstreams[0].wire == .h2)
        #expect(h2.tls.upstreams["app"]?.alpnH2 == true, "ALPN offers h2 to the upstream")
        let plainTLS = try #require(mustLoad(upstream(", tls: { verify: false }")))
        #expect(plainTLS.tls.upstreams["app"]?.alpnH2 == false)
    }

    @Test(arguments: [
        (", protocol: h3", "upstreams.app.protocol"),
        (", protocol: h2", "upstreams.app.protocol"),  // h2 needs tls
        (", protocol: h2c, tls: { verify: false }", "upstreams.app.protocol"),
        (", protocol: [h2c]", "upstreams.app.protocol"),
    ])
    func invalidProtocolsAreRefusedWithTheirPath(extra: String, path: String) {
        let found = diagnostics(upstream(extra))
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.keyPath == path, "\(found)")
    }
}
