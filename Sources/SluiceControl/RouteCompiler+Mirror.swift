import SluiceCore
import Yams

extension RouteCompiler {
    /// Keys of a `mirror`.
    static let mirrorKeys = ["to", "percent", "compare", "max_body_bytes", "headers", "methods", "timeout"]

    /// Compiles a route's or rule's `mirror:` against the route's cohorts (a cohort's name means
    /// its upstream) and the config's upstreams; nil after reporting every problem.
    func compileMirror(_ node: Node, _ path: String, cohorts: [CohortSpec], reader: inout ConfigReader) -> MirrorSpec? {
        let example = "{ to: canary, percent: 10, compare: true }"
        guard let m = reader.map(node, path, known: Self.mirrorKeys, required: ["to"], example: example) else { return nil }
        var ok = true
        var spec = MirrorSpec(name: "", upstream: -1)
        if let t = m["to"], let name = reader.string(t, m.path("to")) {
            if let c = cohorts.first(where: { $0.name == name }) {
                spec.upstream = c.upstream
            } else if let u = upstreamIndex[name] {
                spec.upstream = u
            } else {
                var known = cohorts.map(\.name)
                for u in upstreams.map(\.name) where !known.contains(u) { known.append(u) }
                reader.report(t, m.path("to"), "`\(name)` is neither a cohort of this route nor an upstream",
                              hint: ConfigReader.suggestion(for: name, among: known)
                                  ?? "`to` names a cohort of the route or an upstream under `upstreams:`")
                ok = false
            }
            spec.name = name
            if spec.upstream >= 0, tlsUpstreams.contains(upstreams[spec.upstream].name) {
                reader.report(t, m.path("to"), "upstream `\(upstreams[spec.upstream].name)` is reached over TLS; mirror copies are sent in plain HTTP only",
                              hint: "mirror to a plain-HTTP upstream group")
                ok = false
            }
        } else {
            ok = false
        }
        if let p = m["percent"] {
            if case .scalar(let scalar) = p {
                switch ConfigValues.parseWeight(scalar.string) {
                case .success(let units) where units > 0: spec.percent = units
                case .success:
                    reader.report(p, m.path("percent"), "a mirror at 0% sends nothing", hint: "remove `mirror`, or give a percentage above 0")
                    ok = false
                case .failure(let problem):
                    reader.report(p, m.path("percent"), problem.message.replacingOccurrences(of: "weight", with: "percentage"),
                                  hint: "a percentage above 0 and at most 100, with up to two decimals, e.g. `10` or `0.5`")
                    ok = false
                }
            } else {
                reader.report(p, m.path("percent"), "expected a percentage, found \(ConfigReader.describe(p))", hint: "e.g. `percent: 10`")
                ok = false
            }
        }
        if let c = m["compare"] {
            if let b = reader.bool(c, m.path("compare")) { spec.compare = b } else { ok = false }
        }
        if let b = m["max_body_bytes"] {
            if let n = reader.size(b, m.path("max_body_bytes"), max: 64 << 20) { spec.maxBodyBytes = Int(n) } else { ok = false }
        }
        if let h = m["headers"] {
            if let items = reader.list(h, m.path("headers"), allowSingle: true, example: "[content-type, etag]") {
                var names: [String] = []
                for (i, item) in items.enumerated() {
                    guard let name = reader.string(item, ConfigReader.join(m.path("headers"), i)) else { ok = false; continue }
                    guard ConfigValues.isToken(name) else {
                        reader.report(item, ConfigReader.join(m.path("headers"), i), "`\(name)` is not a valid header name")
                        ok = false
                        continue
                    }
                    let lower = name.lowercased()
                    if !names.contains(lower) { names.append(lower) }
                }
                if names.count > 32 {
                    reader.report(h, m.path("headers"), "at most 32 compared headers")
                    ok = false
                }
                spec.headers = names
            } else {
                ok = false
            }
        }
        if let list = m["methods"] {
            if let items = reader.list(list, m.path("methods"), allowSingle: true, example: "[GET, HEAD]") {
                var mask: UInt16 = 0
                for (i, item) in items.enumerated() {
                    let ipath = ConfigReader.join(m.path("methods"), i)
                    guard let name = reader.string(item, ipath) else { ok = false; continue }
                    if let method = MirrorSpec.methodNames.first(where: { $0.0 == name.uppercased() })?.1 {
                        mask |= MirrorSpec.methodBit(method)
                    } else {
                        reader.report(item, ipath, "`\(name)` cannot be mirrored",
                                      hint: "one of " + MirrorSpec.methodNames.map(\.0).joined(separator: ", "))
                        ok = false
                    }
                }
                if items.isEmpty {
                    reader.report(list, m.path("methods"), "an empty list mirrors nothing", hint: "remove `methods` for the idempotent ones")
                    ok = false
                }
                spec.methods = mask
            } else {
                ok = false
            }
        }
        if let t = m["timeout"] {
            if let ns = reader.duration(t, m.path("timeout"), max: 300_000_000_000) {
                if ns > 0 { spec.timeoutNanos = ns } else {
                    reader.report(t, m.path("timeout"), "must be longer than 0", hint: "e.g. `timeout: 5s`")
                    ok = false
                }
            } else {
                ok = false
            }
        }
        return ok ? spec : nil
    }
}
