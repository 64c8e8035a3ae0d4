#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// Turns host names from the config into addresses (control plane only: it blocks).
package struct HostResolver: Sendable {
    /// Resolves a host name to its addresses (port 0), or returns a reason it cannot.
    package let resolve: @Sendable (String) -> Result<[SocketAddress], ResolveFailure>

    /// Why a name did not resolve.
    package struct ResolveFailure: Error, Sendable, Equatable {
        /// The resolver's message (e.g. getaddrinfo's `Name or service not known`).
        package var message: String
        /// Creates a failure.
        package init(message: String) { self.message = message }
    }

    /// Creates a resolver from a function.
    package init(resolve: @escaping @Sendable (String) -> Result<[SocketAddress], ResolveFailure>) {
        self.resolve = resolve
    }

    /// The system resolver (`getaddrinfo`: /etc/hosts, then DNS).
    package static let system = HostResolver { name in
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(name, nil, &hints, &list)
        guard rc == 0 else {
            return .failure(ResolveFailure(message: String(cString: gai_strerror(rc))))
        }
        defer { freeaddrinfo(list) }
        var out: [SocketAddress] = []
        var cursor = list
        while let info = cursor {
            if let sa = info.pointee.ai_addr {
                if info.pointee.ai_family == AF_INET {
                    let v4 = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                    out.append(.v4(UInt32(bigEndian: v4), port: 0))
                } else if info.pointee.ai_family == AF_INET6 {
                    let bytes = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                        withUnsafeBytes(of: p.pointee.sin6_addr) { Array($0) }
                    }
                    var hi: UInt64 = 0, lo: UInt64 = 0
                    for i in 0..<8 { hi = hi << 8 | UInt64(bytes[i]) }
                    for i in 8..<16 { lo = lo << 8 | UInt64(bytes[i]) }
                    out.append(.v6(hi: hi, lo: lo, port: 0))
                }
            }
            cursor = info.pointee.ai_next
        }
        if out.isEmpty { return .failure(ResolveFailure(message: "no IPv4 or IPv6 address")) }
        return .success(out)
    }

    /// The address to use for `name`: the first IPv4 result when there is one (upstreams and
    /// listeners on `localhost` usually listen on 127.0.0.1), else the first IPv6 result.
    package func preferred(_ name: String) -> Result<SocketAddress, ResolveFailure> {
        switch resolve(name) {
        case .failure(let f): return .failure(f)
        case .success(let list):
            if let v4 = list.first(where: { if case .v4 = $0 { return true } else { return false } }) { return .success(v4) }
            guard let first = list.first else { return .failure(ResolveFailure(message: "no address")) }
            return .success(first)
        }
    }
}
