import ArgumentParser
@preconcurrency import Glibc
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SluiceControl
import SluiceCore

/// How a control command finds the running sluice: `--config FILE` (its admin address and
/// token) or `--admin HOST:PORT` (+ `--token`).
struct AdminOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The config file sluice runs with (its admin.address and admin.token are used).")
    var config: String?

    @Option(help: "Admin API address as HOST:PORT (default 127.0.0.1:9901).")
    var admin: String?

    @Option(help: "Bearer token for the admin API (default: admin.token or admin.token_file of --config, else $SLUICE_ADMIN_TOKEN).")
    var token: String?

    @Option(help: "File holding the bearer token (e.g. a mounted Secret); instead of --token.")
    var tokenFile: String?

    @Option(help: "Seconds to wait for the admin API.")
    var timeout: Int = 10

    func validate() throws {
        if config != nil && admin != nil { throw ValidationError("give --config or --admin, not both") }
        if token != nil && tokenFile != nil { throw ValidationError("give --token or --token-file, not both") }
        if let admin, AdminTarget.parseAddress(admin) == nil {
            throw ValidationError("--admin \(admin): expected HOST:PORT, e.g. 127.0.0.1:9901")
        }
        if timeout < 1 { throw ValidationError("--timeout must be at least 1 second") }
    }

    /// The address and token to use; exits 1 when the config file cannot tell.
    func target(_ command: String) throws -> (address: SocketAddress, token: String?) {
        var address = SocketAddress.v4(0x7f00_0001, port: 9901)
        var fileToken: String?
        if let path = config {
            do {
                (address, fileToken) = try AdminTarget.fromConfig(path: path)
            } catch {
                printError("sluice \(command): \(error)")
                throw ExitCode(1)
            }
        } else if let text = admin, let parsed = AdminTarget.parseAddress(text) {
            address = parsed
        }
        var given = token
        if let tokenFile {
            switch AdminTokenFile.read(tokenFile) {
            case .success(let t): given = t
            case .failure(let e):
                printError("sluice \(command): --token-file: \(e.message)")
                throw ExitCode(2)
            }
        }
        let envToken = getenv("SLUICE_ADMIN_TOKEN").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        return (address, given ?? fileToken ?? envToken)
    }
}

/// Sending control requests and printing their results.
enum ControlCall {
    /// GETs `path` and decodes its JSON as `T`; with `json`, prints the raw JSON and returns nil.
    /// Any other answer, or JSON this version cannot read, is a one-line error (exit 1).
    static func report<T: Decodable>(_ type: T.Type, _ command: String, _ path: String, options: AdminOptions,
                                     json: Bool) throws -> T? {
        let response = try send(command, "GET", path, options: options)
        guard response.status == 200 else { failed(command, response) }
        if json {
            print(response.text, terminator: response.text.hasSuffix("\n") ? "" : "\n")
            return nil
        }
        guard let value = try? JSONDecoder().decode(T.self, from: Data(response.body)) else {
            printError("sluice \(command): the admin API answered JSON this version cannot read: \(response.text)")
            throw ExitCode(1)
        }
        return value
    }

    /// The cause recorded with the change: the command and, when known, the user running it.
    static func cause(_ command: String) -> String {
        if let user = getenv("USER").map({ String(cString: $0) }), !user.isEmpty {
            return "sluice \(command) (CLI, user \(user))"
        }
        return "sluice \(command) (CLI)"
    }

    /// Sends a request; exits 1 when the admin API cannot be reached.
    static func send(_ command: String, _ method: String, _ path: String, body: [UInt8] = [],
                     options: AdminOptions) throws -> AdminClientResponse {
        let (address, token) = try options.target(command)
        do {
            return try AdminClient.request(method, path, to: address, token: token, body: body,
                                           timeoutMillis: Int32(options.timeout * 1000))
        } catch {
            printError("sluice \(command): cannot reach the admin API at \(address): \(error) (is sluice running, with this admin address?)")
            throw ExitCode(1)
        }
    }

