import Foundation
@preconcurrency import Glibc
import Testing
import SluiceControl
import SluiceCore

/// A WebSocket echo on a raw socket (RFC 6455 framing, enough for tests): client frames are
/// masked, server frames are not; payloads are streamed, so a 100 MiB message needs no 100 MiB buffer.
enum WebSocketEcho {
    /// Answers the handshake and echoes frames until a close frame or EOF.
    static func serve(fd: Int32, request: TestMessage, pending: [UInt8]) {
        let key = request.header("Sec-WebSocket-Key") ?? ""
        let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: \(key)-accepted\r\nX-Echo: 1\r\n\r\n"
        guard (try? TestSocket.send(fd, Array(head.utf8))) != nil else { return }
        var input = FrameInput(fd: fd, buffer: pending)
        while let (first, length, mask) = input.frameHead() {
            var header: [UInt8] = [first]
            appendLength(length, masked: false, to: &header)
            guard (try? TestSocket.send(fd, header)) != nil else { return }
            var left = length, offset = 0
            while left > 0 {
                guard var piece = input.take(max: min(left, 1 << 20)) else { return }
                for i in 0..<piece.count { piece[i] ^= mask[(offset + i) & 3] }
                guard (try? TestSocket.send(fd, piece)) != nil else { return }
                left -= piece.count
                offset += piece.count
            }
            if first & 0x0F == 8 { return }  // close
        }
    }

    static func appendLength(_ n: Int, masked: Bool, to out: inout [UInt8]) {
        let m: UInt8 = masked ? 0x80 : 0
        if n < 126 {
            out.append(m | UInt8(n))
        } else if n < 65536 {
            out += [m | 126, UInt8(n >> 8), UInt8(n & 0xFF)]
        } else {
            out.append(m | 127)
            for s in stride(from: 56, through: 0, by: -8) { out.append(UInt8((n >> s) & 0xFF)) }
        }
    }

    /// A client frame: FIN, `opcode`, masked with a fixed key.
    static func clientFrame(opcode: UInt8, _ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x80 | opcode]
        appendLength(payload.count, masked: true, to: &out)
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        out += mask
        out += payload.enumerated().map { $0.element ^ mask[$0.offset & 3] }
        return out
    }
}

/// Bytes of a socket read on demand, with what was already read first.
struct FrameInput {
    let fd: Int32
    var buffer: [UInt8]

    mutating func need(_ n: Int) -> Bool {
        while buffer.count < n {
            guard let chunk = try? TestSocket.recv(fd, max: 1 << 20), !chunk.isEmpty else { return false }
            buffer += chunk
        }
        return true
    }

    /// The next frame's first byte, payload length and mask (zeros when unmasked).
    mutating func frameHead() -> (UInt8, Int, [UInt8])? {
        guard need(2) else { return nil }
        let first = buffer[0], second = buffer[1]
        var length = Int(second & 0x7F)
        var p = 2
        if length == 126 {
            guard need(4) else { return nil }
            length = Int(buffer[2]) << 8 | Int(buffer[3])
            p = 4
        } else if length == 127 {
            guard need(10) else { return nil }
            length = buffer[2..<10].reduce(0) { $0 << 8 | Int($1) }
            p = 10
        }
        var mask: [UInt8] = [0, 0, 0, 0]
        if second & 0x80 != 0 {
            guard need(p + 4) else { return nil }
            mask = Array(buffer[p..<p + 4])
            p += 4
        }
        buffer.removeFirst(p)
        return (first, length, mask)
    }

    /// Up to `max` payload bytes (at least one), nil at EOF.
    mutating func take(max: Int) -> [UInt8]? {
        if buffer.isEmpty {
            guard need(1) else { return nil }
        }
        let n = min(max, buffer.count)
        let out = Array(buffer[0..<n])
        buffer.removeFirst(n)
        return out
    }
}

private let handshake = "GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

