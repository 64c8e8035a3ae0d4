import Testing
import SluiceCore

struct AccessLogLineTests {
    @Test(arguments: [
        (0, 0, "1970-01-01T00:00:00.000Z"),
        (1_795_737_600, 123, "2026-11-27T00:00:00.123Z"),
        (951_782_400, 5, "2000-02-29T00:00:00.005Z"),
        (4_102_444_799, 999, "2099-12-31T23:59:59.999Z"),
    ])
    func timestamps(seconds: Int, millis: Int, text: String) {
        var out: [UInt8] = []
        AccessLogLine.appendTimestamp(unixSeconds: seconds, milliseconds: millis, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == text)
    }

    @Test func fullLineIsExactJSON() {
        var out: [UInt8] = []
        let client = Array("127.0.0.1".utf8), method = Array("GET".utf8), path = Array("/a?b=\"c\"".utf8)
        let route = Array("web".utf8), cohort = Array("canary".utf8), upstream = Array("127.0.0.1:9003".utf8)
        let rid = Array("r1".utf8), trace = Array("00-ab-cd-01".utf8)
        client.withUnsafeBytes { c in method.withUnsafeBytes { m in path.withUnsafeBytes { p in
            route.withUnsafeBytes { ro in cohort.withUnsafeBytes { co in upstream.withUnsafeBytes { u in
                rid.withUnsafeBytes { ri in trace.withUnsafeBytes { t in
                    var r = AccessLogRecord(unixSeconds: 1_795_737_600, milliseconds: 7, status: 200,
                                            durationNanos: 1_234_567, bytesIn: 10, bytesOut: 250)
                    r.client = c; r.method = m; r.path = p; r.route = ro; r.cohort = co; r.upstream = u
                    r.requestID = ri; r.traceparent = t
                    AccessLogLine.append(r, to: &out)
                }}
            }}}
        }}}
        #expect(String(decoding: out, as: UTF8.self) ==
            #"{"time":"2026-11-27T00:00:00.007Z","client":"127.0.0.1","method":"GET","host":null,"path":"/a?b=\"c\"","protocol":null,"status":200,"duration_ms":1.234,"bytes_in":10,"bytes_out":250,"route":"web","cohort":"canary","upstream":"127.0.0.1:9003","upstream_status":null,"upstream_connect_ms":null,"upstream_first_byte_ms":null,"error":null,"request_id":"r1","traceparent":"00-ab-cd-01","user_agent":null,"referer":null}"# + "\n")
    }

    @Test func controlAndHighBytesAreEscapedAndEmptyIsNull() {
        var out: [UInt8] = []
        [UInt8]([0x41, 0x0A, 0xFF, 0x5C]).withUnsafeBytes { AccessLogLine.appendString($0, to: &out) }
        #expect(String(decoding: out, as: UTF8.self) == #""A\u000a\u00ff\\""#)
        out.removeAll()
        AccessLogLine.appendString(UnsafeRawBufferPointer(start: nil, count: 0), to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "null")
    }
}
