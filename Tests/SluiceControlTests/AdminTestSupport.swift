import Foundation
import SluiceControl
import SluiceCore
import Testing

/// A config with a 90/10 split and a direct `respond:` rule, for admin API tests.
let adminTestYAML = baseYAML + """
    routes:
      - name: web
        baseline: stable
        rules:
          - match: { path: /blocked }
            respond: { status: 403, body: "no" }
        split: { stable: 90, canary: 10 }

    """

/// One parsed line of a Prometheus text exposition.
enum ExpositionLine: Equatable {
    case help(name: String, text: String)
    case type(name: String, type: String)
    case sample(name: String, labels: [String: String], value: Double)
}

/// Why an exposition did not parse.
struct ExpositionError: Error, CustomStringConvertible {
    var line: Int
    var text: String
    var reason: String
    var description: String { "line \(line): \(reason): \(text)" }
}

/// A small parser of the text exposition format 0.0.4, strict enough to catch what Prometheus rejects:
/// metric and label names, quoting and escapes, float values, TYPE before samples and at most
/// once per family, a family's samples kept together.
enum ExpositionParser {
    static func isMetricName(_ s: Substring) -> Bool {
        guard let f = s.first, f.isASCII, f.isLetter || f == "_" || f == ":" else { return false }
        return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ":") }
    }

    static func isLabelName(_ s: Substring) -> Bool {
        guard let f = s.first, f.isASCII, f.isLetter || f == "_" else { return false }
        return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }

    static func value(_ s: Substring) -> Double? {
        switch s {
        case "+Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default: return Double(s)
        }
    }

    /// The family a sample name belongs to, given the declared types.
    static func family(of name: String, types: [String: String]) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if types[base] == "histogram" || types[base] == "summary" { return base }
        }
        return name
    }

    static func parse(_ text: String) throws -> [ExpositionLine] {
        guard text.hasSuffix("\n") else { throw ExpositionError(line: 0, text: "", reason: "must end with a newline") }
        var out: [ExpositionLine] = []
        var types: [String: String] = [:]
        var helps: Set<String> = []
        var finished: Set<String> = []
        var current: String?
        for (i, raw) in text.dropLast().split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let n = i + 1
            func fail(_ reason: String) -> ExpositionError { ExpositionError(line: n, text: String(raw), reason: reason) }
            if raw.hasPrefix("# HELP ") || raw.hasPrefix("# TYPE ") {
                let parts = raw.dropFirst(7).split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, isMetricName(parts[0]) else { throw fail("bad metadata line") }
                let name = String(parts[0])
                if current != name, let c = current { finished.insert(c) }
                guard !finished.contains(name) else { throw fail("family \(name) is not contiguous") }
                current = name
                if raw.hasPrefix("# HELP ") {
                    guard helps.insert(name).inserted else { throw fail("second HELP") }
                    out.append(.help(name: name, text: String(parts[1])))
                } else {
                    guard ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[1]) else { throw fail("unknown type") }
                    guard types[name] == nil else { throw fail("second TYPE") }
                    guard !out.contains(where: { if case .sample(let s, _, _) = $0 { return family(of: s, types: [name: String(parts[1])]) == name }; return false }) else {
                        throw fail("TYPE after samples")
                    }
                    types[name] = String(parts[1])
                    out.append(.type(name: name, type: String(parts[1])))
                }
                continue
            }
            guard !raw.hasPrefix("#") else { continue }
            guard !raw.isEmpty else { throw fail("empty line") }
            // name{labels} value
            var rest = raw[...]
            let nameEnd = rest.firstIndex(where: { $0 == "{" || $0 == " " }) ?? rest.endIndex
            let name = rest[..<nameEnd]
            guard isMetricName(name) else { throw fail("bad metric name") }
            rest = rest[nameEnd...]
            var labels: [String: String] = [:]
            if rest.first == "{" {
                rest = rest.dropFirst()
                while rest.first != "}" {
                    guard let eq = rest.firstIndex(of: "=") else { throw fail("label without =") }
                    let label = rest[..<eq]
                    guard isLabelName(label), !label.hasPrefix("__") else { throw fail("bad label name") }
                    rest = rest[rest.index(after: eq)...]
                    guard rest.first == "\"" else { throw fail("unquoted label value") }
                    rest = rest.dropFirst()
                    var value = ""
                    while true {
                        guard let c = rest.first else { throw fail("unterminated label value") }
                        rest = rest.dropFirst()
                        if c == "\"" { break }
                        if c == "\\" {
                            guard let e = rest.first else { throw fail("dangling escape") }
                            rest = rest.dropFirst()
                            switch e {
                            case "\\": value.append("\\")
                            case "\"": value.append("\"")
                            case "n": value.append("\n")
                            default: throw fail("bad escape")
                            }
                        } else {
                            guard c != "\n" else { throw fail("raw newline") }
                            value.append(c)
                        }
                    }
                    guard labels[String(label)] == nil else { throw fail("repeated label") }
                    labels[String(label)] = value
                    if rest.first == "," { rest = rest.dropFirst() } else if rest.first != "}" { throw fail("expected , or }") }
                }
                rest = rest.dropFirst()
            }
            guard rest.first == " " else { throw fail("no space before the value") }
            let fields = rest.dropFirst().split(separator: " ")
            guard fields.count == 1 || fields.count == 2, let v = value(fields[0]) else { throw fail("bad value") }
            if fields.count == 2 { guard Int64(fields[1]) != nil else { throw fail("bad timestamp") } }
            let fam = family(of: String(name), types: types)
            if current != fam, let c = current { finished.insert(c) }
            guard !finished.contains(fam) else { throw fail("family \(fam) is not contiguous") }
            current = fam
            if types[fam] == "histogram", name.hasSuffix("_bucket"), labels["le"] == nil { throw fail("bucket without le") }
            if types[fam] == "counter" { guard v >= 0 else { throw fail("negative counter") } }
            out.append(.sample(name: String(name), labels: labels, value: v))
        }
        return out
    }

    /// Checks every histogram: per label set, buckets in increasing `le`, cumulative, ending
    /// with +Inf equal to _count, and a _sum.
    static func checkHistograms(_ lines: [ExpositionLine]) throws {
        let histograms = lines.compactMap { if case .type(let n, "histogram") = $0 { return n }; return nil }
        for h in histograms {
            var buckets: [[String: String]: [(Double, Double)]] = [:]
            var counts: [[String: String]: Double] = [:]
            var sums: Set<[String: String]> = []
            for case .sample(let name, var labels, let value) in lines {
                if name == h + "_bucket" {
                    let le = labels.removeValue(forKey: "le")!
                    guard let bound = ExpositionParser.value(Substring(le)) else {
                        throw ExpositionError(line: 0, text: name, reason: "bad le \(le)")
                    }
                    buckets[labels, default: []].append((bound, value))
                } else if name == h + "_count" {
                    counts[labels] = value
                } else if name == h + "_sum" {
                    sums.insert(labels)
                }
            }
            for (labels, series) in buckets {
                let reason: String?
                if zip(series, series.dropFirst()).contains(where: { $0.0 >= $1.0 }) {
                    reason = "le not increasing"
                } else if zip(series, series.dropFirst()).contains(where: { $0.1 > $1.1 }) {
                    reason = "buckets not cumulative"
                } else if series.last?.0 != .infinity {
                    reason = "no +Inf bucket"
                } else if counts[labels] != series.last?.1 {
                    reason = "+Inf bucket differs from _count"
                } else if !sums.contains(labels) {
                    reason = "no _sum"
                } else {
                    reason = nil
                }
                if let reason { throw ExpositionError(line: 0, text: "\(h) \(labels)", reason: reason) }
            }
        }
    }

    /// The value of the sample `name` with exactly `labels`, if present.
    static func value(in lines: [ExpositionLine], _ name: String, _ labels: [String: String]) -> Double? {
        for case .sample(let n, let l, let v) in lines where n == name && l == labels { return v }
        return nil
    }
}

/// The path of an executable named `name` on PATH, if any.
func executableOnPath(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    for dir in path.split(separator: ":") {
        let candidate = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// Runs `executable` with `arguments`, feeding `input` on stdin; returns exit status and output.
func run(_ executable: String, _ arguments: [String], input: String) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let stdin = Pipe(), stdout = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = stdout
    try process.run()
    stdin.fileHandleForWriting.write(Data(input.utf8))
    try stdin.fileHandleForWriting.close()
    let output = stdout.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}
