import SluiceCore
import Yams

extension RouteCompiler {
    /// Keys of a route's `rollout`.
    static let rolloutKeys = ["canary", "steps", "step_duration", "interval", "min_requests", "gates", "failure_limit",
                              "on_failure"]
    /// Keys of a rollout gate.
    static let gateKeys = ["metric", "max", "relative_to_baseline"]
    /// Keys of a gate's `relative_to_baseline`.
    static let relativeKeys = ["max_increase", "max_ratio"]

    /// Compiles a route's `rollout:` mapping; nil after reporting every problem found.
    /// - Parameters:
    ///   - keyNode: the `rollout` key (position of problems with the route's split as a whole).
    ///   - cohorts: the route's cohorts (split and rule-only), `baseline` an index into them.
    ///   - cohortsKnown: false when the route's split or baseline was invalid (already reported):
    ///     the checks against the route's cohorts are skipped.
    func compileRollout(_ node: Node, _ path: String, keyNode: Node?, cohorts: [CohortSpec], baseline: Int,
                        cohortsKnown: Bool, reader: inout ConfigReader) -> RolloutSpec? {
        guard let m = reader.map(node, path, known: Self.rolloutKeys, required: ["canary"],
                                 example: "{ canary: canary, steps: [1, 5, 25, 50, 100], step_duration: 10m }") else {
            return nil
        }
        var ok = true

        // The canary: a cohort of the split other than the baseline.
        var canary = ""
        var baselineName = ""
        if let c = m["canary"], let name = reader.string(c, m.path("canary")) {
            canary = name
            if cohortsKnown {
                let split = cohorts.filter(\.inSplit)
                if split.isEmpty {
                    reader.report(c, m.path("canary"), "this route answers directly (`respond:`) and has no cohorts to roll out",
                                  hint: "a rollout needs a split, e.g. `split: { stable: 100, \(name): 0 }`")
                    ok = false
                } else {
                    baselineName = cohorts[baseline].name
                    if !split.contains(where: { $0.name == name }) {
                        let hint: String
                        if cohorts.contains(where: { $0.name == name }) || upstreamIndex[name] != nil {
                            hint = "add it to the route's split with weight 0, e.g. `split: { \(baselineName): 100, \(name): 0 }`"
                        } else if let close = ConfigReader.closest(name, among: split.map(\.name)), close != baselineName {
                            hint = "did you mean `\(close)`?"
                        } else {
                            hint = "the canary is one of the split's cohorts: " + split.map { "`\($0.name)`" }.joined(separator: ", ")
                        }
                        reader.report(c, m.path("canary"), "canary `\(name)` is not a cohort of this route's split", hint: hint)
                        ok = false
                    } else if name == baselineName {
                        reader.report(c, m.path("canary"), "the canary `\(name)` is the route's baseline",
                                      hint: "a rollout moves traffic from the baseline (`baseline:`, by default the split's first cohort) "
                                          + "to the canary: name another cohort of the split")
                        ok = false
                    } else {
                        for other in split where other.name != name && other.name != baselineName && other.weight > 0 {
                            reader.report(keyNode ?? node, path,
                                          "the split gives `\(other.name)` \(ConfigValues.formatWeight(other.weight))%, but a rollout moves "
                                              + "traffic only between the baseline `\(baselineName)` and the canary `\(name)`",
                                          hint: "set the other cohorts' weights to 0 in the split")
                            ok = false
                        }
                    }
                }
            }
        } else {
            ok = false
        }

        var steps = RolloutSpec.defaultSteps
        if let s = m["steps"] {
            if let parsed = compileSteps(s, m.path("steps"), reader: &reader) { steps = parsed } else { ok = false }
        }

        var stepDuration = RolloutSpec.defaultStepDuration
        var stepDurationOK = true
        if let d = m["step_duration"] {
            if let ns = positiveDuration(d, m.path("step_duration"), reader: &reader) { stepDuration = ns } else {
                ok = false
                stepDurationOK = false
            }
        }
        var interval = RolloutSpec.defaultInterval
        var intervalOK = true
        if let d = m["interval"] {
            if let ns = positiveDuration(d, m.path("interval"), max: ConfigValues.maxRolloutInterval, reader: &reader) {
                interval = ns
            } else {
                ok = false
                intervalOK = false
            }
        }
        if stepDurationOK && intervalOK && interval > stepDuration {
            let i = RolloutFormat.duration(nanos: interval), d = RolloutFormat.duration(nanos: stepDuration)
            if let n = m["interval"] {
                reader.report(n, m.path("interval"), "interval \(i) is longer than step_duration \(d)",
                              hint: "the gates are evaluated every interval, several times per step: make the interval shorter than the step")
            } else {
                reader.report(m["step_duration"], m.path("step_duration"),
                              "step_duration \(d) is shorter than the interval (\(i) by default)",
                              hint: "set `interval:` shorter than the step, e.g. `interval: 1s`")
            }
            ok = false
        }

        var minRequests = RolloutSpec.defaultMinRequests
        if let n = m["min_requests"] {
            if rejectNegative(n, m.path("min_requests"), what: "min_requests", reader: &reader),
               let v = reader.int(n, m.path("min_requests"), in: 1...1_000_000_000) {
                minRequests = UInt64(v)
            } else {
                ok = false
            }
        }
        var failureLimit = RolloutSpec.defaultFailureLimit
        if let n = m["failure_limit"] {
            if rejectNegative(n, m.path("failure_limit"), what: "failure_limit", reader: &reader),
               let v = reader.int(n, m.path("failure_limit"), in: 1...1_000) {
                failureLimit = v
            } else {
                ok = false
            }
        }
        var onFailure = RolloutFailureAction.rollback
        if let n = m["on_failure"] {
            if let s = reader.string(n, m.path("on_failure")) {
                if let action = RolloutFailureAction(rawValue: s) { onFailure = action } else {
                    reader.report(n, m.path("on_failure"), "unknown on_failure `\(s)`",
                                  hint: ConfigReader.suggestion(for: s, among: RolloutFailureAction.allCases.map(\.rawValue)))
                    ok = false
                }
            } else {
                ok = false
            }
        }

        var gates: [RolloutGate] = []
        if let g = m["gates"], !ConfigReader.isNull(g) {
            if let compiled = compileGates(g, m.path("gates"), reader: &reader) { gates = compiled } else { ok = false }
        }

        guard ok, cohortsKnown else { return nil }
        return RolloutSpec(canary: canary, baseline: baselineName, steps: steps, stepDuration: stepDuration, interval: interval,
                           minRequests: minRequests, gates: gates, failureLimit: failureLimit, onFailure: onFailure)
    }

