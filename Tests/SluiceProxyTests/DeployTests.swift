import Foundation
@preconcurrency import Glibc
@testable import SluiceControl
import SluiceCore
import Testing
import Yams

/// The deploy kit in deploy/ checked against the code: the systemd unit with systemd-analyze,
/// the alert rules with promtool, the Grafana dashboard's and the rules' queries against the
/// metrics Sluice exports, and the Kubernetes manifests and Containerfile against the ports,
/// paths, flags and config keys that exist.
@Suite struct DeployTests {
    /// The repository root (this file is Tests/SluiceProxyTests/DeployTests.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    static func read(_ path: String) throws -> String {
        try String(contentsOfFile: root + "/" + path, encoding: .utf8)
    }

    /// The sluice binary next to the test bundle.
    static var sluiceBinary: String {
        URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
            .deletingLastPathComponent().appendingPathComponent("sluice").path
    }

    /// Whether the admin kit of issue 18 (`sluice health`, `metrics:`, `/ready`) is in this build.
    /// Until it is, the checks that need it are limited to the parts that exist (see `pendingAdminKit`).
    /// (An unknown subcommand's `--help` prints the top-level help, so the usage line tells.)
    static let adminKit: Bool = (try? runSluiceCLI(["health", "--help"]).out.contains("USAGE: sluice health")) == true

    /// What the deploy kit names that the admin-endpoints work adds: checked strictly once `adminKit`.
    static let pendingAdminKit = (paths: ["/ready"], commands: ["health"], configKeys: ["metrics"])

    /// Runs `executable` with `arguments`; status and stdout+stderr.
    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func onPath(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if access(p, X_OK) == 0 { return p }
        }
        return nil
    }

    // MARK: Metric names

    /// Every metric name a scrape of Sluice can contain (histograms with their _bucket, _sum and
    /// _count), from the real renderers' TYPE lines.
    /// The endpoint availability families (rendered once a table with an upstream was published).
    static func endpointFamilies() -> String {
        let health = EndpointHealth(capacity: 4, workers: 1)
        health.assign(RoutingTable(version: 1, upstreams: [
            UpstreamGroup(name: "app", endpoints: [Endpoint(address: .v4(0x7f00_0001, port: 9), label: "127.0.0.1:9")])], routes: []))
        return EndpointExposition.render(health)
    }

    static func exportedMetricNames() -> Set<String> {
        let table = RoutingTable(version: 1, upstreams: [], routes: [])
        let totals = MetricsTotals(seriesCount: 1, listenerCount: 0, upstreamCount: 0)
        let names = MetricsRegistry(listenerNames: []).names
        let text = PrometheusExposition.render(
            totals: totals, names: names, table: table, buildVersion: "t", reloads: ReloadCounters(),
            process: ProcessStats(cpuSeconds: 0, residentBytes: 0, virtualBytes: 0, openFDs: 0, maxFDs: 1, startTimeSeconds: 0))
            + RolloutExposition.render([])
            + endpointFamilies()
        var out = Set<String>()
        // Rendered by MetricsHub only when a listener has TLS certificates (no files needed here:
        // the source is checked to still emit the family).
        let hubSource = (try? String(contentsOfFile: root + "/Sources/SluiceControl/MetricsHub.swift", encoding: .utf8)) ?? ""
        if hubSource.contains("# TYPE sluice_tls_certificate_expiry_timestamp_seconds gauge") {
            out.insert("sluice_tls_certificate_expiry_timestamp_seconds")
        }
        for line in text.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            let name = String(parts[2])
            out.insert(name)
            if parts[3] == "histogram" { for s in ["_bucket", "_sum", "_count"] { out.insert(name + s) } }
        }
        return out
    }

    /// PromQL words that are not metric names.
    static let promqlWords: Set<String> = [
        "sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "group_left", "group_right", "and",
        "or", "unless", "rate", "irate", "increase", "changes", "histogram_quantile", "label_values", "time",
        "offset", "bool", "delta", "deriv", "abs", "clamp_min", "clamp_max", "topk", "bottomk", "inf", "nan",
    ]

    /// Metric names a PromQL expression selects: identifiers outside label matchers, grouping
    /// lists and strings, that are not PromQL words, durations or Grafana variables.
    static func metricNames(in expr: String) -> [String] {
        var out: [String] = []
        var i = expr.startIndex
        var braces = 0, parensAfterGrouping: [Bool] = [], inString = false
        var lastWord = ""
        while i < expr.endIndex {
            let c = expr[i]
            if inString {
                if c == "\\" { i = expr.index(after: i) } else if c == "\"" { inString = false }
                i = expr.index(after: i)
                continue
            }
            switch c {
            case "\"": inString = true
            case "{": braces += 1
            case "}": braces -= 1
            case "(": parensAfterGrouping.append(["by", "without", "on", "ignoring", "group_left", "group_right"].contains(lastWord))
            case ")": _ = parensAfterGrouping.popLast()
            case "[":  // a range: skip to ]
                while i < expr.endIndex && expr[i] != "]" { i = expr.index(after: i) }
            case "$":  // a Grafana variable
                i = expr.index(after: i)
                while i < expr.endIndex && (expr[i].isLetter || expr[i].isNumber || expr[i] == "_") { i = expr.index(after: i) }
                continue
            default:
                if c.isLetter || c == "_" || c == ":" {
                    var j = i
                    while j < expr.endIndex && (expr[j].isLetter || expr[j].isNumber || expr[j] == "_" || expr[j] == ":") {
                        j = expr.index(after: j)
                    }
                    let word = String(expr[i..<j])
                    lastWord = word
                    let inGrouping = parensAfterGrouping.last ?? false
                    if braces == 0 && !inGrouping && !promqlWords.contains(word) { out.append(word) }
                    i = j
                    continue
                }
            }
            if !c.isWhitespace { lastWord = c == "(" ? lastWord : "" }
            i = expr.index(after: i)
        }
        return out
    }

    @Test func promqlNameExtraction() {
        #expect(Self.metricNames(in: #"sum by (route, cohort) (rate(sluice_requests_total{route=~"$route",code=~"5.."}[$__rate_interval]))"#)
                == ["sluice_requests_total"])
        #expect(Self.metricNames(in: #"a_total / on (route) group_left () max by (route) (b{x="y"} == 1) and c > 0.1"#)
                == ["a_total", "b", "c"])
        #expect(Self.metricNames(in: #"histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))"#) == ["x_bucket"])
    }

    @Test func dashboardQueriesNameOnlyExportedMetrics() throws {
        let text = try Self.read("deploy/grafana/sluice-dashboard.json")
        let dashboard = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        var exprs: [(String, String)] = []
        func collect(_ value: Any, _ where_: String) {
            if let d = value as? [String: Any] {
                let title = d["title"] as? String ?? d["name"] as? String ?? where_
                for (k, v) in d {
                    if k == "expr" || k == "query" || k == "definition", var s = v as? String {
                        // label_values(METRIC, LABEL): only the first argument is a selector.
                        if s.hasPrefix("label_values("), let comma = s.firstIndex(of: ",") {
                            s = String(s[s.index(s.startIndex, offsetBy: 13)..<comma])
                        }
                        exprs.append((title, s))
                    } else {
                        collect(v, title)
                    }
                }
            } else if let a = value as? [Any] {
                for v in a { collect(v, where_) }
            }
        }
        collect(dashboard, "dashboard")
        let exported = Self.exportedMetricNames()
        #expect(exported.contains("sluice_requests_total") && exported.contains("sluice_rollout_step")
                && exported.contains("process_cpu_seconds_total") && exported.contains("sluice_upstream_first_byte_seconds_bucket"))
        var named = Set<String>()
        for (title, expr) in exprs where expr != "prometheus" {
            let names = Self.metricNames(in: expr)
            #expect(!names.isEmpty, "panel \(title): no metric in \(expr)")
            for n in names {
                named.insert(n)
                #expect(exported.contains(n), "panel \(title) queries \(n), which Sluice does not export")
            }
        }
        // What the issue asks the dashboard to show.
        for needed in ["sluice_requests_total", "sluice_request_duration_seconds_bucket", "sluice_cohort_weight",
                       "sluice_rollout_step", "sluice_rollout_state", "sluice_config_version"] {
            #expect(named.contains(needed), "the dashboard does not show \(needed)")
        }
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        let quantiles = panels.compactMap { $0["title"] as? String }.filter { $0.hasSuffix("latency by cohort") }
        #expect(quantiles == ["p50 latency by cohort", "p95 latency by cohort", "p99 latency by cohort"])
        // Importable: unique panel ids, a grid position each, targets on every non-row panel, and the
        // data source every query names is the dashboard's `datasource` variable.
        let ids = panels.compactMap { $0["id"] as? Int }
        #expect(ids.count == panels.count && Set(ids).count == ids.count)
        let variables = try #require((dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]])
        #expect(variables.contains { $0["name"] as? String == "datasource" && $0["type"] as? String == "datasource" })
        for p in panels {
            #expect(p["gridPos"] is [String: Any], "panel \(p["title"] ?? "?") has no gridPos")
            guard p["type"] as? String != "row" else { continue }
            let targets = p["targets"] as? [[String: Any]] ?? []
            #expect(!targets.isEmpty, "panel \(p["title"] ?? "?") has no query")
            for t in targets {
                #expect((t["datasource"] as? [String: Any])?["uid"] as? String == "${datasource}")
            }
        }
        let annotations = try #require((dashboard["annotations"] as? [String: Any])?["list"] as? [[String: Any]])
        #expect(annotations.contains { ($0["expr"] as? String)?.contains("sluice_config_version") == true })
    }

    // MARK: Prometheus rules

    @Test func alertRulesPassPromtoolAndNameExportedMetrics() throws {
        let rulesText = try Self.read("deploy/prometheus/sluice-rules.yaml")
        let rules = try #require(try Yams.load(yaml: rulesText) as? [String: Any])
        let groups = try #require(rules["groups"] as? [[String: Any]])
        var recorded = Set<String>(), alerts = Set<String>()
        var exprs: [String] = []
        for g in groups {
            for r in try #require(g["rules"] as? [[String: Any]]) {
                if let name = r["record"] as? String { recorded.insert(name) }
                if let name = r["alert"] as? String { alerts.insert(name) }
                exprs.append(try #require(r["expr"] as? String))
            }
        }
        #expect(alerts == ["SluiceCanaryErrorRatioAboveBaseline", "SluiceCanaryLatencyAboveBaseline", "SluiceRolloutRolledBack",
                           "SluiceConfigReloadFailing", "SluiceCertificateExpiresSoon", "SluiceUpstreamPanic"])
        let exported = Self.exportedMetricNames()
        for e in exprs {
            for n in Self.metricNames(in: e) {
                #expect(exported.contains(n) || recorded.contains(n), "rule expression names \(n), which Sluice does not export: \(e)")
            }
        }
        // The PrometheusRule for the operator carries exactly the same groups.
        let operatorRule = try #require(try Yams.load(yaml: try Self.read("deploy/kubernetes/prometheusrule.yaml")) as? [String: Any])
        #expect(operatorRule["kind"] as? String == "PrometheusRule")
        let spec = try #require(operatorRule["spec"] as? [String: Any])
        #expect(NSDictionary(dictionary: spec).isEqual(to: rules), "deploy/kubernetes/prometheusrule.yaml differs from deploy/prometheus/sluice-rules.yaml: run deploy/prometheus/make-prometheusrule.sh")

        guard let promtool = Self.onPath("promtool") else { return }  // .ci/run installs it
        let check = try Self.run(promtool, ["check", "rules", Self.root + "/deploy/prometheus/sluice-rules.yaml"])
        #expect(check.status == 0, "\(check.output)")
        let test = try Self.run(promtool, ["test", "rules", Self.root + "/deploy/prometheus/sluice-rules.test.yaml"])
        #expect(test.status == 0, "\(test.output)")
    }

    // MARK: systemd

    @Test func systemdUnitVerifiesAndScoresAtMostTwo() throws {
        let unit = try Self.read("deploy/systemd/sluice.service")
        for line in ["Type=notify", "LogsDirectory=sluice", "StateDirectory=sluice", "ProtectSystem=strict", "ProtectHome=yes",
                     "PrivateTmp=yes", "NoNewPrivileges=yes", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "ExecReload=/bin/kill -HUP $MAINPID"] {
            #expect(unit.split(separator: "\n").contains(Substring(line)), "the unit lacks \(line)")
        }
        try checkSluiceCommandLines(in: unit, prefix: "/usr/local/bin/sluice ", source: "sluice.service")
        guard let analyze = Self.onPath("systemd-analyze") else { return }  // .ci/run installs systemd
        let dir = NSTemporaryDirectory() + "sluice-unit-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // verify insists that the binary exists: point the unit at the one just built.
        let path = dir + "/sluice.service"
        try unit.replacingOccurrences(of: "/usr/local/bin/sluice", with: Self.sluiceBinary).write(toFile: path, atomically: true, encoding: .utf8)
        let verify = try Self.run(analyze, ["verify", path])
        // verify exits 0 on unknown or invalid settings and only prints them: any output fails.
        #expect(verify.status == 0 && verify.output.isEmpty, "systemd-analyze verify:\n\(verify.output)")
        let security = try Self.run(analyze, ["security", "--offline=yes", path])
        let score = security.output.split(separator: "\n").last { $0.contains("Overall exposure level") }
            .flatMap { line in line.split(separator: " ").compactMap { Double($0) }.last }
        let exposure = try #require(score, "no score in:\n\(security.output)")
        #expect(exposure <= 2.0, "systemd-analyze security: \(exposure)")
    }

    /// Every `sluice SUBCOMMAND --flag` in `text` names a subcommand and flags that `--help` lists.
    func checkSluiceCommandLines(in text: String, prefix: String, source: String) throws {
        for line in text.split(separator: "\n") {
            guard let r = line.range(of: prefix) else { continue }
            let words = line[r.upperBound...].split(separator: " ").map(String.init)
            try checkSluiceArguments(words, source: source)
        }
    }

    /// `arguments` (subcommand first) names a subcommand and flags that its `--help` lists.
    func checkSluiceArguments(_ arguments: [String], source: String) throws {
        guard let sub = arguments.first else { return }
        if !Self.adminKit && Self.pendingAdminKit.commands.contains(sub) { return }
        let help = try runSluiceCLI([sub, "--help"])
        #expect(help.status == 0 && help.out.contains("USAGE: sluice \(sub)"), "\(source): `sluice \(sub)` is not a command")
        for flag in arguments.dropFirst() where flag.hasPrefix("--") {
            let name = String(flag.split(separator: "=")[0])
            #expect(help.out.contains(name + " ") || help.out.contains(name + "\n") || help.out.contains(name + ","),
                    "\(source): `sluice \(sub)` has no \(name)")
        }
    }

    // MARK: Kubernetes

    /// Every document of the kustomization's resources, by kind and name.
    func kubernetesDocuments() throws -> [[String: Any]] {
        let kustomization = try #require(try Yams.load(yaml: try Self.read("deploy/kubernetes/kustomization.yaml")) as? [String: Any])
        var docs: [[String: Any]] = []
        for file in try #require(kustomization["resources"] as? [String]) {
            for doc in try Yams.load_all(yaml: try Self.read("deploy/kubernetes/" + file)) {
                docs.append(try #require(doc as? [String: Any], "\(file): not a mapping"))
            }
        }
        let generators = try #require(kustomization["configMapGenerator"] as? [[String: Any]])
        #expect(generators.first?["name"] as? String == "sluice-config")
        return docs
    }

    /// The config the pods run, loaded by Sluice's own loader (with host names as they are; the
    /// resolver here answers any name).
    func loadConfig(_ path: String) throws -> SluiceConfig {
        var text = try Self.read(path)
        if !Self.adminKit {
            // Without the admin kit the loader does not know `metrics:` yet: check the rest.
            text = text.split(separator: "\n", omittingEmptySubsequences: false).reduce(into: (lines: [String](), skipping: false)) { acc, line in
                if line.hasPrefix("metrics:") { acc.skipping = true; return }
                if acc.skipping && (line.hasPrefix(" ") || line.hasPrefix("#")) { return }
                acc.skipping = false
                acc.lines.append(String(line))
            }.lines.joined(separator: "\n")
        }
        let resolver = HostResolver { _ in .success([.v4(0x0a00_0001, port: 0)]) }
        return try ConfigLoader.load(text: text, path: path, version: 1, resolver: resolver)
    }

    /// The port of `key: { address: HOST:PORT }` in a config text.
    func configPort(_ text: String, section: String) -> Int? {
        var inSection = false
        for line in text.split(separator: "\n") {
            if !line.hasPrefix(" ") && !line.hasPrefix("#") { inSection = line.hasPrefix(section + ":") }
            if inSection, let r = line.range(of: "address: ") {
                return line[r.upperBound...].split(separator: ":").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            }
        }
        return nil
    }

    @Test func kubernetesManifestsNameOnlyPortsPathsAndFlagsThatExist() throws {
        let docs = try kubernetesDocuments()
        func doc(_ kind: String, _ name: String) throws -> [String: Any] {
            try #require(docs.first { $0["kind"] as? String == kind && ($0["metadata"] as? [String: Any])?["name"] as? String == name },
                         "no \(kind) \(name)")
        }
        #expect(Set(docs.compactMap { $0["kind"] as? String })
                == ["Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule",
                    "StatefulSet", "NetworkPolicy"])  // the last two: etcd.yaml, the fleet's shared state
        let deployment = try doc("Deployment", "sluice")
        let podTemplate = try #require((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])
        let podLabels = try #require((podTemplate["metadata"] as? [String: Any])?["labels"] as? [String: String])
        let pod = try #require(podTemplate["spec"] as? [String: Any])
        let containers = try #require(pod["containers"] as? [[String: Any]])
        let sluice = try #require(containers.first { $0["name"] as? String == "sluice" })
        let ports = try #require(sluice["ports"] as? [[String: Any]])
        var portByName: [String: Int] = [:]
        for p in ports { portByName[try #require(p["name"] as? String)] = try #require(p["containerPort"] as? Int) }

        // The ports are the ones the config listens on, on all interfaces.
        let configText = try Self.read("deploy/kubernetes/sluice.yaml")
        let config = try loadConfig("deploy/kubernetes/sluice.yaml")
        #expect(config.listeners.map(\.address.description) == ["0.0.0.0:\(portByName["http"] ?? -1)"])
        #expect(configPort(configText, section: "metrics") == portByName["metrics"])
        #expect(configText.contains("address: 0.0.0.0:\(portByName["metrics"] ?? -1)"))
        #expect(config.adminAddress.description == "127.0.0.1:9901", "the admin API stays on the pod's loopback")

        // Probes: paths the admin/metrics listener serves, on a declared port.
        var probePaths: [String] = []
        for key in ["readinessProbe", "livenessProbe", "startupProbe"] {
            let probe = try #require((sluice[key] as? [String: Any])?["httpGet"] as? [String: Any], "no \(key)")
            let port = try #require(probe["port"] as? String)
            #expect(portByName[port] != nil, "\(key) uses port \(port), which the container does not declare")
            probePaths.append(try #require(probe["path"] as? String))
        }
        #expect(probePaths == ["/ready", "/healthz", "/healthz"])
        let controlSources = try (FileManager.default.subpaths(atPath: Self.root + "/Sources/SluiceControl") ?? [])
            .filter { $0.hasSuffix(".swift") }
            .map { try Self.read("Sources/SluiceControl/" + $0) }.joined()
        for path in Set(probePaths) where Self.adminKit || !Self.pendingAdminKit.paths.contains(path) {
            #expect(controlSources.contains("\"\(path)\""), "probe path \(path) is not an admin endpoint")
        }

        // Flags: the container's and the init container's arguments.
        let args = try #require(sluice["args"] as? [String])
        try checkSluiceArguments(args, source: "deployment.yaml")
        let initArgs = try #require((pod["initContainers"] as? [[String: Any]])?.first?["args"] as? [String])
        try checkSluiceArguments(initArgs, source: "deployment.yaml initContainers")
        #expect(initArgs.first == "check")

        // --config and --state-file point into mounted volumes; the state one is writable.
        let mounts = try #require(sluice["volumeMounts"] as? [[String: Any]])
        func mount(for file: String) -> [String: Any]? {
            mounts.first { file.hasPrefix(((($0["mountPath"] as? String) ?? "") + "/")) }
        }
        let configFile = try #require(args.firstIndex(of: "--config").map { args[$0 + 1] })
        let stateFile = try #require(args.firstIndex(of: "--state-file").map { args[$0 + 1] })
        #expect(mount(for: configFile)?["name"] as? String == "config")
        let state = try #require(mount(for: stateFile))
        #expect(state["readOnly"] as? Bool != true)
        let volumes = try #require(pod["volumes"] as? [[String: Any]])
        #expect(volumes.contains { $0["name"] as? String == state["name"] as? String })
        #expect((volumes.first { $0["name"] as? String == "config" }?["configMap"] as? [String: Any])?["name"] as? String == "sluice-config")

        // The token from a Secret, in the variable Sluice reads.
        let env = try #require(sluice["env"] as? [[String: Any]])
        let token = try #require(env.first { $0["name"] as? String == "SLUICE_ADMIN_TOKEN" })
        #expect(((token["valueFrom"] as? [String: Any])?["secretKeyRef"] as? [String: Any])?["name"] as? String == "sluice-admin-token")
        #expect(try Self.read("README.md").contains("SLUICE_ADMIN_TOKEN"))

        // Restricted security context, resources, a preStop pause, a grace period above the drain.
        let sc = try #require(sluice["securityContext"] as? [String: Any])
        #expect(sc["allowPrivilegeEscalation"] as? Bool == false && sc["readOnlyRootFilesystem"] as? Bool == true)
        #expect((sc["capabilities"] as? [String: Any])?["drop"] as? [String] == ["ALL"])
        let podSC = try #require(pod["securityContext"] as? [String: Any])
        #expect(podSC["runAsNonRoot"] as? Bool == true)
        #expect((podSC["seccompProfile"] as? [String: Any])?["type"] as? String == "RuntimeDefault")
        let resources = try #require(sluice["resources"] as? [String: Any])
        #expect(resources["requests"] != nil && resources["limits"] != nil)
        #expect((sluice["lifecycle"] as? [String: Any])?["preStop"] != nil)
        let grace = try #require(pod["terminationGracePeriodSeconds"] as? Int)
        #expect(UInt64(grace) * 1_000_000_000 > config.timeouts.drain + 5_000_000_000)

        // Services, the PodDisruptionBudget and the ServiceMonitor select what exists.
        for name in ["sluice", "sluice-metrics"] {
            let spec = try #require(try doc("Service", name)["spec"] as? [String: Any])
            let selector = try #require(spec["selector"] as? [String: String])
            #expect(selector.allSatisfy { podLabels[$0.key] == $0.value }, "Service \(name) selects no pod")
            for p in try #require(spec["ports"] as? [[String: Any]]) {
                let target = try #require(p["targetPort"] as? String)
                #expect(portByName[target] != nil, "Service \(name) targets port \(target), which the container does not declare")
            }
        }
        let pdb = try #require(try doc("PodDisruptionBudget", "sluice")["spec"] as? [String: Any])
        let pdbSelector = try #require((pdb["selector"] as? [String: Any])?["matchLabels"] as? [String: String])
        #expect(pdbSelector.allSatisfy { podLabels[$0.key] == $0.value })
        let monitor = try #require(try doc("ServiceMonitor", "sluice")["spec"] as? [String: Any])
        let metricsService = try doc("Service", "sluice-metrics")
        let serviceLabels = try #require((metricsService["metadata"] as? [String: Any])?["labels"] as? [String: String])
        let monitorSelector = try #require((monitor["selector"] as? [String: Any])?["matchLabels"] as? [String: String])
        #expect(monitorSelector.allSatisfy { serviceLabels[$0.key] == $0.value }, "the ServiceMonitor selects no Service")
        let endpoint = try #require((monitor["endpoints"] as? [[String: Any]])?.first)
        #expect(endpoint["port"] as? String == "metrics" && endpoint["path"] as? String == "/metrics")
    }

    // MARK: Container

    @Test func containerfileNamesFlagsAndConfigThatExist() throws {
        let file = try Self.read("deploy/container/Containerfile")
        let lines = file.split(separator: "\n").map(String.init)
        func jsonArray(_ prefix: String) throws -> [String] {
            let line = try #require(lines.first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(prefix) },
                                    "no \(prefix) line")
            let start = try #require(line.firstIndex(of: "["))
            return try #require(try JSONSerialization.jsonObject(with: Data(line[start...].utf8)) as? [String])
        }
        let cmd = try jsonArray("CMD [\"run\"")
        try checkSluiceArguments(cmd, source: "Containerfile CMD")
        let health = try jsonArray("CMD [\"/usr/local/bin/sluice\", \"health\"")
        #expect(lines.contains { $0.hasPrefix("HEALTHCHECK") })
        try checkSluiceArguments(Array(health.dropFirst()), source: "Containerfile HEALTHCHECK")
        // The state file lives in the declared volume, the build uses the documented script.
        let stateFile = try #require(cmd.firstIndex(of: "--state-file").map { cmd[$0 + 1] })
        let volume = try #require(lines.first { $0.hasPrefix("VOLUME ") }).dropFirst(7)
        #expect(stateFile.hasPrefix(volume + "/"))
        #expect(lines.contains("RUN scripts/build-release.sh"))
        #expect(FileManager.default.isExecutableFile(atPath: Self.root + "/scripts/build-release.sh"))
        #expect(FileManager.default.fileExists(atPath: Self.root + "/.dockerignore"))
        // The example config listens on all interfaces and keeps its state in the volume.
        let config = try loadConfig("deploy/container/sluice.yaml")
        #expect(config.listeners.allSatisfy { $0.address.description.hasPrefix("0.0.0.0:") })
        #expect(config.stateFile == stateFile)
        let exposed = try #require(lines.first { $0.hasPrefix("EXPOSE ") }).split(separator: " ").dropFirst().compactMap { Int($0) }
        #expect(exposed.contains(Int(config.listeners[0].address.port)))
    }
}
