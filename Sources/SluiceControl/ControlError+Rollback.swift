import SluiceCore

extension ControlError {
    /// The refusal of an unsafe rollback, saying what it would do and the two ways forward, e.g.
    /// `refused: going back to version 3 would send more traffic to a cohort that is not the
    /// baseline (web: canary 0%→5%, rules[0] to canary again); the change would be: web: stable
    /// 100→95, canary 0→5, rules → canary. Nothing changed. ...`.
    static func unsafeRollbackText(target: UInt64, increases: [ExposureIncrease], changed: String) -> String {
        let raised = increases.map(Self.describe).joined(separator: "; ")
        return "refused: going back to version \(target) would send more traffic to a cohort that is not the baseline ("
            + raised + "); the change would be: \(changed). Nothing changed. To publish it anyway, repeat with --force "
            + "(admin API: \"force\": true); to send everyone to the baseline, use `sluice abort ROUTE`."
    }

    /// `web: canary 0%→5%, rules[0], rules[1] to canary again`.
    static func describe(_ e: ExposureIncrease) -> String {
        var parts: [String] = []
        if e.toWeight > e.fromWeight {
            parts.append("\(e.cohort) \(CohortWeight.percentText(e.fromWeight))%→\(CohortWeight.percentText(e.toWeight))%")
        }
        if !e.rules.isEmpty {
            parts.append(e.rules.map { "rules[\($0)]" }.joined(separator: ", ") + " to \(e.cohort) again")
        }
        return "\(e.route): " + parts.joined(separator: ", ")
    }
}
