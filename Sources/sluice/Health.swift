import ArgumentParser
import SluiceControl
import SluiceCore

/// `sluice health`: a container health check (Docker HEALTHCHECK, Kubernetes exec probe).
struct Health: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that a running sluice is alive (GET /healthz) or ready (--ready: GET /ready).",
        discussion: """
            Exits 0 when the admin API (or the metrics listener, given with --admin) answers 200, \
            1 otherwise (not running, not ready, draining), printing the answer in one line. \
            Meant for container health checks: HEALTHCHECK CMD ["sluice", "health", "--admin", "127.0.0.1:9901"].
            """
    )

    @OptionGroup var options: AdminOptions

    @Flag(help: "Check readiness (GET /ready: listening, config loaded, not draining) instead of liveness.")
    var ready = false

    func run() throws {
        let path = ready ? "/ready" : "/healthz"
        let (address, token) = try options.target("health")
        let response: AdminClientResponse
        do {
            response = try AdminClient.request("GET", path, to: address, token: token, timeoutMillis: Int32(options.timeout * 1000))
        } catch {
            printError("sluice health: \(address)\(path): \(error)")
            throw ExitCode(1)
        }
        let text = String(response.text.split(separator: "\n").first ?? "")
        guard response.status == 200 else {
            printError("sluice health: \(address)\(path) answered \(response.status): \(text)")
            throw ExitCode(1)
        }
        print("\(address)\(path): \(text)")
    }
}
