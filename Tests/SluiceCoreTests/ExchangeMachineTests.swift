import Testing
import SluiceCore

// The exchange state machine without sockets: scripted events, exact actions and states.

private func facts(_ method: HTTPMethod = .get, _ version: HTTPVersion = .http11, keepAlive: Bool = true,
                   framing: BodyFraming = .none, expect: Bool = false) -> RequestFacts {
    var f = RequestFacts()
    f.method = method
    f.version = version
    f.keepAlive = keepAlive
    f.framing = framing
    f.expectContinue = expect
    return f
}

/// A connection and its exchange, driven by events.
private struct Script {
    var conn = ConnectionState()
    var x = ExchangeState()
    var limits = ExchangeLimits()

    init(maxRequests: Int = 10_000, maxBody: UInt64 = 1 << 30) {
        limits = ExchangeLimits(maxRequestsPerConnection: maxRequests, maxBodyBytes: maxBody)
    }

    mutating func on(_ event: ExchangeEvent) -> ExchangeAction {
        ExchangeMachine.handle(event, connection: &conn, exchange: &x, limits: limits)
    }

    /// A new exchange for the next head (the driver resets it per request).
    mutating func nextExchange() { x = ExchangeState() }

    /// Drives a bodiless GET through a proxied exchange to completion.
    mutating func proxiedGET(responseKeepAlive: Bool = true) -> (ResponsePlan?, ExchangeAction) {
        nextExchange()
        _ = on(.headParsed(facts()))
        _ = on(.routed(.forward(upgrade: false)))
        guard case .startResponse(let plan) = on(.responseHead(ResponseFacts(status: 200, framing: .contentLength(5),
                                                                             keepAlive: responseKeepAlive))) else {
            return (nil, .none)
        }
        x.responseBody = .done
        return (plan, on(.bodiesComplete))
    }
}

private func generated(_ a: ExchangeAction) -> GeneratedResponse? {
    if case .respond(let r, _) = a { return r }
    return nil
}

