import Foundation
import SluiceControl
import SluiceCore
import Testing

/// Where `needle` occurs (the `occurrence`-th time) in `text`: 1-based line and column.
func position(of needle: String, in text: String, occurrence: Int = 1) -> (line: Int, column: Int) {
    var seen = 0
    for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        var rest = line[...]
        while let r = rest.range(of: needle) {
            seen += 1
            if seen == occurrence { return (i + 1, line.distance(from: line.startIndex, to: r.lowerBound) + 1) }
            rest = rest[r.upperBound...]
        }
    }
    Issue.record("`\(needle)` not found")
    return (0, 0)
}

/// Loading, defaults, value formats, and diagnostics with exact positions.
@Suite struct ConfigLoaderTests {
    @Test func issueExampleParsesAsWritten() throws {
        let config = try #require(mustLoad(RoutingTableTests.exampleConfig))
        #expect(config.listeners == [ListenerSpec(name: "public", address: .v4(0x7f00_0001, port: 8080))])
        #expect(config.adminAddress == .v4(0x7f00_0001, port: 9901))
        #expect(config.adminToken == nil)
        let t = config.table
        #expect(t.version == 1)
        #expect(t.upstreams.map(\.name) == ["stable", "canary"])
        #expect(t.upstreams[0].endpoints.map(\.address) == [.v4(0x7f00_0001, port: 9001), .v4(0x7f00_0001, port: 9002)])
        #expect(t.routes.count == 1)
        let web = t.routes[0]
        #expect(web.name == "web")
        #expect(web.cohorts.map(\.name) == ["stable", "canary"])
        #expect(web.cohorts.map(\.weight) == [9_500, 500])
        #expect(web.cohorts.map(\.upstream) == [0, 1])
        #expect(web.baseline == 0)
        #expect(web.sticky == .cookie("session_id"))
        #expect(config.accessLog == .off)
        #expect(config.timeouts == Timeouts())
        #expect(config.limits == Limits())
        #expect(config.workers >= 1)
        #expect(config.sourcePath == nil)
    }

    @Test func demoConfigParses() throws {
        let config = try ConfigLoader.parse(yaml: DemoConfig.yaml, file: "demo")
        #expect(config.listeners.map(\.address) == [.v4(0x7f00_0001, port: 8080)])
        #expect(config.adminAddress == .v4(0x7f00_0001, port: 9901))
        let t = config.table
        #expect(t.upstreams.map(\.name) == ["stable", "canary"])
        #expect(t.upstreams.map { $0.endpoints[0].address } == [.v4(0x7f00_0001, port: 9101), .v4(0x7f00_0001, port: 9102)])
        #expect(t.routes.map(\.name) == ["web"])
        #expect(t.routes[0].cohorts.map(\.weight) == [9_000, 1_000])
        #expect(t.routes[0].sticky == .assigned(cookie: "sluice_sticky", maxAge: nil))
        let forced = decide(t, TestRequest(headers: [("X-Canary", "always")]))
        #expect(forced.upstream == 1 && !forced.setStickyCookie)
        #expect(decide(t, TestRequest(), entropy: 5).setStickyCookie)
    }

