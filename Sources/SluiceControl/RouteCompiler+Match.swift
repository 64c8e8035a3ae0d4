import SluiceCore
import Yams

/// `match:` conditions of routes and rules: path (normalized unless turned off), host, headers,
/// cookies, query parameters, methods and source addresses.
extension RouteCompiler {
    /// Compiles a `match:` mapping into conditions; nil after reporting a problem. With
    /// `normalizing` (the route's `path_normalization`), a `path` or `path_prefix` must be written
    /// in normalized form, since the request's path is compared normalized and could never equal it otherwise.
    func compileMatch(_ node: Node, _ path: String, normalizing: Bool = true, reader: inout ConfigReader) -> [MatchCondition]? {
        if ConfigReader.isNull(node) { return [] }
        guard let m = reader.map(node, path, known: Self.matchKeys, example: "{ path_prefix: /api }") else { return nil }
        var ok = true
        var out: [MatchCondition] = []
        for entry in m.entries {
            let epath = m.path(entry.key)
            let v = entry.value
            switch entry.key {
            case "host":
                guard let h = reader.string(v, epath) else { ok = false; continue }
                if let c = compileHost(h, v, epath, reader: &reader) { out += c } else { ok = false }
            case "path_prefix", "path":
                guard let p = reader.string(v, epath) else { ok = false; continue }
                guard p.hasPrefix("/") else {
                    reader.report(v, epath, "`\(p)` does not start with `/`", hint: "paths are matched from the first `/`, e.g. `/\(p)`")
                    ok = false
                    continue
                }
                if normalizing {
                    let normal = PathNormalizer.normalized(p)
                    guard normal == p else {
                        reader.report(v, epath, "`\(ConfigReader.abbreviated(p))` is not a normalized path, so it would never match: "
                                      + "request paths are compared after normalization (`\(ConfigReader.abbreviated(normal))`)",
                                      hint: "write `\(ConfigReader.abbreviated(normal))`, or set `path_normalization: off` on this route to match raw bytes")
                        ok = false
                        continue
                    }
                }
                out.append(entry.key == "path" ? .path(p) : .pathPrefix(p))
            case "method":
                guard let items = reader.list(v, epath, allowSingle: true, example: "[GET, HEAD]") else { ok = false; continue }
                var methods: [String] = []
                for (i, item) in items.enumerated() {
                    let ipath = items.count == 1 && v.sequence == nil ? epath : ConfigReader.join(epath, i)
                    guard let s = reader.string(item, ipath) else { ok = false; continue }
                    if RoutingTable.knownMethod(s) == nil, RoutingTable.knownMethod(s.uppercased()) != nil {
                        reader.report(item, ipath, "methods are case-sensitive: `\(s)` never matches",
                                      hint: "did you mean `\(s.uppercased())`?")
                        ok = false
                    } else if !ConfigValues.isToken(s) {
                        reader.report(item, ipath, "`\(s)` is not a valid method name")
                        ok = false
                    } else {
                        methods.append(s)
                    }
                }
                if methods.isEmpty && ok {
                    reader.report(v, epath, "an empty method list never matches", hint: "list methods, e.g. `[GET, HEAD]`")
                    ok = false
                }
                out.append(.methods(methods))
            case "header", "cookie", "query":
                guard let items = reader.list(v, epath, allowSingle: true) else { ok = false; continue }
                for (i, item) in items.enumerated() {
                    let ipath = v.sequence == nil ? epath : ConfigReader.join(epath, i)
                    if let c = compileFieldTest(entry.key, item, ipath, reader: &reader) { out.append(c) } else { ok = false }
                }
            case "source":
                guard let items = reader.list(v, epath, allowSingle: true, example: "[10.0.0.0/8, \"::1/128\"]") else { ok = false; continue }
                var prefixes: [AddressPrefix] = []
                for (i, item) in items.enumerated() {
                    let ipath = v.sequence == nil ? epath : ConfigReader.join(epath, i)
                    guard let s = reader.string(item, ipath) else { ok = false; continue }
                    guard let p = AddressPrefix.parse(s.trimmingSpaces()) else {
                        reader.report(item, ipath, "invalid CIDR `\(s)`",
                                      hint: "write an address and a prefix length with the host bits zero, e.g. `10.0.0.0/8`, `192.168.1.0/24` or `::1/128`")
                        ok = false
                        continue
                    }
                    prefixes.append(p)
                }
                out.append(.source(prefixes))
            default:
                break
            }
        }
        return ok ? out : nil
    }

