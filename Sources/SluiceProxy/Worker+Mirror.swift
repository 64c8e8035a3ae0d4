@preconcurrency import Glibc
import SluiceCore

/// Traffic mirroring: a copy of a forwarded request goes to the route's (or rule's) mirror on its
/// own non-blocking connection in this loop, fire and forget. The primary never waits for it:
/// the copy is started from bytes the primary already has (its serialized head, then its body as
/// it is sent), the mirror's socket has its own registration, timer and buffers, and a mirror
/// that is slow, silent or refusing only ends its own exchange. Caps per worker
/// (`limits.mirror_max_in_flight`, `limits.mirror_max_buffered_bytes`) bound what is held; a
/// copy over them is not sent and is counted `dropped`.
///
/// The pure parts are in `SluiceCore/Mirror/`: which mirror covers a decision and whether the
/// request is selected (`MirrorPolicy`), the comparison (`MirrorComparison`), the counters and
/// the diff ring (`MirrorBoard`, `MirrorShard`).
extension Worker {
    static let mirrorHeader: StaticString = "X-Sluice-Mirror: 1\r\n\r\n"

    /// The series ids for a newly published table's mirrors (a lock in the board, once per table).
    func refreshMirrorIDs() {
        mirroring.ids = mirroring.board?.ids(for: table) ?? []
        mirroring.roundRobin = Array(repeating: 0, count: table.upstreams.count)
    }

    /// Starts a copy of the request being forwarded when its route or rule mirrors and the request
    /// is selected. Called by `forward` after the upstream head is serialized (`x.upstreamHead`)
    /// and before the head's bytes are consumed. Only routes with a mirror get here.
    func startMirror(_ c: ClientConnection, _ x: Exchange, upgrade: Bool) {
        guard let table = x.table, !upgrade else { return }
        let index = table.mirrorIndex(for: x.decision)
        guard index >= 0 else { return }
        let spec = table.mirrorPlans[index].spec
        guard MirrorPolicy.selects(spec, method: x.head.method, entropy: nextEntropy()) else { return }
        let id: Int32 = table === self.table && index < mirroring.ids.count ? mirroring.ids[index] : -1
        let declared: UInt64?
        switch x.state.requestBody {
        case .done: declared = 0
        case .length(let remaining): declared = remaining
        case .chunked: declared = nil
        }
        guard MirrorPolicy.bodyFits(spec, declared: declared) else {
            mirroring.shard.record(id, .tooLarge)
            return
        }
        let need = x.upstreamHead.count + 64 + Int(declared ?? 0) + bufferCapacity
        guard mirroring.inFlight < settings.limits.mirrorMaxInFlight,
              mirroring.buffered + need <= settings.limits.mirrorMaxBufferedBytes else {
            mirroring.shard.record(id, .dropped)
            return
        }
        let group = table.upstreams[spec.upstream]
        if mirroring.roundRobin.count < table.upstreams.count {
            mirroring.roundRobin = Array(repeating: 0, count: table.upstreams.count)
        }
        let endpoint = group.endpoints[mirroring.roundRobin[spec.upstream] % group.endpoints.count]
        mirroring.roundRobin[spec.upstream] &+= 1

        let pooled = mirroring.idle[endpoint.address]?.popLast()
        let m = pooled ?? mirroring.free.popLast() ?? MirrorExchange(capacity: bufferCapacity, pool: buffers)
        m.table = table
        m.plan = index
        m.seriesID = id
        m.compare = spec.compare
        m.keep = spec.compare ? spec.maxBodyBytes : 0
        m.method = x.head.method
        m.startedAt = now
        m.primaryStart = x.record.start
        m.deadline = now &+ spec.timeoutNanos
        m.primaryAttached = true
        m.accounted = need
        m.reservedBody = Int(declared ?? 0)
        m.expectedBody = declared.map { Int($0) } ?? -1
        m.requestDone = declared == 0
        mirroring.inFlight += 1
        mirroring.buffered += need
        // The head as the upstream gets it, without its final CRLF, plus the mirror's fields.
        let head = x.upstreamHead
        m.out.append(contentsOf: head[0..<(head.count - 2)])
        m.out.append(contentsOf: UnsafeRawBufferPointer(start: Worker.mirrorHeader.utf8Start,
                                                         count: Worker.mirrorHeader.utf8CodeUnitCount))
        if let end = head.firstIndex(of: 13) { m.requestLine.append(contentsOf: head[0..<min(end, 512)]) }
        x.mirror = m
        if pooled != nil {
            // A keep-alive connection the mirror answered on before: send at once.
            m.phase = .open
            timers.push(.init(deadline: m.deadline, fd: m.fd, generation: m.generation))
            driveMirror(m)
        } else {
            m.address = endpoint.address
            connectMirror(m, to: endpoint.address)
        }
    }

