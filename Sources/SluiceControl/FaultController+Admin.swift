#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SluiceCore

extension FaultController {
    /// Adds the fault-drill endpoints to `admin` (the POSTs need the token when one is set):
    ///
    /// | endpoint | body | does |
    /// | --- | --- | --- |
    /// | `POST /admin/routes/{route}/fault` | `{"cohort": "canary", "abort": 503, "percent": 5, "for": "2m"}`, or `"delay": "200ms"` with or instead of `abort` (`delay_percent` defaults to `percent`) | start a drill (replacing one on the same cohort) |
    /// | `POST /admin/routes/{route}/fault/clear` | `{"cohort": "canary"}` (optional) | end the route's drills now |
    /// | `GET /admin/faults` | | drills in force, and the config's `fault:` entries |
    ///
    /// It also replaces `POST /admin/explain` so explanations use the table the workers serve,
    /// drills included.
    public func registerAdminEndpoints(on admin: AdminServer) {
        admin.register("POST", "/admin/routes/{route}/fault") { [self] request in
            do throws(ControlError) {
                let route = request.pathParameters["route"] ?? ""
                let body = try RoutingController.decode(FaultBody.self, request)
                guard body.abort != nil || body.delay != nil else {
                    throw .badRequest("the body needs `abort` (the status to inject) or `delay` (a duration), e.g. "
                                      + "{\"cohort\": \"canary\", \"abort\": 503, \"percent\": 5, \"for\": \"2m\"} "
                                      + "or {\"cohort\": \"canary\", \"delay\": \"200ms\", \"percent\": 10, \"for\": \"2m\"}")
                }
                guard let percentValue = body.percent else { throw .badRequest("the body needs `percent`, e.g. 5") }
                let percent = try Self.units(percentValue, "percent")
                let delayPercent = try body.delayPercent.map { v throws(ControlError) in try Self.units(v, "delay_percent") } ?? percent
                var delay: UInt64?
                if let text = body.delay {
                    switch ConfigValues.parseDuration(text) {
                    case .success(let ns): delay = ns
                    case .failure(let problem): throw .badRequest("delay: \(problem.message)")
                    }
                }
                var duration: UInt64 = 300_000_000_000
                if let text = body.for {
                    switch ConfigValues.parseDuration(text) {
                    case .success(let ns): duration = ns
                    case .failure(let problem): throw .badRequest("for: \(problem.message)")
                    }
                }
                let fault = RuntimeFault(route: route, cohort: body.cohort, abortStatus: body.abort, percent: body.abort == nil ? 0 : percent,
                                         delayNanos: delay, delayPercent: delay == nil ? 0 : delayPercent,
                                         whenHeader: body.whenHeader, countInGates: body.countInGates ?? true)
                let started = try start(fault, duration: duration, cause: RoutingController.cause(body.cause, "POST /admin/routes/\(route)/fault"))
                return .json(FaultReport(active: active(), started: started))
            } catch {
                return .json(error.body, status: error.status)
            }
        }
        admin.register("POST", "/admin/routes/{route}/fault/clear") { [self] request in
            do throws(ControlError) {
                let route = request.pathParameters["route"] ?? ""
                let body = try RoutingController.decode(FaultBody.self, request)
                let cleared = try clear(route: route, cohort: body.cohort,
                                        cause: RoutingController.cause(body.cause, "POST /admin/routes/\(route)/fault/clear"))
                return .json(FaultReport(active: active(), cleared: cleared))
            } catch {
                return .json(error.body, status: error.status)
            }
        }
        admin.register("GET", "/admin/faults") { [self] _ in
            .json(FaultReport(active: active(), configured: Self.configured(in: table)))
        }
        admin.register("POST", "/admin/explain", mutating: false) { [self, routing] request in
            do throws(ControlError) {
                let input = try RoutingController.decode(ExplainInput.self, request)
                return .json(try routing.explain(input, table: table))
            } catch {
                return .json(error.body, status: error.status)
            }
        }
    }

