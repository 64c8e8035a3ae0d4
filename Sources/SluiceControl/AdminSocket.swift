#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// Blocking socket calls for the admin API's client, and binding the admin listeners (control
/// plane only; the admin server's event loop uses the proxy's non-blocking wrappers, `Sys`).
enum AdminSocket {
    #if canImport(Glibc)
    static let streamType = Int32(SOCK_STREAM.rawValue)
    static let noSignal = Int32(MSG_NOSIGNAL)
    #else
    static let streamType = SOCK_STREAM
    static let noSignal: Int32 = 0
    #endif

    /// The current errno as text.
    static func errnoText(_ e: Int32 = errno) -> String {
        String(cString: strerror(e))
    }

    /// Calls `body` with a sockaddr for `address`.
    static func withSockaddr<R>(_ address: SocketAddress, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        switch address {
        case .v4(let a, let port):
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            sa.sin_addr.s_addr = a.bigEndian
            return withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(let hi, let lo, let port):
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { raw in
                for i in 0..<8 {
                    raw[i] = UInt8(truncatingIfNeeded: hi >> (56 - 8 * UInt64(i)))
                    raw[8 + i] = UInt8(truncatingIfNeeded: lo >> (56 - 8 * UInt64(i)))
                }
            }
            return withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }

    /// The address bound to `fd`.
    static func localAddress(_ fd: Int32) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { return nil }
        return withUnsafeBytes(of: &storage) { raw -> SocketAddress? in
            let family = raw.load(as: sa_family_t.self)
            if family == sa_family_t(AF_INET) {
                let sa = raw.load(as: sockaddr_in.self)
                return .v4(UInt32(bigEndian: sa.sin_addr.s_addr), port: UInt16(bigEndian: sa.sin_port))
            }
            if family == sa_family_t(AF_INET6) {
                let sa = raw.load(as: sockaddr_in6.self)
                var hi: UInt64 = 0, lo: UInt64 = 0
                withUnsafeBytes(of: sa.sin6_addr) { b in
                    for i in 0..<8 { hi = hi << 8 | UInt64(b[i]) }
                    for i in 8..<16 { lo = lo << 8 | UInt64(b[i]) }
                }
                return .v6(hi: hi, lo: lo, port: UInt16(bigEndian: sa.sin6_port))
            }
            return nil
        }
    }

    /// A new TCP socket for `address`'s family, close-on-exec.
    static func socket(for address: SocketAddress) throws(AdminError) -> Int32 {
        let family: Int32
        switch address {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        }
        let fd = Glibc.socket(family, streamType, 0)
        guard fd >= 0 else { throw AdminError("socket: \(errnoText())") }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return fd
    }

    /// A listening socket bound to `address` (SO_REUSEADDR, not SO_REUSEPORT: a second sluice
    /// on the same admin port must fail to start, not share it), non-blocking when asked.
    static func listen(on address: SocketAddress, nonBlocking: Bool = false, what: String = "the admin API") throws(AdminError) -> Int32 {
        let fd = try socket(for: address)
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if case .v6 = address {
            _ = setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        let rc = withSockaddr(address) { bind(fd, $0, $1) }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw AdminError("cannot bind \(what) to \(address): \(errnoText(e))")
        }
        if nonBlocking { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        guard Glibc.listen(fd, 1024) == 0 else {
            let e = errno
            close(fd)
            throw AdminError("cannot listen on \(address): \(errnoText(e))")
        }
        return fd
    }

    /// Sets receive and send timeouts on a blocking socket.
    static func setTimeouts(_ fd: Int32, millis: Int) {
        var tv = timeval(tv_sec: millis / 1000, tv_usec: (millis % 1000) * 1000)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Waits up to `millis` for `fd` to become readable (true) or not (false).
    static func waitReadable(_ fd: Int32, millis: Int32) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, millis) > 0
    }

    /// Connects to `address` within `millis`, then makes the socket blocking with timeouts.
    static func connect(to address: SocketAddress, millis: Int32) throws(AdminError) -> Int32 {
        let fd = try socket(for: address)
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        var rc = withSockaddr(address) { Glibc.connect(fd, $0, $1) }
        if rc != 0 && errno == EINPROGRESS {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&p, 1, millis)
            if ready <= 0 {
                close(fd)
                throw AdminError("timed out after \(millis) ms")
            }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 {
                close(fd)
                throw AdminError(errnoText(err))
            }
            rc = 0
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw AdminError(errnoText(e))
        }
        _ = fcntl(fd, F_SETFL, flags)
        setTimeouts(fd, millis: Int(millis))
        return fd
    }

    /// Writes all of `bytes` (false on error or timeout).
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = send(fd, raw.baseAddress! + offset, raw.count - offset, noSignal)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }
    }

    /// Reads once into `buffer` (appending); returns the byte count, 0 at EOF, -1 on error or timeout.
    static func readSome(_ fd: Int32, into buffer: inout [UInt8], max: Int = 16 * 1024) -> Int {
        var chunk = [UInt8](repeating: 0, count: max)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, max, 0) }
            if n < 0 && errno == EINTR { continue }
            if n > 0 { buffer += chunk[0..<n] }
            return n
        }
    }
}
