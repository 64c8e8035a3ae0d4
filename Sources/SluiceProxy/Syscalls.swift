@preconcurrency import Glibc
import SluiceCore
package import CSluiceSys

/// A failed system call: which call and its errno. Thrown only for real failures;
/// "would block", EOF and "connect in progress" are values, not errors.
public struct SyscallError: Error, CustomStringConvertible, Sendable {
    /// Name of the call, e.g. "bind".
    public let call: String
    /// errno right after the call.
    public let errno: Int32

    /// Creates an error for a call and its errno.
    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// "bind: Address already in use (errno 98)".
    public var description: String {
        "\(call): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Result of a read or write on a non-blocking socket.
package enum IOResult: Equatable {
    /// This many bytes were transferred (> 0).
    case done(Int)
    /// The kernel has nothing (read) or no room (write) now.
    case wouldBlock
    /// The peer closed its sending side (reads only).
    case eof
    /// The connection failed (reset, broken pipe, ...); errno given.
    case failed(Int32)
}

/// Every syscall the IO layer makes goes through here: EINTR retried (never for close),
/// EAGAIN returned as a value, EBADF/EFAULT treated as our bugs.
package enum Sys {
    @inline(__always)
    static func checkOurBug(_ call: StaticString, _ err: Int32) {
        precondition(err != EBADF && err != EFAULT, "\(call): \(err == EBADF ? "EBADF" : "EFAULT") is a Sluice bug")
    }

    /// Runs a read-like call (bytes > 0, 0 at EOF, -1 with errno) with EINTR retried.
    @inline(__always)
    private static func transfer(_ call: StaticString, _ op: () -> Int) -> IOResult {
        while true {
            let n = op()
            if n > 0 { return .done(n) }
            if n == 0 { return .eof }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            checkOurBug(call, e)
            return .failed(e)
        }
    }

    /// read(2) into a raw buffer.
    @inline(__always)
    package static func read(_ fd: Int32, _ ptr: UnsafeMutableRawPointer, _ count: Int) -> IOResult {
        transfer("read") { csluice_read(fd, ptr, count) }
    }

    /// send(2) with MSG_NOSIGNAL.
    @inline(__always)
    package static func write(_ fd: Int32, _ ptr: UnsafeRawPointer, _ count: Int) -> IOResult {
        while true {
            let n = csluice_send(fd, ptr, count, CSLUICE_MSG_NOSIGNAL)
            if n >= 0 { return n == 0 ? .wouldBlock : .done(n) }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            checkOurBug("send", e)
            return .failed(e)
        }
    }

    /// splice(2) from `from` to `to` (one of them a pipe), non-blocking. `.eof` when `from` is a
    /// socket whose peer closed; `.wouldBlock` when `from` has nothing or `to` has no room.
    @inline(__always)
    static func splice(from: Int32, to: Int32, _ count: Int) -> IOResult {
        transfer("splice") { csluice_splice(from, to, count) }
    }

    /// A non-blocking pipe of about `size` bytes, for splice(2): (read end, write end, capacity).
    static func pipe(size: Int) throws(SyscallError) -> (Int32, Int32, Int) {
        var fds: (Int32, Int32) = (-1, -1)
        var capacity: Int32 = 0
        let err = withUnsafeMutableBytes(of: &fds) { raw in
            csluice_pipe(raw.baseAddress!.assumingMemoryBound(to: Int32.self), Int32(size), &capacity)
        }
        if err != 0 { throw SyscallError("pipe2", errno: err) }
        return (fds.0, fds.1, Int(capacity))
    }

    /// True when a socket has bytes to read, or EOF/an error pending (recv MSG_PEEK | MSG_DONTWAIT).
    static func hasPendingInput(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        while true {
            let n = Glibc.recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
            if n >= 0 { return true }  // data, or 0 = EOF
            let e = Glibc.errno
            if e == EINTR { continue }
            return !(e == EAGAIN || e == EWOULDBLOCK)
        }
    }

    /// close(2); never retried on EINTR (Linux always releases the fd).
    package static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// A new non-blocking, close-on-exec TCP socket for the address family of `address`.
    package static func tcpSocket(for address: SocketAddress) throws(SyscallError) -> Int32 {
        let family: Int32
        switch address {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        }
        let fd = Glibc.socket(family, Int32(SOCK_STREAM.rawValue) | CSLUICE_SOCK_NONBLOCK | CSLUICE_SOCK_CLOEXEC, 0)
        if fd < 0 { throw SyscallError("socket", errno: Glibc.errno) }
        return fd
    }

    /// setsockopt with an Int32 value.
    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32, _ what: String) throws(SyscallError) {
        var v = value
        if Glibc.setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            throw SyscallError("setsockopt(\(what))", errno: Glibc.errno)
        }
    }

