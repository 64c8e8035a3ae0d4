@preconcurrency import Glibc

/// A worker's access-log buffer: lines are appended on the worker thread and written with one
/// write(2) per batch (at 32 KiB or every 200 ms), never per request.
struct AccessLogSink {
    /// Write when this many bytes are buffered.
    static let flushThreshold = 32 * 1024
    /// Write at least this often (nanoseconds) while lines are buffered.
    static let flushInterval: UInt64 = 200_000_000

    let fd: Int32
    var buffer: [UInt8] = []
    var lastFlush: UInt64 = 0

    init(fd: Int32) {
        self.fd = fd
        if fd >= 0 { buffer.reserveCapacity(64 * 1024) }
    }

    /// True when an access log is configured.
    @inline(__always) var enabled: Bool { fd >= 0 }

    /// Writes the buffered lines (a failed write drops them: logging never blocks serving).
    mutating func flush(now: UInt64) {
        lastFlush = now
        guard fd >= 0, !buffer.isEmpty else { return }
        buffer.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + off, raw.count - off)
                if n > 0 { off += n; continue }
                if n < 0 && errno == EINTR { continue }
                break
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
