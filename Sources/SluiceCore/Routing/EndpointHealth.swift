#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif
import CSluiceAtomics
import Synchronization

/// The process's shared endpoint availability state: one slot of 64-bit words per endpoint,
/// read by every worker's balancer on each pick and written by the control plane's health
/// monitor (checks, ejections) and, on failures, by workers.
///
/// Slots outlive tables: an endpoint is identified by (upstream name, address), and `assign`
/// maps every endpoint of a new table to the slot that key already had, so a reload, a runtime
/// change or a DNS refresh never re-admits an endpoint that is ejected or failing its checks,
/// and counters never go back. A table's slots travel to the workers with it (`SeriesMap.endpointSlots`).
///
/// Data path: `isAvailable` is one relaxed load; `recordSuccess` a relaxed load (and a store
/// only after a failure) plus the worker's own counter; `recordFailure` one atomic add. No lock.
/// `assign` and the monitor's calls take the registry mutex (control plane only).
public final class EndpointHealth: @unchecked Sendable {
    // @unchecked Sendable: the word blocks are only touched with atomics (CSluiceAtomics); the
    // per-worker counter rows have one writer each (the worker); the registry is behind `registry`.

    /// Slots available (endpoints beyond this many are never tracked: always available).
    public let capacity: Int
    /// Worker count (rows of per-worker counters).
    public let workers: Int
    /// `capacity × Slot.stride` words of shared state.
    @usableFromInline let words: UnsafeMutablePointer<UInt64>
    /// `workers × capacity × Counter.stride` words: per-worker single-writer counters.
    @usableFromInline let counters: UnsafeMutablePointer<UInt64>
    private let registry = Mutex(Registry())

    /// Word offsets inside one slot (one 64-byte line).
    @usableFromInline enum Slot {
        /// `downByCheck | ejected` bits; 0 means available.
        @usableFromInline static let flags = 0
        /// Consecutive gateway/connect failures (reset by a success).
        @usableFromInline static let failures = 1
        /// The group's `consecutive_failures` (0: outlier detection off).
        @usableFromInline static let threshold = 2
        /// Ejections so far (the metric).
        @usableFromInline static let ejections = 3
        /// Monotonic nanos the current ejection ends.
        @usableFromInline static let ejectedUntil = 4
        /// Ejection count the next ejection time grows from (decays while the endpoint behaves).
        @usableFromInline static let timesEjected = 5
        /// Monotonic nanos the last ejection ended (for the decay).
        @usableFromInline static let returnedAt = 6
        /// Words per slot (one cache line).
        @usableFromInline static let stride = 8
    }

    /// Word offsets of one worker's counters for one slot.
    @usableFromInline enum Counter {
        /// Attempts with an outcome.
        @usableFromInline static let requests = 0
        /// Attempts that failed.
        @usableFromInline static let errors = 1
        /// Picks made in panic mode with this endpoint chosen.
        @usableFromInline static let panicPicks = 2
        /// Words per (worker, slot).
        @usableFromInline static let stride = 4
    }

    /// Flag: the active health check says down.
    public static let downByCheck: UInt64 = 1
    /// Flag: ejected by outlier detection.
    public static let ejected: UInt64 = 2

    /// Default slot capacity.
    public static let defaultCapacity = 4096

    /// Allocates zeroed state for `capacity` endpoints and `workers` workers.
    public init(capacity: Int = EndpointHealth.defaultCapacity, workers: Int) {
        self.capacity = max(1, capacity)
        self.workers = max(1, workers)
        let n = self.capacity * Slot.stride + Slot.stride
        let m = self.workers * self.capacity * Counter.stride
        guard let a = calloc(n, MemoryLayout<UInt64>.stride), let b = calloc(m, MemoryLayout<UInt64>.stride) else {
            fatalError("EndpointHealth: cannot allocate \(n + m) words")
        }
        words = a.bindMemory(to: UInt64.self, capacity: n)
        counters = b.bindMemory(to: UInt64.self, capacity: m)
    }

    deinit {
        free(words)
        free(counters)
    }

    // MARK: Data path (workers)

    /// Slots with any flag set now (the word after the last slot). While it is 0, which is the
    /// common case, a pick needs this one load instead of one per endpoint of the group.
    @inlinable @inline(__always)
    public var unavailableCount: UInt64 {
        csluice_load_relaxed(unavailableCountPointer)
    }

