/// An immutable, compiled routing table: one snapshot per config version, shared by all workers.
///
/// Everything `decide` walks is flat arrays of small trivial structs with integer indices and one
/// byte pool (header names and hosts lowercased at build time), so a decision allocates nothing
/// and retains nothing per condition. Build one with the control plane (`ConfigLoader`).
public final class RoutingTable: Sendable {
    /// The config version this table was built from.
    public let version: UInt64
    /// Upstream groups; the index is the upstream id used in decisions.
    public let upstreams: [UpstreamGroup]
    /// Routes in match order.
    public let routes: [Route]
    /// Direct responses of `respond` rules; the index is `RouteDecision.response`.
    public let responses: [DirectResponse]

    /// Per-route compiled plan, parallel to `routes`.
    let plans: [RoutePlan]
    /// Rules of all routes; a plan names its slice.
    let rules: [RulePlan]
    /// Conditions of all routes and rules; plans and rules name their slices.
    let matchers: [Matcher]
    /// Split bucket ranges of all routes.
    let splitRanges: [SplitRange]
    /// Upstream index of every cohort of every route (plan.cohortStart + cohort).
    let cohortUpstreams: [Int32]
    /// Byte strings referenced by matchers and sticky names.
    let bytePool: [UInt8]
    /// Lists of pool spans (custom method names).
    let spanPool: [ByteSpan]
    /// Networks of `source` matchers.
    let prefixes: [AddressPrefix]
    /// Compiled regexes of matchers.
    let regexes: [ByteRegex]
    /// Weight of every endpoint of every group, flattened in group order.
    let endpointWeights: [Int]
    /// Start of each group's endpoints in `endpointWeights`; one extra entry at the end.
    let groupEndpointStart: [Int32]
    /// True when some route that normalizes paths has a `path` or `path_prefix` condition (in
    /// its match or its rules): only then is a request's path normalized.
    let normalizesAnyPath: Bool
    /// Fault drills: route plans name a slice, rule plans an index.
    let faults: [FaultPlan]
    /// Live load and limits of the upstream groups (`UpstreamLoad.swift`), shared by all workers.
    public let load: UpstreamLoad
    /// Traffic mirrors (`Mirror/`), and the mirror of each route and each rule (-1: none).
    package let mirrorPlans: [MirrorPlan]
    let routeMirrors: [Int32]
    let ruleMirrors: [Int32]

