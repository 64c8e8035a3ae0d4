import Testing
import SluiceControl
import SluiceCore
import SluiceProxy

/// The top-level `busy_poll:` key: off by default, durations down to microseconds, at most 1ms,
/// bad values refused with their line and key, carried into `ProxySettings`, and a change at a
/// reload reported as needing a restart.
@Suite struct BusyPollConfigTests {
    static let route = """
        routes:
          - { name: web, split: { stable: 90, canary: 10 } }

        """

    static func yaml(_ value: String) -> String {
        baseYAML + route + "busy_poll: \(value)\n"
    }

    /// The 1-based line of `busy_poll:` in `yaml(_:)`.
    static var line: Int { (baseYAML + route).split(separator: "\n", omittingEmptySubsequences: false).count }

    @Test func offByDefault() throws {
        let c = try #require(mustLoad(baseYAML + Self.route))
        #expect(c.busyPoll == 0)
        #expect(c.proxySettings().busyPoll == 0)
    }

    @Test(arguments: [
        ("50us", 50_000 as UInt64), ("100us", 100_000), ("1_000us", 1_000_000), ("50µs", 50_000), ("1ms", 1_000_000),
        ("1000us", 1_000_000), ("0", 0), ("0us", 0), ("off", 0),
    ])
    func validValues(_ text: String, _ ns: UInt64) throws {
        let c = try #require(mustLoad(Self.yaml(text)))
        #expect(c.busyPoll == ns)
        #expect(c.proxySettings().busyPoll == ns)  // what the workers get
    }

    @Test(arguments: [
        ("-50us", "invalid duration `-50us`"),
        ("fast", "invalid duration `fast`"),
        ("50ns", "invalid duration `50ns`: unknown unit `ns`"),
        ("50 us", "invalid duration `50 us`: unknown unit ` us`"),
        ("1.5ms", "invalid duration `1.5ms`: unknown unit `.5ms`"),
        ("true", "invalid duration `true`"),
        ("[50us]", "expected a duration, found a list"),
    ])
    func invalidValues(_ text: String, _ message: String) throws {
        let d = diagnostics(Self.yaml(text))
        #expect(d.count == 1)
        let first = try #require(d.first)
        #expect(first.keyPath == "busy_poll")
        #expect(first.line == Self.line)
        #expect(first.message == message)
        if !text.hasPrefix("[") { #expect(first.hint?.contains("50us") == true) }
    }

    @Test(arguments: ["1001us", "2ms", "10ms", "1s", "2", "30d"])
    func longerThan1msIsRefusedSayingWhy(_ text: String) throws {
        let d = diagnostics(Self.yaml(text))
        #expect(d.count == 1)
        let first = try #require(d.first)
        #expect(first.keyPath == "busy_poll")
        #expect(first.line == Self.line)
        #expect(first.message == "`\(text)` is too long: at most 1ms, since a worker spins its CPU "
                    + "for up to this long after every batch of events")
        #expect(first.hint == "windows of 20us to 200us cover a cross-CPU wake-up; e.g. `busy_poll: 50us`, or `off`")
    }

    /// More spinning workers than CPUs to run them: a warning (the config still loads); none with
    /// busy_poll off or few workers.
    @Test func moreSpinningWorkersThanCPUsAreWarnedAbout() throws {
        let many = try #require(mustLoad("workers: 1024\n" + Self.yaml("50us")))
        #expect(many.warnings.count == 1)
        #expect(many.warnings.first?.contains("busy_poll with 1024 workers and") == true, "\(many.warnings)")
        #expect(many.warnings.first?.contains(":\(Self.line + 1): ") == true, "\(many.warnings)")
        let off = try #require(mustLoad("workers: 1024\n" + Self.yaml("off")))
        #expect(off.warnings.isEmpty)
        let one = try #require(mustLoad("workers: 1\n" + Self.yaml("50us")))
        #expect(one.warnings.isEmpty)
    }

    /// Microseconds are for `busy_poll` only: other durations keep their units.
    @Test func microsecondsOnlyHere() {
        let d = diagnostics(baseYAML + Self.route + "timeouts: { upstream_connect: 50us }\n")
        #expect(d.map(\.message) == ["invalid duration `50us`: unknown unit `us`"])
    }

    @Test func aReloadChangingItNeedsARestart() throws {
        let a = try #require(mustLoad(baseYAML + Self.route))
        let b = try #require(mustLoad(Self.yaml("50us")))
        let c = try #require(mustLoad(Self.yaml("off")))
        #expect(a.restartOnlyChanges(b) == ["busy_poll"])
        #expect(b.restartOnlyChanges(a) == ["busy_poll"])
        #expect(a.restartOnlyChanges(c).isEmpty)  // `off` is the default
        #expect(b.restartOnlyChanges(b).isEmpty)
    }

    /// Through the controller, as SIGHUP or `sluice reload` reach it: the warning names the key.
    @Test func reloadWarnsThatBusyPollAppliesAtRestart() throws {
        let rig = try ControllerRig()
        defer { rig.dir.remove() }
        try rig.dir.write("sluice.yaml", controllerYAML(top: "busy_poll: 50us"))
        let r = try rig.controller.reloadFromFile(cause: "SIGHUP")
        #expect(r.warnings == ["changed in the file but applied only at restart: busy_poll"])
    }
}
