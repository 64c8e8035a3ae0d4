/// One `decide` call with its steps recorded: what `sluice explain` shows. Built by
/// `RoutingTable.walk`, which runs `decide` itself (with a recording trace), so an explanation
/// cannot disagree with what the data path does for the same request and entropy.
public struct RoutingWalk: Sendable, Equatable {
    /// The decision, exactly as `decide` returns it.
    public var decision: RouteDecision
    /// Routes whose conditions were evaluated, in order: every one before the match failed.
    public var routes: [ConditionCheck]
    /// Rules of the matched route that were evaluated, in order (indices within the route).
    public var rules: [ConditionCheck]
    /// How the split chose the cohort; nil when a rule decided, or no route matched.
    public var split: SplitStep?
    /// The fault drill that covered the request, if any.
    public var fault: FaultCheck?
}

/// A fault drill that covered a request, and its rolls.
public struct FaultCheck: Sendable, Equatable {
    /// The fault.
    package var spec: FaultSpec
    /// The abort roll (0..<10000): aborted when below the abort share.
    public var abortRoll: Int
    /// The delay roll (0..<10000): delayed when below the delay share (and not aborted).
    public var delayRoll: Int
}

/// One route's or rule's conditions evaluated.
public struct ConditionCheck: Sendable, Equatable {
    /// The route index (for routes) or the rule's index within its route (for rules).
    public var index: Int
    /// Index of the first condition (within the route's or rule's `match`) that did not hold;
    /// -1 when all held.
    public var failedCondition: Int

    /// Creates a check.
    public init(index: Int, failedCondition: Int) {
        self.index = index
        self.failedCondition = failedCondition
    }
}

/// Records `decide`'s steps in table indices.
private struct WalkRecorder: RoutingTrace {
    let table: RoutingTable
    var routes: [ConditionCheck] = []
    var rules: [ConditionCheck] = []
    var split: SplitStep?
    var fault: FaultCheck?

    mutating func fault(_ fault: Int, abortRoll: Int, delayRoll: Int) {
        self.fault = FaultCheck(spec: table.faults[fault].spec, abortRoll: abortRoll, delayRoll: delayRoll)
    }

    mutating func route(_ route: Int, failed: Int) {
        let start = Int(table.plans[route].matchStart)
        routes.append(ConditionCheck(index: route, failedCondition: failed < 0 ? -1 : failed - start))
    }

    mutating func rule(_ rule: Int, failed: Int) {
        let plan = table.plans[routes.last!.index]
        let start = Int(table.rules[rule].matchStart)
        rules.append(ConditionCheck(index: rule - Int(plan.ruleStart), failedCondition: failed < 0 ? -1 : failed - start))
    }

    mutating func split(_ step: SplitStep) { split = step }
}

extension RoutingTable {
    /// Runs `decide` on one request and returns the decision with every step it took.
    /// Same arguments and same result as `decide` (the balancer advances the same way).
    public func walk(head: RequestHead, bytes: UnsafeRawBufferPointer, client: SocketAddress, entropy: UInt64,
                     balancer: inout BalancerState) -> RoutingWalk {
        var recorder = WalkRecorder(table: self)
        let decision = decide(head: head, bytes: bytes, client: client, entropy: entropy, balancer: &balancer, trace: &recorder)
        return RoutingWalk(decision: decision, routes: recorder.routes, rules: recorder.rules, split: recorder.split,
                           fault: recorder.fault)
    }

    /// Number of conditions of route `route` (its `match:`).
    public func conditionCount(route: Int) -> Int { Int(plans[route].matchCount) }

    /// Number of rules of route `route`.
    public func ruleCount(route: Int) -> Int { Int(plans[route].ruleCount) }

    /// The matcher index of condition `condition` of route `route`, or of its rule `rule`.
    private func matcherIndex(route: Int, rule: Int?, condition: Int) -> Int {
        let plan = plans[route]
        if let rule { return Int(rules[Int(plan.ruleStart) + rule].matchStart) + condition }
        return Int(plan.matchStart) + condition
    }

    /// A condition as text, e.g. `host = api.example.com`, `path_prefix /app`, `header x-mode = "blue"`,
    /// `cookie tester present`, `source in 10.0.0.0/8, ::1/128` (header names lowercased).
    public func conditionText(route: Int, rule: Int? = nil, condition: Int) -> String {
        func pool(_ s: ByteSpan) -> String { String(decoding: bytePool[s.range], as: UTF8.self) }
        func test(_ t: CompiledTest) -> String {
            switch t {
            case .equals(let s): return "= \"\(pool(s))\""
            case .prefix(let s): return "starts with \"\(pool(s))\""
            case .regex(let i): return "~ /\(regexes[Int(i)].pattern)/"
            case .present: return "present"
            case .absent: return "absent"
            }
        }
        switch matchers[matcherIndex(route: route, rule: rule, condition: condition)] {
        case .hostExact(let s): return "host = \(pool(s))"
        case .hostSuffix(let s): return "host = *\(pool(s))"
        case .path(let s): return "path = \(pool(s))"
        case .pathPrefix(let s): return "path_prefix \(pool(s))"
        case .methods(let mask, let custom):
            var names: [String] = []
            for m in [HTTPMethod.get, .head, .post, .put, .delete, .options, .patch, .trace, .connect]
            where mask & (1 << UInt16(m.rawValue)) != 0 {
                names.append(Self.methodName(m))
            }
            for i in Int(custom.start)..<Int(custom.start) + Int(custom.count) { names.append(pool(spanPool[i])) }
            return "method in " + names.joined(separator: ", ")
        case .header(let name, let t): return "header \(pool(name)) \(test(t))"
        case .cookie(let name, let t): return "cookie \(pool(name)) \(test(t))"
        case .query(let name, let t): return "query \(pool(name)) \(test(t))"
        case .source(let list):
            return "source in " + prefixes[Int(list.start)..<Int(list.start) + Int(list.count)].map(\.description).joined(separator: ", ")
        }
    }

