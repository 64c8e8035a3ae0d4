import SluiceCore

/// A runtime change to one route that is in force on top of the config file: a split, a
/// blue/green switch or an abort. Kept by `RoutingController` and in the state file.
///
/// JSON: `{"kind": "split", "weights": [{"cohort": "stable", "weight": 90}, {"cohort": "canary", "weight": 10}],
/// "since": "...", "version": 7, "cause": "..."}`; `{"kind": "switch", "cohort": "green", ...}`;
/// `{"kind": "abort", "cohort": "stable", ...}` (weights in percent, in the route's cohort order;
/// `cohort` of an abort is the baseline at the time, for reading only).
public struct RouteOverride: Sendable, Equatable, Codable {
    /// What the override does.
    public enum Kind: String, Sendable, Codable, Equatable {
        /// Split weights set at runtime.
        case split
        /// All traffic to one cohort.
        case `switch`
        /// All traffic to the baseline.
        case abort
    }

    /// What the override does.
    public var kind: Kind
    /// The weights of a split, in the route's cohort order (0.01% units).
    public var weights: [CohortWeight]
    /// The cohort of a switch (and the baseline of an abort, for display).
    public var cohort: String?
    /// When it was set, RFC 3339 UTC.
    public var since: String
    /// The table version that introduced it.
    public var version: UInt64
    /// What set it (`admin API`, `sluice split`, ...).
    public var cause: String

    /// Creates an override.
    public init(kind: Kind, weights: [CohortWeight] = [], cohort: String? = nil, since: String, version: UInt64, cause: String) {
        self.kind = kind
        self.weights = weights
        self.cohort = cohort
        self.since = since
        self.version = version
        self.cause = cause
    }

    /// The table change this override makes to `route`.
    public func change(route: String) -> RouteChange {
        switch kind {
        case .split: return .split(route: route, weights: weights)
        case .switch: return .switchTo(route: route, cohort: cohort ?? "")
        case .abort: return .abort(route: route)
        }
    }

    /// One line for people: `split stable=90% canary=10%`, `switch to green`, `abort (all to stable)`.
    public var summary: String {
        switch kind {
        case .split: return "split " + weights.map { "\($0.cohort)=\(CohortWeight.percentText($0.weight))%" }.joined(separator: " ")
        case .switch: return "switch to \(cohort ?? "?")"
        case .abort: return cohort.map { "abort (all to \($0))" } ?? "abort"
        }
    }

    /// JSON keys.
    enum CodingKeys: String, CodingKey {
        case kind, weights, cohort, since, version, cause
    }

    /// One weight in JSON: `{"cohort": "stable", "weight": 90}` (weight in percent).
    private struct JSONWeight: Codable {
        var cohort: String
        var weight: Double
        /// JSON keys.
        enum CodingKeys: String, CodingKey { case cohort, weight }
    }

    /// A list index in a decoding error's path.
    private struct IndexKey: CodingKey {
        var intValue: Int?
        var stringValue: String { "\(intValue ?? 0)" }
        init(intValue: Int) { self.intValue = intValue }
        init?(stringValue: String) { nil }
    }

    /// Decodes; weights are a list of `{"cohort": NAME, "weight": PERCENT}` in cohort order.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(Kind.self, forKey: .kind)
        let list = try c.decodeIfPresent([JSONWeight].self, forKey: .weights) ?? []
        // Checked before the conversion to Int, which traps on 1e300 (a hand-edited or hostile file).
        for (i, w) in list.enumerated() where !(w.weight >= 0 && w.weight <= 100) {
            throw DecodingError.dataCorrupted(DecodingError.Context(
                codingPath: c.codingPath + [CodingKeys.weights, IndexKey(intValue: i), JSONWeight.CodingKeys.weight],
                debugDescription: "weight \(w.weight) of cohort `\(w.cohort)` is not a percentage from 0 to 100"))
        }
        weights = list.map { CohortWeight(cohort: $0.cohort, weight: Int(($0.weight * 100).rounded())) }
        cohort = try c.decodeIfPresent(String.self, forKey: .cohort)
        since = try c.decode(String.self, forKey: .since)
        version = try c.decode(UInt64.self, forKey: .version)
        cause = try c.decodeIfPresent(String.self, forKey: .cause) ?? ""
    }

    /// Encodes weights as a list of `{"cohort": NAME, "weight": PERCENT}`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        if kind == .split {
            try c.encode(weights.map { JSONWeight(cohort: $0.cohort, weight: Double($0.weight) / 100) }, forKey: .weights)
        }
        try c.encodeIfPresent(cohort, forKey: .cohort)
        try c.encode(since, forKey: .since)
        try c.encode(version, forKey: .version)
        try c.encode(cause, forKey: .cause)
    }
}

extension RouteOverride {
    /// The weights in the cohort order of `route` (a decoded override has them sorted by name).
    func ordered(for route: Route) -> RouteOverride {
        var copy = self
        copy.weights = route.cohorts.compactMap { c in weights.first { $0.cohort == c.name } }
            + weights.filter { w in !route.cohorts.contains { $0.name == w.cohort } }
        return copy
    }
}
