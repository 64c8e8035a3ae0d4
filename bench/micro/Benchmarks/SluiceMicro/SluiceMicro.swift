// Micro-benchmarks of Sluice's per-request hot paths: request-head parsing, response-head parsing,
// one routing decision and one metrics record. Each reports wall-clock time and malloc count per
// operation (every benchmark runs its operation 1,000 times per iteration: scalingFactor .kilo, so
// the figures the tool prints are per single operation).
//
// The state a worker keeps between requests (the RequestHead / ResponseHead whose `fields` array
// keeps its capacity, the BalancerState) is created once outside the measured loop, as in the
// proxy: what is measured is the steady state of a keep-alive connection, where the target is
// zero allocations per request.
//
// Run: swift package --package-path bench/micro --scratch-path .build-micro benchmark
// (see bench/README.md).

import Benchmark
import SluiceControl
import SluiceCore

/// A typical browser GET of exactly 400 bytes: 7 header fields, a cookie and a query (padded in
/// its last parameter to reach 400).
let browserRequest: [UInt8] = {
    let rest = " HTTP/1.1\r\n"
        + "Host: shop.example.com\r\n"
        + "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
        + "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
        + "Accept-Language: en-US,en;q=0.5\r\n"
        + "Accept-Encoding: gzip, deflate, br\r\n"
        + "Connection: keep-alive\r\n"
        + "Cookie: session_id=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n"
        + "\r\n"
    let line = "GET /catalog/items/42?view=full&lang=en&r="
    let pad = 400 - line.utf8.count - rest.utf8.count
    let bytes = Array((line + String(repeating: "7", count: max(pad, 1)) + rest).utf8)
    precondition(bytes.count == 400, "the benchmark request is \(bytes.count) bytes, not 400")
    return bytes
}()

/// The browser GET with a path that must be normalized before the path rules see it
/// (`/catalog/./items//%34%32` is `/catalog/items/42`): the decision normalizes it into a
/// temporary buffer, which must not be a heap allocation.
let dottedRequest: [UInt8] = {
    let plain = Array("GET /catalog/items/42?".utf8)
    precondition(browserRequest.starts(with: plain))
    return Array("GET /catalog/./items//%34%32?".utf8) + browserRequest.dropFirst(plain.count)
}()

/// A typical upstream response head (nginx-like), 8 header fields.
let upstreamResponse: [UInt8] = Array(("HTTP/1.1 200 OK\r\n"
    + "Server: nginx/1.22.1\r\n"
    + "Date: Tue, 14 Jan 2025 10:00:00 GMT\r\n"
    + "Content-Type: text/html; charset=utf-8\r\n"
    + "Content-Length: 4096\r\n"
    + "Connection: keep-alive\r\n"
    + "Cache-Control: private, max-age=0\r\n"
    + "ETag: \"65a3b2c1-1000\"\r\n"
    + "Vary: Accept-Encoding\r\n"
    + "\r\n").utf8)

/// One route with 10 rules (none of which match the benchmark request, so all ten are tried) and
/// a sticky 95/5 split on the session cookie.
let routingYAML = """
    workers: 1
    listeners: [{ name: public, address: 127.0.0.1:18080 }]
    upstreams:
      stable: { endpoints: ["127.0.0.1:19001", "127.0.0.1:19002"] }
      canary: { endpoints: ["127.0.0.1:19003"] }
    routes:
      - name: web
        match: { host: "*", path_prefix: "/" }
        baseline: stable
        sticky: { cookie: session_id }
        rules:
          - match: { header: { name: X-Canary, value: always } }
            cohort: canary
          - match: { header: { name: X-Canary, value: never } }
            cohort: stable
          - match: { cookie: { name: beta, value: "1" } }
            cohort: canary
          - match: { cookie: { name: tester, present: true } }
            cohort: canary
          - match: { query: { name: variant, value: b } }
            cohort: canary
          - match: { header: { name: User-Agent, regex: "(?i)curl/[0-9]+" } }
            cohort: stable
          - match: { path_prefix: /internal/, header: { name: X-Debug, present: true } }
            cohort: canary
          - match: { method: [PUT, DELETE], path_prefix: /admin/ }
            cohort: stable
          - match: { source: [10.0.0.0/8], header: { name: X-Internal, value: "yes" } }
            cohort: canary
          - match: { path: /healthz }
            respond: { status: 200, body: "ok" }
        split: { stable: 95, canary: 5 }
    """