    /// Where `unavailableCount` lives (valid as long as this object).
    @inlinable
    var unavailableCountPointer: UnsafeMutablePointer<UInt64> {
        words.advanced(by: capacity &* Slot.stride)
    }

    /// Word `offset` of `slot`.
    @inlinable @inline(__always)
    func wordPointer(_ slot: Int32, _ offset: Int) -> UnsafeMutablePointer<UInt64> {
        let i: Int = Int(slot) &* Slot.stride &+ offset
        return words.advanced(by: i)
    }

    /// Worker `worker`'s counter `offset` of `slot`.
    @inlinable @inline(__always)
    func counterPointer(_ worker: Int, _ slot: Int32, _ offset: Int) -> UnsafeMutablePointer<UInt64> {
        let row: Int = worker &* capacity &+ Int(slot)
        return counters.advanced(by: row &* Counter.stride &+ offset)
    }

    /// True when the endpoint in `slot` may be picked: not failing checks, not ejected. A
    /// negative slot (untracked) is always available. One relaxed load.
    @inlinable @inline(__always)
    public func isAvailable(_ slot: Int32) -> Bool {
        guard slot >= 0 else { return true }
        return csluice_load_relaxed(wordPointer(slot, Slot.flags)) == 0
    }

    /// Worker `worker` got a non-failure answer (a response head that is not 502-504) from `slot`.
    @inlinable
    public func recordSuccess(slot: Int32, worker: Int) {
        guard slot >= 0, worker < workers else { return }
        csluice_add_relaxed(counterPointer(worker, slot, Counter.requests), 1)
        let f = wordPointer(slot, Slot.failures)
        if csluice_load_relaxed(f) != 0 { csluice_store_relaxed(f, 0) }
    }

    /// Worker `worker` saw a gateway failure of `slot` (connect failure or timeout, reset, bad
    /// response, upstream timeout, or a 502-504). Returns true when this failure reached the
    /// group's `consecutive_failures`: the caller wakes the health monitor to decide an ejection.
    @inlinable
    public func recordFailure(slot: Int32, worker: Int) -> Bool {
        guard slot >= 0, worker < workers else { return false }
        csluice_add_relaxed(counterPointer(worker, slot, Counter.requests), 1)
        csluice_add_relaxed(counterPointer(worker, slot, Counter.errors), 1)
        let threshold = csluice_load_relaxed(wordPointer(slot, Slot.threshold))
        guard threshold > 0 else { return false }
        return csluice_fetch_add(wordPointer(slot, Slot.failures), 1) &+ 1 == threshold
    }

    /// Counts one panic-mode pick of `slot` by `worker`.
    @inlinable
    public func recordPanicPick(slot: Int32, worker: Int) {
        guard slot >= 0, worker < workers else { return }
        csluice_add_relaxed(counterPointer(worker, slot, Counter.panicPicks), 1)
    }

    // MARK: Control plane

    /// Endpoint identity across tables.
    struct Key: Hashable {
        var upstream: String
        var address: SocketAddress
    }

    private struct Registry {
        var byKey: [Key: Int32] = [:]
        var keyOf: [Key?] = []
        /// Slots whose key is in no table since, oldest first (reused only when none is left unused).
        var retired: [Int32] = []
        /// The same slots as a set (membership without scanning).
        var retiredSet = Set<Int32>()
        var current: Assignment? = nil
        var generation: UInt64 = 0
    }

    /// The table most recently given to `assign`, with its slots (the monitor works on this).
    public struct Assignment: Sendable {
        /// The table.
        public let table: RoutingTable
        /// Slot of each flat endpoint index (`RoutingTable.flatIndex`); -1: untracked.
        public let slots: [Int32]
        /// Increases with every `assign`.
        public let generation: UInt64
    }

