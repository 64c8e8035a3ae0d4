import Testing
import SluiceControl
import SluiceCore

/// `retries:`, `fallback_to_baseline:` and `limits.retry_buffer_bytes`: defaults, and clear
/// errors with the key path for everything invalid.
@Suite struct RetryConfigTests {
    func route(_ extra: String) -> String {
        baseYAML + """
            routes:
              - name: web
                split: { stable: 90, canary: 10 }
            \(extra)
            """
    }

    @Test func defaultsAndExplicitValues() throws {
        let none = try #require(mustLoad(route("")))
        #expect(none.table.routes[0].retry == nil)
        let plain = try #require(mustLoad(route("    retries: {}")))
        #expect(plain.table.routes[0].retry == RetrySpec(attempts: 2, retryOn: RetrySpec.defaultRetryOn, perTryTimeoutNanos: 0,
                                                          budgetPercent: 20, fallbackToBaseline: false))
        let full = try #require(mustLoad(route("""
                retries: { attempts: 3, retry_on: [connect_failure, 503], per_try_timeout: 1500ms, budget_percent: 50 }
                fallback_to_baseline: true
            """)))
        #expect(full.table.routes[0].retry == RetrySpec(attempts: 3, retryOn: RetrySpec.onConnectFailure | RetrySpec.on503,
                                                         perTryTimeoutNanos: 1_500_000_000, budgetPercent: 50,
                                                         fallbackToBaseline: true))
        let fallbackOnly = try #require(mustLoad(route("    fallback_to_baseline: true")))
        #expect(fallbackOnly.table.routes[0].retry?.attempts == 1)
        #expect(fallbackOnly.table.routes[0].retry?.fallbackToBaseline == true)
        #expect(fallbackOnly.limits.retryBufferBytes == 64 * 1024)
        let limits = try #require(mustLoad(route("") + "\nlimits: { retry_buffer_bytes: 8KiB }\n"))
        #expect(limits.limits.retryBufferBytes == 8192)
    }

    @Test(arguments: [
        ("    retries: { attempts: 0 }", "routes[0].retries.attempts"),
        ("    retries: { attempts: 11 }", "routes[0].retries.attempts"),
        ("    retries: { budget_percent: 101 }", "routes[0].retries.budget_percent"),
        ("    retries: { per_try_timeout: 0s }", "routes[0].retries.per_try_timeout"),
        ("    retries: { per_try_timeout: soon }", "routes[0].retries.per_try_timeout"),
        ("    retries: { retry_on: [500] }", "routes[0].retries.retry_on[0]"),
        ("    retries: { retry_on: [rest] }", "routes[0].retries.retry_on[0]"),
        ("    retries: { tries: 2 }", "routes[0].retries"),
        ("    retries: 3", "routes[0].retries"),
        ("    fallback_to_baseline: maybe", "routes[0].fallback_to_baseline"),
    ])
    func invalidSettingsAreRefusedWithTheirPath(extra: String, path: String) {
        let found = diagnostics(route(extra))
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.keyPath == path, "\(found)")
        #expect((found.first?.line ?? 0) > 0)
    }

    @Test func retryBufferBytesHasABound() {
        let found = diagnostics(route("") + "\nlimits: { retry_buffer_bytes: 1GiB }\n")
        #expect(found.first?.keyPath == "limits.retry_buffer_bytes", "\(found)")
    }

    func upstream(_ extra: String) -> String {
        """
        listeners:
          - name: public
            address: 127.0.0.1:8080
        upstreams:
          app: { endpoints: ["127.0.0.1:9001", "127.0.0.1:9002"]\(extra) }
        routes:
          - { name: web, upstream: app }
        """
    }

    @Test func upstreamBalanceAndLimits() throws {
        let plain = try #require(mustLoad(upstream("")))
        #expect(plain.table.load.specs == [UpstreamLoadSpec()])
        #expect(!plain.table.load.isTracked(0), "nothing counted by default")
        let set = try #require(mustLoad(upstream(", balance: least_request, max_connections: 100, max_pending: 10, max_requests: 200")))
        #expect(set.table.load.specs == [UpstreamLoadSpec(balance: .leastRequest, maxConnections: 100, maxPending: 10, maxRequests: 200)])
    }

    @Test(arguments: [
        (", balance: random", "upstreams.app.balance"),
        (", max_connections: 0", "upstreams.app.max_connections"),
        (", max_pending: -1", "upstreams.app.max_pending"),
        (", max_requests: lots", "upstreams.app.max_requests"),
    ])
    func invalidUpstreamLimitsAreRefused(extra: String, path: String) {
        let found = diagnostics(upstream(extra))
        #expect(found.count == 1 && found.first?.keyPath == path, "\(found)")
    }
}
