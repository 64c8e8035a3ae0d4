import SluiceCore
import Yams

/// Compiles `routes:` into route specs: matches, cohorts, split weights, sticky policy, rules.
struct RouteCompiler {
    /// Upstream groups in config order (index = upstream id).
    let upstreams: [UpstreamGroup]
    /// Upstream index by name.
    let upstreamIndex: [String: Int]

    /// Keys of a route.
    static let routeKeys = ["name", "match", "upstream", "split", "cohorts", "baseline", "sticky", "rules", "respond",
                            "cohort_header", "cohort_response_header", "rollout", "upgrade", "compression",
                            "path_normalization", "forward_normalized_path", "fault", "retries", "fallback_to_baseline", "mirror"]
    /// Keys of a `match`.
    static let matchKeys = ["host", "path_prefix", "path", "method", "header", "cookie", "query", "source"]
    /// Keys of a header, cookie or query test.
    static let testKeys = ["name", "value", "prefix", "regex", "present", "absent"]
    /// Keys of a `respond`.
    static let respondKeys = ["status", "body", "content_type"]
    /// Keys of a `sticky` mapping.
    static let stickyKeys = ["cookie", "header", "assign_cookie", "max_age"]

    /// `path_normalization` of routes that do not set it (the top-level key; on by default).
    var defaultPathNormalization = true
    /// `forward_normalized_path` of routes that do not set it (the top-level key; off by default).
    var defaultForwardNormalizedPath = false
    /// Upstream groups reached over TLS (a mirror cannot send to them yet).
    var tlsUpstreams: Set<String> = []

    /// A compiler resolving names against `upstreams`.
    init(upstreams: [UpstreamGroup]) {
        self.upstreams = upstreams
        var index: [String: Int] = [:]
        for (i, u) in upstreams.enumerated() where index[u.name] == nil { index[u.name] = i }
        self.upstreamIndex = index
    }

    /// Compiles the route list.
    func compileRoutes(_ node: Node, reader: inout ConfigReader) -> [RouteSpec] {
        guard let items = reader.list(node, "routes", example: "- { name: web, upstream: stable }") else { return [] }
        if items.isEmpty {
            reader.report(node, "routes", "at least one route is required", hint: "e.g. `- { name: web, upstream: stable }`")
        }
        var out: [RouteSpec] = []
        var names: [String: Node] = [:]
        for (i, item) in items.enumerated() {
            let path = ConfigReader.join("routes", i)
            guard let spec = compileRoute(item, path, reader: &reader, names: &names) else { continue }
            out.append(spec)
        }
        return out
    }

    // MARK: One route

