/// Per-worker smooth weighted round-robin positions, one counter per endpoint of every
/// upstream group of one routing table. Mutated in place by `RoutingTable.decide`; owned by one
/// worker thread (it is a value: each worker keeps its own).
///
/// The algorithm is nginx's smooth weighted round robin: on each pick every endpoint's current
/// value grows by its weight, the endpoint with the largest current value (the first on ties)
/// is chosen, and the total weight is subtracted from it. Weights 5, 1, 1 give a a b a c a a.
public struct BalancerState: Sendable {
    /// Current values, indexed like `RoutingTable.endpointWeights`.
    var current: [Int]
    /// The version of the table this state was built for.
    var tableVersion: UInt64
    /// Identity of that table (a reload may reuse a version number).
    var tableID: ObjectIdentifier

    /// Zeroed positions for every endpoint of `table`. Allocates; build one per worker per table.
    public init(table: RoutingTable) {
        current = [Int](repeating: 0, count: table.endpointWeights.count)
        tableVersion = table.version
        tableID = ObjectIdentifier(table)
    }

    /// True when this state was built for `table`.
    @inline(__always)
    func isBuilt(for table: RoutingTable) -> Bool {
        tableID == ObjectIdentifier(table) && tableVersion == table.version && current.count == table.endpointWeights.count
    }

    /// Picks an endpoint of `group` (index within the group) and advances the positions.
    mutating func pick(group: Int, in table: RoutingTable) -> Int32 {
        let start = Int(table.groupEndpointStart[group])
        let end = Int(table.groupEndpointStart[group + 1])
        if end - start == 1 { return 0 }
        var total = 0
        var best = start
        var bestValue = Int.min
        var i = start
        while i < end {
            let w = table.endpointWeights[i]
            current[i] &+= w
            total &+= w
            if current[i] > bestValue {
                bestValue = current[i]
                best = i
            }
            i += 1
        }
        current[best] &-= total
        return Int32(best - start)
    }
}
