// The exchange state machine: every decision about a client connection's requests and
// responses, with no socket, clock or buffer in sight. The IO driver (SluiceProxy's
// `Worker+Exchange.swift` and friends) reads and writes bytes, reports what happened as an
// `ExchangeEvent`, and carries out the `ExchangeAction` it gets back.
//
// State lives in two values: `ConnectionState` for as long as the connection is open, and
// `ExchangeState` for one request (pooled with the exchange, so an idle connection holds none).
// `handle` switches over (phase, event) exhaustively; pairs that cannot happen are listed and
// answered with `.none` (or the safe `.close`); only the closing, lingering and closed phases,
// where every HTTP event is moot, answer the rest of their events with one wildcard each.

/// The facts of a parsed request head that the exchange decides on.
public struct RequestFacts: Sendable, Equatable {
    public var method: HTTPMethod = .get
    public var version: HTTPVersion = .http11
    /// The client allows the connection to stay open after the response.
    public var keepAlive = true
    public var framing: BodyFraming = .none
    /// `Expect: 100-continue` on an HTTP/1.1 request.
    public var expectContinue = false

    /// No facts yet.
    public init() {}

    /// The facts of `head`.
    @inlinable
    public init(_ head: RequestHead) {
        method = head.method
        version = head.version
        keepAlive = head.keepAlive
        framing = head.framing
        expectContinue = head.expectContinue
    }

    /// The request has no body (no framing, or Content-Length 0).
    @inlinable
    public var bodyless: Bool {
        switch framing {
        case .none, .untilClose: return true
        case .contentLength(let n): return n == 0
        case .chunked: return false
        }
    }
}

/// The facts of an upstream's final response head that the exchange decides on.
public struct ResponseFacts: Sendable, Equatable {
    public var status: Int
    public var framing: BodyFraming
    /// The upstream allows its connection to be reused.
    public var keepAlive: Bool
    /// The body is gzip-compressed on its way (`CompressionPolicy.compresses`): its length changes.
    public var compress: Bool

    /// Creates the facts.
    @inlinable
    public init(status: Int, framing: BodyFraming, keepAlive: Bool, compress: Bool = false) {
        self.status = status
        self.framing = framing
        self.keepAlive = keepAlive
        self.compress = compress
    }
}

/// The limits the exchange enforces.
public struct ExchangeLimits: Sendable, Equatable {
    /// Requests one connection may carry (0: no limit).
    public var maxRequestsPerConnection: Int
    /// Largest request body (0: no limit).
    public var maxBodyBytes: UInt64
    public var parser: ParserLimits

    /// Creates limits.
    public init(maxRequestsPerConnection: Int = 10_000, maxBodyBytes: UInt64 = 1 << 30, parser: ParserLimits = ParserLimits()) {
        self.maxRequestsPerConnection = maxRequestsPerConnection
        self.maxBodyBytes = maxBodyBytes
        self.parser = parser
    }

    /// The exchange's part of the proxy limits.
    @inlinable
    public init(_ limits: Limits) {
        self.init(maxRequestsPerConnection: limits.maxRequestsPerConnection, maxBodyBytes: limits.maxBodyBytes,
                  parser: limits.parser)
    }
}

/// What a client connection carries from one request to the next.
public struct ConnectionState: Sendable, Equatable {
    public internal(set) var phase: ConnectionPhase = .awaitingHead
    /// Responses completed on this connection.
    public internal(set) var requestsServed = 0
    /// The connection closes after the response in progress.
    public internal(set) var closeAfterResponse = false
    /// The worker is draining: no new request is read after the current one.
    public internal(set) var draining = false
    /// The last request was answered without reading all of its input: linger before closing.
    public internal(set) var unreadInput = false

    /// A new connection, waiting for its first request.
    public init() {}
}

