/// The sticky-key hash ("sluice-hash-v1"): fixed and seedless, so every replica and every
/// restart puts a key in the same bucket.
///
/// `hash(key) = fmix64(FNV-1a-64(key))`: FNV-1a 64 (offset basis `0xcbf29ce484222325`, prime
/// `0x100000001b3`) over the key's bytes, then MurmurHash3's 64-bit finalizer (`fmix64`) so that
/// keys differing only in their last characters spread over all buckets.
/// `bucket(key) = hash(key) % 10_000`. Changing any of this moves users between cohorts:
/// it is part of the on-the-wire contract.
public enum StickyHash {
    /// Number of buckets the split is laid over (one bucket = 0.01%).
    public static let buckets: UInt64 = 10_000

    /// FNV-1a 64 offset basis.
    @usableFromInline static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    /// FNV-1a 64 prime.
    @usableFromInline static let prime: UInt64 = 0x0000_0100_0000_01b3

    /// The 64-bit hash of `key`.
    @inlinable
    public static func hash(_ key: UnsafeRawBufferPointer) -> UInt64 {
        var h = offsetBasis
        for byte in key {
            h = (h ^ UInt64(byte)) &* prime
        }
        return fmix64(h)
    }

    /// The 64-bit hash of `key` (convenience).
    public static func hash(_ key: [UInt8]) -> UInt64 {
        key.withUnsafeBytes { hash($0) }
    }

    /// The bucket (0..<10000) of `key`.
    @inlinable
    public static func bucket(_ key: UnsafeRawBufferPointer) -> Int {
        Int(hash(key) % buckets)
    }

    /// The bucket (0..<10000) of `key` (convenience).
    public static func bucket(_ key: [UInt8]) -> Int {
        key.withUnsafeBytes { bucket($0) }
    }

    /// The bucket of a sluice-assigned key: the hash of its cookie value, the 16 lowercase
    /// hex digits of `key`, so a later request carrying the cookie lands in the same bucket.
    @inlinable
    public static func bucket(assignedKey key: UInt64) -> Int {
        var h = offsetBasis
        var shift: UInt64 = 60
        while true {
            h = (h ^ UInt64(hexDigit(UInt8(truncatingIfNeeded: key >> shift) & 0xf))) &* prime
            if shift == 0 { break }
            shift -= 4
        }
        return Int(fmix64(h) % buckets)
    }

    /// Appends `key` as 16 lowercase hex digits (the sluice cookie value).
    @inlinable
    public static func appendHex(_ key: UInt64, to out: inout [UInt8]) {
        // The 16 digits are made in two words on the stack and appended at once: one append
        // instead of sixteen (each pays the array's uniqueness and capacity checks; this runs
        // twice per request for the request id).
        var digits: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &digits) { b in
            var shift: UInt64 = 60
            for i in 0..<16 {
                b[i] = hexDigit(UInt8(truncatingIfNeeded: key >> shift) & 0xf)
                shift &-= 4
            }
        }
        withUnsafeBytes(of: &digits) { out.append(contentsOf: $0) }
    }

    /// Parses a sluice cookie value (exactly 16 lowercase hex digits); nil otherwise.
    @inlinable
    public static func parseAssignedKey(_ text: UnsafeRawBufferPointer) -> UInt64? {
        guard text.count == 16 else { return nil }
        var key: UInt64 = 0
        for byte in text {
            let nibble: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte &- UInt8(ascii: "a") &+ 10
            default: return nil
            }
            key = key << 4 | UInt64(nibble)
        }
        return key
    }

    /// MurmurHash3 `fmix64`.
    @inlinable
    static func fmix64(_ value: UInt64) -> UInt64 {
        var k = value
        k ^= k >> 33
        k = k &* 0xff51_afd7_ed55_8ccd
        k ^= k >> 33
        k = k &* 0xc4ce_b9fe_1a85_ec53
        k ^= k >> 33
        return k
    }

    /// The lowercase hex digit for a nibble (0...15).
    @inlinable
    static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") &+ nibble : UInt8(ascii: "a") &+ nibble &- 10
    }
}
