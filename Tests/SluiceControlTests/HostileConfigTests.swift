import Foundation
@preconcurrency import Glibc
@testable import SluiceControl
import SluiceCore
import Testing

/// Issue 17, "Config and state files": every hostile value is refused at load with an exact
/// message (through `ConfigLoader`, as `sluice check` and a reload run it), never trapped on later.
@Suite struct HostileConfigTests {
    /// The one diagnostic of a config that must be refused, as `check` prints it.
    func only(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        let found = diagnostics(yaml, sourceLocation: sourceLocation)
        #expect(found.count == 1, "\(found)", sourceLocation: sourceLocation)
        return found.first?.description ?? ""
    }

    /// A route with a header regex.
    func regexRoute(_ pattern: String) -> String {
        baseYAML + """
            routes:
              - name: web
                match: { header: { name: X-A, regex: '\(pattern)' } }
                upstream: stable
            """
    }

    // MARK: Regex

    @Test func deeplyNestedRegexIsRefusedNotACrash() {
        // The issue's pattern: 50,000 `(`, `a`, 50,000 `)` (a stack overflow before).
        let deep = String(repeating: "(", count: 50_000) + "a" + String(repeating: ")", count: 50_000)
        #expect(only(regexRoute(deep)) == """
            sluice.yaml:9:42: routes[0].match.header.regex: invalid regex `\(String(repeating: "(", count: 40))... (100001 bytes)`: \
            pattern is too long (100001 bytes, at most 4096) (at offset 4096)
              hint: the supported subset: literals, `.`, classes like `[a-z0-9]`, `\\d \\w \\s`, `^ $`, `* + ?`, `|`, `( )` (see the README's configuration reference)
            """)
        // Within the length limit, the nesting limit: 32 levels compile, 33 do not.
        let ok = String(repeating: "(", count: 32) + "a" + String(repeating: ")", count: 32)
        #expect(mustLoad(regexRoute(ok)) != nil)
        let tooDeep = String(repeating: "(", count: 33) + "a" + String(repeating: ")", count: 33)
        #expect(only(regexRoute(tooDeep)).contains("routes[0].match.header.regex: invalid regex "
            + "`\(String(repeating: "(", count: 33))a))))))... (67 bytes)`: groups nest too deep (at most 32 levels) (at offset 32)"))
    }

    @Test(arguments: [
        // pattern, message, offset
        (String(repeating: "(", count: 2_000) + String(repeating: ")", count: 2_000), "groups nest too deep (at most 32 levels)", 32),
        ("a" + String(repeating: "?", count: 40), "too many quantifiers on one item (at most 32)", 33),
        // 32 groups deep, a quantifier is one level too many.
        ("(" + String(repeating: "(?:", count: 31) + "a*" + String(repeating: ")", count: 32), "too many quantifiers on one item (at most 32)", 95),
        // 86 alternatives: 86 + 2 x 85 states, the match state makes 257.
        (Array(repeating: "a", count: 2_000).joined(separator: "|"), "pattern is too large (more than 256 NFA states)", 170),
        // 85 `a*` are 255 states; the 86th `a` makes 256, the match state 257.
        (String(repeating: "a*", count: 200), "pattern is too large (more than 256 NFA states)", 170),
        (String(repeating: "x", count: 4_097), "pattern is too long (4097 bytes, at most 4096)", 4_096),
    ])
    func hostileRegexesAreRefusedWhileParsing(pattern: String, message: String, offset: Int) {
        do {
            _ = try ByteRegex.compile(pattern)
            Issue.record("compiled")
        } catch {
            #expect(error.message == message)
            #expect(error.offset == offset)
        }
    }

    @Test func stateCountIsExactAtTheLimit() throws {
        // 85 `a*` (3 states each) + match = 256 states: the largest pattern that fits.
        let fits = try ByteRegex.compile(String(repeating: "a*", count: 85))
        #expect(fits.stateCount == 256)
        #expect(fits.matches(Array("aaa".utf8)))
        #expect(throws: ByteRegex.SyntaxError.self) { try ByteRegex.compile(String(repeating: "a*", count: 85) + "b") }
        // Patterns the parser counts exactly as the code generator emits them (compile asserts it).
        for p in ["", "^$", "(a|b|)*c?", "(?i)[a-z]+\\d", "((a)|(b)|c)+$", "()()()", "()*", "a|b|c|d"] {
            _ = try ByteRegex.compile(p)
        }
    }

    @Test func deeplyNestedYAMLAndAliasBombsAreRefusedNotACrash() {
        // libyaml's nesting limit answers before the composer could recurse 100,000 levels.
        let deep = "listeners: " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "\n"
        #expect(only(deep).hasPrefix("sluice.yaml:1:13: YAML syntax error: Maximum nesting level reached"), "\(only(deep).prefix(200))")
        // Nine levels of nine aliases (387 million leaves if expanded): nodes are shared, not copied.
        var bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
        for i in 1...8 { bomb += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 9).joined(separator: ", ") + "]\n" }
        bomb += "listeners: *a8\nroutes: *a8\n"
        let found = diagnostics(bomb)
        #expect(found.count == 27, "\(found.count)")
        #expect(found.first?.message == "unknown key `a0`")
    }

    // MARK: Durations and sizes

    @Test func rolloutStepDurationHasAnUpperBound() {
        let yaml = baseYAML + """
            routes:
              - name: web
                split: { stable: 100, canary: 0 }
                rollout: { canary: canary, step_duration: 18446744073709ms }
            """
        #expect(only(yaml) == """
            sluice.yaml:10:47: routes[0].rollout.step_duration: duration `18446744073709ms` is too long: step_duration is at most 30d
              hint: e.g. `step_duration: 10s`
            """)
    }

    @Test(arguments: [
        ("timeouts: { client_header: 18446744073s }", "timeouts.client_header: duration `18446744073s` is too long: client_header is at most 1d"),
        ("timeouts: { drain: 25h }", "timeouts.drain: duration `25h` is too long: drain is at most 1d"),
        ("timeouts: { upstream_idle: 1000d }", "timeouts.upstream_idle: duration `1000d` is too long: upstream_idle is at most 1d"),
        ("limits: { max_body_bytes: 2TiB }", "limits.max_body_bytes: size `2TiB` is too large: max_body_bytes is at most 1TiB"),
        ("limits: { splice_min_body: 18446744073709551615 }",
         "limits.splice_min_body: size `18446744073709551615` is too large: splice_min_body is at most 1TiB"),
        ("limits: { max_requests_per_connection: 9223372036854775807 }",
         "limits.max_requests_per_connection: 9223372036854775807 is out of range, must be 0...1000000000"),
    ])
    func everyTimeoutAndSizeHasAnUpperBound(extra: String, message: String) {
        let yaml = baseYAML + extra + "\nroutes: [{ name: web, upstream: stable }]\n"
        #expect(only(yaml).split(separator: "\n").first.map(String.init)?.hasSuffix(message) == true, "\(only(yaml))")
    }

    @Test func rolloutAndStickyDurationsHaveUpperBounds() {
        func route(_ body: String) -> String {
            baseYAML + "routes:\n  - name: web\n    split: { stable: 100, canary: 0 }\n" + body
        }
        #expect(only(route("    rollout: { canary: canary, interval: 2h, step_duration: 30d }\n"))
            .contains("routes[0].rollout.interval: duration `2h` is too long: interval is at most 1h"))
        #expect(only(route("    rollout: { canary: canary, gates: [{ metric: p99_latency, max: 61m }] }\n"))
            .contains("routes[0].rollout.gates[0].max: duration `61m` is too long: max is at most 1h"))
        #expect(only(route("    sticky: { assign_cookie: s, max_age: 401d }\n"))
            .contains("routes[0].sticky.max_age: duration `401d` is too long: max_age is at most 400d"))
        // The bounds themselves are accepted.
        #expect(mustLoad(route("    sticky: { assign_cookie: s, max_age: 400d }\n    rollout: { canary: canary, interval: 1h, step_duration: 30d }\n"))
            != nil)
        #expect(mustLoad(baseYAML + "timeouts: { client_idle: 24h, drain: 86400 }\nlimits: { max_body_bytes: 1TiB }\nroutes: [{ name: web, upstream: stable }]\n")
            != nil)
    }

    @Test func durationTextNeverOverflows() {
        // `nanos + 500_000_000` trapped here before.
        #expect(RolloutFormat.duration(nanos: UInt64.max) == "5124095h34m34s")
        #expect(RolloutFormat.duration(nanos: UInt64.max - 400_000_000) == "5124095h34m33s")
        #expect(RolloutFormat.duration(nanos: 90_500_000_000) == "1m31s")
        #expect(RolloutFormat.duration(seconds: .nan) == "nan")
        #expect(RolloutFormat.duration(seconds: .infinity) == "inf")
        #expect(RolloutFormat.duration(seconds: -1) == "0s")
        #expect(RolloutFormat.duration(seconds: 1e300) == "2.777777777777778e+296h")
        #expect(RolloutFormat.duration(seconds: 0.25) == "250ms")
    }

    // MARK: cohort_header and respond

    @Test(arguments: [
        ("Content-Length", "a framing field (a second copy smuggles requests)"),
        ("transfer-encoding", "a framing field (a second copy smuggles requests)"),
        ("Host", "the routing field Host"),
        ("Connection", "a hop-by-hop field (it describes the connection, not the request)"),
        ("Keep-Alive", "a hop-by-hop field (it describes the connection, not the request)"),
        ("TE", "a hop-by-hop field (it describes the connection, not the request)"),
        ("Trailer", "a hop-by-hop field (it describes the connection, not the request)"),
        ("Upgrade", "a hop-by-hop field (it describes the connection, not the request)"),
        ("Proxy-Authorization", "a hop-by-hop `Proxy-*` field"),
        ("Proxy-Connection", "a hop-by-hop `Proxy-*` field"),
        ("X-Forwarded-For", "a forwarding field (upstreams trust it to name the client or the path)"),
        ("X-Forwarded-Proto", "a forwarding field (upstreams trust it to name the client or the path)"),
        ("Forwarded", "a forwarding field (upstreams trust it to name the client or the path)"),
        ("X-Real-IP", "a forwarding field (upstreams trust it to name the client or the path)"),
        ("Via", "a forwarding field (upstreams trust it to name the client or the path)"),
        ("X-Request-Id", "Sluice's own request id field"),
        ("Content-Type", "a `Content-*` field (it describes the body)"),
        ("Cookie", "an authentication or cookie field"),
        ("Set-Cookie", "an authentication or cookie field"),
        ("Authorization", "an authentication or cookie field"),
        ("Expect", "a field with a protocol meaning of its own"),
    ])
    func cohortHeaderRefusesFramingHopByHopAndForwardingNames(name: String, why: String) {
        let yaml = baseYAML + "routes: [{ name: web, split: { stable: 50, canary: 50 }, cohort_header: \(name) }]\n"
        let column = "routes: [{ name: web, split: { stable: 50, canary: 50 }, cohort_header: ".count + 1
        #expect(only(yaml) == """
            sluice.yaml:7:\(column): routes[0].cohort_header: `\(name)` cannot be the cohort header: it is \(why)
              hint: the cohort header is added to every request (and with `cohort_response_header`, to responses); \
            use a name of your own, e.g. `X-Sluice-Cohort` or `X-Cohort`
            """)
    }

    @Test func cohortHeaderAcceptsNamesOfItsOwnAndRefusesInvalidTokens() throws {
        let ok = try #require(mustLoad(baseYAML + "routes: [{ name: web, upstream: stable, cohort_header: X-Cohort }]\n"))
        #expect(ok.table.routes[0].cohortHeader == "X-Cohort")
        #expect(only(baseYAML + "routes: [{ name: web, upstream: stable, cohort_header: \"X Cohort\" }]\n")
            .contains("routes[0].cohort_header: `X Cohort` is not a valid header name"))
        #expect(only(baseYAML + "routes: [{ name: web, upstream: stable, cohort_header: \"X-Co:hort\" }]\n")
            .contains("routes[0].cohort_header: `X-Co:hort` is not a valid header name"))
    }

    @Test(arguments: [100, 101, 103, 199])
    func respondRefusesInterimStatuses(status: Int) {
        let yaml = baseYAML + "routes: [{ name: web, respond: { status: \(status) } }]\n"
        let column = "routes: [{ name: web, respond: { status: ".count + 1
        #expect(only(yaml) == """
            sluice.yaml:7:\(column): routes[0].respond.status: status \(status) is an interim (1xx) response; `respond` sends the final response
              hint: use a final status from 200 to 599, e.g. `status: 200`
            """)
    }

    @Test func respondRefusesABodyOn204And304() throws {
        #expect(only(baseYAML + "routes: [{ name: web, respond: { status: 204, body: x } }]\n")
            .contains("routes[0].respond.body: a 204 response has no body"))
        #expect(only(baseYAML + "routes: [{ name: web, rules: [{ respond: { status: 304, body: x } }], upstream: stable }]\n")
            .contains("routes[0].rules[0].respond.body: a 304 response has no body"))
        let ok = try #require(mustLoad(baseYAML + "routes: [{ name: web, respond: { status: 204 } }]\n"))
        #expect(ok.table.responses[0].status == 204)
        #expect(mustLoad(baseYAML + "routes: [{ name: web, respond: { status: 200, body: x } }]\n") != nil)
    }

    // MARK: Files

    /// A fresh temporary directory, removed by the caller.
    func temporaryDirectory() throws -> String {
        let dir = NSTemporaryDirectory() + "sluice-hostile-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func configAndStateFilesAreBoundedInSize() throws {
        // /dev/zero never ends: an error after 16 MiB, not an exhausted memory.
        do {
            _ = try ConfigLoader.load(path: "/dev/zero")
            Issue.record("loaded /dev/zero")
        } catch {
            #expect(error.description == """
                /dev/zero: cannot read config file: /dev/zero: larger than 16MiB, the most sluice reads from one file
                  hint: check the path given with --config
                """)
        }
        #expect(throws: AdminError("cannot read state file /dev/zero: not a regular file")) {
            try RuntimeStateFile.read(path: "/dev/zero")
        }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A FIFO as the state file is refused at once (opening it must not wait for a writer).
        let fifo = dir + "/state.fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: AdminError("cannot read state file \(fifo): not a regular file")) {
            try RuntimeStateFile.read(path: fifo)
        }
        // A regular file over the limit.
        let big = dir + "/big.yaml"
        #expect(FileManager.default.createFile(atPath: big, contents: Data(count: ConfigLoader.maxFileBytes + 1)))
        guard case .failure(let f) = ConfigLoader.readFile(big) else {
            Issue.record("read a file over the limit")
            return
        }
        #expect(f.message == "\(big): larger than 16MiB, the most sluice reads from one file")
        #expect(FileManager.default.createFile(atPath: big, contents: Data(count: ConfigLoader.maxFileBytes)))
        guard case .success(let text) = ConfigLoader.readFile(big) else {
            Issue.record("could not read a file at the limit")
            return
        }
        #expect(text.utf8.count == ConfigLoader.maxFileBytes)
    }

    @Test func stateTempFileIsCreatedExclusivelyAndNeverThroughASymlink() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/state.json"
        let victim = dir + "/victim"
        try "precious\n".write(toFile: victim, atomically: false, encoding: .utf8)
        let temp = path + ".tmp-\(getpid())"
        #expect(symlink(victim, temp) == 0)
        let state = RuntimeStateFile(version: 3, updated: "2026-12-03T00:00:00.000Z", overrides: [:])
        #expect(throws: AdminError("refusing to write \(temp): it exists and is a symbolic link (someone else created it; "
                                   + "remove it after checking where it points)")) {
            try state.write(path: path)
        }
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious\n")
        #expect(access(path, F_OK) != 0)
        // A dangling link is refused the same way (O_CREAT would have created its target).
        unlink(temp)
        #expect(symlink(dir + "/nowhere", temp) == 0)
        #expect(throws: AdminError.self) { try state.write(path: path) }
        #expect(access(dir + "/nowhere", F_OK) != 0)
        // A regular file left by a crashed sluice with the same pid is replaced.
        unlink(temp)
        try "stale".write(toFile: temp, atomically: false, encoding: .utf8)
        try state.write(path: path)
        #expect(try RuntimeStateFile.read(path: path)?.version == 3)
        #expect(access(temp, F_OK) != 0)
    }

    // MARK: State-file values

    /// A state file with `version` and one override and one rollout, each field given as JSON text.
    static func stateJSON(version: String = "12", weight: String = "90", overrideVersion: String = "7", step: String = "1",
                          canaryWeight: String = "500", elapsed: String = "250000000000", failures: String = "0") -> String {
        """
        { "format": 1, "version": \(version), "updated": "2026-12-03T00:00:00.000Z",
          "overrides": { "web": { "kind": "split", "since": "2026-12-03T00:00:00.000Z", "version": \(overrideVersion), "cause": "test",
                                   "weights": [{ "cohort": "stable", "weight": \(weight) }, { "cohort": "canary", "weight": 10 }] } },
          "rollouts": { "web": { "state": "progressing", "step": \(step), "canary_weight": \(canaryWeight),
                                 "elapsed_at_step_ns": \(elapsed), "consecutive_failures": \(failures), "last_decision": "" } } }
        """
    }

    @Test func aValidStateFileReads() throws {
        let state = try RuntimeStateFile.decode(Self.stateJSON(), path: "s.json")
        #expect(state.version == 12)
        #expect(state.overrides["web"]?.weights == [CohortWeight(cohort: "stable", weight: 9_000), CohortWeight(cohort: "canary", weight: 1_000)])
        #expect(state.rollouts["web"]?.elapsedAtStep == 250_000_000_000)
        // The largest values in range are accepted.
        _ = try RuntimeStateFile.decode(Self.stateJSON(version: "9007199254740991", weight: "100", step: "9999", canaryWeight: "10000",
                                                       elapsed: "315360000000000000", failures: "1000"), path: "s.json")
    }

    @Test(arguments: [
        (stateJSON(version: "18446744073709551615"), "`version` 18446744073709551615 is out of range (at most 9007199254740991)"),
        (stateJSON(version: "18446744073709551614"), "`version` 18446744073709551614 is out of range (at most 9007199254740991)"),
        (stateJSON(version: "9007199254740992"), "`version` 9007199254740992 is out of range (at most 9007199254740991)"),
        (stateJSON(overrideVersion: "18446744073709551615"),
         "`overrides.web.version` 18446744073709551615 is out of range (at most 9007199254740991)"),
        (stateJSON(weight: "1e300"), "`overrides.web.weights[0].weight`: weight 1e+300 of cohort `stable` is not a percentage from 0 to 100"),
        (stateJSON(weight: "-0.5"), "`overrides.web.weights[0].weight`: weight -0.5 of cohort `stable` is not a percentage from 0 to 100"),
        (stateJSON(weight: "100.01"), "`overrides.web.weights[0].weight`: weight 100.01 of cohort `stable` is not a percentage from 0 to 100"),
        (stateJSON(failures: "9223372036854775807"), "`rollouts.web.consecutive_failures` 9223372036854775807 is out of range (0...1000)"),
        (stateJSON(failures: "-1"), "`rollouts.web.consecutive_failures` -1 is out of range (0...1000)"),
        (stateJSON(canaryWeight: "-9223372036854775808"),
         "`rollouts.web.canary_weight` -9223372036854775808 is out of range (0...10000, in 0.01% units)"),
        (stateJSON(canaryWeight: "10001"), "`rollouts.web.canary_weight` 10001 is out of range (0...10000, in 0.01% units)"),
        (stateJSON(step: "-1"), "`rollouts.web.step` -1 is out of range (0...9999)"),
        (stateJSON(step: "9223372036854775807"), "`rollouts.web.step` 9223372036854775807 is out of range (0...9999)"),
        (stateJSON(elapsed: "18446744073709551615"),
         "`rollouts.web.elapsed_at_step_ns` 18446744073709551615 is out of range (at most 315360000000000000, 10 years)"),
    ])
    func stateFileValuesOutOfRangeAreRefused(json: String, problem: String) {
        #expect(throws: AdminError("state file /x/state.json is not valid: \(problem)")) {
            try RuntimeStateFile.decode(json, path: "/x/state.json")
        }
    }

    @Test func stateFileSyntaxErrorsNameTheField() {
        // NaN is not JSON, and Foundation's decoder reports a negative count the same way.
        do {
            _ = try RuntimeStateFile.decode(Self.stateJSON(weight: "NaN"), path: "/x/state.json")
            Issue.record("decoded NaN")
        } catch {
            #expect(error.message == "state file /x/state.json is not valid: not valid JSON, or a number that does not fit its field "
                    + "(negative, fractional or too large)")
        }
        do {
            _ = try RuntimeStateFile.decode(Self.stateJSON(elapsed: "-5"), path: "/x/state.json")
            Issue.record("decoded a negative elapsed time")
        } catch {
            #expect(error.message == "state file /x/state.json is not valid: not valid JSON, or a number that does not fit its field "
                    + "(negative, fractional or too large)")
        }
        // A value of the wrong type names its key path.
        #expect(throws: AdminError("state file /x/state.json is not valid: `rollouts.web.step`: expected Int "
                                   + "(Expected to decode Int but found a string instead.)")) {
            try RuntimeStateFile.decode(Self.stateJSON(step: "\"x\""), path: "/x/state.json")
        }
        #expect(throws: AdminError("state file /x/state.json is not valid: `version` is missing")) {
            try RuntimeStateFile.decode("{\"format\": 1}", path: "/x/state.json")
        }
    }

    @Test func aControllerRefusesAHostileStateFileWithAClearMessage() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let statePath = dir + "/state.json"
        try Self.stateJSON(version: "18446744073709551615").write(toFile: statePath, atomically: false, encoding: .utf8)
        var config = try #require(mustLoad(baseYAML + "routes: [{ name: web, split: { stable: 90, canary: 10 } }]\n"))
        config.stateFile = statePath
        do {
            _ = try RoutingController(config: config, events: EventLog(), cause: "test")
            Issue.record("started with a hostile state file")
        } catch {
            guard case .stateFile(let message) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(message == "state file \(statePath) is not valid: `version` 18446744073709551615 is out of range "
                    + "(at most 9007199254740991) (remove or fix it to start without the runtime overrides it holds)")
        }
    }
}
