#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif
import CSluiceAtomics

/// One worker's metrics: counters, gauges and histograms in one preallocated block of 64-bit
/// words. Recording is a handful of relaxed load/store pairs: no lock, no allocation, no
/// read-modify-write shared with another thread.
///
/// Threading: every `record…`/`add…`/`…Opened`/`…Closed` call must come from the one worker
/// thread that owns the shard. `accumulate(into:)` may run on any thread at any time (the
/// admin or sampler thread); it reads each word with a relaxed atomic load, so it sees every
/// counter at some recent value, never a torn one (different words may be from slightly
/// different moments).
///
/// Ids out of range (a series, listener or upstream id at or beyond the capacity, or negative)
/// are recorded as series 0, or dropped for listeners and upstreams: metrics never crash the proxy.
public final class MetricsShard: @unchecked Sendable {
    // @unchecked Sendable: the block is written by one worker thread only and read by others
    // with relaxed atomics (see the type's threading contract); the pointers themselves never change.

    /// The sizes this shard was created with.
    public let capacity: MetricsCapacity
    /// Start of the series area: `capacity.series × SeriesLayout.stride` words.
    @usableFromInline let seriesBase: UnsafeMutablePointer<UInt64>
    /// Start of the listener area: `capacity.listeners × ListenerLayout.stride` words.
    @usableFromInline let listenerBase: UnsafeMutablePointer<UInt64>
    /// Start of the upstream area: `capacity.upstreams × UpstreamLayout.stride` words.
    @usableFromInline let upstreamBase: UnsafeMutablePointer<UInt64>
    /// `capacity.series` as an unsigned bound.
    @usableFromInline let seriesLimit: UInt32
    /// `capacity.listeners` as an unsigned bound.
    @usableFromInline let listenerLimit: UInt
    /// `capacity.upstreams` as an unsigned bound.
    @usableFromInline let upstreamLimit: UInt32

    /// Allocates the zeroed block (pages are committed on first write).
    public init(capacity: MetricsCapacity = MetricsCapacity()) {
        self.capacity = capacity
        let seriesWords = capacity.series * SeriesLayout.stride
        let listenerWords = capacity.listeners * ListenerLayout.stride
        let upstreamWords = capacity.upstreams * UpstreamLayout.stride
        // calloc rather than allocate+initialize: large blocks come zeroed from mmap, so the
        // unused part of the capacity costs address space, not memory.
        guard let raw = calloc(seriesWords + listenerWords + upstreamWords, MemoryLayout<UInt64>.stride) else {
            fatalError("MetricsShard: cannot allocate \(seriesWords + listenerWords + upstreamWords) words")
        }
        let words = raw.bindMemory(to: UInt64.self, capacity: seriesWords + listenerWords + upstreamWords)
        seriesBase = words
        listenerBase = words + seriesWords
        upstreamBase = words + seriesWords + listenerWords
        seriesLimit = UInt32(capacity.series)
        listenerLimit = UInt(capacity.listeners)
        upstreamLimit = UInt32(capacity.upstreams)
    }

    deinit {
        free(seriesBase)
    }

    /// The first word of series `series` (series 0 when out of range).
    @inlinable @inline(__always)
    func series(_ series: Int32) -> UnsafeMutablePointer<UInt64> {
        let id = series < 0 ? series : series & SeriesMap.idMask  // fault flags off (see `SeriesMap.series(for:)`)
        let s = UInt32(bitPattern: id) < seriesLimit ? Int(id) : 0
        return seriesBase + s &* SeriesLayout.stride
    }

    /// Records one finished request: its status as sent to the client (anything outside
    /// 100...599 is counted under code 0), its duration from the first byte of the request to
    /// the last byte of the response, and its bytes in and out. Worker thread only.
    @inlinable
    public func recordRequest(series: Int32, status: Int, durationNanos: UInt64, bytesIn: UInt64, bytesOut: UInt64) {
        let p = self.series(series)
        csluice_add_relaxed(p + SeriesLayout.requests, 1)
        if status >= 500 { csluice_add_relaxed(p + SeriesLayout.serverErrors, 1) }
        csluice_add_relaxed(p + SeriesLayout.durationSumNanos, durationNanos)
        csluice_add_relaxed(p + SeriesLayout.bytesIn, bytesIn)
        csluice_add_relaxed(p + SeriesLayout.bytesOut, bytesOut)
        csluice_add_relaxed(p + SeriesLayout.durationBuckets + DurationBuckets.index(nanos: durationNanos), 1)
        csluice_add_relaxed(p + SeriesLayout.codes + SeriesLayout.codeSlot(status), 1)
        if series & ~SeriesMap.idMask != 0 && series > 0 {
            recordFault(p, series: series, status: status)
            if series & SeriesMap.outsideGatesFlag != 0 { return }  // no latency sample for the gates
        }
        csluice_add_relaxed(p + SeriesLayout.latency + LatencyScale.index(nanos: durationNanos), 1)
    }