/// One request's state: its facts, how each body is framed and how far it got.
public struct ExchangeState: Sendable {
    public internal(set) var request = RequestFacts()
    /// Request body still to come from the client (advanced by the driver as bytes move).
    public var requestBody: RequestBodyState = .done
    /// Request body bytes moved so far.
    public var requestBodyBytes: UInt64 = 0
    /// Response body still to come from the upstream (advanced by the driver as bytes move).
    public var responseBody: ResponseBodyState = .awaitingHead
    /// Framing of the body sent to the client.
    public internal(set) var responseOutFraming: BodyFraming = .none
    /// The response head was queued for the client: failures can no longer become a 502.
    public internal(set) var responseStarted = false
    /// The upstream allows reuse of its connection (from the response head).
    public internal(set) var upstreamKeepAlive = false
    /// Upstream connections tried for this request.
    public internal(set) var attempts = 0
    /// The request asks for a protocol switch its route allows (Upgrade and Connection forwarded).
    public internal(set) var upgrade = false
    /// The request went to the baseline cohort after its cohort failed (`fallback_to_baseline`).
    public internal(set) var fellBack = false

    /// No request yet.
    public init() {}
}

/// How the upstream request is framed and whether Sluice answers `100 Continue` itself.
public struct ForwardPlan: Sendable, Equatable {
    /// Framing of the body sent upstream (Content-Length 0 for an empty POST/PUT/PATCH).
    public var upstreamFraming: BodyFraming
    /// Queue `HTTP/1.1 100 Continue` for the client now (Expect is not forwarded, as nginx does).
    public var sendContinue: Bool
    /// Forward the client's Upgrade field with `Connection: upgrade` (a tunnel may follow).
    public var upgrade: Bool

    /// Creates a plan.
    public init(upstreamFraming: BodyFraming, sendContinue: Bool, upgrade: Bool = false) {
        self.upstreamFraming = upstreamFraming
        self.sendContinue = sendContinue
        self.upgrade = upgrade
    }
}

/// How the client response is written.
public struct ResponsePlan: Sendable, Equatable {
    /// Framing of the body sent to the client.
    public var framing: BodyFraming
    /// `Connection: close` (the connection closes after this response).
    public var closing: Bool
    /// `Connection: keep-alive` for an HTTP/1.0 client.
    public var http10KeepAlive: Bool
    /// Keep the upstream's Content-Length (HEAD replies and 304: it describes the representation).
    public var keepContentLength: Bool

    /// Creates a plan.
    public init(framing: BodyFraming, closing: Bool, http10KeepAlive: Bool, keepContentLength: Bool) {
        self.framing = framing
        self.closing = closing
        self.http10KeepAlive = http10KeepAlive
        self.keepContentLength = keepContentLength
    }
}

/// A response Sluice makes up itself, and why.
public struct GeneratedResponse: Sendable, Equatable {
    /// What the body says.
    public enum Body: Sendable, Equatable {
        /// A fixed text.
        case text(StaticStringBox)
        /// The parse error's reason.
        case parseError(HTTPParseError)
        /// "request body larger than N bytes".
        case bodyTooLarge(UInt64)
        /// The upstream failure's reason.
        case upstream(UpstreamErrorReason)
        /// The routing table's configured response at this index (`respond:`).
        case configured(Int32)
        /// A 308 to the request's https:// URL (`redirect_https`; the driver gives the Location).
        case redirectHTTPS
    }

    public var status: Int
    public var body: Body
    /// `Connection: close`, and the connection closes once it is flushed.
    public var closing: Bool
    /// `Connection: keep-alive` for an HTTP/1.0 client.
    public var http10KeepAlive: Bool
    /// HEAD request: no body bytes.
    public var headOnly: Bool

    /// Creates a response.
    public init(status: Int, body: Body, closing: Bool, http10KeepAlive: Bool, headOnly: Bool) {
        self.status = status
        self.body = body
        self.closing = closing
        self.http10KeepAlive = http10KeepAlive
        self.headOnly = headOnly
    }
}

/// A `StaticString` that compares by its text (for tests of generated responses).
public struct StaticStringBox: Sendable, Equatable {
    public let value: StaticString
    /// Wraps `value`.
    public init(_ value: StaticString) { self.value = value }
    public static func == (a: StaticStringBox, b: StaticStringBox) -> Bool { a.value.description == b.value.description }
}