    /// Opens the copy's connection (non-blocking); a failure ends the mirror side at once.
    private func connectMirror(_ m: MirrorExchange, to address: SocketAddress) {
        m.phase = .connecting  // so that a failure below ends it like any other
        let fd: Int32
        do {
            fd = try Sys.tcpSocket(for: address)
        } catch {
            finishMirror(m, ok: false)
            return
        }
        Sys.setNoDelay(fd)
        m.fd = fd
        m.generation = registrations.nextGeneration(fd)
        switch Sys.connect(fd, to: address) {
        case .connected:
            m.phase = .open
            m.writable = true
        case .inProgress:
            m.phase = .connecting
        case .failed:
            Sys.close(fd)
            unregister(fd)
            m.fd = -1
            finishMirror(m, ok: false)
            return
        }
        do {
            try register(fd, .mirror(m), events: EpollMask.input | EpollMask.output | EpollMask.readHangup | EpollMask.edge)
        } catch {
            Sys.close(fd)
            unregister(fd)
            m.fd = -1
            finishMirror(m, ok: false)
            return
        }
        timers.push(.init(deadline: m.deadline, fd: fd, generation: m.generation))
        driveMirror(m)
    }

    /// Request body bytes the primary just handed towards its upstream (as sent: raw, or
    /// re-chunked): appended to the copy. Over `max_body_bytes` the copy is abandoned (`too_large`).
    /// `payload` is how many of them are body bytes (the rest is chunk framing).
    func mirrorRequestBytes(_ x: Exchange, _ bytes: UnsafeRawBufferPointer, payload: Int) {
        guard let m = x.mirror, m.phase == .connecting || m.phase == .open, bytes.count > 0 else { return }
        let limit = m.table.map { $0.mirrorPlans[m.plan].spec.maxBodyBytes } ?? 0
        m.bodyBytes += payload
        m.copiedBytes += bytes.count
        if m.bodyBytes > limit {
            // A chunked body that outgrew the limit (a declared length was checked at the start).
            mirroring.shard.record(m.seriesID, .tooLarge)
            m.seriesID = -1  // counted: the end of this exchange records nothing more
            finishMirror(m, ok: false)
            return
        }
        if m.copiedBytes > m.reservedBody {
            // Bytes beyond what was reserved at the start (a chunked body) count against the cap.
            let extra = min(bytes.count, m.copiedBytes - m.reservedBody)
            guard mirroring.buffered + extra <= settings.limits.mirrorMaxBufferedBytes else {
                mirroring.shard.record(m.seriesID, .dropped)
                m.seriesID = -1
                finishMirror(m, ok: false)
                return
            }
            mirroring.buffered += extra
            m.accounted += extra
        }
        m.out.append(contentsOf: bytes)
        if (m.expectedBody >= 0 && m.bodyBytes >= m.expectedBody) || (m.expectedBody < 0 && payload == 0) { m.requestDone = true }
        if m.phase == .open { driveMirror(m) }
    }

    /// The primary's final response head (compare only): status and the compared fields.
    func mirrorPrimaryHead(_ x: Exchange, _ rh: ResponseHead, _ bytes: UnsafeRawBufferPointer) {
        guard let m = x.mirror, m.compare else { return }
        m.primary.status = rh.status
        collectHeaders(&m.primary, rh, bytes, m)
    }

    /// Primary response body bytes as they pass to the client (compare only).
    @inline(__always)
    func mirrorPrimaryBody(_ x: Exchange, _ bytes: UnsafeRawBufferPointer) {
        guard let m = x.mirror, m.compare else { return }
        keepBody(&m.primary, bytes, m)
    }

