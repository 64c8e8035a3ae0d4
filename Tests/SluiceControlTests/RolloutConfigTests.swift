import SluiceControl
import SluiceCore
import Testing

/// The `rollout:` route key: parsing, defaults, and every invalid combination as a diagnostic
/// with its exact line and column.
@Suite struct RolloutConfigTests {
    /// The issue's example, as a user writes it.
    static let issueExample = baseYAML + """
        routes:
          - name: web
            baseline: stable
            split: { stable: 100, canary: 0 }
            rollout:
              canary: canary
              steps: [1, 5, 10, 25, 50, 100]    # canary percent at each step
              step_duration: 10m                 # time spent healthy at a step before promotion
              interval: 10s                      # how often the gates are evaluated
              min_requests: 200                  # per step window; fewer means "not enough data", never "healthy"
              gates:
                - metric: error_rate             # 5xx and upstream failures / requests
                  max: 0.5%
                - metric: p99_latency
                  max: 400ms
                - metric: error_rate
                  relative_to_baseline: { max_increase: 0.2% }   # canary minus stable
                - metric: p99_latency
                  relative_to_baseline: { max_ratio: 1.25 }
              failure_limit: 2                   # consecutive failed evaluations before rollback
              on_failure: rollback               # or: pause
        """

    @Test func issueExampleParsesAsWritten() throws {
        let config = try #require(mustLoad(Self.issueExample))
        let web = config.table.routes[0]
        let spec = try #require(web.rollout)
        #expect(spec == RolloutSpec(
            canary: "canary", baseline: "stable", steps: [100, 500, 1_000, 2_500, 5_000, 10_000],
            stepDuration: 600_000_000_000, interval: 10_000_000_000, minRequests: 200,
            gates: [.maxErrorRate(millionths: 5_000), .maxP99(nanos: 400_000_000), .maxErrorRateIncrease(millionths: 2_000),
                    .maxP99Ratio(1.25)],
            failureLimit: 2, onFailure: .rollback))
        #expect(web.cohorts.map(\.weight) == [10_000, 0])
        #expect(spec.canaryWeight(in: web) == 0)
        #expect(spec.splitWeights(canaryWeight: 1_000) == [CohortWeight(cohort: "stable", weight: 9_000),
                                                           CohortWeight(cohort: "canary", weight: 1_000)])
    }

    @Test func onlyCanaryIsRequiredAndEverythingElseHasItsDefault() throws {
        let config = try #require(mustLoad(baseYAML + """
            routes:
              - name: web
                split: { stable: 100, canary: 0 }
                rollout: { canary: canary }
            """))
        let spec = try #require(config.table.routes[0].rollout)
        #expect(spec == RolloutSpec(canary: "canary", baseline: "stable"))
        #expect(spec.steps == [100, 500, 1_000, 2_500, 5_000, 10_000])
        #expect(spec.stepDuration == 300_000_000_000 && spec.interval == 10_000_000_000)
        #expect(spec.minRequests == 100 && spec.gates.isEmpty && spec.failureLimit == 2 && spec.onFailure == .rollback)
        // A route without `rollout:` has none.
        let plain = try #require(mustLoad(baseYAML + "routes: [{ name: web, upstream: stable }]"))
        #expect(plain.table.routes[0].rollout == nil)
    }

    @Test func otherFormsAreAccepted() throws {
        let config = try #require(mustLoad(baseYAML + """
            routes:
              - name: web
                cohorts: { blue: { upstream: stable }, green: { upstream: canary } }
                split: { green: 0, blue: 100 }
                baseline: blue
                rollout:
                  canary: green
                  steps: ["2.5%", 50, 100]
                  step_duration: 1h
                  interval: 1h
                  gates: []
                  on_failure: pause
                  failure_limit: 1
              - name: api
                split: { stable: 100, canary: 0 }
                rollout:
                  canary: canary
                  steps: [100]
                  gates:
                    - { metric: error_rate, max: 0% }
                    - { metric: error_rate, relative_to_baseline: { max_increase: "0.0125%" } }
            """))
        let web = try #require(config.table.routes[0].rollout)
        #expect(web.canary == "green" && web.baseline == "blue")
        #expect(web.steps == [250, 5_000, 10_000])
        #expect(web.interval == web.stepDuration && web.onFailure == .pause && web.failureLimit == 1 && web.gates.isEmpty)
        let api = try #require(config.table.routes[1].rollout)
        #expect(api.steps == [10_000])
        #expect(api.gates == [.maxErrorRate(millionths: 0), .maxErrorRateIncrease(millionths: 125)])
    }

    @Test func theSpecSurvivesARuntimeSplitChange() throws {
        let config = try #require(mustLoad(Self.issueExample))
        let changed = try config.table.applying(
            [.split(route: "web", weights: config.table.routes[0].rollout!.splitWeights(canaryWeight: 500))], version: 2)
        #expect(changed.routes[0].cohorts.map(\.weight) == [9_500, 500])
        #expect(changed.routes[0].rollout == config.table.routes[0].rollout)
        #expect(changed.routes[0].rollout?.canaryWeight(in: changed.routes[0]) == 500)
        let aborted = try config.table.applying([.abort(route: "web")], version: 3)
        #expect(aborted.routes[0].rollout != nil)
    }

    // MARK: Diagnostics

    struct Case: CustomTestStringConvertible, Sendable {
        var label: String
        /// The `rollout:` mapping's lines (indented by 4 under a route `web` with split stable/canary), or a whole YAML.
        var yaml: String
        /// The diagnostic must point at this text (its first occurrence, or `occurrence`).
        var at: String
        var occurrence = 1
        /// Columns from the start of `at` to the reported position.
        var offset = 0
        var keyPath: String
        var message: String
        var hint: String? = nil
        var testDescription: String { label }
    }

    /// A route `web` splitting stable/canary, with `rollout:` and then `lines`.
    static func route(_ lines: String, split: String = "{ stable: 100, canary: 0 }") -> String {
        baseYAML + """
            routes:
              - name: web
                split: \(split)
                rollout:

            """ + lines.split(separator: "\n", omittingEmptySubsequences: false).map { "      " + $0 }.joined(separator: "\n")
    }

    static let cases: [Case] = [
        Case(label: "canary not a cohort (typo)", yaml: route("canary: canari"), at: "canari",
             keyPath: "routes[0].rollout.canary", message: "canary `canari` is not a cohort of this route's split",
             hint: "did you mean `canary`?"),
        Case(label: "canary an upstream not in the split", yaml: baseYAML + """
            routes:
              - name: web
                upstream: stable
                rollout: { canary: canary }
            """, at: "canary }", keyPath: "routes[0].rollout.canary", message: "canary `canary` is not a cohort of this route's split",
             hint: "add it to the route's split with weight 0, e.g. `split: { stable: 100, canary: 0 }`"),
        Case(label: "canary only a rule's cohort", yaml: baseYAML + """
            routes:
              - name: web
                upstream: stable
                rules: [{ match: { header: { name: X-Canary, value: always } }, cohort: canary }]
                rollout: { canary: canary }
            """, at: "canary }", occurrence: 2, keyPath: "routes[0].rollout.canary",
             message: "canary `canary` is not a cohort of this route's split", hint: "add it to the route's split with weight 0"),
        Case(label: "canary is the baseline", yaml: route("canary: stable"), at: "stable", occurrence: 3,
             keyPath: "routes[0].rollout.canary", message: "the canary `stable` is the route's baseline"),
        Case(label: "canary is an explicit baseline", yaml: baseYAML + """
            routes:
              - name: web
                split: { canary: 0, stable: 100 }
                baseline: canary
                rollout: { canary: canary }
            """, at: "canary }", keyPath: "routes[0].rollout.canary", message: "the canary `canary` is the route's baseline"),
        Case(label: "route answering directly", yaml: baseYAML + """
            routes:
              - name: web
                respond: { status: 200 }
                rollout: { canary: canary }
            """, at: "canary }", keyPath: "routes[0].rollout.canary", message: "has no cohorts to roll out"),
        Case(label: "a third cohort with weight", yaml: """
            listeners: [{ name: public, address: 127.0.0.1:8080 }]
            upstreams:
              stable: { endpoints: ["127.0.0.1:9001"] }
              canary: { endpoints: ["127.0.0.1:9003"] }
              third: { endpoints: ["127.0.0.1:9005"] }
            routes:
              - name: web
                split: { stable: 90, canary: 0, third: 10 }
                rollout: { canary: canary }
            """, at: "rollout:", keyPath: "routes[0].rollout",
             message: "the split gives `third` 10%, but a rollout moves traffic only between the baseline `stable` and the canary `canary`"),
        Case(label: "missing canary", yaml: route("steps: [50, 100]"), at: "steps:", keyPath: "routes[0].rollout",
             message: "missing required key `canary`"),
        Case(label: "steps not increasing", yaml: route("canary: canary\nsteps: [1, 10, 5, 100]"), at: "5, 100",
             keyPath: "routes[0].rollout.steps[2]", message: "steps must increase: 5 comes after 10"),
        Case(label: "equal steps", yaml: route("canary: canary\nsteps: [10, 10, 100]"), at: "10, 100",
             keyPath: "routes[0].rollout.steps[1]", message: "steps must increase: 10 comes after 10"),
        Case(label: "step over 100", yaml: route("canary: canary\nsteps: [1, 150]"), at: "150",
             keyPath: "routes[0].rollout.steps[1]", message: "step `150` is over 100"),
        Case(label: "step of 0", yaml: route("canary: canary\nsteps: [0, 50, 100]"), at: "0, 50",
             keyPath: "routes[0].rollout.steps[0]", message: "a step of 0% gives the canary nothing"),
        Case(label: "negative step", yaml: route("canary: canary\nsteps: [-1, 100]"), at: "-1",
             keyPath: "routes[0].rollout.steps[0]", message: "step `-1` is negative"),
        Case(label: "step with three decimals", yaml: route("canary: canary\nsteps: [0.125, 100]"), at: "0.125",
             keyPath: "routes[0].rollout.steps[0]", message: "step `0.125` has more than two decimals"),
        Case(label: "last step not 100", yaml: route("canary: canary\nsteps: [1, 5, 50]"), at: "50]",
             keyPath: "routes[0].rollout.steps[2]", message: "the last step must be 100, found 50", hint: "add 100 at the end"),
        Case(label: "no steps", yaml: route("canary: canary\nsteps: []"), at: "[]",
             keyPath: "routes[0].rollout.steps", message: "a rollout needs at least one step"),
        Case(label: "interval longer than step_duration", yaml: route("canary: canary\nstep_duration: 10s\ninterval: 1m"),
             at: "1m", keyPath: "routes[0].rollout.interval", message: "interval 1m is longer than step_duration 10s"),
        Case(label: "step_duration shorter than the default interval", yaml: route("canary: canary\nstep_duration: 5s"),
             at: "5s", keyPath: "routes[0].rollout.step_duration",
             message: "step_duration 5s is shorter than the interval (10s by default)"),
        Case(label: "zero interval", yaml: route("canary: canary\ninterval: 0s"), at: "0s",
             keyPath: "routes[0].rollout.interval", message: "interval must be longer than 0"),
        Case(label: "negative step_duration", yaml: route("canary: canary\nstep_duration: -10m"), at: "-10m",
             keyPath: "routes[0].rollout.step_duration", message: "step_duration must not be negative, found `-10m`"),
        Case(label: "negative min_requests", yaml: route("canary: canary\nmin_requests: -5"), at: "-5",
             keyPath: "routes[0].rollout.min_requests", message: "min_requests must not be negative, found `-5`"),
        Case(label: "zero min_requests", yaml: route("canary: canary\nmin_requests: 0"), at: "min_requests: 0",
             offset: 14, keyPath: "routes[0].rollout.min_requests", message: "0 is out of range, must be 1...1000000000"),
        Case(label: "zero failure_limit", yaml: route("canary: canary\nfailure_limit: 0"), at: "failure_limit: 0",
             offset: 15, keyPath: "routes[0].rollout.failure_limit", message: "0 is out of range, must be 1...1000"),
        Case(label: "unknown on_failure", yaml: route("canary: canary\non_failure: rollbak"), at: "rollbak",
             keyPath: "routes[0].rollout.on_failure", message: "unknown on_failure `rollbak`", hint: "did you mean `rollback`?"),
        Case(label: "unknown rollout key", yaml: route("canary: canary\nstep_durations: 10m"), at: "step_durations",
             keyPath: "routes[0].rollout", message: "unknown key `step_durations`", hint: "did you mean `step_duration`?"),
        Case(label: "gate with both max and relative_to_baseline",
             yaml: route("canary: canary\ngates:\n  - metric: error_rate\n    max: 0.5%\n    relative_to_baseline: { max_increase: 0.2% }"),
             at: "relative_to_baseline", keyPath: "routes[0].rollout.gates[0].relative_to_baseline",
             message: "a gate has either `max` or `relative_to_baseline`, not both"),
        Case(label: "gate with neither", yaml: route("canary: canary\ngates:\n  - metric: error_rate"), at: "metric",
             keyPath: "routes[0].rollout.gates[0]", message: "a gate needs `max` or `relative_to_baseline`"),
        Case(label: "unknown metric", yaml: route("canary: canary\ngates:\n  - { metric: error_rte, max: 1% }"), at: "error_rte",
             keyPath: "routes[0].rollout.gates[0].metric", message: "unknown metric `error_rte`", hint: "did you mean `error_rate`?"),
        Case(label: "unknown gate key", yaml: route("canary: canary\ngates:\n  - { metric: error_rate, maximum: 1% }"), at: "maximum",
             keyPath: "routes[0].rollout.gates[0]", message: "unknown key `maximum`"),
        Case(label: "negative error rate", yaml: route("canary: canary\ngates:\n  - { metric: error_rate, max: -0.5% }"), at: "-0.5%",
             keyPath: "routes[0].rollout.gates[0].max", message: "max must not be negative"),
        Case(label: "error rate without %", yaml: route("canary: canary\ngates:\n  - { metric: error_rate, max: 0.5 }"), at: "0.5",
             keyPath: "routes[0].rollout.gates[0].max", message: "`0.5` is not a percentage: the `%` is missing"),
        Case(label: "error rate over 100%", yaml: route("canary: canary\ngates:\n  - { metric: error_rate, max: 101% }"), at: "101%",
             keyPath: "routes[0].rollout.gates[0].max", message: "percentage `101%` is over 100%"),
        Case(label: "p99 max not a duration", yaml: route("canary: canary\ngates:\n  - { metric: p99_latency, max: 0.5% }"), at: "0.5%",
             keyPath: "routes[0].rollout.gates[0].max", message: "invalid duration `0.5%`"),
        Case(label: "p99 max of 0", yaml: route("canary: canary\ngates:\n  - { metric: p99_latency, max: 0ms }"), at: "0ms",
             keyPath: "routes[0].rollout.gates[0].max", message: "max must be longer than 0"),
        Case(label: "max_ratio on error_rate",
             yaml: route("canary: canary\ngates:\n  - { metric: error_rate, relative_to_baseline: { max_ratio: 2 } }"),
             at: "max_ratio", keyPath: "routes[0].rollout.gates[0].relative_to_baseline.max_ratio",
             message: "`max_ratio` does not apply to error_rate", hint: "`max_increase`"),
        Case(label: "max_increase on p99_latency",
             yaml: route("canary: canary\ngates:\n  - { metric: p99_latency, relative_to_baseline: { max_increase: 50ms } }"),
             at: "max_increase", keyPath: "routes[0].rollout.gates[0].relative_to_baseline.max_increase",
             message: "`max_increase` does not apply to p99_latency"),
        Case(label: "empty relative_to_baseline",
             yaml: route("canary: canary\ngates:\n  - { metric: p99_latency, relative_to_baseline: {} }"),
             at: "{}", keyPath: "routes[0].rollout.gates[0].relative_to_baseline", message: "missing `max_ratio`"),
        Case(label: "ratio below 1",
             yaml: route("canary: canary\ngates:\n  - { metric: p99_latency, relative_to_baseline: { max_ratio: 0.8 } }"),
             at: "0.8", keyPath: "routes[0].rollout.gates[0].relative_to_baseline.max_ratio", message: "max_ratio 0.8 is below 1"),
        Case(label: "negative ratio",
             yaml: route("canary: canary\ngates:\n  - { metric: p99_latency, relative_to_baseline: { max_ratio: -1.25 } }"),
             at: "-1.25", keyPath: "routes[0].rollout.gates[0].relative_to_baseline.max_ratio", message: "max_ratio must not be negative"),
        Case(label: "negative increase",
             yaml: route("canary: canary\ngates:\n  - { metric: error_rate, relative_to_baseline: { max_increase: -0.2% } }"),
             at: "-0.2%", keyPath: "routes[0].rollout.gates[0].relative_to_baseline.max_increase",
             message: "max_increase must not be negative"),
        Case(label: "duplicate gate",
             yaml: route("canary: canary\ngates:\n  - { metric: error_rate, max: 1% }\n  - { metric: error_rate, max: 2% }"),
             at: "{ metric: error_rate, max: 2%", keyPath: "routes[0].rollout.gates[1]",
             message: "a second `error_rate` gate with `max` (the first is routes[0].rollout.gates[0])"),
        Case(label: "gates not a list", yaml: route("canary: canary\ngates: { metric: error_rate, max: 1% }"), at: "{ metric",
             keyPath: "routes[0].rollout.gates", message: "expected a list, found a mapping"),
        Case(label: "rollout not a mapping", yaml: baseYAML + """
            routes:
              - name: web
                split: { stable: 100, canary: 0 }
                rollout: canary
            """, at: "canary", occurrence: 3, keyPath: "routes[0].rollout", message: "expected a mapping, found the string `canary`"),
        Case(label: "a broken split is reported once", yaml: baseYAML + """
            routes:
              - name: web
                split: { stable: 90, canary: 5 }
                rollout: { canary: canary }
            """, at: "{ stable", keyPath: "routes[0].split", message: "weights sum to 95, must be 100"),
        Case(label: "a broken baseline is reported once", yaml: baseYAML + """
            routes:
              - name: web
                split: { stable: 100, canary: 0 }
                baseline: stabel
                rollout: { canary: canary }
            """, at: "stabel", keyPath: "routes[0].baseline", message: "baseline `stabel` is not a cohort of this route's split"),
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
        let (line, column) = position(of: c.at, in: c.yaml, occurrence: c.occurrence)
        #expect(d.line == line && d.column == column + c.offset, "at \(d.line):\(d.column), expected \(line):\(column + c.offset)")
    }

    @Test func everyProblemIsReportedWithPositionsSpelledOutByHand() {
        // Spelled out once by hand, independent of the `position(of:)` helper.
        let yaml = """
            listeners: [{ name: public, address: 127.0.0.1:8080 }]
            upstreams:
              stable: { endpoints: ["127.0.0.1:9001"] }
              canary: { endpoints: ["127.0.0.1:9003"] }
            routes:
              - name: web
                split: { stable: 100, canary: 0 }
                rollout:
                  canary: stable
                  steps: [1, 5, 3, 100]
                  step_duration: 10s
                  interval: 20s
                  gates:
                    - { metric: latency, max: 1s }
                    - { metric: error_rate, max: 1%, relative_to_baseline: { max_increase: 1% } }
                  on_failure: stop
            """
        let found = diagnostics(yaml)
        #expect(found.map { "\($0.line):\($0.column) \($0.keyPath)" } == [
            "9:15 routes[0].rollout.canary",
            "10:21 routes[0].rollout.steps[2]",
            "12:17 routes[0].rollout.interval",
            "14:21 routes[0].rollout.gates[0].metric",
            "15:42 routes[0].rollout.gates[1].relative_to_baseline",
            "16:19 routes[0].rollout.on_failure",
        ], "\(found.map(\.description).joined(separator: "\n"))")
    }
}
