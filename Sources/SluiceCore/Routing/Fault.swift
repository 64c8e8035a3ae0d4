/// A fault drill (`fault:` in the config, `sluice fault` at runtime): a share of a route's,
/// cohort's or rule's requests answered with an injected error, or (with the data plane's
/// timer) delayed. Validated by the control plane; percentages are in 0.01% units (0...10000).
package struct FaultSpec: Sendable, Equatable {
    /// Only requests decided for this cohort (index into the route's cohorts); nil: any cohort.
    package var cohort: Int?
    /// Answer this status to `abortPercent` of the requests (nil: no abort).
    package var abortStatus: Int?
    /// Share of requests aborted, 0.01% units.
    package var abortPercent: Int
    /// Delay this long before forwarding (nanoseconds; nil: no delay).
    package var delayNanos: UInt64?
    /// Share of requests delayed, 0.01% units.
    package var delayPercent: Int
    /// Only requests carrying this header (any value); nil: every request.
    package var whenHeader: String?
    /// Injected responses count in the rollout gates' statistics as the cohort's own.
    package var countInGates: Bool
    /// Set by `sluice fault` (for explain and status), not the config.
    package var runtime: Bool

    /// Creates a fault.
    package init(cohort: Int? = nil, abortStatus: Int? = nil, abortPercent: Int = 0, delayNanos: UInt64? = nil,
                 delayPercent: Int = 0, whenHeader: String? = nil, countInGates: Bool = true, runtime: Bool = false) {
        self.cohort = cohort
        self.abortStatus = abortStatus
        self.abortPercent = abortPercent
        self.delayNanos = delayNanos
        self.delayPercent = delayPercent
        self.whenHeader = whenHeader
        self.countInGates = countInGates
        self.runtime = runtime
    }

    /// The body of an injected abort response.
    package static func abortBody(status: Int) -> [UInt8] {
        Array("fault injected by sluice: \(status)\n".utf8)
    }
}

/// Which fault a decision carries.
public enum FaultKind: UInt8, Sendable {
    /// No fault.
    case none
    /// The request is answered with an injected error (`RouteDecision.response`).
    case abort
    /// The request is forwarded after `RouteDecision.delayNanos`.
    case delay

    /// The metrics label (`kind="abort"`).
    public var label: String {
        switch self {
        case .none: return ""
        case .abort: return "abort"
        case .delay: return "delay"
        }
    }
}

/// A compiled fault (table arrays). Route plans name a slice of route/cohort faults; a rule plan
/// names its own fault.
struct FaultPlan: Sendable {
    /// Cohort index, or -1 for any.
    var cohort: Int32
    /// Lowercased header name in the byte pool; count 0: every request.
    var whenHeader: ByteSpan
    /// Abort share, 0.01% units (0: none).
    var abortPercent: Int32
    /// Index into `responses` of the injected response (-1: none).
    var abortResponse: Int32
    /// Delay share, 0.01% units (0: none).
    var delayPercent: Int32
    /// Delay in nanoseconds.
    var delayNanos: UInt64
    /// Count injected requests in the rollout gates.
    var countInGates: Bool
    /// From `sluice fault` (runtime), not the config.
    var runtime: Bool
    /// The spec it was compiled from (for `applyingFaults` and explain).
    var spec: FaultSpec
}

/// A runtime fault (`sluice fault ROUTE COHORT --abort 503 --percent 5 --for 2m`, or
/// `--delay 200ms --percent 10`, or both), by names.
public struct RuntimeFault: Sendable, Equatable, Codable {
    /// The route.
    public var route: String
    /// The cohort (nil: every cohort of the route).
    public var cohort: String?
    /// Injected status (nil: no abort).
    public var abortStatus: Int?
    /// Share of the cohort's requests aborted, 0.01% units.
    public var percent: Int
    /// Delay before forwarding, nanoseconds (nil: no delay).
    public var delayNanos: UInt64?
    /// Share of the cohort's requests delayed, 0.01% units.
    public var delayPercent: Int
    /// Only requests carrying this header.
    public var whenHeader: String?
    /// Count injected responses in the rollout gates.
    public var countInGates: Bool

    /// Creates a runtime fault.
    public init(route: String, cohort: String?, abortStatus: Int?, percent: Int, delayNanos: UInt64? = nil, delayPercent: Int = 0,
                whenHeader: String? = nil, countInGates: Bool = true) {
        self.route = route
        self.cohort = cohort
        self.abortStatus = abortStatus
        self.percent = percent
        self.delayNanos = delayNanos
        self.delayPercent = delayPercent
        self.whenHeader = whenHeader
        self.countInGates = countInGates
    }

