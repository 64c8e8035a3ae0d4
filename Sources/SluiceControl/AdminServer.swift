#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceProxy
import Synchronization

/// Handles one admin request (runs on a control thread of the admin API, never on a worker).
public typealias AdminHandler = @Sendable (AdminRequest) -> AdminResponse

/// The admin API: an HTTP/1.1 server on its own event loop thread (`AdminLoop`), with handlers
/// run on control threads (one `ControlLane` thread per `AdminLane`), never on a proxy worker.
///
/// Built-in endpoints: `GET /metrics` (Prometheus text format 0.0.4), `GET /admin/stats`
/// (windowed statistics as JSON), `GET /admin/events` (recent routing changes; `?limit=N`,
/// `?after=ID`), `GET /healthz` (the process answers), `GET /ready` (200 while serving, 503
/// while starting or draining). Unknown paths get 404 and known paths with another method 405
/// (with `Allow`), both with JSON error bodies. More endpoints are added with `register`.
///
/// Access (`AdminPolicy`): with a token set, every endpoint but the public ones (`/metrics`,
/// `/healthz`, `/ready` unless `admin.public_endpoints` says otherwise) needs
/// `Authorization: Bearer TOKEN`; state-changing endpoints (`mutating`, by default every method
/// but GET and HEAD) also refuse cross-site requests (foreign `Origin`, foreign `Host`, a body
/// that is not `application/json`), and topology reads refuse a foreign `Host` (DNS rebinding).
/// The token and these checks are applied as soon as the head is in, before any body byte is read.
///
/// A non-loopback address without a token is refused (`init` throws): the API would be open
/// to anyone who can reach it. An optional metrics listener (`addMetricsListener`) serves
/// `/metrics`, `/healthz` and `/ready` only.
public final class AdminServer: Sendable {
    /// The address asked for (port 0: any free port; see `boundAddress`).
    public let address: SocketAddress
    /// The bearer token, when set.
    public let token: String?
    /// Most connections held at once (when full, the oldest one without the token is closed).
    public let maxConnections: Int
    /// Token, public endpoints and cross-site rules.
    public let policy: AdminPolicy
    /// What `/ready` answers.
    public let health: ServiceHealth
    private let settings: AdminSettings

    private struct Endpoint: Sendable {
        var method: String
        var path: String
        var mutating: Bool
        var inline: Bool
        var handler: AdminHandler
    }

    private struct State: Sendable {
        var endpoints: [Endpoint] = []
        var boundAddress: SocketAddress?
        var metricsSpec: MetricsListenerSpec?
        var metricsBound: SocketAddress?
        var loop: AdminLoop?
        var thread: pthread_t?
        var lanes: [ControlLane] = []
    }

    private let state = Mutex(State())

    /// The paths the metrics listener serves.
    public static let metricsListenerPaths = ["/metrics", "/healthz", "/ready"]

    /// A server for `hub`'s metrics and `events`, reading the serving table through `table`.
    /// Throws when `address` is not loopback and no (non-empty) token is given.
    public init(address: SocketAddress, token: String?, hub: MetricsHub, events: EventLog,
                table: @escaping @Sendable () -> RoutingTable, maxConnections: Int? = nil,
                settings: AdminSettings = AdminSettings(), health: ServiceHealth = ServiceHealth()) throws(AdminError) {
        try AdminServer.checkExposure(address: address, token: token)
        self.address = address
        self.token = (token ?? "").isEmpty ? nil : token
        self.maxConnections = max(1, maxConnections ?? settings.maxConnections)
        self.policy = AdminPolicy(token: token, allowedHosts: settings.allowedHosts, publicPaths: settings.publicEndpoints)
        self.health = health
        self.settings = settings
        state.withLock { $0.metricsSpec = settings.metrics }
        register("GET", "/metrics") { _ in
            .text(hub.renderMetrics(table: table()), contentType: PrometheusExposition.contentType)
        }
        register("GET", "/admin/stats") { _ in
            .json(StatsReport.build(hub: hub, table: table()))
        }
        register("GET", "/admin/events") { request in
            var limit: Int?
            var after: UInt64?
            if let l = request.query["limit"] {
                guard let v = Int(l), v >= 0 else { return .error(400, "limit must be a non-negative integer") }
                limit = v
            }
            if let a = request.query["after"] {
                guard let v = UInt64(a) else { return .error(400, "after must be an event id") }
                after = v
            }
            return .json(events.recent(limit: limit, after: after))
        }
        // Answered on the loop itself (atomics only), so they answer even while handlers are busy.
        addEndpoint(Endpoint(method: "GET", path: "/healthz", mutating: false, inline: true) { _ in .text("ok\n") })
        addEndpoint(Endpoint(method: "GET", path: "/ready", mutating: false, inline: true) { _ in
            if let reason = health.notReadyReason { return .text("not ready: \(reason)\n", status: 503) }
            return .text("ready\n")
        })
    }