    /// Disables Nagle on a TCP socket (best effort: failure is harmless).
    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        _ = Glibc.setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// SO_RCVLOWAT: the socket reports readable only once this many bytes are queued (or at EOF).
    static func setReceiveLowWater(_ fd: Int32, _ bytes: Int) {
        var v = Int32(clamping: bytes)
        _ = Glibc.setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Calls `body` with a sockaddr for `address`.
    static func withSockaddr<R>(_ address: SocketAddress, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        switch address {
        case .v4(let a, let port):
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            sin.sin_addr.s_addr = a.bigEndian
            return withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(let hi, let lo, let port):
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { raw in
                raw.storeBytes(of: hi.bigEndian, toByteOffset: 0, as: UInt64.self)
                raw.storeBytes(of: lo.bigEndian, toByteOffset: 8, as: UInt64.self)
            }
            return withUnsafePointer(to: &sin6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }

    /// Converts a sockaddr_storage filled by the kernel into a SocketAddress.
    static func socketAddress(_ storage: UnsafeRawPointer) -> SocketAddress? {
        let family = storage.load(as: sa_family_t.self)
        if Int32(family) == AF_INET {
            let sin = storage.load(as: sockaddr_in.self)
            return .v4(UInt32(bigEndian: sin.sin_addr.s_addr), port: UInt16(bigEndian: sin.sin_port))
        }
        if Int32(family) == AF_INET6 {
            let sin6 = storage.load(as: sockaddr_in6.self)
            var hi: UInt64 = 0, lo: UInt64 = 0
            withUnsafeBytes(of: sin6.sin6_addr) { raw in
                hi = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
                lo = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            }
            return .v6(hi: hi, lo: lo, port: UInt16(bigEndian: sin6.sin6_port))
        }
        return nil
    }

    /// A listening socket bound to `address` with SO_REUSEADDR and SO_REUSEPORT (one per worker).
    /// TCP_NODELAY is set here because Linux copies it to every accepted socket (one setsockopt per
    /// listener, not per connection); `deferAccept` > 0 sets TCP_DEFER_ACCEPT to that many seconds.
    package static func listen(on address: SocketAddress, backlog: Int32 = 4096, deferAccept: Int32 = 0) throws(SyscallError) -> Int32 {
        let fd = try tcpSocket(for: address)
        do throws(SyscallError) {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR")
            try setOption(fd, SOL_SOCKET, CSLUICE_SO_REUSEPORT, 1, "SO_REUSEPORT")
            if case .v6 = address {
                try setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1, "IPV6_V6ONLY")
            }
            let rc = withSockaddr(address) { Glibc.bind(fd, $0, $1) }
            if rc != 0 { throw SyscallError("bind \(address)", errno: Glibc.errno) }
            try setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1, "TCP_NODELAY")
            if deferAccept > 0 { try setOption(fd, Int32(IPPROTO_TCP), CSLUICE_TCP_DEFER_ACCEPT, deferAccept, "TCP_DEFER_ACCEPT") }
            if Glibc.listen(fd, backlog) != 0 { throw SyscallError("listen \(address)", errno: Glibc.errno) }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// A free port for `address` (whose port is 0), held by a bound, non-listening probe socket
    /// with SO_REUSEADDR only. Binding port 0 with SO_REUSEPORT directly could hand out a port that
    /// another SO_REUSEPORT socket of this user already listens on (Linux lets them share), so the
    /// port is chosen without SO_REUSEPORT; the workers' sockets (SO_REUSEADDR + SO_REUSEPORT) may
    /// then bind it while the probe is not listening. Close the probe once they are bound.
    static func reserveEphemeralPort(like address: SocketAddress) throws(SyscallError) -> (probe: Int32, address: SocketAddress) {
        let fd = try tcpSocket(for: address)
        do throws(SyscallError) {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR")
            if case .v6 = address {
                try setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1, "IPV6_V6ONLY")
            }
            let rc = withSockaddr(address) { Glibc.bind(fd, $0, $1) }
            if rc != 0 { throw SyscallError("bind \(address)", errno: Glibc.errno) }
            return (fd, try localAddress(fd))
        } catch {
            close(fd)
            throw error
        }
    }

    /// The local address a socket is bound to.
    package static func localAddress(_ fd: Int32) throws(SyscallError) -> SocketAddress {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.getsockname(fd, $0, &len) }
        }
        if rc != 0 { throw SyscallError("getsockname", errno: Glibc.errno) }
        guard let a = withUnsafePointer(to: &storage, { socketAddress(UnsafeRawPointer($0)) }) else {
            throw SyscallError("getsockname", errno: EAFNOSUPPORT)
        }
        return a
    }

