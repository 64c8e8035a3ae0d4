import ArgumentParser
@preconcurrency import Glibc
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
              sluice history -c FILE        versions (sluice rollback undoes one)
              sluice rollout start web -c FILE
                                            automated canary rollout

            Example configs are in config/ of the source tree; the README documents every key.
            """,
        version: sluiceVersion,
        subcommands: [Run.self, Check.self, Demo.self, Status.self, Reload.self, Split.self, Switch.self, Abort.self,
                      Clear.self, Rollback.self, History.self, Rollout.self]
    )
}

/// Writes a line to standard error.
func printError(_ text: String) {
    var line = text
    if !line.hasSuffix("\n") { line += "\n" }
    fputs(line, stderr)
}

/// Converts a validated config into the IO layer's settings.
func proxySettings(_ config: SluiceConfig, workersOverride: Int?) -> ProxySettings {
    var settings = ProxySettings(workers: workersOverride ?? config.workers, listeners: config.listeners,
                                 timeouts: config.timeouts, limits: config.limits, trustedProxies: config.trustedProxies)
    settings.tls = config.tls
    return settings
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
        printError("sluice: cannot reopen access log \(path): \(String(cString: strerror(errno))); still writing to the old file")
        return
    }
    dup2(fresh, fd)
    close(fresh)
    printError("sluice: reopened access log \(path)")
}

/// The proxy plus its control plane: metrics hub, routing controller, rollout controller,
/// admin API, event log and the config file watcher.
struct RunningSluice {
    let server: ProxyServer
    let hub: MetricsHub
    let admin: AdminServer
    let events: EventLog
    let controller: RoutingController
    let rollouts: RolloutController
    let watcher: ConfigWatcher?

    /// Starts the proxy, the stats sampler, the rollout controller, the admin API and (for a
    /// config file, unless `watch` is false) the file watcher. Runtime overrides and rollouts in
    /// the state file are applied.
    static func start(_ config: SluiceConfig, settings: ProxySettings, cause: String, watch: Bool = true) throws -> RunningSluice {
        let hub = MetricsHub(workers: max(1, settings.workers), listenerNames: config.listeners.map(\.name),
                             buildVersion: sluiceVersion, sampleInterval: RolloutController.sampleInterval(for: config.table))
        let events = EventLog()
        let controller = try RoutingController(config: config, events: events, cause: cause)
        let server = ProxyServer(settings: settings, table: controller.table, shards: hub.shards,
                                 seriesMap: { hub.seriesMap(for: $0) })
        controller.attach(server)
        let listenerNames = config.listeners.map(\.name)
        controller.attach(tls: { set in
            server.publishTLS(set)
            hub.recordCertificates(set, listenerNames: listenerNames)
        })
        let admin = try AdminServer(config: config, hub: hub, events: events, server: server)
        controller.registerAdminEndpoints(on: admin, hub: hub)
        try server.start()
        try hub.startSampler()
        // After the server: a rollout resumed from the state file may publish a split at once.
        let rollouts = RolloutController(routing: controller, hub: hub)
        rollouts.registerAdminEndpoints(on: admin)
        try rollouts.start()
        try admin.start()
        for (route, o) in controller.overrides.sorted(by: { $0.key < $1.key }) {
            printError("sluice: runtime override of route \(route) restored from \(config.stateFile ?? "the state file"): \(o.summary) (since \(o.since))")
        }
        for status in rollouts.statuses() where status.state != "pending" || status.lastDecision != nil {
            printError("sluice: rollout of route \(status.route): \(status.lastDecision?.summary ?? status.state)")
        }
        var watcher: ConfigWatcher?
        if watch, let path = config.sourcePath {
            let w = ConfigWatcher(path: path) { [controller] in
                do throws(ControlError) {
                    if let result = try controller.reloadIfChanged(cause: "config file changed") {
                        report(result, prefix: "\(path) changed")
                    }
                } catch {
                    printError("sluice: \(path) changed: \(describe(error))")
                }
            }
            do {
                try w.start()
                watcher = w
            } catch {
                printError("sluice: not watching \(path) for changes (SIGHUP and `sluice reload` still work): \(error)")
            }
        }
        return RunningSluice(server: server, hub: hub, admin: admin, events: events, controller: controller,
                             rollouts: rollouts, watcher: watcher)
    }

    /// Stops the rollouts (saving their state), drains the proxy and stops the control plane.
    func stop(drainTimeout: UInt64) {
        rollouts.stop()
        watcher?.stop()
        server.shutdown(drainTimeout: drainTimeout)
        admin.stop()
        hub.stopSampler()
    }
}

/// Prints a change's one-line result and its warnings to standard error.
func report(_ result: ChangeResult, prefix: String) {
    printError("sluice: \(prefix): \(result.line)")
    for w in result.warnings { printError("sluice: warning: \(w)") }
}

/// A control error with every config problem, for the log.
func describe(_ error: ControlError) -> String {
    if case .invalidConfig(let config, _) = error { return "\(error):\n\(config)" }
    return error.description
}

/// Runs a server until SIGTERM/SIGINT, then drains. SIGHUP reloads the config file (through
/// the routing controller) when there is one.
func serve(_ running: RunningSluice, drainTimeout: UInt64,
           accessLog: AccessLogTarget = .off, accessLogFD: Int32 = -1) -> Int32 {
    while true {
        guard let signal = ProcessSignals.wait(timeoutMs: 1000) else { continue }
        switch signal {
        case .terminate, .interrupt:
            printError("sluice: received \(signal == .terminate ? "SIGTERM" : "SIGINT"), draining (up to \(drainTimeout / 1_000_000_000)s)")
            running.stop(drainTimeout: drainTimeout)
            printError("sluice: stopped")
            return 0
        case .hangup:
            do throws(ControlError) {
                report(try running.controller.reloadFromFile(cause: "SIGHUP"), prefix: "SIGHUP")
            } catch .noConfigFile {
                printError("sluice: SIGHUP ignored (no config file)")
            } catch {
                printError("sluice: SIGHUP: \(describe(error))")
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

    @Option(help: "Worker threads (overrides `workers` in the config; default: online CPUs).")
    var workers: Int?

    @Option(help: "State file for runtime overrides (overrides `state_file` in the config; `off` keeps none).")
    var stateFile: String?

    @Flag(inversion: .prefixedNo, help: "Reload the config file when it changes (inotify on its directory).")
    var watch = true

    @Flag(help: ArgumentHelp("Do not record per-request metrics (only to measure what recording costs).", visibility: .hidden))
    var noMetrics = false

    func run() throws {
        ProcessSignals.blockHandledSignals()
        var loaded: SluiceConfig
        do {
            loaded = try ConfigLoader.load(path: config)
        } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
        if let stateFile { loaded.stateFile = stateFile == "off" ? nil : stateFile }
        for w in loaded.warnings { printError("sluice: warning: \(w)") }
        if let w = workers, w < 1 {
            printError("sluice: --workers must be at least 1")
            throw ExitCode(2)
        }
        var settings = proxySettings(loaded, workersOverride: workers)
        do {
            settings.accessLogFD = try openAccessLog(loaded.accessLog)
        } catch {
            printError("sluice: cannot start: \(error)")
            throw ExitCode(1)
        }
        settings.recordMetrics = !noMetrics
        let running: RunningSluice
        do {
            running = try RunningSluice.start(loaded, settings: settings, cause: "sluice run --config \(config)", watch: watch)
        } catch {
            printError("sluice: cannot start: \(error)")
            throw ExitCode(1)
        }
        for (spec, addr) in zip(loaded.listeners, running.server.boundAddresses) {
            printError("sluice \(sluiceVersion): listener \(spec.name) on \(addr), \(running.server.settings.workers) worker(s)")
        }
        if let admin = running.admin.boundAddress { printError("sluice: admin API on http://\(admin)/metrics") }
        throw ExitCode(serve(running, drainTimeout: loaded.timeouts.drain,
                             accessLog: loaded.accessLog, accessLogFD: settings.accessLogFD))
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a config file and print every problem found.",
        discussion: "Exits 0 when the file is valid, 1 when it is not (each problem with file:line:column and a hint)."
    )

    @Option(name: .shortAndLong, help: "Path to the YAML config file.")
    var config: String

    func run() throws {
        do {
            let loaded = try ConfigLoader.load(path: config)
            let routes = loaded.table.routes.map { route in
                let split = route.cohorts.map { c in "\(c.name)=\(Double(c.weight) / 100)%" }.joined(separator: " ")
                return "  route \(route.name): \(split)"
            }
            print("\(config): OK")
            for w in loaded.warnings { print("warning: \(w)") }
            print("  listeners: " + loaded.listeners.map { "\($0.name)=\($0.address)" }.joined(separator: ", "))
            print("  upstreams: " + loaded.table.upstreams.map { "\($0.name) (\($0.endpoints.count) endpoint(s))" }.joined(separator: ", "))
            for r in routes { print(r) }
        } catch {
            print(error.description)
            print("\(config): \(error.diagnostics.count) problem(s)")
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
            let running = try RunningSluice.start(loaded, settings: proxySettings(loaded, workersOverride: 1), cause: "sluice demo")
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