    /// A server at the config's `admin:` address, token and settings, reporting on `server`'s serving table.
    public convenience init(config: SluiceConfig, hub: MetricsHub, events: EventLog, server: ProxyServer,
                            health: ServiceHealth = ServiceHealth()) throws(AdminError) {
        try self.init(address: config.adminAddress, token: config.adminToken, hub: hub, events: events,
                      table: { server.table }, settings: config.admin, health: health)
    }

    /// Refuses an admin address reachable from other hosts when no token protects it.
    public static func checkExposure(address: SocketAddress, token: String?) throws(AdminError) {
        if !address.isLoopback && (token ?? "").isEmpty {
            throw AdminError("""
                admin address \(address) is not a loopback address and admin.token is not set: \
                anyone who can reach it could use the admin API. Set admin.token, or bind the admin API \
                to 127.0.0.1 (or ::1)
                """)
        }
    }

    /// True when `request` may call a mutating endpoint: no token is configured, or it carries
    /// `Authorization: Bearer <token>` (compared in constant time).
    public static func isAuthorized(_ request: AdminRequest, token: String?) -> Bool {
        AdminPolicy(token: token).isAuthorized(.mutate, authorization: request.header("authorization"))
    }

    /// Adds an endpoint (replacing one with the same method and path). `mutating` defaults to
    /// true for every method but GET and HEAD. Safe while running.
    ///
    /// A path segment written `{name}` matches any one non-empty segment of letters, digits,
    /// `-`, `_` and `.`; the handler finds it in `request.pathParameters["name"]`.
    public func register(_ method: String, _ path: String, mutating: Bool? = nil, _ handler: @escaping AdminHandler) {
        addEndpoint(Endpoint(method: method, path: path, mutating: mutating ?? !(method == "GET" || method == "HEAD"),
                             inline: false, handler: handler))
    }

    private func addEndpoint(_ endpoint: Endpoint) {
        state.withLock { s in
            s.endpoints.removeAll { $0.method == endpoint.method && $0.path == endpoint.path }
            s.endpoints.append(endpoint)
        }
    }

    /// Adds a listener that serves `/metrics`, `/healthz` and `/ready` only (call before `start`).
    public func addMetricsListener(_ spec: MetricsListenerSpec) {
        state.withLock { $0.metricsSpec = spec }
    }

    /// The address actually bound (the port resolved when 0 was asked for); nil before `start`.
    public var boundAddress: SocketAddress? {
        state.withLock { $0.boundAddress }
    }

    /// The metrics listener's bound address; nil without one or before `start`.
    public var metricsBoundAddress: SocketAddress? {
        state.withLock { $0.metricsBound }
    }

    /// Connection counters of the running loop (zeros before `start`).
    public var counters: AdminLoopCounters {
        state.withLock { $0.loop }?.snapshot ?? AdminLoopCounters(open: 0, accepted: 0, evicted: 0, timedOut: 0, refused: 0)
    }

