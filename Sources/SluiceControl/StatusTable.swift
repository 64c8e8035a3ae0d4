/// Renders a `StatsReport` as terminal tables for `sluice status`: one table per route, one
/// row per cohort with its weight, rate, error rate and p50/p95/p99 over one window.
public enum StatusTable {
    /// The text for `report` over window `window` (`1m` or `5m`).
    public static func render(_ report: StatsReport, window: String) -> String {
        var out = "config version \(report.configVersion), window \(window) (sampled every \(number(report.sampleIntervalSeconds))s), at \(report.time)\n"
        let header = ["COHORT", "WEIGHT", "RATE", "ERRORS", "P50", "P95", "P99", "IN-FLIGHT", "REQUESTS"]
        for route in report.routes {
            out += "\nroute \(route.name)\n"
            if let o = route.override {
                out += "  runtime override: \(o.summary), since \(o.since) (version \(o.version), \(o.cause))\n"
            }
            var rows: [[String]] = [header]
            for cohort in route.cohorts {
                let w = cohort.windows[window] ?? .empty
                rows.append([cohort.name + (cohort.baseline ? " (baseline)" : ""), weight(cohort.weight),
                             rate(w), errorRate(w), latency(w.p50), latency(w.p95), latency(w.p99),
                             String(cohort.inFlight), String(w.requests)])
            }
            if let d = route.direct[window], d.requests > 0 {
                rows.append(["(direct)", "-", rate(d), errorRate(d), latency(d.p50), latency(d.p95), latency(d.p99), "-",
                             String(d.requests)])
            }
            out += table(rows)
        }
        if let u = report.unrouted[window], u.requests > 0 {
            out += "\nunrouted: \(rate(u)), \(u.requests) request(s), errors \(errorRate(u))\n"
        }
        return out
    }

    /// Left-aligns the first column and right-aligns the others, two spaces apart.
    static func table(_ rows: [[String]]) -> String {
        guard let columns = rows.first?.count else { return "" }
        var widths = Array(repeating: 0, count: columns)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var out = ""
        for row in rows {
            var line = "  "
            for (i, cell) in row.enumerated() {
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                line += i == 0 ? cell + pad : "  " + pad + cell
            }
            out += line + "\n"
        }
        return out
    }

    /// Requests per second, e.g. `12.3/s`; `-` when the window has no samples yet.
    static func rate(_ w: WindowReport) -> String {
        w.seconds == 0 ? "-" : fixed(w.rate, digits: w.rate < 10 ? 2 : 1) + "/s"
    }

    /// Error rate in percent, e.g. `1.20%`; `-` without requests.
    static func errorRate(_ w: WindowReport) -> String {
        w.requests == 0 ? "-" : percent(w.errorRate, digits: 2)
    }

    /// A weight in percent, e.g. `90%`, `12.5%`, `0.01%`.
    static func weight(_ percent: Double) -> String {
        var text = fixed(percent, digits: 2)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text + "%"
    }

    /// A fraction as a percentage.
    static func percent(_ fraction: Double, digits: Int) -> String {
        fixed(fraction * 100, digits: digits) + "%"
    }

    /// A latency in seconds, in µs, ms or s with three significant digits; `-` when nil.
    static func latency(_ seconds: Double?) -> String {
        guard let s = seconds else { return "-" }
        if s < 0.001 { return significant(s * 1e6) + "µs" }
        if s < 1 { return significant(s * 1e3) + "ms" }
        return significant(s) + "s"
    }

    /// Three significant digits for values from 1 to 999.
    static func significant(_ v: Double) -> String {
        fixed(v, digits: v < 10 ? 2 : v < 100 ? 1 : 0)
    }

    /// A number without a fraction when it is whole.
    static func number(_ v: Double) -> String {
        v == v.rounded() ? String(Int(v)) : fixed(v, digits: 2)
    }

    /// `v` rounded to `digits` decimals (no Foundation formatting).
    static func fixed(_ v: Double, digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(v) * scale).rounded()
        guard scaled < 9e15 else { return "\(v)" }
        let whole = Int(scaled) / Int(scale)
        let frac = Int(scaled) % Int(scale)
        var text = (v < 0 && scaled > 0 ? "-" : "") + String(whole)
        if digits > 0 {
            let f = String(frac)
            text += "." + String(repeating: "0", count: digits - f.count) + f
        }
        return text
    }
}
