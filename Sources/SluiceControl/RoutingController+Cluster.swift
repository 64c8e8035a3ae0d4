import SluiceCore

/// Where a replica's shared routing state is written: etcd with `cluster:` (`ClusterStore`).
/// Without one, the state file alone keeps the state (the single-node default).
package protocol SharedRoutingStore: AnyObject, Sendable {
    /// This replica's name.
    var node: String { get }
    /// Writes the routing document (and, in the same transaction, the rollouts document) if
    /// the routing document's revision is still `revision` (0: it does not exist yet).
    func write(state: FleetRouting, basedOn revision: Int64, rollouts: FleetRollouts?) -> SharedWrite
    /// Writes the rollouts document if its revision is still `revision`.
    func write(rollouts: FleetRollouts, basedOn revision: Int64) -> SharedWrite
}

/// The outcome of a conditional write to the shared store.
package enum SharedWrite: Sendable {
    /// Written; the store's new revision.
    case written(Int64)
    /// Refused: the document changed meanwhile; its current bytes (nil: deleted) and revision.
    case stale([UInt8]?, Int64)
    /// The store could not be reached (why): nothing was written.
    case unreachable(String)
    /// The write was sent but not confirmed in time (why): it may still take effect.
    case unconfirmed(String)
    /// The store answered with an error (why: permissions, a malformed request): nothing was written.
    case refused(String)
}

/// A routing controller's link to the fleet (kept in its state, under its lock).
struct FleetLink: Sendable {
    /// The store (nil: no `cluster:`).
    var store: (any SharedRoutingStore)?
    /// The fleet's routing document last seen or written.
    var doc: FleetRouting?
    /// Its revision: what the next change is based on.
    var revision: Int64 = 0
    /// The fleet's rollouts document last seen or written.
    var rollouts: FleetRollouts?
    /// Its revision.
    var rolloutsRevision: Int64 = 0
    /// Aborts made with `--local` and not yet shared, by route.
    var localAborts: [String: RouteOverride] = [:]
    /// Told when another replica changed the rollouts (the rollout controller follows).
    var rolloutsObserver: (@Sendable ([String: RolloutSnapshot], String) -> Void)?
}

/// What `sluice status` shows about the fleet's routing state.
public struct FleetRoutingView: Sendable, Codable, Equatable {
    /// The fleet's version (nil before the first change).
    public var fleetVersion: UInt64?
    /// This replica's serving version.
    public var servingVersion: UInt64
    /// etcd revision of the routing document this replica is at.
    public var revision: Int64
    /// The replica that made the latest change, and what it was.
    public var lastChange: String?
    /// Routes aborted with `--local` and not yet shared.
    public var pendingLocalAborts: [String]

    enum CodingKeys: String, CodingKey {
        case fleetVersion = "fleet_version", servingVersion = "serving_version", revision, lastChange = "last_change",
             pendingLocalAborts = "pending_local_aborts"
    }
}

extension RoutingController {
    // MARK: Wiring

    /// Shares every runtime change through `store` from now on.
    package func attachFleet(_ store: any SharedRoutingStore) {
        state.withLock { $0.fleet.store = store }
    }

    /// Calls `observer` with the fleet's rollout snapshots whenever another replica changed them
    /// (outside the controller's lock).
    package func observeFleetRollouts(_ observer: @escaping @Sendable ([String: RolloutSnapshot], String) -> Void) {
        state.withLock { $0.fleet.rolloutsObserver = observer }
    }

    /// The config file's table (without runtime overrides).
    package var fileTable: RoutingTable {
        state.withLock { $0.base }
    }

    /// The fleet's routing state as this replica sees it.
    public var fleetView: FleetRoutingView {
        state.withLock { s in
            FleetRoutingView(fleetVersion: s.fleet.doc?.version, servingVersion: s.serving.version, revision: s.fleet.revision,
                             lastChange: s.fleet.doc?.latest.map(Self.describeChange),
                             pendingLocalAborts: s.fleet.localAborts.keys.sorted())
        }
    }

    /// `version 7: abort of web by replica-2 (sluice abort ...)`.
    static func describeChange(_ e: HistoryEntry) -> String {
        "version \(e.version): \(e.kind.rawValue)\(e.route.map { " of `\($0)`" } ?? "")\(e.node.map { " by \($0)" } ?? "")"
            + " (\(e.cause))"
    }

