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
        pendingStart = 0
        pendingEnd = 0
        if Int32(level) != self.level {
            deflateParams(stream, Int32(level), Z_DEFAULT_STRATEGY)
            self.level = Int32(level)
        }
    }

    /// Output produced but not yet taken (`output[pendingStart..<pendingEnd]`).
    private var pendingStart = 0
    private var pendingEnd = 0

    /// Most input given to one `compress` call. With the output buffer empty, deflate's output for
    /// this much input plus what it still holds (its symbol buffer, at most about 16 KiB of earlier
    /// input at memLevel 8) always fits in `outputCapacity`, so every call consumes all its input.
    static let maxInput = 16 * 1024

    /// True when produced output waits to be taken.
    var hasPendingOutput: Bool { pendingStart < pendingEnd }

    /// The produced output not yet taken, at most `max` bytes (valid until the next call).
    func pendingOutput(max: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: output + pendingStart, count: min(max, pendingEnd - pendingStart))
    }

    /// Marks `n` bytes of the pending output as taken.
    func took(_ n: Int) {
        pendingStart += n
        if pendingStart >= pendingEnd { pendingStart = 0; pendingEnd = 0 }
    }

    /// Compresses up to `maxInput` bytes of `input` once the pending output was taken; returns how
    /// many input bytes deflate consumed (0 while output is pending).
    func compress(_ input: UnsafeRawBufferPointer) -> Int {
        guard !input.isEmpty, !hasPendingOutput else { return 0 }
        let n = min(input.count, Compressor.maxInput)
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = UInt32(n)
        stream.pointee.next_out = output.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = UInt32(Compressor.outputCapacity)
        deflate(stream, Z_NO_FLUSH)
        pendingStart = 0
        pendingEnd = Compressor.outputCapacity - Int(stream.pointee.avail_out)
        return n - Int(stream.pointee.avail_in)
    }

    /// Ends the stream once the pending output was taken; returns true when the last of it has
    /// been produced (take the pending output, then the stream is complete), false while more
    /// remains (take the pending output and call again).
    func finish() -> Bool {
        guard !hasPendingOutput else { return false }
        stream.pointee.next_in = nil
        stream.pointee.avail_in = 0
        stream.pointee.next_out = output.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = UInt32(Compressor.outputCapacity)
        let r = deflate(stream, Z_FINISH)
        pendingStart = 0
        pendingEnd = Compressor.outputCapacity - Int(stream.pointee.avail_out)
        return r == Z_STREAM_END
    }
}

/// A worker's compressors: idle ones kept for reuse, and a cap on how many are in use at once
/// (each holds about 330 KiB), beyond which responses are sent uncompressed.
final class CompressorPool {
    private var free: [Compressor] = []
    private let maxFree = 32
    /// Compressors in use at most per worker (beyond: identity, not an error).
    static let maxActive = 256
    private(set) var active = 0

    /// A compressor at `level`; nil when `maxActive` are in use or zlib cannot allocate one (the
    /// response is then sent as it is).
    func take(level: Int) -> Compressor? {
        guard active < CompressorPool.maxActive else { return nil }
        if let c = free.popLast() {
            c.reset(level: level)
            active += 1
            return c
        }
        guard let c = Compressor(level: level) else { return nil }
        active += 1
        return c
    }

    /// Returns a compressor taken from this pool (its stream is reset when taken again).
    func give(_ c: Compressor) {
        active -= 1
        if free.count < maxFree { free.append(c) }
    }
}