    /// Compiles validated specs into a table. The control plane has checked names, weights and
    /// patterns; violated invariants here are programming errors (preconditions).
    package init(version: UInt64, upstreams: [UpstreamGroup], routes specs: [RouteSpec], loads: [UpstreamLoadSpec] = []) {
        var builder = Builder()
        var routes: [Route] = []
        var plans: [RoutePlan] = []
        var responses: [DirectResponse] = []
        var rules: [RulePlan] = []
        var splitRanges: [SplitRange] = []
        var cohortUpstreams: [Int32] = []
        var normalizesAnyPath = false
        var faults: [FaultPlan] = []
        var mirrors = MirrorPlan.Compiled()
        for spec in specs {
            let conditions = spec.match + spec.rules.flatMap(\.match)
            if spec.pathNormalization && conditions.contains(where: \.isPathCondition) { normalizesAnyPath = true }
            precondition(spec.cohorts.isEmpty || spec.cohorts.indices.contains(spec.baseline), "baseline out of range")
            let matchStart = builder.matchers.count
            for condition in spec.match { builder.add(condition) }
            let matchCount = builder.matchers.count - matchStart
            var compiledRules: [(start: Int, count: Int, action: RuleAction, fault: FaultSpec?)] = []
            for rule in spec.rules {
                let start = builder.matchers.count
                for condition in rule.match { builder.add(condition) }
                compiledRules.append((start, builder.matchers.count - start, rule.action, rule.fault))
            }
            let ruleStart = rules.count
            mirrors.add(route: routes.count, spec: spec)
            for r in compiledRules {
                switch r.action {
                case .cohort(let c):
                    precondition(spec.cohorts.indices.contains(c), "rule cohort out of range")
                    var fault: Int32 = -1
                    if var f = r.fault {
                        // Scoped to the rule's cohort: after an abort or switch points the rule
                        // elsewhere, its drill no longer fires (an abort never drills the baseline).
                        f.cohort = c
                        faults.append(builder.faultPlan(f, responses: &responses))
                        fault = Int32(faults.count - 1)
                    }
                    rules.append(RulePlan(matchStart: Int32(r.start), matchCount: Int32(r.count), cohort: Int32(c), response: -1,
                                          fault: fault))
                case .respond(let response):
                    rules.append(RulePlan(matchStart: Int32(r.start), matchCount: Int32(r.count), cohort: -1,
                                          response: Int32(responses.count), fault: -1))
                    responses.append(response)
                }
            }
            let faultStart = faults.count
            for f in spec.faults {
                precondition(f.cohort.map { spec.cohorts.indices.contains($0) } ?? true, "fault cohort out of range")
                faults.append(builder.faultPlan(f, responses: &responses))
            }
            let splitStart = splitRanges.count
            // A route without a split (a route-level `respond` whose rules forward to cohorts) has
            // only rule cohorts: no bucket ranges.
            if spec.cohorts.contains(where: \.inSplit) {
                let inSplit = spec.cohorts.map(\.inSplit)
                let weights = spec.cohorts.map(\.weight)
                precondition(zip(weights, inSplit).reduce(0) { $0 + ($1.1 ? $1.0 : 0) } == Int(StickyHash.buckets),
                             "weights must sum to 10000")
                splitRanges += CohortSplit.layout(weights: weights, inSplit: inSplit, baseline: spec.baseline)
            }
            let cohortStart = cohortUpstreams.count
            for c in spec.cohorts {
                precondition(upstreams.indices.contains(c.upstream), "cohort upstream out of range")
                cohortUpstreams.append(Int32(c.upstream))
            }
            let sticky: StickyMode
            switch spec.sticky {
            case .none: sticky = .none
            case .cookie(let name, let own, _):
                sticky = .cookie(builder.intern(Array(name.utf8)), assigned: builder.intern(Array(own.utf8)))
            case .header(let name, let own, _):
                sticky = .header(builder.intern(RoutingBytes.lowercased(Array(name.utf8))), assigned: builder.intern(Array(own.utf8)))
            case .assigned(let name, _): sticky = .assigned(builder.intern(Array(name.utf8)))
            }
            plans.append(RoutePlan(
                matchStart: Int32(matchStart), matchCount: Int32(matchCount),
                ruleStart: Int32(ruleStart), ruleCount: Int32(rules.count - ruleStart),
                splitStart: Int32(splitStart), splitCount: Int32(splitRanges.count - splitStart),
                cohortStart: Int32(cohortStart), sticky: sticky, normalizePath: spec.pathNormalization,
                faultStart: Int32(faultStart), faultCount: Int32(faults.count - faultStart)))
            routes.append(Route(
                name: spec.name,
                cohorts: spec.cohorts.map { Cohort(name: $0.name, upstream: Int32($0.upstream), weight: $0.weight, inSplit: $0.inSplit) },
                baseline: spec.cohorts.isEmpty ? -1 : Int32(spec.baseline),
                sticky: spec.sticky, cohortHeader: spec.cohortHeader, cohortResponseHeader: spec.cohortResponseHeader,
                rollout: spec.rollout, upgrade: spec.upgrade, compression: spec.compression,
                normalizesPath: spec.pathNormalization, forwardNormalizedPath: spec.forwardNormalizedPath))
            routes[routes.count - 1].retry = spec.retry
        }
        var weights: [Int] = []
        var starts: [Int32] = []
        for group in upstreams {
            precondition(!group.endpoints.isEmpty, "upstream \(group.name) has no endpoints")
            starts.append(Int32(weights.count))
            for e in group.endpoints {
                precondition(e.weight >= 1, "endpoint weight must be at least 1")
                weights.append(e.weight)
            }
        }
        starts.append(Int32(weights.count))

        self.version = version
        self.upstreams = upstreams
        self.routes = routes
        self.responses = responses
        self.plans = plans
        self.rules = rules
        self.matchers = builder.matchers
        self.splitRanges = splitRanges
        self.cohortUpstreams = cohortUpstreams
        self.bytePool = builder.pool
        self.spanPool = builder.spans
        self.prefixes = builder.prefixes
        self.regexes = builder.regexes
        self.endpointWeights = weights
        self.groupEndpointStart = starts
        self.normalizesAnyPath = normalizesAnyPath
        self.faults = faults
        self.load = UpstreamLoad(specs: upstreams.indices.map { $0 < loads.count ? loads[$0] : UpstreamLoadSpec() },
                                 endpoints: weights.count)
        self.mirrorPlans = mirrors.plans
        self.routeMirrors = mirrors.routeMirrors
        self.ruleMirrors = mirrors.ruleMirrors
    }

