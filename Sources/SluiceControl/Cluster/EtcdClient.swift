#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
// Foundation (not FoundationEssentials) for JSONSerialization: etcd's answers are read as
// untyped JSON. Control plane only.
import Foundation
import SluiceCore

/// A small blocking client for etcd's v3 API as JSON over HTTP/1.1 (the gRPC gateway that
/// etcd 3.4 serves on its client URLs): range, put, delete, txn, lease grant / keep-alive /
/// revoke, and watch as a stream of JSON objects.
///
/// Every unary call is one `POST /v3/...` on a new connection (`Connection: close`): no
/// connection state to get wrong, and a loopback or in-cluster connect costs far less than the
/// raft round trip behind a write. Endpoints are tried in order until one answers. Keys and
/// values travel base64-encoded; int64 fields arrive as JSON strings.
///
/// Control plane only (it blocks, uses Foundation); never called from a worker thread.
package final class EtcdClient: Sendable {
    /// One etcd client URL, `http://host:port`.
    package struct Endpoint: Sendable, Equatable, CustomStringConvertible {
        /// Host name or address literal.
        package var host: String
        /// TCP port.
        package var port: UInt16
        /// `http://host:port`.
        package var description: String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)" }

        /// Parses `http://host:port` (`https://` is refused: this client speaks plain HTTP).
        package static func parse(_ text: String) -> Result<Endpoint, AdminError> {
            var rest = Substring(text)
            if rest.hasPrefix("https://") {
                return .failure(AdminError("`\(text)`: TLS to etcd is not built in; reach etcd over plain HTTP on a trusted "
                                           + "network or through a local TLS-terminating proxy (see the README)"))
            }
            guard rest.hasPrefix("http://") else {
                return .failure(AdminError("`\(text)` is not an etcd client URL (expected http://HOST:PORT)"))
            }
            rest = rest.dropFirst(7)
            if rest.hasSuffix("/") { rest = rest.dropLast() }
            guard let (host, port) = SocketAddress.splitHostPort(String(rest)), !host.isEmpty, port != 0 else {
                return .failure(AdminError("`\(text)` is not an etcd client URL (expected http://HOST:PORT)"))
            }
            return .success(Endpoint(host: String(host), port: port))
        }
    }

    /// Why a call failed.
    package enum Failure: Error, Sendable, CustomStringConvertible {
        /// No endpoint could be reached or none answered in time.
        case unreachable(String)
        /// etcd answered with an error (HTTP status, its message).
        case refused(Int, String)
        /// etcd answered something this client cannot read.
        case protocolError(String)
        /// The request was sent but no complete answer came (a timeout, a closed connection):
        /// etcd may or may not have carried it out.
        case uncertain(String)

        /// One line for people.
        package var description: String {
            switch self {
            case .unreachable(let m): return "etcd unreachable: \(m)"
            case .refused(let status, let m): return "etcd refused the request (\(status)): \(m)"
            case .protocolError(let m): return "unexpected answer from etcd: \(m)"
            case .uncertain(let m): return "no answer from etcd: \(m)"
            }
        }
    }

    /// The endpoints, tried in order.
    package let endpoints: [Endpoint]
    /// Time allowed for a connect and for each read or write of a unary call.
    package let timeoutMillis: Int32
    /// `Authorization` token of etcd's auth (nil without auth), fetched with `authenticate`.
    private let token = ControlLock<String?>(nil)
    /// User name and password for etcd's auth (nil without auth).
    private let credentials: (user: String, password: String)?
    /// The endpoint that answered last (tried first next time).
    private let preferred = ControlLock(0)
    /// Resolved host names (monotonic expiry), so a heartbeat does not ask DNS every time.
    private let resolved = ControlLock<[String: (address: SocketAddress, until: UInt64)]>([:])

    /// A client for `endpoints`; `credentials` turn on etcd's user/password authentication.
    package init(endpoints: [Endpoint], timeoutMillis: Int32 = 2000, credentials: (user: String, password: String)? = nil) {
        self.endpoints = endpoints
        self.timeoutMillis = timeoutMillis
        self.credentials = credentials
    }

    // MARK: Key-value

    /// One key-value pair.
    package struct KeyValue: Sendable, Equatable {
        /// The key.
        package var key: String
        /// The value's bytes.
        package var value: [UInt8]
        /// Revision of its last change.
        package var modRevision: Int64
        /// Revision that created it.
        package var createRevision: Int64
        /// The lease it is bound to (0: none).
        package var lease: Int64
    }

    /// The pairs at `key` (or every key starting with `key` when `prefix`), and the store's revision.
    package func range(_ key: String, prefix: Bool = false) throws(Failure) -> (kvs: [KeyValue], revision: Int64) {
        var body: [String: Any] = ["key": Self.b64(key)]
        if prefix { body["range_end"] = Self.b64(Self.prefixEnd(key)) }
        let answer = try call("/v3/kv/range", body)
        return (try Self.kvs(answer["kvs"]), Self.revision(answer))
    }

    /// Puts `value` at `key` (bound to `lease` when non-zero); returns the new revision.
    @discardableResult
    package func put(_ key: String, _ value: [UInt8], lease: Int64 = 0) throws(Failure) -> Int64 {
        var body: [String: Any] = ["key": Self.b64(key), "value": Data(value).base64EncodedString()]
        if lease != 0 { body["lease"] = String(lease) }
        return Self.revision(try call("/v3/kv/put", body))
    }

    /// Deletes `key`; returns the new revision.
    @discardableResult
    package func delete(_ key: String) throws(Failure) -> Int64 {
        Self.revision(try call("/v3/kv/deleterange", ["key": Self.b64(key)]))
    }

    /// A condition of a transaction.
    package enum Compare: Sendable {
        /// The key's last change is at this revision (0: the key does not exist).
        case modRevision(String, Int64)
        /// The key was created at this revision (0: the key does not exist).
        case createRevision(String, Int64)
        /// The key's value is these bytes.
        case value(String, [UInt8])
    }

    /// An operation of a transaction.
    package enum Operation: Sendable {
        /// Put a value (bound to a lease when non-zero).
        case put(String, [UInt8], lease: Int64)
        /// Read a key.
        case get(String)
        /// Delete a key.
        case delete(String)
    }

    /// What a transaction did.
    package struct TxnResult: Sendable {
        /// True when every comparison held (the success branch ran).
        package var succeeded: Bool
        /// The store's revision after it.
        package var revision: Int64
        /// The pairs read by the `get` operations of the branch that ran, in order.
        package var reads: [[KeyValue]]
    }

    /// Runs `success` if every comparison holds, else `failure`, atomically.
    package func txn(_ compares: [Compare], success: [Operation], failure: [Operation] = []) throws(Failure) -> TxnResult {
        func op(_ o: Operation) -> [String: Any] {
            switch o {
            case .put(let k, let v, let lease):
                var p: [String: Any] = ["key": Self.b64(k), "value": Data(v).base64EncodedString()]
                if lease != 0 { p["lease"] = String(lease) }
                return ["request_put": p]
            case .get(let k): return ["request_range": ["key": Self.b64(k)]]
            case .delete(let k): return ["request_delete_range": ["key": Self.b64(k)]]
            }
        }
        let compare: [[String: Any]] = compares.map {
            switch $0 {
            case .modRevision(let k, let r):
                return ["key": Self.b64(k), "target": "MOD", "result": "EQUAL", "mod_revision": String(r)]
            case .createRevision(let k, let r):
                return ["key": Self.b64(k), "target": "CREATE", "result": "EQUAL", "create_revision": String(r)]
            case .value(let k, let v):
                return ["key": Self.b64(k), "target": "VALUE", "result": "EQUAL", "value": Data(v).base64EncodedString()]
            }
        }
        let answer = try call("/v3/kv/txn", ["compare": compare, "success": success.map(op), "failure": failure.map(op)])
        var reads: [[KeyValue]] = []
        for r in answer["responses"] as? [[String: Any]] ?? [] {
            if let range = r["response_range"] as? [String: Any] { reads.append(try Self.kvs(range["kvs"])) }
        }
        return TxnResult(succeeded: (answer["succeeded"] as? Bool) ?? false, revision: Self.revision(answer), reads: reads)
    }

    // MARK: Leases

    /// Grants a lease of `ttlSeconds`; returns its id.
    package func grantLease(ttlSeconds: Int) throws(Failure) -> Int64 {
        let answer = try call("/v3/lease/grant", ["TTL": String(ttlSeconds)])
        guard let id = Self.int(answer["ID"]), id != 0 else {
            throw .protocolError("lease grant without an ID: \(answer["error"] ?? "")")
        }
        return id
    }

    /// Renews lease `id`; returns its remaining TTL in seconds (0: the lease has expired).
    package func keepAlive(lease id: Int64) throws(Failure) -> Int64 {
        let answer = try call("/v3/lease/keepalive", ["ID": String(id)])
        let result = answer["result"] as? [String: Any] ?? answer
        return Self.int(result["TTL"]) ?? 0
    }

    /// Revokes lease `id` (its keys are deleted at once).
    package func revoke(lease id: Int64) throws(Failure) {
        _ = try call("/v3/lease/revoke", ["ID": String(id)])
    }

    // MARK: Watch

    /// One change seen by a watch.
    package struct WatchEvent: Sendable {
        /// True for a deletion (or a lease expiry), false for a put.
        package var deleted: Bool
        /// The pair after the change (value empty for a deletion).
        package var kv: KeyValue
    }

    /// Watches `key` (every key starting with it when `prefix`) from `startRevision`, calling
    /// `onEvents` with each batch of changes, until the stream breaks (throws) or `stop` is set
    /// `cancelled` returns true (returns; checked every 250 ms). `onEvents` runs on the calling
    /// thread; it is also called with an empty batch once the watch is established.
    package func watch(_ key: String, prefix: Bool, from startRevision: Int64, cancelled: @escaping () -> Bool,
                       onEvents: ([WatchEvent]) -> Void) throws(Failure) {
        var create: [String: Any] = ["key": Self.b64(key), "start_revision": String(startRevision)]
        if prefix { create["range_end"] = Self.b64(Self.prefixEnd(key)) }
        let body = try Self.json(["create_request": create])
        let (fd, endpoint) = try connectAny()
        defer { close(fd) }
        // A short receive timeout so `stop` is noticed; the stream itself may stay quiet for long.
        AdminSocket.setTimeouts(fd, millis: 250)
        try send(fd, endpoint: endpoint, path: "/v3/watch", body: body)
        var reader = HTTPStreamReader(fd: fd, endpoint: endpoint, cancelled: cancelled, maxTimeouts: nil)
        let (status, _) = try reader.readHead()
        guard status == 200 else {
            let text = String(decoding: (try? reader.readAll()) ?? [], as: UTF8.self)
            throw .refused(status, text)
        }
        var pending: [UInt8] = []
        while !cancelled() {
            guard let chunk = try reader.nextBodyBytes() else {
                if cancelled() { return }
                throw .unreachable("\(endpoint) closed the watch stream")
            }
            pending += chunk
            // The gateway writes one JSON object per line.
            while let nl = pending.firstIndex(of: 0x0A) {
                let line = Array(pending[..<nl])
                pending.removeFirst(nl + 1)
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D }) { continue }
                guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                    throw .protocolError("watch stream line is not JSON: \(String(decoding: line.prefix(200), as: UTF8.self))")
                }
                if let error = object["error"] as? [String: Any] {
                    throw .refused(200, (error["message"] as? String) ?? "\(error)")
                }
                let result = object["result"] as? [String: Any] ?? [:]
                if (result["canceled"] as? Bool) == true {
                    let reason = (result["cancel_reason"] as? String) ?? ""
                    let compacted = Self.int(result["compact_revision"]).map { " (compacted to revision \($0))" } ?? ""
                    throw .refused(200, "watch canceled: \(reason)\(compacted)")
                }
                var events: [WatchEvent] = []
                for e in result["events"] as? [[String: Any]] ?? [] {
                    guard let kv = try Self.kvs([e["kv"] ?? [:]]).first else { continue }
                    events.append(WatchEvent(deleted: (e["type"] as? String) == "DELETE", kv: kv))
                }
                onEvents(events)
            }
        }
    }

    // MARK: Auth

    /// Fetches a token with the credentials (no-op without them).
    private func authenticate() throws(Failure) {
        guard let credentials else { return }
        let answer = try post("/v3/auth/authenticate", try Self.json(["name": credentials.user, "password": credentials.password]),
                              authorized: false)
        guard let t = answer["token"] as? String, !t.isEmpty else {
            throw .refused(401, "etcd authentication as `\(credentials.user)` gave no token")
        }
        token.withLock { $0 = t }
    }

    // MARK: Transport

    /// POSTs `body` to `path` (authenticating first when needed, and again once on an expired token).
    private func call(_ path: String, _ body: [String: Any]) throws(Failure) -> [String: Any] {
        let bytes = try Self.json(body)
        if credentials != nil && token.withLock({ $0 }) == nil { try authenticate() }
        do {
            return try post(path, bytes, authorized: true)
        } catch .refused(let status, let message) where credentials != nil && (status == 401 || message.contains("token")) {
            try authenticate()
            return try post(path, bytes, authorized: true)
        }
    }

    /// One request on a new connection; the JSON object answered.
    private func post(_ path: String, _ body: [UInt8], authorized: Bool) throws(Failure) -> [String: Any] {
        let (fd, endpoint) = try connectAny()
        defer { close(fd) }
        try send(fd, endpoint: endpoint, path: path, body: body, authorized: authorized)
        var reader = HTTPStreamReader(fd: fd, endpoint: endpoint, cancelled: { false }, maxTimeouts: 1)
        let status: Int
        let payload: [UInt8]
        do throws(Failure) {
            (status, _) = try reader.readHead()
            payload = try reader.readAll()
        } catch {
            // Sent, but not answered: etcd may still carry it out.
            if case .unreachable(let m) = error { throw .uncertain(m) }
            throw error
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any]
        guard status == 200 else {
            let fromJSON: String? = (object?["error"] as? String) ?? (object?["message"] as? String)
            let message = fromJSON ?? String(decoding: payload.prefix(300), as: UTF8.self)
            throw .refused(status, message)
        }
        guard let object else {
            throw .protocolError("\(path) answered something that is not a JSON object: "
                                 + String(decoding: payload.prefix(200), as: UTF8.self))
        }
        return object
    }

    /// Writes the request head and body.
    private func send(_ fd: Int32, endpoint: Endpoint, path: String, body: [UInt8], authorized: Bool = true) throws(Failure) {
        var head = "POST \(path) HTTP/1.1\r\nHost: \(endpoint.host):\(endpoint.port)\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.count)\r\nConnection: close\r\n"
        if authorized, let t = token.withLock({ $0 }) { head += "Authorization: \(t)\r\n" }
        head += "\r\n"
        guard AdminSocket.writeAll(fd, Array(head.utf8) + body) else {
            throw .unreachable("cannot send to \(endpoint): \(AdminSocket.errnoText())")
        }
    }

    /// Connects to the first endpoint that accepts, starting with the one that answered last.
    private func connectAny() throws(Failure) -> (Int32, Endpoint) {
        guard !endpoints.isEmpty else { throw .unreachable("no endpoints configured") }
        let first = preferred.withLock { $0 }
        var problems: [String] = []
        for k in 0..<endpoints.count {
            let i = (first + k) % endpoints.count
            let e = endpoints[i]
            let address: SocketAddress
            if let literal = SocketAddress.parse("\(e.host.contains(":") ? "[\(e.host)]" : e.host):\(e.port)") {
                address = literal
            } else if let cached = resolved.withLock({ $0[e.host] }), cached.until > ControlClock.monotonicNanos() {
                address = cached.address.withPort(e.port)
            } else {
                switch HostResolver.system.preferred(e.host) {
                case .success(let a):
                    address = a.withPort(e.port)
                    resolved.withLock { $0[e.host] = (a, ControlClock.monotonicNanos() &+ 30_000_000_000) }
                case .failure(let f):
                    problems.append("\(e): \(f.message)")
                    continue
                }
            }
            do throws(AdminError) {
                let fd = try AdminSocket.connect(to: address, millis: timeoutMillis)
                preferred.withLock { $0 = i }
                return (fd, e)
            } catch {
                problems.append("\(e): \(error.message)")
                _ = resolved.withLock { $0.removeValue(forKey: e.host) }  // the name may point elsewhere now
            }
        }
        throw .unreachable(problems.joined(separator: "; "))
    }

    // MARK: Encoding

    /// Base64 of a string's UTF-8 bytes.
    static func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

    /// The end of the range of keys starting with `prefix` (the prefix with its last byte + 1).
    static func prefixEnd(_ prefix: String) -> String {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return String(decoding: bytes, as: UTF8.self)
            }
            bytes.removeLast()
        }
        return "\0"
    }

    /// JSON bytes of an object.
    static func json(_ object: [String: Any]) throws(Failure) -> [UInt8] {
        do {
            return Array(try JSONSerialization.data(withJSONObject: object))
        } catch {
            throw .protocolError("cannot encode a request: \(error)")
        }
    }

    /// An int64 field: a JSON string (what the gateway writes) or number.
    static func int(_ value: Any?) -> Int64? {
        if let s = value as? String { return Int64(s) }
        if let n = value as? NSNumber { return n.int64Value }
        return nil
    }

    /// `header.revision` of an answer (0 when absent).
    static func revision(_ answer: [String: Any]) -> Int64 {
        int((answer["header"] as? [String: Any])?["revision"]) ?? 0
    }

    /// Decodes a `kvs` list.
    static func kvs(_ value: Any?) throws(Failure) -> [KeyValue] {
        guard let list = value as? [[String: Any]] else { return [] }
        var out: [KeyValue] = []
        for item in list {
            guard let k = item["key"] as? String, let key = Data(base64Encoded: k) else {
                throw .protocolError("a key-value pair without a base64 key")
            }
            let value = (item["value"] as? String).flatMap { Data(base64Encoded: $0) } ?? Data()
            out.append(KeyValue(key: String(decoding: key, as: UTF8.self), value: Array(value),
                                modRevision: int(item["mod_revision"]) ?? 0, createRevision: int(item["create_revision"]) ?? 0,
                                lease: int(item["lease"]) ?? 0))
        }
        return out
    }
}

