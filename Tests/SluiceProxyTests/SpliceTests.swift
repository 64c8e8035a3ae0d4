import Foundation
@preconcurrency import Glibc
import Testing

/// Long Content-Length bodies go upstream socket → pipe → client socket with splice(2)
/// (`limits.splice_min_body`); these tests check every byte arrives in order, with fast and slow
/// readers, that a body cut short still closes the client, and that copying (`0`) behaves the same.
@Suite(.serialized) struct SpliceTests {
    /// Body sizes around the splice threshold (64 KiB by default) and well above it.
    static let sizes = [65_537, 200_000, 1_048_583, 3_000_000]

    /// A body whose bytes depend on their offset, so a lost, repeated or reordered piece shows.
    static func body(_ size: Int) -> [UInt8] {
        (0..<size).map { i in UInt8(truncatingIfNeeded: i &* 131 &+ (i >> 11)) }
    }

    /// Reads one response with a Content-Length from a blocking socket, `slow` in small pieces with
    /// pauses (so the proxy meets a full client socket and a full pipe). Returns (status, body).
    static func readResponse(_ fd: Int32, slow: Bool) throws -> (Int, [UInt8]) {
        var head: [UInt8] = []
        var headEnd = 0
        while headEnd == 0 {
            var byte: UInt8 = 0
            let n = Glibc.recv(fd, &byte, 1, 0)
            guard n == 1 else { throw TestError("EOF or timeout in the response head") }
            head.append(byte)
            if head.count >= 4 && head.suffix(4).elementsEqual([13, 10, 13, 10]) { headEnd = head.count }
        }
        let text = String(decoding: head, as: UTF8.self)
        let status = Int(text.split(separator: " ")[1]) ?? 0
        guard let line = text.components(separatedBy: "\r\n").first(where: { $0.lowercased().hasPrefix("content-length:") }),
              let length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) else {
            throw TestError("no Content-Length in \(text)")
        }
        var body = [UInt8](repeating: 0, count: length)
        var got = 0
        var pieces = 0
        while got < length {
            let want = slow ? min(16 * 1024, length - got) : length - got
            let n = body.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress! + got, want, 0) }
            guard n > 0 else { throw TestError("EOF or timeout after \(got) of \(length) body bytes") }
            got += n
            pieces += 1
            if slow && pieces % 8 == 0 { usleep(2_000) }
        }
        return (status, body)
    }

    @Test(arguments: ["", "limits: { splice_min_body: 0 }"])
    func bodiesArriveIntactWithFastAndSlowReaders(extra: String) throws {
        let bodies = Dictionary(uniqueKeysWithValues: SpliceTests.sizes.map { ($0, SpliceTests.body($0)) })
        let up = try TestUpstream { req in
            let size = Int(req.startLine.split(separator: " ")[1].dropFirst()) ?? 0
            guard let b = bodies[size] else { return .status(404, "no such size\n") }
            return .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: \(b.count)\r\n\r\n".utf8) + b)
        }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port], extra: extra)
        defer { proxy.stop() }

        let clients = 8
        let requestsEach = 6
        let failures = NSLock()
        nonisolated(unsafe) var problems: [String] = []
        DispatchQueue.concurrentPerform(iterations: clients) { client in
            do {
                let fd = try proxy.connect()
                defer { close(fd) }
                for r in 0..<requestsEach {
                    let size = SpliceTests.sizes[(client + r) % SpliceTests.sizes.count]
                    try TestSocket.send(fd, "GET /\(size) HTTP/1.1\r\nHost: h\r\n\r\n")
                    let (status, got) = try SpliceTests.readResponse(fd, slow: client % 2 == 1)
                    if status != 200 || got != bodies[size]! {
                        failures.withLock { problems.append("client \(client) request \(r): status \(status), \(size) B body differs") }
                    }
                }
            } catch {
                failures.withLock { problems.append("client \(client): \(error)") }
            }
        }
        #expect(problems.isEmpty, "\(problems)")
        // Every exchange ended cleanly, so the upstream connections went back to the pool.
        #expect(up.connections <= clients)
        #expect(up.requests.count == clients * requestsEach)
    }

    @Test func bodyCutShortByTheUpstreamClosesTheClient() throws {
        let sent = 600 * 1024
        let up = try TestUpstream { _ in
            .rawThenClose(Array("HTTP/1.1 200 OK\r\nContent-Length: \(2 << 20)\r\n\r\n".utf8) + SpliceTests.body(sent))
        }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        try TestSocket.send(fd, "GET /cut HTTP/1.1\r\nHost: h\r\n\r\n")
        let all = TestSocket.readAll(fd)  // returns at EOF (or the 10 s receive timeout)
        let text = String(decoding: all.prefix(64), as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200"))
        let headEnd = try #require(all.firstRange(of: [13, 10, 13, 10] as [UInt8])).upperBound
        // The client gets at most what the upstream sent, never more, and then the connection closes.
        #expect(all.count - headEnd <= sent)
        #expect(Array(all[headEnd...]) == Array(SpliceTests.body(sent).prefix(all.count - headEnd)))
        let m = proxy.metrics()
        #expect(m.keys.contains { $0.hasPrefix("sluice_upstream_errors_total") && $0.contains("reset") })
    }

    @Test func bytesOfASlowUpstreamAreNotHeldBackByTheLowWaterMark() throws {
        // 1 MiB announced: 100 KiB at once, 50 KiB a little later (when the proxy is splicing and
        // has asked the kernel to wake it only per pipeful, SO_RCVLOWAT), the rest after a long
        // pause. The 50 KiB must still reach the client during that pause, not after it.
        let size = 1 << 20
        let (first, second) = (100 * 1024, 50 * 1024)
        let body = SpliceTests.body(size)
        let up = try TestUpstream { _ in
            .paced([(0, Array("HTTP/1.1 200 OK\r\nContent-Length: \(size)\r\n\r\n".utf8) + body[0..<first]),
                    (0.3, Array(body[first..<(first + second)])),
                    (3, Array(body[(first + second)...]))])
        }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port])
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        try TestSocket.send(fd, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        var got: [UInt8] = []
        let start = Date()
        var buf = [UInt8](repeating: 0, count: 65536)
        // Read for 2 s: the second piece is sent at 0.3 s, the third not before 3.3 s.
        while Date().timeIntervalSince(start) < 2 {
            let n = buf.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress!, $0.count, 0) }
            if n > 0 { got += buf[0..<n] }
            if n == 0 { break }
        }
        let headEnd = try #require(got.firstRange(of: [13, 10, 13, 10] as [UInt8])).upperBound
        #expect(got.count - headEnd == first + second, "both early pieces arrive during the upstream's pause")
        #expect(Array(got[headEnd...]) == Array(body[0..<(first + second)]))
    }

    @Test func clientThatStopsReadingIsCutAfterTheSendTimeout() throws {
        let size = 16 << 20
        let up = try TestUpstream { _ in .stream(head: "HTTP/1.1 200 OK\r\nContent-Length: \(size)\r\n\r\n", count: size) }
        defer { up.stop() }
        let proxy = try ProxyHarness(upstreamPorts: [up.port], extra: "timeouts: { client_send: 300ms }")
        defer { proxy.stop() }
        let fd = try proxy.connect()
        defer { close(fd) }
        var small: Int32 = 16 * 1024
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        try TestSocket.send(fd, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
        // Read the head and a little body, then stop reading: the proxy's pipe and the sockets fill.
        _ = try TestSocket.recv(fd, max: 4096)
        let deadline = Date().addingTimeInterval(5)
        while up.connectionsEnded < 1 && Date() < deadline { usleep(20_000) }
        #expect(up.connectionsEnded == 1, "the upstream connection is closed along with the stuck client")
        // What is left to read ends in EOF well before the whole body.
        let rest = TestSocket.readAll(fd)
        #expect(rest.count < size)
    }
}
