import Foundation
import Testing
import SluiceControl
import SluiceCore
import SluiceProxy

/// The listener `http2` key and the top-level `http2:` limits: defaults, explicit values, ranges,
/// and the combinations that are refused with their key path and line.
@Suite struct HTTP2ConfigTests {
    static let route = """
        routes:
          - { name: web, split: { stable: 90, canary: 10 } }

        """

    static func listeners(_ body: String) -> String {
        """
        listeners:
        \(body)
        upstreams:
          stable: { endpoints: ["127.0.0.1:9001"] }
          canary: { endpoints: ["127.0.0.1:9003"] }
        \(route)
        """
    }

    /// A self-signed certificate made with the openssl CLI (for TLS listeners), in a fresh folder.
    static func certificate() throws -> (cert: String, key: String, dir: String) {
        let dir = NSTemporaryDirectory() + "sluice-h2cfg-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/a.key", "-out", dir + "/a.pem",
                       "-days", "2", "-subj", "/CN=a.test", "-addext", "subjectAltName=DNS:a.test"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
        return (dir + "/a.pem", dir + "/a.key", dir)
    }

    @Test func defaults() throws {
        let c = try #require(mustLoad(baseYAML + Self.route))
        #expect(c.http2 == HTTP2Limits())
        #expect(c.http2.maxConcurrentStreams == 100)
        #expect(c.http2.maxHeaderListBytes == 32768)
        #expect(c.http2.maxHeaderListBytes == c.limits.parser.maxHeadBytes)
        #expect(c.http2.streamWindowBytes == 65535)
        #expect(c.http2.connectionWindowBytes == 1 << 20)
        #expect(c.http2.maxResetsPerSecond == 100)
        #expect(c.http2.maxControlFramesPerSecond == 200)
        #expect(c.http2.maxContinuations == 8)
        // Plain listeners: off unless asked (h2c with prior knowledge is opt-in).
        #expect(c.listeners[0].http2 == false)
        let on = try #require(mustLoad(Self.listeners("  - { name: public, address: 127.0.0.1:8080, http2: true }")))
        #expect(on.listeners[0].http2)
        // An empty `http2:` map is all defaults too.
        let empty = try #require(mustLoad(baseYAML + Self.route + "http2: {}\n"))
        #expect(empty.http2 == HTTP2Limits())
    }

    /// `defer_accept` (TCP_DEFER_ACCEPT): on unless turned off; a listener change needs a restart.
    @Test func deferAcceptDefaultsOnAndIsABoolean() throws {
        let c = try #require(mustLoad(baseYAML + Self.route))
        #expect(c.listeners[0].deferAccept)
        let off = try #require(mustLoad(Self.listeners("  - { name: public, address: 127.0.0.1:8080, defer_accept: false }")))
        #expect(off.listeners[0].deferAccept == false)
        #expect(c.restartOnlyChanges(off) == ["listeners"])
        let d = diagnostics(Self.listeners("  - { name: public, address: 127.0.0.1:8080, defer_accept: 1s }"))
        #expect(d.map(\.keyPath) == ["listeners[0].defer_accept"])
    }

    /// The header-list limit follows `limits.max_header_bytes` unless set (a request's header
    /// list must fit the HTTP/1.1 head it becomes).
    @Test func headerListFollowsTheHeadLimit() throws {
        let c = try #require(mustLoad(baseYAML + Self.route + "limits: { max_header_bytes: 64KiB }\n"))
        #expect(c.http2.maxHeaderListBytes == 65536)
        let withMap = try #require(mustLoad(baseYAML + Self.route + "limits: { max_header_bytes: 64KiB }\nhttp2: { max_concurrent_streams: 5 }\n"))
        #expect(withMap.http2.maxHeaderListBytes == 65536)
        #expect(withMap.http2.maxConcurrentStreams == 5)
    }

