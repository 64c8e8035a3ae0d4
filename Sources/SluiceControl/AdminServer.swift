#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceProxy
import Synchronization

/// Handles one admin request (runs on the connection's own thread).
public typealias AdminHandler = @Sendable (AdminRequest) -> AdminResponse

/// The admin API: a small blocking HTTP/1.1 server on its own threads (an accept thread, and a
/// thread per connection; one request per connection).
///
/// Built-in endpoints: `GET /metrics` (Prometheus text format 0.0.4), `GET /admin/stats`
/// (windowed statistics as JSON), `GET /admin/events` (recent routing changes; `?limit=N`,
/// `?after=ID`), `GET /healthz`. Unknown paths get 404 and known paths with another method 405
/// (with `Allow`), both with JSON error bodies. More endpoints are added with `register`;
/// those that change state (`mutating`, by default every method but GET and HEAD) require
/// `Authorization: Bearer TOKEN` when a token is configured.
///
/// A non-loopback address without a token is refused (`init` throws): the API would be open
/// to anyone who can reach it.
public final class AdminServer: Sendable {
    /// The address asked for (port 0: any free port; see `boundAddress`).
    public let address: SocketAddress
    /// The bearer token mutating endpoints require, when set.
    public let token: String?
    /// Most connections served at once; more are answered 503.
    public let maxConnections: Int

    private struct Endpoint: Sendable {
        var method: String
        var path: String
        var mutating: Bool
        var handler: AdminHandler
    }

    private struct State: Sendable {
        var endpoints: [Endpoint] = []
        var listenFD: Int32 = -1
        var boundAddress: SocketAddress?
        var acceptThread: pthread_t?
        var stop: StopSignal?
    }

    private let state = Mutex(State())
    private let activeConnections = Atomic<Int>(0)

    /// A server for `hub`'s metrics and `events`, reading the serving table through `table`.
    /// Throws when `address` is not loopback and no (non-empty) token is given.
    public init(address: SocketAddress, token: String?, hub: MetricsHub, events: EventLog,
                table: @escaping @Sendable () -> RoutingTable, maxConnections: Int = 64) throws(AdminError) {
        try AdminServer.checkExposure(address: address, token: token)
        self.address = address
        self.token = token
        self.maxConnections = max(1, maxConnections)
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
        register("GET", "/healthz") { _ in .text("ok\n") }
    }

