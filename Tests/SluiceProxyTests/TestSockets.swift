import Foundation
@preconcurrency import Glibc

/// Blocking loopback socket helpers for tests (real kernel sockets, no mocks).
enum TestSocket {
    /// Connects a blocking TCP socket to 127.0.0.1:`port`, from the IPv4 address `source` (host order, e.g. another
    /// loopback address) when given.
    static func connect(port: UInt16, from source: UInt32? = nil, timeoutSeconds: Int = 10) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestError("socket failed") }
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = source.bigEndian
            let rc = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard rc == 0 else {
                close(fd)
                throw TestError("bind failed: errno \(errno)")
            }
        }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw TestError("connect to \(port) failed: errno \(e)")
        }
        return fd
    }

    /// Listens on 127.0.0.1 (or another IPv4 `host`, host order) on an ephemeral port (or `port`); returns (fd, port).
    static func listen(host: UInt32 = 0x7f00_0001, port: UInt16 = 0) throws -> (Int32, UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestError("socket failed") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        sin.sin_addr.s_addr = host.bigEndian
        var rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw TestError("bind failed") }
        rc = Glibc.listen(fd, 1024)
        guard rc == 0 else { throw TestError("listen failed") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return (fd, UInt16(bigEndian: sin.sin_port))
    }

    /// A free port for a process to bind next (bound then closed; another bind could take it
    /// meanwhile, so use it right away).
    static func closedPort() throws -> UInt16 {
        let (fd, port) = try listen()
        close(fd)
        return port
    }

    /// A port that refuses connections for the rest of the test run: a socket is bound to it but
    /// never listens, so no other test (tests run in parallel) can take the port and answer.
    static func refusedPort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestError("socket failed") }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = 0
        sin.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
                guard bind(fd, p, len) == 0 else { return -1 }
                return getsockname(fd, p, &len)
            }
        }
        guard rc == 0 else { throw TestError("bind failed") }
        reservedPorts.update { $0.append(fd) }  // kept open (never listening) until the process exits
        return UInt16(bigEndian: sin.sin_port)
    }

    private static let reservedPorts = LockedBox<[Int32]>([])

    /// Sends all bytes.
    static func send(_ fd: Int32, _ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 {
                if n < 0 && errno == EINTR { continue }
                throw TestError("send failed: errno \(errno)")
            }
            off += n
        }
    }

    static func send(_ fd: Int32, _ text: String) throws { try send(fd, Array(text.utf8)) }

    /// Reads up to `max` bytes; returns [] on EOF; throws on timeout/error.
    static func recv(_ fd: Int32, max: Int = 65536) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: max)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress!, max, 0) }
            if n > 0 { return Array(buf[0..<n]) }
            if n == 0 { return [] }
            if errno == EINTR { continue }
            throw TestError("recv failed: errno \(errno)")
        }
    }

    /// Reads until EOF (or error, returning what was read).
    static func readAll(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        while let chunk = try? recv(fd), !chunk.isEmpty { out += chunk }
        return out
    }
}

/// A test failure with a message.
struct TestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A parsed HTTP/1.1 message as seen by a test (client side or upstream side).
struct TestMessage {
    var startLine: String
    var headers: [(String, String)]
    var body: [UInt8]
    /// Raw bytes of the head and body exactly as received.
    var raw: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
    func headers(_ name: String) -> [String] {
        headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
    }
    var status: Int { Int(startLine.split(separator: " ")[1]) ?? 0 }
    var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// Incremental reader of HTTP/1.1 messages from a blocking socket, for tests.
final class TestReader {
    let fd: Int32
    var buffer: [UInt8] = []
    var eof = false
    /// Called with every chunk of bytes as it is received (before parsing), to record raw input.
    var onReceive: (([UInt8]) -> Void)?

    init(fd: Int32) { self.fd = fd }

    private func fill() throws -> Bool {
        if eof { return false }
        let chunk = try TestSocket.recv(fd)
        if chunk.isEmpty { eof = true; return false }
        onReceive?(chunk)
        buffer += chunk
        return true
    }

    private func findHeadEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i + 4
        }
        return nil
    }

    /// Reads one message. `isResponse` + `requestMethod` decide bodiless responses.
    func readMessage(isResponse: Bool, requestMethod: String = "GET") throws -> TestMessage? {
        var headEnd = findHeadEnd()
        while headEnd == nil {
            if try !fill() {
                if buffer.isEmpty { return nil }
                throw TestError("EOF inside head: \(String(decoding: buffer, as: UTF8.self))")
            }
            headEnd = findHeadEnd()
        }
        let headText = String(decoding: buffer[0..<(headEnd! - 4)], as: UTF8.self)
        var lines = headText.components(separatedBy: "\r\n")
        let start = lines.removeFirst()
        var headers: [(String, String)] = []
        for l in lines {
            guard let colon = l.firstIndex(of: ":") else { continue }
            headers.append((String(l[..<colon]), l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var msg = TestMessage(startLine: start, headers: headers, body: [], raw: Array(buffer[0..<headEnd!]))
        var pos = headEnd!
        let te = msg.header("Transfer-Encoding")?.lowercased()
        let cl = msg.header("Content-Length").flatMap { Int($0) }
        var status = 0
        if isResponse { status = msg.status }
        let bodiless = isResponse && (requestMethod == "HEAD" || status < 200 || status == 204 || status == 304)
        if bodiless {
        } else if te == "chunked" {
            while true {
                // size line
                var lineEnd: Int?
                while lineEnd == nil {
                    if let i = indexOfCRLF(from: pos) { lineEnd = i } else if try !fill() { throw TestError("EOF in chunk size") }
                }
                let sizeText = String(decoding: buffer[pos..<lineEnd!], as: UTF8.self).split(separator: ";")[0]
                guard let size = Int(sizeText, radix: 16) else { throw TestError("bad chunk size \(sizeText)") }
                pos = lineEnd! + 2
                if size == 0 {
                    // trailers until empty line
                    while true {
                        var e: Int?
                        while e == nil {
                            if let i = indexOfCRLF(from: pos) { e = i } else if try !fill() { throw TestError("EOF in trailers") }
                        }
                        let empty = e! == pos
                        pos = e! + 2
                        if empty { break }
                    }
                    break
                }
                while buffer.count < pos + size + 2 { if try !fill() { throw TestError("EOF in chunk") } }
                msg.body += buffer[pos..<(pos + size)]
                pos += size + 2
            }
        } else if let cl {
            while buffer.count < pos + cl { if try !fill() { throw TestError("EOF in body (\(buffer.count - pos)/\(cl))") } }
            msg.body = Array(buffer[pos..<(pos + cl)])
            pos += cl
        } else if isResponse {
            while try fill() {}
            msg.body = Array(buffer[pos...])
            pos = buffer.count
        }
        msg.raw = Array(buffer[0..<pos])
        buffer.removeFirst(pos)
        return msg
    }

    private func indexOfCRLF(from: Int) -> Int? {
        var i = from
        while i + 1 < buffer.count {
            if buffer[i] == 13 && buffer[i + 1] == 10 { return i }
            i += 1
        }
        return nil
    }
}