/// What routing decided for a parsed request (reported after `.route`).
public enum RouteOutcome: Sendable, Equatable {
    /// No route matched: 404.
    case notFound
    /// Answer with the table's configured response at this index.
    case respond(configured: Int32, status: Int)
    /// Send it upstream; `upgrade`: with its protocol-switch request (the route allows it).
    case forward(upgrade: Bool)
    /// The listener redirects plain HTTP to https (`redirect_https`): 308.
    case redirectHTTPS
}

/// Something that happened to a client connection or its exchange.
public enum ExchangeEvent: Sendable, Equatable {
    /// A request head was parsed.
    case headParsed(RequestFacts)
    /// The request head is invalid (or too large).
    case headInvalid(HTTPParseError)
    /// Routing decided (after `.route`).
    case routed(RouteOutcome)
    /// The upstream's final response head arrived (interim 1xx are not reported).
    case responseHead(ResponseFacts)
    /// The upstream answered an upgrade request with 101 Switching Protocols.
    case switchingProtocols
    /// A tunnel ended: either side closed or failed, or it was retired by a reload.
    case tunnelEnded
    /// The request body is malformed.
    case requestBodyInvalid(HTTPParseError)
    /// The request body grew past `maxBodyBytes`.
    case requestBodyTooLarge
    /// The upstream connection died before any response byte; `reused`: it came from the pool.
    case upstreamLost(reused: Bool, connected: Bool)
    /// The upstream failed (connect, timeout, reset, invalid response).
    case upstreamFailed(UpstreamErrorReason)
    /// The connection to the endpoint failed before any byte was sent (refused, unreachable,
    /// connect timeout); `another`: the group has an endpoint not tried yet for this request.
    case connectFailed(UpstreamErrorReason, another: Bool)
    /// An attempt failed in a way a retry may cure (`RetryPolicy`); the driver gathered `options`.
    case retryable(RetryCause, RetryOptions)
    /// Both bodies are complete.
    case bodiesComplete
    /// The response is complete but the client is still sending its body.
    case responseCompleteFirst
    /// The client closed, reset, or a write to it failed.
    case clientGone
    /// The client's deadline passed. `inputBuffered`: a head is partly received;
    /// `outputQueued`: response bytes wait for the client.
    case clientTimedOut(inputBuffered: Bool, outputQueued: Bool)
    /// The worker drains. `idle`: nothing is buffered either way.
    case drain(idle: Bool)
}

/// What the driver must do next.
public enum ExchangeAction: Sendable, Equatable {
    /// Nothing (or only what the driver does anyway: read, relay, flush).
    case none
    /// Decide the route (`RoutingTable.decide`) and report `.routed`.
    case route
    /// Queue this response; the request is finished and the phase has moved on.
    case respond(GeneratedResponse, upstreamError: UpstreamErrorReason?)
    /// Serialize the upstream request and attach an upstream connection.
    case forward(ForwardPlan)
    /// Write the client response head as planned and relay the body.
    case startResponse(ResponsePlan)
    /// Relay the 101 head, record the handshake, and relay bytes both ways from now on.
    case startTunnel
    /// Drop the upstream connection and try a fresh one to the same endpoint.
    case retry
    /// Drop the upstream connection and try another endpoint of the same group.
    case retryElsewhere
    /// Drop the upstream connection and send the request to the route's baseline cohort.
    case fallback
    /// Drop the upstream connection; the client connection closes once what is queued is flushed.
    case cut(UpstreamErrorReason?)
    /// Drop the upstream connection and close the client connection now.
    case close
    /// The exchange is over; the upstream connection may be pooled if `upstreamReusable` and the
    /// socket allows it. The request is finished and the phase has moved on.
    case complete(upstreamReusable: Bool)
}

