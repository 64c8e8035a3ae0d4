import Foundation
@preconcurrency import Glibc
import Testing

/// An upstream that answers the first request of each connection (keep-alive) and closes the
/// connection without answering when the second one arrives on it: what a server whose idle
/// timeout fires just as a pooled connection is reused looks like. Records every request.
final class ForgetfulUpstream: @unchecked Sendable {
    // @unchecked: `requests` is behind `lock`; the threads own their sockets.
    let port: UInt16
    private let listenFD: Int32
    private let lock = NSLock()
    private var _requests: [TestMessage] = []
    var requests: [TestMessage] { lock.withLock { _requests } }

    init() throws {
        (listenFD, port) = try TestSocket.listen()
        let fd = listenFD
        Thread { [self] in
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 { if errno == EINTR { continue }; return }
                Thread { [self] in serve(c) }.start()
            }
        }.start()
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        guard let first = try? reader.readMessage(isResponse: false) else { return }
        lock.withLock { _requests.append(first) }
        guard (try? TestSocket.send(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")) != nil else { return }
        if let second = try? reader.readMessage(isResponse: false) { lock.withLock { _requests.append(second) } }
        // ...and close without an answer.
    }

    func stop() { shutdown(listenFD, Int32(SHUT_RDWR)); close(listenFD) }
}

/// The stale pooled-connection retry follows the idempotency rule (issue 15): a DELETE meeting a
/// pooled connection the upstream dropped is sent again on a fresh one; a POST never is.
@Suite(.serialized)
struct StaleConnectionTests {
    @Test func aDeleteIsRetriedOnAFreshConnectionAPostIsNeverSentTwice() throws {
        let up = try ForgetfulUpstream()
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        let reader = TestReader(fd: fd)
        // 1: a fresh connection, answered and pooled. 2: the DELETE reuses it, the upstream drops
        // it, and the DELETE goes again on a fresh connection (answered "first").
        try TestSocket.send(fd, "GET /warm HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try reader.readMessage(isResponse: true)?.status == 200)
        try TestSocket.send(fd, "DELETE /item HTTP/1.1\r\nHost: x\r\n\r\n")
        let d = try reader.readMessage(isResponse: true)
        #expect(d?.status == 200 && d?.bodyText == "first")
        #expect(up.requests.map(\.startLine) == ["GET /warm HTTP/1.1", "DELETE /item HTTP/1.1", "DELETE /item HTTP/1.1"])
        // 3: the POST reuses the DELETE's pooled connection, which is dropped: 502, not resent.
        try TestSocket.send(fd, "POST /order HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
        let p = try reader.readMessage(isResponse: true, requestMethod: "POST")
        #expect(p?.status == 502)
        #expect(up.requests.count { $0.startLine.hasPrefix("POST") } == 1, "the POST reached the upstream once")
        #expect(proxy.metrics()["sluice_upstream_retries_total{route=\"web\",cohort=\"app\",reason=\"reset\"}"] == 1)
    }
}
