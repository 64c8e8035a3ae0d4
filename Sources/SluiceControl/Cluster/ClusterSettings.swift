#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import Yams

/// The `cluster:` section: replicas that share one routing state through etcd.
///
/// ```yaml
/// cluster:
///   etcd: { endpoints: ["http://127.0.0.1:2379"], prefix: /sluice/prod }
///   node: replica-1          # default: the host name
///   lease_ttl: 5s
/// ```
/// Without it nothing is shared: the state file is the single-node default.
public struct ClusterSettings: Sendable, Equatable {
    /// etcd client URLs (`http://HOST:PORT`), tried in order.
    public var endpoints: [String]
    /// Key prefix of this fleet's state (no trailing `/`), e.g. `/sluice/prod`.
    public var prefix: String
    /// This replica's name (unique in the fleet).
    public var node: String
    /// TTL of this replica's lease (membership, rollout leadership, published statistics), ns.
    public var leaseTTL: UInt64
    /// etcd user (etcd's own authentication), with `passwordFile`.
    public var username: String?
    /// File holding the etcd user's password (first line).
    public var passwordFile: String?

    /// Creates settings.
    public init(endpoints: [String], prefix: String, node: String, leaseTTL: UInt64 = 5_000_000_000,
                username: String? = nil, passwordFile: String? = nil) {
        self.endpoints = endpoints
        self.prefix = prefix
        self.node = node
        self.leaseTTL = leaseTTL
        self.username = username
        self.passwordFile = passwordFile
    }

    /// The host name (the default node name).
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "sluice" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "sluice" : name
    }
}

extension ConfigCompiler {
    /// `cluster:` (etcd endpoints and prefix, node name, lease TTL).
    mutating func compileCluster(_ node: Node) -> ClusterSettings? {
        let example = "{ etcd: { endpoints: [\"http://127.0.0.1:2379\"], prefix: /sluice/prod }, node: replica-1 }"
        guard let m = reader.map(node, "cluster", known: ["etcd", "node", "lease_ttl"], required: ["etcd"], example: example) else {
            return nil
        }
        var settings = ClusterSettings(endpoints: [], prefix: "", node: ClusterSettings.hostName())
        var ok = true
        if let e = m["etcd"], let etcd = reader.map(e, m.path("etcd"), known: ["endpoints", "prefix", "username", "password_file"],
                                                   required: ["endpoints", "prefix"],
                                                   example: "{ endpoints: [\"http://127.0.0.1:2379\"], prefix: /sluice/prod }") {
            if let list = etcd["endpoints"], let items = reader.list(list, etcd.path("endpoints"), allowSingle: true,
                                                                    example: "[\"http://127.0.0.1:2379\"]") {
                if items.isEmpty {
                    reader.report(list, etcd.path("endpoints"), "at least one etcd endpoint is required",
                                  hint: "e.g. `endpoints: [\"http://127.0.0.1:2379\"]`")
                    ok = false
                }
                for (i, item) in items.enumerated() {
                    let path = ConfigReader.join(etcd.path("endpoints"), i)
                    guard let text = reader.string(item, path) else { ok = false; continue }
                    switch EtcdClient.Endpoint.parse(text) {
                    case .success: settings.endpoints.append(text)
                    case .failure(let problem):
                        reader.report(item, path, problem.message, hint: "e.g. `http://etcd-0.etcd:2379`")
                        ok = false
                    }
                }
            } else {
                ok = false
            }
            if let p = etcd["prefix"], let text = reader.string(p, etcd.path("prefix")) {
                var prefix = text
                while prefix.count > 1 && prefix.hasSuffix("/") { prefix.removeLast() }
                if !prefix.hasPrefix("/") || prefix == "/" || prefix.contains("//") || prefix.utf8.contains(0) {
                    reader.report(p, etcd.path("prefix"), "`\(text)` is not a key prefix",
                                  hint: "a path of at least one part, e.g. `/sluice/prod` (each fleet its own)")
                    ok = false
                }
                settings.prefix = prefix
            } else {
                ok = false
            }
            if let u = etcd["username"] { settings.username = reader.string(u, etcd.path("username")) }
            if let f = etcd["password_file"] { settings.passwordFile = reader.string(f, etcd.path("password_file")) }
            if (settings.username == nil) != (settings.passwordFile == nil) {
                reader.report(e, m.path("etcd"), "`username` and `password_file` go together",
                              hint: "give both to use etcd's authentication, or neither")
                ok = false
            }
        } else {
            ok = false
        }
        if let n = m["node"], let name = reader.string(n, m.path("node")) {
            if !ConfigCompiler.isValidName(name) {
                reader.report(n, m.path("node"), "`\(name)` is not a valid node name",
                              hint: "letters, digits, `-`, `_`, `.`; e.g. the pod name")
                ok = false
            }
            settings.node = name
        }
        if let t = m["lease_ttl"], let ttl = reader.duration(t, m.path("lease_ttl")) {
            if ttl < 1_000_000_000 || ttl > 300_000_000_000 || ttl % 1_000_000_000 != 0 {
                reader.report(t, m.path("lease_ttl"), "lease_ttl must be whole seconds from 1s to 300s",
                              hint: "etcd leases count in seconds; 5s fails over in about 5 to 6 s")
                ok = false
            } else {
                settings.leaseTTL = ttl
            }
        }
        return ok ? settings : nil
    }
}