/// The exchange's transitions (see the file comment).
public enum ExchangeMachine {
    /// Applies `event` to the connection and its exchange; returns what the driver must do.
    public static func handle(_ event: ExchangeEvent, connection c: inout ConnectionState, exchange x: inout ExchangeState,
                              limits: ExchangeLimits) -> ExchangeAction {
        switch (c.phase, event) {
        // MARK: awaiting a head
        case (.awaitingHead, .headParsed(let facts)):
            x.request = facts
            x.requestBody = requestBodyState(facts, limits)
            x.requestBodyBytes = 0
            x.responseBody = .awaitingHead
            x.responseStarted = false
            x.attempts = 0
            x.fellBack = false
            if case .contentLength(let n) = facts.framing, limits.maxBodyBytes > 0, n > limits.maxBodyBytes {
                return respond(&c, &x, status: 413, .bodyTooLarge(limits.maxBodyBytes), forceClose: true, limits)
            }
            return .route
        case (.awaitingHead, .headInvalid(let error)):
            x.request = RequestFacts()
            x.requestBody = .done
            return respond(&c, &x, status: error.status, .parseError(error), forceClose: true, limits)
        case (.awaitingHead, .routed(let outcome)):
            switch outcome {
            case .notFound:
                return respond(&c, &x, status: 404, .text(StaticStringBox("no route matches this request\n")),
                               forceClose: false, limits)
            case .respond(let index, let status):
                return respond(&c, &x, status: status, .configured(index), forceClose: false, limits)
            case .redirectHTTPS:
                return respond(&c, &x, status: 308, .redirectHTTPS, forceClose: false, limits)
            case .forward(let upgrade):
                c.phase = .exchange
                x.attempts = 1
                x.upgrade = upgrade && x.request.version == .http11
                return .forward(ForwardPlan(upstreamFraming: upstreamFraming(x.request),
                                            sendContinue: x.request.expectContinue && !x.request.bodyless,
                                            upgrade: x.upgrade))
            }
        case (.awaitingHead, .clientTimedOut(let inputBuffered, _)):
            if !inputBuffered { return closeNow(&c) }  // an idle keep-alive connection closes quietly, as nginx does
            x.request = RequestFacts()
            x.requestBody = .done
            return respond(&c, &x, status: 408, .text(StaticStringBox("request header not received in time\n")),
                           forceClose: true, limits)
        case (.awaitingHead, .clientGone):
            return closeNow(&c)
        case (.awaitingHead, .drain(let idle)):
            c.draining = true
            if idle { return closeNow(&c) }
            c.closeAfterResponse = true
            return .none
        case (.awaitingHead, .responseHead), (.awaitingHead, .switchingProtocols), (.awaitingHead, .tunnelEnded),
             (.awaitingHead, .requestBodyInvalid), (.awaitingHead, .requestBodyTooLarge),
             (.awaitingHead, .upstreamLost), (.awaitingHead, .upstreamFailed), (.awaitingHead, .connectFailed),
             (.awaitingHead, .retryable),
             (.awaitingHead, .bodiesComplete),
             (.awaitingHead, .responseCompleteFirst):
            return .none  // no exchange in progress

        // MARK: proxying
        case (.exchange, .responseHead(let r)):
            let plan = responsePlan(c, x, r, limits)
            x.responseOutFraming = plan.framing
            x.responseStarted = true
            switch r.framing {
            case .none: x.responseBody = .done
            case .contentLength(let n): x.responseBody = n == 0 ? .done : .length(remaining: n)
            case .chunked: x.responseBody = .chunked(ChunkedDecoder(limits: limits.parser))
            case .untilClose: x.responseBody = .untilClose
            }
            x.upstreamKeepAlive = r.keepAlive && r.framing != .untilClose
            if plan.closing { c.closeAfterResponse = true }
            return .startResponse(plan)
        case (.exchange, .switchingProtocols):
            guard x.upgrade && !x.responseStarted else {
                // A switch the request did not ask for is a protocol violation.
                return upstreamFailed(&c, &x, .badResponse, limits)
            }
            x.responseStarted = true
            x.responseBody = .done
            c.closeAfterResponse = true  // after a tunnel nothing of HTTP is left on the connection
            c.phase = .tunnel
            return .startTunnel
        case (.exchange, .tunnelEnded):
            return .none
        case (.exchange, .requestBodyInvalid(let error)):
            if x.responseStarted { return closeNow(&c) }
            return respond(&c, &x, status: error.status, .parseError(error), forceClose: true, limits)
        case (.exchange, .requestBodyTooLarge):
            if x.responseStarted { return closeNow(&c) }
            return respond(&c, &x, status: 413, .bodyTooLarge(limits.maxBodyBytes), forceClose: true, limits)
        case (.exchange, .upstreamLost(let reused, let connected)):
            // A pooled connection the upstream had closed meanwhile: one retry on a fresh one, only
            // for a request without a body whose method may be repeated (RFC 9110 9.2.2): a POST
            // is never sent twice. The driver reports `.upstreamFailed` instead once any byte of
            // an answer (an interim one included) has arrived.
            if reused && x.request.bodyless && x.request.method.isIdempotent && x.attempts < 2 && !x.responseStarted {
                x.attempts += 1
                return .retry
            }
            return upstreamFailed(&c, &x, connected ? .reset : .connectRefused, limits)
        case (.exchange, .upstreamFailed(let reason)):
            return upstreamFailed(&c, &x, reason, limits)
        case (.exchange, .connectFailed(let reason, let another)):
            // Nothing reached the endpoint: any request may go to another one of the same cohort
            // (a POST too), as long as none of its body was taken from the client yet.
            if another && !x.responseStarted && x.requestBodyBytes == 0 && x.attempts < 8 {
                x.attempts += 1
                return .retryElsewhere
            }
            return upstreamFailed(&c, &x, reason, limits)
        case (.exchange, .retryable(let cause, let options)):
            return retryable(&c, &x, cause, options, limits)
        case (.exchange, .bodiesComplete):
            let reusable = x.upstreamKeepAlive && !c.draining
            finishRequest(&c, x, close: c.closeAfterResponse, limits)
            return .complete(upstreamReusable: reusable)
        case (.exchange, .responseCompleteFirst):
            // The upstream answered before the body was fully sent (the head said Connection: close).
            c.requestsServed += 1
            c.unreadInput = true
            c.phase = .closing
            return .cut(nil)
        case (.exchange, .clientGone):
            return closeNow(&c)
        case (.exchange, .clientTimedOut(_, let outputQueued)):
            if !x.responseStarted && !outputQueued {
                // The client stopped sending its body.
                return respond(&c, &x, status: 408, .text(StaticStringBox("request body not received in time\n")),
                               forceClose: true, limits)
            }
            return closeNow(&c)  // it stopped reading its response (send timeout)
        case (.exchange, .drain):
            c.draining = true
            c.closeAfterResponse = true
            return .none
        case (.exchange, .headParsed), (.exchange, .headInvalid), (.exchange, .routed):
            return .none  // a pipelined head waits until this exchange ends

        // MARK: tunnel
        case (.tunnel, .tunnelEnded):
            // What the upstream sent last still reaches the client, then the connection closes.
            c.closeAfterResponse = true
            c.phase = .closing
            return .cut(nil)
        case (.tunnel, .clientGone), (.tunnel, .clientTimedOut), (.tunnel, .upstreamFailed), (.tunnel, .upstreamLost),
             (.tunnel, .connectFailed), (.tunnel, .retryable):
            return closeNow(&c)
        case (.tunnel, .drain):
            c.draining = true
            return .none  // a tunnel is closed when its cohort or endpoint goes, or at shutdown
        case (.tunnel, .headParsed), (.tunnel, .headInvalid), (.tunnel, .routed), (.tunnel, .responseHead),
             (.tunnel, .switchingProtocols), (.tunnel, .requestBodyInvalid), (.tunnel, .requestBodyTooLarge),
             (.tunnel, .bodiesComplete), (.tunnel, .responseCompleteFirst):
            return .none  // the bytes are not HTTP any more

        // MARK: closing, lingering, closed
        case (.closing, .clientGone), (.closing, .clientTimedOut), (.lingering, .clientGone), (.lingering, .clientTimedOut):
            return closeNow(&c)
        case (.closing, .drain), (.lingering, .drain):
            c.draining = true
            return .none
        case (.closing, _), (.lingering, _):
            return .none  // the response is final; only flushing (or discarding input) is left
        case (.closed, _):
            return .none
        }
    }

