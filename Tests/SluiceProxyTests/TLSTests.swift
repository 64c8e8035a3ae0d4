import Foundation
@preconcurrency import Glibc
import Testing
import SluiceControl

/// Runs `exe` with `args`, feeding `stdin` (then closing it); killed after `timeout` seconds.
func runTool(_ exe: String, _ args: [String], stdin: String = "", timeout: Double = 20) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: exe)
    process.arguments = args
    let inPipe = Pipe(), out = Pipe(), err = Pipe()
    process.standardInput = inPipe
    process.standardOutput = out
    process.standardError = err
    try process.run()
    inPipe.fileHandleForWriting.write(Data(stdin.utf8))
    try? inPipe.fileHandleForWriting.close()
    let pid = process.processIdentifier
    let killer = DispatchWorkItem { kill(pid, SIGKILL) }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    killer.cancel()
    return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// A long-running child (an `openssl s_server`, or an `s_client` kept open) whose output is read as it comes.
final class ChildProcess {
    let process = Process()
    private let inPipe = Pipe(), outPipe = Pipe()
    private(set) var output = ""

    init(_ exe: String, _ args: [String]) throws {
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = args
        process.standardInput = inPipe
        process.standardOutput = outPipe
        process.standardError = outPipe
        try process.run()
        let fd = outPipe.fileHandleForReading.fileDescriptor
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    func send(_ text: String) {
        inPipe.fileHandleForWriting.write(Data(text.utf8))
    }

    /// Reads until `output` contains `text` `count` times, for at most `timeout` seconds.
    @discardableResult
    func waitFor(_ text: String, count: Int = 1, timeout: Double = 10) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        var buf = [UInt8](repeating: 0, count: 65536)
        while Date() < end {
            if output.components(separatedBy: text).count - 1 >= count { return true }
            let n = read(outPipe.fileHandleForReading.fileDescriptor, &buf, buf.count)
            if n > 0 { output += String(decoding: buf[0..<n], as: UTF8.self) } else { usleep(10_000) }
        }
        return output.components(separatedBy: text).count - 1 >= count
    }

    /// SIGKILL (`openssl s_server` does not exit on SIGTERM while it waits for a connection).
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Certificates made with the `openssl` CLI in a temporary directory: a CA, server certificates
/// for `a.test` (SAN a.test, *.a.test) and `b.test` (SAN b.test, *.b.test), a client
/// certificate, a second CA that signed nothing used here, and an expired certificate.
final class TLSFixture {
    let dir: String

    init() throws {
        dir = NSTemporaryDirectory() + "sluice-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try ca("ca")
        try ca("other-ca")
        try leaf("a", subject: "/CN=a.test", san: "DNS:a.test,DNS:*.a.test")
        try leaf("b", subject: "/CN=b.test", san: "DNS:b.test,DNS:*.b.test")
        try leaf("client", subject: "/CN=sluice-client", san: nil)
        try leaf("expired", subject: "/CN=a.test", san: "DNS:a.test", days: -1)
        try "not a key\n".write(toFile: path("garbage.key"), atomically: true, encoding: .utf8)
    }

    func path(_ name: String) -> String { dir + "/" + name }

    func openssl(_ args: [String]) throws {
        let r = try runTool("/usr/bin/openssl", args)
        if r.status != 0 { throw TestError("openssl \(args.joined(separator: " ")): \(r.err)") }
    }

