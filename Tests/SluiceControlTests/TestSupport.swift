import SluiceControl
import SluiceCore
import Testing

/// A request head built by hand over its own byte buffer, independent of the HTTP parser.
struct TestRequest {
    /// The request bytes the spans point into.
    var bytes: [UInt8]
    /// The head, as the parser would produce it.
    var head: RequestHead

    /// Builds `METHOD target HTTP/1.1`, a Host field (unless `host` is nil), then `headers`.
    init(_ method: String = "GET", _ target: String = "/", host: String? = "example.com",
         headers: [(String, String)] = []) {
        var bytes: [UInt8] = []
        var head = RequestHead()
        func append(_ s: String) -> ByteSpan {
            let start = bytes.count
            bytes += Array(s.utf8)
            return ByteSpan(start: start, count: bytes.count - start)
        }
        head.methodSpan = append(method)
        head.method = RoutingTable.knownMethod(method) ?? .other
        _ = append(" ")
        head.target = append(target)
        if let q = target.firstIndex(of: "?") {
            let pathCount = target.utf8.distance(from: target.startIndex, to: q)
            head.path = ByteSpan(start: Int(head.target.start), count: pathCount)
            head.query = ByteSpan(start: Int(head.target.start) + pathCount + 1, count: Int(head.target.count) - pathCount - 1)
        } else {
            head.path = head.target
        }
        _ = append(" HTTP/1.1\r\n")
        var all = headers
        if let host { all.insert(("Host", host), at: 0) }
        for (name, value) in all {
            let n = append(name)
            _ = append(": ")
            let v = append(value)
            _ = append("\r\n")
            var flags: FieldFlags = []
            switch name.lowercased() {
            case "host":
                flags.insert(.host)
                head.hostIndex = Int32(head.fields.count)
                head.host = v
            case "cookie": flags.insert(.cookie)
            default: break
            }
            head.fields.append(FieldSpan(name: n, value: v, flags: flags))
        }
        _ = append("\r\n")
        head.headLength = bytes.count
        self.bytes = bytes
        self.head = head
    }

    /// The text of a span of this request.
    func text(_ span: ByteSpan?) -> String? {
        guard let span else { return nil }
        return String(decoding: bytes[span.range], as: UTF8.self)
    }
}

/// Decides `request` on `table` (convenience over the buffer-pointer API).
func decide(_ table: RoutingTable, _ request: TestRequest, client: SocketAddress = .v4(0x7f00_0001, port: 40000),
            entropy: UInt64 = 0, balancer: inout BalancerState) -> RouteDecision {
    request.bytes.withUnsafeBytes {
        table.decide(head: request.head, bytes: $0, client: client, entropy: entropy, balancer: &balancer)
    }
}

/// Decides with a fresh balancer.
func decide(_ table: RoutingTable, _ request: TestRequest, client: SocketAddress = .v4(0x7f00_0001, port: 40000),
            entropy: UInt64 = 0) -> RouteDecision {
    var balancer = BalancerState(table: table)
    return decide(table, request, client: client, entropy: entropy, balancer: &balancer)
}

/// A resolver with fixed answers, so tests never depend on DNS.
let testResolver = HostResolver { name in
    switch name {
    case "localhost": return .success([.v6(hi: 0, lo: 1, port: 0), .v4(0x7f00_0001, port: 0)])
    case "api.internal": return .success([.v4(0x0a01_0203, port: 0)])
    default: return .failure(HostResolver.ResolveFailure(message: "Name or service not known"))
    }
}

/// Loads YAML with the test resolver.
func load(_ yaml: String, file: String = "sluice.yaml", version: UInt64 = 1) throws(ConfigError) -> SluiceConfig {
    try ConfigLoader.parse(yaml: yaml, file: file, version: version, resolver: testResolver)
}

/// Loads YAML that must be valid; records an issue with every diagnostic otherwise.
func mustLoad(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> SluiceConfig? {
    do {
        return try load(yaml)
    } catch {
        Issue.record("config did not load:\n\(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The diagnostics of YAML that must be invalid.
func diagnostics(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> [ConfigDiagnostic] {
    do {
        _ = try load(yaml)
        Issue.record("config loaded but should have failed", sourceLocation: sourceLocation)
        return []
    } catch {
        return error.diagnostics
    }
}

/// A minimal valid prefix: one listener and two upstreams.
let baseYAML = """
    listeners:
      - name: public
        address: 127.0.0.1:8080
    upstreams:
      stable: { endpoints: ["127.0.0.1:9001", "127.0.0.1:9002"] }
      canary: { endpoints: ["127.0.0.1:9003"] }

    """

/// Builds a table directly from specs (two upstreams `stable` and `canary`).
func table(routes: [RouteSpec], version: UInt64 = 1) -> RoutingTable {
    RoutingTable(version: version, upstreams: [
        UpstreamGroup(name: "stable", endpoints: [Endpoint(address: .v4(0x7f00_0001, port: 9001), label: "127.0.0.1:9001")]),
        UpstreamGroup(name: "canary", endpoints: [Endpoint(address: .v4(0x7f00_0001, port: 9003), label: "127.0.0.1:9003")]),
        UpstreamGroup(name: "third", endpoints: [Endpoint(address: .v4(0x7f00_0001, port: 9005), label: "127.0.0.1:9005")]),
    ], routes: routes)
}

/// Writes `user-<i>` into `buffer` (reused) and returns its byte count; avoids String work per key.
func writeUserKey(_ i: Int, into buffer: inout [UInt8]) -> Int {
    buffer.removeAll(keepingCapacity: true)
    buffer += Array("user-".utf8)
    var digits: [UInt8] = []
    var n = i
    repeat {
        digits.append(UInt8(ascii: "0") + UInt8(n % 10))
        n /= 10
    } while n > 0
    buffer += digits.reversed()
    return buffer.count
}