    /// The primary's request is recorded (however it ended): it lets go of the copy. A request
    /// whose body did not all reach the copy ends the copy too.
    func mirrorPrimaryEnded(_ x: Exchange) {
        guard let m = x.mirror else { return }
        x.mirror = nil
        m.primaryAttached = false
        if case .done = x.state.responseBody, m.primary.status != 0 { m.primaryOK = true }
        m.primary.latencyNanos = now &- m.primaryStart
        if m.phase != .finished {
            if case .done = x.state.requestBody {} else {
                finishMirror(m, ok: false)
                return
            }
            return
        }
        completeMirror(m)
    }

    /// An epoll event on a copy's socket.
    func mirrorEvent(_ m: MirrorExchange, _ events: UInt32) {
        if m.phase == .pooled || m.phase == .finished {
            // An idle (or waiting) keep-alive connection: the mirror closed it or sent something unasked.
            if events & (EpollMask.input | EpollMask.readHangup | EpollMask.hangup | EpollMask.error) != 0 { dropMirrorSocket(m) }
            return
        }
        m.note(events)
        driveMirror(m)
    }

    /// A copy's timer: its deadline passed (it ends as an error), or a read budget ran out and
    /// the rest of its answer is read now.
    func mirrorTimer(_ m: MirrorExchange) {
        if m.phase == .pooled {
            if now >= m.idleUntil { dropMirrorSocket(m) }
            return
        }
        guard m.phase == .connecting || m.phase == .open else { return }
        if now >= m.deadline {
            finishMirror(m, ok: false)
        } else {
            m.readable = true
            driveMirror(m)
        }
    }

    /// Moves the copy on: connect result, send, read and parse the answer.
    func driveMirror(_ m: MirrorExchange) {
        if m.phase == .connecting {
            guard m.writable || m.hangup else { return }
            if Sys.pendingError(m.fd) != 0 {
                finishMirror(m, ok: false)
                return
            }
            m.phase = .open
        }
        guard m.phase == .open else { return }
        while m.sent < m.out.count && m.writable {
            let result = m.out.withUnsafeBytes { Sys.write(m.fd, $0.baseAddress! + m.sent, m.out.count - m.sent) }
            switch result {
            case .done(let n): m.sent += n
            case .wouldBlock: m.writable = false
            case .eof, .failed:
                finishMirror(m, ok: false)
                return
            }
        }
        if m.sent == m.out.count && m.sent > 0 {
            // Sent: the bytes are the kernel's now.
            mirroring.buffered -= min(m.sent, m.accounted)
            m.accounted -= min(m.sent, m.accounted)
            m.out.removeAll(keepingCapacity: m.out.capacity <= 64 * 1024)
            m.sent = 0
        }
        var budget = Worker.readBudget
        while m.readable && budget > 0 {
            budget -= 1
            let space = m.inBuffer.writableSpace()
            if space.count == 0 {
                finishMirror(m, ok: false)  // a head larger than a buffer
                return
            }
            switch Sys.read(m.fd, space.baseAddress!, space.count) {
            case .done(let n): m.inBuffer.didWrite(n)
            case .wouldBlock: m.readable = false
            case .eof:
                m.readEOF = true
                m.readable = false
            case .failed:
                finishMirror(m, ok: false)
                return
            }
            if !parseMirrorResponse(m) { return }
        }
        if m.readable && budget == 0 {
            // Fairness: the rest of this answer is read at the next loop iteration (a timer due now).
            timers.push(.init(deadline: now, fd: m.fd, generation: m.generation))
            return
        }
        if m.readEOF || (m.hangup && !m.readable) {
            _ = parseMirrorResponse(m)
            if m.phase == .open {
                if case .untilClose = m.body {
                    m.body = .done
                    finishMirror(m, ok: true)
                } else {
                    finishMirror(m, ok: false)
                }
            }
        }
    }

