import SluiceCore
import SluiceProxy

/// Owns the live routing table: builds every new version off the hot path, publishes it to
/// the workers (`ProxyServer.publish`), and remembers what it did.
///
/// State: the config file's table (`base`), the runtime overrides in force (per route: split,
/// switch or abort), the serving table (`base` with the overrides applied, under its own
/// version), the last 50 versions (`history`), the event log and the state file.
///
/// How changes combine:
/// - A runtime change (split, switch, abort) replaces the route's override and is applied on
///   top of the config file's table; `clear` removes it.
/// - A reload of the file keeps each override whose route and cohorts still exist and whose
///   split the file itself did not change; the others are dropped (event `override_dropped`).
/// - A rollback publishes an earlier version again, as a new version: its table, its
///   overrides and the file table it was built on, until the next reload.
/// - Overrides and the version counter are written to the state file after every change and
///   applied on top of the config at start (event `restore`).
///
/// Thread-safe: all changes are serialized by one lock (they come from SIGHUP, the file
/// watcher and admin threads); a reload parses and resolves the file before taking it, so a
/// slow DNS answer never delays an abort. Never called from a worker thread.
public final class RoutingController: Sendable {
    /// The config file reloads read (nil: no file, e.g. `sluice demo`).
    public let configPath: String?
    /// Where overrides and the version counter are kept (nil: not kept).
    public let stateFile: String?
    /// The routing events (reloads, rejections, runtime changes).
    public let events: EventLog
    /// Versions kept for `history` and `rollback`.
    public let historyLimit: Int

    private let resolver: HostResolver
    let clock: @Sendable () -> UInt64
    /// The settings the process started with (what a reload cannot change).
    private let startConfig: SluiceConfig

    /// One version as kept in the history.
    struct VersionRecord: Sendable {
        var entry: HistoryEntry
        var table: RoutingTable
        var base: RoutingTable
        var overrides: [String: RouteOverride]
    }

    struct State: Sendable {
        var base: RoutingTable
        var overrides: [String: RouteOverride]
        var serving: RoutingTable
        var history: [VersionRecord] = []
        var publish: (@Sendable (RoutingTable) -> Void)?
        /// Receives the TLS settings of every config loaded (normally `ProxyServer.publishTLS`).
        var publishTLS: (@Sendable (TLSSet) -> Void)?
        /// Hash of the file content last loaded or rejected (no-op file events are skipped).
        var lastFileHash: UInt64?
        /// The rollouts' snapshots, kept in the state file with the overrides (by route).
        var rollouts: [String: RolloutSnapshot] = [:]
        /// The TLS settings of the last config file loaded (nil: the start config's).
        var lastTLS: TLSSet?
        /// Told about every change made through the public methods (the rollout controller).
        var observer: (@Sendable (ChangeResult, String) -> Void)?
        /// With `cluster:`: the link to the fleet's shared state (`RoutingController+Cluster.swift`).
        var fleet = FleetLink()
    }

    let state: ControlLock<State>
    /// Held for the whole of a reload (read, parse, resolve, commit), so reloads do not overtake each other.
    private let reloading = ControlLock(())

    /// A controller serving `config` (plus the overrides in its state file, if any), with
    /// `config.sourcePath` as the file to reload and `config.stateFile` as the state file.
    /// Records the `start` event (and `restore` / `override_dropped` for the state file).
    /// Throws when the state file exists but cannot be read.
    public convenience init(config: SluiceConfig, events: EventLog, cause: String, historyLimit: Int = 50) throws(ControlError) {
        try self.init(config: config, events: events, cause: cause, historyLimit: historyLimit, resolver: .system,
                      clock: { ControlClock.unixNanos() })
    }

