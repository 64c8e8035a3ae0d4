import Foundation
@preconcurrency import Glibc
import SluiceControl
import SluiceCore
import Testing

/// Issue 19's mirror diffs on the real binary: `GET /admin/mirror/diffs` (`?route=`), `sluice
/// mirror diffs ROUTE` (text and `--json`), and the `sluice_mirror_*` families on `/metrics`.
@Suite(.serialized)
struct MirrorAdminTests {
    @Test func diffsThroughTheAdminAPIAndTheCLI() throws {
        let primary = try TestUpstream { r in .ok("v1 \(r.startLine)", headers: ["Content-Type: text/plain"]) }
        let mirror = try TestUpstream { r in
            r.startLine.contains("/new/") ? .ok("v2 \(r.startLine)", headers: ["Content-Type: text/plain"])
                                          : .ok("v1 \(r.startLine)", headers: ["Content-Type: text/plain"])
        }
        defer { primary.stop(); mirror.stop() }
        let sluice = try SluiceProcess { port in
            """
            listeners: [{ name: public, address: "127.0.0.1:\(port)" }]
            state_file: off
            upstreams:
              stable: { endpoints: ["127.0.0.1:\(primary.port)"] }
              next: { endpoints: ["127.0.0.1:\(mirror.port)"] }
            routes:
              - name: shop
                upstream: stable
                sticky: none
                mirror: { to: next, compare: true }
              - name: quiet
                match: { path_prefix: /quiet }
                upstream: stable
            """
        }
        defer { _ = sluice.stop() }
        let fd = try TestSocket.connect(port: sluice.port)
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        for p in ["/old/1", "/new/1", "/old/2", "/new/2", "/new/3"] {
            try TestSocket.send(fd, "GET \(p) HTTP/1.1\r\nHost: shop\r\n\r\n")
            #expect(try reader.readMessage(isResponse: true)?.bodyText == "v1 GET \(p) HTTP/1.1")
        }
        let p = sluice.configPath
        var report: MirrorDiffReport?
        #expect(eventually(5) {
            guard let r = try? runSluiceCLI(["mirror", "diffs", "--config", p, "--json", "shop"]), r.status == 0,
                  let decoded = try? JSONDecoder().decode(MirrorDiffReport.self, from: Data(r.out.utf8)) else { return false }
            report = decoded
            return decoded.diffs.count == 3
        }, "\(report.map { "\($0.diffs)" } ?? "no report")")
        let diffs = try #require(report).diffs
        // Listed in the order the comparisons finished: the three mirrored requests travel on their
        // own upstream connections, so /new/2's may finish before /new/1's.
        #expect(diffs.map(\.requestLine).sorted() == ["GET /new/1 HTTP/1.1", "GET /new/2 HTTP/1.1", "GET /new/3 HTTP/1.1"])
        #expect(diffs.allSatisfy { $0.result == "body_diff" && $0.firstDifferingByte == 1 && $0.route == "shop" && $0.mirror == "next" })
        #expect(diffs[0].time.hasPrefix("20") && diffs[0].time.hasSuffix("Z"))
        #expect(report?.comparing == ["shop"])
        // Text for people.
        var r = try runSluiceCLI(["mirror", "diffs", "--config", p, "shop"])
        #expect(r.status == 0)
        #expect(r.out.hasPrefix("3 differing pairs for route shop, oldest first:\n"), "\(r.out)")
        #expect(r.out.contains(" shop -> next: GET /new/2 HTTP/1.1: body_diff, status 200 vs 200, body 22 vs 22 bytes, first differing byte 1\n"),
                "\(r.out)")
        r = try runSluiceCLI(["mirror", "diffs", "--config", p, "quiet"])
        #expect(r.status == 0 && r.out == "no differing pairs for route quiet (it has no mirror with `compare: true`)\n", "\(r.out)")
        // An unknown route: exit 1 and the known ones.
        r = try runSluiceCLI(["mirror", "diffs", "--config", p, "shp"])
        #expect(r.status == 1 && r.err.contains("shp") && r.err.contains("shop"), "\(r.err)")
        // The admin endpoint itself, every route.
        let all = try AdminClient.request("GET", "/admin/mirror/diffs", to: .v4(0x7f00_0001, port: sluice.adminPort), token: nil)
        #expect(all.status == 200)
        #expect(try JSONDecoder().decode(MirrorDiffReport.self, from: Data(all.body)).diffs.count == 3)
        // Metrics.
        let m = sluice.metrics()
        #expect(m["sluice_mirror_requests_total{route=\"shop\",mirror=\"next\",result=\"match\"}"] == 2)
        #expect(m["sluice_mirror_requests_total{route=\"shop\",mirror=\"next\",result=\"body_diff\"}"] == 3)
        #expect(m["sluice_mirror_duration_seconds_count{route=\"shop\",mirror=\"next\",side=\"mirror\"}"] == 5)
    }
}