    /// Moves a connection whose response is queued on to its next request or to closing: the
    /// one keep-alive rule, shared by proxied and generated responses. `unreadInput` is the
    /// driver's to set (it knows whether request bytes are still buffered).
    static func finishRequest(_ c: inout ConnectionState, _ x: ExchangeState, close: Bool, _ limits: ExchangeLimits) {
        c.requestsServed += 1
        c.unreadInput = !x.requestBody.isDone
        let limit = limits.maxRequestsPerConnection
        if close || c.closeAfterResponse || c.draining || (limit > 0 && c.requestsServed >= limit) {
            c.phase = .closing
        } else {
            c.phase = .awaitingHead
        }
    }

    /// The driver found request bytes still buffered when the request finished.
    public static func noteUnreadInput(_ c: inout ConnectionState) {
        c.unreadInput = true
    }

    /// The driver half-closed a closing connection to discard what the client still sends.
    public static func startLingering(_ c: inout ConnectionState) {
        guard c.phase == .closing else { return }
        c.phase = .lingering
    }

    /// The driver closed the connection (socket gone).
    public static func closed(_ c: inout ConnectionState) {
        c.phase = .closed
    }

    /// Whether the connection closes after the response being started now: the one rule.
    /// Closes when the client or the response framing asks for it, when the worker drains or an
    /// earlier decision said so, when the request body is not fully read (the next request's
    /// start is unknown), and on the last request `maxRequestsPerConnection` allows.
    @inlinable
    public static func closesAfterResponse(_ c: ConnectionState, _ x: ExchangeState, forced: Bool,
                                           limits: ExchangeLimits) -> Bool {
        forced || !x.request.keepAlive || c.closeAfterResponse || c.draining || !x.requestBody.isDone
            || (limits.maxRequestsPerConnection > 0 && c.requestsServed + 1 >= limits.maxRequestsPerConnection)
    }