    /// Sends a change, prints its one-line result (and warnings), or the server's error and exits 1.
    static func change<Body: Encodable>(_ command: String, _ path: String, body: Body, options: AdminOptions) throws {
        let encoded: [UInt8]
        do {
            encoded = Array(try JSONEncoder().encode(body))
        } catch {
            printError("sluice \(command): cannot encode the request: \(error)")
            throw ExitCode(1)
        }
        let response = try send(command, "POST", path, body: encoded, options: options)
        guard response.status == 200 else { failed(command, response) }
        guard let result = try? JSONDecoder().decode(ChangeResult.self, from: Data(response.body)) else {
            printError("sluice \(command): the admin API answered JSON this version cannot read: \(response.text)")
            throw ExitCode(1)
        }
        print(result.line)
        for w in result.warnings { printError("warning: \(w)") }
    }

    /// Prints the server's error (with every config problem) and exits 1.
    static func failed(_ command: String, _ response: AdminClientResponse) -> Never {
        if let body = try? JSONDecoder().decode(ControlErrorBody.self, from: Data(response.body)) {
            printError("sluice \(command): \(body.error)")
            for d in body.diagnostics ?? [] { printError(d) }
        } else {
            printError("sluice \(command): the admin API answered \(response.status): \(response.text)")
        }
        exit(1)
    }
}

/// `{"cause": ...}` (and the other fields of a control request).
struct ControlBody: Encodable {
    var cause: String
    var weights: [String: Double]?
    var cohort: String?
    var to: UInt64?
    var local: Bool?
    var ifVersion: UInt64?
    var force: Bool?

    enum CodingKeys: String, CodingKey {
        case cause, weights, cohort, to, local, force, ifVersion = "if_version"
    }
}

/// `--if-version N`: refuse a change decided on a version that is no longer current.
struct VersionGuard: ParsableArguments {
    @Option(name: .customLong("if-version"),
            help: "Refuse the change (stale) unless this table version is still the current one (see `sluice history`).")
    var ifVersion: UInt64?
}

/// `sluice reload`: reload the config file of a running sluice.
struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Reload the config file of a running sluice.",
        discussion: """
            The running sluice reads its config file again, validates it and, when it is valid, \
            publishes the new routing table to every worker (requests in flight finish on the \
            old one). Runtime overrides stay in force where the new file still fits them. \
            An invalid file is rejected, every problem is printed, the old table keeps serving \
            and the command exits 1. Host names of endpoints are resolved again.
            """
    )

    @OptionGroup var options: AdminOptions

    func run() throws {
        try ControlCall.change("reload", "/admin/reload", body: ControlBody(cause: ControlCall.cause("reload")), options: options)
    }
}

/// `sluice split ROUTE COHORT=PERCENT...`: set a split at runtime.
struct Split: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set a route's split at runtime: sluice split web stable=90 canary=10.",
        discussion: """
            Weights are percentages with up to two decimals and must add up to 100; cohorts \
            not named get 0%. The split replaces any runtime override of the route, is written \
            to the state file (so it survives a restart) and stays in force across reloads of \
            the config file unless the file changes this route's split itself.
            """
    )

    @OptionGroup var options: AdminOptions

    @Argument(help: "The route's name.")
    var route: String

    @Argument(help: "COHORT=PERCENT for each cohort, e.g. stable=90 canary=10.")
    var weights: [String] = []

    @OptionGroup var versionGuard: VersionGuard

    func validate() throws {
        do {
            _ = try SplitArguments.parse(weights)
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() throws {
        let parsed = try SplitArguments.parse(weights)
        var percents: [String: Double] = [:]
        for w in parsed { percents[w.cohort] = Double(w.weight) / 100 }
        try ControlCall.change("split", "/admin/routes/\(route)/split",
                               body: ControlBody(cause: ControlCall.cause("split"), weights: percents,
                                                 ifVersion: versionGuard.ifVersion), options: options)
    }
}

/// `sluice switch ROUTE COHORT`: blue/green switch.
struct Switch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switch",
        abstract: "Send all of a route's traffic to one cohort (blue/green): sluice switch web green.",
        discussion: """
            The cohort gets 100% and rules that forward to a cohort forward to it. Replaces any \
            runtime override of the route; `sluice rollback` or `sluice clear` undo it.
            """
    )

    @OptionGroup var options: AdminOptions

    @Argument(help: "The route's name.")
    var route: String

    @Argument(help: "The cohort to send everything to.")
    var cohort: String

    @OptionGroup var versionGuard: VersionGuard

    func run() throws {
        try ControlCall.change("switch", "/admin/routes/\(route)/switch",
                               body: ControlBody(cause: ControlCall.cause("switch"), cohort: cohort,
                                                 ifVersion: versionGuard.ifVersion), options: options)
    }
}

