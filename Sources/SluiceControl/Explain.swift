import SluiceCore

/// A request to explain (`POST /admin/explain`, `sluice explain`): what a client would send.
public struct ExplainInput: Sendable, Codable, Equatable {
    /// The method (default GET).
    public var method: String?
    /// `http://host[:port]/path?query` (the host becomes the Host field), or an origin-form
    /// target `/path?query` with a Host among `headers`.
    public var url: String
    /// Header fields as `Name: value`.
    public var headers: [String]?
    /// Cookies as `name=value` (each, or several joined by `; `), sent as one Cookie field.
    public var cookies: [String]?
    /// The client address the proxy would see (its socket peer; default 127.0.0.1).
    public var from: String?
    /// The request's random value (decimal, or `0x` and hex), which picks the bucket when no
    /// sticky key decides; a Sluice cookie value `0123456789abcdef` came from entropy
    /// 0x0123456789abcdef. Default: a fresh random value (reported in the answer).
    public var entropy: String?

    /// Creates an input.
    public init(method: String? = nil, url: String, headers: [String]? = nil, cookies: [String]? = nil, from: String? = nil,
                entropy: String? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.cookies = cookies
        self.from = from
        self.entropy = entropy
    }
}

/// What `RoutingTable.decide` does with one request, step by step (`POST /admin/explain`).
public struct ExplainReport: Sendable, Codable, Equatable {
    /// The table version explained.
    public var version: UInt64
    /// The request as it was built and parsed (request line and fields).
    public var request: [String]
    /// The client address.
    public var from: String
    /// The entropy used, as 16 hex digits.
    public var entropy: String
    /// Every route in order: matched, failed (with the condition and what the request had), or not tried.
    public var routes: [RouteLine]
    /// The matched route's rules that were tried, in order.
    public var rules: [RuleLine]
    /// `forward`, `respond` or `not_found`.
    public var action: String
    /// The route that decided (nil: none matched).
    public var route: String?
    /// The cohort (forward only).
    public var cohort: String?
    /// What decided the cohort: `rules[1]`, `split`; or the direct response's rule.
    public var decidedBy: String?
    /// The direct response's status (`respond` only).
    public var status: Int?
    /// How the split chose the bucket (nil when a rule decided or no route matched).
    public var split: SplitLine?
    /// The route's runtime override in force, if any (e.g. `abort (all to stable)`).
    public var override: String?
    /// The upstream group and endpoint the balancer would pick (forward only).
    public var upstream: String?
    /// The endpoint (`label`) a fresh balancer picks first.
    public var endpoint: String?
    /// The group's endpoints with weights, rotated by smooth weighted round robin per worker.
    public var endpoints: [String]?
    /// The header fields the upstream would get (`Name: value`), in order.
    public var upstreamHeaders: [String]?
    /// Fields Sluice adds to the response (Set-Cookie for an assigned key, the cohort header).
    public var responseHeaders: [String]?
    /// The fault drill that covered the request and what its roll did, if any.
    public var fault: String?
    /// Notes (a generated X-Request-Id, framing fields).
    public var notes: [String]

    /// One route's outcome.
    public struct RouteLine: Sendable, Codable, Equatable {
        /// The route's name.
        public var name: String
        /// `matched`, `no_match` or `not_tried`.
        public var result: String
        /// The first condition that did not hold (`no_match`).
        public var condition: String?
        /// What the request had for it.
        public var request: String?

        /// Creates a line.
        public init(name: String, result: String, condition: String? = nil, request: String? = nil) {
            self.name = name
            self.result = result
            self.condition = condition
            self.request = request
        }
    }

    /// One rule's outcome.
    public struct RuleLine: Sendable, Codable, Equatable {
        /// `rules[i]` (0-based, as in config key paths).
        public var rule: String
        /// `matched` or `no_match`.
        public var result: String
        /// What the rule does: `cohort canary` or `respond 403`.
        public var action: String
        /// The first condition that did not hold.
        public var condition: String?
        /// What the request had for it.
        public var request: String?

        /// Creates a line.
        public init(rule: String, result: String, action: String, condition: String? = nil, request: String? = nil) {
            self.rule = rule
            self.result = result
            self.action = action
            self.condition = condition
            self.request = request
        }
    }

    /// How the split decided.
    public struct SplitLine: Sendable, Codable, Equatable {
        /// Where the key came from: `cookie session_id`, `header x-user-id`, `cookie sluice_sticky`,
        /// `assigned` (a new key, cookie set), `per_request` (sticky: none).
        public var source: String
        /// The key's text (absent for `per_request`).
        public var key: String?
        /// sluice-hash-v1 of the key, as 16 hex digits (absent for `per_request`).
        public var hash: String?
        /// The bucket, 0..<10000.
        public var bucket: Int
        /// The bucket range of the chosen cohort that holds it, `[start, end)`.
        public var range: [Int]
        /// The route's split, e.g. `stable=95% canary=5%`.
        public var weights: String
        /// Why the configured key was not used (missing or empty), when it was not.
        public var note: String?