    /// A percentage of a request body in 0.01% units.
    static func units(_ value: WeightValue, _ key: String) throws(ControlError) -> Int {
        switch value.units {
        case .success(let u): return u
        case .failure(let problem): throw .badRequest("\(key): \(problem.message.replacingOccurrences(of: "weight", with: "percentage"))")
        }
    }

    /// The config's fault drills, one line each (`web/canary: abort 503 for 5%, when X-Sluice-Drill`).
    static func configured(in table: RoutingTable) -> [String] {
        var out: [String] = []
        for (r, route) in table.routes.enumerated() {
            let (routeFaults, ruleFaults) = table.faultSpecs(route: r)
            for f in routeFaults where !f.runtime {
                out.append("\(route.name)/\(f.cohort.map { route.cohorts[$0].name } ?? "*"): \(describe(f))")
            }
            for (i, f) in ruleFaults.enumerated() {
                if let f { out.append("\(route.name) rules[\(i)]: \(describe(f))") }
            }
        }
        return out
    }

    /// `abort 503 for 5%, when X-Sluice-Drill is present, not counted in the gates`.
    static func describe(_ f: FaultSpec) -> String {
        var parts: [String] = []
        if let s = f.abortStatus { parts.append("abort \(s) for \(CohortWeight.percentText(f.abortPercent))%") }
        if let d = f.delayNanos { parts.append("delay \(RuntimeFault.durationText(d)) for \(CohortWeight.percentText(f.delayPercent))%") }
        var s = parts.joined(separator: ", ")
        if let h = f.whenHeader { s += ", when \(h) is present" }
        if !f.countInGates { s += ", not counted in the gates" }
        return s
    }
}

extension RoutingController {
    /// Explains `input` against `table` (the fault controller's, drills included) with this
    /// controller's overrides, parser limits and trusted proxies.
    public func explain(_ input: ExplainInput, table: RoutingTable) throws(ControlError) -> ExplainReport {
        let settings = startSettings
        return try Explainer.explain(input, table: table, overrides: overrides, trustedProxies: settings.trustedProxies,
                                     limits: settings.limits.parser, randomEntropy: UInt64.random(in: 0...UInt64.max))
    }
}

/// `{"cohort": "canary", "abort": 503, "percent": 5, "for": "2m", "when_header": "X-Sluice-Drill", "count_in_gates": true}`;
/// a delay drill has `"delay": "200ms"` (with or instead of `abort`); `delay_percent` defaults to `percent`.
struct FaultBody: Decodable {
    var cohort: String?
    var abort: Int?
    var percent: WeightValue?
    var delay: String?
    var delayPercent: WeightValue?
    var `for`: String?
    var whenHeader: String?
    var countInGates: Bool?
    var cause: String?

    enum CodingKeys: String, CodingKey {
        case cohort, abort, percent, delay, delayPercent = "delay_percent", `for`, whenHeader = "when_header", countInGates = "count_in_gates", cause
    }
}

/// The answer of the fault endpoints.
public struct FaultReport: Sendable, Codable, Equatable {
    /// Drills in force now.
    public var active: [FaultController.ActiveFault]
    /// The drill just started.
    public var started: FaultController.ActiveFault?
    /// The drills just cleared.
    public var cleared: [RuntimeFault]?
    /// The config's `fault:` entries (always on), one line each.
    public var configured: [String]?

    /// Creates a report.
    public init(active: [FaultController.ActiveFault], started: FaultController.ActiveFault? = nil, cleared: [RuntimeFault]? = nil,
                configured: [String]? = nil) {
        self.active = active
        self.started = started
        self.cleared = cleared
        self.configured = configured
    }
}

extension FaultReport {
    /// The drills for people (`sluice fault list`, the end of `sluice status`); empty when there are none.
    public var text: String {
        var out = ""
        if !active.isEmpty {
            out += "fault drills in force:\n"
            for f in active { out += "  \(f.summary)\n" }
        }
        if let configured, !configured.isEmpty {
            out += "fault drills in the config:\n"
            for line in configured { out += "  \(line)\n" }
        }
        return out.isEmpty ? "no fault drills\n" : out
    }
}