    /// Binds the listeners and starts the event loop thread. Throws when already started or
    /// when an address cannot be bound.
    public func start() throws(AdminError) {
        let (running, metricsSpec) = state.withLock { ($0.loop != nil, $0.metricsSpec) }
        guard !running else { throw AdminError("the admin API is already running") }
        let fd = try AdminSocket.listen(on: address, nonBlocking: true)
        var slots = [AdminListenerSlot(fd: fd, role: .admin, allow: settings.allow)]
        var metricsBound: SocketAddress?
        if let metricsSpec {
            do throws(AdminError) {
                let mfd = try AdminSocket.listen(on: metricsSpec.address, nonBlocking: true, what: "the metrics listener")
                slots.append(AdminListenerSlot(fd: mfd, role: .metrics, allow: metricsSpec.allow))
                metricsBound = AdminSocket.localAddress(mfd) ?? metricsSpec.address
            } catch {
                close(fd)
                throw error
            }
        }
        let bound = AdminSocket.localAddress(fd) ?? address
        var limits = AdminLoopLimits()
        limits.maxConnections = maxConnections
        limits.requestTimeout = settings.requestTimeout
        let priority: ControlLane, read: ControlLane, metrics: ControlLane
        let loop: AdminLoop
        do throws(AdminError) {
            priority = try ControlLane()
            do throws(AdminError) {
                read = try ControlLane()
                do throws(AdminError) {
                    metrics = try ControlLane()
                } catch {
                    read.stop()
                    throw error
                }
            } catch {
                priority.stop()
                throw error
            }
            do throws(AdminError) {
                loop = try AdminLoop(listeners: slots, limits: limits,
                                     decide: { [self] request, role, local, hasBody in
                                         decide(&request, role: role, local: local, hasBody: hasBody)
                                     },
                                     run: { lane, job in
                                         switch lane {
                                         case .priority: priority.submit(job)
                                         case .read: read.submit(job)
                                         case .metrics: metrics.submit(job)
                                         }
                                     })
            } catch {
                for lane in [priority, read, metrics] { lane.stop() }
                throw error
            }
        } catch {
            for s in slots { close(s.fd) }
            throw error
        }
        let thread: pthread_t
        do throws(AdminError) {
            thread = try ControlThread.spawn { loop.runLoop() }
        } catch {
            // Stopped before it ran: `runLoop` returns at once, closing the listeners, eventfd and epoll.
            loop.requestStop()
            loop.runLoop()
            for lane in [priority, read, metrics] { lane.stop() }
            throw error
        }
        state.withLock { s in
            s.boundAddress = bound
            s.metricsBound = metricsBound
            s.loop = loop
            s.thread = thread
            s.lanes = [priority, read, metrics]
        }
    }

    /// Stops the loop and closes every admin connection and listener. Handlers already running
    /// finish on their control thread; their responses are dropped.
    public func stop() {
        let (loop, thread, lanes) = state.withLock { s in
            defer {
                s.loop = nil
                s.thread = nil
                s.lanes = []
            }
            return (s.loop, s.thread, s.lanes)
        }
        loop?.requestStop()
        if let thread { pthread_join(thread, nil) }
        for lane in lanes { lane.stop() }
    }