    /// `init(config:events:cause:historyLimit:)` with a chosen resolver and wall clock (tests).
    package init(config: SluiceConfig, events: EventLog, cause: String, historyLimit: Int = 50, resolver: HostResolver,
                 clock: @escaping @Sendable () -> UInt64) throws(ControlError) {
        self.configPath = config.sourcePath
        self.stateFile = config.stateFile
        self.events = events
        self.historyLimit = max(2, historyLimit)
        self.resolver = resolver
        self.clock = clock
        self.startConfig = config

        var version = config.table.version
        var saved: RuntimeStateFile?
        if let path = config.stateFile {
            do {
                saved = try RuntimeStateFile.read(path: path)
            } catch {
                throw .stateFile("\(error.message) (remove or fix it to start without the runtime overrides it holds)")
            }
            if let saved { version = max(version, saved.version + 1) }
        }
        let base = config.table
        var kept: [String: RouteOverride] = [:]
        var dropped: [(route: String, reason: String)] = []
        for (route, override) in (saved?.overrides ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let reason = Self.misfit(override, route: route, in: base) {
                dropped.append((route, reason))
            } else if let recorded = saved?.fileSplits[route], recorded != Self.splitSignature(route, in: base) {
                dropped.append((route, "the config file changed this route's split since the override was set"))
            } else {
                kept[route] = override.ordered(for: base.routes[base.routeIndex(named: route)!])
            }
        }
        let serving = (try? base.applying(Self.changes(kept, in: base), version: version)) ?? base.renumbered(version: version)
        var fileHash: UInt64?
        if let path = config.sourcePath, case .success(let text) = ConfigLoader.readFile(path) {
            fileHash = Self.contentHash(text)
        }
        var s = State(base: base, overrides: kept, serving: serving, lastFileHash: fileHash)
        s.rollouts = saved?.rollouts ?? [:]
        let time = ControlClock.rfc3339(unixNanos: clock())
        let entry = HistoryEntry(version: version, time: time, kind: .start, cause: cause, route: nil,
                                 changed: kept.isEmpty ? "started" : "started with runtime overrides from the state file",
                                 overrides: kept)
        s.history = [VersionRecord(entry: entry, table: serving, base: base, overrides: kept)]
        self.state = ControlLock(s)

        events.record(.start, oldVersion: nil, newVersion: version, cause: cause)
        if let saved, let path = config.stateFile {
            if !kept.isEmpty {
                var details: [String: String] = ["state_file": path]
                for (route, o) in kept { details[route] = o.summary + " (since \(o.since), version \(o.version))" }
                events.record(.restore, oldVersion: saved.version, newVersion: version,
                              cause: "state file \(path)", details: details)
            }
            for d in dropped {
                events.record(.overrideDropped, oldVersion: saved.version, newVersion: version, cause: "state file \(path)",
                              details: ["route": d.route, "reason": d.reason])
            }
            // Keep the version counter moving across restarts.
            _ = state.withLock { persist($0) }
        }
    }

    // MARK: Wiring

    /// Sends every new table to `publish` (normally `ProxyServer.publish`). Call before any change.
    public func attach(publish: @escaping @Sendable (RoutingTable) -> Void) {
        state.withLock { $0.publish = publish }
    }

    /// Sends the TLS settings of the config now serving, then of every reloaded one, to `publish`
    /// (before that reload's table). Certificates are read by the reload, so renewed files reach
    /// new handshakes; a reload rejected for a bad file keeps the old certificates serving.
    public func attach(tls publish: @escaping @Sendable (TLSSet) -> Void) {
        let current = state.withLock { s -> TLSSet in
            s.publishTLS = publish
            return s.lastTLS ?? startConfig.tls
        }
        publish(current)
    }

    /// Sends every new table to `server`'s workers.
    public func attach(_ server: ProxyServer) {
        attach { server.publish($0) }
    }

    /// Calls `observer` after every change made through the public methods (reloads, split,
    /// switch, abort, clear, rollback), with its result and cause, outside the controller's
    /// locks (so it may call back in). Changes made with `applyRollout` are not reported. One observer.
    package func observe(_ observer: @escaping @Sendable (ChangeResult, String) -> Void) {
        state.withLock { $0.observer = observer }
    }