    /// A copy of `base` with a new version and, where given, new routes, plans, rules and split
    /// ranges (runtime changes: `RoutingTable+Runtime.swift`). Everything else is shared
    /// (copy-on-write arrays), so this costs a few retains.
    init(copying base: RoutingTable, version: UInt64, routes: [Route]? = nil, plans: [RoutePlan]? = nil,
         rules: [RulePlan]? = nil, splitRanges: [SplitRange]? = nil, responses: [DirectResponse]? = nil,
         faults: [FaultPlan]? = nil, bytePool: [UInt8]? = nil) {
        self.version = version
        self.upstreams = base.upstreams
        self.routes = routes ?? base.routes
        self.responses = responses ?? base.responses
        self.faults = faults ?? base.faults
        self.plans = plans ?? base.plans
        self.rules = rules ?? base.rules
        self.matchers = base.matchers
        self.splitRanges = splitRanges ?? base.splitRanges
        self.cohortUpstreams = base.cohortUpstreams
        self.bytePool = bytePool ?? base.bytePool
        self.spanPool = base.spanPool
        self.prefixes = base.prefixes
        self.regexes = base.regexes
        self.endpointWeights = base.endpointWeights
        self.groupEndpointStart = base.groupEndpointStart
        self.normalizesAnyPath = base.normalizesAnyPath
        self.load = base.load
        self.mirrorPlans = base.mirrorPlans
        self.routeMirrors = base.routeMirrors
        self.ruleMirrors = base.ruleMirrors
    }

    /// Decides what to do with one request. A pure function of (table, head, bytes, client,
    /// entropy, balancer): no clock, no randomness but `entropy`, no allocation (except rebuilding
    /// `balancer` once if it was made for another table).
    ///
    /// - Parameters:
    ///   - head: the parsed request head; its spans point into `bytes`.
    ///   - bytes: the buffer the head was parsed from.
    ///   - client: the client's address (for `source` matchers).
    ///   - entropy: a uniformly random 64-bit value, fresh per request (the per-request split
    ///     uses `entropy % 10000`; an assigned sticky key is `entropy` itself).
    ///   - balancer: the calling worker's round-robin state for this table.
    ///
    /// Path conditions of a route that normalizes paths see `PathNormalizer`'s form of the path.
    /// It is computed only when some route needs it and the path has `%`, `//` or `/.` in it, into
    /// a temporary buffer (on the stack for paths up to about 340 bytes); otherwise the raw bytes are matched.
    public func decide(head: RequestHead, bytes: UnsafeRawBufferPointer, client: SocketAddress, entropy: UInt64,
                       balancer: inout BalancerState) -> RouteDecision {
        var trace = NoTrace()
        return decide(head: head, bytes: bytes, client: client, entropy: entropy, balancer: &balancer, trace: &trace)
    }

    /// `decide`, telling `trace` every step (`sluice explain`; the data path's `NoTrace` records nothing).
    @inline(__always)
    func decide<Trace: RoutingTrace>(head: RequestHead, bytes: UnsafeRawBufferPointer, client: SocketAddress, entropy: UInt64,
                                     balancer: inout BalancerState, trace: inout Trace) -> RouteDecision {
        if !balancer.isBuilt(for: self) { balancer = BalancerState(table: self) }
        let rawPath = UnsafeRawBufferPointer(rebasing: bytes[Int(head.path.start)..<Int(head.path.start) + Int(head.path.count)])
        guard normalizesAnyPath && PathNormalizer.needsNormalization(rawPath) else {
            return decide(head: head, bytes: bytes, client: client, entropy: entropy, balancer: &balancer,
                          rawPath: rawPath, normalizedPath: rawPath, trace: &trace)
        }
        return withUnsafeTemporaryAllocation(byteCount: PathNormalizer.capacity(for: rawPath.count), alignment: 1) { scratch in
            let n = PathNormalizer.normalize(rawPath, into: scratch)
            return decide(head: head, bytes: bytes, client: client, entropy: entropy, balancer: &balancer,
                          rawPath: rawPath, normalizedPath: UnsafeRawBufferPointer(rebasing: scratch[0..<n]), trace: &trace)
        }
    }

