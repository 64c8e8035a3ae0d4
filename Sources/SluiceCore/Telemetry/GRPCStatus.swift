/// gRPC status codes in Sluice's metrics. A gRPC call that fails arrives as HTTP 200 with a
/// non-zero `grpc-status` (in the trailers, or in the head of a trailers-only response); Sluice
/// counts it under the HTTP status the code stands for (the table gRPC's HTTP gateways use), so
/// `sluice_requests_total{code}`, the windowed stats and the rollout gates see a gRPC
/// `UNAVAILABLE` as a 503, an `INTERNAL` as a 500, and so on.
public enum GRPCStatus {
    /// The code in a `grpc-status` value (-1 when it is not a decimal number of 1-2 digits).
    public static func parse(_ value: UnsafeRawBufferPointer) -> Int {
        guard value.count >= 1 && value.count <= 2 else { return -1 }
        var n = 0
        for b in value {
            guard b >= 48 && b <= 57 else { return -1 }
            n = n * 10 + Int(b - 48)
        }
        return n
    }

    /// The HTTP status a gRPC status code is counted as (0 OK: 200; unknown codes: 500).
    public static func httpStatus(_ code: Int) -> Int {
        switch code {
        case 0: return 200
        case 1: return 499  // CANCELLED
        case 2: return 500  // UNKNOWN
        case 3: return 400  // INVALID_ARGUMENT
        case 4: return 504  // DEADLINE_EXCEEDED
        case 5: return 404  // NOT_FOUND
        case 6: return 409  // ALREADY_EXISTS
        case 7: return 403  // PERMISSION_DENIED
        case 8: return 429  // RESOURCE_EXHAUSTED
        case 9: return 400  // FAILED_PRECONDITION
        case 10: return 409  // ABORTED
        case 11: return 400  // OUT_OF_RANGE
        case 12: return 501  // UNIMPLEMENTED
        case 13: return 500  // INTERNAL
        case 14: return 503  // UNAVAILABLE
        case 15: return 500  // DATA_LOSS
        case 16: return 401  // UNAUTHENTICATED
        default: return 500
        }
    }
}
