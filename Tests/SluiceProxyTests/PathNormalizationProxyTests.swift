import Foundation
@preconcurrency import Glibc
import Testing

/// Issue 17, through a real proxy and a real upstream: a `path_prefix: /admin` deny rule holds
/// against dot segments, doubled slashes and encoded letters, and what is forwarded stays as the
/// client sent it.
@Suite(.serialized)
struct PathNormalizationProxyTests {
    @Test func denyRuleHoldsAgainstPathVariantsAndForwardedPathsStayRaw() throws {
        let up = try TestUpstream { _ in .ok("app") }
        defer { up.stop() }
        let proxy = try ProxyHarness(yaml: """
            listeners: [{ name: public, address: "127.0.0.1:0" }]
            upstreams:
              app: { endpoints: ["127.0.0.1:\(up.port)"] }
            routes:
              - name: deny
                match: { path_prefix: /admin }
                respond: { status: 403, body: "denied" }
              - name: web
                upstream: app
                sticky: none
            """)
        defer { proxy.stop() }
        func get(_ target: String) throws -> TestMessage? {
            let fd = try TestSocket.connect(port: proxy.port)
            defer { close(fd) }
            try TestSocket.send(fd, "GET \(target) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return try TestReader(fd: fd).readMessage(isResponse: true)
        }
        for target in ["/admin", "/./admin", "//admin", "/%61dmin/users", "/public/../admin", "/%2e%2e/admin?x=1"] {
            let m = try get(target)
            #expect(m?.status == 403 && m?.bodyText == "denied", "\(target): \(String(describing: m?.startLine))")
        }
        #expect(up.requests.isEmpty, "the upstream saw \(up.requests.map(\.startLine))")
        // Not denied, and forwarded exactly as sent (no `forward_normalized_path`).
        for target in ["/./public//x", "/ADMIN", "/%2561dmin"] {
            #expect(try get(target)?.bodyText == "app", "\(target)")
        }
        #expect(up.requests.map(\.startLine) == ["GET /./public//x HTTP/1.1", "GET /ADMIN HTTP/1.1", "GET /%2561dmin HTTP/1.1"])
    }

    @Test func forwardNormalizedPathSendsTheNormalizedForm() throws {
        let up = try TestUpstream { _ in .ok("app") }
        defer { up.stop() }
        let proxy = try ProxyHarness(yaml: """
            listeners: [{ name: public, address: "127.0.0.1:0" }]
            upstreams:
              app: { endpoints: ["127.0.0.1:\(up.port)"] }
            routes:
              - name: web
                upstream: app
                sticky: none
                forward_normalized_path: true
            """)
        defer { proxy.stop() }
        for target in ["/./a//b/../c?q=%2e", "/%7Euser/x", "/plain?x=1"] {
            let fd = try TestSocket.connect(port: proxy.port)
            defer { close(fd) }
            try TestSocket.send(fd, "GET \(target) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(try TestReader(fd: fd).readMessage(isResponse: true)?.bodyText == "app")
        }
        #expect(up.requests.map(\.startLine) == ["GET /a/c?q=%2e HTTP/1.1", "GET /~user/x HTTP/1.1", "GET /plain?x=1 HTTP/1.1"])
    }
}