    /// Reports `result` to the observer; returns it.
    func notify(_ result: ChangeResult, cause: String) -> ChangeResult {
        if let observer = state.withLock({ $0.observer }) { observer(result, cause) }
        return result
    }

    // MARK: Reading

    /// The settings the process started with (limits, trusted proxies: what `explain` needs).
    package var startSettings: SluiceConfig { startConfig }

    /// The table serving now.
    public var table: RoutingTable {
        state.withLock { $0.serving }
    }

    /// The version serving now.
    public var version: UInt64 {
        state.withLock { $0.serving.version }
    }

    /// The runtime overrides in force, by route.
    public var overrides: [String: RouteOverride] {
        state.withLock { $0.overrides }
    }

    /// The serving table and the overrides in force, read together.
    public func snapshot() -> (table: RoutingTable, overrides: [String: RouteOverride]) {
        state.withLock { ($0.serving, $0.overrides) }
    }

    /// Recent versions, oldest first, with the overrides in force now.
    public func history() -> HistoryReport {
        state.withLock { s in
            if let doc = s.fleet.doc, s.fleet.store != nil {
                return HistoryReport(currentVersion: s.serving.version, versions: doc.history, overrides: s.overrides)
            }
            return HistoryReport(currentVersion: s.serving.version, versions: s.history.map(\.entry), overrides: s.overrides)
        }
    }

    // MARK: Reloads

    /// Reads, validates and publishes the config file (always, even when unchanged: host names
    /// are resolved again). An invalid file is rejected with every problem (event
    /// `reload_rejected`) and the serving table stays.
    public func reloadFromFile(cause: String) throws(ControlError) -> ChangeResult {
        guard let path = configPath else { throw .noConfigFile }
        let result = try reloading.withLock { _ throws(ControlError) -> ChangeResult in
            let text: String
            switch ConfigLoader.readFile(path) {
            case .success(let t): text = t
            case .failure(let failure):
                let error = ConfigError(diagnostics: [ConfigDiagnostic(
                    file: path, line: 0, column: 0, keyPath: "", message: "cannot read config file: \(failure.message)")])
                throw reject(error, hash: nil, cause: cause)
            }
            return try reload(text: text, path: path, cause: cause)
        }
        return notify(result, cause: cause)
    }

    /// Reloads the config file if its content differs from the content last loaded or
    /// rejected (for file-change notifications, which also fire for unrelated files and
    /// no-op writes). Returns nil when nothing changed or the file cannot be read right now
    /// (it is being replaced; the next notification retries).
    public func reloadIfChanged(cause: String) throws(ControlError) -> ChangeResult? {
        guard let path = configPath else { return nil }
        let result = try reloading.withLock { _ throws(ControlError) -> ChangeResult? in
            guard case .success(let text) = ConfigLoader.readFile(path) else { return nil }
            let hash = Self.contentHash(text)
            guard state.withLock({ $0.lastFileHash }) != hash else { return nil }
            return try reload(text: text, path: path, cause: cause)
        }
        return result.map { notify($0, cause: cause) }
    }

