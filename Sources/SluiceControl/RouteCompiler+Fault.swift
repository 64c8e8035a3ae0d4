import SluiceCore
import Yams

extension RouteCompiler {
    /// Keys of a `fault`.
    static let faultKeys = ["abort", "delay", "when_header", "count_in_gates", "cohort"]
    /// Keys of a fault's `abort`.
    static let faultAbortKeys = ["status", "percent"]
    /// Keys of a fault's `delay`.
    static let faultDelayKeys = ["duration", "percent"]

    /// Compiles a route's `fault:` (one mapping or a list of them); nil after reporting every problem.
    func compileRouteFaults(_ node: Node, _ path: String, cohorts: [CohortSpec], reader: inout ConfigReader) -> [FaultSpec]? {
        if case .sequence = node {
            guard let items = reader.list(node, path) else { return nil }
            var out: [FaultSpec] = []
            var ok = true
            for (i, item) in items.enumerated() {
                if let f = compileFault(item, ConfigReader.join(path, i), cohorts: cohorts, allowCohort: true, reader: &reader) {
                    out.append(f)
                } else {
                    ok = false
                }
            }
            return ok ? out : nil
        }
        return compileFault(node, path, cohorts: cohorts, allowCohort: true, reader: &reader).map { [$0] }
    }

    /// Compiles one `fault:` mapping. `cohort:` (a cohort of the route) is allowed on route faults only.
    func compileFault(_ node: Node, _ path: String, cohorts: [CohortSpec], allowCohort: Bool,
                      reader: inout ConfigReader) -> FaultSpec? {
        let example = "{ abort: { status: 503, percent: 5 }, when_header: X-Sluice-Drill }"
        guard let m = reader.map(node, path, known: Self.faultKeys, example: example) else { return nil }
        var ok = true
        var spec = FaultSpec()
        if let c = m["cohort"] {
            if !allowCohort {
                reader.report(m.keyNode("cohort"), m.path("cohort"), "a rule's fault applies to the cohort the rule forwards to",
                              hint: "remove `cohort`, or put the fault on the route: `fault: { cohort: canary, ... }`")
                ok = false
            } else if let name = reader.string(c, m.path("cohort")) {
                if let index = cohorts.firstIndex(where: { $0.name == name }) {
                    spec.cohort = index
                } else {
                    reader.report(c, m.path("cohort"), "cohort `\(name)` is not a cohort of this route",
                                  hint: ConfigReader.suggestion(for: name, among: cohorts.map(\.name))
                                      ?? "cohorts: " + cohorts.map { "`\($0.name)`" }.joined(separator: ", "))
                    ok = false
                }
            } else {
                ok = false
            }
        }
        if let a = m["abort"] {
            if let am = reader.map(a, m.path("abort"), known: Self.faultAbortKeys, required: ["status", "percent"],
                                   example: "{ status: 503, percent: 5 }") {
                if let s = am["status"], let status = reader.int(s, am.path("status"), in: 200...599) { spec.abortStatus = status } else { ok = false }
                if let p = am["percent"], let percent = faultPercent(p, am.path("percent"), reader: &reader) {
                    spec.abortPercent = percent
                } else {
                    ok = false
                }
            } else {
                ok = false
            }
        }
        if let d = m["delay"] {
            // The data plane holds the request on its timer for `duration`, then forwards it.
            if let dm = reader.map(d, m.path("delay"), known: ["duration", "percent"], required: ["duration", "percent"],
                                   example: "{ duration: 200ms, percent: 10 }") {
                if let v = dm["duration"], let ns = reader.duration(v, dm.path("duration"), max: 60_000_000_000) {
                    if ns == 0 {
                        reader.report(v, dm.path("duration"), "must be longer than 0", hint: "e.g. `duration: 200ms`")
                        ok = false
                    } else {
                        spec.delayNanos = ns
                    }
                } else {
                    ok = false
                }
                if let p = dm["percent"], let percent = faultPercent(p, dm.path("percent"), reader: &reader) {
                    spec.delayPercent = percent
                } else {
                    ok = false
                }
            } else {
                ok = false
            }
        }
        if !m.has("abort") && !m.has("delay") {
            reader.report(node, path, "a fault needs `abort` or `delay`", hint: "e.g. `fault: \(example)`")
            ok = false
        }
        if let h = m["when_header"], let name = reader.string(h, m.path("when_header")) {
            if ConfigValues.isToken(name) { spec.whenHeader = name } else {
                reader.report(h, m.path("when_header"), "`\(name)` is not a valid header name")
                ok = false
            }
        } else if m.has("when_header") {
            ok = false
        }
        if let g = m["count_in_gates"] {
            if let b = reader.bool(g, m.path("count_in_gates")) { spec.countInGates = b } else { ok = false }
        }
        return ok ? spec : nil
    }

    /// A fault share: a percentage with up to two decimals, above 0 (`5`, `0.5`, `50%`), in 0.01% units.
    private func faultPercent(_ node: Node, _ path: String, reader: inout ConfigReader) -> Int? {
        let hint = "a percentage above 0 and at most 100, with up to two decimals, e.g. `5` or `0.5`"
        guard case .scalar(let scalar) = node else {
            reader.report(node, path, "expected a percentage, found \(ConfigReader.describe(node))", hint: hint)
            return nil
        }
        switch ConfigValues.parseWeight(scalar.string) {
        case .failure(let problem):
            reader.report(node, path, problem.message.replacingOccurrences(of: "weight", with: "percentage"), hint: hint)
            return nil
        case .success(let units):
            guard units > 0 else {
                reader.report(node, path, "a fault at 0% injects nothing", hint: hint)
                return nil
            }
            return units
        }
    }
}
