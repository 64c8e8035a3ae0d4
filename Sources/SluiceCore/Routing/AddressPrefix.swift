/// An IPv4 or IPv6 network in CIDR form (`10.0.0.0/8`, `::1/128`), matched against client addresses.
///
/// An IPv4-mapped IPv6 client (`::ffff:10.1.2.3`) is matched as the IPv4 address it carries.
/// IPv6 is kept as two 64-bit halves so matching is two masked compares.
public struct AddressPrefix: Sendable, Equatable {
    /// True for an IPv6 network.
    package var isV6: Bool
    /// Network bits (IPv4: in the low 32 bits of `lo`); host bits are cleared.
    package var hi: UInt64
    /// Low half of the network bits (IPv4: the address).
    package var lo: UInt64
    /// Prefix length (0...32 for IPv4, 0...128 for IPv6).
    package var length: Int

    /// Parses `addr/len`, or a bare address (a /32 or /128 network). Nil when malformed.
    /// Host bits set below the prefix (`10.0.0.1/8`) are rejected, since they usually hide a typo.
    public static func parse(_ text: String) -> AddressPrefix? {
        let s = Substring(text)
        let addressPart: Substring
        var length: Int?
        if let slash = s.firstIndex(of: "/") {
            addressPart = s[..<slash]
            let digits = s[s.index(after: slash)...]
            guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let value = Int(digits) else { return nil }
            length = value
        } else {
            addressPart = s
        }
        if let v4 = SocketAddress.parseIPv4(addressPart) {
            let len = length ?? 32
            guard len <= 32 else { return nil }
            let prefix = AddressPrefix(isV6: false, hi: 0, lo: UInt64(v4), length: len)
            guard prefix.masked() == prefix else { return nil }
            return prefix
        }
        if let (hi, lo) = SocketAddress.parseIPv6(addressPart) {
            let len = length ?? 128
            guard len <= 128 else { return nil }
            let prefix = AddressPrefix(isV6: true, hi: hi, lo: lo, length: len)
            guard prefix.masked() == prefix else { return nil }
            return prefix
        }
        return nil
    }

    /// The same network with host bits cleared.
    package func masked() -> AddressPrefix {
        var copy = self
        let (mhi, mlo) = Self.masks(isV6: isV6, length: length)
        copy.hi &= mhi
        copy.lo &= mlo
        return copy
    }

    /// True when `address` lies inside this network.
    @inline(__always)
    public func contains(_ address: SocketAddress) -> Bool {
        let (mhi, mlo) = Self.masks(isV6: isV6, length: length)
        switch address {
        case .v4(let a, _):
            guard !isV6 else { return false }
            return UInt64(a) & mlo == lo
        case .v6(let ahi, let alo, _):
            if ahi == 0 && alo >> 32 == 0xffff {
                // IPv4-mapped: match as IPv4.
                guard !isV6 else { return ahi & mhi == hi && alo & mlo == lo }
                return (alo & 0xffff_ffff) & mlo == lo
            }
            guard isV6 else { return false }
            return ahi & mhi == hi && alo & mlo == lo
        }
    }

    @inline(__always)
    private static func masks(isV6: Bool, length: Int) -> (UInt64, UInt64) {
        if !isV6 {
            let m: UInt64 = length == 0 ? 0 : (0xffff_ffff << UInt64(32 - length)) & 0xffff_ffff
            return (0, m)
        }
        if length <= 64 {
            let hi: UInt64 = length == 0 ? 0 : ~0 << UInt64(64 - length)
            return (hi, 0)
        }
        return (~0, ~0 << UInt64(128 - length))
    }
}

extension AddressPrefix: CustomStringConvertible {
    /// `10.0.0.0/8` or `fd00::/8`.
    public var description: String {
        if isV6 {
            return "\(SocketAddress.v6(hi: hi, lo: lo, port: 0).hostText)/\(length)"
        }
        return "\(SocketAddress.v4(UInt32(lo), port: 0).hostText)/\(length)"
    }
}
