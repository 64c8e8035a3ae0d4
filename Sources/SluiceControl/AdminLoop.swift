#if canImport(Glibc)
@preconcurrency import Glibc
#endif
internal import CSluiceSys
import SluiceCore
import SluiceProxy
import Synchronization


/// The admin API's event loop: one thread, non-blocking sockets, epoll (edge-triggered
/// connections, level-triggered listeners), the strict `RequestParser` of SluiceCore.
///
/// A connection carries one request. The loop reads the head; as soon as it is complete it
/// asks the server (`decide`) what to do: routing, the token and the cross-site checks happen
/// before any body byte is read. The body is then read up to `maxBody`. The handler runs on a
/// control thread (`AdminLane`; handlers take the routing controller's lock and write files)
/// and posts the response bytes back through `AdminOutbox`; the loop writes them.
///
/// Capacity: every request must arrive whole within `requestTimeout` of the accept; idle and
/// slow connections cost a few hundred bytes (the loop reads into one shared buffer and a
/// connection keeps only the bytes it received). When `maxConnections` are open on a listener, a
/// new connection closes that listener's oldest one that has not shown the token and is not being
/// answered, so clients without the token cannot keep an operator out.
///
/// Threading: every field is touched by the loop thread only, except `outbox` and `counters`
/// (locked) and `stopping` (atomic), which is why the class may be `@unchecked Sendable`.
final class AdminLoop: @unchecked Sendable {
    private let epoll: Epoll
    private let wake: WakeFD
    let outbox: AdminOutbox
    private let stopping = Atomic<Bool>(false)
    private let counters = Mutex(AdminLoopCounters(open: 0, accepted: 0, evicted: 0, timedOut: 0, refused: 0))
    private let limits: AdminLoopLimits
    private var listeners: [AdminListenerSlot]
    private var connections: [AdminConnection?] = []
    private var openCount = 0
    /// Open connections per listener role: each listener has its own `maxConnections`, so a flood
    /// on the (often exposed) metrics listener never takes the admin listener's room.
    private var openByRole: [AdminListenerRole: Int] = [.admin: 0, .metrics: 0]
    private var nextGeneration: UInt32 = 1
    private var nextSweep: UInt64 = 0
    private var acceptPausedUntil: UInt64 = 0
    private let readBuffer: UnsafeMutableRawBufferPointer
    private let decide: (inout AdminRequest, AdminListenerRole, SocketAddress, Bool) -> AdminDecision
    private let run: @Sendable (AdminLane, @escaping @Sendable () -> Void) -> Void

    private static let wakeData = UInt64.max
    private static let sweepInterval: UInt64 = 100_000_000

    /// A loop over `listeners` (bound, listening, non-blocking). `decide` is called on the loop
    /// thread with each complete head; `run` runs a job on a lane's control thread.
    init(listeners: [AdminListenerSlot], limits: AdminLoopLimits,
         decide: @escaping (inout AdminRequest, AdminListenerRole, SocketAddress, Bool) -> AdminDecision,
         run: @escaping @Sendable (AdminLane, @escaping @Sendable () -> Void) -> Void) throws(AdminError) {
        let ep: Epoll, wk: WakeFD
        do throws(SyscallError) {
            ep = try Epoll()
        } catch {
            throw AdminError("cannot start the admin API's event loop: \(error)")
        }
        do throws(SyscallError) {
            wk = try WakeFD()
            do throws(SyscallError) {
                try ep.add(wk.fd, events: EpollMask.input, data: Self.wakeData)
                for (i, l) in listeners.enumerated() {
                    try ep.add(l.fd, events: EpollMask.input, data: Self.listenerData(i))
                }
            } catch {
                Sys.close(wk.fd)
                throw error
            }
        } catch {
            Sys.close(ep.fd)
            throw AdminError("cannot start the admin API's event loop: \(error)")
        }
        epoll = ep
        wake = wk
        outbox = AdminOutbox(wake: wake)
        self.listeners = listeners
        self.limits = limits
        self.decide = decide
        self.run = run
        readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    }

    deinit {
        readBuffer.deallocate()
    }

    /// Current counters (any thread).
    var snapshot: AdminLoopCounters { counters.withLock { $0 } }

