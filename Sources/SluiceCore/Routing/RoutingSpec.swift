/// Validated input from which a `RoutingTable` is compiled. The control plane checks names,
/// weights and patterns (with line numbers) before it builds one of these; the builder only
/// asserts invariants.
package struct RouteSpec: Sendable {
    /// Route name.
    package var name: String
    /// Conditions the request must all satisfy for the route to apply (empty: every request).
    package var match: [MatchCondition]
    /// Cohorts; the weights sum to 10000. Empty only when the last rule answers every request.
    package var cohorts: [CohortSpec]
    /// Index into `cohorts` of the baseline (-1 when there are no cohorts).
    package var baseline: Int
    /// How requests stick to a cohort.
    package var sticky: StickyPolicy
    /// Rules tried in order before the split; the first that matches decides.
    package var rules: [RuleSpec]
    /// Name of the cohort request header (e.g. `X-Sluice-Cohort`).
    package var cohortHeader: String
    /// Also send the cohort header in responses.
    package var cohortResponseHeader: Bool
    /// The automated canary rollout (`rollout:`), if configured.
    package var rollout: RolloutSpec?
    /// Protocols a client may switch to through this route (`upgrade:`, lowercased; default websocket).
    package var upgrade: [String] = ["websocket"]
    /// Response compression (`compression:`), nil when off.
    package var compression: CompressionSpec?
    /// Retries and fallback (`retries:`, `fallback_to_baseline:`), nil when neither is set.
    package var retry: RetrySpec?
    /// The route's (and its rules') `path` and `path_prefix` conditions see the normalized path
    /// (`PathNormalizer`); false: the raw bytes the client sent (`path_normalization: off`).
    package var pathNormalization: Bool
    /// The upstream is sent the normalized path instead of the client's (`forward_normalized_path`).
    package var forwardNormalizedPath: Bool
    /// Fault drills of the route or of one of its cohorts (`fault:`), tried in order.
    package var faults: [FaultSpec] = []
    /// Traffic mirroring of the route's forwarded requests (rules may have their own).
    package var mirror: MirrorSpec?

    /// Creates a route spec.
    package init(name: String, match: [MatchCondition] = [], cohorts: [CohortSpec], baseline: Int = 0,
                 sticky: StickyPolicy = .assigned(cookie: StickyPolicy.defaultCookieName, maxAge: nil),
                 rules: [RuleSpec] = [], cohortHeader: String = "X-Sluice-Cohort", cohortResponseHeader: Bool = false,
                 rollout: RolloutSpec? = nil, pathNormalization: Bool = true, forwardNormalizedPath: Bool = false) {
        self.name = name
        self.match = match
        self.cohorts = cohorts
        self.baseline = baseline
        self.sticky = sticky
        self.rules = rules
        self.cohortHeader = cohortHeader
        self.cohortResponseHeader = cohortResponseHeader
        self.rollout = rollout
        self.pathNormalization = pathNormalization
        self.forwardNormalizedPath = forwardNormalizedPath
    }
}

/// One cohort of a route spec.
package struct CohortSpec: Sendable {
    /// Cohort name.
    package var name: String
    /// Index into the table's upstreams.
    package var upstream: Int
    /// Weight in 0.01% units.
    package var weight: Int
    /// True when the cohort is listed in the split (it then owns a lane of the bucket layout,
    /// even at weight 0); false for cohorts only rules send traffic to.
    package var inSplit: Bool

    /// Creates a cohort spec.
    package init(name: String, upstream: Int, weight: Int, inSplit: Bool = true) {
        self.name = name
        self.upstream = upstream
        self.weight = weight
        self.inSplit = inSplit
    }
}

/// One rule: conditions and what to do when they all hold.
package struct RuleSpec: Sendable {
    /// Conditions (empty: every request).
    package var match: [MatchCondition]
    /// What the rule does.
    package var action: RuleAction
    /// A fault drill for the requests this rule forwards.
    package var fault: FaultSpec?
    /// Traffic mirroring of the requests this rule forwards (instead of the route's).
    package var mirror: MirrorSpec?

    /// Creates a rule spec.
    package init(match: [MatchCondition], action: RuleAction, fault: FaultSpec? = nil) {
        self.match = match
        self.action = action
        self.fault = fault
    }
}

/// What a matching rule does.
package enum RuleAction: Sendable {
    /// Forward to this cohort (index into the route's cohorts).
    case cohort(Int)
    /// Answer directly.
    case respond(DirectResponse)
}

/// One condition on a request.
package enum MatchCondition: Sendable {
    /// Host equals this name (ASCII case-insensitive, port and trailing dot ignored).
    case host(String)
    /// Host ends with `.suffix` and has at least one more label (`*.example.com`; give `example.com`).
    case hostSuffix(String)
    /// Path (normalized unless the route says otherwise) starts with these bytes.
    case pathPrefix(String)
    /// Path (normalized unless the route says otherwise) equals these bytes.
    case path(String)
    /// Method is one of these (case-sensitive, as HTTP methods are).
    case methods([String])
    /// A header field (name case-insensitive) passes a test; with several fields of that name,
    /// any one passing is enough (`absent`: none present).
    case header(name: String, test: ValueTest)
    /// A cookie (name case-sensitive) passes a test.
    case cookie(name: String, test: ValueTest)
    /// A query parameter (name case-sensitive, not percent-decoded) passes a test.
    case query(name: String, test: ValueTest)
    /// The client address lies in one of these networks.
    case source([AddressPrefix])
}

/// A test on a header, cookie or query value.
package enum ValueTest: Sendable {
    /// Equals these bytes exactly.
    case equals(String)
    /// Starts with these bytes.
    case prefix(String)
    /// The regex matches somewhere in the value.
    case regex(ByteRegex)
    /// The field is present (any value, even empty).
    case present
    /// The field is absent.
    case absent
}

extension MatchCondition {
    /// True for `path` and `path_prefix` conditions.
    package var isPathCondition: Bool {
        switch self {
        case .path, .pathPrefix: return true
        default: return false
        }
    }
}
