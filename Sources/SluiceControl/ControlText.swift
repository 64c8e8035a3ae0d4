extension ChangeResult {
    /// The one line the CLI prints, e.g. `web: split stable=90% canary=10% (version 7)`.
    public var line: String {
        let version = "(version \(self.version))"
        switch kind {
        case .reload:
            return "reloaded the config as version \(self.version) (was \(oldVersion)): \(changed)"
        case .rollback:
            let to = rolledBackTo.map { "version \($0)" } ?? "an earlier version"
            return "rolled back to \(to), serving it as version \(self.version) (was \(oldVersion)): \(changed)"
        case .split:
            return "\(route ?? "?"): split \(split ?? "?") \(version)"
        case .switch:
            return "\(route ?? "?"): switched to \(override?.cohort ?? "?") (\(split ?? "?")) \(version)"
        case .abort:
            return "\(route ?? "?"): aborted, all traffic to \(override?.cohort ?? "the baseline") \(version)"
        case .clear:
            return "\(route ?? "?"): runtime override cleared, split from the config file: \(split ?? "?") \(version)"
        default:
            return "\(kind.rawValue): version \(self.version) (was \(oldVersion)): \(changed)"
        }
    }
}

/// Renders `GET /admin/history` for `sluice history`.
public enum HistoryTable {
    /// One row per version (newest last, the serving one marked `*`), then the overrides in force.
    public static func render(_ report: HistoryReport) -> String {
        // With `cluster:` each version names the replica that made it (a NODE column).
        let fleet = report.versions.contains { $0.node != nil }
        var rows: [[String]] = [["", "VERSION", "TIME", "KIND"] + (fleet ? ["NODE"] : []) + ["CAUSE", "CHANGED"]]
        for v in report.versions {
            rows.append([v.version == report.currentVersion ? "*" : "", String(v.version), v.time, v.kind.rawValue]
                        + (fleet ? [v.node ?? "-"] : []) + [v.cause, v.changed])
        }
        var out = leftAligned(rows)
        if report.overrides.isEmpty {
            out += "\nno runtime overrides: every route follows the config file\n"
        } else {
            out += "\nruntime overrides in force:\n"
            for (route, o) in report.overrides.sorted(by: { $0.key < $1.key }) {
                out += "  \(route): \(o.summary), since \(o.since) (version \(o.version), \(o.cause))\n"
            }
        }
        return out
    }

    /// Columns left-aligned, two spaces apart; the last column is not padded.
    static func leftAligned(_ rows: [[String]]) -> String {
        guard let columns = rows.first?.count else { return "" }
        var widths = Array(repeating: 0, count: columns)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var out = ""
        for row in rows {
            var line = ""
            for (i, cell) in row.enumerated() {
                line += i == columns - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count) + "  "
            }
            while line.hasSuffix(" ") { line.removeLast() }
            out += line + "\n"
        }
        return out
    }
}
