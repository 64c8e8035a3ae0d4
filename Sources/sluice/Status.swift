import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SluiceControl
import SluiceCore

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show each route's cohorts: weight, request rate, error rate and p50/p95/p99 latency.",
        discussion: """
            Reads GET /admin/stats from a running sluice. Give the config file it runs with \
            (its admin.address is used) or the admin address itself. Rates and percentiles are \
            over the last minute (--window 1m) or five minutes (--window 5m), ending now: the \
            seconds since the last sample count too, so a freshly started sluice shows its first \
            requests at once (over the time it has run). Exits 1 when the admin API cannot be \
            reached, 64 on a usage error.
            """
    )

    @Option(name: .shortAndLong, help: "The config file sluice runs with (its admin.address and admin.token are used).")
    var config: String?

    @Option(help: "Admin API address as HOST:PORT (default 127.0.0.1:9901).")
    var admin: String?

    @Option(help: "Bearer token for the admin API (default: admin.token or admin.token_file of --config, else $SLUICE_ADMIN_TOKEN).")
    var token: String?

    @Option(help: "File holding the bearer token (e.g. a mounted Secret); instead of --token.")
    var tokenFile: String?

    @Option(help: "Window to show: 1m or 5m.")
    var window: String = "1m"

    @Flag(help: "Print the raw /admin/stats JSON instead of tables.")
    var json = false

    @Option(help: "Seconds to wait for the admin API.")
    var timeout: Int = 5

    func validate() throws {
        if config != nil && admin != nil { throw ValidationError("give --config or --admin, not both") }
        if let admin, Self.parseAddress(admin) == nil {
            throw ValidationError("--admin \(admin): expected HOST:PORT, e.g. 127.0.0.1:9901")
        }
        if token != nil && tokenFile != nil { throw ValidationError("give --token or --token-file, not both") }
        if !StatsReport.standardWindows.contains(where: { $0.name == window }) {
            throw ValidationError("--window must be one of: " + StatsReport.standardWindows.map(\.name).joined(separator: ", "))
        }
        if timeout < 1 { throw ValidationError("--timeout must be at least 1 second") }
    }

    func run() throws {
        var address = SocketAddress.v4(0x7f00_0001, port: 9901)
        var token = ConfigLoader.environmentToken()
        if let path = config {
            do {
                let loaded = try ConfigLoader.load(path: path)
                address = loaded.adminAddress
                token = loaded.adminToken
            } catch {
                printError("sluice status: cannot read the admin address from \(path): \(problemCount(error.diagnostics.count)) (`sluice check --config \(path)` lists them)")
                throw ExitCode(1)
            }
            if address.port == 0 {
                printError("sluice status: \(path) binds the admin API to port 0 (any free port); give the address with --admin")
                throw ExitCode(1)
            }
        } else if let text = admin {
            // validate() checked it.
            address = Self.parseAddress(text) ?? address
        }
        if let given = self.token { token = given }
        if let tokenFile {
            switch AdminTokenFile.read(tokenFile) {
            case .success(let t): token = t
            case .failure(let e):
                printError("sluice status: --token-file: \(e.message)")
                throw ExitCode(1)
            }
        }
        let target = AdminClient.reachableAddress(for: address)
        let response: AdminClientResponse
        do {
            response = try AdminClient.request("GET", "/admin/stats", to: target, token: token,
                                               timeoutMillis: Int32(timeout * 1000))
        } catch {
            printError("sluice status: cannot reach the admin API at \(target): \(error) (is sluice running, with this admin address?)")
            throw ExitCode(1)
        }
        guard response.status == 200 else {
            printError("sluice status: \(target) answered \(response.status): \(response.text)")
            throw ExitCode(1)
        }
        if json {
            print(response.text, terminator: response.text.hasSuffix("\n") ? "" : "\n")
            return
        }
        let report: StatsReport
        do {
            report = try JSONDecoder().decode(StatsReport.self, from: Data(response.body))
        } catch {
            printError("sluice status: \(target) answered JSON this version cannot read: \(error)")
            throw ExitCode(1)
        }
        print(StatusTable.render(report, window: window), terminator: "")
        // With `cluster:`: this replica in its fleet (etcd connection, versions, file, leaders).
        if let c = try? AdminClient.request("GET", "/admin/cluster", to: target, token: token, timeoutMillis: Int32(timeout * 1000)),
           c.status == 200, let cluster = try? JSONDecoder().decode(ClusterStatus.self, from: Data(c.body)) {
            print(cluster.text, terminator: "")
        }
        // Endpoint availability (issue 15): ejected and unhealthy endpoints are marked.
        if let e = try? AdminClient.request("GET", "/admin/endpoints", to: target, token: token, timeoutMillis: Int32(timeout * 1000)),
           e.status == 200, let endpoints = try? JSONDecoder().decode(EndpointsReport.self, from: Data(e.body)),
           !endpoints.upstreams.isEmpty {
            print("\n" + endpoints.text, terminator: "")
        }
        // Fault drills (issue 19), when the running sluice has any.
        if let faults = try? AdminClient.request("GET", "/admin/faults", to: target, token: token, timeoutMillis: Int32(timeout * 1000)),
           faults.status == 200, let drills = try? JSONDecoder().decode(FaultReport.self, from: Data(faults.body)),
           !drills.active.isEmpty || !(drills.configured ?? []).isEmpty {
            print("\n" + drills.text, terminator: "")
        }
    }

    /// `HOST:PORT` with a numeric host, `localhost` or a port alone.
    static func parseAddress(_ text: String) -> SocketAddress? {
        if let a = SocketAddress.parse(text) { return a }
        if let port = UInt16(text) { return .v4(0x7f00_0001, port: port) }
        if let (host, port) = SocketAddress.splitHostPort(text), host == "localhost" { return .v4(0x7f00_0001, port: port) }
        return nil
    }
}