    /// Parses what arrived; false when the copy ended (complete or failed).
    private func parseMirrorResponse(_ m: MirrorExchange) -> Bool {
        while !m.inBuffer.isEmpty {
            switch m.body {
            case .awaitingHead:
                switch ResponseParser.parse(m.inBuffer.readable, requestMethod: m.method, into: &m.head,
                                            limits: settings.limits.parser) {
                case .incomplete:
                    return true
                case .invalid:
                    finishMirror(m, ok: false)
                    return false
                case .complete:
                    if m.head.status < 200 {
                        m.inBuffer.consume(m.head.headLength)
                        continue
                    }
                    m.mirror.status = m.head.status
                    if m.compare { collectHeaders(&m.mirror, m.head, m.inBuffer.readable, m) }
                    m.inBuffer.consume(m.head.headLength)
                    switch m.head.framing {
                    case .none: m.body = .done
                    case .contentLength(let n): m.body = n == 0 ? .done : .length(n)
                    case .chunked: m.body = .chunked(ChunkedDecoder(limits: settings.limits.parser))
                    case .untilClose: m.body = .untilClose
                    }
                }
            case .length(let remaining):
                let n = Int(min(remaining, UInt64(m.inBuffer.count)))
                keepBody(&m.mirror, UnsafeRawBufferPointer(rebasing: m.inBuffer.readable[0..<n]), m)
                m.inBuffer.consume(n)
                m.body = remaining == UInt64(n) ? .done : .length(remaining - UInt64(n))
            case .chunked(var decoder):
                let input = m.inBuffer.readable
                switch decoder.decode(input) {
                case .data(let offset, let count, let consumed):
                    keepBody(&m.mirror, UnsafeRawBufferPointer(rebasing: input[offset..<offset + count]), m)
                    m.inBuffer.consume(consumed)
                    m.body = .chunked(decoder)
                case .needMore(let consumed):
                    m.inBuffer.consume(consumed)
                    m.body = .chunked(decoder)
                    if consumed == 0 { return true }
                case .done(let consumed, _, _):
                    m.inBuffer.consume(consumed)
                    m.body = .done
                case .invalid:
                    finishMirror(m, ok: false)
                    return false
                }
            case .untilClose:
                keepBody(&m.mirror, m.inBuffer.readable, m)
                m.inBuffer.consume(m.inBuffer.count)
            case .done:
                break  // bytes after the answer stay: the connection is not reused
            }
            if case .done = m.body { break }
        }
        if case .done = m.body {
            finishMirror(m, ok: true)
            return false
        }
        return true
    }

    /// The compared fields of a response head into `side`.
    private func collectHeaders(_ side: inout MirrorSide, _ rh: ResponseHead, _ bytes: UnsafeRawBufferPointer, _ m: MirrorExchange) {
        guard let table = m.table else { return }
        side.headers.removeAll(keepingCapacity: true)
        for name in table.mirrorPlans[m.plan].spec.headers {
            var value: [UInt8]?
            for f in rh.fields where Worker.equalsLowercased(bytes, f.name, name) {
                value = Array(UnsafeRawBufferPointer(rebasing: bytes[f.value.range]).prefix(256))
                break
            }
            side.headers.append(value)
        }
    }

    /// Body bytes into `side` (length and hash; the prefix while under `keep` and the worker's cap).
    @inline(__always)
    private func keepBody(_ side: inout MirrorSide, _ bytes: UnsafeRawBufferPointer, _ m: MirrorExchange) {
        guard m.compare else { return }
        let before = side.prefix.count
        let room = settings.limits.mirrorMaxBufferedBytes - mirroring.buffered
        side.addBody(bytes, keep: min(m.keep, before + max(0, room)))
        let grew = side.prefix.count - before
        mirroring.buffered += grew
        m.accounted += grew
    }

    /// ASCII case-insensitive comparison of a field name with a lowercased name.
    static func equalsLowercased(_ bytes: UnsafeRawBufferPointer, _ span: ByteSpan, _ lower: String) -> Bool {
        let u = lower.utf8
        guard Int(span.count) == u.count else { return false }
        var i = Int(span.start)
        for b in u {
            var c = bytes[i]
            if c >= 65 && c <= 90 { c |= 0x20 }
            if c != b { return false }
            i += 1
        }
        return true
    }

    /// The mirror side is over: its socket closed; compared and recorded once the primary let go too.
    func finishMirror(_ m: MirrorExchange, ok: Bool) {
        guard m.phase == .connecting || m.phase == .open else { return }
        m.keepSocket = ok && m.requestDone && m.sent == m.out.count && m.head.keepAlive && m.inBuffer.isEmpty
            && !m.readEOF && !m.hangup && m.fd >= 0
        if !m.keepSocket { closeMirrorSocket(m) }
        m.phase = .finished
        m.mirrorOK = ok
        m.mirror.latencyNanos = now &- m.startedAt
        m.inBuffer.release()
        if !m.out.isEmpty {
            let unsent = min(m.out.count, m.accounted)
            mirroring.buffered -= unsent
            m.accounted -= unsent
            m.out.removeAll(keepingCapacity: m.out.capacity <= 64 * 1024)
            m.sent = 0
        }
        if !m.primaryAttached { completeMirror(m) }
    }

