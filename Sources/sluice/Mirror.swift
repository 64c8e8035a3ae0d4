import ArgumentParser
import SluiceControl

/// `sluice mirror diffs [ROUTE] [--json]`.
struct Mirror: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Traffic mirroring: the latest responses where a mirror answered differently.",
        discussion: """
            Routes and rules with `mirror: { to: ..., compare: true }` compare the mirror's \
            response with the primary's; counts are in sluice_mirror_requests_total, and the \
            latest differing pairs (at most 100 per worker, 100 shown) are here.
            """,
        subcommands: [MirrorDiffs.self]
    )
}

/// `sluice mirror diffs [ROUTE] [--json]`: GET /admin/mirror/diffs.
struct MirrorDiffs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diffs",
        abstract: "List the latest differing pairs (request line, both statuses, the differing field or first differing body byte).")
    @OptionGroup var options: AdminOptions
    @Argument(help: "Only this route's (default: every route's).") var route: String?
    @Flag(help: "Print the raw JSON of GET /admin/mirror/diffs.") var json = false

    func run() throws {
        var path = "/admin/mirror/diffs"
        if let route { path += "?route=" + Self.percentEncoded(route) }
        guard let report = try ControlCall.report(MirrorDiffReport.self, "mirror diffs", path, options: options, json: json) else { return }
        print(report.text, terminator: "")
    }

    /// A query value with everything but unreserved characters percent-encoded.
    static func percentEncoded(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(Character(UnicodeScalar(b)))
            default:
                let hex = Array("0123456789ABCDEF")
                out += "%" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)])
            }
        }
        return out
    }
}