    /// A server at the config's `admin:` address and token, reporting on `server`'s serving table.
    public convenience init(config: SluiceConfig, hub: MetricsHub, events: EventLog, server: ProxyServer) throws(AdminError) {
        try self.init(address: config.adminAddress, token: config.adminToken, hub: hub, events: events,
                      table: { server.table })
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
        guard let token, !token.isEmpty else { return true }
        guard let value = request.header("authorization") else { return false }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return false }
        let given = Array(String(parts[1]).trimmingSpaces().utf8)
        let wanted = Array(token.utf8)
        var diff = UInt8(given.count == wanted.count ? 0 : 1)
        for i in 0..<wanted.count { diff |= wanted[i] ^ (i < given.count ? given[i] : 0) }
        return diff == 0
    }

    /// Adds an endpoint (replacing one with the same method and path). `mutating` defaults to
    /// true for every method but GET and HEAD. Safe while running.
    ///
    /// A path segment written `{name}` matches any one non-empty segment of letters, digits,
    /// `-`, `_` and `.`; the handler finds it in `request.pathParameters["name"]`.
    public func register(_ method: String, _ path: String, mutating: Bool? = nil, _ handler: @escaping AdminHandler) {
        let endpoint = Endpoint(method: method, path: path, mutating: mutating ?? !(method == "GET" || method == "HEAD"),
                                handler: handler)
        state.withLock { s in
            s.endpoints.removeAll { $0.method == method && $0.path == path }
            s.endpoints.append(endpoint)
        }
    }

    /// The address actually bound (the port resolved when 0 was asked for); nil before `start`.
    public var boundAddress: SocketAddress? {
        state.withLock { $0.boundAddress }
    }

    /// Binds and starts the accept thread. Throws when already started or when the address cannot be bound.
    public func start() throws(AdminError) {
        guard state.withLock({ $0.acceptThread == nil }) else { throw AdminError("the admin API is already running") }
        let fd = try AdminSocket.listen(on: address)
        let bound = AdminSocket.localAddress(fd) ?? address
        let stop = StopSignal()
        let thread: pthread_t
        do throws(AdminError) {
            thread = try ControlThread.spawn { [self] in acceptLoop(fd: fd, stop: stop) }
        } catch {
            close(fd)
            throw error
        }
        state.withLock { s in
            s.listenFD = fd
            s.boundAddress = bound
            s.acceptThread = thread
            s.stop = stop
        }
    }

    /// Stops accepting and closes the listener (connections being served finish on their own).
    public func stop() {
        let (thread, stop, fd) = state.withLock { s in
            defer {
                s.acceptThread = nil
                s.stop = nil
                s.listenFD = -1
            }
            return (s.acceptThread, s.stop, s.listenFD)
        }
        stop?.stop()
        if let thread { pthread_join(thread, nil) }
        if fd >= 0 { close(fd) }
    }

    private func acceptLoop(fd: Int32, stop: StopSignal) {
        while !stop.isStopped {
            guard AdminSocket.waitReadable(fd, millis: 100) else { continue }
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EMFILE || errno == ENFILE { _ = stop.sleep(nanos: 100_000_000) }
                continue
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            AdminSocket.setTimeouts(client, millis: 5000)
            if activeConnections.add(1, ordering: .relaxed).newValue > maxConnections {
                _ = AdminSocket.writeAll(client, AdminResponse.error(503, "too many admin connections").serialized(headOnly: false))
                finish(client)
                continue
            }
            do throws(AdminError) {
                try ControlThread.detach { [self] in
                    serve(client)
                    finish(client)
                }
            } catch {
                finish(client)
            }
        }
    }

    private func finish(_ client: Int32) {
        shutdown(client, Int32(SHUT_WR))
        close(client)
        activeConnections.subtract(1, ordering: .relaxed)
    }

    private func serve(_ client: Int32) {
        switch AdminHTTP.read(from: client) {
        case .gone:
            return
        case .reject(let response):
            _ = AdminSocket.writeAll(client, response.serialized(headOnly: false))
        case .request(let request):
            let response = respond(to: request)
            _ = AdminSocket.writeAll(client, response.serialized(headOnly: request.method == "HEAD"))
        }
    }

    /// The response to `request`: routing, method check, authorization, then the handler.
    public func respond(to request: AdminRequest) -> AdminResponse {
        var request = request
        let endpoints = state.withLock { s in s.endpoints.filter { AdminServer.match($0.path, request.path) != nil } }
        guard !endpoints.isEmpty else { return .error(404, "no such endpoint: \(request.path)") }
        let wanted = request.method == "HEAD" ? "GET" : request.method
        // An exact path wins over a pattern.
        let candidates = endpoints.filter { $0.method == wanted }
        let chosen = candidates.first(where: { $0.path == request.path }) ?? candidates.first
        if let chosen { request.pathParameters = AdminServer.match(chosen.path, request.path) ?? [:] }
        guard let endpoint = chosen else {
            var allowed = endpoints.map(\.method)
            if allowed.contains("GET") { allowed.append("HEAD") }
            let allow = allowed.joined(separator: ", ")
            return .error(405, "\(request.method) is not allowed on \(request.path) (allowed: \(allow))",
                          headers: [("Allow", allow)])
        }
        if endpoint.mutating && !AdminServer.isAuthorized(request, token: token) {
            return .error(401, "this endpoint requires Authorization: Bearer <admin.token>",
                          headers: [("WWW-Authenticate", "Bearer realm=\"sluice\"")])
        }
        return endpoint.handler(request)
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
