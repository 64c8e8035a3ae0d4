import Testing
import SluiceCore

/// The access-log fields of issue 18 (host, protocol, user agent, referer, upstream status and
/// times, error reason), query redaction and field selection, as exact lines.
struct AccessLogFieldsTests {
    /// Formats a record whose byte fields come from `texts` (field name → text).
    static func line(_ texts: [String: String], status: Int, format: AccessLogFormat = .all,
                     _ configure: (inout AccessLogRecord) -> Void = { _ in }) -> String {
        let keys = ["client", "method", "path", "route", "cohort", "upstream", "request_id", "host", "protocol", "user_agent", "referer"]
        var storage = keys.map { Array((texts[$0] ?? "").utf8) }
        var out: [UInt8] = []
        func go(_ i: Int, _ ptrs: [UnsafeRawBufferPointer]) {
            if i == storage.count {
                var r = AccessLogRecord(unixSeconds: 1_795_737_600, milliseconds: 7, status: status, durationNanos: 12_345_678,
                                        bytesIn: 80, bytesOut: 512)
                r.client = ptrs[0]; r.method = ptrs[1]; r.path = ptrs[2]; r.route = ptrs[3]; r.cohort = ptrs[4]
                r.upstream = ptrs[5]; r.requestID = ptrs[6]; r.host = ptrs[7]; r.proto = ptrs[8]; r.userAgent = ptrs[9]
                r.referer = ptrs[10]
                configure(&r)
                AccessLogLine.append(r, format: format, to: &out)
                return
            }
            storage[i].withUnsafeBytes { go(i + 1, ptrs + [$0]) }
        }
        go(0, [])
        return String(decoding: out, as: UTF8.self)
    }

    static let request = ["client": "10.0.0.7", "method": "GET", "path": "/cart?id=4", "route": "web", "cohort": "canary",
                          "upstream": "10.1.0.3:8080", "request_id": "r1", "host": "shop.example", "protocol": "HTTP/1.1",
                          "user_agent": "curl/8.5.0", "referer": "https://shop.example/"]

    @Test func okLineHasTheNewFields() {
        let text = Self.line(Self.request, status: 200) { r in
            r.upstreamStatus = 200
            r.upstreamConnectNanos = 210_000
            r.upstreamFirstByteNanos = 9_500_000
        }
        #expect(text == #"{"time":"2026-11-27T00:00:00.007Z","client":"10.0.0.7","method":"GET","host":"shop.example","path":"/cart?id=4","protocol":"HTTP/1.1","status":200,"duration_ms":12.345,"bytes_in":80,"bytes_out":512,"route":"web","cohort":"canary","upstream":"10.1.0.3:8080","upstream_status":200,"upstream_connect_ms":0.210,"upstream_first_byte_ms":9.500,"error":null,"request_id":"r1","traceparent":null,"user_agent":"curl/8.5.0","referer":"https://shop.example/"}"# + "\n")
    }

    @Test func badGatewayLineNamesTheReason() {
        let text = Self.line(Self.request, status: 502) { r in
            r.upstreamConnectNanos = nil
            r.errorReason = .connectRefused
        }
        #expect(text.contains(#""status":502,"#))
        #expect(text.contains(#""upstream_status":null,"upstream_connect_ms":null,"upstream_first_byte_ms":null,"error":"connect_refused","#))
        let timeout = Self.line(Self.request, status: 504) { $0.errorReason = .responseTimeout; $0.upstreamConnectNanos = 1_000_000 }
        #expect(timeout.contains(#""upstream_connect_ms":1.000,"upstream_first_byte_ms":null,"error":"response_timeout""#))
        // A client that went away without an upstream failure.
        #expect(Self.line(Self.request, status: 499).contains(#""error":"client_closed""#))
    }

