import Foundation
@preconcurrency import Glibc
import Testing

/// 1 GiB up and 1 GiB down through a TLS listener, with the proxy's memory bounded as on plain
/// connections (`StreamingTests`): bytes pass through OpenSSL, not splice, so this is the path
/// where a buffer that grows with the body would show.
@Suite(.serialized)
struct TLSStreamingTests {
    static let gib = 1 << 30
    static let limit = 64 << 20

    /// The client: Python's ssl module (OpenSSL underneath), trusting the test CA. It uploads
    /// 1 GiB, then asks for 1 GiB and reads nothing for 1.5 s (the proxy must stop reading from
    /// the upstream rather than buffer), samples the proxy's RSS, then reads everything.
    static let client = """
        import os, socket, ssl, sys, time
        port, ca, pid, size = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
        def rss_kb():
            for line in open("/proc/%s/status" % pid):
                if line.startswith("VmRSS:"): return int(line.split()[1])
            return 0
        ctx = ssl.create_default_context(cafile=ca)
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=60), server_hostname="a.test")
        def read_head(buf):
            while b"\\r\\n\\r\\n" not in buf:
                d = s.recv(65536)
                if not d: raise SystemExit("eof before the response head")
                buf += d
            i = buf.index(b"\\r\\n\\r\\n") + 4
            return buf[:i].decode("latin-1"), buf[i:]
        s.sendall(b"POST /upload HTTP/1.1\\r\\nHost: a.test\\r\\nContent-Length: %d\\r\\n\\r\\n" % size)
        piece = b"a" * (1 << 20)
        for _ in range(size >> 20): s.sendall(piece)
        head, rest = read_head(b"")
        print("upload_status", head.split(" ")[1])
        s.sendall(b"GET /download HTTP/1.1\\r\\nHost: a.test\\r\\n\\r\\n")
        # The upload's answer ("stored") may be in `rest` or still to come.
        while b"stored" not in rest: rest += s.recv(65536)
        rest = rest[rest.index(b"stored") + 6:]
        time.sleep(1.5)
        print("stalled_rss_kb", rss_kb())
        head, body = read_head(rest)
        print("download_status", head.split(" ")[1])
        got = len(body)
        while got < size:
            d = s.recv(1 << 20)
            if not d: break
            got += len(d)
        print("received", got)
        s.close()
        """

    @Test func oneGiBUploadAndDownloadOverTLSStayUnder64MiB() throws {
        let f = try TLSFixture()
        defer { f.remove() }
        let up = try TestUpstream(discardBodies: true) { r in
            if r.startLine.hasPrefix("GET") {
                return .stream(head: "HTTP/1.1 200 OK\r\nContent-Length: \(TLSStreamingTests.gib)\r\n\r\n", count: TLSStreamingTests.gib)
            }
            return .ok("stored")
        }
        defer { up.stop() }
        let sluice = try SluiceProcess(workers: 1, yaml: TLSTests.listenerYAML(f, upstream: up.port))
        defer { _ = sluice.stop() }
        let script = f.path("client.py")
        try Self.client.write(toFile: script, atomically: true, encoding: .utf8)
        let r = try runTool("/usr/bin/python3", [script, "\(sluice.port)", f.path("ca.pem"),
                                                 "\(sluice.process.processIdentifier)", "\(Self.gib)"], timeout: 240)
        var values: [String: Int] = [:]
        for line in r.out.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let v = Int(parts[1]) { values[String(parts[0])] = v }
        }
        #expect(r.status == 0, "client: \(r.out) \(r.err)")
        #expect(values["upload_status"] == 200, "\(r.out)")
        #expect(up.bodyBytes == Self.gib)
        #expect(values["download_status"] == 200, "\(r.out)")
        #expect(values["received"] == Self.gib, "\(r.out)")
        let stalled = (values["stalled_rss_kb"] ?? Int.max / 1024) * 1024
        let peak = sluice.peakRSS
        #expect(stalled < Self.limit, "RSS while the client was not reading: \(stalled)")
        #expect(peak > 0 && peak < Self.limit, "peak RSS of the proxy: \(peak) bytes")
        print("TLS streaming: peak RSS \(peak >> 20) MiB after 1 GiB up + 1 GiB down; \(stalled >> 20) MiB while stalled")
    }
}
