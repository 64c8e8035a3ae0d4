@preconcurrency import Glibc

/// A fixed-capacity byte buffer with a read index and a write index, allocated once per
/// connection and reused for every request on it.
///
/// Bytes in `readIndex..<writeIndex` are pending (received but unconsumed, or queued but
/// unsent). Not thread-safe: owned by one worker loop.
struct IOBuffer {
    /// Start of the storage (nil until first use, so idle connections cost no buffer).
    private(set) var base: UnsafeMutableRawPointer?
    /// Storage size in bytes.
    let capacity: Int
    /// First pending byte.
    private(set) var readIndex = 0
    /// One past the last pending byte.
    private(set) var writeIndex = 0

    /// Creates an empty buffer that allocates `capacity` bytes on first use.
    init(capacity: Int) {
        self.capacity = capacity
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
        if base == nil { base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16) }
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

    /// Frees storage (the buffer can be used again; it reallocates on demand).
    mutating func release() {
        base?.deallocate()
        base = nil
        readIndex = 0
        writeIndex = 0
    }
}