/// The routing table, built once (the benchmark closure runs once per iteration).
let routingTable: RoutingTable = {
    do {
        return try ConfigLoader.parse(yaml: routingYAML, file: "micro.yaml").table
    } catch {
        fatalError("benchmark config does not load: \(error)")
    }
}()

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal],
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 100_000
    )

    // Control: one heap allocation per operation, so a malloc count of 0 elsewhere is known to
    // come from the code measured and not from a counter that does not work.
    Benchmark("control: one [UInt8] allocation") { benchmark in
        for i in benchmark.scaledIterations {
            blackHole([UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 64 + i & 7))
        }
    }

    Benchmark("RequestParser.parse 400 B browser GET") { benchmark in
        var head = RequestHead()
        let limits = ParserLimits()
        browserRequest.withUnsafeBytes { bytes in
            // Prime the fields array's capacity, as a reused per-connection head would have.
            precondition(RequestParser.parse(bytes, into: &head, limits: limits) == .complete)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(RequestParser.parse(bytes, into: &head, limits: limits))
            }
            benchmark.stopMeasurement()
        }
        blackHole(head.headLength)
    }

    Benchmark("ResponseParser.parse 245 B upstream head") { benchmark in
        var head = ResponseHead()
        let limits = ParserLimits()
        upstreamResponse.withUnsafeBytes { bytes in
            precondition(ResponseParser.parse(bytes, requestMethod: .get, into: &head, limits: limits) == .complete)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(ResponseParser.parse(bytes, requestMethod: .get, into: &head, limits: limits))
            }
            benchmark.stopMeasurement()
        }
        blackHole(head.headLength)
    }

    Benchmark("RoutingTable.decide, 10 rules + sticky 95/5 split") { benchmark in
        let table = routingTable
        var balancer = BalancerState(table: table)
        var head = RequestHead()
        let client = SocketAddress.v4(0x7f00_0001, port: 40000)
        browserRequest.withUnsafeBytes { bytes in
            precondition(RequestParser.parse(bytes, into: &head, limits: ParserLimits()) == .complete)
            let first = table.decide(head: head, bytes: bytes, client: client, entropy: 1, balancer: &balancer)
            precondition(first.action == .forward, "expected the split to forward, got \(first)")
            var entropy: UInt64 = 0x9E37_79B9_7F4A_7C15
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                entropy &+= 0x9E37_79B9_7F4A_7C15
                blackHole(table.decide(head: head, bytes: bytes, client: client, entropy: entropy, balancer: &balancer))
            }
            benchmark.stopMeasurement()
        }
    }

    Benchmark("RoutingTable.decide, 10 rules + split, path to normalize") { benchmark in
        let table = routingTable
        var balancer = BalancerState(table: table)
        var head = RequestHead()
        let client = SocketAddress.v4(0x7f00_0001, port: 40000)
        dottedRequest.withUnsafeBytes { bytes in
            precondition(RequestParser.parse(bytes, into: &head, limits: ParserLimits()) == .complete)
            precondition(PathNormalizer.needsNormalization(UnsafeRawBufferPointer(rebasing: bytes[head.path.range])))
            let first = table.decide(head: head, bytes: bytes, client: client, entropy: 1, balancer: &balancer)
            precondition(first.action == .forward, "expected the split to forward, got \(first)")
            var entropy: UInt64 = 0x9E37_79B9_7F4A_7C15
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                entropy &+= 0x9E37_79B9_7F4A_7C15
                blackHole(table.decide(head: head, bytes: bytes, client: client, entropy: entropy, balancer: &balancer))
            }
            benchmark.stopMeasurement()
        }
    }

    Benchmark("MetricsShard.recordRequest") { benchmark in
        let shard = MetricsShard()
        var nanos: UInt64 = 180_000
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            // Vary series, status and duration a little so every counter moves, as in real traffic.
            nanos = nanos &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            shard.recordRequest(series: Int32(1 + i & 3), status: i & 63 == 0 ? 503 : 200,
                                durationNanos: 50_000 + (nanos >> 44), bytesIn: 400, bytesOut: 4_300)
        }
        benchmark.stopMeasurement()
        var totals = MetricsTotals(seriesCount: shard.capacity.series, listenerCount: shard.capacity.listeners,
                                   upstreamCount: shard.capacity.upstreams)
        shard.accumulate(into: &totals)
        blackHole(totals)
    }
}