extension SocketAddress {
    /// The same address with another port.
    func withPort(_ port: UInt16) -> SocketAddress {
        switch self {
        case .v4(let a, _): return .v4(a, port: port)
        case .v6(let hi, let lo, _): return .v6(hi: hi, lo: lo, port: port)
        }
    }
}

/// Reads an HTTP/1.1 response from a blocking socket: the head, then the body as it arrives
/// (chunked or Content-Length or until close). A receive timeout (the socket's SO_RCVTIMEO) is
/// retried while `cancelled` says no, at most `maxTimeouts` times in a row (nil: no limit, for
/// streams that may stay quiet).
struct HTTPStreamReader {
    let fd: Int32
    let endpoint: EtcdClient.Endpoint
    let cancelled: () -> Bool
    let maxTimeouts: Int?
    private var buffer: [UInt8] = []
    private var chunked = false
    private var remaining: Int?  // Content-Length left
    private var chunkLeft = 0  // bytes left in the current chunk
    private var done = false
    /// Consecutive read timeouts (a unary call gives up after a few).
    private var timeouts = 0

    init(fd: Int32, endpoint: EtcdClient.Endpoint, cancelled: @escaping () -> Bool, maxTimeouts: Int?) {
        self.fd = fd
        self.endpoint = endpoint
        self.cancelled = cancelled
        self.maxTimeouts = maxTimeouts
    }