    /// `decide` with both forms of the path at hand.
    @inline(__always)
    private func decide<Trace: RoutingTrace>(head: RequestHead, bytes: UnsafeRawBufferPointer, client: SocketAddress,
                                             entropy: UInt64, balancer: inout BalancerState, rawPath: UnsafeRawBufferPointer,
                                             normalizedPath: UnsafeRawBufferPointer, trace: inout Trace) -> RouteDecision {
        return bytePool.withUnsafeBytes { pool in
            var input = MatchInput(bytes: bytes, pool: pool, hostName: head.hostName(in: bytes), client: client, path: rawPath)
            var r = 0
            while r < plans.count {
                let plan = plans[r]
                input.path = plan.normalizePath ? normalizedPath : rawPath
                let failed = firstFailing(start: plan.matchStart, count: plan.matchCount, head: head, input: input)
                trace.route(r, failed: failed)
                guard failed < 0 else {
                    r += 1
                    continue
                }
                var decision: RouteDecision
                var ruleFault: Int32 = -1
                decided: do {
                    var i = Int(plan.ruleStart)
                    let rulesEnd = i + Int(plan.ruleCount)
                    while i < rulesEnd {
                        let rule = rules[i]
                        let ruleFailed = firstFailing(start: rule.matchStart, count: rule.matchCount, head: head, input: input)
                        trace.rule(i, failed: ruleFailed)
                        if ruleFailed < 0 {
                            if rule.cohort < 0 {
                                return RouteDecision(action: .respond, route: Int32(r), response: rule.response)
                            }
                            decision = forward(route: r, plan: plan, cohort: rule.cohort, entropy: entropy, balancer: &balancer)
                            decision.rule = Int32(i)
                            ruleFault = rule.fault
                            break decided
                        }
                        i += 1
                    }
                    if plan.splitCount == 0 { return RouteDecision(action: .notFound, route: Int32(r)) }
                    // The user's own key (cookie or header) when the route names one and it is present;
                    // otherwise Sluice's own cookie, read or assigned (and then set), so an anonymous
                    // visitor stays in one cohort too. `sticky: none` splits every request anew.
                    let own: ByteSpan
                    switch plan.sticky {
                    case .none:
                        let bucket = Int(entropy % StickyHash.buckets)
                        trace.split(.perRequest(bucket: bucket))
                        decision = forward(route: r, plan: plan, cohort: cohort(plan: plan, bucket: bucket), entropy: entropy, balancer: &balancer)
                        break decided
                    case .cookie(let name, let assigned):
                        if let v = head.cookieValue(named: slice(pool, name), in: bytes), v.count > 0 {
                            let bucket = StickyHash.bucket(slice(bytes, v))
                            trace.split(.userCookie(value: v, bucket: bucket))
                            decision = forward(route: r, plan: plan, cohort: cohort(plan: plan, bucket: bucket), entropy: entropy, balancer: &balancer)
                            break decided
                        }
                        own = assigned
                    case .header(let name, let assigned):
                        if let v = head.fieldValue(named: slice(pool, name), in: bytes), v.count > 0 {
                            let bucket = StickyHash.bucket(slice(bytes, v))
                            trace.split(.userHeader(value: v, bucket: bucket))
                            decision = forward(route: r, plan: plan, cohort: cohort(plan: plan, bucket: bucket), entropy: entropy, balancer: &balancer)
                            break decided
                        }
                        own = assigned
                    case .assigned(let name):
                        own = name
                    }
                    if let v = head.cookieValue(named: slice(pool, own), in: bytes), StickyHash.parseAssignedKey(slice(bytes, v)) != nil {
                        let bucket = StickyHash.bucket(slice(bytes, v))
                        trace.split(.assignedCookie(value: v, bucket: bucket))
                        decision = forward(route: r, plan: plan, cohort: cohort(plan: plan, bucket: bucket), entropy: entropy, balancer: &balancer)
                        break decided
                    }
                    let bucket = StickyHash.bucket(assignedKey: entropy)
                    trace.split(.assignedNew(key: entropy, bucket: bucket))
                    decision = forward(route: r, plan: plan, cohort: cohort(plan: plan, bucket: bucket), entropy: entropy, balancer: &balancer)
                    decision.setStickyCookie = true
                    decision.stickyKey = entropy
                }
                // Fault drills: only routes (or deciding rules) that have one pay for the check.
                if plan.faultCount > 0 || ruleFault >= 0 {
                    decision = applyFault(decision, plan: plan, ruleFault: ruleFault, head: head, bytes: bytes, pool: pool,
                                          entropy: entropy, trace: &trace)
                }
                return decision
            }
            return .notFound
        }
    }

