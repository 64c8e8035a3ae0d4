import Foundation
@preconcurrency import Glibc
import Testing
import SluiceControl
import SluiceCore

/// Upstream HTTP/2 (`protocol: h2c`) moving bytes as users meet it: a gRPC server behind Sluice,
/// HTTP/1.1 clients in front (`Tests/Support/grpc/http1_call.py`), checking what the client got.
/// One worker, so every call shares its upstream connection.
@Suite(.serialized)
struct HTTP2UpstreamFlowTests {
    static let caller = GRPCSupport.dir + "/http1_call.py"

    static func yaml(upstream: UInt16, fault: String = "") -> String {
        """
        listeners:
          - { name: web, address: "127.0.0.1:0" }
        state_file: off
        upstreams:
          stable: { endpoints: ["127.0.0.1:\(upstream)"], protocol: h2c }
        routes:
          - name: echo
            baseline: stable
            sticky: none
            split: { stable: 100 }
        \(fault)
        """
    }

    struct Call {
        var status: Int
        var body: Int
        var trailers: [String]
        var complete: Bool
        var match: Bool
        var seconds: Double
    }

    static func call(port: UInt16, _ args: [String], timeout: Double = 60) throws -> (calls: [Call], error: String) {
        let r = try Spawned.run(GRPCSupport.python, [caller, "--port", "\(port)"] + args, timeout: timeout)
        guard let doc = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any],
              let calls = doc["calls"] as? [[String: Any]] else { throw TestError("http1_call.py: \(r.out) \(r.err)") }
        return (calls.map {
            Call(status: $0["status"] as? Int ?? 0, body: $0["body"] as? Int ?? 0, trailers: $0["trailers"] as? [String] ?? [],
                 complete: $0["complete"] as? Bool ?? false, match: $0["match"] as? Bool ?? false,
                 seconds: $0["seconds"] as? Double ?? -1)
        }, doc["error"] as? String ?? "")
    }

    /// A response far larger than Sluice's buffers, to a client that reads nothing for two
    /// seconds (a 4 KiB receive buffer) and then everything: the client gets every byte and the
    /// trailers. Before the fix the stream's held bytes were never fed to the exchange again once
    /// its input had filled: the response stopped there and the client waited for ever.
    @Test func aLargeResponseToASlowClientIsNotStalled() throws {
        try #require(GRPCSupport.available, "grpcio is needed (.ci/run installs it)")
        let server = try GRPCTestServer(name: "stable", logCalls: false)
        defer { server.stop() }
        let proxy = try ProxyHarness(yaml: Self.yaml(upstream: server.port))
        defer { proxy.stop() }
        let size = 1_500_000
        let r = try Self.call(port: proxy.port, ["--size", "\(size)", "--pause", "2", "--idle", "6"])
        let c = try #require(r.calls.first)
        #expect(c.status == 200, "\(r.error)")
        #expect(c.complete, "the response stopped after \(c.body) of \(5 + 7 + size) bytes: \(r.error)")
        #expect(c.body == 5 + 7 + size && c.match)
        #expect(c.trailers.contains { $0.lowercased().hasPrefix("grpc-status: 0") }, "\(c.trailers)")
    }

    /// Twenty-four clients each reading nothing of a large response for four seconds do not stop
    /// another call on the same upstream connection. Before the fix the connection's receive
    /// window (1 MiB) was held by the stalled streams (64 KiB each, given back only as their
    /// exchanges take the bytes): after sixteen of them every other stream on it waited.
    @Test func slowClientsDoNotStallOtherCallsOnTheUpstreamConnection() throws {
        try #require(GRPCSupport.available, "grpcio is needed (.ci/run installs it)")
        let server = try GRPCTestServer(name: "stable", logCalls: false)
        defer { server.stop() }
        let proxy = try ProxyHarness(yaml: Self.yaml(upstream: server.port))
        defer { proxy.stop() }
        let slow = (0..<24).map { _ in
            try? Spawned(GRPCSupport.python, [Self.caller, "--port", "\(proxy.port)", "--size", "1500000", "--pause", "4", "--idle", "8"])
        }
        usleep(1_500_000)
        let quick = try Self.call(port: proxy.port, ["--size", "100", "--idle", "8"])
        let c = try #require(quick.calls.first)
        #expect(c.complete && c.match && c.seconds < 1.5, "\(c) \(quick.error)")
        for p in slow {
            let r = try #require(p).finish(timeout: 30)
            let out = String(decoding: r.out, as: UTF8.self)
            #expect(out.contains("\"complete\": true") && out.contains("\"match\": true"), "\(out)")
        }
    }

    /// A request held by a fault drill's delay is released by the worker's timer; its HEADERS to
    /// an already connected HTTP/2 upstream go out at once. Before the fix they waited in the
    /// end-of-batch list while the worker slept in epoll_wait until an unrelated wake-up.
    @Test func aDelayedRequestToAnHTTP2UpstreamIsSentWhenReleased() throws {
        try #require(GRPCSupport.available, "grpcio is needed (.ci/run installs it)")
        let server = try GRPCTestServer(name: "stable", logCalls: false)
        defer { server.stop() }
        let fault = """
                fault: { delay: { duration: 100ms, percent: 100 } }
            """
        let proxy = try ProxyHarness(yaml: Self.yaml(upstream: server.port, fault: fault))
        defer { proxy.stop() }
        // Keep-alive: the second call finds the upstream connection made for the first.
        let r = try Self.call(port: proxy.port, ["--calls", "3", "--idle", "8"])
        #expect(r.calls.count == 3 && r.calls.allSatisfy { $0.complete && $0.match }, "\(r.calls) \(r.error)")
        for c in r.calls { #expect(c.seconds < 2, "a call took \(c.seconds) s (the delay is 100 ms)") }
    }
}
