import Foundation
@preconcurrency import Glibc
import Testing

/// Runs a shell pipeline (curl, gzip) and returns its stdout.
private func shell(_ command: String) throws -> (status: Int32, out: [UInt8]) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, Array(data))
}

private let json = "{\"items\":[" + (0..<400).map { "{\"id\":\($0),\"name\":\"item \($0)\",\"tags\":[\"a\",\"b\"]}" }.joined(separator: ",") + "]}"
private let text = String(repeating: "The quick brown fox jumps over the lazy dog.\n", count: 300)
/// Incompressible bytes (deflate's output is larger than its input): 600 KiB from a fixed seed.
private let randomBody: [UInt8] = {
    var x: UInt64 = 0x9E37_79B9_7F4A_7C15
    return (0..<600 * 1024).map { _ in
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        return UInt8(truncatingIfNeeded: x)
    }
}()

private func compressionYAML(_ port: UInt16, listen: String = "127.0.0.1:0") -> String {
    """
    listeners:
      - name: public
        address: \(listen)
    upstreams:
      app: { endpoints: ["127.0.0.1:\(port)"] }
    routes:
      - name: web
        match: { path_prefix: "/" }
        upstream: app
        sticky: none
        compression: { gzip: true, level: 5, min_bytes: 1024, types: [text/*, application/json] }
    """
}