        /// Creates a line.
        public init(source: String, key: String? = nil, hash: String? = nil, bucket: Int, range: [Int], weights: String,
                    note: String? = nil) {
            self.source = source
            self.key = key
            self.hash = hash
            self.bucket = bucket
            self.range = range
            self.weights = weights
            self.note = note
        }
    }

    /// JSON keys (snake case).
    enum CodingKeys: String, CodingKey {
        case version, request, from, entropy, routes, rules, action, route, cohort, decidedBy = "decided_by", status, split,
             override, upstream, endpoint, endpoints, upstreamHeaders = "upstream_headers",
             responseHeaders = "response_headers", fault, notes
    }
}

/// Builds `ExplainReport`s: parses the request with the data path's parser and walks it with
/// `RoutingTable.walk` (which is `decide` with its steps recorded).
public enum Explainer {
    /// Explains `input` against `table`. `randomEntropy` is used when the input names none.
    public static func explain(_ input: ExplainInput, table: RoutingTable, overrides: [String: RouteOverride],
                               trustedProxies: [AddressPrefix], limits: ParserLimits,
                               randomEntropy: UInt64) throws(ControlError) -> ExplainReport {
        let raw = try requestBytes(input)
        let client = try clientAddress(input.from)
        let entropy = try parseEntropy(input.entropy) ?? randomEntropy
        var head = RequestHead()
        let status = raw.withUnsafeBytes { RequestParser.parse($0, into: &head, limits: limits) }
        switch status {
        case .complete: break
        case .incomplete: throw .badRequest("the request is incomplete")
        case .invalid(let error): throw .badRequest("the proxy would answer \(error.status): \(error.reason)")
        }
        return raw.withUnsafeBytes { bytes in
            var balancer = BalancerState(table: table)
            let walk = table.walk(head: head, bytes: bytes, client: client, entropy: entropy, balancer: &balancer)
            return report(walk, table: table, head: head, bytes: bytes, client: client, entropy: entropy, overrides: overrides,
                          trusted: trustedProxies.contains { $0.contains(client) })
        }
    }