    @Test func everyTopLevelKeyIsRead() throws {
        let config = try #require(mustLoad("""
            workers: 3
            listeners:
              - { name: public, address: 127.0.0.1:8080 }
              - { name: v6, address: "[::1]:8081" }
              - { address: "localhost:0" }
            admin: { address: 127.0.0.1:9999, token: s3cret }
            timeouts:
              client_header: 250ms
              client_idle: 2m
              client_send: 1h
              upstream_connect: 3
              upstream_response_header: 1d
              upstream_idle: 90s
              drain: 0
            limits:
              max_request_line: 4KiB
              max_header_bytes: 64k
              max_header_count: 50
              max_body_bytes: 0
              max_requests_per_connection: 0
              max_connections_per_worker: 1_000
              upstream_max_idle: 8
              splice_min_body: 1MiB
            access_log: { path: /var/log/sluice/access.log }
            upstreams:
              api: { endpoints: ["api.internal:80", { address: "[::1]:9000", weight: 2 }] }
            routes:
              - { name: all, upstream: api }
            """))
        #expect(config.workers == 3)
        #expect(config.listeners.map(\.name) == ["public", "v6", "listener-2"])
        #expect(config.listeners.map(\.address) == [.v4(0x7f00_0001, port: 8080), .v6(hi: 0, lo: 1, port: 8081),
                                                    .v4(0x7f00_0001, port: 0)])
        #expect(config.adminAddress == .v4(0x7f00_0001, port: 9999))
        #expect(config.adminToken == "s3cret")
        var t = Timeouts()
        t.clientHeader = 250_000_000
        t.clientIdle = 120_000_000_000
        t.clientSend = 3_600_000_000_000
        t.upstreamConnect = 3_000_000_000
        t.upstreamResponseHeader = 86_400_000_000_000
        t.upstreamIdle = 90_000_000_000
        t.drain = 0
        #expect(config.timeouts == t)
        var l = Limits()
        l.parser.maxRequestLine = 4096
        l.parser.maxHeadBytes = 65_536
        l.parser.maxFields = 50
        l.maxBodyBytes = 0
        l.maxRequestsPerConnection = 0
        l.maxConnectionsPerWorker = 1_000
        l.upstreamMaxIdle = 8
        l.spliceMinBody = 1 << 20
        #expect(config.limits == l)
        #expect(config.accessLog == .file("/var/log/sluice/access.log"))
        let endpoints = config.table.upstreams[0].endpoints
        #expect(endpoints.map(\.address) == [.v4(0x0a01_0203, port: 80), .v6(hi: 0, lo: 1, port: 9000)])
        #expect(endpoints.map(\.label) == ["api.internal:80", "[::1]:9000"])
        #expect(endpoints.map(\.weight) == [1, 2])
    }

    @Test(arguments: [
        ("250ms", UInt64(250_000_000)), ("10s", 10_000_000_000), ("5m", 300_000_000_000), ("1h", 3_600_000_000_000),
        ("1d", 86_400_000_000_000), ("7", 7_000_000_000), ("1_000ms", 1_000_000_000),
    ])
    func durations(text: String, nanoseconds: UInt64) throws {
        let config = try #require(mustLoad(baseYAML + "timeouts: { upstream_idle: \(text) }\nroutes: [{ name: r, upstream: stable }]\n"))
        #expect(config.timeouts.upstreamIdle == nanoseconds)
    }

    @Test(arguments: [
        ("1024", UInt64(1024)), ("8KiB", 8192), ("8k", 8192), ("8K", 8192), ("1MiB", 1 << 20), ("1m", 1 << 20),
        ("1GiB", 1 << 30), ("2g", 2 << 30), ("3MB", 3 << 20), ("0", 0),
    ])
    func sizes(text: String, bytes: UInt64) throws {
        let config = try #require(mustLoad(baseYAML + "limits: { max_body_bytes: \(text) }\nroutes: [{ name: r, upstream: stable }]\n"))
        #expect(config.limits.maxBodyBytes == bytes)
    }

    @Test(arguments: [
        ("99.5", "0.5", [9_950, 50]), ("99.99", "0.01", [9_999, 1]), ("\"95%\"", "\"5%\"", [9_500, 500]),
        ("100", "0", [10_000, 0]), ("0", "100.00", [0, 10_000]), ("33.3", "66.7", [3_330, 6_670]),
    ])
    func weights(a: String, b: String, units: [Int]) throws {
        let config = try #require(mustLoad(baseYAML + "routes: [{ name: r, split: { stable: \(a), canary: \(b) } }]\n"))
        #expect(config.table.routes[0].cohorts.map(\.weight) == units)
    }

    @Test func loadReadsAFileAndRecordsItsPath() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-config-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("sluice.yaml").path
        try DemoConfig.yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let config = try ConfigLoader.load(path: path, version: 7)
        #expect(config.sourcePath == path)
        #expect(config.table.version == 7)

        let missing = dir.appendingPathComponent("missing.yaml").path
        #expect {
            try ConfigLoader.load(path: missing)
        } throws: { error in
            guard let e = error as? ConfigError, let d = e.diagnostics.first else { return false }
            return d.file == missing && d.message.contains("No such file or directory")
        }
    }

    @Test func hostNamesResolveWithTheSystemResolver() throws {
        // /etc/hosts has localhost; numeric addresses never reach the resolver.
        let config = try ConfigLoader.parse(yaml: """
            listeners: [{ name: public, address: "localhost:8080" }]
            upstreams: { local: { endpoints: ["localhost:9001"] } }
            routes: [{ name: r, upstream: local }]
            """, file: "x.yaml")
        #expect(config.listeners[0].address.isLoopback)
        #expect(config.table.upstreams[0].endpoints[0].address.port == 9001)
        #expect(config.table.upstreams[0].endpoints[0].label == "localhost:9001")
    }
}

/// Each kind of config error: the message, the key path, and the exact line and column.
@Suite struct ConfigDiagnosticTests {
    /// One broken config, and where and what its single diagnostic must be.
    struct Case: CustomTestStringConvertible, Sendable {
        var label: String
        var yaml: String
        /// The diagnostic must point at this text (its first occurrence, or `occurrence`).
        var at: String
        var occurrence = 1
        var keyPath: String
        var message: String
        var hint: String? = nil
        var testDescription: String { label }
    }

    static let cases: [Case] = [
        Case(label: "weights do not sum to 100", yaml: baseYAML + """
            routes:
              - name: web
                split: { stable: 95, canary: 4.5 }
            """, at: "{ stable", keyPath: "routes[0].split", message: "weights sum to 99.5, must be 100",
             hint: "set `stable` to 95.5"),
        Case(label: "weights over 100 in block style", yaml: baseYAML + """
            routes:
              - name: web
                split:
                  stable: 95
                  canary: 10
            """, at: "stable: 95", keyPath: "routes[0].split", message: "weights sum to 105, must be 100"),
        Case(label: "weight with three decimals", yaml: baseYAML + """
            routes:
              - { name: web, split: { stable: 99.995, canary: 0.01 } }
            """, at: "99.995", keyPath: "routes[0].split.stable", message: "more than two decimals"),
        Case(label: "split names an unknown cohort", yaml: baseYAML + """
            routes:
              - name: web
                split: { stable: 95, canery: 5 }
            """, at: "canery", keyPath: "routes[0].split.canery", message: "cohort `canery` is neither an upstream nor a declared cohort",
             hint: "did you mean `canary`?"),
        Case(label: "route names an unknown upstream", yaml: baseYAML + """
            routes:
              - name: web
                upstream: stabel
            """, at: "stabel", keyPath: "routes[0].upstream", message: "upstream `stabel` does not exist",
             hint: "did you mean `stable`?"),
        Case(label: "rule names an unknown cohort", yaml: baseYAML + """
            routes:
              - name: web
                split: { stable: 100 }
                rules:
                  - match: { header: { name: X-Canary, value: always } }
                    cohort: blue
            """, at: "blue", keyPath: "routes[0].rules[0].cohort", message: "cohort `blue` does not exist"),
        Case(label: "baseline not in the split", yaml: baseYAML + """
            routes:
              - name: web
                baseline: canary
                split: { stable: 100 }
            """, at: "canary", occurrence: 2, keyPath: "routes[0].baseline",
             message: "baseline `canary` is not a cohort of this route's split"),
        Case(label: "declared cohort names an unknown upstream", yaml: baseYAML + """
            routes:
              - name: web
                cohorts: { blue: { upstream: pool-a } }
                split: { blue: 100 }
            """, at: "pool-a", keyPath: "routes[0].cohorts.blue.upstream", message: "upstream `pool-a` does not exist"),
        Case(label: "duplicate listener name", yaml: """
            listeners:
              - name: public
                address: 127.0.0.1:8080
              - name: public
                address: 127.0.0.1:8081
            upstreams: { stable: { endpoints: ["127.0.0.1:9001"] } }
            routes: [{ name: web, upstream: stable }]
            """, at: "public", occurrence: 2, keyPath: "listeners[1].name",
             message: "duplicate listener name `public` (first used at line 2)"),
        Case(label: "duplicate upstream name", yaml: """
            listeners: [{ name: public, address: 127.0.0.1:8080 }]
            upstreams:
              stable: { endpoints: ["127.0.0.1:9001"] }
              canary: { endpoints: ["127.0.0.1:9002"] }
              stable: { endpoints: ["127.0.0.1:9003"] }
            routes: [{ name: web, upstream: stable }]
            """, at: "stable", occurrence: 2, keyPath: "upstreams.stable",
             message: "duplicate upstream name `stable` (first defined at line 3)"),
        Case(label: "duplicate route name", yaml: baseYAML + """
            routes:
              - name: web
                upstream: stable
              - name: web
                upstream: canary
            """, at: "web", occurrence: 2, keyPath: "routes[1].name", message: "duplicate route name `web` (first used at line 8)"),
        Case(label: "duplicate key inside a list item", yaml: baseYAML + """
            routes:
              - name: web
                upstream: stable
              - name: api
                upstream: stable
                name: api2
            """, at: "name: api2", keyPath: "routes[1].name", message: "duplicate key `name`"),
        Case(label: "duplicate key in a flow mapping", yaml: baseYAML + """
            routes:
              - name: web
                split: { stable: 50, stable: 50 }
            """, at: "stable: 50", occurrence: 2, keyPath: "routes[0].split.stable", message: "duplicate key `stable`"),
        Case(label: "invalid regex", yaml: baseYAML + """
            routes:
              - name: web
                match: { header: { name: User-Agent, regex: "^(curl|wget" } }
                upstream: stable
            """, at: "\"^(curl", keyPath: "routes[0].match.header.regex", message: "invalid regex `^(curl|wget`: missing `)`"),
        Case(label: "unsupported regex syntax", yaml: baseYAML + """
            routes:
              - name: web
                match: { header: { name: X-Id, regex: "^[0-9]{4}$" } }
                upstream: stable
            """, at: "\"^[0-9]", keyPath: "routes[0].match.header.regex", message: "counted repetition"),
        Case(label: "invalid CIDR", yaml: baseYAML + """
            routes:
              - name: web
                match: { source: [10.0.0.0/8, 10.0.0.1/8] }
                upstream: stable
            """, at: "10.0.0.1/8", keyPath: "routes[0].match.source[1]", message: "invalid CIDR `10.0.0.1/8`"),
        Case(label: "invalid v6 CIDR", yaml: baseYAML + """
            routes:
              - name: web
                match: { source: "::1/129" }
                upstream: stable
            """, at: "\"::1/129\"", keyPath: "routes[0].match.source", message: "invalid CIDR `::1/129`"),
        Case(label: "port out of range", yaml: """
            listeners: [{ name: public, address: 127.0.0.1:8080 }]
            upstreams:
              stable: { endpoints: ["127.0.0.1:99999"] }
            routes: [{ name: web, upstream: stable }]
            """, at: "\"127.0.0.1:99999\"", keyPath: "upstreams.stable.endpoints[0]", message: "port 99999 in `127.0.0.1:99999` is out of range"),
        Case(label: "address without port", yaml: """
            listeners: [{ name: public, address: 127.0.0.1 }]
            upstreams: { stable: { endpoints: ["127.0.0.1:9001"] } }
            routes: [{ name: web, upstream: stable }]
            """, at: "127.0.0.1 }", keyPath: "listeners[0].address", message: "invalid address `127.0.0.1`: missing `:port`"),
        Case(label: "bad IPv4 address", yaml: """
            listeners: [{ name: public, address: 127.0.0.1:8080 }]
            upstreams:
              stable:
                endpoints:
                  - address: 300.1.2.3:80
                    weight: 2
            routes: [{ name: web, upstream: stable }]
            """, at: "300.1.2.3", keyPath: "upstreams.stable.endpoints[0].address", message: "invalid IPv4 address `300.1.2.3`"),
        Case(label: "unresolvable host name", yaml: """
            listeners: [{ name: public, address: 127.0.0.1:8080 }]
            upstreams:
              stable: { endpoints: ["127.0.0.1:9001", "nowhere.invalid:80"] }
            routes: [{ name: web, upstream: stable }]
            """, at: "\"nowhere", keyPath: "upstreams.stable.endpoints[1]",
             message: "cannot resolve host name `nowhere.invalid`: Name or service not known"),
        Case(label: "unknown key with suggestion", yaml: baseYAML + """
            routes:
              - name: web
                splt: { stable: 95, canary: 5 }
            """, at: "splt", keyPath: "routes[0]", message: "unknown key `splt`", hint: "did you mean `split`?"),
        Case(label: "unknown top-level key", yaml: baseYAML + """
            timeout: { drain: 5s }
            routes: [{ name: web, upstream: stable }]
            """, at: "timeout:", keyPath: "", message: "unknown key `timeout`", hint: "did you mean `timeouts`?"),
        Case(label: "string where a mapping is expected", yaml: baseYAML + """
            routes:
              - name: web
                match: /api
                upstream: stable
            """, at: "/api", keyPath: "routes[0].match", message: "expected a mapping, found the string `/api`"),
        Case(label: "mapping where a string is expected", yaml: baseYAML + """
            routes:
              - name: { first: web }
                upstream: stable
            """, at: "{ first", keyPath: "routes[0].name", message: "expected a string, found a mapping"),
        Case(label: "missing required key", yaml: baseYAML + """
            routes:
              - upstream: stable
                match: { path_prefix: / }
            """, at: "upstream: stable", occurrence: 1, keyPath: "routes[0]", message: "missing required key `name`"),
        Case(label: "missing endpoints", yaml: """
            listeners: [{ name: public, address: 127.0.0.1:8080 }]
            upstreams:
              stable: { endpoint: ["127.0.0.1:9001"] }
            routes: [{ name: web, upstream: stable }]
            """, at: "endpoint:", keyPath: "upstreams.stable", message: "unknown key `endpoint`", hint: "did you mean `endpoints`?"),
        Case(label: "bad duration", yaml: baseYAML + """
            timeouts: { upstream_connect: 5 sec }
            routes: [{ name: web, upstream: stable }]
            """, at: "5 sec", keyPath: "timeouts.upstream_connect", message: "invalid duration `5 sec`"),
        Case(label: "bad size", yaml: baseYAML + """
            limits: { max_header_bytes: 32XB }
            routes: [{ name: web, upstream: stable }]
            """, at: "32XB", keyPath: "limits.max_header_bytes", message: "invalid size `32XB`"),
        Case(label: "lowercase method", yaml: baseYAML + """
            routes:
              - { name: web, match: { method: [GET, post] }, upstream: stable }
            """, at: "post", keyPath: "routes[0].match.method[1]", message: "methods are case-sensitive", hint: "did you mean `POST`?"),
        Case(label: "rule without action", yaml: baseYAML + """
            routes:
              - name: web
                upstream: stable
                rules:
                  - match: { path: /x }
            """, at: "match: { path: /x }", keyPath: "routes[0].rules[0]", message: "a rule needs `cohort` or `respond`"),
        Case(label: "header match without a test", yaml: baseYAML + """
            routes:
              - { name: web, match: { header: { name: X-A } }, upstream: stable }
            """, at: "{ name: X-A", keyPath: "routes[0].match.header", message: "a header match needs one of"),
        Case(label: "YAML syntax error", yaml: baseYAML + """
            routes:
              - name: web
                upstream: [stable
            """, at: "", keyPath: "", message: "YAML syntax error"),
        Case(label: "workers", yaml: baseYAML + """
            workers: many
            routes: [{ name: web, upstream: stable }]
            """, at: "many", keyPath: "workers", message: "expected a number of worker threads or `auto`"),
        Case(label: "sticky with two sources", yaml: baseYAML + """
            routes:
              - { name: web, split: { stable: 50, canary: 50 }, sticky: { cookie: a, header: X-B } }
            """, at: "header: X-B", keyPath: "routes[0].sticky.header", message: "`cookie` and `header` cannot both be set"),
        Case(label: "admin on a listener's address", yaml: baseYAML + """
            admin: { address: 127.0.0.1:8080 }
            routes: [{ name: web, upstream: stable }]
            """, at: "127.0.0.1:8080 }", keyPath: "admin.address", message: "is also the address of listener `public`"),
    ]

    @Test(arguments: cases)
    func reportsOneDiagnostic(_ c: Case) throws {
        let found = diagnostics(c.yaml)
        try #require(found.count == 1, "expected one diagnostic, got:\n\(found.map(\.description).joined(separator: "\n"))")
        let d = found[0]
        #expect(d.file == "sluice.yaml")
        #expect(d.keyPath == c.keyPath)
        #expect(d.message.contains(c.message), "message: \(d.message)")
        if let hint = c.hint { #expect(d.hint?.contains(hint) == true, "hint: \(d.hint ?? "nil")") }
        if !c.at.isEmpty {
            let (line, column) = position(of: c.at, in: c.yaml, occurrence: c.occurrence)
            #expect(d.line == line && d.column == column, "at \(d.line):\(d.column), expected \(line):\(column)")
        } else {
            #expect(d.line > 0)
        }
    }

    @Test func positionsAreTheOnesAPersonSees() throws {
        // Spelled out once by hand, independent of the `position(of:)` helper.
        let yaml = """
            listeners:
              - name: public
                address: 127.0.0.1:8080
            upstreams:
              stable: { endpoints: ["127.0.0.1:9001"] }
            routes:
              - name: web
                split: { stable: 99.5 }
            """
        let d = try #require(diagnostics(yaml).first)
        #expect(d.line == 8 && d.column == 12)
        #expect(d.description == """
            sluice.yaml:8:12: routes[0].split: weights sum to 99.5, must be 100
              hint: weights are percentages that must add up to exactly 100
            """)
    }

    @Test func everyProblemInAFileIsReported() {
        let yaml = """
            workers: 0
            listeners:
              - name: public
                address: 127.0.0.1:8080
              - name: public
                address: 127.0.0.1:8080
            upstreams:
              stable: { endpoints: ["127.0.0.1:9001"] }
              canary: { endpoints: ["127.0.0.1:9002", "nowhere.invalid:1"] }
            routes:
              - name: web
                splt: {}
                split: { stable: 90, canary: 5 }
                rules:
                  - match: { header: { name: X-A, regex: "(" }, source: bogus }
                    cohort: green
              - name: web
                upstream: stabel
            """
        let found = diagnostics(yaml)
        let summary = found.map { "\($0.line):\($0.column) \($0.keyPath): \($0.message)" }
        #expect(summary == [
            "1:10 workers: 0 is out of range, must be 1...1024",
            "5:11 listeners[1].name: duplicate listener name `public` (first used at line 3)",
            "6:14 listeners[1].address: address 127.0.0.1:8080 is already used by a listener at line 4",
            "9:43 upstreams.canary.endpoints[1]: cannot resolve host name `nowhere.invalid`: Name or service not known",
            "12:5 routes[0]: unknown key `splt`",
            "13:12 routes[0].split: weights sum to 95, must be 100",
            "15:46 routes[0].rules[0].match.header.regex: invalid regex `(`: missing `)` (at offset 0)",
            "15:61 routes[0].rules[0].match.source: invalid CIDR `bogus`",
            "16:17 routes[0].rules[0].cohort: cohort `green` does not exist",
            "17:11 routes[1].name: duplicate route name `web` (first used at line 11)",
            "18:15 routes[1].upstream: upstream `stabel` does not exist",
        ], "\(summary.joined(separator: "\n"))")
        let text = ConfigError(diagnostics: found).description
        #expect(text.hasSuffix("\(found.count) errors in config"))
    }

    @Test func yamlSyntaxErrorsPointAtTheProblem() {
        let tab = diagnostics("listeners:\n\t- name: x\n")
        #expect(tab.count == 1)
        #expect(tab.first?.line == 2 && tab.first?.column == 1)
        #expect(tab.first?.message == "YAML syntax error: found character that cannot start any token")
        let unclosed = diagnostics("routes:\n  - name: web\n    upstream: [stable\n")
        #expect(unclosed.first?.message == "YAML syntax error: did not find expected ',' or ']'")
        #expect(unclosed.first?.hint?.hasPrefix("while parsing a flow sequence that starts at line 3, column 15") == true)
    }

    @Test func emptyAndNonMappingDocuments() {
        #expect(diagnostics("").first?.message == "the config is empty")
        #expect(diagnostics("# only a comment\n").first?.message == "the config is empty")
        let list = diagnostics("- a\n- b\n")
        #expect(list.first?.message == "expected a mapping, found a list")
        #expect(list.first?.line == 1 && list.first?.column == 1)
    }
}

/// `access_log.fields` and `access_log.redact_query`.
struct AccessLogConfigTests {
    @Test func fieldsAndRedactionAreRead() throws {
        let config = try load(controllerYAML(top: "access_log: { path: stdout, fields: [time, host, path, status, error], redact_query: [token, api_key] }"))
        #expect(config.accessLog == .stdout)
        #expect(config.accessLogFormat.fields == [.time, .host, .path, .status, .error])
        #expect(config.accessLogFormat == AccessLogFormat(fields: [.time, .host, .path, .status, .error], redactQuery: ["token", "api_key"]))
        // Default: every field, nothing redacted.
        let plain = try load(controllerYAML(top: "access_log: { path: stdout }"))
        #expect(plain.accessLogFormat == .all && plain.accessLogFormat.redactQuery.isEmpty)
    }

    @Test func badFieldsAreReportedWithTheirLine() {
        for (yaml, message) in [
            ("access_log: { path: stdout, fields: [time, hots] }", "unknown access-log field `hots`"),
            ("access_log: { path: stdout, fields: [time, time] }", "field `time` is listed twice"),
            ("access_log: { path: stdout, fields: [] }", "at least one field is required"),
            ("access_log: { path: stdout, redact_query: [\"a=b\"] }", "`a=b` is not a query parameter name"),
            ("access_log: { path: stdout, redact: [token] }", "redact"),
        ] {
            #expect(throws: ConfigError.self) { try load(controllerYAML(top: yaml)) }
            do {
                _ = try load(controllerYAML(top: yaml))
            } catch {
                #expect(error.description.contains(message), "\(yaml): \(error.description)")
                #expect(error.diagnostics.allSatisfy { $0.line > 0 })
            }
        }
    }
}