    /// Reads more bytes into the buffer; false at EOF.
    private mutating func fill() throws(EtcdClient.Failure) -> Bool {
        while true {
            if cancelled() { return false }
            let n = AdminSocket.readSome(fd, into: &buffer, max: 64 * 1024)
            if n > 0 {
                timeouts = 0
                return true
            }
            if n == 0 { return false }
            if errno == EAGAIN || errno == EWOULDBLOCK {
                timeouts += 1
                if let maxTimeouts, timeouts >= maxTimeouts { throw .unreachable("\(endpoint) did not answer in time") }
                continue
            }
            throw .unreachable("reading from \(endpoint): \(AdminSocket.errnoText())")
        }
    }

    /// Reads the status line and headers.
    mutating func readHead() throws(EtcdClient.Failure) -> (Int, [String: String]) {
        while true {
            if let end = AdminHTTP.find([13, 10, 13, 10], in: buffer) {
                let lines = String(decoding: buffer[0..<end], as: UTF8.self).split(separator: "\r\n")
                buffer.removeFirst(end + 4)
                let parts = lines.first?.split(separator: " ") ?? []
                guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
                    throw .protocolError("\(endpoint) did not answer with HTTP/1.1")
                }
                var headers: [String: String] = [:]
                for line in lines.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...]).trimmingSpaces()
                }
                chunked = headers["transfer-encoding"]?.lowercased().contains("chunked") == true
                if !chunked, let cl = headers["content-length"] { remaining = Int(cl) }
                return (status, headers)
            }
            if buffer.count > 64 * 1024 { throw .protocolError("\(endpoint) sent a response head over 64 KiB") }
            guard try fill() else { throw .unreachable("\(endpoint) closed the connection before answering") }
        }
    }

    /// The next body bytes (nil at the end of the body).
    mutating func nextBodyBytes() throws(EtcdClient.Failure) -> [UInt8]? {
        if done { return nil }
        if !chunked {
            if let r = remaining, r == 0 { done = true; return nil }
            if buffer.isEmpty {
                guard try fill() else {
                    done = true
                    if let r = remaining, r > 0 { throw .unreachable("\(endpoint) closed the connection mid-answer") }
                    return nil
                }
            }
            var out = buffer
            if let r = remaining {
                out = Array(buffer.prefix(r))
                remaining = r - out.count
            }
            buffer.removeAll(keepingCapacity: true)
            return out
        }
        while true {
            if chunkLeft > 0 {
                if buffer.isEmpty {
                    guard try fill() else { throw .unreachable("\(endpoint) closed the connection mid-chunk") }
                }
                let n = min(chunkLeft, buffer.count)
                let out = Array(buffer[..<n])
                buffer.removeFirst(n)
                chunkLeft -= n
                if chunkLeft == 0 { chunkLeft = -2 }  // the chunk's CRLF follows
                return out
            }
            if chunkLeft == -2 {
                while buffer.count < 2 {
                    guard try fill() else { throw .unreachable("\(endpoint) closed the connection mid-chunk") }
                }
                buffer.removeFirst(2)
                chunkLeft = 0
            }
            guard let nl = AdminHTTP.find([13, 10], in: buffer) else {
                if buffer.count > 1024 { throw .protocolError("\(endpoint) sent a malformed chunk size") }
                guard try fill() else { throw .unreachable("\(endpoint) closed the connection mid-stream") }
                continue
            }
            let sizeText = String(decoding: buffer[..<nl], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(String(sizeText).trimmingSpaces(), radix: 16), size >= 0 else {
                throw .protocolError("\(endpoint) sent a malformed chunk size")
            }
            buffer.removeFirst(nl + 2)
            if size == 0 {
                done = true
                return nil
            }
            chunkLeft = size
        }
    }

    /// The whole remaining body (a unary answer).
    mutating func readAll() throws(EtcdClient.Failure) -> [UInt8] {
        var out: [UInt8] = []
        while let part = try nextBodyBytes() { out += part }
        return out
    }
}
