import Yams

/// Walks composed YAML nodes and collects diagnostics instead of stopping at the first problem.
/// Every reader returns nil after reporting; callers carry on with the rest of the file.
struct ConfigReader {
    /// File name used in diagnostics.
    let file: String
    /// Problems found so far.
    private(set) var diagnostics: [ConfigDiagnostic] = []

    /// A reader reporting problems against `file`.
    init(file: String) {
        self.file = file
    }

    // MARK: Reporting

    /// Records a problem at `node`'s position.
    mutating func report(_ node: Node?, _ keyPath: String, _ message: String, hint: String? = nil) {
        report(at: node?.mark, keyPath, message, hint: hint)
    }

    /// Records a problem at `mark`.
    mutating func report(at mark: Mark?, _ keyPath: String, _ message: String, hint: String? = nil) {
        diagnostics.append(ConfigDiagnostic(
            file: file, line: mark?.line ?? 0, column: mark?.column ?? 0, keyPath: keyPath,
            message: message, hint: hint))
    }

    /// True when nothing has been reported.
    var isClean: Bool { diagnostics.isEmpty }

    // MARK: Paths

    /// `parent.key` (or `key` at the top).
    static func join(_ parent: String, _ key: String) -> String {
        parent.isEmpty ? key : parent + "." + key
    }

    /// `parent[index]`.
    static func join(_ parent: String, _ index: Int) -> String {
        parent + "[\(index)]"
    }

    // MARK: Shapes