@Suite("ExchangeMachine: requests, responses and the one close rule")
struct ExchangeMachineTests {
    @Test("a parsed head asks for routing; a forward plans the upstream framing")
    func headThenForward() {
        var s = Script()
        #expect(s.on(.headParsed(facts())) == .route)
        #expect(s.conn.phase == .awaitingHead)
        #expect(s.on(.routed(.forward(upgrade: false))) == .forward(ForwardPlan(upstreamFraming: .none, sendContinue: false)))
        #expect(s.conn.phase == .exchange)
        #expect(s.x.attempts == 1)

        var p = Script()
        _ = p.on(.headParsed(facts(.post)))
        #expect(p.on(.routed(.forward(upgrade: false))) == .forward(ForwardPlan(upstreamFraming: .contentLength(0), sendContinue: false)))

        var q = Script()
        _ = q.on(.headParsed(facts(.put, framing: .chunked, expect: true)))
        #expect(q.on(.routed(.forward(upgrade: false))) == .forward(ForwardPlan(upstreamFraming: .chunked, sendContinue: true)))
        if case .chunked = q.x.requestBody {} else { Issue.record("chunked body state expected") }

        var r = Script()
        _ = r.on(.headParsed(facts(.post, framing: .contentLength(10), expect: true)))
        #expect(r.on(.routed(.forward(upgrade: false))) == .forward(ForwardPlan(upstreamFraming: .contentLength(10), sendContinue: true)))
        if case .length(let n) = r.x.requestBody { #expect(n == 10) } else { Issue.record("length state expected") }
    }

    @Test("a body over max_body_bytes is refused with 413 and the connection closes")
    func bodyTooLarge() {
        var s = Script(maxBody: 100)
        let a = s.on(.headParsed(facts(.post, framing: .contentLength(101))))
        #expect(generated(a) == GeneratedResponse(status: 413, body: .bodyTooLarge(100), closing: true,
                                                  http10KeepAlive: false, headOnly: false))
        #expect(s.conn.phase == .closing)
        #expect(s.conn.unreadInput)
    }

    @Test("an invalid head gets its status and closes", arguments: [HTTPParseError.badRequestLine, .headTooLarge, .uriTooLong,
                                                                   .unsupportedVersion])
    func invalidHead(error: HTTPParseError) {
        var s = Script()
        let a = s.on(.headInvalid(error))
        #expect(generated(a)?.status == error.status)
        #expect(generated(a)?.closing == true)
        #expect(s.conn.phase == .closing)
        #expect(s.conn.requestsServed == 1)
    }

    @Test("404 and configured responses keep the connection unless the request had a body")
    func generatedKeepAlive() {
        var s = Script()
        _ = s.on(.headParsed(facts()))
        let a = s.on(.routed(.notFound))
        #expect(generated(a) == GeneratedResponse(status: 404, body: .text(StaticStringBox("no route matches this request\n")),
                                                  closing: false, http10KeepAlive: false, headOnly: false))
        #expect(s.conn.phase == .awaitingHead)
        #expect(s.conn.requestsServed == 1)

        s.nextExchange()
        _ = s.on(.headParsed(facts(.head)))
        let b = s.on(.routed(.respond(configured: 3, status: 204)))
        #expect(generated(b) == GeneratedResponse(status: 204, body: .configured(3), closing: false,
                                                  http10KeepAlive: false, headOnly: true))

        var withBody = Script()
        _ = withBody.on(.headParsed(facts(.post, framing: .contentLength(5))))
        #expect(generated(withBody.on(.routed(.notFound)))?.closing == true)
        #expect(withBody.conn.phase == .closing)
        #expect(withBody.conn.unreadInput)

        var http10 = Script()
        _ = http10.on(.headParsed(facts(.get, .http10, keepAlive: true)))
        #expect(generated(http10.on(.routed(.notFound)))?.http10KeepAlive == true)
        var http10Close = Script()
        _ = http10Close.on(.headParsed(facts(.get, .http10, keepAlive: false)))
        let c = generated(http10Close.on(.routed(.notFound)))
        #expect(c?.closing == true && c?.http10KeepAlive == false)
    }

    @Test("the last request a connection may serve says Connection: close, generated or proxied")
    func lastAllowedRequest() {
        // Generated: 404 and respond: on request 3 of 3.
        for outcome in [RouteOutcome.notFound, .respond(configured: 0, status: 200)] {
            var s = Script(maxRequests: 3)
            for i in 1...3 {
                s.nextExchange()
                _ = s.on(.headParsed(facts()))
                let r = generated(s.on(.routed(outcome)))
                #expect(r?.closing == (i == 3), "request \(i) of 3, \(outcome)")
            }
            #expect(s.conn.phase == .closing)
        }
        // Proxied.
        var p = Script(maxRequests: 2)
        let (first, a1) = p.proxiedGET()
        #expect(first?.closing == false)
        #expect(a1 == .complete(upstreamReusable: true))
        #expect(p.conn.phase == .awaitingHead)
        let (second, a2) = p.proxiedGET()
        #expect(second?.closing == true)
        #expect(a2 == .complete(upstreamReusable: true))
        #expect(p.conn.phase == .closing)
    }

    @Test("pipelined requests: each starts from a fresh exchange and the phase returns to awaiting a head")
    func pipelining() {
        var s = Script()
        for _ in 0..<5 {
            let (plan, action) = s.proxiedGET()
            #expect(plan == ResponsePlan(framing: .contentLength(5), closing: false, http10KeepAlive: false,
                                         keepContentLength: false))
            #expect(action == .complete(upstreamReusable: true))
            #expect(s.conn.phase == .awaitingHead)
        }
        #expect(s.conn.requestsServed == 5)
        // A head reported during an exchange is ignored (it waits until the exchange ends).
        s.nextExchange()
        _ = s.on(.headParsed(facts()))
        _ = s.on(.routed(.forward(upgrade: false)))
        #expect(s.on(.headParsed(facts(.post))) == .none)
        #expect(s.x.request.method == .get)
    }

    @Test("response framing for HTTP/1.0 and 1.1 clients, HEAD and 304")
    func responsePlans() {
        func plan(_ request: RequestFacts, _ response: ResponseFacts) -> ResponsePlan? {
            var s = Script()
            _ = s.on(.headParsed(request))
            _ = s.on(.routed(.forward(upgrade: false)))
            if case .startResponse(let p) = s.on(.responseHead(response)) { return p }
            return nil
        }
        #expect(plan(facts(), ResponseFacts(status: 200, framing: .untilClose, keepAlive: false))
                == ResponsePlan(framing: .chunked, closing: false, http10KeepAlive: false, keepContentLength: false))
        #expect(plan(facts(.get, .http10), ResponseFacts(status: 200, framing: .chunked, keepAlive: true))
                == ResponsePlan(framing: .untilClose, closing: true, http10KeepAlive: false, keepContentLength: false))
        #expect(plan(facts(.get, .http10), ResponseFacts(status: 200, framing: .contentLength(3), keepAlive: true))
                == ResponsePlan(framing: .contentLength(3), closing: false, http10KeepAlive: true, keepContentLength: false))
        #expect(plan(facts(.head), ResponseFacts(status: 200, framing: .none, keepAlive: true))?.keepContentLength == true)
        #expect(plan(facts(), ResponseFacts(status: 304, framing: .none, keepAlive: true))?.keepContentLength == true)
        #expect(plan(facts(keepAlive: false), ResponseFacts(status: 200, framing: .none, keepAlive: true))?.closing == true)
        // The response body state follows the upstream framing.
        var s = Script()
        _ = s.on(.headParsed(facts()))
        _ = s.on(.routed(.forward(upgrade: false)))
        _ = s.on(.responseHead(ResponseFacts(status: 200, framing: .contentLength(0), keepAlive: true)))
        #expect(s.x.responseBody.isDone)
        #expect(s.x.responseStarted)
    }

    @Test("an upstream that answers with Connection: close is not reused")
    func upstreamNotReusable() {
        var s = Script()
        #expect(s.proxiedGET(responseKeepAlive: false).1 == .complete(upstreamReusable: false))
        var drained = Script()
        _ = drained.on(.headParsed(facts()))
        _ = drained.on(.routed(.forward(upgrade: false)))
        #expect(drained.on(.drain(idle: false)) == .none)
        guard case .startResponse(let plan) = drained.on(.responseHead(ResponseFacts(status: 200, framing: .none, keepAlive: true))) else {
            Issue.record("startResponse expected")
            return
        }
        #expect(plan.closing)
        drained.x.responseBody = .done
        #expect(drained.on(.bodiesComplete) == .complete(upstreamReusable: false))
        #expect(drained.conn.phase == .closing)
    }

    @Test("a stale pooled connection is retried once, and only for a request without a body sent")
    func staleRetry() {
        var s = Script()
        _ = s.on(.headParsed(facts()))
        _ = s.on(.routed(.forward(upgrade: false)))
        #expect(s.on(.upstreamLost(reused: true, connected: true)) == .retry)
        #expect(s.x.attempts == 2)
        let a = s.on(.upstreamLost(reused: true, connected: true))
        #expect(generated(a)?.status == 502)
        if case .respond(_, let reason) = a { #expect(reason == .reset) }

        var fresh = Script()
        _ = fresh.on(.headParsed(facts()))
        _ = fresh.on(.routed(.forward(upgrade: false)))
        let b = fresh.on(.upstreamLost(reused: false, connected: false))
        if case .respond(let r, let reason) = b {
            #expect(r.status == 502)
            #expect(reason == .connectRefused)
        } else { Issue.record("respond expected") }

        // A POST is never sent twice, even without a body; nor an empty chunked body (its last
        // chunk was sent with the first attempt).
        var post = Script()
        _ = post.on(.headParsed(facts(.post)))
        _ = post.on(.routed(.forward(upgrade: false)))
        #expect(generated(post.on(.upstreamLost(reused: true, connected: true)))?.status == 502)
        var emptyChunked = Script()
        _ = emptyChunked.on(.headParsed(facts(.put, framing: .chunked)))
        _ = emptyChunked.on(.routed(.forward(upgrade: false)))
        emptyChunked.x.requestBody = .done
        #expect(generated(emptyChunked.on(.upstreamLost(reused: true, connected: true)))?.status == 502)

        var withBody = Script()
        _ = withBody.on(.headParsed(facts(.post, framing: .contentLength(4))))
        _ = withBody.on(.routed(.forward(upgrade: false)))
        withBody.x.requestBody = .done
        withBody.x.requestBodyBytes = 4
        #expect(generated(withBody.on(.upstreamLost(reused: true, connected: true)))?.status == 502)
    }

    @Test("a failed connect goes to another endpoint while one is left and no body byte was taken")
    func connectFailures() {
        var s = Script()
        _ = s.on(.headParsed(facts(.post, framing: .contentLength(10))))
        _ = s.on(.routed(.forward(upgrade: false)))
        #expect(s.on(.connectFailed(.connectRefused, another: true)) == .retryElsewhere)
        #expect(s.on(.connectFailed(.connectTimeout, another: true)) == .retryElsewhere)
        #expect(s.x.attempts == 3)
        let last = s.on(.connectFailed(.connectRefused, another: false))
        #expect(generated(last)?.status == 502)
        var sent = Script()
        _ = sent.on(.headParsed(facts(.post, framing: .contentLength(10))))
        _ = sent.on(.routed(.forward(upgrade: false)))
        sent.x.requestBodyBytes = 4
        #expect(generated(sent.on(.connectFailed(.connectTimeout, another: true)))?.status == 504)
    }

    @Test("upstream failures: 502/504 before the response, cut short after it", arguments: UpstreamErrorReason.allCases)
    func upstreamFailures(reason: UpstreamErrorReason) {
        var s = Script()
        _ = s.on(.headParsed(facts()))
        _ = s.on(.routed(.forward(upgrade: false)))
        let a = s.on(.upstreamFailed(reason))
        #expect(generated(a)?.status == reason.status)
        #expect(generated(a)?.body == .upstream(reason))
        #expect(generated(a)?.closing == false)
        #expect(s.conn.phase == .awaitingHead)

        var started = Script()
        _ = started.on(.headParsed(facts()))
        _ = started.on(.routed(.forward(upgrade: false)))
        _ = started.on(.responseHead(ResponseFacts(status: 200, framing: .contentLength(10), keepAlive: true)))
        #expect(started.on(.upstreamFailed(reason)) == .cut(reason))
        #expect(started.conn.phase == .closing)
    }

    @Test("request body errors: a response before the reply, a close after it")
    func requestBodyErrors() {
        var s = Script()
        _ = s.on(.headParsed(facts(.post, framing: .chunked)))
        _ = s.on(.routed(.forward(upgrade: false)))
        let a = s.on(.requestBodyInvalid(.badChunkSize))
        #expect(generated(a)?.status == 400)
        #expect(generated(a)?.closing == true)

        var big = Script()
        _ = big.on(.headParsed(facts(.post, framing: .chunked)))
        _ = big.on(.routed(.forward(upgrade: false)))
        #expect(generated(big.on(.requestBodyTooLarge))?.status == 413)

        var late = Script()
        _ = late.on(.headParsed(facts(.post, framing: .chunked)))
        _ = late.on(.routed(.forward(upgrade: false)))
        _ = late.on(.responseHead(ResponseFacts(status: 200, framing: .chunked, keepAlive: true)))
        #expect(late.on(.requestBodyInvalid(.badChunkSize)) == .close)
        var lateBig = Script()
        _ = lateBig.on(.headParsed(facts(.post, framing: .chunked)))
        _ = lateBig.on(.routed(.forward(upgrade: false)))
        _ = lateBig.on(.responseHead(ResponseFacts(status: 200, framing: .chunked, keepAlive: true)))
        #expect(lateBig.on(.requestBodyTooLarge) == .close)
    }

    @Test("an early response: the body still coming makes the connection close, lingering first")
    func responseBeforeBody() {
        var s = Script()
        _ = s.on(.headParsed(facts(.post, framing: .contentLength(1000))))
        _ = s.on(.routed(.forward(upgrade: false)))
        guard case .startResponse(let plan) = s.on(.responseHead(ResponseFacts(status: 413, framing: .none, keepAlive: true))) else {
            Issue.record("startResponse expected")
            return
        }
        #expect(plan.closing)  // the rest of the body is unread
        #expect(s.on(.responseCompleteFirst) == .cut(nil))
        #expect(s.conn.phase == .closing)
        #expect(s.conn.unreadInput)
        #expect(s.conn.requestsServed == 1)
    }

    @Test("client timeouts: idle closes quietly, a partial head or a stalled body gets 408, a stalled reader is closed")
    func clientTimeouts() {
        var idle = Script()
        #expect(idle.on(.clientTimedOut(inputBuffered: false, outputQueued: false)) == .close)

        var partial = Script()
        let a = partial.on(.clientTimedOut(inputBuffered: true, outputQueued: false))
        #expect(generated(a)?.status == 408)
        #expect(generated(a)?.closing == true)

        var body = Script()
        _ = body.on(.headParsed(facts(.post, framing: .contentLength(10))))
        _ = body.on(.routed(.forward(upgrade: false)))
        let b = body.on(.clientTimedOut(inputBuffered: false, outputQueued: false))
        #expect(generated(b)?.status == 408)
        #expect(generated(b)?.body == .text(StaticStringBox("request body not received in time\n")))

        var reader = Script()
        _ = reader.on(.headParsed(facts()))
        _ = reader.on(.routed(.forward(upgrade: false)))
        _ = reader.on(.responseHead(ResponseFacts(status: 200, framing: .contentLength(10), keepAlive: true)))
        #expect(reader.on(.clientTimedOut(inputBuffered: false, outputQueued: true)) == .close)

        var closing = Script()
        _ = closing.on(.headInvalid(.badRequestLine))
        #expect(closing.on(.clientTimedOut(inputBuffered: false, outputQueued: true)) == .close)
        ExchangeMachine.startLingering(&closing.conn)
        #expect(closing.conn.phase == .lingering)
        #expect(closing.on(.clientTimedOut(inputBuffered: false, outputQueued: false)) == .close)
    }

    @Test("drain: an idle connection closes now, a busy one after its response")
    func drain() {
        var idle = Script()
        #expect(idle.on(.drain(idle: true)) == .close)
        var busy = Script()
        #expect(busy.on(.drain(idle: false)) == .none)
        #expect(busy.conn.draining)
        _ = busy.on(.headParsed(facts()))
        #expect(generated(busy.on(.routed(.notFound)))?.closing == true)
        #expect(busy.conn.phase == .closing)
    }

    @Test("a client that goes away closes the connection in every phase")
    func clientGone() {
        var a = Script()
        #expect(a.on(.clientGone) == .close)
        var b = Script()
        _ = b.on(.headParsed(facts()))
        _ = b.on(.routed(.forward(upgrade: false)))
        #expect(b.on(.clientGone) == .close)
        var c = Script()
        _ = c.on(.headInvalid(.badRequestLine))
        #expect(c.on(.clientGone) == .close)
    }

    @Test("events that cannot apply in a phase change nothing")
    func illegalPairs() {
        var s = Script()
        let before = s.conn
        for e in [ExchangeEvent.responseHead(ResponseFacts(status: 200, framing: .none, keepAlive: true)),
                  .requestBodyInvalid(.badChunkSize), .requestBodyTooLarge, .upstreamLost(reused: true, connected: true),
                  .upstreamFailed(.reset), .bodiesComplete, .responseCompleteFirst] {
            #expect(s.on(e) == .none)
            #expect(s.conn == before)
        }
        var closed = Script()
        ExchangeMachine.closed(&closed.conn)
        #expect(closed.on(.headParsed(facts())) == .none)
        #expect(closed.on(.clientGone) == .none)
        #expect(closed.conn.phase == .closed)
    }

    @Test("an allowed upgrade: 101 opens a tunnel; its end flushes then closes; other answers are responses")
    func tunnels() {
        var s = Script()
        _ = s.on(.headParsed(facts()))
        #expect(s.on(.routed(.forward(upgrade: true))) == .forward(ForwardPlan(upstreamFraming: .none, sendContinue: false, upgrade: true)))
        #expect(s.on(.switchingProtocols) == .startTunnel)
        #expect(s.conn.phase == .tunnel)
        #expect(s.on(.headParsed(facts())) == .none)
        #expect(s.on(.drain(idle: false)) == .none)
        #expect(s.conn.phase == .tunnel)
        #expect(s.on(.tunnelEnded) == .cut(nil))
        #expect(s.conn.phase == .closing)

        var gone = Script()
        _ = gone.on(.headParsed(facts()))
        _ = gone.on(.routed(.forward(upgrade: true)))
        _ = gone.on(.switchingProtocols)
        #expect(gone.on(.clientTimedOut(inputBuffered: false, outputQueued: false)) == .close)

        // A 101 nobody asked for is a bad response; an upgrade answered 400 is a normal response.
        var unasked = Script()
        _ = unasked.on(.headParsed(facts()))
        _ = unasked.on(.routed(.forward(upgrade: false)))
        #expect(generated(unasked.on(.switchingProtocols))?.status == 502)
        var refused = Script()
        _ = refused.on(.headParsed(facts()))
        _ = refused.on(.routed(.forward(upgrade: true)))
        if case .startResponse = refused.on(.responseHead(ResponseFacts(status: 400, framing: .contentLength(3), keepAlive: true))) {} else {
            Issue.record("a refused upgrade is relayed as a response")
        }
        // HTTP/1.0 cannot upgrade.
        var old = Script()
        _ = old.on(.headParsed(facts(.get, .http10)))
        #expect(old.on(.routed(.forward(upgrade: true))) == .forward(ForwardPlan(upstreamFraming: .none, sendContinue: false, upgrade: false)))
    }

    @Test("1xx: relayed to HTTP/1.1 clients, dropped for HTTP/1.0, 100 dropped, 101 unasked fails")
    func interimResponses() {
        var s11 = Script(), s10 = Script()
        _ = s11.on(.headParsed(facts()))
        _ = s10.on(.headParsed(facts(.get, .http10)))
        let x11 = s11.x, x10 = s10.x
        #expect(ExchangeMachine.interim(103, exchange: x11) == .relay)
        #expect(ExchangeMachine.interim(102, exchange: x11) == .relay)
        #expect(ExchangeMachine.interim(103, exchange: x10) == .drop)
        #expect(ExchangeMachine.interim(100, exchange: x11) == .drop)
        #expect(ExchangeMachine.interim(101, exchange: x11) == .fail)
    }

    @Test("client deadlines follow the phase and what is buffered")
    func clientDeadlines() {
        var t = Timeouts()
        t.clientHeader = 10
        t.clientIdle = 100
        t.clientSend = 1000
        func facts(_ phase: ConnectionPhase, has: Bool = false, input: Bool = false, blocked: Bool = false,
                   bodyDone: Bool = true, served: Int = 0) -> ClientTimerFacts {
            ClientTimerFacts(phase: phase, hasDeadline: has, inputBuffered: input, outputBlocked: blocked,
                             requestBodyDone: bodyDone, requestsServed: served, phaseStart: 5, lastReadProgress: 7,
                             lastWriteProgress: 9)
        }
        #expect(ExchangeMachine.clientDeadline(facts(.awaitingHead), t) == .at(15))
        #expect(ExchangeMachine.clientDeadline(facts(.awaitingHead, served: 1), t) == .at(105))
        #expect(ExchangeMachine.clientDeadline(facts(.awaitingHead, input: true, served: 1), t) == .at(15))
        #expect(ExchangeMachine.clientDeadline(facts(.awaitingHead, has: true), t) == .keep)
        #expect(ExchangeMachine.clientDeadline(facts(.exchange, blocked: true), t) == .at(1009))
        #expect(ExchangeMachine.clientDeadline(facts(.exchange), t) == .clear)
        #expect(ExchangeMachine.clientDeadline(facts(.exchange, bodyDone: false), t) == .at(107))
        #expect(ExchangeMachine.clientDeadline(facts(.exchange, input: true, bodyDone: false), t) == .clear)
        #expect(ExchangeMachine.clientDeadline(facts(.closing), t) == .at(1009))
        #expect(ExchangeMachine.clientDeadline(facts(.lingering), t) == .keep)
        t.tunnelIdle = 50
        #expect(ExchangeMachine.clientDeadline(facts(.tunnel), t) == .at(59))
        var retired = facts(.tunnel)
        retired.retireAt = 20
        #expect(ExchangeMachine.clientDeadline(retired, t) == .at(20))
    }

    @Test("generated responses share one serializer: status, type, Server, framing, close")
    func generatedBytes() {
        func text(_ r: GeneratedResponse, _ responses: [DirectResponse] = []) -> String {
            var out: [UInt8] = []
            r.append(to: &out, responses: responses)
            return String(decoding: out, as: UTF8.self)
        }
        let notFound = GeneratedResponse(status: 404, body: .text(StaticStringBox("no route\n")), closing: true,
                                         http10KeepAlive: false, headOnly: false)
        #expect(text(notFound) == "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nServer: sluice\r\n"
                + "Content-Length: 9\r\nConnection: close\r\n\r\nno route\n")
        let configured = [DirectResponse(status: 200, contentType: "application/json", body: Array("{}".utf8)),
                          DirectResponse(status: 204, body: [])]
        #expect(text(GeneratedResponse(status: 200, body: .configured(0), closing: false, http10KeepAlive: false, headOnly: false),
                     configured)
                == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nServer: sluice\r\nContent-Length: 2\r\n\r\n{}")
        #expect(text(GeneratedResponse(status: 200, body: .configured(0), closing: false, http10KeepAlive: true, headOnly: true),
                     configured)
                == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nServer: sluice\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n")
        #expect(text(GeneratedResponse(status: 204, body: .configured(1), closing: true, http10KeepAlive: false, headOnly: false),
                     configured)
                == "HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\nServer: sluice\r\nConnection: close\r\n\r\n")
        #expect(text(GeneratedResponse(status: 413, body: .bodyTooLarge(10), closing: true, http10KeepAlive: false, headOnly: false))
                .hasSuffix("Content-Length: 34\r\nConnection: close\r\n\r\nrequest body larger than 10 bytes\n"))
    }
}