    /// Records the time from writing a request's head to an upstream to the first byte of the
    /// upstream's response (`sluice_upstream_first_byte_seconds`). Worker thread only.
    @inlinable
    public func recordUpstreamFirstByte(series: Int32, nanos: UInt64) {
        let p = self.series(series)
        csluice_add_relaxed(p + SeriesLayout.firstByteBuckets + DurationBuckets.index(nanos: nanos), 1)
        csluice_add_relaxed(p + SeriesLayout.firstByteSumNanos, nanos)
    }

    /// Counts a fault drill's request (the flags of `series`). Worker thread only.
    @inlinable
    func recordFault(_ p: UnsafeMutablePointer<UInt64>, series: Int32, status: Int) {
        if series & SeriesMap.faultAbortFlag != 0 { csluice_add_relaxed(p + SeriesLayout.faultsAbort, 1) }
        if series & SeriesMap.faultDelayFlag != 0 { csluice_add_relaxed(p + SeriesLayout.faultsDelay, 1) }
        if series & SeriesMap.outsideGatesFlag != 0 {
            csluice_add_relaxed(p + SeriesLayout.gateExcludedRequests, 1)
            if status >= 500 { csluice_add_relaxed(p + SeriesLayout.gateExcludedErrors, 1) }
        }
    }

    /// Records one upstream failure of an exchange of `series`. Worker thread only.
    @inlinable
    public func recordUpstreamError(series: Int32, reason: UpstreamErrorReason) {
        csluice_add_relaxed(self.series(series) + SeriesLayout.upstreamErrors + reason.rawValue, 1)
    }

    /// Counts a retry of an exchange of `series` for `cause`. Worker thread only.
    @inlinable
    public func recordRetry(series: Int32, cause: RetryCause) {
        csluice_add_relaxed(self.series(series) + SeriesLayout.retries + cause.labelIndex, 1)
    }

    /// Counts a request of `series` (the failed cohort) sent on to its route's baseline. Worker thread only.
    @inlinable
    public func recordFallback(series: Int32) {
        csluice_add_relaxed(self.series(series) + SeriesLayout.fallbacks, 1)
    }

    /// Adds `delta` to the series' in-flight gauge: +1 when a request is forwarded to an
    /// upstream, -1 when it is done (each +1 matched by a -1 on the same shard). Worker thread only.
    @inlinable
    public func addInFlight(series: Int32, _ delta: Int64) {
        csluice_add_relaxed(self.series(series) + SeriesLayout.inFlight, UInt64(bitPattern: delta))
    }

    /// Bytes into and out of the gzip compressor for `series`. Worker thread only.
    @inlinable
    public func recordCompression(series: Int32, bytesIn: UInt64, bytesOut: UInt64) {
        let base = self.series(series)
        csluice_add_relaxed(base + SeriesLayout.compressedIn, bytesIn)
        csluice_add_relaxed(base + SeriesLayout.compressedOut, bytesOut)
    }

    /// An Upgrade tunnel of `series` opened. Worker thread only.
    @inlinable
    public func tunnelOpened(series: Int32) {
        csluice_add_relaxed(self.series(series) + SeriesLayout.tunnelsOpen, 1)
    }

    /// An Upgrade tunnel of `series` closed after `durationNanos`. Worker thread only.
    @inlinable
    public func tunnelClosed(series: Int32, durationNanos: UInt64) {
        let base = self.series(series)
        csluice_add_relaxed(base + SeriesLayout.tunnelsOpen, UInt64(bitPattern: -1))
        csluice_add_relaxed(base + SeriesLayout.tunnelsClosed, 1)
        csluice_add_relaxed(base + SeriesLayout.tunnelSumNanos, durationNanos)
    }

    /// Counts a connection accepted on listener `listener` (index in the config's listeners)
    /// and raises its active gauge. Worker thread only.
    @inlinable
    public func connectionAccepted(listener: Int) {
        guard UInt(bitPattern: listener) < listenerLimit else { return }
        let p = listenerBase + listener &* ListenerLayout.stride
        csluice_add_relaxed(p + ListenerLayout.accepted, 1)
        csluice_add_relaxed(p + ListenerLayout.active, 1)
    }

