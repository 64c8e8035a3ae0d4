import Foundation
import Testing

/// The gRPC test programs (Tests/Support/grpc) against each other, no proxy: what the HTTP/2
/// tests through Sluice rely on them to report. Skipped (reason printed) when /usr/bin/python3
/// has no grpcio; `.ci/run` installs it.
@Suite(.serialized)
struct GRPCSupportTests {
    /// A healthy server answers unary calls with its name and the payload, and server-streaming
    /// calls with N numbered messages; the client sees who answered, the server counts each call
    /// and sees the metadata the client sent.
    @Test(.enabled(if: GRPCSupport.available))
    func aHealthyServerAnswersUnaryAndStreamingCallsWithItsName() throws {
        let stable = try GRPCTestServer(name: "stable")
        defer { stable.stop() }
        let unary = try runGRPCClient(target: "127.0.0.1:\(stable.port)", calls: 5, metadata: ["x-user": "42"])
        #expect(unary.total == 5 && unary.ok == 5, "\(unary.calls) \(unary.stderr)")
        #expect(unary.byName == ["stable": 5])
        #expect(unary.byCode == ["OK": 5])
        #expect(unary.calls.allSatisfy { $0["reply"] as? String == "stable:hello" })
        let stream = try runGRPCClient(target: "127.0.0.1:\(stable.port)", method: "stream", calls: 4, messages: 7,
                                       channels: 2, concurrency: 4)
        #expect(stream.ok == 4, "\(stream.calls)")
        #expect(stream.calls.allSatisfy { $0["messages"] as? Int == 7 && $0["name"] as? String == "stable" })
        #expect(stable.waitForCalls("Unary", count: 5))
        #expect(stable.waitForCalls("Stream", count: 4))
        #expect(stable.output.contains(#""x-user": "42""#))
        let counts = stable.stop()
        #expect(counts["Unary"] == ["OK": 5], "\(stable.output)")
        #expect(counts["Stream"] == ["OK": 4])
    }

    /// A failing canary ends every call with UNAVAILABLE and its message; the client still learns
    /// who answered (from the trailers), and counts the calls as failed.
    @Test(.enabled(if: GRPCSupport.available))
    func aFailingServerAnswersUnavailableAndIsStillNamed() throws {
        let canary = try GRPCTestServer(name: "canary", fail: true)
        defer { canary.stop() }
        let unary = try runGRPCClient(target: "127.0.0.1:\(canary.port)", calls: 3)
        #expect(unary.total == 3 && unary.ok == 0)
        #expect(unary.byNameCode == ["canary": ["UNAVAILABLE": 3]])
        #expect(unary.calls.allSatisfy { $0["details"] as? String == "canary: failing on purpose" })
        let stream = try runGRPCClient(target: "127.0.0.1:\(canary.port)", method: "stream", calls: 2)
        #expect(stream.byNameCode == ["canary": ["UNAVAILABLE": 2]])
        let counts = canary.stop()
        #expect(counts["Unary"] == ["UNAVAILABLE": 3], "\(canary.output)")
        #expect(counts["Stream"] == ["UNAVAILABLE": 2])
    }

    /// Over TLS: the server picks h2 by ALPN with a certificate from the test CA; a client trusting
    /// that CA and naming a.test gets its answers, one expecting b.test gets none (so a proxy that
    /// fails to verify or to offer h2 cannot pass either).
    @Test(.enabled(if: GRPCSupport.available))
    func overTLSTheServerAnswersAClientThatTrustsIt() throws {
        let f = try TLSFixture()
        defer { f.remove() }
        let stable = try GRPCTestServer(name: "stable", tls: (f.path("a.pem"), f.path("a.key")))
        defer { stable.stop() }
        let good = try runGRPCClient(target: "127.0.0.1:\(stable.port)", method: "stream", calls: 3, ca: f.path("ca.pem"), serverName: "a.test")
        #expect(good.byNameCode == ["stable": ["OK": 3]], "\(good.calls) \(good.stderr)")
        let wrongName = try runGRPCClient(target: "127.0.0.1:\(stable.port)", calls: 1, callTimeout: 2, ca: f.path("ca.pem"), serverName: "b.test")
        #expect(wrongName.byNameCode == ["none": ["UNAVAILABLE": 1]])
        let plaintext = try runGRPCClient(target: "127.0.0.1:\(stable.port)", calls: 1, callTimeout: 2)
        #expect(plaintext.byNameCode == ["none": ["UNAVAILABLE": 1]])
        #expect(stable.stop()["Stream"] == ["OK": 3])
    }

    /// With nothing listening every call fails UNAVAILABLE within its deadline and is counted
    /// under "none": a proxy that answers no gRPC at all cannot pass for a server.
    @Test(.enabled(if: GRPCSupport.available))
    func noServerMeansUnavailableFromNobody() throws {
        let port = try TestSocket.refusedPort()
        let r = try runGRPCClient(target: "127.0.0.1:\(port)", calls: 2, callTimeout: 2)
        #expect(r.ok == 0)
        #expect(r.byNameCode == ["none": ["UNAVAILABLE": 2]])
    }
}