    private func compileRoute(_ node: Node, _ path: String, reader: inout ConfigReader,
                              names: inout [String: Node]) -> RouteSpec? {
        guard let m = reader.map(node, path, known: Self.routeKeys, required: ["name"],
                                 example: "{ name: web, match: { path_prefix: / }, upstream: stable }") else { return nil }
        var ok = true
        var name = ""
        if let n = m["name"], let s = reader.string(n, m.path("name")) {
            name = s
            if !ConfigCompiler.isValidName(s) {
                reader.report(n, m.path("name"), "invalid route name `\(s)`", hint: "names use letters, digits, `-`, `_` and `.`")
                ok = false
            } else if let first = names[s] {
                reader.report(n, m.path("name"), "duplicate route name `\(s)` (first used at line \(first.mark?.line ?? 0))",
                              hint: "give each route its own name")
                ok = false
            } else {
                names[s] = n
            }
        } else {
            ok = false
        }
        var normalizing = defaultPathNormalization
        if let n = m["path_normalization"] {
            if let b = reader.bool(n, m.path("path_normalization")) { normalizing = b } else { ok = false }
        }
        var forwardNormalized = defaultForwardNormalizedPath
        if let f = m["forward_normalized_path"] {
            if let b = reader.bool(f, m.path("forward_normalized_path")) { forwardNormalized = b } else { ok = false }
        }
        // (Both from the top level: reported there once.)
        if forwardNormalized && !normalizing && (m.has("forward_normalized_path") || m.has("path_normalization")) {
            reader.report(m.keyNode("forward_normalized_path") ?? m.keyNode("path_normalization") ?? node,
                          m.has("forward_normalized_path") ? m.path("forward_normalized_path") : m.path("path_normalization"),
                          "`forward_normalized_path: true` needs `path_normalization` on",
                          hint: "a route that matches raw paths forwards them raw; remove one of the two")
            ok = false
        }
        var match: [MatchCondition] = []
        if let mm = m["match"] {
            if let compiled = compileMatch(mm, m.path("match"), normalizing: normalizing, reader: &reader) {
                match = compiled
            } else {
                ok = false
            }
        }

        // Declared cohorts: name -> upstream.
        var declared: [(name: String, upstream: Int, node: Node)] = []
        if let c = m["cohorts"] {
            let result = compileCohortDeclarations(c, m.path("cohorts"), reader: &reader)
            declared = result.cohorts
            if !result.ok { ok = false }
        }

        // Split cohorts.
        var cohorts: [CohortSpec] = []
        let hasUpstream = m.has("upstream"), hasSplit = m.has("split"), hasRespond = m.has("respond")
        if hasUpstream && hasSplit {
            reader.report(m.keyNode("split"), m.path("split"), "a route has either `upstream` or `split`, not both",
                          hint: "`upstream: NAME` is the same as `split: { NAME: 100 }`")
            ok = false
        } else if hasRespond && (hasUpstream || hasSplit) {
            reader.report(m.keyNode("respond"), m.path("respond"),
                          "a route-level `respond` answers every request, so `\(hasUpstream ? "upstream" : "split")` would never be used",
                          hint: "remove one of them, or move the response into a rule with a `match`")
            ok = false
        } else if !hasUpstream && !hasSplit && !hasRespond {
            // With a misspelt key (`splt:`) the typo is the problem already reported.
            if m.unknownKeys.isEmpty {
                reader.report(node, path, "a route needs `upstream`, `split` or `respond`",
                              hint: "e.g. `upstream: stable`, or `split: { stable: 95, canary: 5 }`")
            }
            ok = false
        }
        if let u = m["upstream"], let uname = reader.string(u, m.path("upstream")) {
            if let index = upstreamIndex[uname] {
                cohorts = [CohortSpec(name: uname, upstream: index, weight: 10_000)]
            } else {
                reportUnknownUpstream(u, m.path("upstream"), uname, reader: &reader)
                ok = false
            }
        } else if m.has("upstream") {
            ok = false
        }
        if let s = m["split"] {
            if let split = compileSplit(s, m.path("split"), declared: declared, reader: &reader) {
                cohorts = split
            } else {
                ok = false
            }
        }

        // Baseline: defaults to the first split cohort.
        var baseline = 0
        var baselineOK = true
        if let b = m["baseline"], let bname = reader.string(b, m.path("baseline")) {
            if let index = cohorts.firstIndex(where: { $0.name == bname }) {
                baseline = index
            } else if !cohorts.isEmpty || hasRespond {
                let names = cohorts.filter(\.inSplit).map(\.name)
                let hint = ConfigReader.closest(bname, among: names).map { "did you mean `\($0)`?" }
                    ?? "the baseline must be one of the split's cohorts: " + names.map { "`\($0)`" }.joined(separator: ", ")
                reader.report(b, m.path("baseline"), "baseline `\(bname)` is not a cohort of this route's split", hint: hint)
                ok = false
                baselineOK = false
            }
        }

        // Sticky policy.
        let splitCohorts = cohorts.filter(\.inSplit).count
        var sticky: StickyPolicy = splitCohorts >= 2 ? .assigned(cookie: StickyPolicy.defaultCookieName, maxAge: nil) : .none
        if let s = m["sticky"] {
            if let policy = compileSticky(s, m.path("sticky"), reader: &reader) { sticky = policy } else { ok = false }
        }

        // Rules (may add weight-0 cohorts that only rules send traffic to).
        var rules: [RuleSpec] = []
        if let r = m["rules"] {
            if let compiled = compileRules(r, m.path("rules"), cohorts: &cohorts, declared: declared, normalizing: normalizing,
                                           reader: &reader) {
                rules = compiled
            } else {
                ok = false
            }
        }
        if let r = m["respond"] {
            if let response = compileRespond(r, m.path("respond"), reader: &reader) {
                rules.append(RuleSpec(match: [], action: .respond(response)))
            } else {
                ok = false
            }
        }

        var rollout: RolloutSpec?
        if let r = m["rollout"] {
            // A broken split or baseline is reported already; the rollout's checks against the
            // route's cohorts would only repeat it.
            let cohortsKnown = baselineOK && (cohorts.contains(where: \.inSplit) || (!hasSplit && !hasUpstream))
            if let spec = compileRollout(r, m.path("rollout"), keyNode: m.keyNode("rollout"), cohorts: cohorts,
                                         baseline: baseline, cohortsKnown: cohortsKnown, reader: &reader) {
                rollout = spec
            } else {
                ok = false
            }
        }

        var cohortHeader = "X-Sluice-Cohort"
        if let h = m["cohort_header"], let s = reader.string(h, m.path("cohort_header")) {
            if !ConfigValues.isToken(s) {
                reader.report(h, m.path("cohort_header"), "`\(ConfigReader.abbreviated(s))` is not a valid header name",
                              hint: "header names use letters, digits and `-`, e.g. `X-Sluice-Cohort`")
                ok = false
            } else if let why = ConfigValues.reservedHeaderReason(s) {
                reader.report(h, m.path("cohort_header"), "`\(s)` cannot be the cohort header: it is \(why)",
                              hint: "the cohort header is added to every request (and with `cohort_response_header`, to responses); "
                                  + "use a name of your own, e.g. `X-Sluice-Cohort` or `X-Cohort`")
                ok = false
            } else {
                cohortHeader = s
            }
        }
        var cohortResponseHeader = false
        if let h = m["cohort_response_header"] {
            if let b = reader.bool(h, m.path("cohort_response_header")) { cohortResponseHeader = b } else { ok = false }
        }
        var upgrade = ["websocket"]
        if let u = m["upgrade"] {
            if let list = compileUpgrade(u, m.path("upgrade"), reader: &reader) { upgrade = list } else { ok = false }
        }
        var faults: [FaultSpec] = []
        if let f = m["fault"] {
            if cohorts.isEmpty {
                reader.report(m.keyNode("fault"), m.path("fault"), "a route that answers directly has no cohorts to inject faults into")
                ok = false
            } else if let compiled = compileRouteFaults(f, m.path("fault"), cohorts: cohorts, reader: &reader) {
                faults = compiled
            } else {
                ok = false
            }
        }
        var mirror: MirrorSpec?
        if let node = m["mirror"] {
            if cohorts.isEmpty {
                reader.report(m.keyNode("mirror"), m.path("mirror"), "a route that answers directly forwards nothing to mirror")
                ok = false
            } else if let compiled = compileMirror(node, m.path("mirror"), cohorts: cohorts, reader: &reader) {
                mirror = compiled
            } else {
                ok = false
            }
        }
        var compression: CompressionSpec?
        if let node = m["compression"] {
            switch compileCompression(node, m.path("compression"), reader: &reader) {
            case .some(let c): compression = c
            case .none: ok = false
            }
        }
        var retry: RetrySpec?
        if m["retries"] != nil || m["fallback_to_baseline"] != nil {
            if let r = compileRetries(m, hasCohorts: !cohorts.isEmpty, reader: &reader) { retry = r } else { ok = false }
        }
        guard ok else { return nil }
        var spec = RouteSpec(name: name, match: match, cohorts: cohorts, baseline: cohorts.isEmpty ? -1 : baseline,
                             sticky: sticky, rules: rules, cohortHeader: cohortHeader,
                             cohortResponseHeader: cohortResponseHeader, rollout: rollout,
                             pathNormalization: normalizing, forwardNormalizedPath: forwardNormalized)
        spec.upgrade = upgrade
        spec.compression = compression ?? nil
        spec.faults = faults
        spec.retry = retry
        spec.mirror = mirror
        return spec
    }