    /// A delay-only drill (`--delay 200ms --percent 10`).
    public static func delay(route: String, cohort: String?, nanos: UInt64, percent: Int, whenHeader: String? = nil,
                             countInGates: Bool = true) -> RuntimeFault {
        RuntimeFault(route: route, cohort: cohort, abortStatus: nil, percent: 0, delayNanos: nanos, delayPercent: percent,
                     whenHeader: whenHeader, countInGates: countInGates)
    }

    /// What it injects, for people: `abort 503 for 5%, delay 200ms for 10%`.
    public var injects: String {
        var parts: [String] = []
        if let s = abortStatus { parts.append("abort \(s) for \(CohortWeight.percentText(percent))%") }
        if let d = delayNanos { parts.append("delay \(Self.durationText(d)) for \(CohortWeight.percentText(delayPercent))%") }
        return parts.joined(separator: ", ")
    }

    /// `200ms`, `1.5s`, `250us`.
    package static func durationText(_ nanos: UInt64) -> String {
        if nanos % 1_000_000_000 == 0 { return "\(nanos / 1_000_000_000)s" }
        if nanos % 1_000_000 == 0 { return "\(nanos / 1_000_000)ms" }
        if nanos % 1_000 == 0 { return "\(nanos / 1_000)us" }
        return "\(nanos)ns"
    }

    /// JSON keys.
    enum CodingKeys: String, CodingKey {
        case route, cohort, abortStatus = "abort_status", percent, delayNanos = "delay_nanos", delayPercent = "delay_percent",
             whenHeader = "when_header", countInGates = "count_in_gates"
    }

    /// Decodes; `delay_percent` may be absent (an abort-only drill).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        route = try c.decode(String.self, forKey: .route)
        cohort = try c.decodeIfPresent(String.self, forKey: .cohort)
        abortStatus = try c.decodeIfPresent(Int.self, forKey: .abortStatus)
        percent = try c.decodeIfPresent(Int.self, forKey: .percent) ?? 0
        delayNanos = try c.decodeIfPresent(UInt64.self, forKey: .delayNanos)
        delayPercent = try c.decodeIfPresent(Int.self, forKey: .delayPercent) ?? 0
        whenHeader = try c.decodeIfPresent(String.self, forKey: .whenHeader)
        countInGates = try c.decodeIfPresent(Bool.self, forKey: .countInGates) ?? true
    }
}

extension RoutingTable {
    /// The fault rolls of a request: independent of the split's `entropy % 10000` (different
    /// mixes of the same random value), each uniform over 0..<10000.
    @inline(__always)
    static func faultRolls(entropy: UInt64) -> (abort: Int32, delay: Int32) {
        (Int32(truncatingIfNeeded: StickyHash.fmix64(entropy ^ 0x6a09_e667_f3bc_c909) % StickyHash.buckets),
         Int32(truncatingIfNeeded: StickyHash.fmix64(entropy ^ 0xbb67_ae85_84ca_a73b) % StickyHash.buckets))
    }

    /// `decision` (a forward of route `plan`'s request) with the first applicable fault applied:
    /// the deciding rule's fault, else the first route fault whose cohort and header conditions
    /// hold (runtime faults come first). An abort turns it into a direct response that keeps the
    /// route and cohort (for metrics and logs); a delay keeps forwarding. Not inlined: only
    /// routes with faults call it, and `decide` stays small.
    @inline(never)
    func applyFault<Trace: RoutingTrace>(_ decision: RouteDecision, plan: RoutePlan, ruleFault: Int32, head: RequestHead,
                                         bytes: UnsafeRawBufferPointer, pool: UnsafeRawBufferPointer, entropy: UInt64,
                                         trace: inout Trace) -> RouteDecision {
        var chosen = -1
        if ruleFault >= 0, applies(faults[Int(ruleFault)], cohort: decision.cohort, head: head, bytes: bytes, pool: pool) {
            chosen = Int(ruleFault)
        } else {
            var i = Int(plan.faultStart)
            let end = i + Int(plan.faultCount)
            while i < end {
                if applies(faults[i], cohort: decision.cohort, head: head, bytes: bytes, pool: pool) {
                    chosen = i
                    break
                }
                i += 1
            }
        }
        guard chosen >= 0 else { return decision }
        let f = faults[chosen]
        let rolls = Self.faultRolls(entropy: entropy)
        var d = decision
        if rolls.abort < f.abortPercent {
            // Direct responses carry no Set-Cookie in the data path: an anonymous visitor aborted
            // by a drill gets a key on a later request.
            d = RouteDecision(action: .respond, route: decision.route, cohort: decision.cohort, response: f.abortResponse)
            d.fault = .abort
        } else if rolls.delay < f.delayPercent {
            d.fault = .delay
            d.delayNanos = f.delayNanos
        }
        d.faultOutsideGates = d.fault != .none && !f.countInGates
        trace.fault(chosen, abortRoll: Int(rolls.abort), delayRoll: Int(rolls.delay))
        return d
    }

