#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import Yams

extension ConfigCompiler {
    /// Keys of `admin:`.
    static let adminKeys = ["address", "token", "token_file", "allowed_hosts", "public_endpoints", "allow",
                            "max_connections", "request_timeout"]

    /// `admin:`: address, the token (`token`, `token_file`, else `$SLUICE_ADMIN_TOKEN`) and the
    /// admin API's other settings.
    mutating func compileAdmin(_ node: Node?, listeners: [ListenerSpec]) -> (SocketAddress, String?, AdminSettings) {
        let defaultAddress = SocketAddress.v4(0x7f00_0001, port: 9901)
        var settings = AdminSettings()
        var token: String?
        if let env = environmentToken, !env.isEmpty {
            token = env
            settings.tokenSource = "$SLUICE_ADMIN_TOKEN"
        }
        guard let node else { return (defaultAddress, token, settings) }
        guard let m = reader.map(node, "admin", known: Self.adminKeys, example: "{ address: 127.0.0.1:9901 }") else {
            return (defaultAddress, token, settings)
        }
        var address = defaultAddress
        if let a = m["address"], let parsed = self.address(a, m.path("address"), allowPortZero: true) {
            address = parsed
            if parsed.port != 0, let clash = listeners.first(where: { $0.address == parsed }) {
                reader.report(a, m.path("address"), "admin address \(parsed) is also the address of listener `\(clash.name)`",
                              hint: "use another port for the admin API")
            }
        }
        if let t = m["token"], let f = m["token_file"] {
            reader.report(f, m.path("token_file"), "`admin.token` and `admin.token_file` are both set (line \(t.mark?.line ?? 0))",
                          hint: "keep one: `token_file` keeps the secret out of the config file")
        } else if let t = m["token"] {
            if let text = reader.string(t, m.path("token")) {
                token = text
                settings.tokenSource = "admin.token"
            }
        } else if let f = m["token_file"], let path = reader.string(f, m.path("token_file")) {
            let resolved = ConfigLoader.resolve(path, relativeTo: reader.file)
            switch AdminTokenFile.read(resolved) {
            case .success(let text):
                token = text
                settings.tokenSource = "admin.token_file"
            case .failure(let error):
                reader.report(f, m.path("token_file"), error.message,
                              hint: "the file holds the token alone (a trailing newline is ignored), e.g. a mounted Kubernetes Secret")
            }
        }
        if !address.isLoopback && (token ?? "").isEmpty, let a = m["address"] {
            reader.report(a, m.path("address"),
                          "admin address \(address) is not a loopback address and no admin token is set",
                          hint: "anyone who can reach it could use the admin API: set `admin.token_file` (or `admin.token`, "
                              + "or $SLUICE_ADMIN_TOKEN), or use 127.0.0.1:\(address.port)")
        }
        if let n = m["allowed_hosts"], let items = reader.list(n, m.path("allowed_hosts"), allowSingle: true,
                                                                example: "[sluice-admin.internal]") {
            for (i, item) in items.enumerated() {
                let path = ConfigReader.join(m.path("allowed_hosts"), i)
                guard let name = reader.string(item, path) else { continue }
                let valid = name.utf8.allSatisfy { b in
                    (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) || b == 0x2d || b == 0x2e
                }
                guard valid, !name.hasPrefix("."), !name.hasPrefix("-") else {
                    reader.report(item, path, "`\(name)` is not a host name",
                                  hint: "a DNS name without port or scheme, e.g. `sluice-admin.internal`")
                    continue
                }
                settings.allowedHosts.append(name.lowercased())
            }
        }
        if let n = m["public_endpoints"], let items = reader.list(n, m.path("public_endpoints"), example: "[/metrics, /healthz, /ready]") {
            var paths: [String] = []
            for (i, item) in items.enumerated() {
                let path = ConfigReader.join(m.path("public_endpoints"), i)
                guard let text = reader.string(item, path) else { continue }
                guard AdminPolicy.defaultPublicPaths.contains(text) else {
                    reader.report(item, path, "`\(text)` cannot be public",
                                  hint: "only /metrics, /healthz and /ready can be reached without the token; [] protects all three")
                    continue
                }
                paths.append(text)
            }
            settings.publicEndpoints = paths
        }
        if let n = m["allow"] { settings.allow = compilePrefixes(n, m.path("allow")) }
        if let n = m["max_connections"], let v = reader.int(n, m.path("max_connections"), in: 16...65_536) {
            settings.maxConnections = v
        }
        if let n = m["request_timeout"], let v = reader.duration(n, m.path("request_timeout")) {
            if v < 100_000_000 || v > 600_000_000_000 {
                reader.report(n, m.path("request_timeout"), "must be between 100ms and 10m",
                              hint: "the time a client has to send a whole admin request; default 10s")
            } else {
                settings.requestTimeout = v
            }
        }
        return (address, token, settings)
    }