    /// Parses and resolves `text` (outside the state lock), then commits it. Caller holds `reloading`.
    private func reload(text: String, path: String, cause: String) throws(ControlError) -> ChangeResult {
        let hash = Self.contentHash(text)
        let loaded: SluiceConfig
        do {
            loaded = try ConfigLoader.load(text: text, path: path, version: 0, resolver: resolver)
        } catch {
            throw reject(error, hash: hash, cause: cause)
        }
        let restart = startConfig.restartOnlyChanges(loaded)
        return state.withLock { s -> ChangeResult in
            s.lastFileHash = hash
            let version = s.serving.version + 1
            let newBase = loaded.table
            var kept: [String: RouteOverride] = [:]
            var dropped: [(route: String, reason: String)] = []
            for (route, override) in s.overrides.sorted(by: { $0.key < $1.key }) {
                if let reason = Self.misfit(override, route: route, in: newBase) {
                    dropped.append((route, reason))
                } else if Self.splitSignature(route, in: s.base) != Self.splitSignature(route, in: newBase) {
                    dropped.append((route, "the config file changed this route's split"))
                } else {
                    kept[route] = override
                }
            }
            let table = (try? newBase.applying(Self.changes(kept, in: newBase), version: version))
                ?? newBase.renumbered(version: version)
            var warnings: [String] = []
            if !restart.isEmpty {
                warnings.append("changed in the file but applied only at restart: " + restart.joined(separator: ", "))
            }
            for d in dropped { warnings.append("runtime override of route `\(d.route)` dropped: \(d.reason)") }
            var tls = loaded.tls
            if !startConfig.listenerTLSLinesUp(with: loaded) {
                // The workers' sockets are the started config's: new listener TLS would land on the
                // wrong socket (a plain one could start handshaking). Upstream TLS still applies.
                tls.listeners = (s.lastTLS ?? startConfig.tls).listeners
                warnings.append("listener TLS settings not applied: the listeners changed (they apply at restart)")
            }
            s.lastTLS = tls
            s.publishTLS?(tls)
            let result = commit(&s, table: table, base: newBase, overrides: kept, kind: .reload, cause: cause, route: nil,
                                warnings: warnings, details: ["file": path])
            for d in dropped {
                events.record(.overrideDropped, oldVersion: result.oldVersion, newVersion: version, cause: cause,
                              details: ["route": d.route, "reason": d.reason])
            }
            return result
        }
    }

    /// Records a rejected config and returns the error to throw.
    private func reject(_ error: ConfigError, hash: UInt64?, cause: String) -> ControlError {
        let serving = state.withLock { s -> UInt64 in
            if let hash { s.lastFileHash = hash }
            return s.serving.version
        }
        events.record(.reloadRejected, oldVersion: serving, newVersion: nil, cause: cause,
                      details: ["error": error.description, "problems": "\(error.diagnostics.count)"])
        return .invalidConfig(error, servingVersion: serving)
    }

    // MARK: Runtime changes

    /// Sets route `route`'s split (weights in 0.01% units summing to 10000; cohorts not named
    /// get 0). Replaces the route's override.
    /// `ifVersion`: refuse the change (stale) unless that version is still the current one.
    public func setSplit(route: String, weights: [CohortWeight], cause: String,
                         ifVersion: UInt64? = nil) throws(ControlError) -> ChangeResult {
        notify(try change(route: route, kind: .split, cause: cause, ifVersion: ifVersion) { version, time in
            RouteOverride(kind: .split, weights: weights, since: time, version: version, cause: cause)
        }, cause: cause)
    }

    /// Sends all of route `route`'s traffic to `cohort` (blue/green switch). Replaces the route's override.
    public func switchTo(route: String, cohort: String, cause: String,
                         ifVersion: UInt64? = nil) throws(ControlError) -> ChangeResult {
        notify(try change(route: route, kind: .switch, cause: cause, ifVersion: ifVersion) { version, time in
            RouteOverride(kind: .switch, cohort: cohort, since: time, version: version, cause: cause)
        }, cause: cause)
    }

    /// Sends all of route `route`'s traffic to its baseline (abort a canary). Replaces the route's override.
    /// With `cluster:` the abort is shared with every replica; `local` applies it to this
    /// replica only (when etcd is unreachable), shared once etcd answers again.
    public func abort(route: String, cause: String, local: Bool = false) throws(ControlError) -> ChangeResult {
        notify(try change(route: route, kind: .abort, cause: cause, local: local) { version, time in
            RouteOverride(kind: .abort, since: time, version: version, cause: cause)
        }, cause: cause)
    }

    /// What a rollout does to its route's split.
    package enum RolloutSplit: Sendable {
        /// Set these weights (a `split` override).
        case split([CohortWeight])
        /// Everything to the baseline, rules included (an `abort` override): rollback and abort.
        case abort
    }

