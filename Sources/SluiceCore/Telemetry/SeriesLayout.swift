/// Word offsets of one route/cohort series inside a shard's block (and inside `MetricsTotals`).
///
/// The first 32 words (four cache lines) hold what every request touches except the status code
/// and latency buckets; then one word per status code; then the log-linear latency histogram.
@usableFromInline
enum SeriesLayout {
    /// Requests completed (every `recordRequest`).
    @usableFromInline static let requests = 0
    /// Requests answered with a status of 500 or more.
    @usableFromInline static let serverErrors = 1
    /// Sum of request durations in nanoseconds.
    @usableFromInline static let durationSumNanos = 2
    /// Bytes received from clients for this series' requests.
    @usableFromInline static let bytesIn = 3
    /// Bytes sent to clients for this series' requests.
    @usableFromInline static let bytesOut = 4
    /// Requests forwarded and not yet finished (a two's-complement gauge).
    @usableFromInline static let inFlight = 5
    // Words 6...11 are unused (upstream errors were there; they are counted on failures only).
    /// Prometheus duration buckets (non-cumulative), `DurationBuckets.count` words, last is +Inf.
    @usableFromInline static let durationBuckets = 12
    /// Upgrade tunnels open (a two's-complement gauge).
    @usableFromInline static let tunnelsOpen = 26
    /// Upgrade tunnels closed.
    @usableFromInline static let tunnelsClosed = 27
    /// Sum of the closed tunnels' lifetimes in nanoseconds.
    @usableFromInline static let tunnelSumNanos = 28
    /// Body bytes fed to the gzip compressor, and bytes it produced.
    @usableFromInline static let compressedIn = 29
    @usableFromInline static let compressedOut = 30
    /// Status code counts: word 0 for codes outside 100...599, then one word per code 100...599.
    @usableFromInline static let codes = 32
    /// Number of status code words.
    @usableFromInline static let codeCount = 501
    /// Log-linear latency histogram, `LatencyScale.bucketCount` words.
    @usableFromInline static let latency = 536
    /// Time to the upstream's first response byte: `DurationBuckets.count` non-cumulative bucket
    /// words (last is +Inf), then the sum in nanoseconds. After the latency histogram: recorded
    /// once per forwarded request, not on every request's first cache lines.
    @usableFromInline static let firstByteBuckets = latency + LatencyScale.bucketCount
    /// Sum of times to the upstream's first response byte, in nanoseconds.
    @usableFromInline static let firstByteSumNanos = firstByteBuckets + DurationBuckets.count
    /// Requests answered with an injected fault (fault drills).
    @usableFromInline static let faultsAbort = firstByteSumNanos + 1
    /// Requests delayed by a fault drill.
    @usableFromInline static let faultsDelay = faultsAbort + 1
    /// Injected requests kept out of the rollout gates (`count_in_gates: false`): their count
    /// and their 5xx, subtracted by `StatsWindow`; their latency is not recorded in `latency`.
    @usableFromInline static let gateExcludedRequests = faultsDelay + 1
    /// 5xx among `gateExcludedRequests`.
    @usableFromInline static let gateExcludedErrors = gateExcludedRequests + 1
    /// Retries (`sluice_upstream_retries_total`), one word per `RetryCause.labels` entry.
    @usableFromInline static let retries = gateExcludedErrors + 1
    /// Requests of this (failed) cohort sent on to the route's baseline (`sluice_fallbacks_total`).
    @usableFromInline static let fallbacks = retries + 6
    /// Upstream failures, one word per `UpstreamErrorReason` (its raw value), room for 10.
    @usableFromInline static let upstreamErrors = fallbacks + 1
    /// Words per series.
    @usableFromInline static let stride = upstreamErrors + 10

    /// The status-code word for `status`: 1...500 for 100...599, 0 for anything else.
    @inlinable @inline(__always)
    static func codeSlot(_ status: Int) -> Int {
        (status >= 100 && status <= 599) ? status - 99 : 0
    }

    /// The status code a code word stands for (0 for the "outside 100...599" word).
    static func status(ofCodeSlot slot: Int) -> Int {
        slot == 0 ? 0 : slot + 99
    }
}

/// Word offsets of one listener's counters.
@usableFromInline
enum ListenerLayout {
    /// Connections accepted.
    @usableFromInline static let accepted = 0
    /// Connections open (a two's-complement gauge).
    @usableFromInline static let active = 1
    /// TLS handshakes completed with a full handshake.
    @usableFromInline static let tlsFull = 2
    /// TLS handshakes completed by resuming a session (ticket or session cache).
    @usableFromInline static let tlsResumed = 3
    /// TLS handshakes that failed (protocol, version, no common ALPN protocol, peer gone mid-handshake).
    @usableFromInline static let tlsFailed = 4
    /// Connections that chose HTTP/2 (ALPN h2 or the h2c preface).
    @usableFromInline static let http2Connections = 5
    /// HTTP/2 streams opened.
    @usableFromInline static let http2Streams = 6
    /// HTTP/2 connections Sluice ended, by reason (`HTTP2CloseReason`, 4 words).
    @usableFromInline static let http2Closed = 7
    /// Words per listener.
    @usableFromInline static let stride = 11
}

/// Word offsets of one upstream's counters.
@usableFromInline
enum UpstreamLayout {
    /// Connections opened to the upstream's endpoints.
    @usableFromInline static let opened = 0
    /// Connections open (a two's-complement gauge).
    @usableFromInline static let active = 1
    /// Words per upstream.
    @usableFromInline static let stride = 2
}