    private func reportUnknownUpstream(_ node: Node, _ path: String, _ name: String, reader: inout ConfigReader) {
        let known = upstreams.map(\.name)
        let hint: String
        if known.isEmpty {
            hint = "define it under `upstreams:`, e.g. `upstreams: { \(name): { endpoints: [\"127.0.0.1:9001\"] } }`"
        } else if let s = ConfigReader.suggestion(for: name, among: known), s.hasPrefix("did you mean") {
            hint = s
        } else {
            hint = "defined upstreams: " + known.map { "`\($0)`" }.joined(separator: ", ")
        }
        reader.report(node, path, "upstream `\(name)` does not exist", hint: hint)
    }

    private func compileCohortDeclarations(_ node: Node, _ path: String,
                                           reader: inout ConfigReader) -> (cohorts: [(name: String, upstream: Int, node: Node)], ok: Bool) {
        guard case .mapping(let mapping) = node else {
            reader.report(node, path, "expected a mapping of cohort names to `{ upstream: NAME }`, found \(ConfigReader.describe(node))",
                          hint: "e.g. `cohorts: { blue: { upstream: pool-a }, green: { upstream: pool-b } }`")
            return ([], false)
        }
        var ok = true
        var out: [(name: String, upstream: Int, node: Node)] = []
        for (keyNode, value) in mapping {
            guard let cname = reader.string(keyNode, path) else { ok = false; continue }
            let cpath = ConfigReader.join(path, cname)
            if !ConfigCompiler.isValidName(cname) {
                reader.report(keyNode, cpath, "invalid cohort name `\(cname)`", hint: "names use letters, digits, `-`, `_` and `.`")
                ok = false
            }
            guard let cm = reader.map(value, cpath, known: ["upstream"], required: ["upstream"], example: "{ upstream: pool-a }"),
                  let u = cm["upstream"], let uname = reader.string(u, cm.path("upstream")) else {
                out.append((cname, -1, keyNode))
                ok = false
                continue
            }
            guard let index = upstreamIndex[uname] else {
                reportUnknownUpstream(u, cm.path("upstream"), uname, reader: &reader)
                out.append((cname, -1, keyNode))
                ok = false
                continue
            }
            out.append((cname, index, keyNode))
        }
        return (out, ok)
    }

