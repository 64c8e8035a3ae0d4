#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceProxy

/// One endpoint's active health check, as the health monitor's thread runs it: a non-blocking
/// connect, an HTTP/1.1 `GET` with `Host` and `Connection: close`, and the status line read back;
/// over TLS (verified like requests) for a group with `tls:`. Owned by the monitor thread only.
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
    /// The group's name (for events).
    let upstream: String
    /// The endpoint as written (the default `Host`, and the TLS name).
    let label: String
    /// The address checked.
    let address: SocketAddress
    /// The group's check settings.
    private(set) var spec: HealthCheckSpec
    /// The group's TLS for checks (nil: plain TCP).
    private(set) var tls: HealthCheckTLSContext?
    /// The check's TLS session (while one is in progress over TLS).
    private var session: HealthCheckTLSSession?
    /// The endpoint's latest TLS session, offered by the next check.
    private let tlsSlot = HealthCheckTLSSlot()
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

    /// A probe of `address` whose first check is due at `firstDue`.
    init(slot: Int32, upstream: String, label: String, address: SocketAddress, spec: HealthCheckSpec, tls: HealthCheckTLSContext?,
         firstDue: UInt64) {
        self.slot = slot
        self.upstream = upstream
        self.label = label
        self.address = address
        self.spec = spec
        self.tls = tls
        self.nextDue = firstDue
        buildRequest()
    }

    deinit { closeSocket() }

    /// Takes new settings (a reload); the verdict is kept.
    func update(spec: HealthCheckSpec, tls: HealthCheckTLSContext?) {
        self.tls = tls
        guard spec != self.spec else { return }
        self.spec = spec
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
            if let failed = beginSending() { return failed }
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
        case .connecting: return Int16(POLLOUT)
        case .sending: return session?.writeWantsRead == true ? Int16(POLLIN) : Int16(POLLOUT)
        case .reading: return session?.readWantsWrite == true ? Int16(POLLOUT) : Int16(POLLIN)
        }
    }

    /// The connect completed: over TLS, a session on the socket; then the request is sent.
    /// Returns the failed result when the session cannot be made.
    private func beginSending() -> Bool? {
        if let tls {
            guard let s = tls.session(fd: fd, label: label, slot: tlsSlot) else { return finish(false, "TLS session failed") }
            session = s
        }
        phase = .sending
        return nil
    }

    private func send(_ ptr: UnsafeRawPointer, _ count: Int) -> IOResult {
        session.map { $0.write(ptr, count) } ?? Sys.write(fd, ptr, count)
    }

    private func receive(_ ptr: UnsafeMutableRawPointer, _ count: Int) -> IOResult {
        session.map { $0.read(ptr, count) } ?? Sys.read(fd, ptr, count)
    }

    /// Why the transport failed: the TLS failure when there is one.
    private func transportFailure(_ what: String) -> String {
        if let f = session?.failure, !f.isEmpty { return "TLS: \(f)" }
        return what
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
            if let failed = beginSending() { return failed }
        }
        if phase == .sending {
            while sent < request.count {
                let r = request.withUnsafeBytes { send($0.baseAddress! + sent, request.count - sent) }
                switch r {
                case .done(let n): sent += n
                case .wouldBlock: return nil
                case .eof, .failed: return finish(false, transportFailure("send failed"))
                }
            }
            phase = .reading
            return nil
        }
        if phase == .reading {
            var chunk = [UInt8](repeating: 0, count: 512)
            while true {
                let r = chunk.withUnsafeMutableBytes { receive($0.baseAddress!, 512) }
                switch r {
                case .done(let n):
                    response.append(contentsOf: chunk[0..<n])
                    if let status = statusCode() { return judge(status) }
                    if response.count > 4096 { return finish(false, "no status line in the first 4 KiB") }
                case .wouldBlock:
                    return nil
                case .eof, .failed:
                    if let status = statusCode() { return judge(status) }
                    return finish(false, response.isEmpty ? transportFailure("closed without answering") : "not an HTTP response")
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
        session?.close()
        session = nil
        if fd >= 0 { Sys.close(fd) }
        fd = -1
        phase = .idle
    }
}