    /// What to do with a request whose head is in (called on the loop thread): routing, the
    /// listener's scope, the token, then for state-changing calls the cross-site checks.
    func decide(_ request: inout AdminRequest, role: AdminListenerRole, local: SocketAddress, hasBody: Bool) -> AdminDecision {
        if role == .metrics && !AdminServer.metricsListenerPaths.contains(request.path) {
            return .respond(.error(404, "the metrics listener serves only /metrics, /healthz and /ready"))
        }
        let chosen: Endpoint
        switch route(&request) {
        case .failure(let failure): return .respond(failure.response)
        case .success(let endpoint): chosen = endpoint
        }
        let access = policy.access(method: chosen.method, path: chosen.path, mutating: chosen.mutating)
        let authorization = request.header("authorization")
        guard policy.isAuthorized(access, authorization: authorization) else {
            return .respond(.error(401, "this endpoint requires Authorization: Bearer <admin token> "
                                       + "(with the sluice CLI: --token, --token-file or $SLUICE_ADMIN_TOKEN)",
                                   headers: [("WWW-Authenticate", "Bearer realm=\"sluice\"")]))
        }
        if access == .mutate, let refusal = policy.crossSiteRefusal(request, local: local, hasBody: hasBody) {
            return .respond(refusal)
        }
        if access == .read, let refusal = policy.foreignHostRefusal(request, local: local) {
            return .respond(refusal)
        }
        let authenticated = policy.hasValidToken(authorization)
        let lane: AdminLane
        if authenticated || (policy.token == nil && access == .mutate) {
            lane = .priority
        } else {
            lane = role == .metrics ? .metrics : .read
        }
        return .proceed(handler: chosen.handler, lane: lane, inline: chosen.inline, authenticated: authenticated,
                        pathParameters: request.pathParameters)
    }

    /// The endpoint for `request` (its path parameters set), or the 404/405 to answer.
    private func route(_ request: inout AdminRequest) -> Result<Endpoint, AdminRouteFailure> {
        let path = request.path
        let endpoints = state.withLock { s in s.endpoints.filter { AdminServer.match($0.path, path) != nil } }
        guard !endpoints.isEmpty else { return .failure(AdminRouteFailure(.error(404, "no such endpoint: \(request.path)"))) }
        let wanted = request.method == "HEAD" ? "GET" : request.method
        // An exact path wins over a pattern.
        let candidates = endpoints.filter { $0.method == wanted }
        guard let endpoint = candidates.first(where: { $0.path == request.path }) ?? candidates.first else {
            var allowed = endpoints.map(\.method)
            if allowed.contains("GET") { allowed.append("HEAD") }
            let allow = allowed.joined(separator: ", ")
            return .failure(AdminRouteFailure(.error(405, "\(request.method) is not allowed on \(request.path) (allowed: \(allow))",
                                                     headers: [("Allow", allow)])))
        }
        request.pathParameters = AdminServer.match(endpoint.path, request.path) ?? [:]
        return .success(endpoint)
    }

    /// The response to `request` as if it arrived on the admin listener at its own address:
    /// routing, authorization and the cross-site checks, then the handler (on the calling thread).
    public func respond(to request: AdminRequest) -> AdminResponse {
        var request = request
        let local = boundAddress ?? address
        switch decide(&request, role: .admin, local: local, hasBody: !request.body.isEmpty) {
        case .respond(let response): return response
        case .proceed(let handler, _, _, _, let parameters):
            request.pathParameters = parameters
            return handler(request)
        }
    }

    /// The `{name}` values when `path` matches `pattern`, nil otherwise.
    static func match(_ pattern: String, _ path: String) -> [String: String]? {
        if pattern == path { return [:] }
        guard pattern.contains("{") else { return nil }
        let p = pattern.split(separator: "/", omittingEmptySubsequences: false)
        let q = path.split(separator: "/", omittingEmptySubsequences: false)
        guard p.count == q.count else { return nil }
        var out: [String: String] = [:]
        for (a, b) in zip(p, q) {
            if a.hasPrefix("{") && a.hasSuffix("}") {
                guard !b.isEmpty, b.utf8.count <= 128, b.allSatisfy({
                    $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".")
                }) else { return nil }
                out[String(a.dropFirst().dropLast())] = String(b)
            } else if a != b {
                return nil
            }
        }
        return out
    }
}

/// A 404 or 405 from routing (a `Result` failure needs an `Error`).
private struct AdminRouteFailure: Error {
    var response: AdminResponse
    init(_ response: AdminResponse) { self.response = response }
}
