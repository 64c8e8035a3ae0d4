extension PrometheusExposition {
    /// `sluice_faults_injected_total{route,cohort,kind}`: requests answered (`abort`) or delayed
    /// (`delay`) by fault drills; a series appears once it has injected one.
    static func renderFaults(_ out: inout String, totals: MetricsTotals, names: MetricsNames, shown: [Int]) {
        family(&out, "sluice_faults_injected_total", "counter",
               "Requests answered with an injected error (kind abort) or delayed (kind delay) by fault drills, by route and cohort.")
        for s in shown {
            for kind in [FaultKind.abort, .delay] {
                let count = totals.faultsInjected(series: s, kind: kind)
                guard count > 0 else { continue }
                sample(&out, "sluice_faults_injected_total",
                       "route=\"\(escapeLabel(names.series[s].route))\",cohort=\"\(escapeLabel(names.series[s].cohort))\",kind=\"\(kind.label)\"",
                       count)
            }
        }
    }
}