    // MARK: Parts

    private func compileSteps(_ node: Node, _ path: String, reader: inout ConfigReader) -> [Int]? {
        let hint = "steps are the canary's share at each step, percentages above 0 and at most 100 (two decimals at most), "
            + "increasing and ending with 100, e.g. `[1, 5, 10, 25, 50, 100]`"
        guard let items = reader.list(node, path, example: "[1, 5, 10, 25, 50, 100]") else { return nil }
        guard !items.isEmpty else {
            reader.report(node, path, "a rollout needs at least one step", hint: hint)
            return nil
        }
        var ok = true
        var steps: [Int] = []
        for (i, item) in items.enumerated() {
            let ipath = ConfigReader.join(path, i)
            guard case .scalar(let scalar) = item else {
                reader.report(item, ipath, "expected a percentage, found \(ConfigReader.describe(item))", hint: hint)
                ok = false
                continue
            }
            let text = scalar.string.trimmingSpaces()
            if text.hasPrefix("-") {
                reader.report(item, ipath, "step `\(text)` is negative", hint: hint)
                ok = false
                continue
            }
            switch ConfigValues.parseWeight(text) {
            case .failure(let problem):
                reader.report(item, ipath, problem.message.renamingWeightToStep(), hint: hint)
                ok = false
            case .success(let w):
                if w == 0 {
                    reader.report(item, ipath, "a step of 0% gives the canary nothing", hint: hint)
                    ok = false
                } else if let previous = steps.last, w <= previous {
                    reader.report(item, ipath, "steps must increase: \(ConfigValues.formatWeight(w)) comes after "
                                  + "\(ConfigValues.formatWeight(previous))", hint: hint)
                    ok = false
                } else {
                    steps.append(w)
                }
            }
        }
        if ok, let last = steps.last, last != 10_000 {
            reader.report(items[items.count - 1], ConfigReader.join(path, items.count - 1),
                          "the last step must be 100, found \(ConfigValues.formatWeight(last))",
                          hint: "a rollout ends with the canary taking all traffic (its promotion): add 100 at the end; "
                              + "to hold the canary at a share, pause the rollout at that step")
            ok = false
        }
        return ok ? steps : nil
    }

