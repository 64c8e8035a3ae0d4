import Testing
import SluiceCore

/// RFC 3986 path normalization as path conditions see it, and the request line HeadWriter writes
/// for a route with `forward_normalized_path`.
struct PathNormalizerTests {
    @Test(arguments: [
        // raw, normalized
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("//admin", "/admin"),
        ("///admin//x//", "/admin/x/"),
        ("/./admin", "/admin"),
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/public/../admin/x", "/admin/x"),
        ("/../admin", "/admin"),
        ("/../../../admin", "/admin"),
        ("/a/b/..", "/a/"),
        ("/a/b/../../..", "/"),
        ("/a/.", "/a/"),
        ("/.", "/"),
        ("/..", "/"),
        ("/%61dmin", "/admin"),
        ("/%41DMIN", "/ADMIN"),
        ("/%2e%2e/admin", "/admin"),
        ("/%2E%2E/admin", "/admin"),
        ("/.%2e/admin", "/admin"),
        ("/%2e/admin", "/admin"),
        ("/a/%2e%2e%2fadmin", "/a/..%2Fadmin"),
        ("/a%2fb", "/a%2Fb"),
        ("/a%2Fb", "/a%2Fb"),
        ("/%7euser", "/~user"),
        ("/%5F%2D%2E%7E", "/_-.~"),
        ("/a%20b", "/a%20b"),
        ("/%c3%a9", "/%C3%A9"),
        ("/ADMIN", "/ADMIN"),
        ("/Admin/./X", "/Admin/X"),
        ("/a/...", "/a/..."),
        ("/.hidden", "/.hidden"),
        ("/a/..b/c", "/a/..b/c"),
        ("/a/b../c", "/a/b../c"),
        ("/%zz", "/%25zz"),
        ("/%4", "/%254"),
        ("/a%", "/a%25"),
        ("/%%61", "/%25a"),
        ("/%%361", "/%2561"),
        ("/%25", "/%25"),
        ("*", "*"),
        ("", ""),
        ("a/../b", "a/../b"),
    ])
    func normalizes(raw: String, normalized: String) {
        #expect(PathNormalizer.normalized(raw) == normalized, "\(raw)")
        // Idempotent: the normalized form is its own normal form.
        #expect(PathNormalizer.normalized(normalized) == normalized)
        // Whenever normalization changes a path, the cheap pre-check says it may.
        let bytes = Array(raw.utf8)
        let needs = bytes.withUnsafeBytes { PathNormalizer.needsNormalization($0) }
        if normalized != raw { #expect(needs, "\(raw) changes but the pre-check said no") }
    }

    @Test func preCheckSkipsOrdinaryPaths() {
        for path in ["/", "/style.css", "/a/b/c", "/api/v1.2/items", "/a.", "/x-y_z~"] {
            #expect(!Array(path.utf8).withUnsafeBytes { PathNormalizer.needsNormalization($0) }, "\(path)")
        }
        for path in ["//", "/./", "/.x", "/%41", "/a/../b"] {
            #expect(Array(path.utf8).withUnsafeBytes { PathNormalizer.needsNormalization($0) }, "\(path)")
        }
    }

    @Test func outputFitsInItsCapacity() {
        // The largest growth: bare `%`s, and a trailing segment's closing `/` written before it is judged.
        for raw in ["/a", "/%%%%", "/%"] {
            let bytes = Array(raw.utf8)
            var out = [UInt8](repeating: 0xEE, count: PathNormalizer.capacity(for: bytes.count))
            let n = bytes.withUnsafeBytes { r in out.withUnsafeMutableBytes { PathNormalizer.normalize(r, into: $0) } }
            #expect(String(decoding: out[0..<n], as: UTF8.self) == PathNormalizer.normalized(raw))
        }
        #expect(PathNormalizer.normalized("/%%%%") == "/%25%25%25%25")
    }

    /// The upstream request line for `line` with and without `normalizingPath`.
    private func requestLine(_ line: String, normalizing: Bool) -> String {
        let bytes = Array((line + "\r\nHost: example.com\r\n\r\n").utf8)
        var head = RequestHead()
        var out: [UInt8] = []
        bytes.withUnsafeBytes { raw in
            let status = RequestParser.parse(raw, into: &head, limits: ParserLimits())
            precondition(status == .complete, "test input must parse: \(status)")
            Array("192.0.2.7".utf8).withUnsafeBytes { c in
                Array("up:80".utf8).withUnsafeBytes { h in
                    HeadWriter.appendRequestStart(head, bytes: raw, clientAddress: c, forwardedProto: .http, fallbackHost: h,
                                                  normalizingPath: normalizing, to: &out)
                }
            }
        }
        return String(decoding: out, as: UTF8.self).split(separator: "\r\n").first.map(String.init) ?? ""
    }

    @Test func headWriterForwardsTheNormalizedPathOnlyWhenAsked() {
        #expect(requestLine("GET /a/../%61dmin//x?q=/../1 HTTP/1.1", normalizing: true) == "GET /admin/x?q=/../1 HTTP/1.1")
        #expect(requestLine("GET /a/../%61dmin//x?q=/../1 HTTP/1.1", normalizing: false) == "GET /a/../%61dmin//x?q=/../1 HTTP/1.1")
        #expect(requestLine("GET /plain?x HTTP/1.1", normalizing: true) == "GET /plain?x HTTP/1.1")
        // Absolute form: origin-form path, normalized; Host comes from the authority as before.
        #expect(requestLine("GET http://example.com/./b HTTP/1.1", normalizing: true) == "GET /b HTTP/1.1")
        #expect(requestLine("GET http://example.com/./b HTTP/1.1", normalizing: false) == "GET /./b HTTP/1.1")
        #expect(requestLine("OPTIONS * HTTP/1.1", normalizing: true) == "OPTIONS * HTTP/1.1")
    }
}