    @Test func redactedQueryKeepsNamesAndOtherParameters() {
        let format = AccessLogFormat(fields: [.path], redactQuery: ["token", "Password"])
        func path(_ p: String) -> String { Self.line(["path": p], status: 200, format: format) }
        #expect(path("/login?user=ann&token=s3cr3t&x=1") == #"{"path":"/login?user=ann&token=REDACTED&x=1"}"# + "\n")
        // Case-insensitive names, `;` separators, empty values, repeated names, a name alone.
        #expect(path("/a?PASSWORD=pw;token=&token=t2&token") == #"{"path":"/a?PASSWORD=REDACTED;token=REDACTED&token=REDACTED&token"}"# + "\n")
        // A name that only starts like a redacted one, and the path before `?`, stay.
        #expect(path("/token=1?tokens=2&atoken=3") == #"{"path":"/token=1?tokens=2&atoken=3"}"# + "\n")
        // Escaping still applies around a redaction; no query at all is unchanged.
        #expect(path("/q?\"a\"=1&token=\u{01}x") == #"{"path":"/q?\"a\"=1&token=REDACTED"}"# + "\n")
        #expect(path("/plain") == #"{"path":"/plain"}"# + "\n")
        #expect(path("/trailing?token=x&") == #"{"path":"/trailing?token=REDACTED&"}"# + "\n")
        // Default: nothing is redacted.
        #expect(Self.line(["path": "/login?token=s3cr3t"], status: 200, format: AccessLogFormat(fields: [.path], redactQuery: []))
                == #"{"path":"/login?token=s3cr3t"}"# + "\n")
    }

    @Test func chosenFieldsInChosenOrder() {
        let format = AccessLogFormat(fields: [.status, .host, .time, .error], redactQuery: [])
        #expect(Self.line(Self.request, status: 503, format: format) { $0.errorReason = .reset }
                == #"{"status":503,"host":"shop.example","time":"2026-11-27T00:00:00.007Z","error":"reset"}"# + "\n")
        #expect(AccessLogFormat.all.fields.map(\.rawValue) == [
            "time", "client", "method", "host", "path", "protocol", "status", "duration_ms", "bytes_in", "bytes_out", "route",
            "cohort", "upstream", "upstream_status", "upstream_connect_ms", "upstream_first_byte_ms", "error", "request_id",
            "traceparent", "user_agent", "referer",
        ])
    }
}

/// `AccessLogCapture`: the head fields a data plane copies for the access log, from a real parse.
struct AccessLogCaptureTests {
    func line(_ request: String, format: AccessLogFormat = .all) throws -> String {
        let bytes = Array(request.utf8)
        var head = RequestHead()
        let status = bytes.withUnsafeBytes { RequestParser.parse($0, into: &head, limits: ParserLimits()) }
        #expect(status == .complete)
        var capture = AccessLogCapture()
        bytes.withUnsafeBytes { capture.capture(head, in: $0) }
        var out: [UInt8] = []
        let record = AccessLogRecord(unixSeconds: 0, milliseconds: 0, status: 200, durationNanos: 0, bytesIn: 0, bytesOut: 0)
        capture.withRecord(record) { AccessLogLine.append($0, format: format, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    @Test func headFieldsComeFromTheParsedHead() throws {
        let format = AccessLogFormat(fields: [.method, .host, .path, .protocol, .userAgent, .referer, .traceparent],
                                     redactQuery: ["token"])
        #expect(try line("GET /a?token=x&b=1 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: curl/8.5.0\r\nReferer: https://r.example/\r\n"
                         + "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n", format: format)
                == #"{"method":"GET","host":"shop.example","path":"/a?token=REDACTED&b=1","protocol":"HTTP/1.1","user_agent":"curl/8.5.0","referer":"https://r.example/","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}"# + "\n")
        // HTTP/1.0 without the optional headers: nulls.
        #expect(try line("POST /x HTTP/1.0\r\n\r\n", format: format)
                == #"{"method":"POST","host":null,"path":"/x","protocol":"HTTP/1.0","user_agent":null,"referer":null,"traceparent":null}"# + "\n")
    }

    @Test func longValuesAreCutAndResetKeepsNothing() throws {
        let ua = String(repeating: "u", count: 2000)
        let text = try line("GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: \(ua)\r\n\r\n",
                            format: AccessLogFormat(fields: [.userAgent], redactQuery: []))
        #expect(text == "{\"user_agent\":\"\(String(repeating: "u", count: AccessLogCapture.Limit.userAgent))\"}\n")
        var capture = AccessLogCapture()
        capture.host = Array("x".utf8)
        capture.reset()
        #expect(capture.host.isEmpty && capture.host.capacity >= 1)
    }
}