@Suite(.serialized)
struct CompressionTests {
    static func upstream() throws -> TestUpstream {
        try TestUpstream { r in
            let path = r.startLine.split(separator: " ")[1]
            func raw(_ head: String, _ body: String) -> UpstreamReply { .raw(Array((head + "\r\n\r\n" + body).utf8)) }
            switch path {
            case "/json": return raw("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"v1\"\r\nContent-Length: \(json.utf8.count)", json)
            case "/chunked":
                let chunks = stride(from: 0, to: text.utf8.count, by: 1000).map { i -> String in
                    let part = String(decoding: Array(text.utf8)[i..<min(i + 1000, text.utf8.count)], as: UTF8.self)
                    return String(part.utf8.count, radix: 16) + "\r\n" + part + "\r\n"
                }.joined()
                return raw("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked", chunks + "0\r\n\r\n")
            case "/random":
                return .raw(Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(randomBody.count)\r\n\r\n".utf8) + randomBody)
            case "/random-chunked":
                var out = Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
                var i = 0
                while i < randomBody.count {
                    let n = min(50_000, randomBody.count - i)
                    out += Array((String(n, radix: 16) + "\r\n").utf8) + randomBody[i..<i + n] + [13, 10]
                    i += n
                }
                return .raw(out + Array("0\r\n\r\n".utf8))
            case "/small": return raw("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10", "0123456789")
            case "/png": return raw("HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: \(text.utf8.count)", text)
            case "/encoded": return raw("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: br\r\nContent-Length: \(text.utf8.count)", text)
            case "/notransform": return raw("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-transform\r\nContent-Length: \(text.utf8.count)", text)
            case "/partial": return raw("HTTP/1.1 206 Partial Content\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-\(text.utf8.count - 1)/99999\r\nContent-Length: \(text.utf8.count)", text)
            case "/nocontent": return raw("HTTP/1.1 204 No Content\r\nContent-Type: text/plain", "")
            case "/notmodified": return raw("HTTP/1.1 304 Not Modified\r\nContent-Type: text/plain\r\nETag: \"v1\"", "")
            default: return .ok("?")
            }
        }
    }

    @Test("curl --compressed gets the upstream's bytes for JSON and text, Content-Length and chunked bodies")
    func compressedRoundTrip() throws {
        let up = try Self.upstream()
        defer { up.stop() }
        let proxy = try ProxyHarness(yaml: compressionYAML(up.port))
        defer { proxy.stop() }
        let base = "http://127.0.0.1:\(proxy.port)"
        for (path, expected) in [("/json", json), ("/chunked", text)] {
            let r = try shell("curl -s --compressed \(base)\(path)")
            #expect(r.status == 0)
            #expect(r.out == Array(expected.utf8), "\(path)")
            // Really compressed on the wire, with the right head.
            let m = try proxy.request("GET \(path) HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br\r\n\r\n")
            #expect(m.header("Content-Encoding") == "gzip")
            #expect(m.header("Vary") == "Accept-Encoding")
            #expect(m.header("Content-Length") == nil && m.header("Transfer-Encoding") == "chunked")
            #expect(m.body.count < expected.utf8.count / 3, "\(path): \(m.body.count) bytes on the wire")
            if path == "/json" { #expect(m.header("ETag") == "W/\"v1\"") }
            // Without Accept-Encoding (or refusing gzip): the upstream's bytes as they were.
            for ae in ["", "Accept-Encoding: gzip;q=0, br\r\n"] {
                let plain = try proxy.request("GET \(path) HTTP/1.1\r\nHost: x\r\n\(ae)\r\n")
                #expect(plain.header("Content-Encoding") == nil)
                #expect(plain.bodyText == expected)
            }
        }
        // Incompressible bodies (deflate output larger than its input, arriving in pieces of
        // every size): nothing is lost or dropped, whatever the client's buffer holds.
        for path in ["/random", "/random-chunked"] {
            let r = try shell("curl -s --compressed \(base)\(path)")
            #expect(r.out.count == randomBody.count && r.out == randomBody, "\(path): \(r.out.count) bytes")
            let slow = try shell("curl -s --compressed --limit-rate 2M \(base)\(path)")
            #expect(slow.out == randomBody, "\(path), slow reader")
        }
        // HTTP/1.0: close-delimited gzip.
        let r10 = try shell("curl -s -0 --compressed \(base)/json")
        #expect(r10.out == Array(json.utf8))
        let metrics = proxy.metrics()
        #expect((metrics["sluice_compression_bytes_total{route=\"web\",direction=\"in\"}"] ?? 0) >= Double(2 * json.utf8.count))
        #expect((metrics["sluice_compression_bytes_total{route=\"web\",direction=\"out\"}"] ?? 0) > 0)
    }

    @Test("left alone: small, unlisted type, already encoded, no-transform, 206, 204, 304, HEAD", arguments: [
        "/small", "/png", "/encoded", "/notransform", "/partial", "/nocontent", "/notmodified", "HEAD /json",
    ])
    func excluded(target: String) throws {
        let up = try Self.upstream()
        defer { up.stop() }
        let proxy = try ProxyHarness(yaml: compressionYAML(up.port))
        defer { proxy.stop() }
        let method = target.hasPrefix("HEAD ") ? "HEAD" : "GET"
        let path = target.hasPrefix("HEAD ") ? String(target.dropFirst(5)) : target
        let m = try proxy.request("\(method) \(path) HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n", method: method)
        #expect(m.header("Content-Encoding") != "gzip", "\(target)")
        #expect(m.header("Vary") == nil)
        if path == "/encoded" { #expect(m.header("Content-Encoding") == "br") }
        if ["/png", "/encoded", "/notransform", "/partial"].contains(path) { #expect(m.bodyText == text) }
        if method == "HEAD" { #expect(m.header("Content-Length") == "\(json.utf8.count)") }
    }

    @Test("a 1 GiB response compresses as a stream with bounded proxy memory")
    func largeStream() throws {
        let size = 1 << 30
        let up = try TestUpstream { _ in .stream(head: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(size)\r\n\r\n", count: size) }
        defer { up.stop() }
        let proxy = try SluiceProcess { port in compressionYAML(up.port, listen: "127.0.0.1:\(port)") }
        defer { _ = proxy.stop() }
        let decoded = try shell("curl -s -H 'Accept-Encoding: gzip' http://127.0.0.1:\(proxy.port)/big | gzip -dc | wc -c")
        #expect(String(decoding: decoded.out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "\(size)")
        let peak = proxy.peakRSS
        print("1 GiB gzip stream: proxy peak RSS \(peak >> 20) MiB")
        #expect(peak < 64 << 20, "peak RSS \(peak >> 20) MiB")
    }
}
