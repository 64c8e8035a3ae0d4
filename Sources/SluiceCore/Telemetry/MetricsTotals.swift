/// The values of one or more shards added together: what a scrape renders and what the
/// windowed statistics difference. A plain value; the word layout is the shards'.
public struct MetricsTotals: Sendable {
    /// Series covered (ids `0..<seriesCount`).
    public let seriesCount: Int
    /// Listeners covered.
    public let listenerCount: Int
    /// Upstreams covered.
    public let upstreamCount: Int
    /// `seriesCount × SeriesLayout.stride` words.
    var seriesWords: [UInt64]
    /// `listenerCount × ListenerLayout.stride` words.
    var listenerWords: [UInt64]
    /// `upstreamCount × UpstreamLayout.stride` words.
    var upstreamWords: [UInt64]

    /// All-zero totals of the given sizes.
    public init(seriesCount: Int, listenerCount: Int, upstreamCount: Int) {
        self.seriesCount = seriesCount
        self.listenerCount = listenerCount
        self.upstreamCount = upstreamCount
        seriesWords = Array(repeating: 0, count: seriesCount * SeriesLayout.stride)
        listenerWords = Array(repeating: 0, count: listenerCount * ListenerLayout.stride)
        upstreamWords = Array(repeating: 0, count: upstreamCount * UpstreamLayout.stride)
    }

    /// The sum of `shards` over the given sizes (any thread).
    public static func sum(of shards: [MetricsShard], seriesCount: Int, listenerCount: Int, upstreamCount: Int) -> MetricsTotals {
        var totals = MetricsTotals(seriesCount: seriesCount, listenerCount: listenerCount, upstreamCount: upstreamCount)
        for shard in shards { shard.accumulate(into: &totals) }
        return totals
    }

    @inline(__always)
    func word(_ series: Int, _ offset: Int) -> UInt64 {
        seriesWords[series * SeriesLayout.stride + offset]
    }