    /// Slots for every endpoint of `table` (flat order), reusing the slot each (upstream name,
    /// address) already had; records the table as current. Also applies the groups' settings to
    /// their slots: the failure threshold, and clearing the check flag of groups without a check
    /// and the ejection of groups whose outlier detection is off. Control plane only.
    @discardableResult
    public func assign(_ table: RoutingTable) -> [Int32] {
        registry.withLock { r in
            var slots: [Int32] = []
            var inTable = Set<Int32>()
            // Endpoints gone from this table retire first, so their slots can be reused below.
            var keys = Set<Key>()
            for group in table.upstreams { for e in group.endpoints { keys.insert(Key(upstream: group.name, address: e.address)) } }
            for (i, key) in r.keyOf.enumerated() {
                if let key, !keys.contains(key), r.retiredSet.insert(Int32(i)).inserted {
                    r.retired.append(Int32(i))
                    // Nothing checks a retired endpoint any more: a check flag left set would keep
                    // `unavailableCount` above 0 for good (every pick would take the slow path).
                    // Returning, it starts up again like any new endpoint until its checks fail.
                    _ = clearFlag(Int32(i), EndpointHealth.downByCheck)
                }
            }
            for group in table.upstreams {
                for e in group.endpoints {
                    let key = Key(upstream: group.name, address: e.address)
                    var slot: Int32 = -1
                    if let s = r.byKey[key] {
                        slot = s
                        if r.retiredSet.remove(s) != nil, let i = r.retired.firstIndex(of: s) { r.retired.remove(at: i) }
                    } else if r.keyOf.count < capacity {
                        slot = Int32(r.keyOf.count)
                        r.keyOf.append(key)
                        r.byKey[key] = slot
                    } else if let i = r.retired.firstIndex(where: { !inTable.contains($0) }) {
                        slot = r.retired.remove(at: i)
                        r.retiredSet.remove(slot)
                        if let old = r.keyOf[Int(slot)] { r.byKey[old] = nil }
                        r.keyOf[Int(slot)] = key
                        r.byKey[key] = slot
                        reset(slot)
                    }
                    slots.append(slot)
                    guard slot >= 0 else { continue }
                    inTable.insert(slot)
                    let base = words + Int(slot) * Slot.stride
                    let outlier = group.availability.outlier
                    if csluice_load_relaxed(base + Slot.threshold) != UInt64(outlier.consecutiveFailures) {
                        csluice_store_relaxed(base + Slot.threshold, UInt64(outlier.consecutiveFailures))
                        csluice_store_relaxed(base + Slot.failures, 0)
                    }
                    if group.availability.healthCheck == nil { _ = clearFlag(slot, EndpointHealth.downByCheck) }
                    if !outlier.isOn { _ = clearFlag(slot, EndpointHealth.ejected) }
                }
            }
            r.generation += 1
            r.current = Assignment(table: table, slots: slots, generation: r.generation)
            return slots
        }
    }

    /// The latest assignment (nil before the first `assign`).
    public var current: Assignment? {
        registry.withLock { $0.current }
    }

    /// Sets `bit` in `slot`'s flags, counting the slot unavailable if it was not; returns the old flags.
    private func setFlag(_ slot: Int32, _ bit: UInt64) -> UInt64 {
        let old = csluice_fetch_or(words + Int(slot) * Slot.stride + Slot.flags, bit)
        if old == 0 { _ = csluice_fetch_add(words + capacity * Slot.stride, 1) }
        return old
    }

    /// Clears `bit` in `slot`'s flags, counting the slot available if it now is; returns the old flags.
    private func clearFlag(_ slot: Int32, _ bit: UInt64) -> UInt64 {
        let old = csluice_fetch_and(words + Int(slot) * Slot.stride + Slot.flags, ~bit)
        if old != 0 && old & ~bit == 0 { _ = csluice_fetch_add(words + capacity * Slot.stride, UInt64.max) }
        return old
    }

    /// Ends every ejection whose time is over, on any slot, including those of endpoints no
    /// longer in a table (so they do not keep `unavailableCount` up); returns the slots ended.
    /// Monitor only.
    public func endExpiredEjections(now: UInt64) -> [Int32] {
        let used = registry.withLock { $0.keyOf.count }
        var ended: [Int32] = []
        for i in 0..<Int32(used) where word(i, Slot.flags) & EndpointHealth.ejected != 0 && word(i, Slot.ejectedUntil) <= now {
            endEjection(i, now: now)
            ended.append(i)
        }
        return ended
    }

    private func reset(_ slot: Int32) {
        _ = clearFlag(slot, EndpointHealth.downByCheck | EndpointHealth.ejected)
        let base = words + Int(slot) * Slot.stride
        for i in 0..<Slot.stride { csluice_store_relaxed(base + i, 0) }
        for w in 0..<workers {
            let row = self.counters + (w * capacity + Int(slot)) * Counter.stride
            for i in 0..<Counter.stride { csluice_store_relaxed(row + i, 0) }
        }
    }