    /// Reads a mapping with string keys, reporting a wrong type, unknown keys (with a
    /// "did you mean" suggestion) and missing required keys. `<<` merge keys are applied.
    mutating func map(_ node: Node, _ path: String, known: [String], required: [String] = [],
                      example: String? = nil) -> YAMLMap? {
        guard case .mapping(let mapping) = node else {
            report(node, path, "expected a mapping, found \(Self.describe(node))",
                   hint: example.map { "write it as a mapping, e.g. `\($0)`" })
            return nil
        }
        var entries: [YAMLMap.Entry] = []
        var seen: Set<String> = []
        var merged: [YAMLMap.Entry] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                report(keyNode, path, "mapping keys must be plain strings, found \(Self.describe(keyNode))")
                continue
            }
            let key = scalar.string
            if key == "<<" && scalar.style == .plain {
                let sources: [Node] = value.sequence.map { Array($0) } ?? [value]
                for source in sources {
                    guard case .mapping(let m) = source else {
                        report(source, path, "a `<<` merge key needs a mapping (or a list of mappings) to merge")
                        continue
                    }
                    for (k, v) in m {
                        guard case .scalar(let ks) = k, !seen.contains(ks.string),
                              !merged.contains(where: { $0.key == ks.string }) else { continue }
                        merged.append(YAMLMap.Entry(key: ks.string, keyNode: k, value: v))
                    }
                }
                continue
            }
            seen.insert(key)
            entries.append(YAMLMap.Entry(key: key, keyNode: keyNode, value: value))
        }
        entries += merged.filter { !seen.contains($0.key) }
        var suggested: Set<String> = []
        var unknown: [String] = []
        for entry in entries where !known.contains(entry.key) {
            let hint = Self.suggestion(for: entry.key, among: known)
            if let hint, let close = Self.closest(entry.key, among: known), hint.hasPrefix("did you mean") {
                suggested.insert(close)
            }
            unknown.append(entry.key)
            report(entry.keyNode, path, "unknown key `\(entry.key)`", hint: hint)
        }
        // A missing key that a misspelt one was taken for is already reported as that typo.
        for key in required where !entries.contains(where: { $0.key == key }) && !suggested.contains(key) {
            report(node, path, "missing required key `\(key)`",
                   hint: example.map { "e.g. `\($0)`" })
        }
        return YAMLMap(node: node, path: path, entries: entries.filter { known.contains($0.key) }, unknownKeys: unknown)
    }

    /// Reads a list. A single non-list item is reported unless `allowSingle` is true, in which
    /// case it is treated as a list of one.
    mutating func list(_ node: Node, _ path: String, allowSingle: Bool = false, example: String? = nil) -> [Node]? {
        if case .sequence(let seq) = node { return Array(seq) }
        if allowSingle && !Self.isNull(node) { return [node] }
        report(node, path, "expected a list, found \(Self.describe(node))",
               hint: example.map { "write it as a list, e.g. `\($0)`" })
        return nil
    }

    // MARK: Scalars

    /// Reads a string scalar.
    mutating func string(_ node: Node, _ path: String, allowEmpty: Bool = false) -> String? {
        guard case .scalar(let scalar) = node else {
            report(node, path, "expected a string, found \(Self.describe(node))")
            return nil
        }
        if !allowEmpty && (Self.isNull(node) || scalar.string.isEmpty) {
            report(node, path, "expected a non-empty string")
            return nil
        }
        return scalar.string
    }

    /// Reads an integer scalar within `range`.
    mutating func int(_ node: Node, _ path: String, in range: ClosedRange<Int>) -> Int? {
        guard case .scalar(let scalar) = node else {
            report(node, path, "expected a number, found \(Self.describe(node))")
            return nil
        }
        let text = scalar.string.replacingUnderscores()
        guard let value = Int(text) else {
            report(node, path, "expected a whole number, found `\(scalar.string)`")
            return nil
        }
        guard range.contains(value) else {
            report(node, path, "\(value) is out of range, must be \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return value
    }

    /// Reads a boolean scalar (`true`/`false`, also `yes`/`no`, `on`/`off`).
    mutating func bool(_ node: Node, _ path: String) -> Bool? {
        if case .scalar(let scalar) = node {
            switch scalar.string.lowercased() {
            case "true", "yes", "on": return true
            case "false", "no", "off": return false
            default: break
            }
        }
        report(node, path, "expected true or false, found \(Self.describe(node))")
        return nil
    }

    /// Reads a duration (`250ms`, `10s`, `5m`, `1h`, `30d`, bare integer = seconds) in nanoseconds,
    /// at most `max` (every duration has a bound, so no deadline or sum computed from one can
    /// overflow: the largest, 400 days, is about 2^55 ns). `microseconds` also accepts `50us`.
    mutating func duration(_ node: Node, _ path: String, max: UInt64 = ConfigValues.maxDuration,
                           microseconds: Bool = false) -> UInt64? {
        guard case .scalar(let scalar) = node else {
            report(node, path, "expected a duration, found \(Self.describe(node))")
            return nil
        }
        switch ConfigValues.parseDuration(scalar.string, microseconds: microseconds) {
        case .success(let ns):
            guard ns <= max else {
                let key = path.split(separator: ".").last.map(String.init) ?? path
                report(node, path, "duration `\(Self.abbreviated(scalar.string))` is too long: \(key) is at most \(ConfigValues.formatDuration(max))",
                       hint: "e.g. `\(key): \(ConfigValues.formatDuration(Swift.min(max, 10_000_000_000)))`")
                return nil
            }
            return ns
        case .failure(let problem):
            report(node, path, problem.message, hint: problem.hint)
            return nil
        }
    }

    /// Reads a byte size (bare integer bytes, `8KiB`/`8k`, `1MiB`/`1m`, `1GiB`/`1g`), at most `max`.
    mutating func size(_ node: Node, _ path: String, max: UInt64 = ConfigValues.maxSize) -> UInt64? {
        guard case .scalar(let scalar) = node else {
            report(node, path, "expected a size, found \(Self.describe(node))")
            return nil
        }
        switch ConfigValues.parseSize(scalar.string) {
        case .success(let bytes):
            guard bytes <= max else {
                let key = path.split(separator: ".").last.map(String.init) ?? path
                report(node, path, "size `\(Self.abbreviated(scalar.string))` is too large: \(key) is at most \(ConfigValues.formatSize(max))")
                return nil
            }
            return bytes
        case .failure(let problem):
            report(node, path, problem.message, hint: problem.hint)
            return nil
        }
    }

    // MARK: Helpers

    /// `text` as quoted in a message: at most 60 characters, longer text cut with `...` and its
    /// length (a 100 KB value must not make a 100 KB diagnostic).
    static func abbreviated(_ text: String) -> String {
        guard text.count > 60 else { return text }
        return String(text.prefix(40)) + "... (\(text.utf8.count) bytes)"
    }

    /// True for an empty value, `~` or `null` written plainly.
    static func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain || scalar.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    /// A short description of what a node is, for "expected X, found Y".
    static func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            if isNull(node) { return "nothing (null)" }
            let text = scalar.string
            let shown = text.count > 40 ? String(text.prefix(37)) + "..." : text
            if scalar.style == .plain && Double(text) != nil { return "the number `\(shown)`" }
            return "the string `\(shown)`"
        }
    }

    /// "did you mean `x`?" for the closest known key within a small edit distance, else a list
    /// of the known keys.
    static func suggestion(for word: String, among candidates: [String]) -> String? {
        guard !candidates.isEmpty else { return nil }
        if let best = closest(word, among: candidates) { return "did you mean `\(best)`?" }
        return "expected one of: " + candidates.map { "`\($0)`" }.joined(separator: ", ")
    }

    /// The candidate closest to `word` within a small edit distance, if any.
    static func closest(_ word: String, among candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(2, word.count / 3) else { return nil }
        return best.0
    }

    /// Levenshtein distance (with adjacent transpositions counted as one edit).
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[a.count][b.count]
    }
}

/// A mapping read by `ConfigReader.map`: its known entries in file order.
struct YAMLMap {
    /// One key and its value.
    struct Entry {
        /// The key text.
        var key: String
        /// The key's node (for the position of key problems).
        var keyNode: Node
        /// The value node.
        var value: Node
    }

    /// The mapping node itself (for positions of whole-mapping problems).
    let node: Node
    /// Its key path.
    let path: String
    /// Entries with known keys, in file order.
    let entries: [Entry]
    /// Keys that were reported as unknown (typos: later "missing" checks may stay quiet).
    var unknownKeys: [String] = []

    /// The value of `key`, or nil when absent.
    subscript(key: String) -> Node? {
        entries.first(where: { $0.key == key })?.value
    }

    /// The key node of `key`, or nil when absent.
    func keyNode(_ key: String) -> Node? {
        entries.first(where: { $0.key == key })?.keyNode
    }

    /// True when `key` is present.
    func has(_ key: String) -> Bool { self[key] != nil }

    /// The key path of `key`.
    func path(_ key: String) -> String { ConfigReader.join(path, key) }
}

extension String {
    /// The string without `_` digit separators (`16_384`).
    func replacingUnderscores() -> String { String(filter { $0 != "_" }) }
}
