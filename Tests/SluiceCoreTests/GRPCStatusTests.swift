import Testing
import SluiceCore

/// `GRPCStatus`: parsing `grpc-status` and the HTTP status a gRPC code is counted as, and
/// `RequestRecord.metricsStatus`.
@Suite struct GRPCStatusTests {
    func parse(_ s: String) -> Int { Array(s.utf8).withUnsafeBytes { GRPCStatus.parse($0) } }

    @Test func parsesOneOrTwoDigits() {
        #expect(parse("0") == 0)
        #expect(parse("14") == 14)
        #expect(parse("") == -1)
        #expect(parse("140") == -1)
        #expect(parse("1a") == -1)
        #expect(parse(" 1") == -1)
    }

    @Test func codesMapToTheGatewayTable() {
        #expect(GRPCStatus.httpStatus(0) == 200)
        #expect(GRPCStatus.httpStatus(14) == 503)
        #expect(GRPCStatus.httpStatus(13) == 500)
        #expect(GRPCStatus.httpStatus(4) == 504)
        #expect(GRPCStatus.httpStatus(12) == 501)
        #expect(GRPCStatus.httpStatus(16) == 401)
        #expect(GRPCStatus.httpStatus(99) == 500)
    }

    @Test func aGRPCFailureCountsAsItsHTTPStatusOnlyWhenTheResponseSucceeded() {
        var r = RequestRecord()
        r.status = 200
        #expect(r.metricsStatus == 200)
        r.grpcStatus = 0
        #expect(r.metricsStatus == 200)
        r.grpcStatus = 14
        #expect(r.metricsStatus == 503)
        #expect(r.recordedStatus == 200, "the access log keeps the status sent")
        r.status = 502
        #expect(r.metricsStatus == 502, "a proxy error stays what it was")
        r.status = 0
        #expect(r.metricsStatus == 499)
    }
}