    func ca(_ name: String) throws {
        try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", path("\(name).key"), "-out", path("\(name).pem"),
                     "-days", "30", "-subj", "/CN=Sluice Test \(name)"])
    }

    /// A key and a certificate signed by `ca`, valid for `days` (negative: already expired).
    func leaf(_ name: String, subject: String, san: String?, days: Int = 30) throws {
        try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", path("\(name).key"), "-out", path("\(name).csr"),
                     "-subj", subject])
        var args = ["x509", "-req", "-in", path("\(name).csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
                    "-set_serial", "\(UInt32.random(in: 1...UInt32.max))", "-out", path("\(name).pem"), "-days", "\(days)"]
        if let san {
            try "subjectAltName=\(san)\n".write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
            args += ["-extfile", path("\(name).ext")]
        }
        try openssl(args)
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    /// `openssl s_client` against 127.0.0.1:`port` with `args`, sending one request with
    /// `Connection: close` and reading until the server closes (so session tickets, sent before
    /// the response, have arrived when it exits).
    func sClient(_ port: UInt16, _ args: [String]) throws -> String {
        let r = try runTool("/usr/bin/openssl", ["s_client", "-connect", "127.0.0.1:\(port)", "-CAfile", path("ca.pem"), "-ign_eof"] + args,
                            stdin: "GET /s_client HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        return r.out + r.err
    }

    /// The subject line s_client printed for the server certificate.
    static func subject(_ output: String) -> String {
        output.split(separator: "\n").first { $0.hasPrefix("subject=") }.map(String.init) ?? ""
    }

    /// curl https://`name`:`port``path` resolved to 127.0.0.1, trusting the test CA: (status, body).
    func curl(_ name: String, _ port: UInt16, _ urlPath: String = "/", extra: [String] = []) throws -> (code: String, body: String) {
        let r = try runTool("/usr/bin/curl", ["-sS", "--cacert", path("ca.pem"), "--resolve", "\(name):\(port):127.0.0.1",
                                              "-w", "\n%{http_code}", "https://\(name):\(port)\(urlPath)"] + extra)
        var lines = r.out.split(separator: "\n", omittingEmptySubsequences: false)
        let code = lines.popLast().map(String.init) ?? ""
        return (code, lines.joined(separator: "\n") + r.err)
    }
}

/// TLS termination and TLS to upstreams, through the real binary, with curl and `openssl s_client`
/// as clients and `openssl s_server` as TLS upstreams.
@Suite(.serialized)
struct TLSTests {
    static func listenerYAML(_ f: TLSFixture, upstream: UInt16, extraTLS: String = "") -> (UInt16) -> String {
        { port in
            """
            listeners:
              - name: https
                address: 127.0.0.1:\(port)
                tls:
                  certificates:
                    - { cert: \(f.path("a.pem")), key: \(f.path("a.key")) }
                    - { cert: \(f.path("b.pem")), key: \(f.path("b.key")) }
                  \(extraTLS)
            upstreams:
              app: { endpoints: ["127.0.0.1:\(upstream)"] }
            routes:
              - name: web
                match: { path_prefix: "/" }
                upstream: app
                sticky: none
            state_file: off
            """
        }
    }

    /// SNI picks each certificate (exact and wildcard), an unknown or absent name gets the first;
    /// curl verifies the chain and name; the upstream sees `X-Forwarded-Proto: https`.
    @Test func sniSelectsTheCertificateAndRequestsAreProxied() throws {
        let f = try TLSFixture()
        defer { f.remove() }
        let up = try TestUpstream { r in .ok("hello \(r.startLine)") }
        defer { up.stop() }
        let log = f.path("access.log")
        let sluice = try SluiceProcess(workers: 2) { port in
            Self.listenerYAML(f, upstream: up.port)(port) + "\naccess_log: { path: \(log) }\n"
        }
        defer { _ = sluice.stop() }

        #expect(TLSFixture.subject(try f.sClient(sluice.port, ["-servername", "a.test"])) == "subject=CN = a.test")
        #expect(TLSFixture.subject(try f.sClient(sluice.port, ["-servername", "b.test"])) == "subject=CN = b.test")
        #expect(TLSFixture.subject(try f.sClient(sluice.port, ["-servername", "www.b.test"])) == "subject=CN = b.test")
        #expect(TLSFixture.subject(try f.sClient(sluice.port, ["-servername", "unknown.example"])) == "subject=CN = a.test")
        #expect(TLSFixture.subject(try f.sClient(sluice.port, ["-noservername"])) == "subject=CN = a.test")

        var r = try f.curl("a.test", sluice.port, "/x")
        #expect(r.code == "200", "\(r.body)")
        #expect(r.body == "hello GET /x HTTP/1.1")
        r = try f.curl("api.b.test", sluice.port, "/y")
        #expect(r.code == "200", "\(r.body)")
        // A name no certificate covers: the default certificate is sent and curl rejects it.
        r = try f.curl("c.test", sluice.port)
        #expect(r.code == "000")
        #expect(r.body.contains("SSL: no alternative certificate subject name matches"), "\(r.body)")
        #expect(up.requests.filter { !$0.startLine.contains("/s_client") }.count == 2)
        #expect(up.requests.allSatisfy { $0.header("X-Forwarded-Proto") == "https" })
        // The access log names the TLS version and cipher (flushed within a second).
        #expect(eventually(3) {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            return text.contains("\"path\":\"/x\"") && text.contains("\"tls_version\":\"TLSv1.3\",\"tls_cipher\":\"TLS_")
        })
    }

    /// TLS 1.0/1.1 are refused; min_version "1.3" refuses 1.2; ALPN answers h2 (HTTP/2 is on by
    /// default on TLS listeners), then http/1.1, and rejects a client offering neither; a session resumes (ticket across two workers, and the
    /// per-worker cache with tickets off); handshakes and resumptions are counted.
    @Test func versionsALPNResumptionAndMetrics() throws {
        let f = try TLSFixture()
        defer { f.remove() }
        let up = try TestUpstream { _ in .ok("ok") }
        defer { up.stop() }
        let sluice = try SluiceProcess(workers: 2, yaml: Self.listenerYAML(f, upstream: up.port))
        defer { _ = sluice.stop() }

        var out = try f.sClient(sluice.port, ["-servername", "a.test", "-tls1_1"])
        #expect(out.contains("alert protocol version") || out.contains("no protocols available"), "\(out)")
        #expect(!out.contains("subject=CN"))
        out = try f.sClient(sluice.port, ["-servername", "a.test", "-tls1"])
        #expect(!out.contains("subject=CN"))
        out = try f.sClient(sluice.port, ["-servername", "a.test", "-tls1_2"])
        #expect(out.contains("Protocol  : TLSv1.2"), "\(out)")
        #expect(out.contains("ECDHE"), "forward secrecy: \(out)")

        // HTTP/2 is on by default on a TLS listener: h2 first (Sluice's preference, whatever the client's order), then http/1.1; nothing else.
        out = try f.sClient(sluice.port, ["-servername", "a.test", "-alpn", "http/1.1,h2"])
        #expect(out.contains("ALPN protocol: h2"), "\(out)")
        out = try f.sClient(sluice.port, ["-servername", "a.test", "-alpn", "http/1.1"])
        #expect(out.contains("ALPN protocol: http/1.1"), "\(out)")
        out = try f.sClient(sluice.port, ["-servername", "a.test", "-alpn", "spdy/3"])
        #expect(out.contains("no application protocol"), "\(out)")

        // Resumption: one full handshake, then every reconnection resumes, whichever of the two
        // workers the kernel hands it to (the ticket keys are shared).
        let sess = f.path("session.pem")
        for version in ["-tls1_3", "-tls1_2"] {
            out = try f.sClient(sluice.port, ["-servername", "a.test", version, "-sess_out", sess])
            #expect(out.contains("\nNew, TLSv1."), "\(out)")
            for _ in 0..<6 {
                // TLS 1.3: a resumed handshake is given a new ticket too (a client such as wrk or
                // a browser uses a ticket once; without a fresh one every other connection would
                // be a full handshake).
                let msg = version == "-tls1_3" ? ["-msg"] : []
                out = try f.sClient(sluice.port, ["-servername", "a.test", version, "-sess_in", sess] + msg)
                #expect(out.contains("\nReused, TLSv1."), "\(version): \(out)")
                if version == "-tls1_3" { #expect(out.contains("NewSessionTicket"), "\(out)") }
            }
        }
        let m = sluice.metrics()
        #expect(m["sluice_tls_resumptions_total{listener=\"https\"}"] == 12)
        #expect(m["sluice_tls_handshakes_total{listener=\"https\",result=\"ok\"}"] == 17)
        #expect(m["sluice_tls_handshakes_total{listener=\"https\",result=\"failed\"}"] == 3)
        let expiry = m["sluice_tls_certificate_expiry_timestamp_seconds{listener=\"https\",name=\"a.test\"}"] ?? 0
        let now = Date().timeIntervalSince1970
        #expect(expiry > now + 29 * 86400 && expiry < now + 31 * 86400, "\(expiry)")
        #expect(m["sluice_tls_certificate_expiry_timestamp_seconds{listener=\"https\",name=\"b.test\"}"] != nil)
    }

    /// min_version "1.3" refuses TLS 1.2; session_tickets: false still resumes from the
    /// worker's session cache (one worker, so the cache that made the session is asked; TLS 1.3
    /// then sends a stateful ticket, a session id into that cache).
    @Test func minVersionAndSessionCacheWithoutTickets() throws {
        let f = try TLSFixture()
        defer { f.remove() }
        let up = try TestUpstream { _ in .ok("ok") }
        defer { up.stop() }
        let sluice = try SluiceProcess(workers: 1, yaml: Self.listenerYAML(
            f, upstream: up.port, extraTLS: "min_version: \"1.3\"\n      session_tickets: false"))
        defer { _ = sluice.stop() }
        var out = try f.sClient(sluice.port, ["-servername", "a.test", "-tls1_2"])
        #expect(!out.contains("subject=CN"), "\(out)")
        let sess = f.path("session12.pem")
        out = try f.sClient(sluice.port, ["-servername", "a.test", "-sess_out", sess])
        #expect(out.contains("\nNew, TLSv1.3"), "\(out)")
        out = try f.sClient(sluice.port, ["-servername", "a.test", "-sess_in", sess])
        #expect(out.contains("\nReused, TLSv1.3"), "\(out)")
    }

    /// With `session_tickets: false` and `session_cache: false` nothing resumes: every connection
    /// is a full handshake (the configuration `bench/compare`'s tlsfull scenario measures).
    @Test func noResumptionWithTicketsAndCacheOff() throws {
        let f = try TLSFixture()
        defer { f.remove() }
        let up = try TestUpstream { _ in .ok("ok") }
        defer { up.stop() }
        let sluice = try SluiceProcess(workers: 1, yaml: Self.listenerYAML(
            f, upstream: up.port, extraTLS: "session_tickets: false\n      session_cache: false"))
        defer { _ = sluice.stop() }
        // TLS 1.3: no ticket arrives, so the saved session offers nothing to resume.
        let sess = f.path("session-off.pem")
        var out = try f.sClient(sluice.port, ["-servername", "a.test", "-tls1_3", "-sess_out", sess])
        #expect(out.contains("\nNew, TLSv1.3"), "\(out)")
        out = try f.sClient(sluice.port, ["-servername", "a.test", "-tls1_3", "-sess_in", sess])
        #expect(out.contains("\nNew, TLSv1.3"), "\(out)")
        // TLS 1.2: s_client -reconnect offers the first session's id five more times; none resumes.
        out = try f.sClient(sluice.port, ["-servername", "a.test", "-tls1_2", "-reconnect"])
        #expect(out.contains("\nNew, TLSv1.2"), "\(out)")
        #expect(!out.contains("Reused"), "\(out)")
        #expect(sluice.metrics()["sluice_tls_resumptions_total{listener=\"https\"}"] ?? 0 == 0)
    }

    /// A config with each certificate problem is rejected by `sluice check` with the key's line.
    @Test func certificateProblemsAreConfigErrors() throws {
        let f = try TLSFixture()
        defer { f.remove() }
        func check(_ cert: String, _ key: String, upstreamTLS: String = "{ ca: \"CA\" }") throws -> (Int32, String) {
            let yaml = """
                listeners:
                  - name: https
                    address: 127.0.0.1:0
                    tls:
                      certificates:
                        - cert: \(cert)
                          key: \(key)
                upstreams:
                  app:
                    endpoints: ["127.0.0.1:9"]
                    tls: \(upstreamTLS.replacingOccurrences(of: "CA", with: f.path("ca.pem")))
                routes:
                  - { name: web, match: { path_prefix: "/" }, upstream: app }
                state_file: off
                """
            let file = f.path("check.yaml")
            try yaml.write(toFile: file, atomically: true, encoding: .utf8)
            let r = try runSluiceCLI(["check", "--config", file])
            return (r.status, r.out + r.err)
        }
        var (status, out) = try check(f.path("a.pem"), f.path("a.key"))
        #expect(status == 0, "\(out)")
        (status, out) = try check(f.path("missing.pem"), f.path("a.key"))
        #expect(status == 1)
        #expect(out.contains("check.yaml:6:") && out.contains("missing.pem: no such file"), "\(out)")
        (status, out) = try check(f.path("a.pem"), f.path("missing.key"))
        #expect(out.contains("check.yaml:7:") && out.contains("missing.key: no such file"), "\(out)")
        (status, out) = try check(f.path("a.pem"), f.path("garbage.key"))
        #expect(status == 1)
        #expect(out.contains("check.yaml:7:") && out.contains("not a readable PEM private key"), "\(out)")
        (status, out) = try check(f.path("a.pem"), f.path("b.key"))
        #expect(out.contains("check.yaml:7:") && out.contains("does not match the certificate"), "\(out)")
        (status, out) = try check(f.path("expired.pem"), f.path("expired.key"))
        #expect(out.contains("check.yaml:6:") && out.contains("expired at"), "\(out)")
        (status, out) = try check(f.path("a.key"), f.path("a.key"))
        #expect(out.contains("no PEM certificate in the file"), "\(out)")
        (status, out) = try check(f.path("a.pem"), f.path("a.key"), upstreamTLS: "{ ca: /nonexistent/ca.pem }")
        #expect(out.contains("check.yaml:11:") && out.contains("/nonexistent/ca.pem: no such file"), "\(out)")
        (status, out) = try check(f.path("a.pem"), f.path("a.key"), upstreamTLS: "{ cert: \(f.path("client.pem")) }")
        #expect(out.contains("a client certificate needs its `key`"), "\(out)")
        (status, out) = try check(f.path("a.pem"), f.path("a.key"), upstreamTLS: "{ verify: false }")
        #expect(status == 0)
        #expect(out.contains("warning: ") && out.contains("upstreams.app.tls.verify is false"), "\(out)")
        (status, out) = try check(f.path("a.pem"), f.path("a.key") + "\n      min_version: \"1.1\"")
        #expect(out.contains("unsupported TLS version `1.1`"), "\(out)")
    }

    /// TLS to upstreams (`openssl s_server -www`, which prints whether the session was reused
    /// and the client certificate it got): verification passes with the right CA and name, and
    /// fails with a 502 counted as `tls_handshake` for a wrong name or CA or a missing client
    /// certificate; mTLS presents the configured certificate; the second connection to an
    /// endpoint resumes the first's session.
    @Test func upstreamTLSVerifiesResumesAndPresentsClientCertificates() throws {
        let f = try TLSFixture()
        defer { f.remove() }
        let plainPort = try TestSocket.closedPort(), mtlsPort = try TestSocket.closedPort()
        let plain = try ChildProcess("/usr/bin/openssl", ["s_server", "-accept", "127.0.0.1:\(plainPort)", "-cert", f.path("b.pem"),
                                                          "-key", f.path("b.key"), "-www"])
        defer { plain.stop() }
        let mtls = try ChildProcess("/usr/bin/openssl", ["s_server", "-accept", "127.0.0.1:\(mtlsPort)", "-cert", f.path("b.pem"),
                                                         "-key", f.path("b.key"), "-www", "-Verify", "1", "-CAfile", f.path("ca.pem")])
        defer { mtls.stop() }
        #expect(plain.waitFor("ACCEPT") && mtls.waitFor("ACCEPT"))
        let ca = f.path("ca.pem")
        let sluice = try SluiceProcess(workers: 1) { port in
            """
            listeners:
              - name: plain
                address: 127.0.0.1:\(port)
            upstreams:
              good: { endpoints: ["127.0.0.1:\(plainPort)"], tls: { ca: \(ca), server_name: b.test } }
              wildcard: { endpoints: ["127.0.0.1:\(plainPort)"], tls: { ca: \(ca), server_name: x.b.test } }
              wrongname: { endpoints: ["127.0.0.1:\(plainPort)"], tls: { ca: \(ca), server_name: a.test } }
              wrongca: { endpoints: ["127.0.0.1:\(plainPort)"], tls: { ca: \(f.path("other-ca.pem")), server_name: b.test } }
              noverify: { endpoints: ["127.0.0.1:\(plainPort)"], tls: { ca: \(f.path("other-ca.pem")), verify: false } }
              mtls: { endpoints: ["127.0.0.1:\(mtlsPort)"], tls: { ca: \(ca), server_name: b.test, cert: \(f.path("client.pem")), key: \(f.path("client.key")) } }
              nocert: { endpoints: ["127.0.0.1:\(mtlsPort)"], tls: { ca: \(ca), server_name: b.test } }
            routes:
              - { name: good, match: { path_prefix: /good }, upstream: good, sticky: none }
              - { name: wildcard, match: { path_prefix: /wildcard }, upstream: wildcard, sticky: none }
              - { name: wrongname, match: { path_prefix: /wrongname }, upstream: wrongname, sticky: none }
              - { name: wrongca, match: { path_prefix: /wrongca }, upstream: wrongca, sticky: none }
              - { name: noverify, match: { path_prefix: /noverify }, upstream: noverify, sticky: none }
              - { name: mtls, match: { path_prefix: /mtls }, upstream: mtls, sticky: none }
              - { name: nocert, match: { path_prefix: /nocert }, upstream: nocert, sticky: none }
            state_file: off
            """
        }
        defer { _ = sluice.stop() }
        func get(_ path: String) throws -> (code: String, body: String) {
            let r = try runTool("/usr/bin/curl", ["-sS", "-w", "\n%{http_code}", "http://127.0.0.1:\(sluice.port)\(path)"])
            var lines = r.out.split(separator: "\n", omittingEmptySubsequences: false)
            let code = lines.popLast().map(String.init) ?? ""
            return (code, lines.joined(separator: "\n"))
        }
        var r = try get("/good")
        #expect(r.code == "200", "\(r.body)")
        #expect(r.body.contains("New, TLSv1.3"), "\(r.body)")
        r = try get("/good")
        #expect(r.code == "200")
        #expect(r.body.contains("Reused, TLSv1.3"), "the second connection resumes: \(r.body)")
        r = try get("/wildcard")
        #expect(r.code == "200", "\(r.body)")
        r = try get("/noverify")
        #expect(r.code == "200", "\(r.body)")
        r = try get("/mtls")
        #expect(r.code == "200", "\(r.body)")
        #expect(r.body.contains("Subject: CN=sluice-client"), "\(r.body)")
        for bad in ["wrongname", "wrongca", "nocert"] {
            r = try get("/\(bad)")
            #expect(r.code == "502", "\(bad): \(r.body)")
            #expect(r.body.trimmingCharacters(in: .whitespacesAndNewlines) == "upstream TLS handshake failed", "\(bad): \(r.body)")
        }
        let m = sluice.metrics()
        for bad in ["wrongname", "wrongca", "nocert"] {
            #expect(m["sluice_upstream_errors_total{route=\"\(bad)\",cohort=\"\(bad)\",reason=\"tls_handshake\"}"] == 1, "\(bad)")
        }
        #expect(m["sluice_upstream_errors_total{route=\"good\",cohort=\"good\",reason=\"tls_handshake\"}"] == 0)
    }

    /// A TLS listener accepts at most 8 connections per listener event (their handshakes run in
    /// that loop iteration); the listener is level-triggered, so the rest are reported again. 30
    /// connections queued while the process is stopped are all served once it runs.
    @Test func aBurstOfQueuedTLSConnectionsIsServedFromALevelTriggeredListener() throws {
        let f = try TLSFixture()
        defer { f.remove() }
        let up = try TestUpstream { _ in .ok("ok") }
        defer { up.stop() }
        let sluice = try SluiceProcess(workers: 1, yaml: Self.listenerYAML(f, upstream: up.port))
        defer { _ = sluice.stop() }
        let pid = sluice.process.processIdentifier
        #expect(kill(pid, SIGSTOP) == 0)
        var resumed = false
        defer { if !resumed { kill(pid, SIGCONT) } }
        let n = 30
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments = ["-sS", "--cacert", f.path("ca.pem"), "--resolve", "a.test:\(sluice.port):127.0.0.1", "-m", "20",
                          "--parallel", "--parallel-immediate", "--parallel-max", "\(n)", "-w", "%{http_code}\n", "-o", "/dev/null"]
            + (0..<n).flatMap { ["https://a.test:\(sluice.port)/\($0)", "-o", "/dev/null"] }
        let out = Pipe()
        curl.standardOutput = out
        curl.standardError = FileHandle.nullDevice
        try curl.run()
        // If this process dies here, sluice stays stopped (SIGSTOP; nothing kills it with us).
        // Wait until all 30 (their ClientHellos sent) sit in the stopped process's accept queue.
        #expect(eventually(10) { Self.acceptQueueLength(port: sluice.port) >= n })
        #expect(kill(pid, SIGCONT) == 0)
        resumed = true
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        curl.waitUntilExit()
        let codes = text.split(separator: "\n")
        #expect(codes.count == n && codes.allSatisfy { $0 == "200" }, "\(text)")
        // (SluiceProcess's start-up probe connection is counted too.)
        #expect((sluice.metrics()[#"sluice_connections_accepted_total{listener="https"}"#] ?? 0) >= Double(n))
    }

    /// Connections waiting to be accepted on 127.0.0.1:`port` (the LISTEN socket's rx_queue in
    /// /proc/net/tcp; with SO_REUSEPORT, summed over the listening sockets).
    static func acceptQueueLength(port: UInt16) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return 0 }
        let local = String(format: "0100007F:%04X", port)
        var total = 0
        for line in text.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ")
            guard f.count > 4, f[1] == local, f[3] == "0A" else { continue }
            let queues = f[4].split(separator: ":")
            if queues.count == 2 { total += Int(queues[1], radix: 16) ?? 0 }
        }
        return total
    }

    /// Renewed certificate files are served to new handshakes after `sluice reload`, while a
    /// keep-alive connection opened before keeps working; a reload with a key that does not
    /// match is rejected and the renewed certificate keeps serving.
    @Test func reloadSwapsCertificatesWithoutDroppingConnections() throws {
        let f = try TLSFixture()
        defer { f.remove() }
        let up = try TestUpstream { r in .ok("served \(r.startLine.split(separator: " ")[1])") }
        defer { up.stop() }
        let sluice = try SluiceProcess(workers: 2, yaml: Self.listenerYAML(f, upstream: up.port))
        defer { _ = sluice.stop() }
        let before = try f.sClient(sluice.port, ["-servername", "a.test"])
        #expect(TLSFixture.subject(before) == "subject=CN = a.test")

        let open = try ChildProcess("/usr/bin/openssl", ["s_client", "-quiet", "-connect", "127.0.0.1:\(sluice.port)",
                                                         "-servername", "a.test", "-CAfile", f.path("ca.pem")])
        defer { open.stop() }
        open.send("GET /one HTTP/1.1\r\nHost: a.test\r\n\r\n")
        #expect(open.waitFor("served /one"), "\(open.output)")

        try f.leaf("a", subject: "/CN=a.test/O=renewed", san: "DNS:a.test,DNS:*.a.test")
        var r = try runSluiceCLI(["reload", "--config", sluice.configPath])
        #expect(r.status == 0, "\(r.out)\(r.err)")
        #expect(TLSFixture.subject(try f.sClient(sluice.port, ["-servername", "a.test"])) == "subject=CN = a.test, O = renewed")
        #expect(TLSFixture.subject(try f.sClient(sluice.port, ["-servername", "b.test"])) == "subject=CN = b.test")

        open.send("GET /two HTTP/1.1\r\nHost: a.test\r\n\r\n")
        #expect(open.waitFor("served /two"), "the connection opened before the reload still works: \(open.output)")
        #expect(up.connections >= 1)

        // A broken renewal: the key no longer matches. The reload is rejected with the line.
        try FileManager.default.removeItem(atPath: f.path("a.key"))
        try FileManager.default.copyItem(atPath: f.path("b.key"), toPath: f.path("a.key"))
        r = try runSluiceCLI(["reload", "--config", sluice.configPath])
        #expect(r.status != 0)
        #expect((r.out + r.err).contains("does not match the certificate"), "\(r.out)\(r.err)")
        #expect(TLSFixture.subject(try f.sClient(sluice.port, ["-servername", "a.test"])) == "subject=CN = a.test, O = renewed")
        open.send("GET /three HTTP/1.1\r\nHost: a.test\r\n\r\n")
        #expect(open.waitFor("served /three"), "\(open.output)")
    }
}