    /// The rollout controller's change of `route`'s split: like `setSplit` / `abort`, but
    /// `rollouts` (every rollout's snapshot) is written in the same state-file write, the
    /// observer is not told, and when `ifVersion` is given the change is refused
    /// (`ControlError.conflict`) unless that version is still serving, so a change made
    /// meanwhile by someone else is never overwritten.
    package func applyRollout(route: String, _ split: RolloutSplit, cause: String, rollouts: [String: RolloutSnapshot],
                              ifVersion: UInt64?) throws(ControlError) -> ChangeResult {
        switch split {
        case .split(let weights):
            return try change(route: route, kind: .split, cause: cause, rollouts: rollouts, ifVersion: ifVersion) { version, time in
                RouteOverride(kind: .split, weights: weights, since: time, version: version, cause: cause)
            }
        case .abort:
            return try change(route: route, kind: .abort, cause: cause, rollouts: rollouts, ifVersion: ifVersion) { version, time in
                RouteOverride(kind: .abort, since: time, version: version, cause: cause)
            }
        }
    }

    /// The rollouts' snapshots as last saved (at start: those read from the state file).
    package var rolloutSnapshots: [String: RolloutSnapshot] {
        state.withLock { $0.rollouts }
    }

    /// Replaces the rollouts' snapshots and writes the state file; returns a warning when it
    /// cannot be written (nil without a state file).
    package func saveRollouts(_ rollouts: [String: RolloutSnapshot]) -> String? {
        state.withLock { s in
            let shared = shareRollouts(&s, rollouts)
            s.rollouts = rollouts
            return [shared, persist(s)].compactMap { $0 }.first
        }
    }

    /// Removes route `route`'s override: its split is the config file's again.
    public func clear(route: String, cause: String, ifVersion: UInt64? = nil) throws(ControlError) -> ChangeResult {
        let result = try state.withLock { s throws(ControlError) -> ChangeResult in
            try checkVersion(s, ifVersion)
            guard s.base.routeIndex(named: route) != nil else {
                throw .invalidChange(.unknownRoute(route, known: s.base.routes.map(\.name)))
            }
            var overrides = s.overrides
            guard overrides.removeValue(forKey: route) != nil else {
                throw .noOverride(route: route, inForce: s.overrides.keys.sorted())
            }
            let table: RoutingTable
            do throws(RoutingChangeError) {
                table = try s.base.applying(Self.changes(overrides, in: s.base), version: s.serving.version + 1)
            } catch {
                throw .invalidChange(error)
            }
            _ = try share(&s, kind: .clear, route: route, cause: cause, table: table, overrides: overrides)
            return commit(&s, table: table, base: s.base, overrides: overrides, kind: .clear, cause: cause, route: route,
                          warnings: [], details: [:])
        }
        return notify(result, cause: cause)
    }

    /// Publishes an earlier version again, as a new version: its table, its overrides and its
    /// file table. Without `version`, the version that served before the current one.
    /// Unless `force`, refuses (`ControlError.unsafeRollback`, nothing changed) when that
    /// version would send more traffic to a cohort that is not its route's baseline
    /// (`RoutingTable.exposureIncreases`): "rollback" must never reopen a canary by surprise.
    public func rollback(to version: UInt64? = nil, force: Bool = false, cause: String,
                         ifVersion: UInt64? = nil) throws(ControlError) -> ChangeResult {
        let result = try state.withLock { s throws(ControlError) -> ChangeResult in
            try checkVersion(s, ifVersion)
            if s.fleet.store != nil { return try fleetRollback(&s, to: version, force: force, cause: cause) }
            let current = s.serving.version
            let target: VersionRecord
            if let version {
                guard version != current else { throw .alreadyServing(version) }
                guard let found = s.history.last(where: { $0.entry.version == version }) else {
                    throw .unknownVersion(version, available: s.history.map(\.entry.version))
                }
                target = found
            } else {
                guard s.history.count >= 2 else { throw .nothingToRollBack(current) }
                target = s.history[s.history.count - 2]
            }
            let table = target.table.renumbered(version: current + 1)
            if !force {
                let raised = table.exposureIncreases(comparedTo: s.serving)
                if !raised.isEmpty {
                    throw .unsafeRollback(target: target.entry.version, increases: raised,
                                          changed: TableDiff.describe(from: s.serving, to: table))
                }
            }
            return commit(&s, table: table, base: target.base, overrides: target.overrides, kind: .rollback, cause: cause,
                          route: nil, warnings: [], details: ["to": "\(target.entry.version)"], rolledBackTo: target.entry.version)
        }
        return notify(result, cause: cause)
    }