    /// Outcome of accept.
    package enum AcceptResult {
        case accepted(Int32, SocketAddress)
        case wouldBlock
        /// Out of descriptors (EMFILE/ENFILE) or memory: back off, keep the listener.
        case exhausted(Int32)
        /// The connection was aborted before accept (ECONNABORTED etc.): try the next one.
        case skipped
    }

    /// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC.
    package static func accept(_ listener: Int32) -> AcceptResult {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        while true {
            let fd = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { csluice_accept_nonblock(listener, $0, &len) }
            }
            if fd >= 0 {
                let peer = withUnsafePointer(to: &storage) { socketAddress(UnsafeRawPointer($0)) } ?? .v4(0, port: 0)
                return .accepted(fd, peer)
            }
            let e = Glibc.errno
            switch e {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case EMFILE, ENFILE, ENOBUFS, ENOMEM: return .exhausted(e)
            default:
                checkOurBug("accept4", e)
                return .skipped
            }
        }
    }

    /// Outcome of a non-blocking connect.
    package enum ConnectResult {
        case connected
        case inProgress
        case failed(Int32)
    }

    /// Starts a non-blocking connect.
    package static func connect(_ fd: Int32, to address: SocketAddress) -> ConnectResult {
        while true {
            let rc = withSockaddr(address) { Glibc.connect(fd, $0, $1) }
            if rc == 0 { return .connected }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EINPROGRESS { return .inProgress }
            checkOurBug("connect", e)
            return .failed(e)
        }
    }

    /// SO_ERROR of a socket (the result of a non-blocking connect).
    package static func pendingError(_ fd: Int32) -> Int32 {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        if Glibc.getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 { return Glibc.errno }
        return err
    }

    /// Monotonic time in nanoseconds.
    @inline(__always)
    package static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

/// An epoll instance with an eventfd for cross-thread wake-ups.
package struct Epoll {
    package let fd: Int32

    package init() throws(SyscallError) {
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        if fd < 0 { throw SyscallError("epoll_create1", errno: Glibc.errno) }
        self.fd = fd
    }

    /// Registers `target` for `events`, with `data` carried back in each event.
    package func add(_ target: Int32, events: UInt32, data: UInt64) throws(SyscallError) {
        var ev = epoll_event()
        ev.events = events
        ev.data.u64 = data
        if epoll_ctl(fd, EPOLL_CTL_ADD, target, &ev) != 0 { throw SyscallError("epoll_ctl(ADD)", errno: Glibc.errno) }
    }

    /// Removes `target` (closing an fd removes it as well).
    package func remove(_ target: Int32) {
        var ev = epoll_event()
        _ = epoll_ctl(fd, EPOLL_CTL_DEL, target, &ev)
    }

    /// Waits for events; returns how many were written to `events`. EINTR gives 0.
    package func wait(_ events: UnsafeMutablePointer<epoll_event>, max: Int32, timeoutMs: Int32) -> Int {
        let n = csluice_epoll_wait(fd, events, max, timeoutMs)
        if n < 0 {
            let e = Glibc.errno
            if e == EINTR { return 0 }
            checkEpollError(e)
            return 0
        }
        return Int(n)
    }

    private func checkEpollError(_ e: Int32) {
        preconditionFailure("epoll_wait failed: errno \(e)")
    }
}

/// Event masks as Swift values.
package enum EpollMask {
    package static let input = UInt32(CSLUICE_EPOLLIN)
    package static let output = UInt32(CSLUICE_EPOLLOUT)
    package static let error = UInt32(CSLUICE_EPOLLERR)
    package static let hangup = UInt32(CSLUICE_EPOLLHUP)
    package static let readHangup = UInt32(CSLUICE_EPOLLRDHUP)
    package static let edge = CSLUICE_EPOLLET
}

/// An eventfd used to wake a loop from another thread.
package struct WakeFD {
    package let fd: Int32

    package init() throws(SyscallError) {
        let fd = eventfd(0, CSLUICE_EFD_NONBLOCK | CSLUICE_EFD_CLOEXEC)
        if fd < 0 { throw SyscallError("eventfd", errno: Glibc.errno) }
        self.fd = fd
    }

    /// Adds one to the counter (wakes epoll_wait).
    package func signal() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(fd, $0.baseAddress, 8) }
    }

    /// Resets the counter.
    package func drain() {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { Glibc.read(fd, $0.baseAddress, 8) }
    }
}
