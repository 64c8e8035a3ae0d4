/// What one epoll registration refers to.
///
/// 8 bytes: a 32-bit listener index leaves the tag room in the spare bits of the payloads (an
/// `Int` would make it 9, a 16-byte stride), which halves the fd-indexed registration array.
enum Registration {
    case none
    case wake
    case listener(Int32)
    case client(ClientConnection)
    case upstream(UpstreamConnection)
    case mirror(MirrorExchange)
    /// An HTTP/2 connection to an upstream endpoint (`protocol: h2c` or `h2`).
    case h2upstream(H2UpstreamSession)
}

/// The worker's registrations, indexed by fd, with a generation per fd.
///
/// epoll user data is `generation << 32 | fd`: an event queued for a socket that was closed
/// and whose fd number was reused meanwhile carries an old generation and is dropped. Arrays,
/// not dictionaries: an fd-indexed lookup is 5-15 ns cheaper per event.
///
/// Owned by one worker loop.
struct RegistrationTable {
    private var entries: [Registration] = []
    private var generations: [UInt32] = []

    /// The registration an event's user data refers to (`.none` when stale).
    @inline(__always)
    func lookup(fd: Int32, generation: UInt32) -> Registration {
        let i = Int(fd)
        guard i >= 0, i < entries.count, generations[i] == generation else { return .none }
        return entries[i]
    }

    /// The registration of `fd` now.
    @inline(__always)
    subscript(fd: Int32) -> Registration {
        let i = Int(fd)
        return i >= 0 && i < entries.count ? entries[i] : .none
    }

    /// The current generation of `fd`.
    @inline(__always)
    func generation(_ fd: Int32) -> UInt32 {
        let i = Int(fd)
        return i < generations.count ? generations[i] : 0
    }

    /// The epoll user data for `fd` at its current generation.
    @inline(__always)
    func userData(_ fd: Int32) -> UInt64 {
        UInt64(generation(fd)) << 32 | UInt64(UInt32(bitPattern: fd))
    }

    /// Records what `fd` is for (at its current generation).
    mutating func set(_ fd: Int32, _ reg: Registration) {
        grow(to: Int(fd))
        entries[Int(fd)] = reg
    }

    /// Reserves the next generation for `fd` (call before creating its connection object).
    mutating func nextGeneration(_ fd: Int32) -> UInt32 {
        let i = Int(fd)
        grow(to: i)
        generations[i] &+= 1
        return generations[i]
    }

    /// Forgets `fd`; events still queued for it are dropped.
    mutating func remove(_ fd: Int32) {
        let i = Int(fd)
        guard i < entries.count else { return }
        entries[i] = .none
        generations[i] &+= 1
    }

    /// Every registration (for drain and shutdown).
    var all: [Registration] { entries }

    private mutating func grow(to i: Int) {
        guard i >= entries.count else { return }
        let newCount = max(i + 1, entries.count * 2, 64)
        entries.append(contentsOf: repeatElement(.none, count: newCount - entries.count))
        generations.append(contentsOf: repeatElement(0, count: newCount - generations.count))
    }
}

extension Worker {
    /// Registers `fd` with epoll for `events`, recording what it is for.
    func register(_ fd: Int32, _ reg: Registration, events: UInt32) throws(SyscallError) {
        registrations.set(fd, reg)
        try epoll.add(fd, events: events, data: registrations.userData(fd))
    }

    /// Forgets `fd` (the caller closes it).
    func unregister(_ fd: Int32) {
        registrations.remove(fd)
    }
}
