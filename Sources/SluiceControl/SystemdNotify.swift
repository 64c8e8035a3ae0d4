#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The systemd notification protocol (`sd_notify(3)`), without libsystemd: one datagram of
/// `KEY=VALUE` lines to the AF_UNIX socket named by `$NOTIFY_SOCKET` (a path, or `@name` for
/// the abstract namespace). With `Type=notify`, systemd counts the service as started only
/// once it receives `READY=1`.
public enum SystemdNotify {
    /// `$NOTIFY_SOCKET`, when set and not empty.
    public static var socketFromEnvironment: String? {
        guard let raw = getenv("NOTIFY_SOCKET") else { return nil }
        let s = String(cString: raw)
        return s.isEmpty ? nil : s
    }

    /// Sends `state` (e.g. `READY=1\nSTATUS=serving`) to `socket` (default `$NOTIFY_SOCKET`).
    /// Returns false when there is no socket or the datagram could not be sent; never throws
    /// (a service must run the same without systemd).
    @discardableResult
    public static func send(_ state: String, socket: String? = SystemdNotify.socketFromEnvironment) -> Bool {
        guard let socket, !socket.isEmpty else { return false }
        var path = Array(socket.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }  // abstract namespace
        var addr = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard path.count < capacity, path.first == 0 || path.first == UInt8(ascii: "/") else { return false }
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.enumerated() { raw[i] = b }
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path) ?? 2
        // A path name is NUL-terminated; an abstract name is exactly its bytes.
        let length = socklen_t(pathOffset + path.count + (path.first == 0 ? 0 : 1))
        #if canImport(Glibc)
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = Darwin.socket(AF_UNIX, SOCK_DGRAM, 0)
        #endif
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(state.utf8)
        let sent = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, length) }
            }
        }
        return sent == bytes.count
    }
}
