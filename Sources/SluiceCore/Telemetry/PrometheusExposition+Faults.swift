extension PrometheusExposition {
    /// `sluice_faults_injected_total{route,cohort,kind}`: requests answered (`abort`) or delayed
    /// (`delay`) by fault drills. The family and each series appear with their first injection,
    /// so an exposition without drills is unchanged.
    static func renderFaults(_ out: inout String, totals: MetricsTotals, names: MetricsNames, shown: [Int]) {
        var samples: [(labels: String, count: UInt64)] = []
        for s in shown {
            for kind in [FaultKind.abort, .delay] {
                let count = totals.faultsInjected(series: s, kind: kind)
                guard count > 0 else { continue }
                samples.append(("route=\"\(escapeLabel(names.series[s].route))\",cohort=\"\(escapeLabel(names.series[s].cohort))\",kind=\"\(kind.label)\"",
                                count))
            }
        }
        guard !samples.isEmpty else { return }
        family(&out, "sluice_faults_injected_total", "counter",
               "Requests answered with an injected error (kind abort) or delayed (kind delay) by fault drills, by route and cohort.")
        for s in samples { sample(&out, "sluice_faults_injected_total", s.labels, s.count) }
    }
}

extension PrometheusExposition {
    /// `sluice_upstream_retries_total{route,cohort,reason}` (attempts tried again, by the cause of
    /// the failed one) and `sluice_fallbacks_total{route,from,to}` (requests a failed cohort
    /// handed to its route's baseline). A series appears with its first retry or fallback; both
    /// families are always declared, so dashboards and alerts find them before the first one.
    static func renderRetries(_ out: inout String, totals: MetricsTotals, names: MetricsNames, shown: [Int]) {
        family(&out, "sluice_upstream_retries_total", "counter",
               "Upstream attempts tried again after a failure, by route, cohort and the failure's reason.")
        for s in shown where !names.series[s].cohort.isEmpty {
            for (i, label) in RetryCause.labels.enumerated() {
                let count = totals.retries(series: s, labelIndex: i)
                guard count > 0 else { continue }
                sample(&out, "sluice_upstream_retries_total",
                       "route=\"\(escapeLabel(names.series[s].route))\",cohort=\"\(escapeLabel(names.series[s].cohort))\",reason=\"\(label)\"",
                       count)
            }
        }
        family(&out, "sluice_fallbacks_total", "counter",
               "Requests a cohort failed (retryably) and its route's baseline cohort answered (fallback_to_baseline), by route, failed cohort and baseline.")
        for s in shown where !names.series[s].cohort.isEmpty {
            let count = totals.fallbacks(series: s)
            guard count > 0 else { continue }
            let route = names.series[s].route
            let to = names.baselines[route] ?? ""
            sample(&out, "sluice_fallbacks_total",
                   "route=\"\(escapeLabel(route))\",from=\"\(escapeLabel(names.series[s].cohort))\",to=\"\(escapeLabel(to))\"", count)
        }
    }
}