    /// A word of `slot` (monitor and tests).
    @usableFromInline func word(_ slot: Int32, _ offset: Int) -> UInt64 {
        csluice_load_relaxed(words + Int(slot) * Slot.stride + offset)
    }

    /// Sets or clears the check flag; returns true when it changed (monitor only).
    public func setDownByCheck(_ slot: Int32, _ down: Bool) -> Bool {
        guard slot >= 0 else { return false }
        let old = down ? setFlag(slot, EndpointHealth.downByCheck) : clearFlag(slot, EndpointHealth.downByCheck)
        return (old & EndpointHealth.downByCheck != 0) != down
    }

    /// Ejects `slot` until `until` (monotonic nanos): sets the flag, counts the ejection, resets
    /// the failure count (monitor only).
    public func eject(_ slot: Int32, until: UInt64, timesEjected: UInt64) {
        let base = words + Int(slot) * Slot.stride
        csluice_store_relaxed(base + Slot.ejectedUntil, until)
        csluice_store_relaxed(base + Slot.timesEjected, timesEjected)
        csluice_store_relaxed(base + Slot.failures, 0)
        _ = csluice_fetch_add(base + Slot.ejections, 1)
        _ = setFlag(slot, EndpointHealth.ejected)
    }

    /// Ends `slot`'s ejection at `now` (monitor only).
    public func endEjection(_ slot: Int32, now: UInt64) {
        let base = words + Int(slot) * Slot.stride
        csluice_store_relaxed(base + Slot.failures, 0)
        csluice_store_relaxed(base + Slot.returnedAt, now)
        _ = clearFlag(slot, EndpointHealth.ejected)
    }

    /// What the monitor, metrics and `sluice status` read about one slot.
    public struct SlotState: Sendable, Equatable {
        /// The check says down.
        public var downByCheck: Bool
        /// Ejected now.
        public var ejected: Bool
        /// Consecutive failures counted.
        public var failures: UInt64
        /// Ejections so far.
        public var ejections: UInt64
        /// When the current ejection ends (monotonic nanos; meaningful while ejected).
        public var ejectedUntil: UInt64
        /// Ejection count the next ejection grows from.
        public var timesEjected: UInt64
        /// When the last ejection ended (monotonic nanos, 0: never).
        public var returnedAt: UInt64
        /// Attempts summed over workers.
        public var requests: UInt64
        /// Failed attempts summed over workers.
        public var errors: UInt64
        /// Panic-mode picks of this endpoint summed over workers.
        public var panicPicks: UInt64
        /// Neither failing checks nor ejected.
        public var available: Bool { !downByCheck && !ejected }
    }

    /// The state of `slot` now (relaxed loads; counters summed over the workers unless
    /// `counters` is false, when they read 0: the monitor's frequent passes skip them).
    public func state(_ slot: Int32, counters: Bool = true) -> SlotState? {
        guard slot >= 0, Int(slot) < capacity else { return nil }
        let flags = word(slot, Slot.flags)
        var s = SlotState(downByCheck: flags & EndpointHealth.downByCheck != 0, ejected: flags & EndpointHealth.ejected != 0,
                          failures: word(slot, Slot.failures), ejections: word(slot, Slot.ejections),
                          ejectedUntil: word(slot, Slot.ejectedUntil), timesEjected: word(slot, Slot.timesEjected),
                          returnedAt: word(slot, Slot.returnedAt), requests: 0, errors: 0, panicPicks: 0)
        guard counters else { return s }
        for w in 0..<workers {
            let row = self.counters + (w * capacity + Int(slot)) * Counter.stride
            s.requests &+= csluice_load_relaxed(row + Counter.requests)
            s.errors &+= csluice_load_relaxed(row + Counter.errors)
            s.panicPicks &+= csluice_load_relaxed(row + Counter.panicPicks)
        }
        return s
    }
}

extension RoutingTable {
    /// The flat endpoint index of endpoint `endpoint` of group `upstream` (the index of
    /// `EndpointHealth.Assignment.slots` and `SeriesMap.endpointSlots`).
    @inlinable
    public func flatIndex(upstream: Int32, endpoint: Int32) -> Int {
        Int(groupStart(upstream)) + Int(endpoint)
    }

    /// Where group `upstream`'s endpoints start in the flat order.
    @usableFromInline func groupStart(_ upstream: Int32) -> Int32 {
        groupEndpointStart[Int(upstream)]
    }
}
