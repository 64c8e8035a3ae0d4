import Foundation
@preconcurrency import Glibc
import Testing
import SluiceCore
import SluiceProxy

@Suite(.serialized)
struct AccessLogTests {
    @Test func jsonLinesWithRequestIDAndTraceparent() throws {
        let up = try TestUpstream { r in .ok("id=" + (r.header("X-Request-Id") ?? "none")) }
        defer { up.stop() }
        let path = NSTemporaryDirectory() + "sluice-access-\(getpid()).log"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(fd >= 0)
        defer { unlink(path) }
        let yaml = """
            listeners: [{ name: public, address: "127.0.0.1:0" }]
            upstreams:
              stable: { endpoints: ["127.0.0.1:\(up.port)"] }
              canary: { endpoints: ["127.0.0.1:\(up.port)"] }
            routes:
              - name: web
                match: { path_prefix: "/" }
                baseline: stable
                sticky: none
                rules:
                  - match: { header: { name: X-Canary, value: always } }
                    cohort: canary
                split: { stable: 100, canary: 0 }
            """
        let proxy = try ProxyHarness(yaml: yaml, accessLogFD: fd)
        let trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        let r1 = try proxy.request("GET /a?x=\"q\" HTTP/1.1\r\nHost: h\r\nX-Request-Id: given-123\r\ntraceparent: \(trace)\r\n\r\n")
        #expect(r1.bodyText == "id=given-123")
        let r2 = try proxy.request("POST /b HTTP/1.1\r\nHost: h\r\nX-Canary: always\r\nContent-Length: 5\r\n\r\nhello")
        let generated = String(r2.bodyText.dropFirst(3))
        #expect(generated.count == 32 && generated.allSatisfy { $0.isHexDigit }, "generated id: \(generated)")
        #expect(up.requests[1].header("traceparent") == nil)
        #expect(up.requests[0].header("traceparent") == trace, "traceparent passes through untouched")
        _ = try proxy.request("GET  /bad HTTP/1.1\r\n\r\n")
        proxy.stop()  // flushes the workers' buffers
        close(fd)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        let objects = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let first = objects[0]
        #expect(first["method"] as? String == "GET")
        #expect(first["path"] as? String == "/a?x=\"q\"")
        #expect(first["status"] as? Int == 200)
        #expect(first["route"] as? String == "web")
        #expect(first["cohort"] as? String == "stable")
        #expect(first["upstream"] as? String == "127.0.0.1:\(up.port)")
        #expect(first["request_id"] as? String == "given-123")
        #expect(first["traceparent"] as? String == trace)
        #expect(first["client"] as? String == "127.0.0.1")
        #expect((first["bytes_out"] as? Int ?? 0) > 0)
        #expect(first["duration_ms"] is Double || first["duration_ms"] is Int)
        #expect((first["time"] as? String)?.hasSuffix("Z") == true)
        let second = objects[1]
        #expect(second["cohort"] as? String == "canary")
        #expect(second["request_id"] as? String == generated)
        #expect((second["bytes_in"] as? Int ?? 0) >= 5)
        let third = objects[2]
        #expect(third["status"] as? Int == 400)
        #expect(third["route"] is NSNull)
    }
}

/// Issue 18's access-log fields, filled in by the data plane: a 200, a 502 with its reason, and a
/// redacted query, with the fields chosen by `access_log.fields`.
@Suite(.serialized)
struct AccessLogFieldsProxyTests {
    @Test func newFieldsFromTheDataPlane() throws {
        let up = try TestUpstream { _ in .ok("ok") }
        defer { up.stop() }
        let dead = try TestSocket.closedPort()
        let path = NSTemporaryDirectory() + "sluice-access-fields-\(getpid()).log"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(fd >= 0)
        defer { unlink(path) }
        let yaml = """
            listeners: [{ name: public, address: "127.0.0.1:0" }]
            access_log: { path: stdout, redact_query: [token] }
            upstreams:
              app: { endpoints: ["127.0.0.1:\(up.port)"] }
              gone: { endpoints: ["127.0.0.1:\(dead)"] }
            routes:
              - name: down
                match: { path_prefix: "/down" }
                upstream: gone
                sticky: none
              - name: web
                match: { path_prefix: "/" }
                upstream: app
                sticky: none
            """
        let proxy = try ProxyHarness(yaml: yaml, accessLogFD: fd)
        _ = try proxy.request("GET /page?a=1&token=s3cret HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: test/1.0\r\nReferer: http://ref.example/\r\n\r\n")
        _ = try proxy.request("GET /down HTTP/1.0\r\n\r\n")
        proxy.stop()
        close(fd)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        let objects = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let ok = objects[0]
        #expect(ok["status"] as? Int == 200)
        #expect(ok["path"] as? String == "/page?a=1&token=REDACTED")
        #expect(ok["host"] as? String == "shop.example")
        #expect(ok["protocol"] as? String == "HTTP/1.1")
        #expect(ok["user_agent"] as? String == "test/1.0")
        #expect(ok["referer"] as? String == "http://ref.example/")
        #expect(ok["upstream_status"] as? Int == 200)
        #expect(ok["upstream_connect_ms"] is Double || ok["upstream_connect_ms"] is Int, "\(ok)")
        #expect(ok["upstream_first_byte_ms"] is Double || ok["upstream_first_byte_ms"] is Int, "\(ok)")
        #expect(ok["error"] is NSNull || ok["error"] == nil)
        let failed = objects[1]
        #expect(failed["status"] as? Int == 502)
        #expect(failed["protocol"] as? String == "HTTP/1.0")
        #expect(failed["error"] as? String == "connect_refused", "\(failed)")
        #expect(failed["upstream_status"] is NSNull || failed["upstream_status"] as? Int == 0, "\(failed)")
    }
}
