import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SluiceControl
import SluiceCore

/// `sluice fault ROUTE COHORT --abort 503 --percent 5 --for 2m`, `sluice fault clear ROUTE [COHORT]`, `sluice fault list`.
struct Fault: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fault drills: answer a share of a cohort's requests with an injected error, or delay them, for a while.",
        discussion: """
            sluice fault web canary --abort 503 --percent 50 --for 2m starts a drill on a running sluice: \
            50% of the requests routed to web's canary cohort are answered 503 by Sluice itself, \
            for two minutes, then the drill ends by itself. With --delay 200ms (instead of, or \
            with, --abort) the requests are held that long before they are forwarded. The injected answers count as the \
            cohort's errors in the rollout gates (unless --no-count-in-gates), so a drill proves \
            that an automated rollback fires. Drills are listed by `sluice status` and \
            `sluice fault list`, recorded as `fault` events, counted in \
            sluice_faults_injected_total{route,cohort,kind}, and end at a restart.
            """,
        subcommands: [FaultStart.self, FaultClear.self, FaultList.self],
        defaultSubcommand: FaultStart.self
    )

    /// Sends a fault request and prints the drills in force (or the error, exit 1).
    static func send(_ command: String, _ path: String, body: [String: FaultJSONValue], options: AdminOptions) throws -> FaultReport {
        let encoded: [UInt8]
        do {
            encoded = Array(try JSONEncoder().encode(body))
        } catch {
            printError("sluice \(command): cannot encode the request: \(error)")
            throw ExitCode(1)
        }
        let response = try ControlCall.send(command, "POST", path, body: encoded, options: options)
        guard response.status == 200 else { ControlCall.failed(command, response) }
        guard let report = try? JSONDecoder().decode(FaultReport.self, from: Data(response.body)) else {
            printError("sluice \(command): the admin API answered JSON this version cannot read: \(response.text)")
            throw ExitCode(1)
        }
        return report
    }
}

/// A JSON value of a fault request body.
enum FaultJSONValue: Encodable {
    case string(String)
    case number(Double)
    case int(Int)
    case bool(Bool)

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .number(let d): try c.encode(d)
        case .int(let i): try c.encode(i)
        case .bool(let b): try c.encode(b)
        }
    }
}

/// `sluice fault [start] ROUTE COHORT (--abort STATUS | --delay DURATION) --percent P --for DURATION`.
struct FaultStart: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start",
                                                    abstract: "Start a drill (the default: `sluice fault web canary --abort 503 --percent 5 --for 2m`).")
    @OptionGroup var options: AdminOptions
    @Argument(help: "The route's name.") var route: String
    @Argument(help: "The cohort whose requests get the fault.") var cohort: String
    @Option(help: "The status to answer with (200-599).") var abort: Int?
    @Option(help: "Hold requests this long before forwarding them (1ms to 60s), e.g. 200ms.") var delay: String?
    @Option(help: "Share of the cohort's requests, in percent (up to two decimals).") var percent: String
    @Option(help: "Share of the cohort's requests delayed, when it differs from --percent (with --abort and --delay).")
    var delayPercent: String?
    @Option(name: .customLong("for"), help: "How long the drill lasts (1s to 24h), e.g. 2m.") var duration: String = "5m"
    @Option(help: "Only requests carrying this header (e.g. X-Sluice-Drill).") var whenHeader: String?
    @Flag(inversion: .prefixedNo, help: "Count the injected answers as the cohort's errors in the rollout gates.")
    var countInGates = true

    func validate() throws {
        guard abort != nil || delay != nil else { throw ValidationError("give --abort STATUS, --delay DURATION, or both") }
        if let abort, !(200...599).contains(abort) { throw ValidationError("--abort \(abort): expected an HTTP status from 200 to 599") }
        if delayPercent != nil && (abort == nil || delay == nil) {
            throw ValidationError("--delay-percent is for a drill with both --abort and --delay; otherwise use --percent")
        }
    }

    func run() throws {
        var body: [String: FaultJSONValue] = ["cohort": .string(cohort), "percent": .string(percent),
                                              "for": .string(duration), "count_in_gates": .bool(countInGates),
                                              "cause": .string(ControlCall.cause("fault"))]
        if let abort { body["abort"] = .int(abort) }
        if let delay { body["delay"] = .string(delay) }
        if let delayPercent { body["delay_percent"] = .string(delayPercent) }
        if let whenHeader { body["when_header"] = .string(whenHeader) }
        let report = try Fault.send("fault", "/admin/routes/\(route)/fault", body: body, options: options)
        if let started = report.started { print("fault drill started: \(started.summary)") }
    }
}

/// `sluice fault clear ROUTE [COHORT]`.
struct FaultClear: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clear", abstract: "End a route's drills now (only COHORT's when given).")
    @OptionGroup var options: AdminOptions
    @Argument(help: "The route's name.") var route: String
    @Argument(help: "The cohort.") var cohort: String?

    func run() throws {
        var body: [String: FaultJSONValue] = ["cause": .string(ControlCall.cause("fault clear"))]
        if let cohort { body["cohort"] = .string(cohort) }
        let report = try Fault.send("fault clear", "/admin/routes/\(route)/fault/clear", body: body, options: options)
        for f in report.cleared ?? [] { print("fault drill ended: \(f.route)/\(f.cohort ?? "*")") }
    }
}

/// `sluice fault list`.
struct FaultList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the drills in force and the config's faults.")
    @OptionGroup var options: AdminOptions
    @Flag(help: "Print the raw JSON of GET /admin/faults.") var json = false

    func run() throws {
        guard let report = try ControlCall.report(FaultReport.self, "fault list", "/admin/faults", options: options,
                                                  json: json) else { return }
        print(report.text, terminator: "")
    }
}