    /// Both sides are over: the result into the metrics (and the diff ring), then back to the pool.
    private func completeMirror(_ m: MirrorExchange) {
        let id = m.seriesID
        if !m.compare {
            mirroring.shard.record(id, m.mirrorOK ? .completed : .error)
        } else if !m.mirrorOK || !m.primaryOK {
            mirroring.shard.record(id, .error)
        } else {
            let outcome = MirrorComparison.compare(primary: m.primary, mirror: m.mirror)
            mirroring.shard.record(id, outcome.result)
            mirroring.shard.recordLatency(id, primaryNanos: m.primary.latencyNanos, mirrorNanos: m.mirror.latencyNanos)
            if outcome.result != .match, id >= 0 { keepDiff(m, outcome) }
        }
        mirroring.inFlight -= 1
        mirroring.buffered -= m.accounted
        if m.keepSocket, m.fd >= 0, (mirroring.idle[m.address]?.count ?? 0) < MirrorState.maxIdlePerEndpoint {
            m.reset(keepingSocket: true)
            m.idleUntil = now &+ MirrorState.idleTime
            timers.push(.init(deadline: m.idleUntil, fd: m.fd, generation: m.generation))
            mirroring.idle[m.address, default: []].append(m)
            return
        }
        closeMirrorSocket(m)
        m.reset()
        if mirroring.free.count < 64 { mirroring.free.append(m) }
    }

    /// Closes a copy's socket (if open).
    private func closeMirrorSocket(_ m: MirrorExchange) {
        guard m.fd >= 0 else { return }
        unregister(m.fd)
        Sys.close(m.fd)
        m.fd = -1
        m.keepSocket = false
    }

    /// A kept socket is closed: a pooled one leaves the pool; one whose copy waits for its
    /// primary is simply not kept.
    private func dropMirrorSocket(_ m: MirrorExchange) {
        closeMirrorSocket(m)
        guard m.phase == .pooled else { return }
        if var list = mirroring.idle[m.address], let i = list.firstIndex(where: { $0 === m }) {
            list.remove(at: i)
            mirroring.idle[m.address] = list.isEmpty ? nil : list
        }
        m.reset()
        if mirroring.free.count < 64 { mirroring.free.append(m) }
    }

    /// A differing pair into this worker's ring (the only place mirroring takes a lock, and only
    /// for pairs that differ).
    private func keepDiff(_ m: MirrorExchange, _ outcome: MirrorOutcome) {
        guard let table = m.table else { return }
        let plan = table.mirrorPlans[m.plan]
        var diff = MirrorDiff(time: "", route: table.routes[Int(plan.route)].name, mirror: plan.spec.name,
                              requestLine: String(decoding: m.requestLine, as: UTF8.self), result: outcome.result.label,
                              primaryStatus: m.primary.status, mirrorStatus: m.mirror.status,
                              primaryBodyBytes: m.primary.bodyLength, mirrorBodyBytes: m.mirror.bodyLength,
                              firstDifferingByte: outcome.firstDifferingByte,
                              primarySeconds: Double(m.primary.latencyNanos) / 1e9, mirrorSeconds: Double(m.mirror.latencyNanos) / 1e9)
        if let h = outcome.header {
            diff.header = plan.spec.headers[h]
            diff.primaryHeader = h < m.primary.headers.count ? m.primary.headers[h].map { String(decoding: $0, as: UTF8.self) } : nil
            diff.mirrorHeader = h < m.mirror.headers.count ? m.mirror.headers[h].map { String(decoding: $0, as: UTF8.self) } : nil
        }
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        mirroring.shard.keep(diff, unixNanos: UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec))
    }

    /// Ends a copy, or closes an idle connection (shutdown).
    func closeMirror(_ m: MirrorExchange) {
        switch m.phase {
        case .pooled, .finished: dropMirrorSocket(m)
        case .connecting, .open: finishMirror(m, ok: false)
        case .idle: break
        }
    }
}