    // MARK: Adopting the fleet's state

    /// Applies the fleet's routing document seen at `revision` (from the watch or a read) on top
    /// of this replica's config file, exactly as state-file overrides are: overrides that do not
    /// fit this replica's file are dropped here (event `override_dropped`). Aborts made with
    /// `--local` and not yet shared stay on top. Older or already-seen revisions are ignored.
    /// Returns the change made (nil when nothing changed).
    @discardableResult
    package func adoptFleetState(_ bytes: [UInt8]?, revision: Int64) -> ChangeResult? {
        let result = state.withLock { s in adopt(&s, bytes, revision: revision) }
        return result
    }

    /// `adoptFleetState` with the lock held.
    func adopt(_ s: inout State, _ bytes: [UInt8]?, revision: Int64) -> ChangeResult? {
        guard revision > s.fleet.revision else { return nil }
        s.fleet.revision = revision
        guard let bytes else { return nil }  // deleted by hand: keep serving; the next change writes it again
        let doc: FleetRouting
        switch FleetJSON.decode(FleetRouting.self, bytes) {
        case .success(let d): doc = d
        case .failure(let error):
            events.record(.cluster, oldVersion: s.serving.version, newVersion: nil,
                          cause: "the fleet's routing state in etcd cannot be read; still serving version \(s.serving.version)",
                          details: ["error": error.message, "revision": "\(revision)"])
            return nil
        }
        s.fleet.doc = doc
        var kept: [String: RouteOverride] = [:]
        var dropped: [(route: String, reason: String)] = []
        for (route, o) in doc.overrides.sorted(by: { $0.key < $1.key }) {
            if let reason = Self.misfit(o, route: route, in: s.base) {
                dropped.append((route, reason))
            } else {
                kept[route] = o.ordered(for: s.base.routes[s.base.routeIndex(named: route)!])
            }
        }
        for (route, o) in s.fleet.localAborts { kept[route] = o }
        if kept == s.overrides && doc.version <= s.serving.version { return nil }
        let version = max(doc.version, s.serving.version + 1)
        let table = (try? s.base.applying(Self.changes(kept, in: s.base), version: version)) ?? s.base.renumbered(version: version)
        let latest = doc.latest
        var warnings: [String] = []
        for d in dropped { warnings.append("the fleet's override of route `\(d.route)` does not fit this replica's file: \(d.reason)") }
        var details = ["node": doc.node, "fleet_version": "\(doc.version)", "revision": "\(revision)"]
        if !s.fleet.localAborts.isEmpty { details["local_aborts"] = s.fleet.localAborts.keys.sorted().joined(separator: ",") }
        let result = commit(&s, table: table, base: s.base, overrides: kept, kind: latest?.kind ?? .restore,
                            cause: "fleet: \(latest?.cause ?? "shared state") (by \(doc.node))", route: latest?.route,
                            warnings: warnings, details: details)
        for d in dropped {
            events.record(.overrideDropped, oldVersion: result.oldVersion, newVersion: result.version, cause: "fleet state",
                          details: ["route": d.route, "reason": d.reason])
        }
        return result
    }

    /// Applies the fleet's rollouts document seen at `revision`; tells the rollout controller
    /// when it is newer than what this replica wrote.
    package func adoptFleetRollouts(_ bytes: [UInt8]?, revision: Int64) {
        let (observer, doc) = state.withLock { s -> ((@Sendable ([String: RolloutSnapshot], String) -> Void)?, FleetRollouts?) in
            guard revision > s.fleet.rolloutsRevision, let bytes,
                  case .success(let doc) = FleetJSON.decode(FleetRollouts.self, bytes) else { return (nil, nil) }
            s.fleet.rolloutsRevision = revision
            s.fleet.rollouts = doc
            s.rollouts = doc.rollouts
            return (s.fleet.rolloutsObserver, doc)
        }
        if let observer, let doc { observer(doc.rollouts, doc.node) }
    }

    // MARK: Sharing changes