    /// The request bytes the input describes (request line, Host, fields, Cookie).
    static func requestBytes(_ input: ExplainInput) throws(ControlError) -> [UInt8] {
        let method = input.method ?? "GET"
        guard !method.isEmpty, method.utf8.allSatisfy({ ConfigValues.isToken(String(UnicodeScalar($0))) }) else {
            throw .badRequest("`\(method)` is not an HTTP method")
        }
        var target = input.url
        var host: String?
        for scheme in ["http://", "https://"] where target.lowercased().hasPrefix(scheme) {
            let rest = target.dropFirst(scheme.count)
            let slash = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
            host = String(rest[..<slash])
            target = rest[slash...].hasPrefix("?") ? "/" + rest[slash...] : String(rest[slash...])
            if target.isEmpty { target = "/" }
        }
        guard target.hasPrefix("/") || target == "*" else {
            throw .badRequest("url `\(input.url)`: expected http://HOST/PATH or /PATH")
        }
        guard !target.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7f }), !(host ?? "").utf8.contains(where: { $0 <= 0x20 || $0 == 0x7f }) else {
            throw .badRequest("url `\(input.url)` contains spaces or control characters (percent-encode them)")
        }
        var lines = ["\(method) \(target) HTTP/1.1"]
        let headers = input.headers ?? []
        let hasHost = headers.contains { $0.lowercased().hasPrefix("host:") }
        if let host, !hasHost {
            guard !host.isEmpty else { throw .badRequest("url `\(input.url)` has no host") }
            lines.append("Host: \(host)")
        }
        for h in headers {
            guard let colon = h.firstIndex(of: ":"), colon != h.startIndex else {
                throw .badRequest("header `\(h)`: expected `Name: value`")
            }
            guard !h.contains("\r") && !h.contains("\n") else { throw .badRequest("header `\(h)` contains a line break") }
            lines.append(h)
        }
        let cookies = (input.cookies ?? []).filter { !$0.isEmpty }
        if !cookies.isEmpty {
            guard !cookies.contains(where: { $0.contains("\r") || $0.contains("\n") }) else {
                throw .badRequest("a cookie contains a line break")
            }
            lines.append("Cookie: " + cookies.joined(separator: "; "))
        }
        return Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
    }

    /// The client address (`10.1.2.3`, `::1`; a port is allowed and ignored); default 127.0.0.1.
    static func clientAddress(_ text: String?) throws(ControlError) -> SocketAddress {
        guard let text, !text.isEmpty else { return .v4(0x7f00_0001, port: 0) }
        if let v4 = SocketAddress.parseIPv4(Substring(text)) { return .v4(v4, port: 0) }
        var bare = Substring(text)
        if bare.hasPrefix("["), bare.hasSuffix("]") { bare = bare.dropFirst().dropLast() }
        if let (hi, lo) = SocketAddress.parseIPv6(bare) { return .v6(hi: hi, lo: lo, port: 0) }
        if let a = SocketAddress.parse(text) { return a }
        throw .badRequest("from `\(text)`: expected an IPv4 or IPv6 address")
    }

    /// Parses `123`, `0x7b` or 16 hex digits (a Sluice cookie value).
    static func parseEntropy(_ text: String?) throws(ControlError) -> UInt64? {
        guard let text, !text.isEmpty else { return nil }
        let lowered = text.lowercased()
        if lowered.hasPrefix("0x"), let v = UInt64(lowered.dropFirst(2), radix: 16) { return v }
        if lowered.count == 16, let v = UInt64(lowered, radix: 16), lowered.allSatisfy(\.isHexDigit) { return v }
        if let v = UInt64(lowered) { return v }
        throw .badRequest("entropy `\(text)`: expected a decimal number, 0x and hex digits, or 16 hex digits")
    }

    /// `value` as 16 lowercase hex digits.
    static func hex(_ value: UInt64) -> String {
        var out: [UInt8] = []
        StickyHash.appendHex(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Turns a walk into the report.
    static func report(_ walk: RoutingWalk, table: RoutingTable, head: RequestHead, bytes: UnsafeRawBufferPointer,
                       client: SocketAddress, entropy: UInt64, overrides: [String: RouteOverride], trusted: Bool) -> ExplainReport {
        func text(_ s: ByteSpan) -> String { String(decoding: UnsafeRawBufferPointer(rebasing: bytes[s.range]), as: UTF8.self) }
        let d = walk.decision
        var routes: [ExplainReport.RouteLine] = []
        for (i, route) in table.routes.enumerated() {
            guard let check = walk.routes.first(where: { $0.index == i }) else {
                routes.append(.init(name: route.name, result: "not_tried"))
                continue
            }
            if check.failedCondition < 0 {
                routes.append(.init(name: route.name, result: "matched"))
            } else {
                routes.append(.init(name: route.name, result: "no_match",
                                    condition: table.conditionText(route: i, condition: check.failedCondition),
                                    request: table.requestText(route: i, condition: check.failedCondition, head: head, bytes: bytes,
                                                               client: client)))
            }
        }
        var rules: [ExplainReport.RuleLine] = []
        var decidedBy: String?
        if d.route >= 0 {
            let r = Int(d.route)
            let route = table.routes[r]
            for check in walk.rules {
                let action = table.ruleAction(route: r, rule: check.index)
                let actionText = action.cohort >= 0 ? "cohort \(route.cohorts[Int(action.cohort)].name)"
                    : "respond \(table.responses[Int(action.response)].status)"
                if check.failedCondition < 0 {
                    rules.append(.init(rule: "rules[\(check.index)]", result: "matched", action: actionText))
                    decidedBy = "rules[\(check.index)]"
                } else {
                    rules.append(.init(rule: "rules[\(check.index)]", result: "no_match", action: actionText,
                                       condition: table.conditionText(route: r, rule: check.index, condition: check.failedCondition),
                                       request: table.requestText(route: r, rule: check.index, condition: check.failedCondition,
                                                                  head: head, bytes: bytes, client: client)))
                }
            }
        }
        var report = ExplainReport(
            version: table.version,
            request: String(decoding: UnsafeRawBufferPointer(rebasing: bytes[0..<max(0, head.headLength - 4)]), as: UTF8.self)
                .split(separator: "\r\n").map(String.init),
            from: client.hostText, entropy: hex(entropy), routes: routes, rules: rules,
            action: d.action == .forward ? "forward" : d.action == .respond ? "respond" : "not_found",
            route: d.route >= 0 ? table.routes[Int(d.route)].name : nil, decidedBy: decidedBy, notes: [])
        guard d.route >= 0 else {
            report.notes.append("no route matched: the proxy answers 404")
            return report
        }
        let r = Int(d.route)
        let route = table.routes[r]
        report.override = overrides[route.name]?.summary
        if let f = walk.fault {
            let origin = f.spec.runtime ? "runtime drill (sluice fault)" : "config drill"
            var line = "\(origin): \(FaultController.describe(f.spec)); abort roll \(f.abortRoll)"
            switch d.fault {
            case .abort: line += " < \(f.spec.abortPercent): aborted with \(table.responses[Int(d.response)].status)"
            case .delay: line += ", delay roll \(f.delayRoll): delayed \(d.delayNanos / 1_000_000)ms"
            case .none: line += " not below \(f.spec.abortPercent): not injected"
            }
            report.fault = line
            if d.fault == .abort {
                report.cohort = route.cohorts[Int(d.cohort)].name
                report.decidedBy = report.decidedBy ?? (walk.split != nil ? "split" : nil)
                if let step = walk.split { report.split = splitLine(step, table: table, route: r, text: text, head: head, bytes: bytes) }
            }
        }
        switch d.action {
        case .notFound:
            report.notes.append("the route matched but no rule applied and it has no split: the proxy answers 404")
            return report
        case .respond:
            report.status = table.responses[Int(d.response)].status
            if decidedBy == nil { report.decidedBy = "respond" }
            return report
        case .forward:
            break
        }
        report.cohort = route.cohorts[Int(d.cohort)].name
        if let step = walk.split {
            report.decidedBy = "split"
            report.split = splitLine(step, table: table, route: r, text: text, head: head, bytes: bytes)
        }
        let group = table.upstreams[Int(d.upstream)]
        report.upstream = group.name
        report.endpoint = group.endpoints[Int(d.endpoint)].label
        report.endpoints = group.endpoints.map { "\($0.label) weight \($0.weight)" }
        report.upstreamHeaders = table.upstreamFields(decision: d, head: head, bytes: bytes, client: client, trustForwarded: trusted)
            .map { "\($0.name): \($0.value)" }
        if head.fieldValue(named: "x-request-id", in: bytes).map({ $0.count > 0 && $0.count <= 200 }) != true {
            report.upstreamHeaders?.append("X-Request-Id: (32 random hex digits, generated per request)")
        }
        var response: [String] = []
        if d.setStickyCookie {
            var line: [UInt8] = []
            route.appendSetCookie(stickyKey: d.stickyKey, to: &line)
            response.append(String(decoding: line.dropLast(2), as: UTF8.self))
        }
        if route.cohortResponseHeader { response.append("\(route.cohortHeader): \(report.cohort ?? "")") }
        report.responseHeaders = response
        report.notes.append("the endpoint is a fresh balancer's first pick; each worker rotates over the group's endpoints "
                            + "(smooth weighted round robin)")
        if trusted { report.notes.append("\(client.hostText) is a trusted proxy: its X-Forwarded-* fields are kept") }
        return report
    }

    /// The split step as a report line.
    static func splitLine(_ step: SplitStep, table: RoutingTable, route r: Int, text: (ByteSpan) -> String,
                          head: RequestHead, bytes: UnsafeRawBufferPointer) -> ExplainReport.SplitLine {
        let route = table.routes[r]
        let range = table.splitRange(route: r, bucket: step.bucket).map { [$0.start, $0.end] } ?? []
        let weights = RoutingController.splitText(route: route.name, in: table) ?? ""
        func hashed(_ key: String) -> String { Explainer.hex(StickyHash.hash(Array(key.utf8))) }
        var userKeyNote: String?
        switch route.sticky {
        case .cookie(let name, _, _): userKeyNote = "cookie \(name) missing or empty"
        case .header(let name, _, _): userKeyNote = "header \(name) missing or empty"
        default: break
        }
        let own = route.sticky.assignedCookie?.name ?? StickyPolicy.defaultCookieName
        switch step {
        case .perRequest(let bucket):
            return .init(source: "per_request", bucket: bucket, range: range, weights: weights,
                         note: "sticky: none: bucket = entropy % 10000, fresh per request")
        case .userCookie(let v, let bucket):
            var name = "cookie"
            if case .cookie(let n, _, _) = route.sticky { name = "cookie \(n)" }
            return .init(source: name, key: text(v), hash: hashed(text(v)), bucket: bucket, range: range, weights: weights)
        case .userHeader(let v, let bucket):
            var name = "header"
            if case .header(let n, _, _) = route.sticky { name = "header \(n)" }
            return .init(source: name, key: text(v), hash: hashed(text(v)), bucket: bucket, range: range, weights: weights)
        case .assignedCookie(let v, let bucket):
            return .init(source: "cookie \(own)", key: text(v), hash: hashed(text(v)), bucket: bucket, range: range, weights: weights,
                         note: userKeyNote)
        case .assignedNew(let key, let bucket):
            var note = (userKeyNote.map { $0 + "; " } ?? "") + "no valid \(own) cookie: Sluice assigns the key and sets the cookie"
            if head.cookieValue(named: own, in: bytes) != nil { note += " (the one sent is not 16 lowercase hex digits)" }
            return .init(source: "assigned", key: hex(key), hash: hashed(hex(key)), bucket: bucket, range: range, weights: weights,
                         note: note)
        }
    }
}
