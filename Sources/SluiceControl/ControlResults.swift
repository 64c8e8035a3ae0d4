import SluiceCore

/// What one routing change did: the admin API's answer to a reload, split, switch, abort,
/// clear or rollback, and what the CLI prints.
public struct ChangeResult: Sendable, Codable, Equatable {
    /// Kind of change (`reload`, `split`, `switch`, `abort`, `clear`, `rollback`).
    public var kind: RoutingEventKind
    /// The table version now serving.
    public var version: UInt64
    /// The version that served before.
    public var oldVersion: UInt64
    /// The route changed (nil for a reload or rollback).
    public var route: String?
    /// One line: what changed from the old table to the new one.
    public var changed: String
    /// The route's split now, e.g. `stable=90% canary=10%` (route changes only).
    public var split: String?
    /// For a rollback: the version whose table was published again.
    public var rolledBackTo: UInt64?
    /// For a route change: the route's runtime override now in force (nil after `clear`).
    public var override: RouteOverride?
    /// Things the caller should know (settings that need a restart, overrides dropped, the
    /// state file could not be written).
    public var warnings: [String]

    /// Creates a result.
    public init(kind: RoutingEventKind, version: UInt64, oldVersion: UInt64, route: String? = nil, changed: String,
                split: String? = nil, rolledBackTo: UInt64? = nil, override: RouteOverride? = nil, warnings: [String] = []) {
        self.kind = kind
        self.version = version
        self.oldVersion = oldVersion
        self.route = route
        self.changed = changed
        self.split = split
        self.rolledBackTo = rolledBackTo
        self.override = override
        self.warnings = warnings
    }

    /// JSON keys (snake case).
    enum CodingKeys: String, CodingKey {
        case kind, version, oldVersion = "old_version", route, changed, split, rolledBackTo = "rolled_back_to", override, warnings
    }
}

/// One table version in the history (`GET /admin/history`, `sluice history`).
public struct HistoryEntry: Sendable, Codable, Equatable {
    /// Table version.
    public var version: UInt64
    /// When it started serving, RFC 3339 UTC.
    public var time: String
    /// What made it (`start`, `reload`, `split`, `switch`, `abort`, `clear`, `rollback`).
    public var kind: RoutingEventKind
    /// Who or what asked for it (`SIGHUP`, `config file changed`, `sluice split (CLI)`, ...).
    public var cause: String
    /// The route changed, for route changes.
    public var route: String?
    /// What changed from the version before it.
    public var changed: String
    /// Runtime overrides in force in this version, by route.
    public var overrides: [String: RouteOverride]
    /// With `cluster:`: the replica that made the change (nil on a single node).
    public var node: String?

    /// Creates an entry.
    public init(version: UInt64, time: String, kind: RoutingEventKind, cause: String, route: String?, changed: String,
                overrides: [String: RouteOverride], node: String? = nil) {
        self.version = version
        self.time = time
        self.kind = kind
        self.cause = cause
        self.route = route
        self.changed = changed
        self.overrides = overrides
        self.node = node
    }
}

/// The body of `GET /admin/history`.
public struct HistoryReport: Sendable, Codable, Equatable {
    /// The version serving now.
    public var currentVersion: UInt64
    /// Recent versions, oldest first (the last 50).
    public var versions: [HistoryEntry]
    /// Runtime overrides in force now, by route.
    public var overrides: [String: RouteOverride]

    /// Creates a report.
    public init(currentVersion: UInt64, versions: [HistoryEntry], overrides: [String: RouteOverride]) {
        self.currentVersion = currentVersion
        self.versions = versions
        self.overrides = overrides
    }

    /// JSON keys (snake case).
    enum CodingKeys: String, CodingKey {
        case currentVersion = "current_version", versions, overrides
    }
}

/// The JSON body of a failed control request: `{"error": ..., "status": ..., "diagnostics": [...], "version": N}`.
public struct ControlErrorBody: Sendable, Codable, Equatable {
    /// What is wrong, one line.
    public var error: String
    /// HTTP status.
    public var status: Int
    /// For a rejected config: every problem, `file:line:column: key: message` (with hint lines).
    public var diagnostics: [String]?
    /// The version still serving.
    public var version: UInt64?
    /// For a refused rollback or undo: the non-baseline cohorts it would send more traffic to.
    public var raises: [ExposureIncrease]?

    /// Creates a body.
    public init(error: String, status: Int, diagnostics: [String]? = nil, version: UInt64? = nil) {
        self.error = error
        self.status = status
        self.diagnostics = diagnostics
        self.version = version
    }
}

