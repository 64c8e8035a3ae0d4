/// How the rest of a request body arrives from the client.
public enum RequestBodyState: Sendable {
    /// Nothing (more) to read: no body, or all of it was read.
    case done
    /// This many Content-Length bytes are still to come.
    case length(remaining: UInt64)
    /// A chunked body, decoded as it arrives (and re-chunked for the upstream).
    case chunked(ChunkedDecoder)

    /// True when the whole body was read (or there is none).
    @inlinable
    public var isDone: Bool {
        if case .done = self { return true }
        return false
    }
}

/// How the rest of a response body arrives from the upstream.
public enum ResponseBodyState: Sendable {
    /// No response head yet.
    case awaitingHead
    /// This many Content-Length bytes are still to come.
    case length(remaining: UInt64)
    /// A chunked body, decoded as it arrives.
    case chunked(ChunkedDecoder)
    /// The body ends when the upstream closes.
    case untilClose
    /// The whole response was relayed.
    case done

    /// True when the whole response was relayed.
    @inlinable
    public var isDone: Bool {
        if case .done = self { return true }
        return false
    }

    /// True while no response head has arrived.
    @inlinable
    public var isAwaitingHead: Bool {
        if case .awaitingHead = self { return true }
        return false
    }
}

/// Where a client connection is in its request/response cycle.
public enum ConnectionPhase: UInt8, Sendable {
    /// Waiting for (or reading) the next request head.
    case awaitingHead
    /// A request is being proxied to an upstream.
    case exchange
    /// The last response is queued; close once it is flushed.
    case closing
    /// Response sent and our side shut down; reading and discarding until the client closes.
    case lingering
    /// A protocol switch (101) happened: bytes are relayed both ways until either side closes.
    case tunnel
    /// Closed and removed from the loop.
    case closed
}

extension UpstreamErrorReason {
    /// Status sent to the client when no response byte has been sent yet: 504 for timeouts, else 502.
    @inlinable
    public var status: Int {
        switch self {
        case .connectTimeout, .responseTimeout: return 504
        case .connectRefused, .reset, .badResponse, .tlsHandshake: return 502
        case .circuitOpen: return 503
        }
    }

    /// One-line reason in the error body.
    public var reasonText: StaticString {
        switch self {
        case .connectRefused: return "upstream refused the connection\n"
        case .connectTimeout: return "upstream connect timed out\n"
        case .responseTimeout: return "upstream did not answer in time\n"
        case .reset: return "upstream closed the connection before responding\n"
        case .badResponse: return "upstream sent an invalid response\n"
        case .tlsHandshake: return "upstream TLS handshake failed\n"
        case .circuitOpen: return "upstream is at its connection or request limit\n"
        }
    }
}
