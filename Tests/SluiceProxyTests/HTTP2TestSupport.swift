import CSluiceSys
import Foundation
@preconcurrency import Glibc
import Testing

/// A child process started with posix_spawn, its output read with poll(2). Foundation's
/// `Process` is not used here: launched from several test threads at once (these tests run
/// clients in parallel with other suites') it crashed inside `Process.run`, and its pipe reads
/// trapped on EINTR.
final class Spawned: @unchecked Sendable {
    let pid: pid_t
    private var stdinFD: Int32
    private let outFD: Int32
    private let errFD: Int32

    init(_ exe: String, _ args: [String]) throws {
        // Close-on-exec from the start (pipe2), so a process another test thread spawns meanwhile
        // does not inherit an end and hold the pipe open; the child's ends are made blocking again.
        var inPipe: [Int32] = [0, 0], outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        var capacity: Int32 = 0
        guard csluice_pipe(&inPipe, 0, &capacity) == 0, csluice_pipe(&outPipe, 0, &capacity) == 0,
              csluice_pipe(&errPipe, 0, &capacity) == 0 else {
            throw TestError("pipe2 failed")
        }
        for fd in [inPipe[0], outPipe[1], errPipe[1]] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([exe] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, exe, &actions, nil, argv, environ)
        close(inPipe[0])
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(inPipe[1])
            close(outPipe[0])
            close(errPipe[0])
            throw TestError("posix_spawn \(exe): \(rc)")
        }
        pid = child
        stdinFD = inPipe[1]
        outFD = outPipe[0]
        errFD = errPipe[0]
    }

    /// Writes `input` to the child's stdin (then closes it) while reading its output, until both
    /// output pipes end or `timeout` seconds pass (then the child is killed); reaps the child.
    func finish(input: [UInt8] = [], timeout: Double) -> (status: Int32, out: [UInt8], err: [UInt8]) {
        var out: [UInt8] = [], err: [UInt8] = []
        var written = 0
        if input.isEmpty { close(stdinFD); stdinFD = -1 }
        var open = [outFD, errFD]
        let end = Date().addingTimeInterval(timeout)
        var buf = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty {
            let left = end.timeIntervalSinceNow
            if left <= 0 {
                kill(pid, SIGKILL)
                break
            }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if stdinFD >= 0 { fds.append(pollfd(fd: stdinFD, events: Int16(POLLOUT), revents: 0)) }
            let n = poll(&fds, nfds_t(fds.count), Int32(min(left, 1) * 1000) + 1)
            if n < 0 && errno == EINTR { continue }
            for p in fds where p.revents != 0 {
                if p.fd == stdinFD {
                    let k = input.withUnsafeBytes { write(stdinFD, $0.baseAddress! + written, input.count - written) }
                    if k > 0 { written += k }
                    if (k < 0 && errno != EAGAIN && errno != EINTR) || written == input.count {
                        close(stdinFD)
                        stdinFD = -1
                    }
                    continue
                }
                let k = read(p.fd, &buf, buf.count)
                if k > 0 {
                    if p.fd == outFD { out += buf[0..<k] } else { err += buf[0..<k] }
                } else if k == 0 || (errno != EAGAIN && errno != EINTR) {
                    open.removeAll { $0 == p.fd }
                }
            }
        }
        if stdinFD >= 0 { close(stdinFD) }
        close(outFD)
        close(errFD)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status, out, err)
    }

    /// Runs `exe` with `args` to the end (killed after `timeout` seconds).
    static func run(_ exe: String, _ args: [String], input: [UInt8] = [], timeout: Double) throws -> (status: Int32, out: String, err: String) {
        let r = try Spawned(exe, args).finish(input: input, timeout: timeout)
        return (r.status, String(decoding: r.out, as: UTF8.self), String(decoding: r.err, as: UTF8.self))
    }
}

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
        let r = try Spawned.run("/usr/bin/curl", ["-sS", "-o", dir + "/body", "-D", dir + "/headers",
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
        let r = try Spawned.run("/usr/bin/h2load", args, timeout: timeout)
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
        let r = try Spawned.run(python, [attackScript, mode, "--port", "\(port)", "--timeout", "\(timeout)"] + args,
                                timeout: timeout + 10)
        guard let line = r.out.split(separator: "\n").last, let result = try? JSONDecoder().decode(AttackResult.self, from: Data(line.utf8)) else {
            throw TestError("h2attack.py \(mode) gave no result (status \(r.status)): \(r.out) \(r.err)")
        }
        return result
    }

    /// Starts the script without waiting (for tests that act while it runs); `finish` gives the result.
    final class Running: @unchecked Sendable {
        private let child: Spawned

        init(_ mode: String, port: UInt16, _ args: [String], timeout: Double) throws {
            child = try Spawned(H2Client.python, [H2Client.attackScript, mode, "--port", "\(port)", "--timeout", "\(timeout)"] + args)
        }

        func finish(timeout: Double) throws -> AttackResult {
            let r = child.finish(timeout: timeout)
            let text = String(decoding: r.out, as: UTF8.self)
            guard let line = text.split(separator: "\n").last,
                  let result = try? JSONDecoder().decode(AttackResult.self, from: Data(line.utf8)) else {
                throw TestError("h2attack.py gave no result: \(text) \(String(decoding: r.err, as: UTF8.self))")
            }
            return result
        }
    }

    /// python3 from PATH (a pyenv shim or /usr/bin/python3).
    static let python: String = {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let p = "\(dir)/python3"
            if access(p, X_OK) == 0 { return p }
        }
        return "/usr/bin/python3"
    }()
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
