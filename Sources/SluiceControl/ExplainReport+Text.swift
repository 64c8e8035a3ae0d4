extension ExplainReport {
    /// The report for people (`sluice explain` without `--json`), e.g.
    ///
    /// ```
    /// request (table version 7, from 10.1.2.3, entropy 00000000000004d2)
    ///   GET /cart HTTP/1.1
    ///   Host: shop.example
    /// routes
    ///   api   no match: path_prefix /api (the request has path /cart)
    ///   web   matched
    ///   rest  not tried (an earlier route matched)
    /// rules of web
    ///   rules[0]  no match: header x-canary = "always" (the request has header x-canary absent)  -> cohort canary
    /// decision: forward to web / stable, decided by the split
    ///   key: cookie session_id = "42", hash 2f4b..., bucket 1234 -> stable (buckets 0..<9500 of stable=95% canary=5%)
    /// upstream: stable, endpoint 127.0.0.1:9001 (of 127.0.0.1:9001 weight 1, 127.0.0.1:9002 weight 1)
    /// upstream request fields
    ///   Host: shop.example
    ///   ...
    /// ```
    public var text: String {
        var out = "request (table version \(version), from \(from), entropy \(entropy))\n"
        for line in request { out += "  \(line)\n" }
        out += "routes\n"
        let width = routes.map(\.name.count).max() ?? 0
        for r in routes {
            let pad = String(repeating: " ", count: width - r.name.count)
            switch r.result {
            case "matched": out += "  \(r.name)\(pad)  matched\n"
            case "not_tried": out += "  \(r.name)\(pad)  not tried (an earlier route matched)\n"
            default: out += "  \(r.name)\(pad)  no match: \(r.condition ?? "?") (the request has \(r.request ?? "?"))\n"
            }
        }
        if let route, !rules.isEmpty {
            out += "rules of \(route)\n"
            for r in rules {
                if r.result == "matched" {
                    out += "  \(r.rule)  matched  -> \(r.action)\n"
                } else {
                    out += "  \(r.rule)  no match: \(r.condition ?? "?") (the request has \(r.request ?? "?"))  -> \(r.action)\n"
                }
            }
        }
        switch action {
        case "forward":
            out += "decision: forward to \(route ?? "?") / \(cohort ?? "?"), decided by "
                + (decidedBy == "split" ? "the split" : decidedBy ?? "?") + "\n"
        case "respond" where fault != nil:
            out += "decision: \(route ?? "?") / \(cohort ?? "?") answered \(status.map(String.init) ?? "?") by a fault drill\n"
        case "respond":
            out += "decision: \(route ?? "?") answers \(status.map(String.init) ?? "?") directly (\(decidedBy ?? "?"))\n"
        default:
            out += "decision: 404 (\(route.map { "route \($0) matched, nothing applied" } ?? "no route matched"))\n"
        }
        if let override { out += "  runtime override in force: \(override)\n" }
        if let fault { out += "  fault: \(fault)\n" }
        if let s = split {
            let range = s.range.count == 2 ? "buckets \(s.range[0])..<\(s.range[1])" : "no split"
            if let key = s.key {
                let source = s.source == "assigned" ? "new key assigned by Sluice" : s.source
                out += "  key: \(source) = \"\(key)\", hash \(s.hash ?? "?"), bucket \(s.bucket) -> \(cohort ?? "?") (\(range) of \(s.weights))\n"
            } else {
                out += "  key: none (\(s.source)), bucket \(s.bucket) -> \(cohort ?? "?") (\(range) of \(s.weights))\n"
            }
            if let note = s.note { out += "  \(note)\n" }
        }
        if let upstream, let endpoint {
            out += "upstream: \(upstream), endpoint \(endpoint) (of \((endpoints ?? []).joined(separator: ", ")))\n"
        }
        if let fields = upstreamHeaders {
            out += "upstream request fields\n"
            for f in fields { out += "  \(f)\n" }
        }
        if let fields = responseHeaders, !fields.isEmpty {
            out += "added to the response\n"
            for f in fields { out += "  \(f)\n" }
        }
        for n in notes { out += "note: \(n)\n" }
        return out
    }
}
