import Foundation
@preconcurrency import Glibc

/// The gRPC test programs in Tests/Support/grpc (Python, `grpcio`), run with Debian's
/// /usr/bin/python3 (`.ci/run` installs grpcio for it).
enum GRPCSupport {
    static let python = "/usr/bin/python3"
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Support/grpc").path

    /// Whether /usr/bin/python3 can import grpc; tests that need it are skipped (with the reason
    /// printed) without it.
    static let available: Bool = {
        let ok = (try? runTool(python, ["-c", "import grpc"], timeout: 30))?.status == 0
        if !ok { print("gRPC tests skipped: \(python) cannot import grpc (python3 -m pip install grpcio; see .ci/run)") }
        return ok
    }()
}

/// A `grpc_server.py` started by a test on a free loopback port: one cohort (`name`), answering
/// `/sluice.test.Echo/Unary` and `/Stream` over h2c (over TLS with ALPN h2 when given `tls`: PEM
/// certificate and key paths), or failing every call with `failCode`.
/// Each finished call is a `CALL <Method> <CODE> <name> <metadata JSON>` line in `output`.
final class GRPCTestServer {
    let name: String
    let port: UInt16
    private let child: ChildProcess

    /// `logCalls` false: no CALL lines (for tests that make more calls than a pipe holds and never
    /// read them: the server would block writing them).
    init(name: String, fail: Bool = false, failCode: String = "UNAVAILABLE", tls: (cert: String, key: String)? = nil,
         logCalls: Bool = true) throws {
        self.name = name
        var args = [GRPCSupport.dir + "/grpc_server.py", "--port", "0", "--name", name]
        if !logCalls { args.append("--quiet-calls") }
        if fail { args += ["--fail", "--fail-code", failCode] }
        if let tls { args += ["--tls-cert", tls.cert, "--tls-key", tls.key] }
        child = try ChildProcess(GRPCSupport.python, args)
        guard child.waitFor("READY ", timeout: 20),
              let line = child.output.split(separator: "\n").first(where: { $0.hasPrefix("READY ") }),
              let p = UInt16(line.dropFirst("READY ".count).trimmingCharacters(in: .whitespaces)) else {
            child.stop()
            throw TestError("grpc_server.py \(name) did not start: \(child.output)")
        }
        port = p
    }

    /// Everything the server printed so far (READY, CALL lines, COUNTS after `stop`).
    var output: String { child.output }

    /// Waits (at most `timeout` s) until `count` calls of `method` ("Unary", "Stream") ended with
    /// `code` ("OK", "UNAVAILABLE", ...), and says whether they did.
    @discardableResult
    func waitForCalls(_ method: String, _ code: String = "OK", count: Int, timeout: Double = 10) -> Bool {
        child.waitFor("CALL \(method) \(code) ", count: count, timeout: timeout)
    }

    /// Stops the server (SIGTERM; SIGKILL if it lingers) and returns its final counts:
    /// "Unary"/"Stream" -> code -> calls (all calls it received, whatever the client saw).
    @discardableResult
    func stop() -> [String: [String: Int]] {
        var counts: [String: [String: Int]] = [:]
        if child.process.isRunning {
            kill(child.process.processIdentifier, SIGTERM)
            if child.waitFor("COUNTS ", timeout: 5),
               let line = child.output.split(separator: "\n").last(where: { $0.hasPrefix("COUNTS ") }),
               let doc = try? JSONSerialization.jsonObject(with: Data(line.dropFirst("COUNTS ".count).utf8)) as? [String: Any] {
                for (key, value) in doc {
                    if let per = value as? [String: Int] { counts[key] = per }
                }
            }
        }
        child.stop()
        return counts
    }
}

/// What `grpc_client.py` reports: its summary line and each call's line.
struct GRPCClientResult {
    /// One JSON object per call, in call order: ok, code, name, messages, reply, details, served_by.
    var calls: [[String: Any]]
    var total: Int
    var ok: Int
    /// Calls per answering server name ("none" when no server answered).
    var byName: [String: Int]
    /// Calls per gRPC status name ("OK", "UNAVAILABLE", ..., or "BAD_REPLY").
    var byCode: [String: Int]
    var byNameCode: [String: [String: Int]]
    var stderr: String
}

/// Runs `grpc_client.py` against `target` ("127.0.0.1:PORT"): `calls` calls of `method`
/// ("unary" or "stream"), with `metadata`, over `channels` HTTP/2 connections, `concurrency` at a time;
/// over TLS trusting `ca` (a PEM path), sending and verifying `serverName`, when `ca` is given.
func runGRPCClient(target: String, method: String = "unary", calls: Int, metadata: [String: String] = [:],
                   messages: Int = 3, channels: Int = 1, concurrency: Int = 1, callTimeout: Double = 5,
                   ca: String? = nil, serverName: String? = nil) throws -> GRPCClientResult {
    var args = [GRPCSupport.dir + "/grpc_client.py", "--target", target, "--method", method, "--calls", "\(calls)",
                "--messages", "\(messages)", "--channels", "\(channels)", "--concurrency", "\(concurrency)",
                "--timeout", "\(callTimeout)", "--wait-ready", "\(callTimeout)"]
    for (k, v) in metadata.sorted(by: { $0.key < $1.key }) { args += ["--metadata", "\(k)=\(v)"] }
    if let ca { args += ["--ca", ca] }
    if let serverName { args += ["--server-name", serverName] }
    let r = try runTool(GRPCSupport.python, args, timeout: 30 + Double(calls) * callTimeout / Double(concurrency))
    let lines = r.out.split(separator: "\n").map { String($0) }
    guard r.status == 0 || r.status == 1, let last = lines.last,
          let summary = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any], summary["summary"] as? Bool == true
    else { throw TestError("grpc_client.py exited \(r.status): \(r.out) \(r.err)") }
    let each = try lines.dropLast().map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:] }
    return GRPCClientResult(calls: each, total: summary["calls"] as? Int ?? -1, ok: summary["ok"] as? Int ?? -1,
                            byName: summary["by_name"] as? [String: Int] ?? [:], byCode: summary["by_code"] as? [String: Int] ?? [:],
                            byNameCode: summary["by_name_code"] as? [String: [String: Int]] ?? [:], stderr: r.err)
}