/// Why a routing change was refused. Nothing was published; the serving table is unchanged.
public enum ControlError: Error, Sendable, CustomStringConvertible {
    /// The config file is invalid (every problem listed); `servingVersion` keeps serving.
    case invalidConfig(ConfigError, servingVersion: UInt64)
    /// The runtime change does not fit the table (unknown route or cohort, weights).
    case invalidChange(RoutingChangeError)
    /// `rollback --to` a version that is not in the history.
    case unknownVersion(UInt64, available: [UInt64])
    /// `rollback --to` the version serving now.
    case alreadyServing(UInt64)
    /// `rollback` with no earlier version in the history.
    case nothingToRollBack(UInt64)
    /// `clear` on a route without a runtime override.
    case noOverride(route: String, inForce: [String])
    /// A reload without a config file (e.g. `sluice demo`).
    case noConfigFile
    /// The state file exists but cannot be used.
    case stateFile(String)
    /// A malformed admin request.
    case badRequest(String)
    /// The request does not fit the current state (a rollout command that does not apply, a
    /// route without a rollout, a change decided on a table that was replaced meanwhile).
    case conflict(String)
    /// With `cluster:`: the shared state store (etcd) cannot be reached, so the change cannot be
    /// shared with the other replicas and is refused (`sluice abort --local` still works), or it
    /// did not confirm the write in time. The text says which.
    case clusterUnavailable(String)
    /// A rollback or undo to version `target` would raise these non-baseline cohorts' traffic
    /// (`changed`: the whole change it would make); refused without `force`.
    case unsafeRollback(target: UInt64, increases: [ExposureIncrease], changed: String)

    /// The HTTP status the admin API answers with.
    public var status: Int {
        switch self {
        case .invalidConfig: return 422
        case .invalidChange, .unknownVersion, .badRequest: return 400
        case .alreadyServing, .nothingToRollBack, .noOverride, .noConfigFile, .conflict, .unsafeRollback: return 409
        case .stateFile: return 500
        case .clusterUnavailable: return 503
        }
    }

    /// One line for people.
    public var description: String {
        switch self {
        case .invalidConfig(let error, let version):
            let n = error.diagnostics.count
            return "config rejected (\(n) problem\(n == 1 ? "" : "s")), still serving version \(version)"
        case .invalidChange(let error):
            return error.description
        case .unknownVersion(let v, let available):
            let list = available.map(String.init).joined(separator: ", ")
            return "version \(v) is not in the history (available: \(list))"
        case .alreadyServing(let v):
            return "version \(v) is the version serving now"
        case .nothingToRollBack(let v):
            return "nothing to roll back to: version \(v) is the only one in the history"
        case .noOverride(let route, let inForce):
            return "route `\(route)` has no runtime override"
                + (inForce.isEmpty ? " (none is in force)" : " (overrides in force: \(inForce.joined(separator: ", ")))")
        case .noConfigFile:
            return "this sluice runs without a config file (nothing to reload)"
        case .stateFile(let message):
            return message
        case .badRequest(let message), .conflict(let message):
            return message
        case .clusterUnavailable(let message):
            return message
        case .unsafeRollback(let target, let increases, let changed):
            return Self.unsafeRollbackText(target: target, increases: increases, changed: changed)
        }
    }

    /// The JSON error body.
    public var body: ControlErrorBody {
        switch self {
        case .invalidConfig(let error, let version):
            return ControlErrorBody(error: description, status: status, diagnostics: error.diagnostics.map(\.description),
                                    version: version)
        case .unsafeRollback(_, let increases, _):
            var body = ControlErrorBody(error: description, status: status)
            body.raises = increases
            return body
        default:
            return ControlErrorBody(error: description, status: status)
        }
    }
}

/// What a rollout command did (`POST /admin/routes/{route}/rollout/{command}`, `sluice rollout start|...`).
public struct RolloutCommandResult: Sendable, Codable, Equatable {
    /// The route.
    public var route: String
    /// The command: `start`, `pause`, `resume`, `promote` or `abort`.
    public var command: String
    /// The decision: `started at step 1 (10%) of 4 steps`, `paused by operator at step 2 (25%), 1.2s of 3s spent`.
    public var decision: String
    /// The rollout after the command.
    public var status: RolloutStatus
    /// The routing change it made (nil when the split stayed as it was).
    public var change: ChangeResult?

    /// Creates a result.
    public init(route: String, command: String, decision: String, status: RolloutStatus, change: ChangeResult?) {
        self.route = route
        self.command = command
        self.decision = decision
        self.status = status
        self.change = change
    }

    /// The one line the CLI prints: `web: started at step 1 (10%) of 4 steps (version 3)`.
    public var line: String {
        "\(route): \(decision)" + (change.map { " (split \($0.split ?? "?"), version \($0.version))" } ?? "")
    }
}