    /// What the request has for a condition: `host shop.example`, `path /cart`, `method GET`,
    /// `header x-mode: "red", "blue"` or `header x-mode absent`, `cookie beta = "2"`, `source 10.1.2.3`.
    public func requestText(route: Int, rule: Int? = nil, condition: Int, head: RequestHead, bytes: UnsafeRawBufferPointer,
                            client: SocketAddress) -> String {
        func text(_ s: ByteSpan) -> String { String(decoding: UnsafeRawBufferPointer(rebasing: bytes[s.range]), as: UTF8.self) }
        func pool(_ s: ByteSpan) -> String { String(decoding: bytePool[s.range], as: UTF8.self) }
        switch matchers[matcherIndex(route: route, rule: rule, condition: condition)] {
        case .hostExact, .hostSuffix:
            let h = head.hostName(in: bytes)
            return h.count == 0 ? "no host" : "host \(text(h))"
        case .path, .pathPrefix: return "path \(text(head.path))"
        case .methods: return "method \(text(head.methodSpan))"
        case .header(let name, _):
            let values = bytePool.withUnsafeBytes { p -> [String] in
                let lowered = UnsafeRawBufferPointer(rebasing: p[name.range])
                var out: [String] = []
                var i = head.fieldIndex(named: lowered, in: bytes)
                while i >= 0 {
                    out.append("\"\(text(head.fields[i].value))\"")
                    i = head.fieldIndex(named: lowered, in: bytes, from: i + 1)
                }
                return out
            }
            return values.isEmpty ? "header \(pool(name)) absent" : "header \(pool(name)): " + values.joined(separator: ", ")
        case .cookie(let name, _):
            let v = head.cookieValue(named: pool(name), in: bytes)
            return v.map { "cookie \(pool(name)) = \"\(text($0))\"" } ?? "cookie \(pool(name)) absent"
        case .query(let name, _):
            let v = head.queryValue(named: pool(name), in: bytes)
            return v.map { "query \(pool(name)) = \"\(text($0))\"" } ?? "query \(pool(name)) absent"
        case .source: return "source \(client.hostText)"
        }
    }

    /// What rule `rule` of route `route` does: the cohort index it forwards to (≥ 0), or -1 with
    /// the index into `responses`.
    public func ruleAction(route: Int, rule: Int) -> (cohort: Int32, response: Int32) {
        let r = rules[Int(plans[route].ruleStart) + rule]
        return (r.cohort, r.response)
    }

    /// The split range of route `route` holding `bucket`: its cohort and buckets `[start, end)`.
    /// Nil when the route has no split.
    public func splitRange(route: Int, bucket: Int) -> (cohort: Int32, start: Int, end: Int)? {
        let plan = plans[route]
        guard plan.splitCount > 0 else { return nil }
        var start = 0
        for i in Int(plan.splitStart)..<Int(plan.splitStart + plan.splitCount) {
            let range = splitRanges[i]
            if bucket < Int(range.end) || i == Int(plan.splitStart + plan.splitCount) - 1 {
                return (range.cohort, start, Int(range.end))
            }
            start = Int(range.end)
        }
        return nil
    }

    /// The name of a standard method.
    static func methodName(_ m: HTTPMethod) -> String {
        switch m {
        case .get: return "GET"
        case .head: return "HEAD"
        case .post: return "POST"
        case .put: return "PUT"
        case .delete: return "DELETE"
        case .options: return "OPTIONS"
        case .patch: return "PATCH"
        case .trace: return "TRACE"
        case .connect: return "CONNECT"
        default: return "?"
        }
    }

    /// The header section the upstream gets for a forward `decision` of this request, as the
    /// data path builds it: `HeadWriter.appendRequestStart` (hop-by-hop fields dropped,
    /// X-Forwarded-* written for `client`, trusted or not), any client copy of the route's cohort
    /// header dropped, the route's cohort header added. Without the request line and framing
    /// (Content-Length / Transfer-Encoding, which follow the body) and without X-Request-Id
    /// (the data path adds a random one when the client sent none).
    public func upstreamFields(decision: RouteDecision, head: RequestHead, bytes: UnsafeRawBufferPointer,
                               client: SocketAddress, trustForwarded: Bool) -> [(name: String, value: String)] {
        guard decision.action == .forward, decision.route >= 0 else { return [] }
        let route = routes[Int(decision.route)]
        var head = head
        route.cohortHeaderLowercased.withUnsafeBytes { name in
            var i = head.fieldIndex(named: name, in: bytes)
            while i >= 0 {
                head.fields[i].flags.insert(.hopByHop)
                i = head.fieldIndex(named: name, in: bytes, from: i + 1)
            }
        }
        var out: [UInt8] = []
        var peer: [UInt8] = []
        client.appendHostText(to: &peer)
        let host = Array(upstreams[Int(decision.upstream)].endpoints[Int(decision.endpoint)].label.utf8)
        peer.withUnsafeBytes { p in
            host.withUnsafeBytes { h in
                HeadWriter.appendRequestStart(head, bytes: bytes, clientAddress: p, forwardedProto: .http, fallbackHost: h,
                                              trustForwarded: trustForwarded, to: &out)
            }
        }
        route.appendCohortHeader(cohort: decision.cohort, to: &out)
        let text = String(decoding: out, as: UTF8.self)
        var fields: [(String, String)] = []
        for line in text.split(separator: "\r\n", omittingEmptySubsequences: true).dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields.append((String(line[..<colon]), String(line[line.index(after: colon)...].drop { $0 == " " })))
        }
        return fields
    }
}