    /// Writes a change to the fleet before it is committed here. True: shared (or nothing to
    /// share, or `local`); false: the fleet had moved on, its newer state was adopted, and the
    /// caller makes the change again (only when `retryIfStale`). Throws `.conflict` for a stale
    /// change and `.clusterUnavailable` when etcd cannot be reached. Caller holds the lock.
    func share(_ s: inout State, kind: RoutingEventKind, route: String?, cause: String, table: RoutingTable,
               overrides: [String: RouteOverride], rollouts: [String: RolloutSnapshot]? = nil, local: Bool = false,
               retryIfStale: Bool = false, fleetOverrides: [String: RouteOverride]? = nil) throws(ControlError) -> Bool {
        guard let store = s.fleet.store else {
            if local { throw .badRequest("`--local` is for replicas with a `cluster:` section (this one is alone)") }
            return true
        }
        if local {
            guard kind == .abort, let route, let o = overrides[route] else { throw .badRequest("only an abort can be local") }
            s.fleet.localAborts[route] = o
            return true
        }
        // What the fleet gets: its own overrides with this change of `route` (a replica whose file
        // lacks a route keeps the fleet's override of it, it just does not serve it), plus the
        // aborts this replica made with `--local` and has not shared yet.
        var shared = fleetOverrides ?? s.fleet.doc?.overrides ?? s.overrides
        if fleetOverrides == nil, let route { shared[route] = overrides[route] }
        for (r, o) in s.fleet.localAborts { shared[r] = o }
        let time = ControlClock.rfc3339(unixNanos: clock())
        let entry = HistoryEntry(version: table.version, time: time, kind: kind, cause: cause, route: route,
                                 changed: TableDiff.describe(from: s.serving, to: table), overrides: shared, node: store.node)
        // The fleet's first change also records what served before it (so it can be rolled back).
        let before = s.fleet.doc?.history ?? [HistoryEntry(
            version: s.serving.version, time: time, kind: .start, cause: "the fleet's state before its first shared change",
            route: nil, changed: "started", overrides: s.overrides, node: store.node)]
        var history = before + [entry]
        if history.count > historyLimit { history.removeFirst(history.count - historyLimit) }
        let doc = FleetRouting(version: table.version, overrides: shared, history: history, node: store.node, updated: time)
        let rolloutsDoc = rollouts.map { FleetRollouts(rollouts: $0, node: store.node) }
        switch store.write(state: doc, basedOn: s.fleet.revision, rollouts: rolloutsDoc) {
        case .written(let revision):
            s.fleet.doc = doc
            s.fleet.revision = revision
            if let rolloutsDoc {
                s.fleet.rollouts = rolloutsDoc
                s.fleet.rolloutsRevision = revision
            }
            s.fleet.localAborts = [:]
            return true
        case .unreachable(let why):
            throw .clusterUnavailable(Self.unreachableText(why))
        case .refused(let why):
            throw .clusterUnavailable("refused: the cluster store (etcd) did not take the change (\(why)); nothing changed")
        case .unconfirmed(let why):
            throw .clusterUnavailable("not confirmed: the cluster store (etcd) did not answer in time (\(why)); the change may "
                                      + "still take effect on every replica (this one follows whatever etcd holds): look at "
                                      + "`sluice history` before trying again")
        case .stale(let bytes, let revision):
            let based = s.fleet.doc?.version
            _ = adopt(&s, bytes, revision: revision)
            if retryIfStale { return false }
            let now = s.fleet.doc?.latest.map { "; now at " + Self.describeChange($0) } ?? ""
            throw .conflict("stale change refused: another replica changed the fleet's routing state meanwhile (this change was "
                            + "based on version \(based.map(String.init) ?? "none")\(now)); this replica has caught up: "
                            + "look at `sluice history` and decide again")
        }
    }

    /// Writes the rollouts' snapshots to the fleet (nothing without `cluster:` or when they are
    /// the fleet's already); returns a warning when they could not be shared. Caller holds the lock.
    func shareRollouts(_ s: inout State, _ rollouts: [String: RolloutSnapshot]) -> String? {
        guard let store = s.fleet.store else { return nil }
        if s.fleet.rollouts?.rollouts == rollouts || (s.fleet.rollouts == nil && rollouts.isEmpty) { return nil }
        let doc = FleetRollouts(rollouts: rollouts, node: store.node)
        switch store.write(rollouts: doc, basedOn: s.fleet.rolloutsRevision) {
        case .written(let revision):
            s.fleet.rollouts = doc
            s.fleet.rolloutsRevision = revision
            return nil
        case .stale:
            // The watch brings the fleet's newer snapshots, and the machines follow them.
            return Self.staleRolloutsWarning + "another replica changed it meanwhile (the fleet's state applies)"
        case .unreachable(let why), .unconfirmed(let why), .refused(let why):
            return Self.unreachableRolloutsWarning + why
        }
    }