private func tunnelYAML(_ stable: UInt16, _ canary: UInt16, split: String = "stable: 100, canary: 0", extra: String = "") -> String {
    """
    listeners:
      - name: public
        address: 127.0.0.1:0
    timeouts: { drain: 1s }
    upstreams:
      stable: { endpoints: ["127.0.0.1:\(stable)"] }
      canary: { endpoints: ["127.0.0.1:\(canary)"] }
    routes:
      - name: web
        match: { path_prefix: "/" }
        split: { \(split) }
        sticky: none
    \(extra)
    """
}

/// Opens a WebSocket through the proxy; returns the socket and the input after the 101 head.
private func openWebSocket(port: UInt16) throws -> (Int32, FrameInput, TestMessage) {
    let fd = try TestSocket.connect(port: port)
    try TestSocket.send(fd, handshake)
    let reader = TestReader(fd: fd)
    let head = try #require(try reader.readMessage(isResponse: true))
    return (fd, FrameInput(fd: fd, buffer: reader.buffer), head)
}

/// Sends a frame and reads its echo; returns (opcode, payload).
private func echo(_ fd: Int32, _ input: inout FrameInput, opcode: UInt8, _ payload: [UInt8]) throws -> (UInt8, [UInt8]) {
    try TestSocket.send(fd, WebSocketEcho.clientFrame(opcode: opcode, payload))
    guard let (first, length, _) = input.frameHead() else { throw TestError("no echo frame") }
    var got: [UInt8] = []
    while got.count < length {
        guard let piece = input.take(max: length - got.count) else { throw TestError("echo cut short") }
        got += piece
    }
    return (first & 0x0F, got)
}

@Suite(.serialized)
struct WebSocketTests {
    @Test("a WebSocket through Sluice: handshake forwarded, text and binary frames echoed both ways")
    func echoFrames() throws {
        let stable = try TestUpstream { _ in .websocketEcho }, canary = try TestUpstream { _ in .websocketEcho }
        defer { stable.stop(); canary.stop() }
        let proxy = try ProxyHarness(yaml: tunnelYAML(stable.port, canary.port))
        defer { proxy.stop() }
        var (fd, input, head) = try openWebSocket(port: proxy.port)
        defer { close(fd) }
        #expect(head.status == 101)
        #expect(head.header("Upgrade") == "websocket")
        #expect(head.header("Connection")?.lowercased() == "upgrade")
        #expect(head.header("Sec-WebSocket-Accept") == "dGhlIHNhbXBsZSBub25jZQ==-accepted")
        // The upstream got the upgrade request with both fields.
        let request = try #require(stable.requests.first)
        #expect(request.header("Upgrade") == "websocket")
        #expect(request.header("Connection") == "upgrade")
        #expect(request.header("Sec-WebSocket-Key") == "dGhlIHNhbXBsZSBub25jZQ==")

        let (op1, text) = try echo(fd, &input, opcode: 1, Array("hello, tunnel".utf8))
        #expect(op1 == 1 && text == Array("hello, tunnel".utf8))
        let binary: [UInt8] = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let (op2, back) = try echo(fd, &input, opcode: 2, binary)
        #expect(op2 == 2 && back == binary)
        #expect(proxy.metrics()["sluice_tunnels_open{route=\"web\",cohort=\"stable\"}"] == 1)
        // Close: the echo server answers the close frame and ends; the proxy closes the client.
        let (op3, _) = try echo(fd, &input, opcode: 8, [0x03, 0xE8])
        #expect(op3 == 8)
        #expect(TestSocket.readAll(fd).isEmpty)
        #expect(eventually(3) { proxy.metrics()["sluice_tunnels_open{route=\"web\",cohort=\"stable\"}"] == 0 })
        #expect(proxy.metrics()["sluice_tunnel_duration_seconds_count{route=\"web\",cohort=\"stable\"}"] == 1)
    }

    @Test("an upgrade the upstream refuses with 400 is relayed as is; a route with upgrade: [] does not forward it")
    func refusedUpgrade() throws {
        let up = try TestUpstream { _ in .status(400, "no websockets here") }
        defer { up.stop() }
        let proxy = try ProxyHarness(yaml: tunnelYAML(up.port, up.port) + "\n")
        defer { proxy.stop() }
        let (fd, _, head) = try openWebSocket(port: proxy.port)
        close(fd)
        #expect(head.status == 400)
        #expect(head.bodyText == "no websockets here")

        let off = try ProxyHarness(yaml: tunnelYAML(up.port, up.port).replacingOccurrences(of: "sticky: none", with: "sticky: none\n    upgrade: []"))
        defer { off.stop() }
        let (fd2, _, head2) = try openWebSocket(port: off.port)
        close(fd2)
        #expect(head2.status == 400)
        let last = try #require(up.requests.last)
        #expect(last.header("Upgrade") == nil, "upgrade: [] serves the request as plain HTTP")
    }