    /// The cohort of route `route` that owns sticky bucket `bucket` (0..<10000); -1 when the
    /// route has no split. For tools and tests ("where would this key go?").
    package func cohort(route: Int, bucket: Int) -> Int32 {
        let plan = plans[route]
        return plan.splitCount == 0 ? -1 : cohort(plan: plan, bucket: bucket)
    }

    /// The cohort owning `bucket` in the plan's split.
    @inline(__always)
    func cohort(plan: RoutePlan, bucket: Int) -> Int32 {
        var i = Int(plan.splitStart)
        let end = i + Int(plan.splitCount)
        while i < end - 1 {
            if bucket < Int(splitRanges[i].end) { break }
            i += 1
        }
        return splitRanges[i].cohort
    }

    /// Another endpoint of `upstream` for a request whose connection failed before any byte was
    /// sent: the balancer's next pick not in `tried` (bit i set: endpoint i was tried; endpoints
    /// past 63 are never excluded). Nil when the group has no other endpoint.
    public func alternateEndpoint(upstream: Int32, tried: UInt64, balancer: inout BalancerState) -> Int32? {
        guard upstream >= 0, Int(upstream) < upstreams.count else { return nil }
        let count = upstreams[Int(upstream)].endpoints.count
        guard count > 1 else { return nil }
        if !balancer.isBuilt(for: self) { balancer = BalancerState(table: self) }
        // The available untried endpoint the round robin favours next, found without moving the
        // round robin: advancing it here would hand the next request's first try to the endpoint
        // that just failed (with two endpoints, every request would try the failing one first).
        if let e = balancer.peekAlternate(group: Int(upstream), in: self, tried: tried) { return e }
        var fallback: Int32? = nil
        for e in 0..<Int32(count) where e >= 64 || tried & (1 << UInt64(e)) == 0 {
            if balancer.isAvailable(flat: flatIndex(upstream: upstream, endpoint: e)) { return e }
            if fallback == nil { fallback = e }
        }
        return fallback
    }

    /// A forward decision to `cohort` of route `route`, picking the endpoint.
    @inline(__always)
    private func forward(route: Int, plan: RoutePlan, cohort: Int32, entropy: UInt64, balancer: inout BalancerState) -> RouteDecision {
        let upstream = cohortUpstreams[Int(plan.cohortStart) + Int(cohort)]
        let endpoint = pickEndpoint(upstream: upstream, entropy: entropy, balancer: &balancer)
        return RouteDecision(action: .forward, route: Int32(route), cohort: cohort, upstream: upstream, endpoint: endpoint)
    }

    /// An endpoint of `upstream` by the group's `balance` (round robin, or least request with
    /// `entropy` breaking ties).
    @inline(__always)
    func pickEndpoint(upstream: Int32, entropy: UInt64, balancer: inout BalancerState) -> Int32 {
        load.specs[Int(upstream)].balance == .leastRequest
            ? pickLeastRequest(group: Int(upstream), tieBreak: entropy >> 40, balancer: &balancer)
            : balancer.pick(group: Int(upstream), in: self)
    }
}

/// How a compiled route reads its sticky key; names are pool spans (header names lowercased).
enum StickyMode: Sendable {
    /// Per-request pick from entropy.
    case none
    /// Key from this cookie (name span); without it, as `.assigned` with the second span.
    case cookie(ByteSpan, assigned: ByteSpan)
    /// Key from this header (lowercased name span); without it, as `.assigned` with the second span.
    case header(ByteSpan, assigned: ByteSpan)
    /// Key from sluice's own cookie (name span); assigned when missing.
    case assigned(ByteSpan)
}

