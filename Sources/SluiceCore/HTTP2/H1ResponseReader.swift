/// Reads back the HTTP/1.1 response Sluice wrote for a request that arrived over HTTP/2, as the
/// pieces an HTTP/2 stream sends: interim heads, the final head, body bytes, trailer fields,
/// the end. The exchange writes a response for an HTTP/2 stream exactly as for an HTTP/1.1
/// client (head edits, chunked re-framing, gzip, generated errors); this reader undoes the
/// HTTP/1.1 framing: Content-Length and chunked bodies are cut back to their data, a body
/// delimited by the close of the connection ends when the exchange does.
///
/// Pure and incremental: `next` is called with the bytes not yet consumed.
public struct H1ResponseReader: Sendable {
    private enum State: Sendable, Equatable {
        case head
        case length(UInt64)
        case chunked
        case untilEnd
        case done
        case failed
    }

    private var state = State.head
    private var decoder: ChunkedDecoder
    private let limits: ParserLimits
    /// The request's method (framing of a response to HEAD).
    public var requestMethod: HTTPMethod = .get

    /// A reader waiting for a response head.
    public init(limits: ParserLimits) {
        self.limits = limits
        self.decoder = ChunkedDecoder(limits: limits)
    }

    /// Ready for the next response (to a request with `method`).
    public mutating func reset(method: HTTPMethod) {
        state = .head
        decoder = ChunkedDecoder(limits: limits)
        requestMethod = method
    }

    /// The final response is complete.
    public var isDone: Bool { state == .done }
    /// The final head was read and its body may still be coming.
    public var inBody: Bool {
        switch state {
        case .length, .chunked, .untilEnd: return true
        default: return false
        }
    }
    /// The body runs until the exchange ends (no length, not chunked).
    public var endsWithExchange: Bool { state == .untilEnd }

    /// One step of reading.
    public enum Step: Sendable, Equatable {
        /// Nothing more can be read from these bytes; `consumed` of them are used up.
        case needMore(consumed: Int)
        /// A head is in `head` (spans relative to the input); `consumed` is its length. `final`
        /// is false for a 1xx head. `hasBody`: the final head has a body to follow.
        case head(consumed: Int, final: Bool, hasBody: Bool)
        /// Body data at input[offset ..< offset+count]; `consumed` bytes used up.
        case data(offset: Int, count: Int, consumed: Int)
        /// The body ended; trailer fields (`name: value CRLF` lines) at
        /// input[trailerOffset ..< trailerOffset+trailerCount].
        case end(consumed: Int, trailerOffset: Int, trailerCount: Int)
        /// The bytes are not a valid response (cannot happen for what Sluice writes; treated as a
        /// cut response by the caller).
        case invalid
    }

    /// Reads from `input`. At most `maxData` body bytes are returned in one `.data` step.
    public mutating func next(_ input: UnsafeRawBufferPointer, head: inout ResponseHead, maxData: Int) -> Step {
        switch state {
        case .failed:
            return .invalid
        case .done:
            return .needMore(consumed: 0)
        case .head:
            switch ResponseParser.parse(input, requestMethod: requestMethod, into: &head, limits: limits) {
            case .incomplete:
                return .needMore(consumed: 0)
            case .invalid:
                state = .failed
                return .invalid
            case .complete:
                if head.status < 200 { return .head(consumed: head.headLength, final: false, hasBody: false) }
                switch head.framing {
                case .none, .contentLength(0): state = .done
                case .contentLength(let n): state = .length(n)
                case .chunked: state = .chunked
                case .untilClose: state = .untilEnd
                }
                return .head(consumed: head.headLength, final: true, hasBody: state != .done)
            }
        case .length(let left):
            let n = min(UInt64(input.count), left, UInt64(max(maxData, 0)))
            guard n > 0 else { return .needMore(consumed: 0) }
            state = left == n ? .done : .length(left - n)
            return .data(offset: 0, count: Int(n), consumed: Int(n))
        case .untilEnd:
            let n = min(input.count, max(maxData, 0))
            guard n > 0 else { return .needMore(consumed: 0) }
            return .data(offset: 0, count: n, consumed: n)
        case .chunked:
            // The decoder is given at most what may be returned as data, so a data step is
            // always taken whole (it cannot be handed back).
            let window = UnsafeRawBufferPointer(rebasing: input[0..<min(input.count, max(maxData, 0))])
            switch decoder.decode(window) {
            case .data(let offset, let count, let consumed):
                return .data(offset: offset, count: count, consumed: consumed)
            case .needMore(let consumed):
                return .needMore(consumed: consumed)
            case .done(let consumed, let trailerOffset, let trailerCount):
                state = .done
                return .end(consumed: consumed, trailerOffset: trailerOffset, trailerCount: trailerCount)
            case .invalid:
                state = .failed
                return .invalid
            }
        }
    }

    /// Reads a body of `framing` from here on (a request body, after its head was parsed
    /// elsewhere): `.none` is already done.
    public mutating func startBody(_ framing: BodyFraming) {
        decoder = ChunkedDecoder(limits: limits)
        switch framing {
        case .none, .contentLength(0): state = .done
        case .contentLength(let n): state = .length(n)
        case .chunked: state = .chunked
        case .untilClose: state = .untilEnd
        }
    }

    /// Ends a body delimited by the end of the exchange (`endsWithExchange`).
    public mutating func exchangeEnded() {
        if state == .untilEnd { state = .done }
    }
}
