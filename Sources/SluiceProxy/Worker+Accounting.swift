@preconcurrency import Glibc
import SluiceCore

/// The per-request record: started when a head is parsed (or rejected), written once into the
/// worker's metrics shard and access log however the request ends.
extension Worker {
    static let requestIDName: [UInt8] = Array("x-request-id".utf8)

    /// Starts accounting for a request whose head was parsed (or rejected).
    func beginRequest(_ c: ClientConnection, _ x: Exchange, parsed: Bool) {
        x.record = RequestRecord()
        x.record.active = true
        x.record.start = now
        x.record.headBytes = parsed ? UInt64(x.head.headLength) : UInt64(c.inBuffer.count)
        x.record.series = SeriesMap.unroutedSeries
        x.requestID.removeAll(keepingCapacity: true)
        let bytes = c.inBuffer.readable
        if parsed {
            Worker.requestIDName.withUnsafeBytes { name in
                if let v = x.head.fieldValue(named: name, in: bytes), v.count > 0, v.count <= 200 {
                    x.requestID.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[v.range]))
                }
            }
        }
        if x.requestID.isEmpty {
            // 128 random bits as 32 hex digits.
            StickyHash.appendHex(nextEntropy(), to: &x.requestID)
            StickyHash.appendHex(nextEntropy(), to: &x.requestID)
        }
        guard accessLog.enabled else { return }
        let (sec, ms) = Worker.wallClock()
        x.record.wallSeconds = sec
        x.record.wallMillis = ms
        if parsed {
            x.capture.capture(x.head, in: bytes)
            if c.stream != nil { x.capture.markHTTP2() }
        } else {
            x.capture.reset()
        }
    }

    /// Records a finished (or abandoned) request once: metrics and the access log line.
    func endRequest(_ c: ClientConnection, _ x: Exchange, logNow: Bool = true) {
        if x.mirror != nil { mirrorPrimaryEnded(x) }
        guard x.record.active || x.record.logPending else { return }
        if !x.record.active {
            // A tunnel's end: its lifetime into the tunnel metrics, and the delayed log line.
            x.record.logPending = false
            if recordMetrics { metrics.tunnelClosed(series: x.record.series, durationNanos: now &- x.record.tunnelStart) }
            writeLogLine(c, x)
            return
        }
        x.record.active = false
        requestEnded(x)
        let record = x.record
        let duration = now &- record.start
        let bytesIn = record.headBytes &+ x.state.requestBodyBytes
        if recordMetrics {
            if record.inFlightCounted {
                metrics.addInFlight(series: record.series, -1)
                x.record.inFlightCounted = false
            }
            metrics.recordRequest(series: record.series, status: record.metricsStatus, durationNanos: duration, bytesIn: bytesIn,
                                  bytesOut: record.bytesOut)
        }
        if !logNow {
            x.record.logPending = true
            return
        }
        writeLogLine(c, x)
    }

    /// Appends the request's access-log line (for a tunnel: its whole life, bytes each way).
    private func writeLogLine(_ c: ClientConnection, _ x: Exchange) {
        guard accessLog.enabled else { return }
        let record = x.record
        let status = record.recordedStatus
        let duration = now &- record.start
        let bytesIn = record.headBytes &+ x.state.requestBodyBytes
        var line = AccessLogRecord(unixSeconds: record.wallSeconds, milliseconds: record.wallMillis, status: status,
                                   durationNanos: duration, bytesIn: bytesIn, bytesOut: record.bytesOut)
        line.upstreamStatus = record.upstreamStatus
        line.upstreamConnectNanos = record.upstreamConnectNanos
        line.upstreamFirstByteNanos = record.upstreamFirstByteNanos
        line.errorReason = record.errorReason
        if let t = c.tls ?? c.stream?.connection?.client.tls {
            line.tlsVersion = t.logVersion
            line.tlsCipher = t.logCipher
        }
        let policy = x.policy
        var routeName = policy?.routeName ?? ""
        var cohortName = policy?.cohortName ?? ""
        var fallbackName = x.fallbackFrom >= 0 ? (x.table?.routes[Int(x.decision.route)].cohorts[Int(x.fallbackFrom)].name ?? "") : ""
        line.retries = x.retries + (x.fallbackFrom >= 0 ? 1 : 0)
        let upstream = x.pool?.hostBytes ?? []
        let format = settings.accessLogFormat
        x.peerText.withUnsafeBytes { client in
        x.requestID.withUnsafeBytes { rid in
        upstream.withUnsafeBytes { up in
        routeName.withUTF8 { rn in
        cohortName.withUTF8 { cn in
        fallbackName.withUTF8 { fb in
            line.fallbackFrom = UnsafeRawBufferPointer(fb)
            line.client = client
            line.requestID = rid
            line.upstream = up
            line.route = UnsafeRawBufferPointer(rn)
            line.cohort = UnsafeRawBufferPointer(cn)
            x.capture.withRecord(line) { AccessLogLine.append($0, format: format, to: &accessLog.buffer) }
        }}}}}}
        if accessLog.buffer.count >= AccessLogSink.flushThreshold { accessLog.flush(now: now) }
    }

    /// Wall-clock time (seconds, milliseconds) for log lines.
    private static func wallClock() -> (Int, Int) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (Int(ts.tv_sec), Int(ts.tv_nsec / 1_000_000))
    }
}
