@preconcurrency import Glibc
internal import COpenSSL

/// Session-ticket keys shared by every worker of the process (a client resumes on whichever
/// worker the kernel hands its next connection to), rotated every `rotation`: new tickets are
/// sealed with the newest key; tickets sealed with either of the two previous keys are still
/// accepted (and renewed), so a ticket stays usable for at least `rotation` and at most three
/// times it. The keys live in memory only: a restart starts a fresh set (clients then do one
/// full handshake).
///
/// `@unchecked Sendable`: `keys` is read and rotated under `lock` only; the lock is taken once
/// per issued or presented ticket, never per request.
final class TLSTicketKeys: @unchecked Sendable {
    /// One key: 16-byte name, 32-byte AES key, 32-byte HMAC key.
    struct Key {
        var name: [UInt8]
        var aes: [UInt8]
        var hmac: [UInt8]
        var created: UInt64
    }

    /// The process's keys.
    static let shared = TLSTicketKeys()
    /// How often a new key takes over.
    static let rotation: UInt64 = 3600 * 1_000_000_000

    private var lock = pthread_mutex_t()
    private var keys: [Key] = []

    private init() {
        pthread_mutex_init(&lock, nil)
    }

    static func random(_ n: Int) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: n)
        if RAND_bytes(&b, Int32(n)) != 1 {
            // The CSPRNG cannot fail on Linux after start-up; if it ever does, no ticket is issued.
            ERR_clear_error()
            return []
        }
        return b
    }

    /// Rotates when due. Caller holds `lock`.
    private func rotateIfDue(now: UInt64) {
        if let newest = keys.first, now &- newest.created < Self.rotation { return }
        let name = Self.random(16), aes = Self.random(32), hmac = Self.random(32)
        guard name.count == 16, aes.count == 32, hmac.count == 32 else { return }
        keys.insert(Key(name: name, aes: aes, hmac: hmac, created: now), at: 0)
        if keys.count > 3 { keys.removeLast(keys.count - 3) }
    }

    /// The ticket key callback's work: `enc` 1 seals a new ticket (writes the key name, draws the
    /// IV); 0 opens one (finds the key by name). Returns what OpenSSL expects: 1 ok, 2 ok but
    /// renew the ticket, 0 unknown key (full handshake), -1 error.
    func callback(name: UnsafeMutablePointer<UInt8>, iv: UnsafeMutablePointer<UInt8>, cipher: OpaquePointer,
                  mac: OpaquePointer, encrypt: Bool) -> Int32 {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        rotateIfDue(now: Sys.monotonicNanos())
        if encrypt {
            guard let k = keys.first else { return -1 }
            for i in 0..<16 { name[i] = k.name[i] }
            return sluice_ticket_crypto_init(cipher, mac, k.aes, k.hmac, iv, 1)
        }
        for (i, k) in keys.enumerated() where (0..<16).allSatisfy({ name[$0] == k.name[$0] }) {
            guard sluice_ticket_crypto_init(cipher, mac, k.aes, k.hmac, iv, 0) == 1 else { return -1 }
            return i == 0 ? 1 : 2
        }
        return 0
    }
}