    /// Resolves a cohort name: a declared cohort first, else an upstream of that name. A declared
    /// cohort whose own declaration was broken (already reported) resolves to -1.
    private func resolveCohort(_ name: String, declared: [(name: String, upstream: Int, node: Node)]) -> Int? {
        if let d = declared.first(where: { $0.name == name }) { return d.upstream }
        return upstreamIndex[name]
    }

    private func compileSplit(_ node: Node, _ path: String, declared: [(name: String, upstream: Int, node: Node)],
                              reader: inout ConfigReader) -> [CohortSpec]? {
        guard case .mapping(let mapping) = node else {
            reader.report(node, path, "expected a mapping of cohort names to percentages, found \(ConfigReader.describe(node))",
                          hint: "e.g. `split: { stable: 95, canary: 5 }`")
            return nil
        }
        var ok = true
        var cohorts: [CohortSpec] = []
        var sum = 0
        for (keyNode, value) in mapping {
            guard let cname = reader.string(keyNode, path) else { ok = false; continue }
            let cpath = ConfigReader.join(path, cname)
            var upstream = -1
            if let u = resolveCohort(cname, declared: declared) {
                upstream = u
                if u < 0 { ok = false }
            } else {
                let candidates = declared.map(\.name) + upstreams.map(\.name)
                let hint: String
                if let s = ConfigReader.suggestion(for: cname, among: candidates), s.hasPrefix("did you mean") {
                    hint = s
                } else if candidates.isEmpty {
                    hint = "split keys name upstreams (or cohorts declared under `cohorts:`); none are defined"
                } else {
                    hint = "split keys name upstreams (or cohorts declared under `cohorts:`): "
                        + candidates.map { "`\($0)`" }.joined(separator: ", ")
                }
                reader.report(keyNode, cpath, "cohort `\(cname)` is neither an upstream nor a declared cohort", hint: hint)
                ok = false
            }
            guard case .scalar(let scalar) = value else {
                reader.report(value, cpath, "expected a percentage, found \(ConfigReader.describe(value))", hint: "e.g. `\(cname): 5`")
                ok = false
                continue
            }
            switch ConfigValues.parseWeight(scalar.string) {
            case .failure(let problem):
                reader.report(value, cpath, problem.message, hint: problem.hint)
                ok = false
            case .success(let w):
                sum += w
                if upstream >= 0 { cohorts.append(CohortSpec(name: cname, upstream: upstream, weight: w)) }
            }
        }
        if mapping.isEmpty {
            reader.report(node, path, "a split needs at least one cohort", hint: "e.g. `split: { stable: 95, canary: 5 }`")
            return nil
        }
        if ok && sum != 10_000 {
            let hint: String
            let fix = cohorts[0].weight + 10_000 - sum
            if cohorts.count > 1 && (0...10_000).contains(fix) {
                hint = "weights are percentages that must add up to exactly 100; e.g. set `\(cohorts[0].name)` to \(ConfigValues.formatWeight(fix))"
            } else {
                hint = "weights are percentages that must add up to exactly 100"
            }
            reader.report(node, path, "weights sum to \(ConfigValues.formatWeight(sum)), must be 100", hint: hint)
            ok = false
        }
        return ok ? cohorts : nil
    }

