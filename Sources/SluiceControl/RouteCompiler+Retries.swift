import SluiceCore
import Yams

/// `retries:` and `fallback_to_baseline:` of a route (`RetrySpec`).
extension RouteCompiler {
    /// Keys of `retries:`.
    static let retryKeys = ["attempts", "retry_on", "per_try_timeout", "budget_percent"]

    /// Compiles the route's `retries:` mapping and `fallback_to_baseline:` flag into one spec;
    /// nil (reported) when either is invalid.
    func compileRetries(_ route: YAMLMap, hasCohorts: Bool, reader: inout ConfigReader) -> RetrySpec? {
        var ok = true
        var fallback = false
        if let f = route["fallback_to_baseline"] {
            if let b = reader.bool(f, route.path("fallback_to_baseline")) { fallback = b } else { ok = false }
            if fallback && !hasCohorts {
                reader.report(route.keyNode("fallback_to_baseline"), route.path("fallback_to_baseline"),
                              "a route that answers directly has no baseline cohort to fall back to")
                ok = false
            }
        }
        // Without `retries:`, only the fallback (and the connect-failure rule every route has).
        var spec = route["retries"] == nil ? RetrySpec.fallbackOnly() : RetrySpec()
        spec.fallbackToBaseline = fallback
        if let node = route["retries"] {
            let path = route.path("retries")
            guard let m = reader.map(node, path, known: Self.retryKeys,
                                     example: "{ attempts: 2, retry_on: [connect_failure, reset, 502, 503, 504], per_try_timeout: 2s, budget_percent: 20 }")
            else { return nil }
            if let v = m["attempts"] {
                if let n = reader.int(v, m.path("attempts"), in: 1...10) { spec.attempts = n } else { ok = false }
            }
            if let v = m["budget_percent"] {
                if let n = reader.int(v, m.path("budget_percent"), in: 0...100) { spec.budgetPercent = n } else { ok = false }
            }
            if let v = m["per_try_timeout"] {
                if let ns = reader.duration(v, m.path("per_try_timeout"), max: 3_600_000_000_000) {
                    if ns == 0 {
                        reader.report(v, m.path("per_try_timeout"), "per_try_timeout must be longer than 0",
                                      hint: "leave it out to wait `timeouts.upstream_response_header` for each attempt")
                        ok = false
                    }
                    spec.perTryTimeoutNanos = ns
                } else {
                    ok = false
                }
            }
            if let v = m["retry_on"] {
                if let bits = compileRetryOn(v, m.path("retry_on"), reader: &reader) { spec.retryOn = bits } else { ok = false }
            }
        }
        return ok ? spec : nil
    }

    private func compileRetryOn(_ node: Node, _ path: String, reader: inout ConfigReader) -> UInt8? {
        guard let items = reader.list(node, path, allowSingle: true, example: "retry_on: [connect_failure, reset, 502, 503, 504]")
        else { return nil }
        var bits: UInt8 = 0
        var ok = true
        let names = RetrySpec.retryOnNames.map(\.0)
        for (i, item) in items.enumerated() {
            let itemPath = ConfigReader.join(path, i)
            guard let s = reader.string(item, itemPath) else { ok = false; continue }
            if let bit = RetrySpec.retryOnNames.first(where: { $0.0 == s })?.1 {
                bits |= bit
            } else {
                let hint = ConfigReader.suggestion(for: s, among: names)
                    ?? "known: " + names.map { "`\($0)`" }.joined(separator: ", ")
                reader.report(item, itemPath, "`\(ConfigReader.abbreviated(s))` is not a retry condition", hint: hint)
                ok = false
            }
        }
        return ok ? bits : nil
    }
}
