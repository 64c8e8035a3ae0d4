import Foundation
@preconcurrency import Glibc
import Testing

/// Clients for the HTTP/2 tests: curl, h2load (nghttp2-client) and the raw-frame script
/// `Tests/Support/h2/h2attack.py`, each run as a process with a timeout.
enum H2Client {
    /// `Tests/Support/h2/h2attack.py` in this checkout.
    static let attackScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Support/h2/h2attack.py").path

    /// What curl got: status, HTTP version (`2`, `1.1`), body bytes, response headers, stderr.
    struct CurlResult {
        var code: String
        var version: String
        var body: [UInt8]
        var headers: String
        var error: String
        var bodyText: String { String(decoding: body, as: UTF8.self) }
    }

    /// Runs curl with `args` (add `--http2-prior-knowledge` or `--http2` yourself); the body is
    /// written to a file, so it comes back byte for byte; `input` is the request body source file.
    static func curl(_ args: [String], timeout: Double = 30) throws -> CurlResult {
        let dir = NSTemporaryDirectory() + "sluice-h2curl-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try runTool("/usr/bin/curl", ["-sS", "-o", dir + "/body", "-D", dir + "/headers",
                                              "-w", "%{http_code} %{http_version}"] + args, timeout: timeout)
        let parts = r.out.split(separator: " ")
        let body = (try? Data(contentsOf: URL(fileURLWithPath: dir + "/body"))).map { [UInt8]($0) } ?? []
        let headers = (try? String(contentsOfFile: dir + "/headers", encoding: .utf8)) ?? ""
        return CurlResult(code: parts.first.map(String.init) ?? "", version: parts.count > 1 ? String(parts[1]) : "",
                          body: body, headers: headers, error: r.err)
    }

    /// h2load's summary.
    struct LoadResult {
        var total = 0, succeeded = 0, failed = 0, errored = 0, timedOut = 0
        var status2xx = 0, status3xx = 0, status4xx = 0, status5xx = 0
        var output = ""
    }

    /// Runs `h2load` with `args` and reads its "requests:" and "status codes:" lines.
    static func h2load(_ args: [String], timeout: Double = 300) throws -> LoadResult {
        let r = try runTool("/usr/bin/h2load", args, timeout: timeout)
        var out = LoadResult(output: r.out + r.err)
        func number(_ line: Substring, before word: String) -> Int {
            let tokens = line.replacingOccurrences(of: ",", with: "").split(separator: " ")
            guard let i = tokens.firstIndex(where: { $0 == word }), i > 0 else { return -1 }
            return Int(tokens[i - 1]) ?? -1
        }
        for line in r.out.split(separator: "\n") {
            if line.hasPrefix("requests:") {
                out.total = number(line, before: "total")
                out.succeeded = number(line, before: "succeeded")
                out.failed = number(line, before: "failed")
                out.errored = number(line, before: "errored")
                out.timedOut = number(line, before: "timeout")
            } else if line.hasPrefix("status codes:") {
                out.status2xx = number(line, before: "2xx")
                out.status3xx = number(line, before: "3xx")
                out.status4xx = number(line, before: "4xx")
                out.status5xx = number(line, before: "5xx")
            }
        }
        return out
    }

    /// One stream as the script saw it.
    struct Stream: Decodable {
        var status: Int?
        var headers: Int
        var data: Int
        var ended: Bool
        var reset: Int?
        var t_headers: Double?
        var t_end: Double?
        var body_head: String
        var path: String?
    }

    /// The script's JSON line.
    struct AttackResult: Decodable {
        var mode: String
        var closed: Bool
        var goaway: Int?
        var goaway_last_stream: Int?
        var goaway_at: Double?
        var seconds: Double
        var sent: Int
        var rst_received: Int
        var frames_received: Int
        var streams: [String: Stream]

        func stream(_ id: Int) -> Stream? { streams[String(id)] }
    }

    /// HTTP/2 error codes (RFC 9113 7).
    static let noError = 0, protocolError = 1, enhanceYourCalm = 11

    /// Runs `h2attack.py MODE --port PORT ARGS`, killed after `timeout` + 10 seconds.
    static func attack(_ mode: String, port: UInt16, _ args: [String] = [], timeout: Double = 20) throws -> AttackResult {
        let r = try runTool("/usr/bin/env", ["python3", attackScript, mode, "--port", "\(port)", "--timeout", "\(timeout)"] + args,
                            timeout: timeout + 10)
        guard let line = r.out.split(separator: "\n").last, let result = try? JSONDecoder().decode(AttackResult.self, from: Data(line.utf8)) else {
            throw TestError("h2attack.py \(mode) gave no result (status \(r.status)): \(r.out) \(r.err)")
        }
        return result
    }

    /// Starts the script without waiting (for tests that act while it runs); `finish` gives the result.
    final class Running: @unchecked Sendable {
        private let process = Process()
        private let out = Pipe()
        private var data = Data()
        private let done = DispatchSemaphore(value: 0)

        init(_ mode: String, port: UInt16, _ args: [String], timeout: Double) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", H2Client.attackScript, mode, "--port", "\(port)", "--timeout", "\(timeout)"] + args
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            let handle = out.fileHandleForReading
            Thread { [self] in
                data = handle.readDataToEndOfFile()
                done.signal()
            }.start()
        }

        func finish(timeout: Double) throws -> AttackResult {
            if done.wait(timeout: .now() + timeout) == .timedOut {
                kill(process.processIdentifier, SIGKILL)
                done.wait()
            }
            process.waitUntilExit()
            guard let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last,
                  let result = try? JSONDecoder().decode(AttackResult.self, from: Data(line.utf8)) else {
                throw TestError("h2attack.py gave no result: \(String(decoding: data, as: UTF8.self))")
            }
            return result
        }
    }
}

/// A normal HTTP/2 client running alongside an attack: one `h2load` run for `seconds` (2
/// connections, 10 streams each), every response counted.
final class H2Bystander: @unchecked Sendable {
    private var result = H2Client.LoadResult(total: -1)
    private let done = DispatchSemaphore(value: 0)
    /// When the run started and should end (monotonic, as `Date`).
    let started = Date()
    let seconds: Double

    init(port: UInt16, path: String = "/", seconds: Double) {
        self.seconds = seconds
        Thread { [self] in
            result = (try? H2Client.h2load(["-c", "2", "-m", "10", "-D", "\(Int(seconds))", "http://127.0.0.1:\(port)\(path)"],
                                           timeout: seconds + 60)) ?? H2Client.LoadResult(total: -1)
            done.signal()
        }.start()
    }

    /// Waits for the run to end.
    func finish() -> H2Client.LoadResult {
        done.wait()
        return result
    }
}