/// `sluice abort ROUTE`: everything to the baseline.
struct Abort: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Abort a rollout: all of a route's traffic to its baseline, now.",
        discussion: """
            The route's baseline gets 100% and rules that forward to a cohort forward to it. \
            New requests stop reaching the other cohorts as soon as the command returns; \
            requests already in flight finish. With `cluster:` the abort reaches every replica \
            (it is never refused as stale); when etcd is unreachable it is refused unless \
            --local is given, which aborts on this replica only and shares the abort with the \
            fleet once etcd answers again.
            """
    )

    @OptionGroup var options: AdminOptions

    @Argument(help: "The route's name.")
    var route: String

    @Flag(help: "With cluster: abort on this replica only (etcd unreachable); shared with the fleet when it answers again.")
    var local = false

    func run() throws {
        try ControlCall.change("abort", "/admin/routes/\(route)/abort",
                               body: ControlBody(cause: ControlCall.cause(local ? "abort --local" : "abort"), local: local ? true : nil),
                               options: options)
    }
}

/// `sluice clear ROUTE`: remove a runtime override.
struct Clear: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove a route's runtime override: its split is the config file's again."
    )

    @OptionGroup var options: AdminOptions

    @Argument(help: "The route's name.")
    var route: String

    @OptionGroup var versionGuard: VersionGuard

    func run() throws {
        try ControlCall.change("clear", "/admin/routes/\(route)/clear",
                               body: ControlBody(cause: ControlCall.cause("clear"), ifVersion: versionGuard.ifVersion),
                               options: options)
    }
}

/// `sluice rollback [--to N]`: publish an earlier version again.
struct Rollback: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish an earlier routing table version again (default: the one before the current).",
        discussion: """
            The earlier version's table and runtime overrides are published as a new version \
            (see `sluice history` for the versions kept: the last 50). Without --to, rolls back \
            to the version that served before the current one (`sluice undo` does the same). \
            A rollback that would send more traffic to a cohort that is not the route's \
            baseline (a higher split weight, or rules forwarding to it again, e.g. after \
            `sluice abort`) is refused with what it would change, exit 1 and nothing changed, \
            unless --force is given. `sluice abort ROUTE` is the one-word way back to the baseline.
            """
    )

    @OptionGroup var options: AdminOptions

    @Option(help: "The version to go back to.")
    var to: UInt64?

    @OptionGroup var versionGuard: VersionGuard

    @Flag(help: "Publish it even if it sends more traffic to a non-baseline cohort.")
    var force = false

    func run() throws {
        try ControlCall.change("rollback", "/admin/rollback",
                               body: ControlBody(cause: ControlCall.cause("rollback"), to: to, ifVersion: versionGuard.ifVersion,
                                                 force: force ? true : nil),
                               options: options)
    }
}

/// `sluice history`: recent table versions and the overrides in force.
struct History: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List recent routing table versions: time, cause and what changed.",
        discussion: "The serving version is marked with *. Runtime overrides in force are listed below the versions."
    )

    @OptionGroup var options: AdminOptions

    @Flag(help: "Print the raw /admin/history JSON.")
    var json = false

    func run() throws {
        let response = try ControlCall.send("history", "GET", "/admin/history", options: options)
        guard response.status == 200 else { ControlCall.failed("history", response) }
        if json {
            print(response.text, terminator: response.text.hasSuffix("\n") ? "" : "\n")
            return
        }
        guard let report = try? JSONDecoder().decode(HistoryReport.self, from: Data(response.body)) else {
            printError("sluice history: the admin API answered JSON this version cannot read: \(response.text)")
            throw ExitCode(1)
        }
        print(HistoryTable.render(report), terminator: "")
    }
}

