import SluiceCore
import Yams

/// A route's protocol options: `upgrade:` (which protocol switches are tunnelled) and
/// `compression:` (gzip of responses).
extension RouteCompiler {
    /// `upgrade: [websocket, ...]`: lowercased protocol tokens; `h2c` is refused. Nil on error.
    func compileUpgrade(_ u: Node, _ path: String, reader: inout ConfigReader) -> [String]? {
        guard let items = reader.list(u, path, example: "upgrade: [websocket]") else { return nil }
        var ok = true
        var upgrade: [String] = []
        for (i, item) in items.enumerated() {
            guard let t = reader.string(item, path + "[\(i)]") else { ok = false; continue }
            if !ConfigValues.isToken(t) {
                reader.report(item, path + "[\(i)]", "`\(t)` is not a protocol token",
                              hint: "list Upgrade protocols such as `websocket`")
                ok = false
            } else if t.lowercased() == "h2c" {
                reader.report(item, path + "[\(i)]", "h2c upgrades are not tunnelled",
                              hint: "Sluice serves an h2c upgrade request as HTTP/1.1; remove `h2c`")
                ok = false
            } else {
                upgrade.append(t.lowercased())
            }
        }
        return ok ? upgrade : nil
    }

    /// `compression: { gzip, level, min_bytes, types }`: `.some(nil)` when gzip is off, nil on error.
    func compileCompression(_ node: Node, _ path: String, reader: inout ConfigReader) -> CompressionSpec?? {
        guard let m = reader.map(node, path, known: ["gzip", "level", "min_bytes", "types"],
                                 example: "{ gzip: true, level: 5, min_bytes: 1024, types: [text/*, application/json] }")
        else { return nil }
        var ok = true
        var gzip = true
        if let g = m["gzip"] { if let b = reader.bool(g, m.path("gzip")) { gzip = b } else { ok = false } }
        var spec = CompressionSpec()
        if let l = m["level"] {
            if let n = reader.int(l, m.path("level"), in: 1...9) { spec = CompressionSpec(level: n, minBytes: spec.minBytes, types: spec.types) } else { ok = false }
        }
        if let b = m["min_bytes"] {
            if let n = reader.size(b, m.path("min_bytes")) { spec = CompressionSpec(level: spec.level, minBytes: n, types: spec.types) } else { ok = false }
        }
        if let t = m["types"], let items = reader.list(t, m.path("types"), example: "types: [text/*, application/json]") {
            var types: [String] = []
            for (i, item) in items.enumerated() {
                guard let s = reader.string(item, m.path("types") + "[\(i)]") else { ok = false; continue }
                let parts = s.split(separator: "/", omittingEmptySubsequences: false)
                if parts.count == 2 && ConfigValues.isToken(String(parts[0])) && (parts[1] == "*" || ConfigValues.isToken(String(parts[1]))) {
                    types.append(s.lowercased())
                } else {
                    reader.report(item, m.path("types") + "[\(i)]", "`\(s)` is not a media type",
                                  hint: "write `type/subtype` or `type/*`, e.g. `application/json`, `text/*`")
                    ok = false
                }
            }
            spec = CompressionSpec(level: spec.level, minBytes: spec.minBytes, types: types)
        } else if m["types"] != nil {
            ok = false
        }
        guard ok else { return nil }
        return .some(gzip ? spec : nil)
    }
}