    private func compileGates(_ node: Node, _ path: String, reader: inout ConfigReader) -> [RolloutGate]? {
        guard let items = reader.list(node, path, example: "- { metric: error_rate, max: 0.5% }") else { return nil }
        var ok = true
        var gates: [RolloutGate] = []
        var seen: [(metric: RolloutMetric, relative: Bool, index: Int)] = []
        for (i, item) in items.enumerated() {
            let gpath = ConfigReader.join(path, i)
            guard let g = reader.map(item, gpath, known: Self.gateKeys, required: ["metric"],
                                     example: "{ metric: error_rate, max: 0.5% }") else {
                ok = false
                continue
            }
            guard let mn = g["metric"], let name = reader.string(mn, g.path("metric")) else {
                ok = false
                continue
            }
            guard let metric = RolloutMetric(rawValue: name) else {
                reader.report(mn, g.path("metric"), "unknown metric `\(name)`",
                              hint: ConfigReader.suggestion(for: name, among: RolloutMetric.allCases.map(\.rawValue)))
                ok = false
                continue
            }
            let maxExample = metric == .errorRate ? "max: 0.5%" : "max: 400ms"
            let relativeExample = metric == .errorRate ? "relative_to_baseline: { max_increase: 0.2% }"
                : "relative_to_baseline: { max_ratio: 1.25 }"
            let gate: RolloutGate?
            switch (g["max"], g["relative_to_baseline"]) {
            case (nil, nil):
                // With a misspelt key (`maximum:`) the typo is the problem already reported.
                if g.unknownKeys.isEmpty {
                    reader.report(item, gpath, "a gate needs `max` or `relative_to_baseline`",
                                  hint: "e.g. `\(maxExample)` or `\(relativeExample)`")
                }
                gate = nil
            case (.some, .some):
                // Point at whichever of the two comes second in the file.
                let second = g.entries.last { $0.key == "max" || $0.key == "relative_to_baseline" }!
                reader.report(second.keyNode, g.path(second.key), "a gate has either `max` or `relative_to_baseline`, not both",
                              hint: "write two gates to check both, one `\(maxExample)` and one `\(relativeExample)`")
                gate = nil
            case (.some(let v), nil):
                switch metric {
                case .errorRate:
                    gate = percent(v, g.path("max"), reader: &reader).map { RolloutGate.maxErrorRate(millionths: $0) }
                case .p99Latency:
                    gate = positiveDuration(v, g.path("max"), max: ConfigValues.maxRolloutInterval, reader: &reader)
                        .map { RolloutGate.maxP99(nanos: $0) }
                }
            case (nil, .some(let r)):
                gate = compileRelative(r, g.path("relative_to_baseline"), metric: metric, example: relativeExample, reader: &reader)
            }
            guard let gate else {
                ok = false
                continue
            }
            if let first = seen.first(where: { $0.metric == metric && $0.relative == gate.isRelative }) {
                reader.report(item, gpath, "a second `\(metric.rawValue)` gate \(gate.isRelative ? "relative to the baseline" : "with `max`") "
                              + "(the first is \(ConfigReader.join(path, first.index)))",
                              hint: "keep one: only the stricter threshold would matter")
                ok = false
                continue
            }
            seen.append((metric, gate.isRelative, i))
            gates.append(gate)
        }
        return ok ? gates : nil
    }

    private func compileRelative(_ node: Node, _ path: String, metric: RolloutMetric, example: String,
                                 reader: inout ConfigReader) -> RolloutGate? {
        guard let r = reader.map(node, path, known: Self.relativeKeys, example: String(example.dropFirst("relative_to_baseline: ".count))) else {
            return nil
        }
        let wanted = metric == .errorRate ? "max_increase" : "max_ratio"
        let other = metric == .errorRate ? "max_ratio" : "max_increase"
        if r.has(other) {
            let explanation = metric == .errorRate
                ? "an error_rate gate compares the canary with the baseline by `max_increase` (canary minus baseline)"
                : "a p99_latency gate compares the canary with the baseline by `max_ratio` (canary / baseline)"
            reader.report(r.keyNode(other), r.path(other), "`\(other)` does not apply to \(metric.rawValue)",
                          hint: "\(explanation), e.g. `\(example)`")
            return nil
        }
        guard let v = r[wanted] else {
            if r.unknownKeys.isEmpty {
                reader.report(node, path, "missing `\(wanted)`", hint: "e.g. `\(example)`")
            }
            return nil
        }
        switch metric {
        case .errorRate:
            return percent(v, r.path(wanted), reader: &reader).map { RolloutGate.maxErrorRateIncrease(millionths: $0) }
        case .p99Latency:
            return ratio(v, r.path(wanted), reader: &reader).map { RolloutGate.maxP99Ratio($0) }
        }
    }

    // MARK: Values

    /// Reports a value written with a leading `-`; false when it did.
    private func rejectNegative(_ node: Node, _ path: String, what: String, reader: inout ConfigReader) -> Bool {
        guard case .scalar(let scalar) = node, scalar.string.trimmingSpaces().hasPrefix("-") else { return true }
        reader.report(node, path, "\(what) must not be negative, found `\(scalar.string)`")
        return false
    }