    @Test func explicitValues() throws {
        let c = try #require(mustLoad(baseYAML + Self.route + """
            http2:
              max_concurrent_streams: 250
              max_header_list_size: 16KiB
              initial_window_size: 16KiB
              connection_window_size: 4MiB
              max_resets_per_second: 0
              max_control_frames_per_second: 1000
              max_continuations: 0

            """))
        var expected = HTTP2Limits()
        expected.maxConcurrentStreams = 250
        expected.maxHeaderListBytes = 16384
        expected.streamWindowBytes = 16384
        expected.connectionWindowBytes = 4 << 20
        expected.maxResetsPerSecond = 0
        expected.maxControlFramesPerSecond = 1000
        expected.maxContinuations = 0
        #expect(c.http2 == expected)
    }

    @Test(arguments: [
        ("max_concurrent_streams: 0", "http2.max_concurrent_streams"),
        ("max_concurrent_streams: 10001", "http2.max_concurrent_streams"),
        ("max_concurrent_streams: lots", "http2.max_concurrent_streams"),
        ("max_header_list_size: 512", "http2.max_header_list_size"),
        ("max_header_list_size: 64KiB", "http2.max_header_list_size"),  // over limits.max_header_bytes (32 KiB)
        ("initial_window_size: 100", "http2.initial_window_size"),
        ("initial_window_size: 65536", "http2.initial_window_size"),
        ("connection_window_size: 1000", "http2.connection_window_size"),
        ("connection_window_size: 65MiB", "http2.connection_window_size"),
        ("max_resets_per_second: -1", "http2.max_resets_per_second"),
        ("max_resets_per_second: 1000001", "http2.max_resets_per_second"),
        ("max_control_frames_per_second: -1", "http2.max_control_frames_per_second"),
        ("max_continuations: 1001", "http2.max_continuations"),
        ("max_streams: 10", "http2"),
    ])
    func outOfRangeValuesAreRefusedWithTheirPath(setting: String, path: String) {
        let yaml = baseYAML + Self.route + "http2: { \(setting) }\n"
        let found = diagnostics(yaml)
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.keyPath == path, "\(found)")
        if let d = found.first {
            let line = yaml.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.hasPrefix("http2:") }.map { $0 + 1 }
            #expect(d.line == line, "\(d)")
        }
    }

    @Test func http2MustBeAMap() {
        let found = diagnostics(baseYAML + Self.route + "http2: true\n")
        #expect(found.count == 1 && found.first?.keyPath == "http2", "\(found)")
        let listener = diagnostics(Self.listeners("  - { name: public, address: 127.0.0.1:8080, http2: sometimes }"))
        #expect(listener.count == 1 && listener.first?.keyPath == "listeners[0].http2", "\(listener)")
    }

    /// A plain listener redirecting to https serves no HTTP/2: `http2: true` there is an error.
    @Test func redirectHTTPSWithHTTP2IsRefused() throws {
        let found = diagnostics(Self.listeners("  - { name: public, address: 127.0.0.1:8080, redirect_https: true, http2: true }"))
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.keyPath == "listeners[0].http2")
        #expect(found.first?.message.contains("redirects to https") == true, "\(found)")
        #expect(found.first?.line == 2)
        // `http2: false` with a redirect is fine (and the default).
        let off = try #require(mustLoad(Self.listeners("  - { name: public, address: 127.0.0.1:8080, redirect_https: true, http2: false }")))
        #expect(off.listeners[0].http2 == false && off.listeners[0].redirectHTTPS)
    }

    /// TLS listeners: HTTP/2 on by default with ALPN `h2` first; `http2: false` offers only
    /// http/1.1; `h2` in an explicit `alpn` without HTTP/2 is an error at its line.
    @Test func tlsListenersOfferH2FirstUnlessOff() throws {
        let (cert, key, dir) = try Self.certificate()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func tlsListener(_ extra: String, alpn: String = "") -> String {
            Self.listeners("""
                  - name: https
                    address: 127.0.0.1:8443
                    \(extra)
                    tls:
                      certificates: [{ cert: \(cert), key: \(key) }]
                      \(alpn)
                """)
        }
        let on = try #require(mustLoad(tlsListener("")))
        #expect(on.listeners[0].http2)
        #expect(on.tls.listeners[0]?.alpn == ["h2", "http/1.1"])
        let off = try #require(mustLoad(tlsListener("http2: false")))
        #expect(off.listeners[0].http2 == false)
        #expect(off.tls.listeners[0]?.alpn == ["http/1.1"])
        let onlyH1 = try #require(mustLoad(tlsListener("", alpn: "alpn: [http/1.1]")))
        #expect(onlyH1.tls.listeners[0]?.alpn == ["http/1.1"])
        let explicit = try #require(mustLoad(tlsListener("http2: true", alpn: "alpn: [http/1.1, h2]")))
        #expect(explicit.tls.listeners[0]?.alpn == ["http/1.1", "h2"])

        let yaml = tlsListener("http2: false", alpn: "alpn: [h2, http/1.1]")
        let found = diagnostics(yaml)
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.keyPath == "listeners[0].tls.alpn[0]", "\(found)")
        #expect(found.first?.message.contains("needs `http2: true`") == true, "\(found)")
        let line = yaml.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("alpn:") }.map { $0 + 1 }
        #expect(found.first?.line == line)
    }
}
