import SluiceCore

/// The per-request values of an exchange: plain values and references, no buffers. The code that
/// starts a request sets them (`Worker.beginRequest`, `startExchange`) and `Worker.finishRequest`
/// resets what the next request relies on; `Exchange.recycle` puts them all back to these initial
/// values when an exchange is cut short.
struct ExchangeState {
    var table: RoutingTable?
    var decision = RouteDecision.notFound
    var requestBody: RequestBodyState = .done
    var requestBodyBytes: UInt64 = 0
    var responseBody: ResponseBodyState = .awaitingHead
    /// Framing chosen for the body sent to the client.
    var responseOutFraming: BodyFraming = .none
    /// The response head was queued for the client.
    var responseStarted = false
    var upstream: UpstreamConnection?
    var pool: EndpointPool?
    var attempts = 0
    var requestMethod: HTTPMethod = .get
    var requestVersion: HTTPVersion = .http11

    // Per-request accounting (access log and metrics).
    /// A request head was parsed and its outcome is not yet recorded.
    var requestActive = false
    var requestStart: UInt64 = 0
    var requestWallSeconds = 0
    var requestWallMillis = 0
    /// Status of the response head queued for the client (0 until one is).
    var statusSent = 0
    var bytesIn: UInt64 = 0
    var bytesOut: UInt64 = 0
    /// Metric series of the current request (route/cohort), and whether it counts as in flight.
    var metricSeries: Int32 = 0
    var inFlightCounted = false
    /// Upstream id (for connection gauges) of the current exchange's upstream group.
    var upstreamMetricsID: Int32 = -1
    /// `requestID` was generated here (so it is added to the upstream request).
    var requestIDGenerated = false
}

/// One request/response exchange of a client connection, from the first byte of a request head
/// until the connection is idle again (or closes). A worker keeps a pool of them (`ExchangePool`)
/// so that an idle keep-alive connection holds none of this state, while the arrays below keep
/// their capacity from one exchange to the next: a busy connection allocates nothing per request.
///
/// Owned by one worker loop thread.
final class Exchange {
    /// The per-request values.
    var state = ExchangeState()
    /// The request head; the parser resets it, keeping the capacity of its `fields`.
    var head = RequestHead()
    /// The request head as sent to the upstream, kept for one retry on a stale pooled connection.
    var upstreamHead: [UInt8] = []
    /// The request's X-Request-Id (received or generated).
    var requestID: [UInt8] = []
    /// Copies of the request's method, path and traceparent for the access log (only when it is on).
    var logMethod: [UInt8] = []
    var logPath: [UInt8] = []
    var logTraceparent: [UInt8] = []
    /// The client's address as text (X-Forwarded-For, access log), for the address `usePeer` was given.
    private(set) var peerText: [UInt8] = []
    /// The address `peerText` was formatted from (its port does not matter).
    private var peerTextAddress = SocketAddress.v4(0, port: 0)

    /// Makes `peerText` the text of `peer`'s address. Formats only when the address differs from
    /// the last one (many exchanges in a row serve the same client address).
    func usePeer(_ peer: SocketAddress) {
        // Compared here rather than with `SocketAddress.==` (not inlinable across modules, and it
        // compares the ports): this runs once per request.
        switch (peer, peerTextAddress) {
        case (.v4(let a, _), .v4(let b, _)) where a == b && !peerText.isEmpty: return
        case (.v6(let ah, let al, _), .v6(let bh, let bl, _)) where ah == bh && al == bl: return
        default: break
        }
        peerText.removeAll(keepingCapacity: true)
        peer.appendHostText(to: &peerText)
        peerTextAddress = peer
    }

    /// Back to the initial state (dropping its references to the routing table, endpoint pool and
    /// upstream connection), for an exchange cut short. The arrays are cleared by their writers.
    func recycle() {
        state = ExchangeState()
    }
}

/// A worker's free list of exchanges: a client connection takes one when a request head starts
/// and gives it back when it is idle again, so steady-state keep-alive traffic allocates none.
///
/// Owned by one worker loop.
final class ExchangePool {
    /// Exchanges kept for reuse at most (beyond that, given-back exchanges are freed).
    let maxFree: Int
    private var free: [Exchange] = []

    init(maxFree: Int) {
        self.maxFree = maxFree
    }

    /// An exchange ready for a request (recycled when one is free).
    @inline(__always)
    func take() -> Exchange {
        free.popLast() ?? Exchange()
    }

    /// Returns an exchange no connection uses any more. Its state must be what the next request
    /// can start from: after `Worker.finishRequest` (which resets what a following request relies
    /// on, so the common path skips a full reset), or after `Exchange.recycle`.
    @inline(__always)
    func give(_ exchange: consuming Exchange) {
        if free.count < maxFree { free.append(exchange) }
    }
}
