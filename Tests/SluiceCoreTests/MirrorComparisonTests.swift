@testable import SluiceCore
import Testing

/// The pure parts of mirroring: the comparison, the first differing byte, the hash, sampling.
@Suite struct MirrorComparisonTests {
    static func side(_ status: Int, _ body: String, headers: [String?] = ["text/plain"], keep: Int = 1 << 20) -> MirrorSide {
        var s = MirrorSide()
        s.status = status
        s.headers = headers.map { $0.map { Array($0.utf8) } }
        Array(body.utf8).withUnsafeBytes { s.addBody($0, keep: keep) }
        return s
    }

    @Test func comparisonOrderStatusThenHeadersThenBody() {
        let p = Self.side(200, "hello world")
        #expect(MirrorComparison.compare(primary: p, mirror: Self.side(200, "hello world")) == MirrorOutcome(result: .match))
        // Status first, even when everything else differs too.
        #expect(MirrorComparison.compare(primary: p, mirror: Self.side(503, "x", headers: [nil])).result == .statusDiff)
        // Then the configured fields: absent differs from present; the index of the first that differs.
        #expect(MirrorComparison.compare(primary: p, mirror: Self.side(200, "hello world", headers: [nil]))
                == MirrorOutcome(result: .headerDiff, header: 0))
        let two = Self.side(200, "a", headers: ["x", "y"])
        #expect(MirrorComparison.compare(primary: two, mirror: Self.side(200, "b", headers: ["x", "z"])).header == 1)
        // Then the body: the first differing byte.
        #expect(MirrorComparison.compare(primary: p, mirror: Self.side(200, "hello World"))
                == MirrorOutcome(result: .bodyDiff, firstDifferingByte: 6))
        // One a prefix of the other: where the shorter ends.
        #expect(MirrorComparison.compare(primary: p, mirror: Self.side(200, "hello")).firstDifferingByte == 5)
        #expect(MirrorComparison.compare(primary: Self.side(200, ""), mirror: Self.side(200, "x")).firstDifferingByte == 0)
    }

    @Test func differencesBeyondTheKeptBytes() {
        // Only 4 bytes kept: a difference at byte 6 is known to exist (hash) but not where.
        let p = Self.side(200, "hello world", keep: 4), m = Self.side(200, "hello World", keep: 4)
        #expect(p.prefix == Array("hell".utf8) && p.bodyLength == 11)
        #expect(MirrorComparison.compare(primary: p, mirror: m) == MirrorOutcome(result: .bodyDiff, firstDifferingByte: nil))
        // Longer beyond what was kept: also unknown.
        #expect(MirrorComparison.compare(primary: p, mirror: Self.side(200, "hello world!", keep: 4)).firstDifferingByte == nil)
    }

    @Test func theHashIsIncremental() {
        var whole = BodyHash(), pieces = BodyHash()
        let bytes = Array("the quick brown fox".utf8)
        bytes.withUnsafeBytes { whole.add($0) }
        bytes.withUnsafeBytes { b in
            pieces.add(UnsafeRawBufferPointer(rebasing: b[0..<3]))
            pieces.add(UnsafeRawBufferPointer(rebasing: b[3..<3]))
            pieces.add(UnsafeRawBufferPointer(rebasing: b[3...]))
        }
        #expect(whole == pieces && whole != BodyHash())
        // FNV-1a 64 of "a" (published test vector).
        var a = BodyHash()
        [UInt8(ascii: "a")].withUnsafeBytes { a.add($0) }
        #expect(a.value == 0xaf63_dc4c_8601_ec8c)
    }

    @Test func samplingAndMethods() {
        var spec = MirrorSpec(name: "m", upstream: 0, percent: 2_500)
        var selected = 0
        for e: UInt64 in 0..<20_000 {
            let entropy = e &* 0x9e37_79b9_7f4a_7c15
            let s = MirrorPolicy.selects(spec, method: .get, entropy: entropy)
            #expect(s == (MirrorPolicy.roll(entropy: entropy) < 2_500))
            if s { selected += 1 }
            #expect(!MirrorPolicy.selects(spec, method: .post, entropy: entropy), "POST is not mirrored by default")
        }
        #expect(abs(selected - 5_000) < 300, "\(selected) of 20000 at 25%")
        spec.percent = 10_000
        spec.methods = MirrorSpec.methodBit(.post)
        #expect(MirrorPolicy.selects(spec, method: .post, entropy: 1) && !MirrorPolicy.selects(spec, method: .get, entropy: 1))
        #expect(MirrorPolicy.bodyFits(spec, declared: 1 << 20) && !MirrorPolicy.bodyFits(spec, declared: (1 << 20) + 1))
        #expect(MirrorPolicy.bodyFits(spec, declared: nil))
    }

    @Test func theBoardCountsRendersAndKeepsTheLatestDiffs() throws {
        let board = MirrorBoard(workers: 2)
        let t = RoutingTable(version: 1, upstreams: [
            UpstreamGroup(name: "a", endpoints: [Endpoint(address: .v4(0x7f00_0001, port: 1), label: "x")]),
        ], routes: [{
            var r = RouteSpec(name: "web", match: [], cohorts: [CohortSpec(name: "a", upstream: 0, weight: 10_000, inSplit: true)],
                              baseline: 0, sticky: .none, rules: [], cohortHeader: "X-Sluice-Cohort", cohortResponseHeader: false,
                              rollout: nil, pathNormalization: true, forwardNormalizedPath: false)
            r.mirror = MirrorSpec(name: "a", upstream: 0)
            return r
        }()])
        let ids = board.ids(for: t)
        #expect(ids == [0] && board.ids(for: t) == [0])
        board.shards[0].record(0, .match)
        board.shards[1].record(0, .match)
        board.shards[1].record(0, .bodyDiff)
        board.shards[0].recordLatency(0, primaryNanos: 3_000_000, mirrorNanos: 40_000_000)
        let text = board.renderMetrics()
        #expect(text.contains("sluice_mirror_requests_total{route=\"web\",mirror=\"a\",result=\"match\"} 2\n"))
        #expect(text.contains("sluice_mirror_requests_total{route=\"web\",mirror=\"a\",result=\"body_diff\"} 1\n"))
        #expect(text.contains("sluice_mirror_requests_total{route=\"web\",mirror=\"a\",result=\"dropped\"} 0\n"))
        #expect(text.contains("sluice_mirror_duration_seconds_bucket{route=\"web\",mirror=\"a\",side=\"primary\",le=\"0.005\"} 1\n"))
        #expect(text.contains("sluice_mirror_duration_seconds_bucket{route=\"web\",mirror=\"a\",side=\"mirror\",le=\"0.025\"} 0\n"))
        #expect(text.contains("sluice_mirror_duration_seconds_count{route=\"web\",mirror=\"a\",side=\"mirror\"} 1\n"))
        // The ring keeps the last 100 per worker; `diffs` merges the workers, oldest first, at most 100.
        for i in 0..<150 {
            let d = MirrorDiff(time: "", route: i % 2 == 0 ? "web" : "api", mirror: "a", requestLine: "GET /\(i) HTTP/1.1",
                               result: "body_diff", primaryStatus: 200, mirrorStatus: 200, primaryBodyBytes: 1, mirrorBodyBytes: 2,
                               primarySeconds: 0, mirrorSeconds: 0)
            board.shards[i % 2].keep(d, unixNanos: UInt64(i))
        }
        let all = board.diffs(format: { "t\($0)" })
        #expect(all.count == 100 && all.first?.requestLine == "GET /50 HTTP/1.1" && all.last?.time == "t149")
        let web = board.diffs(route: "web", format: { "\($0)" })
        #expect(web.count == 75 && web.allSatisfy { $0.route == "web" } && web.first?.requestLine == "GET /0 HTTP/1.1")
        #expect(MirrorBoard(workers: 1).renderMetrics() == "")
    }
}