/// A route compiled to slices of the table's flat arrays.
struct RoutePlan: Sendable {
    /// The route's conditions: `matchers[matchStart..<matchStart+matchCount]`.
    var matchStart: Int32
    /// Number of route conditions.
    var matchCount: Int32
    /// The route's rules: `rules[ruleStart..<ruleStart+ruleCount]`.
    var ruleStart: Int32
    /// Number of rules.
    var ruleCount: Int32
    /// The split: `splitRanges[splitStart..<splitStart+splitCount]` (0 when the route has no cohorts).
    var splitStart: Int32
    /// Number of split ranges.
    var splitCount: Int32
    /// Offset of the route's cohorts in `cohortUpstreams`.
    var cohortStart: Int32
    /// Where the sticky key comes from.
    var sticky: StickyMode
    /// Path conditions see the normalized path.
    var normalizePath: Bool
    /// The route's and its cohorts' faults: `faults[faultStart..<faultStart+faultCount]`.
    var faultStart: Int32
    /// Number of faults.
    var faultCount: Int32
}

/// A rule compiled to a slice of matchers and an action (`cohort` ≥ 0 forwards, else `response`).
struct RulePlan: Sendable {
    /// The rule's conditions: `matchers[matchStart..<matchStart+matchCount]`.
    var matchStart: Int32
    /// Number of conditions.
    var matchCount: Int32
    /// Cohort to forward to, or -1 for a direct response.
    var cohort: Int32
    /// Index into `responses` when `cohort` is -1.
    var response: Int32
    /// Index into `faults` of the rule's fault drill, or -1.
    var fault: Int32
}

extension RoutingTable {
    /// Accumulates matchers and their side data while a table is compiled.
    struct Builder {
        var matchers: [Matcher] = []
        var pool: [UInt8] = []
        var spans: [ByteSpan] = []
        var prefixes: [AddressPrefix] = []
        var regexes: [ByteRegex] = []

        /// Appends `bytes` to the pool (reusing an identical earlier string) and returns its span.
        mutating func intern(_ bytes: [UInt8]) -> ByteSpan {
            if !bytes.isEmpty, let found = pool.indices.first(where: { pool[$0...].starts(with: bytes) }) {
                return ByteSpan(start: found, count: bytes.count)
            }
            let start = pool.count
            pool += bytes
            return ByteSpan(start: start, count: bytes.count)
        }

        /// Compiles a value test, interning its bytes.
        mutating func test(_ test: ValueTest) -> CompiledTest {
            switch test {
            case .equals(let s): return .equals(intern(Array(s.utf8)))
            case .prefix(let s): return .prefix(intern(Array(s.utf8)))
            case .regex(let r):
                regexes.append(r)
                return .regex(Int32(regexes.count - 1))
            case .present: return .present
            case .absent: return .absent
            }
        }

        /// Compiles and appends one condition.
        mutating func add(_ condition: MatchCondition) {
            switch condition {
            case .host(let h):
                matchers.append(.hostExact(intern(RoutingBytes.lowercased(Array(h.utf8)))))
            case .hostSuffix(let h):
                matchers.append(.hostSuffix(intern(RoutingBytes.lowercased(Array(("." + h).utf8)))))
            case .path(let p):
                matchers.append(.path(intern(Array(p.utf8))))
            case .pathPrefix(let p):
                matchers.append(.pathPrefix(intern(Array(p.utf8))))
            case .methods(let names):
                var mask: UInt16 = 0
                let customStart = spans.count
                for name in names {
                    if let m = RoutingTable.knownMethod(name) {
                        mask |= 1 << UInt16(m.rawValue)
                    } else {
                        spans.append(intern(Array(name.utf8)))
                    }
                }
                matchers.append(.methods(mask: mask, custom: ByteSpan(start: customStart, count: spans.count - customStart)))
            case .header(let name, let t):
                let n = intern(RoutingBytes.lowercased(Array(name.utf8)))
                matchers.append(.header(name: n, test: test(t)))
            case .cookie(let name, let t):
                let n = intern(Array(name.utf8))
                matchers.append(.cookie(name: n, test: test(t)))
            case .query(let name, let t):
                let n = intern(Array(name.utf8))
                matchers.append(.query(name: n, test: test(t)))
            case .source(let list):
                let start = prefixes.count
                prefixes += list
                matchers.append(.source(ByteSpan(start: start, count: list.count)))
            }
        }
    }

    /// The parser's method case for a standard method name (case-sensitive), nil for others.
    package static func knownMethod(_ name: String) -> HTTPMethod? {
        switch name {
        case "GET": return .get
        case "HEAD": return .head
        case "POST": return .post
        case "PUT": return .put
        case "DELETE": return .delete
        case "OPTIONS": return .options
        case "PATCH": return .patch
        case "TRACE": return .trace
        case "CONNECT": return .connect
        default: return nil
        }
    }
}
