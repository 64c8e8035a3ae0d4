@preconcurrency import Glibc
private import CZlib

/// A gzip deflate stream for one response, with its output buffer (zlib through the CZlib
/// system-library target). About 330 KiB while in use, whatever the response's size; a worker
/// keeps a few in `CompressorPool` so a compressed response does not allocate them anew.
///
/// Owned by one worker loop thread.
final class Compressor {
    private let stream: UnsafeMutablePointer<z_stream>
    /// Where deflate writes; `outputCapacity` bytes.
    let output: UnsafeMutableRawPointer
    static let outputCapacity = 64 * 1024
    private(set) var level: Int32
    private var ready: Bool

    /// A stream at `level`, or nil when zlib cannot allocate one.
    init?(level: Int) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        output = .allocate(byteCount: Compressor.outputCapacity, alignment: 16)
        self.level = Int32(level)
        ready = czlib_deflate_init_gzip(stream, Int32(level)) == Z_OK
        if !ready {
            stream.deinitialize(count: 1)
            stream.deallocate()
            output.deallocate()
            return nil
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        output.deallocate()
    }

    /// Starts a new gzip member at `level` (the pool's streams are reused).
    func reset(level: Int) {
        deflateReset(stream)
        if Int32(level) != self.level {
            deflateParams(stream, Int32(level), Z_DEFAULT_STRATEGY)
            self.level = Int32(level)
        }
    }

    /// The most input bytes whose compressed form (with what deflate still holds) is sure to fit
    /// in `room` output bytes.
    func inputFitting(room: Int) -> Int {
        var pending: UInt32 = 0
        var bits: Int32 = 0
        deflatePending(stream, &pending, &bits)
        var n = room - Int(pending) - 64 - (room >> 10)
        while n > 0 && Int(deflateBound(stream, UInt(n))) + Int(pending) + 32 > room { n -= max(64, n >> 4) }
        return max(0, min(n, Compressor.outputCapacity - Int(pending) - 1024))
    }

    /// Compresses `input` (all of it, when `inputFitting` allowed its size); returns the number of
    /// output bytes at `output`.
    func compress(_ input: UnsafeRawBufferPointer) -> Int {
        guard !input.isEmpty else { return 0 }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = UInt32(input.count)
        stream.pointee.next_out = output.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = UInt32(Compressor.outputCapacity)
        deflate(stream, Z_NO_FLUSH)
        return Compressor.outputCapacity - Int(stream.pointee.avail_out)
    }

    /// Ends the stream into at most `room` bytes; returns the bytes written at `output` and
    /// whether the stream is complete (else call again when there is room).
    func finish(room: Int) -> (count: Int, done: Bool) {
        stream.pointee.next_in = nil
        stream.pointee.avail_in = 0
        stream.pointee.next_out = output.assumingMemoryBound(to: Bytef.self)
        let space = min(room, Compressor.outputCapacity)
        stream.pointee.avail_out = UInt32(max(space, 0))
        let r = deflate(stream, Z_FINISH)
        return (space - Int(stream.pointee.avail_out), r == Z_STREAM_END)
    }
}

/// A worker's idle compressors.
final class CompressorPool {
    private var free: [Compressor] = []
    private let maxFree = 32

    /// A compressor at `level` (nil only when zlib cannot allocate one).
    func take(level: Int) -> Compressor? {
        if let c = free.popLast() {
            c.reset(level: level)
            return c
        }
        return Compressor(level: level)
    }

    /// Returns a compressor (its stream is reset when taken again).
    func give(_ c: Compressor) {
        if free.count < maxFree { free.append(c) }
    }
}