    private func compileSticky(_ node: Node, _ path: String, reader: inout ConfigReader) -> StickyPolicy? {
        if case .scalar(let s) = node {
            if s.string == "none" { return StickyPolicy.none }
            reader.report(node, path, "expected `none` or a mapping, found \(ConfigReader.describe(node))",
                          hint: "`sticky: none`, `sticky: { cookie: NAME }`, `sticky: { header: NAME }` or `sticky: { assign_cookie: NAME, max_age: 30d }`")
            return nil
        }
        guard let m = reader.map(node, path, known: Self.stickyKeys, example: "{ cookie: session_id }") else { return nil }
        // `cookie` or `header` names the user's key; `assign_cookie`/`max_age` shape Sluice's own
        // cookie, which holds the key of a client without one (alone, or next to `cookie`/`header`).
        let modes = ["cookie", "header"].filter { m.has($0) }
        if modes.count > 1 {
            reader.report(m.keyNode(modes[1]), m.path(modes[1]),
                          "`\(modes[0])` and `\(modes[1])` cannot both be set", hint: "pick one source for the sticky key")
            return nil
        }
        var maxAge: UInt64?
        if let a = m["max_age"] {
            // With `cookie`/`header` it shapes Sluice's own fallback cookie (issue 19).
            guard let ns = reader.duration(a, m.path("max_age"), max: ConfigValues.maxCookieAge) else { return nil }
            guard ns >= 1_000_000_000 else {
                reader.report(a, m.path("max_age"), "max_age must be at least 1s")
                return nil
            }
            maxAge = ns / 1_000_000_000
        }
        var cookie = StickyPolicy.defaultCookieName
        if let c = m["assign_cookie"] {
            guard let name = reader.string(c, m.path("assign_cookie")) else { return nil }
            guard ConfigValues.isToken(name) else {
                reader.report(c, m.path("assign_cookie"), "`\(name)` is not a valid cookie name")
                return nil
            }
            cookie = name
        }
        if let c = m["cookie"] {
            guard let name = reader.string(c, m.path("cookie")) else { return nil }
            guard ConfigValues.isToken(name) else {
                reader.report(c, m.path("cookie"), "`\(name)` is not a valid cookie name")
                return nil
            }
            return .cookie(name, assignCookie: cookie, maxAge: maxAge)
        }
        if let h = m["header"] {
            guard let name = reader.string(h, m.path("header")) else { return nil }
            guard ConfigValues.isToken(name) else {
                reader.report(h, m.path("header"), "`\(name)` is not a valid header name")
                return nil
            }
            return .header(name, assignCookie: cookie, maxAge: maxAge)
        }
        return .assigned(cookie: cookie, maxAge: maxAge)
    }

