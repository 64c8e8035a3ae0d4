import Foundation
@preconcurrency import Glibc

/// What a test upstream does with one request.
enum UpstreamReply: Sendable {
    /// Send these bytes, keep the connection for more requests.
    case raw([UInt8])
    /// Send these bytes, then close.
    case rawThenClose([UInt8])
    /// Close without answering.
    case close
    /// Wait, then act.
    indirect case delayed(TimeInterval, UpstreamReply)
    /// Completes a WebSocket handshake (101) and echoes every frame back unmasked until a close
    /// frame or EOF (see WebSocketTests.swift).
    case websocketEcho
    /// Send a head then `count` bytes of body in pieces (for large downloads), keep the connection.
    case stream(head: String, count: Int)
    /// Send each piece after its pause (a slow upstream), keep the connection.
    case paced([(pause: TimeInterval, bytes: [UInt8])])

    /// A 200 response with a Content-Length body.
    static func ok(_ body: String, headers: [String] = []) -> UpstreamReply {
        let extra = headers.map { $0 + "\r\n" }.joined()
        return .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\n\(extra)\r\n\(body)".utf8))
    }
    /// A response with status and body.
    static func status(_ code: Int, _ body: String) -> UpstreamReply {
        .raw(Array("HTTP/1.1 \(code) X\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8))
    }
}

/// A real HTTP/1.1 server on an ephemeral loopback port, one thread per connection,
/// recording what it received. For tests only.
final class TestUpstream: @unchecked Sendable {
    let port: UInt16
    private let listenFD: Int32
    private let lock = NSLock()
    private var _requests: [TestMessage] = []
    private var _connections = 0
    private var _bodyBytes = 0
    private var _peerClosed = 0
    /// Every byte received on each connection, in accept order (not in discard mode).
    private var _received: [[UInt8]] = []
    /// Per connection: its serving thread has finished (the peer closed, or a read failed).
    private var _ended: [Bool] = []
    private var stopped = false
    private var clientFDs: [Int32] = []
    /// Consumes request bodies without storing them (for huge uploads).
    var discardBodies = false
    private let handler: @Sendable (TestMessage) -> UpstreamReply

    init(host: UInt32 = 0x7f00_0001, port: UInt16 = 0, discardBodies: Bool = false,
         handler: @escaping @Sendable (TestMessage) -> UpstreamReply) throws {
        (listenFD, self.port) = try TestSocket.listen(host: host, port: port)
        self.handler = handler
        self.discardBodies = discardBodies
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    /// Requests received, in order of arrival.
    var requests: [TestMessage] { lock.withLock { _requests } }
    /// TCP connections accepted.
    var connections: Int { lock.withLock { _connections } }
    /// Connections the proxy closed (EOF seen while waiting for a request).
    var peerClosed: Int { lock.withLock { _peerClosed } }
    /// Body bytes received in discard mode.
    var bodyBytes: Int { lock.withLock { _bodyBytes } }
    /// The raw bytes received on each connection so far, in accept order, whether or not they
    /// formed a complete request (not recorded in discard mode).
    var received: [[UInt8]] { lock.withLock { _received } }
    /// Connections whose serving thread has ended (the proxy closed them, or a read failed or
    /// timed out, or a reply closed them).
    var connectionsEnded: Int { lock.withLock { _ended.count { $0 } } }

    func stop() {
        lock.withLock {
            stopped = true
            for fd in clientFDs { shutdown(fd, Int32(SHUT_RDWR)) }
        }
        // Wakes the accept thread, which closes the listening socket itself (closing it here
        // could let the thread accept on a reused descriptor number).
        shutdown(listenFD, Int32(SHUT_RDWR))
    }

    private func acceptLoop() {
        defer { close(listenFD) }
        while true {
            if lock.withLock({ stopped }) { return }
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                return
            }
            let (isStopped, index) = lock.withLock { () -> (Bool, Int) in
                _connections += 1
                clientFDs.append(fd)
                _received.append([])
                _ended.append(false)
                return (stopped, _received.count - 1)
            }
            if isStopped { close(fd); return }
            let t = Thread { [self] in serve(fd, index: index) }
            t.start()
        }
    }

    private func serve(_ fd: Int32, index: Int) {
        defer {
            // Forget the fd before closing it: its number is reused at once by other tests running
            // in parallel, and stop() must never shut down a socket that is not ours any more.
            lock.withLock {
                clientFDs.removeAll { $0 == fd }
                _ended[index] = true
            }
            close(fd)
        }
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let reader = TestReader(fd: fd)
        reader.onReceive = { [self] bytes in lock.withLock { _received[index] += bytes } }
        while true {
            let request: TestMessage
            if discardBodies {
                guard let r = try? readDiscarding(reader) else { return }
                request = r
            } else {
                let r: TestMessage?
                do {
                    r = try reader.readMessage(isResponse: false)
                } catch {
                    return
                }
                guard let r else {
                    lock.withLock { _peerClosed += 1 }
                    return
                }
                request = r
            }
            lock.withLock { _requests.append(request) }
            let reply = handler(request)
            if case .websocketEcho = reply {
                WebSocketEcho.serve(fd: fd, request: request, pending: reader.buffer)
                return
            }
            if !act(reply, fd: fd) { return }
        }
    }

    private func readDiscarding(_ reader: TestReader) throws -> TestMessage? {
        // Read the head with the normal reader logic but stream the body away.
        var head: [UInt8] = []
        while true {
            if let r = head.firstRange(of: [13, 10, 13, 10]) {
                let text = String(decoding: head[..<r.lowerBound], as: UTF8.self)
                var lines = text.components(separatedBy: "\r\n")
                let start = lines.removeFirst()
                let headers = lines.compactMap { l -> (String, String)? in
                    guard let c = l.firstIndex(of: ":") else { return nil }
                    return (String(l[..<c]), l[l.index(after: c)...].trimmingCharacters(in: .whitespaces))
                }
                let msg = TestMessage(startLine: start, headers: headers, body: [], raw: Array(head[..<r.upperBound]))
                var remaining = Int(msg.header("Content-Length") ?? "0") ?? 0
                var already = head.count - r.upperBound
                remaining -= already
                lock.withLock { _bodyBytes += already }
                while remaining > 0 {
                    let chunk = try TestSocket.recv(reader.fd, max: 1 << 20)
                    if chunk.isEmpty { return nil }
                    remaining -= chunk.count
                    already = chunk.count
                    lock.withLock { _bodyBytes += already }
                }
                return msg
            }
            let chunk = try TestSocket.recv(reader.fd)
            if chunk.isEmpty { return nil }
            head += chunk
        }
    }

    /// Returns false when the connection should end.
    private func act(_ reply: UpstreamReply, fd: Int32) -> Bool {
        switch reply {
        case .raw(let b):
            return (try? TestSocket.send(fd, b)) != nil
        case .rawThenClose(let b):
            try? TestSocket.send(fd, b)
            return false
        case .close, .websocketEcho:
            return false
        case .delayed(let t, let r):
            Thread.sleep(forTimeInterval: t)
            return act(r, fd: fd)
        case .paced(let pieces):
            for piece in pieces {
                Thread.sleep(forTimeInterval: piece.pause)
                guard (try? TestSocket.send(fd, piece.bytes)) != nil else { return false }
            }
            return true
        case .stream(let head, let count):
            guard (try? TestSocket.send(fd, Array(head.utf8))) != nil else { return false }
            let piece = [UInt8](repeating: UInt8(ascii: "x"), count: 256 * 1024)
            var left = count
            while left > 0 {
                let n = min(left, piece.count)
                guard (try? TestSocket.send(fd, Array(piece[0..<n]))) != nil else { return false }
                left -= n
            }
            return true
        }
    }
}
