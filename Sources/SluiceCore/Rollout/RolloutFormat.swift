/// Numbers as the rollout's decisions print them, without Foundation: percentages, durations,
/// fixed decimals. Deterministic (no locale), so decision texts can be asserted exactly.
public enum RolloutFormat {
    /// `value` rounded to `decimals` places, trailing zeros dropped: `1.25`, `1.3`, `2`.
    public static func fixed(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return value.isNaN ? "nan" : value > 0 ? "inf" : "-inf" }
        var scale: Double = 1
        for _ in 0..<max(0, decimals) { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 9e18 else { return value < 0 ? "-\(abs(value))" : "\(value)" }
        let n = UInt64(scaled)
        let unit = UInt64(scale)
        let whole = n / unit
        var frac = n % unit
        var digits = max(0, decimals)
        while digits > 0 && frac % 10 == 0 {
            frac /= 10
            digits -= 1
        }
        let sign = value < 0 && n > 0 ? "-" : ""
        guard digits > 0 else { return "\(sign)\(whole)" }
        var fracText = String(frac)
        while fracText.count < digits { fracText = "0" + fracText }
        return "\(sign)\(whole).\(fracText)"
    }

    /// A fraction as a percentage: two decimals (`1.9%`, `33.33%`), four when smaller than
    /// 0.01% (`0.0042%`).
    public static func percent(_ fraction: Double) -> String {
        let p = fraction * 100
        if p != 0 && abs(p) < 0.005 { return fixed(p, decimals: 4) + "%" }
        return fixed(p, decimals: 2) + "%"
    }

    /// Millionths as an exact percentage: 5000 → `0.5%`.
    public static func millionthsPercent(_ millionths: UInt64) -> String {
        let whole = millionths / 10_000
        var frac = millionths % 10_000
        guard frac > 0 else { return "\(whole)%" }
        var digits = 4
        while frac % 10 == 0 {
            frac /= 10
            digits -= 1
        }
        var fracText = String(frac)
        while fracText.count < digits { fracText = "0" + fracText }
        return "\(whole).\(fracText)%"
    }

    /// A duration given in seconds (from figures or JSON), as `duration(nanos:)` writes it; NaN,
    /// infinities and negative values never trap (`nan`, `inf`, `0s`).
    public static func duration(seconds: Double) -> String {
        if seconds.isNaN { return "nan" }
        guard seconds > 0 else { return "0s" }
        guard seconds < 1.8e10 else { return seconds.isInfinite ? "inf" : fixed(seconds / 3600, decimals: 0) + "h" }
        return duration(nanos: UInt64(seconds * 1e9))
    }

    /// A duration: `0s`, `250us`, `412.5ms`, `1.25s`, `45s`, `3m20s`, `10m`, `1h5m`.
    public static func duration(nanos: UInt64) -> String {
        if nanos == 0 { return "0s" }
        if nanos < 1_000_000 { return fixed(Double(nanos) / 1e3, decimals: 1) + "us" }
        if nanos < 1_000_000_000 { return fixed(Double(nanos) / 1e6, decimals: 1) + "ms" }
        if nanos < 60_000_000_000 { return fixed(Double(nanos) / 1e9, decimals: 2) + "s" }
        // Rounded to whole seconds without `nanos + 500_000_000`, which overflows near UInt64.max.
        let total = nanos / 1_000_000_000 + (nanos % 1_000_000_000 >= 500_000_000 ? 1 : 0)
        let h = total / 3600, m = total % 3600 / 60, s = total % 60
        var out = ""
        if h > 0 { out += "\(h)h" }
        if m > 0 { out += "\(m)m" }
        if s > 0 { out += "\(s)s" }
        return out
    }
}
