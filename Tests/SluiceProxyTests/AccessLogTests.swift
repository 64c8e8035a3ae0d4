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