    /// The refusal of a change that could not be written because etcd is unreachable.
    static func unreachableText(_ why: String) -> String {
        "refused: the cluster store (etcd) is unreachable, so the change cannot reach the other replicas (\(why)); "
            + "every replica keeps serving its last table; `sluice abort ROUTE --local` aborts on this replica only"
    }

    /// Start of `saveRollouts`'s warning when another replica changed the rollouts meanwhile.
    static let staleRolloutsWarning = "rollout state not shared: "
    /// Start of `saveRollouts`'s warning when etcd cannot be reached (followed by why).
    static let unreachableRolloutsWarning = "rollout state not shared (the cluster store is unreachable; rollouts are paused): "

    /// Shares the aborts made with `--local` (each made again on top of the fleet's current
    /// state: an abort is never stale). Returns the routes shared; throws when etcd is unreachable.
    @discardableResult
    package func shareLocalAborts() throws(ControlError) -> [String] {
        let pending = state.withLock { $0.fleet.localAborts }
        var shared: [String] = []
        for (route, o) in pending.sorted(by: { $0.key < $1.key }) {
            let result = try change(route: route, kind: .abort, cause: "local abort shared with the fleet (\(o.cause), since \(o.since))") {
                version, time in RouteOverride(kind: .abort, since: time, version: version, cause: o.cause)
            }
            _ = notify(result, cause: result.override?.cause ?? "")
            events.record(.cluster, oldVersion: result.oldVersion, newVersion: result.version,
                          cause: "the local abort of route `\(route)` (since \(o.since)) was shared with the fleet",
                          details: ["route": route])
            shared.append(route)
        }
        return shared
    }

    /// `rollback` with `cluster:`: the fleet's overrides of an earlier fleet version, applied on
    /// top of this replica's file (each replica keeps its own file). Caller holds the lock.
    func fleetRollback(_ s: inout State, to version: UInt64?, force: Bool, cause: String) throws(ControlError) -> ChangeResult {
        let current = s.serving.version
        let history = s.fleet.doc?.history ?? s.history.map(\.entry)
        let target: HistoryEntry
        if let version {
            guard version != current else { throw .alreadyServing(version) }
            guard let found = history.last(where: { $0.version == version }) else {
                throw .unknownVersion(version, available: history.map(\.version))
            }
            target = found
        } else {
            guard history.count >= 2 else { throw .nothingToRollBack(current) }
            target = history[history.count - 2]
        }
        var overrides: [String: RouteOverride] = [:]
        var warnings: [String] = []
        for (route, o) in target.overrides.sorted(by: { $0.key < $1.key }) {
            if let reason = Self.misfit(o, route: route, in: s.base) {
                warnings.append("override of route `\(route)` not restored: \(reason)")
            } else {
                overrides[route] = o
            }
        }
        let table: RoutingTable
        do throws(RoutingChangeError) {
            table = try s.base.applying(Self.changes(overrides, in: s.base), version: current + 1)
        } catch {
            throw .invalidChange(error)
        }
        if !force {
            // The same guard as a single node's rollback: never reopen a canary by surprise.
            let raised = table.exposureIncreases(comparedTo: s.serving)
            if !raised.isEmpty {
                throw .unsafeRollback(target: target.version, increases: raised,
                                      changed: TableDiff.describe(from: s.serving, to: table))
            }
        }
        _ = try share(&s, kind: .rollback, route: nil, cause: cause, table: table, overrides: overrides, fleetOverrides: target.overrides)
        return commit(&s, table: table, base: s.base, overrides: overrides, kind: .rollback, cause: cause, route: nil,
                      warnings: warnings, details: ["to": "\(target.version)"], rolledBackTo: target.version)
    }
}
