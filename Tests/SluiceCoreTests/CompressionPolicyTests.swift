import Testing
import SluiceCore

@Suite("CompressionPolicy: Accept-Encoding and which responses are compressed")
struct CompressionPolicyTests {
    @Test("Accept-Encoding with q-values", arguments: [
        ("gzip", true), ("gzip, deflate, br", true), ("br;q=1.0, gzip;q=0.8", true), ("GZIP", true),
        ("x-gzip", true), ("gzip;q=0", false), ("gzip; q=0.000", false), ("gzip;q=0.001", true), ("*", true),
        ("*;q=0", false), ("br, *;q=0.1", true), ("gzip;q=0, *", false), ("br", false), ("identity", false), ("", false),
    ])
    func acceptEncoding(value: String, accepted: Bool) {
        var v = value
        #expect(v.withUTF8 { CompressionPolicy.acceptsGzip(UnsafeRawBufferPointer($0)) } == accepted, "\(value)")
    }

    private func head(_ text: String) -> (ResponseHead, [UInt8]) {
        let bytes = Array(text.utf8)
        var h = ResponseHead()
        let s = bytes.withUnsafeBytes { ResponseParser.parse($0, requestMethod: .get, into: &h, limits: ParserLimits()) }
        #expect(s == .complete)
        return (h, bytes)
    }

    @Test("compressed: listed types of at least min_bytes or unknown length; never encoded, no-transform, 206, 204, 304 or HEAD")
    func responses() {
        let spec = CompressionSpec(level: 5, minBytes: 1024, types: CompressionSpec.defaultTypes)
        func compresses(_ text: String, method: HTTPMethod = .get, accepts: Bool = true) -> Bool {
            let (h, bytes) = head(text)
            return bytes.withUnsafeBytes {
                CompressionPolicy.compresses(spec, acceptsGzip: accepts, method: method, head: h, bytes: $0)
            }
        }
        #expect(compresses("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n"))
        #expect(compresses("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n"))
        #expect(compresses("HTTP/1.1 404 Not Found\r\nContent-Type: TEXT/plain\r\nContent-Length: 2000\r\n\r\n"))
        #expect(!compresses("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n", accepts: false))
        #expect(!compresses("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1023\r\n\r\n"))
        #expect(!compresses("HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n"))
        #expect(!compresses("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"))
        #expect(!compresses("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: br\r\nContent-Length: 5000\r\n\r\n"))
        #expect(!compresses("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: public, No-Transform\r\nContent-Length: 5000\r\n\r\n"))
        #expect(!compresses("HTTP/1.1 206 Partial Content\r\nContent-Type: text/plain\r\nContent-Length: 5000\r\n\r\n"))
        #expect(!compresses("HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\n\r\n"))
        #expect(!compresses("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5000\r\n\r\n", method: .head))
        #expect(compresses("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: identity\r\nContent-Length: 5000\r\n\r\n"))
        #expect(!compresses("HTTP/1.1 200 OK\r\nContent-Type: textual/plain\r\nContent-Length: 5000\r\n\r\n"))
        #expect(!compresses("HTTP/1.1 200 OK\r\nContent-Type: application/jsonx\r\nContent-Length: 5000\r\n\r\n"))
    }

    @Test("the head of a compressed response: no Content-Length, weak ETag, Content-Encoding and Vary")
    func head() {
        let (h, bytes) = head("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: \"abc\"\r\nContent-Length: 5000\r\n\r\n")
        var out: [UInt8] = []
        bytes.withUnsafeBytes { HeadWriter.appendResponseStart(h, bytes: $0, keepContentLength: false, gzip: true, to: &out) }
        #expect(String(decoding: out, as: UTF8.self)
                == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: W/\"abc\"\r\nContent-Encoding: gzip\r\nVary: Accept-Encoding\r\n")
        let (w, wb) = head("HTTP/1.1 200 OK\r\nETag: W/\"abc\"\r\nContent-Length: 5\r\n\r\n")
        out = []
        wb.withUnsafeBytes { HeadWriter.appendResponseStart(w, bytes: $0, keepContentLength: false, gzip: true, to: &out) }
        #expect(String(decoding: out, as: UTF8.self).contains("ETag: W/\"abc\"\r\n"))
    }
}
