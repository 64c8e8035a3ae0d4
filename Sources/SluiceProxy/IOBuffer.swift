@preconcurrency import Glibc

/// A worker's free list of equally sized buffer blocks, so a connection can give its buffers
/// back while idle and take them again on its next request without a malloc.
///
/// Blocks that stay unused for a whole trim interval have their pages given back to the kernel
/// (`trim`, madvise MADV_DONTNEED) while staying in the list: after a burst of large transfers the
/// worker's resident memory falls back, and a block taken again later only costs page faults.
/// The list is a stack, so the blocks at its bottom are the ones unused the longest.
///
/// Owned by one worker loop; it must outlive every `IOBuffer` that uses it.
final class BufferPool {
    /// Size of each block (a multiple of the page size, so whole blocks can be given back).
    let blockSize: Int
    /// Blocks kept for reuse at most (beyond that, returned blocks are freed).
    let maxFree: Int
    private var free: [UnsafeMutableRawPointer] = []
    /// The bottom `coldCount` entries of `free` have had their pages given back.
    private(set) var coldCount = 0
    /// The smallest `free.count` since the last trim: the bottom this many entries were not
    /// taken during the interval.
    private var lowestFree = 0

    init(blockSize: Int, maxFree: Int) {
        self.blockSize = blockSize
        self.maxFree = maxFree
        free.reserveCapacity(min(maxFree, 4096))
    }

    deinit {
        for p in free { p.deallocate() }
    }

    /// A block of `blockSize` bytes (recycled when one is free).
    @inline(__always)
    func take() -> UnsafeMutableRawPointer {
        guard let p = free.popLast() else {
            return UnsafeMutableRawPointer.allocate(byteCount: blockSize, alignment: BufferPool.pageSize)
        }
        if free.count < lowestFree {
            lowestFree = free.count
            if free.count < coldCount { coldCount = free.count }
        }
        return p
    }

    /// Returns a block taken from this pool.
    @inline(__always)
    func give(_ block: UnsafeMutableRawPointer) {
        if free.count < maxFree { free.append(block) } else { block.deallocate() }
    }

    /// Gives back the pages of the blocks no one took since the last call; returns how many
    /// blocks that was. Called by the worker every `trimInterval` or so.
    @discardableResult
    func trim() -> Int {
        let unused = min(lowestFree, free.count)
        var n = 0
        if unused > coldCount {
            for i in coldCount..<unused {
                _ = madvise(free[i], blockSize, MADV_DONTNEED)
                n += 1
            }
            coldCount = unused
        }
        lowestFree = free.count
        return n
    }

    /// Free blocks whose pages are still resident (what a trim could give back).
    var warmFreeCount: Int { free.count - coldCount }

    /// Blocks waiting for reuse.
    var freeCount: Int { free.count }

    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// A fixed-capacity byte buffer with a read index and a write index. Its storage is taken on
/// first use and given back (`release`) while the connection is idle, so an idle keep-alive
/// connection holds no buffer.
///
/// Bytes in `readIndex..<writeIndex` are pending (received but unconsumed, or queued but
/// unsent). Not thread-safe: owned by one worker loop.
struct IOBuffer {
    /// Start of the storage (nil while the buffer holds no storage).
    private(set) var base: UnsafeMutableRawPointer?
    /// Storage size in bytes.
    let capacity: Int
    /// Where storage comes from and goes back to when `capacity` equals its block size.
    /// Unmanaged: the worker's pool outlives its connections, so taking and giving blocks need no
    /// reference counting (an `unowned(unsafe)` reference is still retained around each call).
    private let pool: Unmanaged<BufferPool>?
    /// First pending byte.
    private(set) var readIndex = 0
    /// One past the last pending byte.
    private(set) var writeIndex = 0

    /// Creates an empty buffer that takes `capacity` bytes on first use (from `pool` when its
    /// block size matches).
    init(capacity: Int, pool: BufferPool? = nil) {
        self.capacity = capacity
        self.pool = pool.flatMap { $0.blockSize == capacity ? Unmanaged.passUnretained($0) : nil }
    }

    /// Number of pending bytes.
    @inline(__always) var count: Int { writeIndex - readIndex }
    /// True when nothing is pending.
    @inline(__always) var isEmpty: Bool { writeIndex == readIndex }
    /// Bytes that can still be appended (after compaction).
    @inline(__always) var freeSpace: Int { capacity - count }

    /// Pending bytes as a read-only buffer (valid until the next mutation).
    @inline(__always)
    var readable: UnsafeRawBufferPointer {
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + readIndex, count: writeIndex - readIndex)
    }

    /// Makes sure storage exists and the free space is contiguous at the end; returns it.
    @inline(__always)
    mutating func writableSpace() -> UnsafeMutableRawBufferPointer {
        if base == nil {
            base = pool?._withUnsafeGuaranteedRef { $0.take() }
                ?? UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        }
        if writeIndex == capacity && readIndex > 0 { compact() }
        return UnsafeMutableRawBufferPointer(start: base! + writeIndex, count: capacity - writeIndex)
    }

    /// Moves pending bytes to the start of storage.
    mutating func compact() {
        guard let base, readIndex > 0 else { return }
        let n = writeIndex - readIndex
        if n > 0 { memmove(base, base + readIndex, n) }
        readIndex = 0
        writeIndex = n
    }

    /// Marks `n` bytes written into `writableSpace()` as pending.
    @inline(__always)
    mutating func didWrite(_ n: Int) {
        writeIndex += n
    }

    /// Drops `n` pending bytes from the front.
    @inline(__always)
    mutating func consume(_ n: Int) {
        readIndex += n
        if readIndex == writeIndex {
            readIndex = 0
            writeIndex = 0
        }
    }

    /// Appends bytes if they fit entirely; returns false (appending nothing) otherwise.
    @discardableResult
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count <= freeSpace else { return false }
        if bytes.count == 0 { return true }
        var space = writableSpace()
        if space.count < bytes.count {
            compact()
            space = writableSpace()
        }
        space.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        writeIndex += bytes.count
        return true
    }

    /// Appends an array of bytes if it fits entirely.
    @discardableResult
    mutating func append(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { append($0) }
    }

    /// Ensures the pending bytes plus `extra` fit contiguously from the read index (compacting if needed).
    mutating func reserveContiguous(_ extra: Int) -> Bool {
        guard count + extra <= capacity else { return false }
        _ = writableSpace()
        if capacity - writeIndex < extra { compact() }
        return true
    }

    /// Forgets all pending bytes.
    mutating func clear() {
        readIndex = 0
        writeIndex = 0
    }

    /// Gives the storage back if nothing is pending (it is taken again when bytes come).
    @inline(__always)
    mutating func releaseIfEmpty() {
        if isEmpty { release() }
    }

    /// Gives the storage back (the buffer can be used again; it takes storage on demand).
    mutating func release() {
        if let b = base {
            if let pool { pool._withUnsafeGuaranteedRef { $0.give(b) } } else { b.deallocate() }
        }
        base = nil
        readIndex = 0
        writeIndex = 0
    }
}