    /// `metrics:`: a listener for `/metrics`, `/healthz` and `/ready` only, with its own allow-list.
    mutating func compileMetricsListener(_ node: Node, listeners: [ListenerSpec], admin: SocketAddress) -> MetricsListenerSpec? {
        guard let m = reader.map(node, "metrics", known: ["address", "allow"], required: ["address"],
                                 example: "{ address: 0.0.0.0:9902, allow: [10.0.0.0/8] }"),
              let a = m["address"], let address = self.address(a, m.path("address"), allowPortZero: true) else { return nil }
        if address.port != 0 {
            if let clash = listeners.first(where: { $0.address == address }) {
                reader.report(a, m.path("address"), "metrics address \(address) is also the address of listener `\(clash.name)`",
                              hint: "use another port for the metrics listener")
            } else if address == admin {
                reader.report(a, m.path("address"), "metrics address \(address) is also the admin address",
                              hint: "the admin listener serves /metrics already; use another port, or drop `metrics:`")
            }
        }
        let allow = m["allow"].map { compilePrefixes($0, m.path("allow")) } ?? []
        return MetricsListenerSpec(address: address, allow: allow)
    }

    /// A list of CIDR networks (`allow:`).
    mutating func compilePrefixes(_ node: Node, _ path: String) -> [AddressPrefix] {
        guard let items = reader.list(node, path, allowSingle: true, example: "[\"10.0.0.0/8\", \"127.0.0.1\"]") else { return [] }
        var out: [AddressPrefix] = []
        for (i, item) in items.enumerated() {
            let itemPath = ConfigReader.join(path, i)
            guard let text = reader.string(item, itemPath) else { continue }
            guard let prefix = AddressPrefix.parse(text) else {
                reader.report(item, itemPath, "`\(text)` is not an IPv4 or IPv6 address or CIDR network",
                              hint: "write e.g. `10.0.0.0/8`, `192.0.2.10` or `2001:db8::/32` (host bits below the prefix must be zero)")
                continue
            }
            out.append(prefix)
        }
        return out
    }
}

/// Reading the admin token from a file (`admin.token_file`, `sluice ... --token-file`).
public enum AdminTokenFile {
    /// Largest token file read.
    public static let maxBytes = 4096

    /// The token in the file at `path`: its text without trailing whitespace. Fails when the
    /// file cannot be read, is larger than `maxBytes`, is empty, or holds control characters.
    public static func read(_ path: String) -> Result<String, AdminError> {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return .failure(AdminError("cannot read token file \(path): \(AdminSocket.errnoText())")) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            return .failure(AdminError("token file \(path) is not a regular file"))
        }
        var bytes = [UInt8](repeating: 0, count: maxBytes + 1)
        var total = 0
        while total < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .failure(AdminError("cannot read token file \(path): \(AdminSocket.errnoText())")) }
            if n == 0 { break }
            total += n
        }
        guard total <= maxBytes else {
            return .failure(AdminError("token file \(path) is larger than \(maxBytes) bytes; it should hold only the token"))
        }
        return validate(String(decoding: bytes[0..<total], as: UTF8.self), what: "token file \(path)")
    }

    /// `text` without trailing whitespace, when it is a usable token (not empty, no control characters).
    public static func validate(_ text: String, what: String) -> Result<String, AdminError> {
        var token = Substring(text)
        while let last = token.last, last == "\n" || last == "\r" || last == " " || last == "\t" { token.removeLast() }
        guard !token.isEmpty else { return .failure(AdminError("\(what) is empty")) }
        guard token.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7f }) else {
            return .failure(AdminError("\(what) holds control characters; it should hold only the token"))
        }
        return .success(String(token))
    }
}
