import ArgumentParser
@preconcurrency import Glibc
import Logging
import SluiceControl
import SluiceCore
import SluiceProxy

/// The Sluice release this binary was built from.
let sluiceVersion = "0.1.0"

@main
struct Sluice: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "A Layer-7 traffic-splitting reverse proxy for progressive delivery.",
        discussion: """
            Sluice sits in front of a service and decides, request by request, which version \
            (cohort) answers: stable or canary, blue or green, A, B or C. Routes split traffic by \
            weight, header or cookie, and keep each user on one cohort (sticky).

            Start here:
              sluice demo                   a self-contained example on 127.0.0.1:8080
              sluice check -c FILE          validate a config, print every problem
              sluice run -c FILE            run the proxy
              sluice status -c FILE         per-cohort rate, errors, latency
              sluice split web stable=90 canary=10 -c FILE
                                            change a split at runtime
              sluice abort web -c FILE      all traffic to the baseline, now
              sluice history -c FILE        versions (sluice undo / rollback go back; they
                                            refuse to reopen a canary without --force)
              sluice explain GET http://shop.example/cart -H 'X-User-Id: 42' -c FILE
                                            how a request would be routed, step by step
              sluice fault web canary --abort 503 --percent 5 --for 2m -c FILE
                                            a fault drill that ends by itself
              sluice mirror diffs web -c FILE
                                            where a route's mirror answered differently
              sluice rollout start web -c FILE
                                            automated canary rollout

            Example configs are in config/ of the source tree; the README documents every key.
            """,
        version: sluiceVersion,
        subcommands: [Run.self, Check.self, Demo.self, Status.self, Reload.self, Split.self, Switch.self, Abort.self,
                      Clear.self, Rollback.self, Undo.self, History.self, Rollout.self, Explain.self, Fault.self, Mirror.self, Health.self]
    )
}

/// The server's log (swift-log with `ServerLogHandler`: JSON lines, plain text on a terminal;
/// warnings and errors on standard error). `run` and `demo` bootstrap it; CLI commands print plain lines.
var log: Logger { Logger(label: "sluice") }

/// Writes a line to standard error.
func printError(_ text: String) {
    var line = text
    if !line.hasSuffix("\n") { line += "\n" }
    fputs(line, stderr)
}

/// Prints every problem of a config on standard error.
func printProblems(_ error: ConfigError, file: String) {
    for d in error.diagnostics { printError(d.description) }
}

/// "1 problem", "3 problems".
func problemCount(_ n: Int) -> String {
    n == 1 ? "1 problem" : "\(n) problems"
}

/// Opens the access-log destination: -1 for off, a dup of stdout, or the file (append, created 0644).
func openAccessLog(_ target: AccessLogTarget) throws -> Int32 {
    switch target {
    case .off:
        return -1
    case .stdout:
        return dup(STDOUT_FILENO)
    case .file(let path):
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw SyscallError("open access log \(path)", errno: errno) }
        return fd
    }
}

/// SIGUSR1: reopen the access-log file (after logrotate moved it) by dup2-ing a fresh descriptor
/// onto the one workers write to, so they need no coordination.
func reopenAccessLog(_ target: AccessLogTarget, fd: Int32) {
    guard case .file(let path) = target, fd >= 0 else { return }
    let fresh = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
    if fresh < 0 {
        log.error("cannot reopen the access log; still writing to the old file",
                  metadata: ["path": "\(path)", "error": "\(String(cString: strerror(errno)))"])
        return
    }
    dup2(fresh, fd)
    close(fresh)
    log.info("reopened the access log", metadata: ["path": "\(path)"])
}

/// Logs what a change of the config file did (the runtime's watcher reports it).
func reportFileChange(path: String) -> @Sendable (Result<ChangeResult, ControlError>) -> Void {
    { outcome in
        switch outcome {
        case .success(let result): report(result, prefix: "\(path) changed")
        case .failure(let error): logRejected(error, cause: "config file changed", path: path)
        }
    }
}

/// Prints a change's one-line result and its warnings to standard error.
func report(_ result: ChangeResult, prefix: String) {
    log.info("\(prefix): \(result.line)", metadata: ["cause": "\(prefix)"])
    for w in result.warnings { log.warning("\(w)", metadata: ["cause": "\(prefix)"]) }
}

