/// A pipe that carries response body bytes from an upstream socket to a client socket with
/// splice(2): the bytes move between kernel buffers and never enter Sluice's memory.
struct SplicePipe {
    let readFD: Int32
    let writeFD: Int32
    /// Bytes the pipe holds when full (its pages; fewer when the pages are partly filled).
    let capacity: Int
    /// Bytes in the pipe not yet passed on to the client.
    var count = 0
}

/// A worker's empty pipes, reused across exchanges. An empty pipe holds two descriptors and no
/// pages, so keeping a few costs little memory; a pipe with bytes left in it is closed, never
/// reused. The kernel charges a pipe's capacity to its user's pipe-user-pages limit even while it
/// is empty (16384 pages by default for unprivileged users), so few are kept: past that limit the
/// kernel hands out small pipes and splicing still works, in smaller steps.
struct PipePool {
    /// Requested pipe size (F_SETPIPE_SZ); the kernel rounds it up to a power-of-two page count.
    static let pipeSize = 256 * 1024
    /// Empty pipes kept for reuse.
    static let maxFree = 16

    private var free: [SplicePipe] = []
    /// After a pipe could not be made (descriptor limit, pipe-user-pages limit), none is tried
    /// until this time and bodies are copied instead.
    private var retryAfter: UInt64 = 0

    init() {
        free.reserveCapacity(PipePool.maxFree)
    }

    /// An empty pipe, or nil if none can be made now.
    mutating func take(now: UInt64) -> SplicePipe? {
        if let p = free.popLast() { return p }
        if now < retryAfter { return nil }
        do {
            let (r, w, capacity) = try Sys.pipe(size: PipePool.pipeSize)
            return SplicePipe(readFD: r, writeFD: w, capacity: capacity)
        } catch {
            retryAfter = now &+ 1_000_000_000
            return nil
        }
    }

    /// Takes a pipe back: kept if empty and there is room, closed otherwise.
    mutating func give(_ p: SplicePipe) {
        if p.count == 0 && free.count < PipePool.maxFree {
            free.append(p)
        } else {
            Sys.close(p.readFD)
            Sys.close(p.writeFD)
        }
    }

    /// Closes every kept pipe (worker shutdown).
    mutating func closeAll() {
        for p in free {
            Sys.close(p.readFD)
            Sys.close(p.writeFD)
        }
        free.removeAll()
    }
}
