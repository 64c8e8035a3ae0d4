/// One request's accounting, recorded once however it ends: the metrics series and the access
/// log line are written from it (`Worker.endRequest`).
public struct RequestRecord: Sendable {
    /// A request head was parsed (or rejected) and its outcome is not yet recorded.
    public var active = false
    /// Monotonic time the head was complete.
    public var start: UInt64 = 0
    /// Wall-clock time of `start`, for the log (only when the access log is on).
    public var wallSeconds = 0
    public var wallMillis = 0
    /// Status of the response head queued for the client (0 until one is).
    public var status = 0
    /// Head bytes received (request body bytes are counted by the exchange).
    public var headBytes: UInt64 = 0
    /// Bytes queued for the client.
    public var bytesOut: UInt64 = 0
    /// Metric series (route and cohort) of the request.
    public var series: Int32 = 0
    /// The request counts in the series' in-flight gauge.
    public var inFlightCounted = false
    /// Upstream id (connection gauges) of the request's upstream group, -1 when not forwarded.
    public var upstreamMetricsID: Int32 = -1
    /// A tunnel: the handshake is in the metrics, the access-log line waits for the tunnel's end.
    public var logPending = false
    /// Monotonic time the tunnel started (0: no tunnel).
    public var tunnelStart: UInt64 = 0
    /// Status of the upstream's final response head (0: none arrived).
    public var upstreamStatus = 0
    /// Connect time of a new upstream connection (nil: a pooled one was reused, or none).
    public var upstreamConnectNanos: UInt64?
    /// When the request head was first handed to the upstream socket (0: not yet).
    public var upstreamSentAt: UInt64 = 0
    /// From `upstreamSentAt` to the first byte of the upstream's response (nil: none arrived).
    public var upstreamFirstByteNanos: UInt64?
    /// The upstream failure that ended the request, if one did.
    public var errorReason: UpstreamErrorReason?
    /// The `grpc-status` of a gRPC response from an HTTP/2 upstream (-1: none).
    public var grpcStatus = -1

    /// No request.
    public init() {}

    /// The status to record: 499 when the client went away before a response was sent (nginx's convention).
    @inlinable
    public var recordedStatus: Int { status == 0 ? 499 : status }

    /// The status counted in the metrics: `recordedStatus`, except that a successful HTTP
    /// response carrying a non-zero `grpc-status` counts as the HTTP status that code stands for
    /// (`GRPCStatus.httpStatus`: a gRPC UNAVAILABLE is a 503 to the rollout gates).
    @inlinable
    public var metricsStatus: Int {
        grpcStatus > 0 && status >= 200 && status < 300 ? GRPCStatus.httpStatus(grpcStatus) : recordedStatus
    }
}
