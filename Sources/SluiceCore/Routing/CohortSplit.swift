/// One contiguous run of buckets owned by a cohort: buckets `[previous range's end, end)`.
struct SplitRange: Sendable, Equatable {
    /// Exclusive upper bucket.
    var end: Int32
    /// Index into the route's cohorts.
    var cohort: Int32
}

/// Lays a route's cohort weights over the 10,000 sticky buckets.
///
/// Layout ("lanes"): the m non-baseline cohorts of the split are given, in config order, m
/// equal lanes of the bucket space from the top down (lane k = the k-th 1/m slice counted from
/// bucket 9999 downwards; the lowest lane takes the rounding remainder). Each such cohort owns the
/// TOP `weight` buckets of its lane, `[laneTop - weight, laneTop)`; the baseline owns every other
/// bucket. Consequences:
/// - two cohorts (baseline + canary): the canary owns `[10000 - w, 10000)`; when its weight grows
///   it only gains buckets, so no key ever moves from canary back to baseline during a ramp;
/// - N cohorts: changing one non-baseline cohort's weight against the baseline moves keys only
///   between that cohort and the baseline (in the growth direction); other cohorts keep theirs.
/// When some non-baseline cohort is heavier than its lane (e.g. 60% with three non-baseline
/// cohorts), lanes cannot hold the split and the layout falls back to stacking: the first
/// non-baseline cohort at the top, the next one below it, and so on, the baseline at the bottom.
/// Crossing between the two layouts moves keys; so does adding or removing a split cohort.
enum CohortSplit {
    /// Bucket ranges for `weights` (0.01% units, summing to 10000 over split cohorts), in
    /// ascending bucket order, zero-width ranges omitted.
    static func layout(weights: [Int], inSplit: [Bool], baseline: Int) -> [SplitRange] {
        let total = Int(StickyHash.buckets)
        var owner = [Int32](repeating: Int32(baseline), count: total)
        let others = weights.indices.filter { $0 != baseline && inSplit[$0] }
        let m = others.count
        if m > 0 {
            let lane = total / m
            // Lane k spans [laneBottom(k), laneTop(k)); lane 0 is at the top.
            func laneTop(_ k: Int) -> Int { total - k * lane }
            func laneBottom(_ k: Int) -> Int { k == m - 1 ? 0 : total - (k + 1) * lane }
            let fits = others.enumerated().allSatisfy { k, c in weights[c] <= laneTop(k) - laneBottom(k) }
            if fits {
                for (k, c) in others.enumerated() {
                    for b in (laneTop(k) - weights[c])..<laneTop(k) { owner[b] = Int32(c) }
                }
            } else {
                var top = total
                for c in others {
                    for b in (top - weights[c])..<top { owner[b] = Int32(c) }
                    top -= weights[c]
                }
            }
        }
        var ranges: [SplitRange] = []
        for b in 0..<total {
            if let last = ranges.last, last.cohort == owner[b] {
                ranges[ranges.count - 1].end = Int32(b + 1)
            } else {
                ranges.append(SplitRange(end: Int32(b + 1), cohort: owner[b]))
            }
        }
        return ranges
    }
}
