// The exchange machine's plans: how a request is framed upstream, how a response is framed for
// the client, and where an interim response goes. Queries: nothing changes.

extension ExchangeMachine {
    /// How the response for `r` would be written now (a query: nothing changes). The driver
    /// serializes the head with it, and reports `.responseHead` once the head fits in its buffer.
    public static func responsePlan(for r: ResponseFacts, connection c: ConnectionState, exchange x: ExchangeState,
                                    limits: ExchangeLimits) -> ResponsePlan {
        responsePlan(c, x, r, limits)
    }

    /// What to do with an interim (1xx) response from the upstream.
    public enum Interim: Sendable, Equatable {
        /// Relay it to the client before the final response.
        case relay
        /// Drop it.
        case drop
        /// A protocol violation: the exchange fails as a bad response.
        case fail
    }

    /// RFC 9110 15.2: a proxy forwards 1xx responses, but not to an HTTP/1.0 client (which cannot
    /// know them). 100 Continue is dropped: Sluice answers the client's Expect itself and never
    /// forwards it, so the upstream's 100 is not the client's. 101 is a protocol switch Sluice never
    /// asked for.
    public static func interim(_ status: Int, exchange x: ExchangeState) -> Interim {
        switch status {
        case 101: return .fail
        case 100: return .drop
        default: return x.request.version == .http11 ? .relay : .drop
        }
    }

    /// Framing of the request body sent upstream.
    static func upstreamFraming(_ r: RequestFacts) -> BodyFraming {
        switch r.framing {
        case .chunked: return .chunked
        case .contentLength(let n) where n > 0: return .contentLength(n)
        default:
            // An empty POST/PUT/PATCH says so, as some upstreams want a length on these methods.
            return r.method == .post || r.method == .put || r.method == .patch ? .contentLength(0) : .none
        }
    }

    /// How the response for `r` is framed for this client, and whether the connection closes.
    static func responsePlan(_ c: ConnectionState, _ x: ExchangeState, _ r: ResponseFacts,
                             _ limits: ExchangeLimits) -> ResponsePlan {
        let http11Client = x.request.version == .http11
        let out: BodyFraming
        switch r.framing {
        case .none: out = .none
        case .contentLength(let n): out = r.compress ? (http11Client ? .chunked : .untilClose) : .contentLength(n)
        case .chunked, .untilClose: out = http11Client ? .chunked : .untilClose
        }
        let closing = closesAfterResponse(c, x, forced: out == .untilClose, limits: limits)
        return ResponsePlan(framing: out, closing: closing, http10KeepAlive: !http11Client && !closing,
                            keepContentLength: !r.compress && (x.request.method == .head || r.status == 304))
    }
}