    /// True when fault `f` covers a request decided for `cohort`.
    @inline(__always)
    private func applies(_ f: FaultPlan, cohort: Int32, head: RequestHead, bytes: UnsafeRawBufferPointer,
                         pool: UnsafeRawBufferPointer) -> Bool {
        guard f.cohort < 0 || f.cohort == cohort else { return false }
        guard f.whenHeader.count > 0 else { return true }
        return head.fieldIndex(named: slice(pool, f.whenHeader), in: bytes) >= 0
    }

    /// A copy of this table (same version) with `runtime` faults in force on top of the config's:
    /// each route's runtime faults are tried before its configured ones. Unknown routes or
    /// cohorts are skipped (the control plane validated them against the table it had).
    public func applyingFaults(_ runtime: [RuntimeFault]) -> RoutingTable {
        var newFaults: [FaultPlan] = []
        var newPlans = plans
        var newResponses = responses
        var builder = Builder()
        builder.pool = bytePool
        for r in plans.indices {
            let plan = plans[r]
            let start = newFaults.count
            for f in runtime where f.route == routes[r].name {
                var cohort: Int?
                if let name = f.cohort {
                    guard let c = routes[r].cohorts.firstIndex(where: { $0.name == name }) else { continue }
                    cohort = c
                }
                let spec = FaultSpec(cohort: cohort, abortStatus: f.abortStatus, abortPercent: f.abortStatus == nil ? 0 : f.percent,
                                     delayNanos: f.delayNanos, delayPercent: f.delayNanos == nil ? 0 : f.delayPercent,
                                     whenHeader: f.whenHeader, countInGates: f.countInGates, runtime: true)
                newFaults.append(builder.faultPlan(spec, responses: &newResponses))
            }
            for i in Int(plan.faultStart)..<Int(plan.faultStart + plan.faultCount) where !faults[i].runtime {
                newFaults.append(faults[i])
            }
            newPlans[r].faultStart = Int32(start)
            newPlans[r].faultCount = Int32(newFaults.count - start)
        }
        // Rule faults are kept (at the end; rules refer to them by index).
        var newRules = rules
        for i in newRules.indices where newRules[i].fault >= 0 {
            newFaults.append(faults[Int(newRules[i].fault)])
            newRules[i].fault = Int32(newFaults.count - 1)
        }
        return RoutingTable(copying: self, version: version, plans: newPlans, rules: newRules, responses: newResponses,
                            faults: newFaults, bytePool: builder.pool)
    }

    /// The faults of route `route` in the order they are tried (runtime first), and the fault of
    /// each of its rules (nil where none): for status and explain.
    package func faultSpecs(route: Int) -> (route: [FaultSpec], rules: [FaultSpec?]) {
        let plan = plans[route]
        let routeFaults = faults[Int(plan.faultStart)..<Int(plan.faultStart + plan.faultCount)].map(\.spec)
        let ruleFaults = rules[Int(plan.ruleStart)..<Int(plan.ruleStart + plan.ruleCount)].map { $0.fault >= 0 ? faults[Int($0.fault)].spec : nil }
        return (routeFaults, ruleFaults)
    }
}

extension RoutingTable.Builder {
    /// Compiles a fault, appending its injected response to `responses`.
    mutating func faultPlan(_ f: FaultSpec, responses: inout [DirectResponse]) -> FaultPlan {
        var response: Int32 = -1
        if let status = f.abortStatus {
            response = Int32(responses.count)
            responses.append(DirectResponse(status: status, body: FaultSpec.abortBody(status: status)))
        }
        let header = f.whenHeader.map { intern(RoutingBytes.lowercased(Array($0.utf8))) } ?? ByteSpan(start: 0, count: 0)
        return FaultPlan(cohort: Int32(f.cohort ?? -1), whenHeader: header,
                         abortPercent: f.abortStatus == nil ? 0 : Int32(f.abortPercent), abortResponse: response,
                         delayPercent: f.delayNanos == nil ? 0 : Int32(f.delayPercent), delayNanos: f.delayNanos ?? 0,
                         countInGates: f.countInGates, runtime: f.runtime, spec: f)
    }
}
