/// How many times a rollout went from one state to another (a step promotion counts as
/// progressing → progressing): the `sluice_rollout_transitions_total` counter of one route.
/// Kept by the control plane next to the route's `RolloutMachine`; starts at 0 with the process.
public struct RolloutTransitionCounts: Sendable, Equatable {
    /// Counts by (from, to), in the order first seen.
    public private(set) var counts: [(from: RolloutPhase, to: RolloutPhase, count: UInt64)] = []

    /// No transitions yet.
    public init() {}

    /// Counts `output`'s transition when its state changed.
    public mutating func record(_ output: RolloutOutput) {
        guard output.from != output.to else { return }
        let from = output.from.phase, to = output.to.phase
        if let i = counts.firstIndex(where: { $0.from == from && $0.to == to }) {
            counts[i].count &+= 1
        } else {
            counts.append((from, to, 1))
        }
    }

    /// The count of one transition.
    public func count(from: RolloutPhase, to: RolloutPhase) -> UInt64 {
        counts.first { $0.from == from && $0.to == to }?.count ?? 0
    }

    /// Equal when every transition has the same count.
    public static func == (a: RolloutTransitionCounts, b: RolloutTransitionCounts) -> Bool {
        a.counts.count == b.counts.count && a.counts.allSatisfy { b.count(from: $0.from, to: $0.to) == $0.count }
    }
}