    /// Validates and commits a new override of `route`.
    /// `rollouts`, when given, replaces the rollouts' snapshots in the same commit; `ifVersion`
    /// refuses the change unless that version is serving.
    /// With `cluster:` the change is first written to etcd (conditioned on the fleet state it
    /// was based on); an abort found stale is made again on top of the newer state, any other
    /// change is refused. `local` skips etcd (a local abort, shared later).
    func change(route: String, kind: RoutingEventKind, cause: String, rollouts: [String: RolloutSnapshot]? = nil,
                ifVersion: UInt64? = nil, local: Bool = false,
                make: (UInt64, String) -> RouteOverride) throws(ControlError) -> ChangeResult {
        let time = ControlClock.rfc3339(unixNanos: clock())
        return try state.withLock { s throws(ControlError) -> ChangeResult in
            var attempt = 0
            while true {
                attempt += 1
                try checkVersion(s, ifVersion)
                guard let r = s.base.routeIndex(named: route) else {
                    throw .invalidChange(.unknownRoute(route, known: s.base.routes.map(\.name)))
                }
                let version = s.serving.version + 1
                var override = make(version, time)
                let baseline = s.base.routes[r].baseline
                if override.kind == .abort, baseline >= 0 { override.cohort = s.base.routes[r].cohorts[Int(baseline)].name }
                override = override.ordered(for: s.base.routes[r])
                var overrides = s.overrides
                overrides[route] = override
                let table: RoutingTable
                do throws(RoutingChangeError) {
                    table = try s.base.applying(Self.changes(overrides, in: s.base), version: version)
                } catch {
                    throw .invalidChange(error)
                }
                guard try share(&s, kind: kind, route: route, cause: cause, table: table, overrides: overrides, rollouts: rollouts,
                                local: local, retryIfStale: kind == .abort && attempt < 5) else { continue }
                if let rollouts { s.rollouts = rollouts }
                var details = ["override": override.summary]
                if local { details["local"] = "applied on this replica only; shared when the cluster store answers" }
                return commit(&s, table: table, base: s.base, overrides: overrides, kind: kind, cause: cause, route: route,
                              warnings: [], details: details)
            }
        }
    }

    /// Refuses a change based on a version that is no longer current (stale).
    private func checkVersion(_ s: State, _ ifVersion: UInt64?) throws(ControlError) {
        guard let ifVersion, ifVersion != s.serving.version else { return }
        let by = s.fleet.doc?.latest.map { " (version \($0.version): \($0.kind.rawValue)\($0.route.map { " of `\($0)`" } ?? "")"
            + "\($0.node.map { " by \($0)" } ?? ""))" } ?? ""
        throw .conflict("stale change refused: the routing table changed meanwhile (version \(s.serving.version) serving\(by), "
                        + "the change was decided on version \(ifVersion)); look at `sluice history` and decide again")
    }

    // MARK: Committing