    /// A duration longer than 0 and at most `max`.
    private func positiveDuration(_ node: Node, _ path: String, max: UInt64 = ConfigValues.maxDuration,
                                  reader: inout ConfigReader) -> UInt64? {
        let key = path.split(separator: ".").last.map(String.init) ?? path
        guard rejectNegative(node, path, what: key, reader: &reader), let ns = reader.duration(node, path, max: max) else {
            return nil
        }
        guard ns > 0 else {
            reader.report(node, path, "\(key) must be longer than 0", hint: "e.g. `10s`, `400ms`, `10m`")
            return nil
        }
        return ns
    }

    /// A percentage written with `%`, up to four decimals, 0...100, in millionths.
    private func percent(_ node: Node, _ path: String, reader: inout ConfigReader) -> UInt64? {
        let key = path.split(separator: ".").last.map(String.init) ?? path
        guard rejectNegative(node, path, what: key, reader: &reader) else { return nil }
        guard case .scalar(let scalar) = node else {
            reader.report(node, path, "expected a percentage, found \(ConfigReader.describe(node))", hint: "e.g. `0.5%`")
            return nil
        }
        switch ConfigValues.parsePercent(scalar.string) {
        case .success(let millionths): return millionths
        case .failure(let problem):
            reader.report(node, path, problem.message, hint: problem.hint)
            return nil
        }
    }

    /// A ratio of at least 1 (`1.25`).
    private func ratio(_ node: Node, _ path: String, reader: inout ConfigReader) -> Double? {
        let key = path.split(separator: ".").last.map(String.init) ?? path
        guard rejectNegative(node, path, what: key, reader: &reader) else { return nil }
        let hint = "a ratio of the canary's p99 to the baseline's, at least 1, e.g. `1.25` (the canary may be 25% slower)"
        guard case .scalar(let scalar) = node else {
            reader.report(node, path, "expected a number, found \(ConfigReader.describe(node))", hint: hint)
            return nil
        }
        let text = scalar.string.trimmingSpaces().replacingUnderscores()
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              text.filter({ $0 == "." }).count <= 1, let value = Double(text), value.isFinite else {
            reader.report(node, path, "invalid ratio `\(scalar.string)`", hint: hint)
            return nil
        }
        guard value >= 1 else {
            reader.report(node, path, "\(key) \(text) is below 1: the canary would have to be faster than the baseline", hint: hint)
            return nil
        }
        return value
    }
}

extension ConfigValues {
    /// Parses a percentage written with `%` (`0.5%`, `2%`, `0.05%`), up to four decimals and at
    /// most 100, into millionths (`0.5%` → 5000). The `%` is required, so `0.005` (a fraction?)
    /// is never silently read as 0.005%.
    static func parsePercent(_ raw: String) -> Result<UInt64, Problem> {
        let text = raw.trimmingSpaces().replacingUnderscores()
        let hint = "write a percentage with `%`, e.g. `0.5%` (at most four decimals, at most 100%)"
        guard text.hasSuffix("%") else {
            return .failure(Problem(message: "`\(raw)` is not a percentage: the `%` is missing", hint: hint))
        }
        let number = String(text.dropLast()).trimmingSpaces()
        let parts = number.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = parts.first, !whole.isEmpty, whole.count <= 3,
              whole.allSatisfy({ $0.isASCII && $0.isNumber }), let units = UInt64(whole) else {
            return .failure(Problem(message: "invalid percentage `\(raw)`", hint: hint))
        }
        var fraction: UInt64 = 0
        if parts.count == 2 {
            let f = parts[1]
            guard !f.isEmpty, f.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                return .failure(Problem(message: "invalid percentage `\(raw)`", hint: hint))
            }
            guard f.count <= 4 else {
                return .failure(Problem(message: "percentage `\(raw)` has more than four decimals", hint: hint))
            }
            fraction = UInt64(f)!
            for _ in f.count..<4 { fraction *= 10 }
        }
        let value = units * 10_000 + fraction
        guard value <= 1_000_000 else {
            return .failure(Problem(message: "percentage `\(raw)` is over 100%", hint: hint))
        }
        return .success(value)
    }
}

extension String {
    /// A `parseWeight` message about a step: "weight" becomes "step".
    fileprivate func renamingWeightToStep() -> String {
        var out = self
        if out.hasPrefix("invalid weight") { out = "invalid step" + out.dropFirst("invalid weight".count) }
        if out.hasPrefix("weight ") { out = "step " + out.dropFirst("weight ".count) }
        return out
    }
}