    @Test("a reload keeps an open tunnel; removing its cohort closes it after timeouts.drain")
    func reloadAndRemoval() throws {
        let stable = try TestUpstream { _ in .websocketEcho }, canary = try TestUpstream { _ in .websocketEcho }
        defer { stable.stop(); canary.stop() }
        let proxy = try ProxyHarness(yaml: tunnelYAML(stable.port, canary.port))
        defer { proxy.stop() }
        var (fd, input, head) = try openWebSocket(port: proxy.port)
        defer { close(fd) }
        #expect(head.status == 101)
        // A reload that changes the split: the tunnel stays with its cohort and keeps working.
        let moved = try ConfigLoader.parse(yaml: tunnelYAML(stable.port, canary.port, split: "stable: 0, canary: 100"), file: "t.yaml")
        proxy.server.publish(moved.table)
        usleep(200_000)
        #expect(try echo(fd, &input, opcode: 1, Array("after reload".utf8)).1 == Array("after reload".utf8))
        // A reload without the cohort: still open for now, closed after drain (1 s, spread up to 1.25 s).
        let removed = try ConfigLoader.parse(yaml: """
            listeners:
              - name: public
                address: 127.0.0.1:0
            timeouts: { drain: 1s }
            upstreams:
              canary: { endpoints: ["127.0.0.1:\(canary.port)"] }
            routes:
              - name: web
                match: { path_prefix: "/" }
                upstream: canary
                sticky: none
            """, file: "t.yaml")
        let start = Date()
        proxy.server.publish(removed.table)
        usleep(200_000)
        #expect(try echo(fd, &input, opcode: 1, Array("still here".utf8)).1 == Array("still here".utf8))
        #expect(TestSocket.readAll(fd).isEmpty)
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed >= 0.9 && elapsed < 5, "closed after \(elapsed) s")
    }

    @Test("a 100 MiB message through a tunnel with bounded proxy memory")
    func largeMessageBoundedMemory() throws {
        let up = try TestUpstream { _ in .websocketEcho }
        defer { up.stop() }
        let proxy = try SluiceProcess { port in
            tunnelYAML(up.port, up.port).replacingOccurrences(of: "127.0.0.1:0", with: "127.0.0.1:\(port)")
        }
        defer { _ = proxy.stop() }
        var (fd, input, head) = try openWebSocket(port: proxy.port)
        defer { close(fd) }
        #expect(head.status == 101)
        let size = 100 << 20
        // Header, then the masked payload streamed by a writer thread (mask of zeros: payload as is).
        var header: [UInt8] = [0x82]
        WebSocketEcho.appendLength(size, masked: true, to: &header)
        header += [0, 0, 0, 0]
        let sendFD = fd, frameHeader = header
        let writer = Thread {
            try? TestSocket.send(sendFD, frameHeader)
            let piece = [UInt8](repeating: 0x5A, count: 1 << 20)
            for _ in 0..<(size >> 20) { try? TestSocket.send(sendFD, piece) }
        }
        writer.start()
        guard let (first, length, _) = input.frameHead() else { throw TestError("no echo") }
        #expect(first & 0x0F == 2 && length == size)
        var got = 0, allSame = true
        while got < length {
            guard let piece = input.take(max: 1 << 20) else { break }
            if allSame && piece.contains(where: { $0 != 0x5A }) { allSame = false }
            got += piece.count
        }
        #expect(got == size && allSame)
        let peak = proxy.peakRSS
        print("100 MiB WebSocket message: proxy peak RSS \(peak >> 20) MiB")
        #expect(peak < 64 << 20, "peak RSS \(peak >> 20) MiB")
    }
}