    // MARK: - Helpers

    /// Queues a generated response under the one close rule and finishes the request.
    static func respond(_ c: inout ConnectionState, _ x: inout ExchangeState, status: Int,
                                _ body: GeneratedResponse.Body, forceClose: Bool, _ limits: ExchangeLimits,
                                upstreamError: UpstreamErrorReason? = nil) -> ExchangeAction {
        let closing = closesAfterResponse(c, x, forced: forceClose, limits: limits)
        let response = GeneratedResponse(status: status, body: body, closing: closing,
                                         http10KeepAlive: x.request.version == .http10 && !closing,
                                         headOnly: x.request.method == .head)
        if closing { c.closeAfterResponse = true }
        x.responseStarted = true
        finishRequest(&c, x, close: closing, limits)
        return .respond(response, upstreamError: upstreamError)
    }

    static func upstreamFailed(_ c: inout ConnectionState, _ x: inout ExchangeState, _ reason: UpstreamErrorReason,
                                       _ limits: ExchangeLimits) -> ExchangeAction {
        if x.responseStarted {
            // The response is cut short: the client cannot be told, so its connection closes.
            c.closeAfterResponse = true
            c.phase = .closing
            return .cut(reason)
        }
        return respond(&c, &x, status: reason.status, .upstream(reason), forceClose: false, limits,
                       upstreamError: reason)
    }

    private static func closeNow(_ c: inout ConnectionState) -> ExchangeAction {
        c.closeAfterResponse = true
        return .close
    }

    private static func requestBodyState(_ facts: RequestFacts, _ limits: ExchangeLimits) -> RequestBodyState {
        switch facts.framing {
        case .chunked: return .chunked(ChunkedDecoder(limits: limits.parser))
        case .contentLength(let n) where n > 0: return .length(remaining: n)
        default: return .done
        }
    }
}
