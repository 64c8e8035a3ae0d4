#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SluiceCore

/// The fleet's routing state, one JSON document at `PREFIX/state` in etcd: the version counter,
/// the runtime overrides in force and the recent versions, each with the replica that made it.
///
/// Every change is a transaction conditioned on the document's `mod_revision` the change was
/// based on, so two replicas can never overwrite each other's change unseen.
public struct FleetRouting: Sendable, Equatable, Codable {
    /// Layout version (1).
    public var format: Int = 1
    /// The fleet's table version (each change takes the next one).
    public var version: UInt64
    /// Overrides in force, by route.
    public var overrides: [String: RouteOverride]
    /// Recent versions, oldest first (the last 50), each naming its replica.
    public var history: [HistoryEntry]
    /// The replica that made the latest change.
    public var node: String
    /// When the latest change was made, RFC 3339 UTC.
    public var updated: String

    /// Creates a document.
    public init(version: UInt64, overrides: [String: RouteOverride], history: [HistoryEntry], node: String, updated: String) {
        self.version = version
        self.overrides = overrides
        self.history = history
        self.node = node
        self.updated = updated
    }

    /// The latest history entry (what the latest change did).
    public var latest: HistoryEntry? { history.last }
}

/// The fleet's rollouts, at `PREFIX/rollouts`: each route's rollout snapshot (state, step, time
/// spent at the step), written by the route's leader with every evaluation and by any replica
/// that runs an operator's rollout command.
public struct FleetRollouts: Sendable, Equatable, Codable {
    /// Snapshots by route.
    public var rollouts: [String: RolloutSnapshot]
    /// The replica that wrote them.
    public var node: String

    /// Creates a document.
    public init(rollouts: [String: RolloutSnapshot], node: String) {
        self.rollouts = rollouts
        self.node = node
    }
}

/// The fleet's routing file, at `PREFIX/file`: the hash of the routing part of the config the
/// last replica started or reloaded with (a replica whose file differs says so).
public struct FleetFile: Sendable, Equatable, Codable {
    /// `RoutingTable` fingerprint (hex).
    public var hash: String
    /// The replica that wrote it.
    public var node: String
    /// When, RFC 3339 UTC.
    public var time: String
}

/// One replica's entry at `PREFIX/nodes/NODE`, bound to its lease (gone when it dies).
public struct FleetMember: Sendable, Equatable, Codable {
    /// Its name.
    public var node: String
    /// Its routing file's fingerprint.
    public var fileHash: String
    /// When it joined, RFC 3339 UTC.
    public var since: String

    enum CodingKeys: String, CodingKey {
        case node, fileHash = "file_hash", since
    }
}

/// One replica's cumulative counters of the routes with a rollout, at `PREFIX/stats/NODE`,
/// bound to its lease and rewritten every interval; the rollout leaders sum them.
public struct FleetCounters: Sendable, Equatable, Codable {
    /// One (route, cohort) series.
    public struct Series: Sendable, Equatable, Codable {
        /// Route name.
        public var route: String
        /// Cohort name.
        public var cohort: String
        /// Requests answered.
        public var requests: UInt64
        /// 5xx answers.
        public var errors: UInt64
        /// Upstream failures.
        public var upstreamErrors: UInt64
        /// Non-zero latency buckets (`LatencyScale`) as [index, count] pairs.
        public var latency: [[UInt64]]

        /// Creates a series.
        public init(route: String, cohort: String, requests: UInt64, errors: UInt64, upstreamErrors: UInt64, latency: [[UInt64]]) {
            self.route = route
            self.cohort = cohort
            self.requests = requests
            self.errors = errors
            self.upstreamErrors = upstreamErrors
            self.latency = latency
        }

        enum CodingKeys: String, CodingKey {
            case route, cohort, requests, errors, upstreamErrors = "upstream_errors", latency
        }
    }

    /// The replica.
    public var node: String
    /// Its process start (a new value means its counters restarted from zero).
    public var incarnation: String
    /// The series.
    public var series: [Series]

    /// Creates a report.
    public init(node: String, incarnation: String, series: [Series]) {
        self.node = node
        self.incarnation = incarnation
        self.series = series
    }
}

/// JSON coding of the fleet documents.
enum FleetJSON {
    /// Encodes with sorted keys.
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? Array(encoder.encode(value))) ?? Array("{}".utf8)
    }

    /// Decodes, or returns why not.
    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) -> Result<T, AdminError> {
        do {
            return .success(try JSONDecoder().decode(T.self, from: Data(bytes)))
        } catch {
            return .failure(AdminError("not a \(T.self) document: \(RoutingController.describe(error))"))
        }
    }
}