    func compileHost(_ host: String, _ node: Node, _ path: String, reader: inout ConfigReader) -> [MatchCondition]? {
        if host == "*" { return [] }
        var name = Substring(host)
        var suffix = false
        if name.hasPrefix("*.") {
            suffix = true
            name = name.dropFirst(2)
        }
        if name.hasPrefix("["), name.hasSuffix("]"), SocketAddress.parseIPv6(name.dropFirst().dropLast()) != nil, !suffix {
            return [.host(String(name))]
        }
        if name.contains("*") {
            reader.report(node, path, "invalid host pattern `\(host)`: `*` may only be the whole host or a leading `*.`",
                          hint: "e.g. `*`, `example.com` or `*.example.com`")
            return nil
        }
        if name.contains(":") {
            reader.report(node, path, "host patterns are matched without the port", hint: "remove the port: `\(name.split(separator: ":")[0])`")
            return nil
        }
        guard ConfigValues.isValidHostName(name) else {
            reader.report(node, path, "invalid host name `\(host)`", hint: "host names use letters, digits, `-` and `.`")
            return nil
        }
        let trimmed = name.hasSuffix(".") ? String(name.dropLast()) : String(name)
        return [suffix ? .hostSuffix(trimmed) : .host(trimmed)]
    }

    func compileFieldTest(_ kind: String, _ node: Node, _ path: String, reader: inout ConfigReader) -> MatchCondition? {
        let example = kind == "header" ? "{ name: X-Canary, value: always }"
            : kind == "cookie" ? "{ name: beta, value: \"1\" }" : "{ name: variant, value: b }"
        guard let m = reader.map(node, path, known: Self.testKeys, required: ["name"], example: example) else { return nil }
        guard let n = m["name"], let name = reader.string(n, m.path("name")) else { return nil }
        let nameOK = kind == "query" ? !name.utf8.contains(where: { $0 <= 0x20 || $0 == UInt8(ascii: "&") || $0 == UInt8(ascii: "=") })
            : ConfigValues.isToken(name)
        guard nameOK else {
            reader.report(n, m.path("name"), "`\(name)` is not a valid \(kind) name")
            return nil
        }
        let tests = ["value", "prefix", "regex", "present", "absent"].filter { m.has($0) }
        guard tests.count == 1 else {
            if tests.isEmpty {
                reader.report(node, path, "a \(kind) match needs one of `value`, `prefix`, `regex`, `present: true`, `absent: true`",
                              hint: "e.g. `\(example)`")
            } else {
                reader.report(m.keyNode(tests[1]), m.path(tests[1]), "`\(tests[0])` and `\(tests[1])` cannot both be set",
                              hint: "use one test per match; list several matches to require all of them")
            }
            return nil
        }
        let key = tests[0]
        let v = m[key]!
        let test: ValueTest
        switch key {
        case "value", "prefix":
            guard let s = reader.string(v, m.path(key), allowEmpty: true) else { return nil }
            test = key == "value" ? .equals(s) : .prefix(s)
        case "regex":
            guard let s = reader.string(v, m.path(key)) else { return nil }
            do {
                test = .regex(try ByteRegex.compile(s))
            } catch {
                reader.report(v, m.path(key), "invalid regex `\(ConfigReader.abbreviated(s))`: \(error.message) (at offset \(error.offset))",
                              hint: "the supported subset: literals, `.`, classes like `[a-z0-9]`, `\\d \\w \\s`, `^ $`, `* + ?`, `|`, `( )` (see the README's configuration reference)")
                return nil
            }
        default:
            guard let b = reader.bool(v, m.path(key)) else { return nil }
            test = (key == "present") == b ? .present : .absent
        }
        switch kind {
        case "header": return .header(name: name, test: test)
        case "cookie": return .cookie(name: name, test: test)
        default: return .query(name: name, test: test)
        }
    }
}