    private func compileRules(_ node: Node, _ path: String, cohorts: inout [CohortSpec],
                              declared: [(name: String, upstream: Int, node: Node)], normalizing: Bool,
                              reader: inout ConfigReader) -> [RuleSpec]? {
        guard let items = reader.list(node, path, example: "- { match: { header: { name: X-Canary, value: always } }, cohort: canary }") else {
            return nil
        }
        var ok = true
        var rules: [RuleSpec] = []
        for (i, item) in items.enumerated() {
            let rpath = ConfigReader.join(path, i)
            guard let m = reader.map(item, rpath, known: ["match", "cohort", "respond", "fault", "mirror"],
                                     example: "{ match: { header: { name: X-Canary, value: always } }, cohort: canary }") else {
                ok = false
                continue
            }
            var match: [MatchCondition] = []
            if let mm = m["match"] {
                if let compiled = compileMatch(mm, m.path("match"), normalizing: normalizing, reader: &reader) {
                    match = compiled
                } else {
                    ok = false
                }
            }
            let rulesBefore = rules.count
            switch (m["cohort"], m["respond"]) {
            case (nil, nil):
                reader.report(item, rpath, "a rule needs `cohort` or `respond`",
                              hint: "e.g. `cohort: canary`, or `respond: { status: 200, body: \"ok\" }`")
                ok = false
            case (.some, .some):
                reader.report(m.keyNode("respond"), m.path("respond"), "a rule has either `cohort` or `respond`, not both")
                ok = false
            case (.some(let c), nil):
                guard let cname = reader.string(c, m.path("cohort")) else { ok = false; continue }
                if let index = cohorts.firstIndex(where: { $0.name == cname }) {
                    rules.append(RuleSpec(match: match, action: .cohort(index)))
                } else if let upstream = resolveCohort(cname, declared: declared) {
                    guard upstream >= 0 else { ok = false; continue }
                    cohorts.append(CohortSpec(name: cname, upstream: upstream, weight: 0, inSplit: false))
                    rules.append(RuleSpec(match: match, action: .cohort(cohorts.count - 1)))
                } else {
                    let candidates = cohorts.map(\.name) + declared.map(\.name) + upstreams.map(\.name)
                    var unique: [String] = []
                    for c in candidates where !unique.contains(c) { unique.append(c) }
                    reader.report(c, m.path("cohort"), "cohort `\(cname)` does not exist",
                                  hint: ConfigReader.suggestion(for: cname, among: unique)
                                      ?? "a rule's cohort names a cohort of the route's split or an upstream")
                    ok = false
                }
            case (nil, .some(let r)):
                if let response = compileRespond(r, m.path("respond"), reader: &reader) {
                    rules.append(RuleSpec(match: match, action: .respond(response)))
                } else {
                    ok = false
                }
            }
            // A rule's fault drill covers the requests it forwards.
            if let f = m["fault"], rules.count > rulesBefore {
                if case .cohort = rules[rules.count - 1].action {
                    if let spec = compileFault(f, m.path("fault"), cohorts: cohorts, allowCohort: false, reader: &reader) {
                        rules[rules.count - 1].fault = spec
                    } else {
                        ok = false
                    }
                } else {
                    reader.report(m.keyNode("fault"), m.path("fault"), "a rule that answers directly forwards nothing to inject faults into")
                    ok = false
                }
            }
            if let node = m["mirror"], rules.count > rulesBefore {
                if case .cohort = rules[rules.count - 1].action {
                    if let spec = compileMirror(node, m.path("mirror"), cohorts: cohorts, reader: &reader) {
                        rules[rules.count - 1].mirror = spec
                    } else {
                        ok = false
                    }
                } else {
                    reader.report(m.keyNode("mirror"), m.path("mirror"), "a rule that answers directly forwards nothing to mirror")
                    ok = false
                }
            }
        }
        return ok ? rules : nil
    }

    private func compileRespond(_ node: Node, _ path: String, reader: inout ConfigReader) -> DirectResponse? {
        guard let m = reader.map(node, path, known: Self.respondKeys, example: "{ status: 200, body: \"ok\" }") else { return nil }
        var status = 200
        if let s = m["status"] {
            guard let n = reader.int(s, m.path("status"), in: 100...599) else { return nil }
            // An interim response (100 Continue, 101 Switching Protocols, 103 Early Hints) is not an
            // answer: the client (or a proxy in front) waits for a final one after it and pairs
            // the next response with the wrong request.
            guard n >= 200 else {
                reader.report(s, m.path("status"), "status \(n) is an interim (1xx) response; `respond` sends the final response",
                              hint: "use a final status from 200 to 599, e.g. `status: 200`")
                return nil
            }
            status = n
        }
        var body = ""
        if let b = m["body"] {
            guard let s = reader.string(b, m.path("body"), allowEmpty: true) else { return nil }
            body = ConfigReader.isNull(b) ? "" : s
            // 204 and 304 end at the head (RFC 9112 6.3): body bytes would be read as the next response.
            if (status == 204 || status == 304) && !body.isEmpty {
                reader.report(b, m.path("body"), "a \(status) response has no body",
                              hint: "remove `body`, or use another status, e.g. `status: 200`")
                return nil
            }
        }
        var contentType = "text/plain"
        if let c = m["content_type"] {
            guard let s = reader.string(c, m.path("content_type")) else { return nil }
            guard !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) else {
                reader.report(c, m.path("content_type"), "content_type must not contain control characters")
                return nil
            }
            contentType = s
        }
        return DirectResponse(status: status, contentType: contentType, body: Array(body.utf8))
    }

    // MARK: Matches

}
