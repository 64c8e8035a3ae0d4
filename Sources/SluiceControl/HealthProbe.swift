#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceProxy

/// One endpoint's active health check, as the health monitor's thread runs it: a non-blocking
/// connect, an HTTP/1.1 `GET` with `Host` and `Connection: close`, and the status line read back;
/// for a TLS group, the TCP connect alone (see README). Owned by the monitor thread only.
final class HealthProbe {
    /// Where a check in progress is.
    enum Phase: Equatable {
        /// No check in progress.
        case idle
        /// Waiting for the connect to complete.
        case connecting
        /// Sending the request (`sent` bytes of it so far).
        case sending
        /// Reading the status line.
        case reading
    }

    /// The endpoint's health slot (its identity across tables).
    let slot: Int32
    let upstream: String
    let label: String
    let address: SocketAddress
    private(set) var spec: HealthCheckSpec
    /// Connect-only check (the group speaks TLS).
    private(set) var connectOnly: Bool
    /// The verdict so far.
    var verdict = ActiveCheckState()
    /// When the next check starts (monotonic nanos).
    var nextDue: UInt64
    private(set) var phase: Phase = .idle
    /// The socket of the check in progress (-1: none).
    private(set) var fd: Int32 = -1
    /// When the check in progress fails for taking too long.
    private(set) var deadline: UInt64 = 0
    private var request: [UInt8] = []
    private var sent = 0
    private var response: [UInt8] = []
    /// Why the last check failed (for the event), or "" after a pass.
    private(set) var lastFailure = ""
    /// Status of the last answered check (0: none).
    private(set) var lastStatus = 0

    init(slot: Int32, upstream: String, label: String, address: SocketAddress, spec: HealthCheckSpec, connectOnly: Bool,
         firstDue: UInt64) {
        self.slot = slot
        self.upstream = upstream
        self.label = label
        self.address = address
        self.spec = spec
        self.connectOnly = connectOnly
        self.nextDue = firstDue
        buildRequest()
    }

    deinit { closeSocket() }

    /// Takes new settings (a reload); the verdict is kept.
    func update(spec: HealthCheckSpec, connectOnly: Bool) {
        guard spec != self.spec || connectOnly != self.connectOnly else { return }
        self.spec = spec
        self.connectOnly = connectOnly
        buildRequest()
    }

    private func buildRequest() {
        let host = spec.host ?? label
        request = Array("GET \(spec.path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: sluice-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n".utf8)
    }

    /// Starts a check at `now`. Returns a result at once when the connect fails immediately
    /// (nil: the check is in progress).
    func start(now: UInt64) -> Bool? {
        closeSocket()
        nextDue = now &+ spec.intervalNanos
        deadline = now &+ spec.timeoutNanos
        sent = 0
        response.removeAll(keepingCapacity: true)
        do {
            fd = try Sys.tcpSocket(for: address)
        } catch {
            return finish(false, "socket: \(error)")
        }
        switch Sys.connect(fd, to: address) {
        case .connected:
            if connectOnly { return finish(true, "") }
            phase = .sending
        case .inProgress:
            phase = .connecting
        case .failed(let e):
            return finish(false, "connect: \(String(cString: strerror(e)))")
        }
        return nil
    }

    /// The poll events this check waits for (0 when idle).
    var pollEvents: Int16 {
        switch phase {
        case .idle: return 0
        case .connecting, .sending: return Int16(POLLOUT)
        case .reading: return Int16(POLLIN)
        }
    }

    /// Advances the check after poll reported `revents`; returns the result when it ended.
    func advance(revents: Int16) -> Bool? {
        if phase == .connecting {
            let err = Sys.pendingError(fd)
            if err != 0 { return finish(false, "connect: \(String(cString: strerror(err)))") }
            if revents & Int16(POLLOUT) == 0 {
                if revents & Int16(POLLHUP | POLLERR) != 0 { return finish(false, "connect: connection failed") }
                return nil
            }
            if connectOnly { return finish(true, "") }
            phase = .sending
        }
        if phase == .sending {
            while sent < request.count {
                let r = request.withUnsafeBytes { Sys.write(fd, $0.baseAddress! + sent, request.count - sent) }
                switch r {
                case .done(let n): sent += n
                case .wouldBlock: return nil
                case .eof, .failed: return finish(false, "send failed")
                }
            }
            phase = .reading
            return nil
        }
        if phase == .reading {
            var chunk = [UInt8](repeating: 0, count: 512)
            while true {
                let r = chunk.withUnsafeMutableBytes { Sys.read(fd, $0.baseAddress!, 512) }
                switch r {
                case .done(let n):
                    response.append(contentsOf: chunk[0..<n])
                    if let status = statusCode() { return judge(status) }
                    if response.count > 4096 { return finish(false, "no status line in the first 4 KiB") }
                case .wouldBlock:
                    return nil
                case .eof, .failed:
                    if let status = statusCode() { return judge(status) }
                    return finish(false, response.isEmpty ? "closed without answering" : "not an HTTP response")
                }
            }
        }
        return nil
    }

    /// Fails the check in progress if its deadline passed.
    func checkTimeout(now: UInt64) -> Bool? {
        guard phase != .idle, now >= deadline else { return nil }
        return finish(false, phase == .connecting ? "connect timed out" : "timed out")
    }

    /// The status of a complete `HTTP/1.x NNN` line in `response`; nil while incomplete, 0 for garbage.
    private func statusCode() -> Int? {
        guard let lf = response.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let line = response[..<lf]
        guard line.count >= 12, line.starts(with: Array("HTTP/1.".utf8)) else { return 0 }
        let digits = line[line.startIndex + 9 ..< line.startIndex + 12]
        var status = 0
        for d in digits {
            guard d >= UInt8(ascii: "0") && d <= UInt8(ascii: "9") else { return 0 }
            status = status * 10 + Int(d - UInt8(ascii: "0"))
        }
        return status
    }

    private func judge(_ status: Int) -> Bool {
        guard status != 0 else { return finish(false, "not an HTTP response") }
        lastStatus = status
        return spec.passes(status: status) ? finish(true, "") : finish(false, "status \(status)")
    }

    private func finish(_ passed: Bool, _ reason: String) -> Bool {
        closeSocket()
        lastFailure = reason
        return passed
    }

    /// Closes the check's socket (if any) and goes idle.
    func closeSocket() {
        if fd >= 0 { Sys.close(fd) }
        fd = -1
        phase = .idle
    }
}