    /// Requests recorded for `series`.
    public func requests(series: Int) -> UInt64 { word(series, SeriesLayout.requests) }
    /// Requests of `series` answered with a status of 500 or more.
    public func serverErrors(series: Int) -> UInt64 { word(series, SeriesLayout.serverErrors) }
    /// Requests of the series answered (`.abort`) or delayed (`.delay`) by a fault drill.
    public func faultsInjected(series: Int, kind: FaultKind) -> UInt64 {
        switch kind {
        case .none: return 0
        case .abort: return word(series, SeriesLayout.faultsAbort)
        case .delay: return word(series, SeriesLayout.faultsDelay)
        }
    }
    /// Injected requests kept out of the rollout gates (`count_in_gates: false`).
    public func gateExcludedRequests(series: Int) -> UInt64 { word(series, SeriesLayout.gateExcludedRequests) }
    /// 5xx among `gateExcludedRequests`.
    public func gateExcludedErrors(series: Int) -> UInt64 { word(series, SeriesLayout.gateExcludedErrors) }
    /// Sum of the durations of `series`' requests, in nanoseconds.
    public func durationSumNanos(series: Int) -> UInt64 { word(series, SeriesLayout.durationSumNanos) }
    /// Bytes received from clients for `series`.
    public func bytesIn(series: Int) -> UInt64 { word(series, SeriesLayout.bytesIn) }
    /// Bytes sent to clients for `series`.
    public func bytesOut(series: Int) -> UInt64 { word(series, SeriesLayout.bytesOut) }
    /// Requests of `series` in flight to an upstream.
    public func inFlight(series: Int) -> Int64 { Int64(bitPattern: word(series, SeriesLayout.inFlight)) }
    /// Body bytes of `series` fed to the gzip compressor.
    public func compressedIn(series: Int) -> UInt64 { word(series, SeriesLayout.compressedIn) }
    /// Bytes the gzip compressor produced for `series`.
    public func compressedOut(series: Int) -> UInt64 { word(series, SeriesLayout.compressedOut) }
    /// Upgrade tunnels of `series` open now.
    public func tunnelsOpen(series: Int) -> Int64 { Int64(bitPattern: word(series, SeriesLayout.tunnelsOpen)) }
    /// Upgrade tunnels of `series` closed.
    public func tunnelsClosed(series: Int) -> UInt64 { word(series, SeriesLayout.tunnelsClosed) }
    /// Sum of the lifetimes of `series`' closed tunnels, in nanoseconds.
    public func tunnelSumNanos(series: Int) -> UInt64 { word(series, SeriesLayout.tunnelSumNanos) }
    /// Upstream failures of `series` for `reason`.
    public func upstreamErrors(series: Int, reason: UpstreamErrorReason) -> UInt64 {
        word(series, SeriesLayout.upstreamErrors + reason.rawValue)
    }
    /// Retries of `series` for the cause labelled `RetryCause.labels[labelIndex]`.
    public func retries(series: Int, labelIndex: Int) -> UInt64 { word(series, SeriesLayout.retries + labelIndex) }
    /// Requests of `series` sent on to its route's baseline cohort.
    public func fallbacks(series: Int) -> UInt64 { word(series, SeriesLayout.fallbacks) }
    /// Upstream failures of `series`, all reasons.
    public func upstreamErrors(series: Int) -> UInt64 {
        UpstreamErrorReason.allCases.reduce(0) { $0 &+ upstreamErrors(series: series, reason: $1) }
    }
    /// Requests of `series` answered with `status` (0: statuses outside 100...599).
    public func requests(series: Int, status: Int) -> UInt64 {
        let slot = SeriesLayout.codeSlot(status)
        if slot == 0 && status != 0 { return 0 }
        return word(series, SeriesLayout.codes + slot)
    }
    /// (status, count) for every status with a non-zero count, ascending (0 first when present).
    public func statusCounts(series: Int) -> [(status: Int, count: UInt64)] {
        var out: [(Int, UInt64)] = []
        for slot in 0..<SeriesLayout.codeCount {
            let c = word(series, SeriesLayout.codes + slot)
            if c != 0 { out.append((SeriesLayout.status(ofCodeSlot: slot), c)) }
        }
        return out
    }
    /// Non-cumulative counts of the `DurationBuckets` buckets of `series` (last is +Inf).
    public func durationBucketCounts(series: Int) -> [UInt64] {
        let start = series * SeriesLayout.stride + SeriesLayout.durationBuckets
        return Array(seriesWords[start..<(start + DurationBuckets.count)])
    }
    /// Non-cumulative counts of the time-to-first-byte buckets (`DurationBuckets` bounds) of `series`.
    public func firstByteBucketCounts(series: Int) -> [UInt64] {
        let start = series * SeriesLayout.stride + SeriesLayout.firstByteBuckets
        return Array(seriesWords[start..<(start + DurationBuckets.count)])
    }
    /// Sum of the times to the upstream's first response byte of `series`, in nanoseconds.
    public func firstByteSumNanos(series: Int) -> UInt64 { word(series, SeriesLayout.firstByteSumNanos) }
    /// Counts of the `LatencyScale` buckets of `series`.
    public func latencyCounts(series: Int) -> ArraySlice<UInt64> {
        let start = series * SeriesLayout.stride + SeriesLayout.latency
        return seriesWords[start..<(start + LatencyScale.bucketCount)]
    }
    /// Connections accepted on `listener`.
    public func connectionsAccepted(listener: Int) -> UInt64 {
        listenerWords[listener * ListenerLayout.stride + ListenerLayout.accepted]
    }
    /// TLS handshakes on `listener` that completed (full and resumed).
    public func tlsHandshakesOK(listener: Int) -> UInt64 {
        listenerWords[listener * ListenerLayout.stride + ListenerLayout.tlsFull]
            &+ listenerWords[listener * ListenerLayout.stride + ListenerLayout.tlsResumed]
    }
    /// TLS handshakes on `listener` that resumed a session.
    public func tlsResumptions(listener: Int) -> UInt64 {
        listenerWords[listener * ListenerLayout.stride + ListenerLayout.tlsResumed]
    }
    /// TLS handshakes on `listener` that failed.
    public func tlsHandshakesFailed(listener: Int) -> UInt64 {
        listenerWords[listener * ListenerLayout.stride + ListenerLayout.tlsFailed]
    }
    /// HTTP/2 connections on `listener`.
    public func http2Connections(listener: Int) -> UInt64 {
        listenerWords[listener * ListenerLayout.stride + ListenerLayout.http2Connections]
    }
    /// HTTP/2 streams opened on `listener`.
    public func http2Streams(listener: Int) -> UInt64 {
        listenerWords[listener * ListenerLayout.stride + ListenerLayout.http2Streams]
    }
    /// HTTP/2 connections on `listener` Sluice ended for `reason`.
    public func http2Closed(listener: Int, reason: HTTP2CloseReason) -> UInt64 {
        listenerWords[listener * ListenerLayout.stride + ListenerLayout.http2Closed + Int(reason.rawValue)]
    }
    /// Connections open on `listener`.
    public func connectionsActive(listener: Int) -> Int64 {
        Int64(bitPattern: listenerWords[listener * ListenerLayout.stride + ListenerLayout.active])
    }
    /// Connections opened to `upstream` (an upstream id).
    public func upstreamConnectionsOpened(upstream: Int) -> UInt64 {
        upstreamWords[upstream * UpstreamLayout.stride + UpstreamLayout.opened]
    }
    /// Connections open to `upstream` (an upstream id).
    public func upstreamConnectionsActive(upstream: Int) -> Int64 {
        Int64(bitPattern: upstreamWords[upstream * UpstreamLayout.stride + UpstreamLayout.active])
    }
}
