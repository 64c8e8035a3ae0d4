@preconcurrency import Glibc

/// TLS for the health monitor's checks of an upstream group with `tls:`: a client context of
/// the monitor's own (a worker's contexts belong to its thread), built from the group's settings,
/// so a check verifies the chain and name exactly as requests do.
///
/// Used by the health monitor's thread only.
package final class HealthCheckTLSContext {
    private let context: ClientTLSContext
    /// The settings this context was built from (a reload with new settings builds a new one).
    package let config: UpstreamTLS

    /// A context for `config`; nil when OpenSSL cannot make one.
    package init?(config: UpstreamTLS) {
        guard let c = ClientTLSContext(config: config) else { return nil }
        context = c
        self.config = config
    }

    /// A client session on the connected (or connecting) socket `fd` to an endpoint written as
    /// `label` (its host is the SNI and verified name unless `server_name` is set), offering
    /// `slot`'s session (resumption from one check to the next).
    package func session(fd: Int32, label: String, slot: HealthCheckTLSSlot) -> HealthCheckTLSSession? {
        guard let conn = context.connection(fd: fd, host: PoolKey.host(of: label), slot: slot.slot) else { return nil }
        return HealthCheckTLSSession(conn)
    }
}

/// The latest TLS session an endpoint gave the health monitor.
package final class HealthCheckTLSSlot {
    let slot = TLSSessionSlot()
    package init() {}
}

/// One check's TLS session: `read` and `write` give the same results as the syscalls.
package final class HealthCheckTLSSession {
    private let conn: TLSConnection

    init(_ conn: TLSConnection) { self.conn = conn }

    /// Reads decrypted bytes (the handshake runs first).
    package func read(_ ptr: UnsafeMutableRawPointer, _ count: Int) -> IOResult { conn.read(ptr, count) }
    /// Writes bytes (the handshake runs first).
    package func write(_ ptr: UnsafeRawPointer, _ count: Int) -> IOResult { conn.write(ptr, count) }
    /// The last `write` would block until the socket is readable (handshake messages to read).
    package var writeWantsRead: Bool { conn.writeWantsRead }
    /// The last `read` would block until the socket is writable.
    package var readWantsWrite: Bool { conn.readWantsWrite }
    /// Why the session failed (verification or protocol), or "".
    package var failure: String { conn.failure }
    /// Sends close_notify without waiting (the socket closes right after).
    package func close() { conn.shutdownQuietly() }
}
