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