    /// Publishes `table`, makes it current, adds it to the history, writes the state file and
    /// records the event. Caller holds the state lock.
    func commit(_ s: inout State, table: RoutingTable, base: RoutingTable, overrides: [String: RouteOverride],
                        kind: RoutingEventKind, cause: String, route: String?, warnings: [String],
                        details: [String: String], rolledBackTo: UInt64? = nil) -> ChangeResult {
        let old = s.serving
        let changed = TableDiff.describe(from: old, to: table)
        s.publish?(table)
        s.serving = table
        s.base = base
        s.overrides = overrides
        let time = ControlClock.rfc3339(unixNanos: clock())
        let entry = HistoryEntry(version: table.version, time: time, kind: kind, cause: cause, route: route, changed: changed,
                                 overrides: overrides, node: s.fleet.store?.node)
        s.history.append(VersionRecord(entry: entry, table: table, base: base, overrides: overrides))
        if s.history.count > historyLimit { s.history.removeFirst(s.history.count - historyLimit) }
        var warnings = warnings
        if let failure = persist(s) { warnings.append(failure) }
        var d = details
        d["changed"] = changed
        if let route { d["route"] = route }
        if let node = s.fleet.store?.node { d["node"] = d["node"] ?? node }
        if !warnings.isEmpty { d["warnings"] = warnings.joined(separator: "; ") }
        events.record(kind, oldVersion: old.version, newVersion: table.version, cause: cause, details: d)
        return ChangeResult(kind: kind, version: table.version, oldVersion: old.version, route: route, changed: changed,
                            split: route.flatMap { Self.splitText(route: $0, in: table) }, rolledBackTo: rolledBackTo,
                            override: route.flatMap { overrides[$0] }, warnings: warnings)
    }

    /// Writes the state file; returns a warning when it cannot.
    func persist(_ s: State) -> String? {
        guard let path = stateFile else { return nil }
        var splits: [String: String] = [:]
        for route in s.overrides.keys { splits[route] = Self.splitSignature(route, in: s.base) }
        let file = RuntimeStateFile(version: s.serving.version, updated: ControlClock.rfc3339(unixNanos: clock()),
                                    overrides: s.overrides, fileSplits: splits, rollouts: s.rollouts)
        do {
            try file.write(path: path)
            return nil
        } catch {
            return "runtime state not saved (a restart would lose this change): \(error.message)"
        }
    }

    // MARK: Helpers

    /// The changes that apply `overrides` to `table`, in route order.
    static func changes(_ overrides: [String: RouteOverride], in table: RoutingTable) -> [RouteChange] {
        table.routes.compactMap { route in overrides[route.name]?.change(route: route.name) }
    }

    /// Why `override` no longer fits `table` (nil when it does).
    static func misfit(_ override: RouteOverride, route: String, in table: RoutingTable) -> String? {
        do {
            _ = try table.applying([override.change(route: route)], version: table.version)
            return nil
        } catch {
            return error.description
        }
    }

    /// What identifies a route's split in the file: cohorts, upstreams, weights, baseline, e.g.
    /// `stable/stable/9500/split canary/canary/500/split baseline=stable`.
    static func splitSignature(_ route: String, in table: RoutingTable) -> String {
        guard let r = table.routeIndex(named: route) else { return "" }
        let rt = table.routes[r]
        let cohorts = rt.cohorts.map {
            "\($0.name)/\(table.upstreams[Int($0.upstream)].name)/\($0.weight)/\($0.inSplit ? "split" : "rules")"
        }
        return (cohorts + ["baseline=" + (rt.baseline >= 0 ? rt.cohorts[Int(rt.baseline)].name : "")]).joined(separator: " ")
    }

    /// `stable=90% canary=10%`: the route's split cohorts (and any cohort with weight).
    public static func splitText(route: String, in table: RoutingTable) -> String? {
        guard let r = table.routeIndex(named: route) else { return nil }
        let parts = table.routes[r].cohorts.filter { $0.inSplit || $0.weight > 0 }
            .map { "\($0.name)=\(CohortWeight.percentText($0.weight))%" }
        return parts.isEmpty ? nil : parts.joined(separator: " ")
    }

    /// FNV-1a 64 of the file's bytes (to skip notifications that did not change the content).
    static func contentHash(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 {
            h ^= UInt64(b)
            h &*= 0x100_0000_01b3
        }
        return h
    }
}