/// `sluice rollout start|pause|resume|promote|abort|status ROUTE`: drive a route's automated canary rollout.
struct Rollout: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drive a route's automated canary rollout (the route's `rollout:` in the config).",
        discussion: """
            start: begin at step 1 (from pending, promoted, rolled back or aborted). pause: hold the \
            step, its clock stopped. resume: continue the step with the time already spent. \
            promote: canary to 100% now. abort: canary to 0% now, everything to the baseline. \
            status: the step, time at the step, each gate's value for both cohorts against its \
            threshold, and why the last decision was taken. Every change is a routing version \
            (see `sluice history`) and an event.
            """,
        subcommands: [RolloutStart.self, RolloutPause.self, RolloutResume.self, RolloutPromote.self, RolloutAbort.self,
                      RolloutStatusCommand.self]
    )

    /// Sends `command` for `route` and prints the one-line result (or the reason it does not apply, exit 1).
    static func send(_ command: RolloutCommand, route: String, options: AdminOptions) throws {
        let name = "rollout \(command.rawValue)"
        let body: [UInt8]
        do {
            body = Array(try JSONEncoder().encode(ControlBody(cause: ControlCall.cause(name))))
        } catch {
            printError("sluice \(name): cannot encode the request: \(error)")
            throw ExitCode(1)
        }
        let response = try ControlCall.send(name, "POST", "/admin/routes/\(route)/rollout/\(command.rawValue)", body: body,
                                            options: options)
        guard response.status == 200 else { ControlCall.failed(name, response) }
        guard let result = try? JSONDecoder().decode(RolloutCommandResult.self, from: Data(response.body)) else {
            printError("sluice \(name): the admin API answered JSON this version cannot read: \(response.text)")
            throw ExitCode(1)
        }
        print(result.line)
        for w in (result.change?.warnings ?? []) + result.status.warnings { printError("warning: \(w)") }
    }
}

/// `sluice rollout start ROUTE`.
struct RolloutStart: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start the rollout at step 1.")
    @OptionGroup var options: AdminOptions
    @Argument(help: "The route's name.") var route: String
    func run() throws { try Rollout.send(.start, route: route, options: options) }
}

/// `sluice rollout pause ROUTE`.
struct RolloutPause: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Hold the current step (its clock stops).")
    @OptionGroup var options: AdminOptions
    @Argument(help: "The route's name.") var route: String
    func run() throws { try Rollout.send(.pause, route: route, options: options) }
}

/// `sluice rollout resume ROUTE`.
struct RolloutResume: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Continue a paused step with the time already spent.")
    @OptionGroup var options: AdminOptions
    @Argument(help: "The route's name.") var route: String
    func run() throws { try Rollout.send(.resume, route: route, options: options) }
}

/// `sluice rollout promote ROUTE`.
struct RolloutPromote: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "promote", abstract: "Send the canary 100% now.")
    @OptionGroup var options: AdminOptions
    @Argument(help: "The route's name.") var route: String
    func run() throws { try Rollout.send(.promote, route: route, options: options) }
}

/// `sluice rollout abort ROUTE`.
struct RolloutAbort: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "abort", abstract: "Send everything back to the baseline now.")
    @OptionGroup var options: AdminOptions
    @Argument(help: "The route's name.") var route: String
    func run() throws { try Rollout.send(.abort, route: route, options: options) }
}

/// `sluice rollout status ROUTE`.
struct RolloutStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the rollout: step, time at step, gates against thresholds for both cohorts, and why.")
    @OptionGroup var options: AdminOptions
    @Argument(help: "The route's name.") var route: String
    @Flag(help: "Print the raw JSON of GET /admin/routes/ROUTE/rollout.") var json = false

    func run() throws {
        guard let status = try ControlCall.report(RolloutStatus.self, "rollout status", "/admin/routes/\(route)/rollout",
                                                  options: options, json: json) else { return }
        print(status.text(), terminator: "")
    }
}