    /// Asks the loop to stop (any thread); `run` then returns.
    func requestStop() {
        stopping.store(true, ordering: .releasing)
        outbox.nudge()
    }

    private static func listenerData(_ i: Int) -> UInt64 { UInt64.max - 1 - UInt64(i) }

    /// Runs until `requestStop`, then closes every socket it owns (listeners included).
    func runLoop() {
        let maxEvents: Int32 = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: Int(maxEvents))
        defer { events.deallocate() }
        while !stopping.load(ordering: .acquiring) {
            let n = epoll.wait(events, max: maxEvents, timeoutMs: 100)
            for i in 0..<n {
                let data = events[i].data.u64
                let mask = events[i].events
                if data == Self.wakeData {
                    wake.drain()
                    deliverResponses()
                } else if !listeners.isEmpty && data >= Self.listenerData(listeners.count - 1) {
                    acceptConnections(Int(UInt64.max - 1 - data))
                } else {
                    let fd = Int32(truncatingIfNeeded: data & 0xffff_ffff)
                    let generation = UInt32(truncatingIfNeeded: data >> 32)
                    guard let c = connection(fd), c.generation == generation else { continue }
                    if mask & (EpollMask.input | EpollMask.readHangup | EpollMask.hangup | EpollMask.error) != 0 {
                        readable(c)
                    }
                    if mask & EpollMask.output != 0, connection(fd) === c, case .writing = c.phase {
                        flush(c)
                    }
                }
            }
            let now = Sys.monotonicNanos()
            if now >= nextSweep {
                nextSweep = now + Self.sweepInterval
                sweep(now)
            }
        }
        shutdownAll()
    }

    private func connection(_ fd: Int32) -> AdminConnection? {
        fd >= 0 && Int(fd) < connections.count ? connections[Int(fd)] : nil
    }

    private func count(_ change: (inout AdminLoopCounters) -> Void) {
        counters.withLock { change(&$0) }
    }

    // MARK: Accepting

    private func acceptConnections(_ index: Int) {
        guard index >= 0 && index < listeners.count else { return }
        let slot = listeners[index]
        for _ in 0..<128 {
            switch Sys.accept(slot.fd) {
            case .accepted(let fd, let peer):
                if !slot.allow.isEmpty && !slot.allow.contains(where: { $0.contains(peer) }) {
                    count { $0.refused += 1 }
                    Sys.close(fd)
                    continue
                }
                if openByRole[slot.role, default: 0] >= limits.maxConnections && !evictOne(role: slot.role) {
                    Sys.close(fd)
                    count { $0.refused += 1 }
                    continue
                }
                open(fd, peer: peer, role: slot.role)
            case .wouldBlock:
                return
            case .exhausted:
                // Out of descriptors: stop accepting for a moment (the sweep resumes it) rather
                // than spin on a listener that stays readable; make room if an idle client holds one.
                _ = evictOne(role: slot.role)
                pauseAccepting()
                return
            case .skipped:
                continue
            }
        }
    }

    private func pauseAccepting() {
        acceptPausedUntil = Sys.monotonicNanos() + Self.sweepInterval
        for i in listeners.indices where listeners[i].registered {
            epoll.remove(listeners[i].fd)
            listeners[i].registered = false
        }
    }

    private func resumeAccepting() {
        for i in listeners.indices where !listeners[i].registered {
            do throws(SyscallError) {
                try epoll.add(listeners[i].fd, events: EpollMask.input, data: Self.listenerData(i))
                listeners[i].registered = true
            } catch {
                continue
            }
        }
    }

    private func open(_ fd: Int32, peer: SocketAddress, role: AdminListenerRole) {
        let local = (try? Sys.localAddress(fd)) ?? peer
        let generation = nextGeneration
        nextGeneration = nextGeneration >= 0xffff_fff0 ? 1 : nextGeneration + 1
        let now = Sys.monotonicNanos()
        let c = AdminConnection(fd: fd, generation: generation, peer: peer, local: local, role: role,
                                now: now, deadline: now &+ limits.requestTimeout)
        do throws(SyscallError) {
            try epoll.add(fd, events: EpollMask.input | EpollMask.output | EpollMask.readHangup | EpollMask.edge,
                          data: UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd)))
        } catch {
            Sys.close(fd)
            count { $0.refused += 1 }
            return
        }
        if Int(fd) >= connections.count {
            connections.append(contentsOf: repeatElement(nil, count: Int(fd) + 1 - connections.count))
        }
        connections[Int(fd)] = c
        openCount += 1
        openByRole[role, default: 0] += 1
        count { $0.open = openCount; $0.accepted += 1 }
        // Edge-triggered: bytes that arrived with the handshake produce no later edge.
        readable(c)
    }

    /// Closes the connection of `role`'s listener that has waited longest without showing the
    /// token (lingering ones first: they are done). False when every one is authenticated or being answered.
    private func evictOne(role: AdminListenerRole) -> Bool {
        var victim: AdminConnection?
        var victimLingering = false
        for case let c? in connections where c.role == role && c.isEvictable {
            let lingering: Bool
            if case .lingering = c.phase { lingering = true } else { lingering = false }
            if let v = victim {
                if victimLingering && !lingering { continue }
                if lingering == victimLingering && c.acceptedAt >= v.acceptedAt { continue }
            }
            victim = c
            victimLingering = lingering
        }
        guard let victim else { return false }
        count { $0.evicted += 1 }
        close(victim)
        return true
    }

    private func close(_ c: AdminConnection) {
        guard connection(c.fd) === c else { return }
        connections[Int(c.fd)] = nil
        Sys.close(c.fd)
        openCount -= 1
        openByRole[c.role, default: 0] -= 1
        count { $0.open = openCount }
    }

    // MARK: Reading

    /// Reads up to `max` bytes into the connection's buffer. False when nothing more can be read
    /// now (would block), or the connection was closed (EOF or error).
    private func receive(_ c: AdminConnection, max: Int) -> Bool {
        switch Sys.read(c.fd, readBuffer.baseAddress!, Swift.min(max, readBuffer.count)) {
        case .done(let n):
            c.buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: readBuffer[0..<n]))
            return true
        case .wouldBlock:
            return false
        case .eof, .failed:
            close(c)
            return false
        }
    }

    private func readable(_ c: AdminConnection) {
        while connection(c.fd) === c {
            switch c.phase {
            case .head:
                let room = limits.parser.maxHeadBytes - c.buffer.count
                guard room > 0, receive(c, max: room) else {
                    if room <= 0 { respond(c, .error(431, HTTPParseError.headTooLarge.reason), headOnly: false) }
                    return
                }
                let status = c.buffer.withUnsafeBytes { RequestParser.parse($0, into: &c.head, limits: limits.parser) }
                switch status {
                case .incomplete:
                    continue
                case .invalid(let error):
                    respond(c, .error(error.status, error.reason), headOnly: false)
                    return
                case .complete:
                    headComplete(c)
                }
            case .body(_, _, let headLength, let length):
                let need = headLength + length - c.buffer.count
                if need <= 0 {
                    bodyComplete(c)
                    continue
                }
                guard receive(c, max: need) else { return }
            case .lingering:
                switch Sys.read(c.fd, readBuffer.baseAddress!, readBuffer.count) {
                case .done(let n):
                    c.discarded += n
                    if c.discarded > limits.lingerBytes { close(c) }
                case .wouldBlock:
                    return
                case .eof, .failed:
                    close(c)
                }
            case .dispatched, .writing:
                return
            }
        }
    }

    /// The head is in: decide before reading any body.
    private func headComplete(_ c: AdminConnection) {
        var request = AdminHTTP.request(from: c.head, bytes: c.buffer)
        let headOnly = request.method == "HEAD"
        var length = 0
        var chunked = false
        switch c.head.framing {
        case .contentLength(let n): length = n > UInt64(Int.max) ? Int.max : Int(n)
        case .chunked: chunked = true
        case .none, .untilClose: break
        }
        let decision = decide(&request, c.role, c.local, chunked || length > 0)
        guard case .proceed(_, _, _, let authenticated, _) = decision else {
            if case .respond(let response) = decision { respond(c, response, headOnly: headOnly) }
            return
        }
        c.authenticated = authenticated
        if chunked {
            respond(c, .error(501, "chunked request bodies are not supported; send Content-Length"), headOnly: headOnly)
            return
        }
        if length > limits.maxBody {
            respond(c, .error(413, "request body larger than \(limits.maxBody) bytes"), headOnly: headOnly)
            return
        }
        if c.head.expectContinue && length > 0 && c.buffer.count < c.head.headLength + length {
            // Best effort: a client that gets no 100 sends the body after its own short wait.
            let interim: StaticString = "HTTP/1.1 100 Continue\r\n\r\n"
            _ = Sys.write(c.fd, UnsafeRawPointer(interim.utf8Start), interim.utf8CodeUnitCount)
        }
        c.phase = .body(request: request, decision: decision, headLength: c.head.headLength, length: length)
    }

    /// The whole request is in: run the handler.
    private func bodyComplete(_ c: AdminConnection) {
        guard case .body(var request, let decision, let headLength, let length) = c.phase,
              case .proceed(let handler, let lane, let inline, _, let parameters) = decision else { return }
        if length > 0 { request.body = Array(c.buffer[headLength..<(headLength + length)]) }
        request.pathParameters = parameters
        c.buffer = []
        c.head = RequestHead()
        let headOnly = request.method == "HEAD"
        if inline {
            respond(c, handler(request), headOnly: headOnly)
            return
        }
        c.phase = .dispatched
        c.deadline = .max
        let outbox = self.outbox
        let fd = c.fd, generation = c.generation
        let job: @Sendable () -> Void = { [request] in
            let response = handler(request)
            outbox.post(fd: fd, generation: generation, bytes: response.serialized(headOnly: headOnly))
        }
        run(lane, job)
    }

    private func deliverResponses() {
        for item in outbox.take() {
            guard let c = connection(item.fd), c.generation == item.generation, case .dispatched = c.phase else { continue }
            write(c, item.bytes)
        }
    }

    // MARK: Writing

    private func respond(_ c: AdminConnection, _ response: AdminResponse, headOnly: Bool) {
        write(c, response.serialized(headOnly: headOnly))
    }

    private func write(_ c: AdminConnection, _ bytes: [UInt8]) {
        c.out = bytes
        c.outOffset = 0
        c.buffer = []
        c.phase = .writing
        c.deadline = Sys.monotonicNanos() &+ limits.writeTimeout
        flush(c)
    }

    private func flush(_ c: AdminConnection) {
        while c.outOffset < c.out.count {
            let result = c.out.withUnsafeBytes { raw in
                Sys.write(c.fd, raw.baseAddress! + c.outOffset, raw.count - c.outOffset)
            }
            switch result {
            case .done(let n): c.outOffset += n
            case .wouldBlock: return
            case .eof, .failed:
                close(c)
                return
            }
        }
        // Sent: half-close and discard what the client still sends (a body that was refused
        // unread), so closing does not reset the connection before the client reads the answer.
        Glibc.shutdown(c.fd, Int32(SHUT_WR))
        c.out = []
        c.phase = .lingering
        c.deadline = Sys.monotonicNanos() &+ limits.lingerTimeout
        readable(c)
    }

    // MARK: Deadlines

    /// Closes connections past their deadline (a 408 first when the request was still arriving),
    /// and resumes accepting after a pause. Runs every `sweepInterval`: a scan of at most
    /// `maxConnections` entries, cheaper than keeping a timer per connection in order.
    private func sweep(_ now: UInt64) {
        if acceptPausedUntil != 0 && now >= acceptPausedUntil {
            acceptPausedUntil = 0
            resumeAccepting()
        }
        for case let c? in connections where c.deadline <= now {
            switch c.phase {
            case .head, .body:
                let bytes = AdminResponse.error(408, "the request did not arrive in time").serialized(headOnly: false)
                _ = bytes.withUnsafeBytes { Sys.write(c.fd, $0.baseAddress!, $0.count) }
            case .dispatched, .writing, .lingering:
                break
            }
            count { $0.timedOut += 1 }
            close(c)
        }
    }

    private func shutdownAll() {
        outbox.close()
        for case let c? in connections { close(c) }
        for l in listeners { Sys.close(l.fd) }
        listeners = []
        Sys.close(wake.fd)
        Sys.close(epoll.fd)
    }
}