/// Logs a rejected reload: one error message with the problems as a list field.
func logRejected(_ error: ControlError, cause: String, path: String? = nil) {
    var metadata: Logger.Metadata = ["cause": "\(cause)"]
    if let path { metadata["path"] = "\(path)" }
    if case .invalidConfig(let config, _) = error {
        metadata["problems"] = .array(config.diagnostics.map { .string($0.description) })
    }
    log.error("\(cause): \(error)", metadata: metadata)
}

/// Runs a server until SIGTERM/SIGINT, then drains. SIGHUP reloads the config file (through
/// the routing controller) when there is one.
func serve(_ running: SluiceRuntime, drainTimeout: UInt64,
           accessLog: AccessLogTarget = .off, accessLogFD: Int32 = -1) -> Int32 {
    while true {
        guard let signal = ProcessSignals.wait(timeoutMs: 1000) else { continue }
        switch signal {
        case .terminate, .interrupt:
            log.notice("received \(signal == .terminate ? "SIGTERM" : "SIGINT"), draining",
                       metadata: ["drain_timeout_s": "\(drainTimeout / 1_000_000_000)"])
            running.stop(drainTimeout: drainTimeout)
            log.notice("stopped")
            return 0
        case .hangup:
            do throws(ControlError) {
                report(try running.controller.reloadFromFile(cause: "SIGHUP"), prefix: "SIGHUP")
            } catch .noConfigFile {
                log.warning("SIGHUP ignored (no config file)")
            } catch {
                logRejected(error, cause: "SIGHUP")
            }
        case .user1:
            reopenAccessLog(accessLog, fd: accessLogFD)
        case .user2:
            continue
        }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the proxy with a config file.",
        discussion: """
            Loads and validates FILE, binds every listener once per worker (SO_REUSEPORT) and \
            serves until SIGTERM or SIGINT, then stops accepting, lets requests in flight finish \
            (up to timeouts.drain) and exits 0. SIGHUP, a change of FILE (watched with inotify) \
            and `sluice reload` reload it; an invalid file is rejected and the running table \
            keeps serving. Runtime overrides (`sluice split`, `switch`, `abort`) are kept in the \
            state file (state_file:, default FILE.state.json) and applied again at start.
            """
    )

    @Option(name: .shortAndLong, help: "Path to the YAML config file.")
    var config: String

    @Option(help: "Worker threads (overrides `workers` in the config; default: online CPUs, at most the cgroup CPU limit).")
    var workers: Int?

    @Option(help: "State file for runtime overrides (overrides `state_file` in the config; `off` keeps none).")
    var stateFile: String?

    @Flag(inversion: .prefixedNo, help: "Reload the config file when it changes (inotify on its directory).")
    var watch = true

    @Flag(help: ArgumentHelp("Do not record per-request metrics (only to measure what recording costs).", visibility: .hidden))
    var noMetrics = false

    func validate() throws {
        if let w = workers, !(1...1024).contains(w) {
            throw ValidationError("--workers must be 1...1024 (as `workers` in the config)")
        }
    }

    func run() throws {
        ProcessSignals.blockHandledSignals()
        var loaded: SluiceConfig
        do {
            loaded = try ConfigLoader.load(path: config)
        } catch {
            printProblems(error, file: config)
            printError("sluice run: cannot start: \(config) has \(problemCount(error.diagnostics.count))")
            throw ExitCode(1)
        }
        if let stateFile { loaded.stateFile = stateFile == "off" ? nil : stateFile }
        ServerLogHandler.bootstrap()
        var settings = loaded.proxySettings(workers: workers)
        do {
            settings.accessLogFD = try openAccessLog(loaded.accessLog)
        } catch {
            log.error("cannot start: \(error)")
            throw ExitCode(1)
        }
        settings.recordMetrics = !noMetrics
        let running: SluiceRuntime
        do {
            running = try SluiceRuntime.start(loaded, settings: settings, cause: "sluice run --config \(config)", watch: watch,
                                              buildVersion: sluiceVersion, onFileChange: reportFileChange(path: config))
        } catch {
            log.error("cannot start: \(error)")
            throw ExitCode(1)
        }
        for (spec, addr) in zip(loaded.listeners, running.server.boundAddresses) {
            log.notice("listening", metadata: ["listener": "\(spec.name)", "address": "\(addr)",
                                               "workers": "\(running.server.settings.workers)", "version": "\(sluiceVersion)"])
        }
        if let admin = running.admin.boundAddress { log.notice("admin API", metadata: ["address": "\(admin)"]) }
        if let cluster = running.cluster {
            log.notice("cluster", metadata: ["node": "\(cluster.node)", "prefix": "\(cluster.settings.prefix)",
                                             "etcd": "\(cluster.settings.endpoints.joined(separator: ", "))",
                                             "connected": "\(cluster.isConnected)"])
        }
        if let metrics = running.admin.metricsBoundAddress { log.notice("metrics listener", metadata: ["address": "\(metrics)"]) }
        throw ExitCode(serve(running, drainTimeout: loaded.timeouts.drain,
                             accessLog: loaded.accessLog, accessLogFD: settings.accessLogFD))
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a config file and print every problem found.",
        discussion: """
            Exits 0 when the file is valid, with a summary on standard output. Exits 1 when it is \
            not: every problem (file:line:column, key path, message and hint) on standard error, \
            then one summary line.
            """
    )

    @Option(name: .shortAndLong, help: "Path to the YAML config file.")
    var config: String

    func run() throws {
        do {
            let loaded = try ConfigLoader.load(path: config)
            let routes = loaded.table.routes.map { route in
                guard !route.cohorts.isEmpty else { return "  route \(route.name): direct responses only (no cohorts)" }
                let split = route.cohorts.map { c in "\(c.name)=\(Double(c.weight) / 100)%" }.joined(separator: " ")
                return "  route \(route.name): \(split)"
            }
            print("\(config): OK")
            for w in loaded.warnings { print("warning: \(w)") }
            print("  listeners: " + loaded.listeners.map { "\($0.name)=\($0.address)" }.joined(separator: ", "))
            print("  upstreams: " + loaded.table.upstreams.map { "\($0.name) (\($0.endpoints.count) endpoint(s))" }.joined(separator: ", "))
            for r in routes { print(r) }
        } catch {
            printProblems(error, file: config)
            printError("\(config): \(problemCount(error.diagnostics.count)), nothing changed")
            throw ExitCode(1)
        }
    }
}

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a self-contained demo: two built-in upstreams and a proxy splitting them 90/10.",
        discussion: """
            Starts, in this one process, a "stable v1" upstream on 127.0.0.1:9101, a "canary v2" \
            upstream on 127.0.0.1:9102, and the proxy on 127.0.0.1:8080 with sticky cookies. \
            Stop it with Ctrl-C.
            """
    )

    func run() throws {
        ProcessSignals.blockHandledSignals()
        ServerLogHandler.bootstrap()
        let loaded: SluiceConfig
        do {
            loaded = try ConfigLoader.parse(yaml: DemoConfig.yaml, file: "<demo>")
        } catch {
            printError("sluice: built-in demo config is invalid (a bug):\n\(error)")
            throw ExitCode(1)
        }
        do {
            for (name, text) in [("stable", "stable v1"), ("canary", "canary v2")] {
                guard let group = loaded.table.upstreams.first(where: { $0.name == name }) else { continue }
                for ep in group.endpoints {
                    try DemoBackend(address: ep.address, text: text).start()
                }
            }
            let running = try SluiceRuntime.start(loaded, settings: loaded.proxySettings(workers: 1), cause: "sluice demo",
                                                  buildVersion: sluiceVersion)
            let addr = running.server.boundAddresses.first.map { "\($0)" } ?? "127.0.0.1:8080"
            let admin = running.admin.boundAddress.map { "\($0)" } ?? "127.0.0.1:9901"
            print("""
                Sluice demo: proxy on http://\(addr), splitting 90% stable / 10% canary (sticky per user).

                Try:
                  curl -i http://\(addr)/                          # a new user: a sticky cookie is set
                  curl -s -H 'X-Canary: always' http://\(addr)/    # a rule sends you to the canary
                  for i in $(seq 20); do curl -s http://\(addr)/; done | sort | uniq -c   # ~90/10 without a cookie

                Then: curl -s http://\(admin)/metrics | grep sluice_requests_total, or sluice status --admin \(admin)
                Ctrl-C stops it.
                """)
            fflush(stdout)
            throw ExitCode(serve(running, drainTimeout: 5_000_000_000))
        } catch let error as ExitCode {
            throw error
        } catch {
            printError("sluice demo: cannot start: \(error) (is something else on ports 8080, 9101, 9102 or 9901?)")
            throw ExitCode(1)
        }
    }
}
