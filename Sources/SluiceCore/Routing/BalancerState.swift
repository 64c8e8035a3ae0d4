import CSluiceAtomics

/// Per-worker smooth weighted round-robin positions, one counter per endpoint of every
/// upstream group of one routing table. Mutated in place by `RoutingTable.decide`; owned by one
/// worker thread (it is a value: each worker keeps its own).
///
/// With endpoint health attached (`init(table:health:slots:worker:)`), endpoints that fail their
/// active check or are ejected are skipped; when fewer than half of a group's endpoints are
/// available the group is in panic mode and balanced over all of them (`OutlierPolicy.panics`).
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
    /// The process's endpoint availability (nil: every endpoint is available).
    public private(set) var health: EndpointHealth?
    /// Health slot of every flat endpoint index of the table (empty without `health`).
    public private(set) var slots: [Int32] = []
    /// The worker this state belongs to (its row of per-worker health counters).
    public private(set) var worker: Int = 0
    /// `health`'s unavailable-endpoint count word (kept alive by `health`): the pick's fast path
    /// reads it without touching the object (no reference counting per pick).
    var unavailableCountWord: CountWord? = nil

    /// A pointer to a shared atomic word. `@unchecked Sendable`: only read with relaxed atomic
    /// loads, and it points into an `EndpointHealth` the same state keeps alive.
    struct CountWord: @unchecked Sendable {
        let pointer: UnsafeMutablePointer<UInt64>
    }

    /// Zeroed positions for every endpoint of `table`. Allocates; build one per worker per table.
    public init(table: RoutingTable) {
        current = [Int](repeating: 0, count: table.endpointWeights.count)
        tableVersion = table.version
        tableID = ObjectIdentifier(table)
    }

    /// Positions for `table` that skip unavailable endpoints: `slots` are the table's health
    /// slots (`EndpointHealth.assign`), `worker` the owning worker's index.
    public init(table: RoutingTable, health: EndpointHealth?, slots: [Int32], worker: Int) {
        self.init(table: table)
        if let health, slots.count == table.endpointWeights.count {
            self.health = health
            self.slots = slots
            self.worker = worker
            self.unavailableCountWord = CountWord(pointer: health.unavailableCountPointer)
        }
    }

    /// True when flat endpoint `flat` of the table may be picked (not failing its check, not
    /// ejected): a relaxed load. Any balancing mode filters with this.
    @inline(__always)
    public func isAvailable(flat: Int) -> Bool {
        guard let health else { return true }
        return health.isAvailable(slots[flat])
    }

    /// Health slot of flat endpoint `flat` (-1 when untracked).
    @inline(__always)
    public func slot(flat: Int) -> Int32 {
        flat < slots.count ? slots[flat] : -1
    }

    /// How group `group`'s picks filter endpoints right now: `.all` when every endpoint is
    /// available (or nothing is tracked), `.panic` when fewer than half are (balance over all,
    /// counted), `.availableOnly` otherwise. A relaxed load per endpoint.
    public func filter(group: Int, in table: RoutingTable) -> EndpointFilter {
        guard let word = unavailableCountWord, csluice_load_relaxed(word.pointer) != 0, let health else { return .all }
        let start = Int(table.groupEndpointStart[group])
        let end = Int(table.groupEndpointStart[group + 1])
        var available = 0
        var i = start
        while i < end {
            if health.isAvailable(slots[i]) { available += 1 }
            i += 1
        }
        if available == end - start { return .all }
        return OutlierPolicy.panics(available: available, total: end - start) ? .panic : .availableOnly
    }

    /// Counts a panic-mode pick of flat endpoint `flat` (`sluice_upstream_panic_total`).
    public func notePanicPick(flat: Int) {
        health?.recordPanicPick(slot: slots[flat], worker: worker)
    }

    /// True when this state was built for `table`.
    /// The available endpoint of `group` not in `tried` (bit i: endpoint i; endpoints past 63
    /// count as untried) that the next smooth weighted round-robin pick would favour, without
    /// moving the positions; nil when there is none.
    func peekAlternate(group: Int, in table: RoutingTable, tried: UInt64) -> Int32? {
        let start = Int(table.groupEndpointStart[group])
        let end = Int(table.groupEndpointStart[group + 1])
        var best = -1
        var bestValue = Int.min
        var i = start
        while i < end {
            let e = i - start
            if (e >= 64 || tried & (1 << UInt64(e)) == 0) && isAvailable(flat: i) {
                let v = current[i] &+ table.endpointWeights[i]
                if v > bestValue {
                    bestValue = v
                    best = i
                }
            }
            i += 1
        }
        return best < 0 ? nil : Int32(best - start)
    }

    @inline(__always)
    func isBuilt(for table: RoutingTable) -> Bool {
        tableID == ObjectIdentifier(table) && tableVersion == table.version && current.count == table.endpointWeights.count
    }

    /// Picks an endpoint of `group` (index within the group) and advances the positions.
    /// Unavailable endpoints are skipped unless the group is in panic mode.
    /// `countingPanic: false` leaves a panic-mode pick uncounted (a caller that picks several
    /// candidates counts the one it keeps: `RoutingTable.pickLeastRequest`).
    public mutating func pick(group: Int, in table: RoutingTable, countingPanic: Bool = true) -> Int32 {
        let start = Int(table.groupEndpointStart[group])
        let end = Int(table.groupEndpointStart[group + 1])
        if end - start == 1 {
            if countingPanic, health != nil, !isAvailable(flat: start) { notePanicPick(flat: start) }
            return 0
        }
        let filter = self.filter(group: group, in: table)
        var total = 0
        var best = start
        var bestValue = Int.min
        var i = start
        while i < end {
            if filter == .availableOnly && !isAvailable(flat: i) {
                i += 1
                continue
            }
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
        if countingPanic && filter == .panic { notePanicPick(flat: best) }
        return Int32(best - start)
    }
}

/// Which endpoints of a group a pick considers (`BalancerState.filter`).
public enum EndpointFilter: Sendable, Equatable {
    /// All are available.
    case all
    /// Some are not: only the available ones.
    case availableOnly
    /// Fewer than half are available: all of them (panic mode).
    case panic
}