    /// Counts a TLS handshake's outcome on listener `listener`. Worker thread only.
    @inlinable
    public func tlsHandshake(listener: Int, result: TLSHandshakeResult) {
        guard UInt(bitPattern: listener) < listenerLimit else { return }
        let p = listenerBase + listener &* ListenerLayout.stride
        switch result {
        case .full: csluice_add_relaxed(p + ListenerLayout.tlsFull, 1)
        case .resumed: csluice_add_relaxed(p + ListenerLayout.tlsResumed, 1)
        case .failed: csluice_add_relaxed(p + ListenerLayout.tlsFailed, 1)
        }
    }

    /// Counts an HTTP/2 connection (`streams` 0) or streams on one. Worker thread only.
    @inlinable
    public func http2(listener: Int, connections: UInt64, streams: UInt64) {
        guard UInt(bitPattern: listener) < listenerLimit else { return }
        let p = listenerBase + listener &* ListenerLayout.stride
        if connections > 0 { csluice_add_relaxed(p + ListenerLayout.http2Connections, connections) }
        if streams > 0 { csluice_add_relaxed(p + ListenerLayout.http2Streams, streams) }
    }

    /// Counts an HTTP/2 connection Sluice ended for `reason`. Worker thread only.
    @inlinable
    public func http2Closed(listener: Int, reason: HTTP2CloseReason) {
        guard UInt(bitPattern: listener) < listenerLimit else { return }
        csluice_add_relaxed(listenerBase + listener &* ListenerLayout.stride + ListenerLayout.http2Closed + Int(reason.rawValue), 1)
    }

    /// Lowers listener `listener`'s active gauge when a client connection closes. Worker thread only.
    @inlinable
    public func connectionClosed(listener: Int) {
        guard UInt(bitPattern: listener) < listenerLimit else { return }
        csluice_add_relaxed(listenerBase + listener &* ListenerLayout.stride + ListenerLayout.active, UInt64.max)
    }

    /// Counts a connection opened to upstream id `upstream` (from `SeriesMap.upstreamSeries`)
    /// and raises its active gauge. Worker thread only.
    @inlinable
    public func upstreamConnectionOpened(upstream: Int32) {
        guard UInt32(bitPattern: upstream) < upstreamLimit else { return }
        let p = upstreamBase + Int(upstream) &* UpstreamLayout.stride
        csluice_add_relaxed(p + UpstreamLayout.opened, 1)
        csluice_add_relaxed(p + UpstreamLayout.active, 1)
    }

    /// Lowers upstream id `upstream`'s active gauge when one of its connections closes. Worker thread only.
    @inlinable
    public func upstreamConnectionClosed(upstream: Int32) {
        guard UInt32(bitPattern: upstream) < upstreamLimit else { return }
        csluice_add_relaxed(upstreamBase + Int(upstream) &* UpstreamLayout.stride + UpstreamLayout.active, UInt64.max)
    }

    /// Adds this shard's values to `totals` (its first `totals.seriesCount` series, listeners
    /// and upstreams). Any thread; relaxed loads, so concurrent recording is safe.
    public func accumulate(into totals: inout MetricsTotals) {
        let seriesWords = min(totals.seriesCount, capacity.series) * SeriesLayout.stride
        totals.seriesWords.withUnsafeMutableBufferPointer { out in
            for i in 0..<seriesWords { out[i] &+= csluice_load_relaxed(seriesBase + i) }
        }
        let listenerWords = min(totals.listenerCount, capacity.listeners) * ListenerLayout.stride
        totals.listenerWords.withUnsafeMutableBufferPointer { out in
            for i in 0..<listenerWords { out[i] &+= csluice_load_relaxed(listenerBase + i) }
        }
        let upstreamWords = min(totals.upstreamCount, capacity.upstreams) * UpstreamLayout.stride
        totals.upstreamWords.withUnsafeMutableBufferPointer { out in
            for i in 0..<upstreamWords { out[i] &+= csluice_load_relaxed(upstreamBase + i) }
        }
    }
}

/// How a client TLS handshake ended.
public enum TLSHandshakeResult: Sendable {
    /// Completed with a full handshake.
    case full
    /// Completed by resuming an earlier session.
    case resumed
    /// Failed before completing.
    case failed
}
