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
    /// handed to its route's baseline). As with faults, a family and each series appear with the
    /// first retry or fallback, so an exposition without them is unchanged.
    static func renderRetries(_ out: inout String, totals: MetricsTotals, names: MetricsNames, shown: [Int]) {
        var retries: [(labels: String, count: UInt64)] = []
        var fallbacks: [(labels: String, count: UInt64)] = []
        for s in shown where !names.series[s].cohort.isEmpty {
            let route = escapeLabel(names.series[s].route), cohort = escapeLabel(names.series[s].cohort)
            for (i, label) in RetryCause.labels.enumerated() {
                let count = totals.retries(series: s, labelIndex: i)
                if count > 0 { retries.append(("route=\"\(route)\",cohort=\"\(cohort)\",reason=\"\(label)\"", count)) }
            }
            let count = totals.fallbacks(series: s)
            if count > 0 {
                let to = escapeLabel(names.baselines[names.series[s].route] ?? "")
                fallbacks.append(("route=\"\(route)\",from=\"\(cohort)\",to=\"\(to)\"", count))
            }
        }
        if !retries.isEmpty {
            family(&out, "sluice_upstream_retries_total", "counter",
                   "Upstream attempts tried again after a failure, by route, cohort and the failure's reason.")
            for r in retries { sample(&out, "sluice_upstream_retries_total", r.labels, r.count) }
        }
        if !fallbacks.isEmpty {
            family(&out, "sluice_fallbacks_total", "counter",
                   "Requests a cohort failed (retryably) that its route's baseline cohort answered (fallback_to_baseline), by route, failed cohort and baseline.")
            for f in fallbacks { sample(&out, "sluice_fallbacks_total", f.labels, f.count) }
        }
    }
}
