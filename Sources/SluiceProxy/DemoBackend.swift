@preconcurrency import Glibc
import SluiceCore

/// A tiny built-in HTTP/1.1 server for `sluice demo`: answers every request with a fixed
/// line plus the cohort the proxy assigned (from `X-Sluice-Cohort`). One blocking thread per
/// connection; not for production traffic.
public final class DemoBackend: @unchecked Sendable {
    /// Address it listens on.
    public let address: SocketAddress
    private let text: String
    private let listenFD: Int32

    /// Binds `address`; call `start` to serve.
    public init(address: SocketAddress, text: String) throws(SyscallError) {
        self.address = address
        self.text = text
        self.listenFD = try Sys.listen(on: address, backlog: 512)
        // Blocking accept in its own thread.
        let flags = fcntl(listenFD, F_GETFL)
        _ = fcntl(listenFD, F_SETFL, flags & ~O_NONBLOCK)
    }

    /// Starts the accept thread.
    public func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        _ = pthread_create(&thread, nil, { arg in
            let backend = Unmanaged<DemoBackend>.fromOpaque(arg!).takeRetainedValue()
            backend.acceptLoop()
            return nil
        }, box)
        pthread_detach(thread)
    }

    private func acceptLoop() {
        while true {
            let fd = Glibc.accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            let ctx = Unmanaged.passRetained(DemoConnection(fd: fd, text: text)).toOpaque()
            var thread = pthread_t()
            if pthread_create(&thread, nil, { arg in
                let conn = Unmanaged<DemoConnection>.fromOpaque(arg!).takeRetainedValue()
                conn.serve()
                return nil
            }, ctx) == 0 {
                pthread_detach(thread)
            } else {
                Unmanaged<DemoConnection>.fromOpaque(ctx).release()
                Glibc.close(fd)
            }
        }
    }
}

/// One demo connection (owned by its thread).
private final class DemoConnection: @unchecked Sendable {
    let fd: Int32
    let text: String
    init(fd: Int32, text: String) {
        self.fd = fd
        self.text = text
    }

    func serve() {
        defer { Glibc.close(fd) }
        var buffer = [UInt8]()
        var head = RequestHead()
        var chunk = [UInt8](repeating: 0, count: 16384)
        var limits = ParserLimits()
        limits.maxHeadBytes = 16384
        while true {
            let status = buffer.withUnsafeBytes { RequestParser.parse($0, into: &head, limits: limits) }
            switch status {
            case .invalid:
                return
            case .incomplete:
                let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { return }
                buffer += chunk[0..<n]
                continue
            case .complete:
                break
            }
            var cohort = "none"
            var bodyLength = 0
            buffer.withUnsafeBytes { raw in
                for f in head.fields {
                    let name = String(decoding: UnsafeRawBufferPointer(rebasing: raw[f.name.range]), as: UTF8.self).lowercased()
                    if name == "x-sluice-cohort" {
                        cohort = String(decoding: UnsafeRawBufferPointer(rebasing: raw[f.value.range]), as: UTF8.self)
                    }
                }
            }
            switch head.framing {
            case .none, .untilClose: bodyLength = 0
            case .contentLength(let n): bodyLength = Int(n)
            case .chunked: return  // the demo backend does not take chunked uploads
            }
            let consumed = head.headLength + bodyLength
            while buffer.count < consumed {
                let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { return }
                buffer += chunk[0..<n]
            }
            buffer.removeFirst(consumed)
            let body = "\(text) (cohort: \(cohort))\n"
            let response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let ok = response.utf8CString.withUnsafeBufferPointer { p -> Bool in
                var off = 0
                let total = p.count - 1
                while off < total {
                    let n = Glibc.send(fd, p.baseAddress! + off, total - off, Int32(MSG_NOSIGNAL))
                    if n <= 0 { return false }
                    off += n
                }
                return true
            }
            if !ok || !head.keepAlive { return }
        }
    }
}
