#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import Yams

/// Loads and validates Sluice's YAML config and compiles its routing table.
///
/// Every problem in the file is reported (file, line, column, key path, what is wrong and how
/// to fix it), not only the first, except YAML syntax errors, after which nothing can be read.
public enum ConfigLoader {
    /// Reads and loads the config file at `path`; the table gets `version`.
    public static func load(path: String, version: UInt64 = 1) throws(ConfigError) -> SluiceConfig {
        try load(path: path, version: version, resolver: .system)
    }

    /// Loads a config from YAML text; `file` names it in diagnostics. The table gets `version`.
    public static func parse(yaml: String, file: String, version: UInt64 = 1) throws(ConfigError) -> SluiceConfig {
        try parse(yaml: yaml, file: file, version: version, resolver: .system)
    }

    /// `load(path:version:)` with a chosen host resolver (tests use a fixed one).
    package static func load(path: String, version: UInt64, resolver: HostResolver) throws(ConfigError) -> SluiceConfig {
        let text: String
        switch readFile(path) {
        case .success(let t): text = t
        case .failure(let failure):
            throw ConfigError(diagnostics: [ConfigDiagnostic(
                file: path, line: 0, column: 0, keyPath: "", message: "cannot read config file: \(failure.message)",
                hint: "check the path given with --config")])
        }
        return try load(text: text, path: path, version: version, resolver: resolver)
    }

    /// Loads config text read from the file at `path` (names `path` in diagnostics, sets
    /// `sourcePath` and resolves the state file next to it).
    package static func load(text: String, path: String, version: UInt64, resolver: HostResolver,
                             environmentToken: String? = ConfigLoader.environmentToken()) throws(ConfigError) -> SluiceConfig {
        var (config, stateFile) = try compile(yaml: text, file: path, version: version, resolver: resolver,
                                              environmentToken: environmentToken)
        config.sourcePath = path
        switch stateFile {
        case .off: config.stateFile = nil
        case .default: config.stateFile = path + ".state.json"
        case .path(let p): config.stateFile = resolve(p, relativeTo: path)
        }
        return config
    }

    /// `relative` resolved against the directory of `file` (absolute paths are kept).
    static func resolve(_ relative: String, relativeTo file: String) -> String {
        if relative.hasPrefix("/") { return relative }
        guard let slash = file.lastIndex(of: "/") else { return relative }
        return String(file[...slash]) + relative
    }

    /// `parse(yaml:file:version:)` with a chosen host resolver (tests use a fixed one).
    package static func parse(yaml: String, file: String, version: UInt64, resolver: HostResolver,
                              environmentToken: String? = ConfigLoader.environmentToken()) throws(ConfigError) -> SluiceConfig {
        try compile(yaml: yaml, file: file, version: version, resolver: resolver, environmentToken: environmentToken).config
    }

    /// `$SLUICE_ADMIN_TOKEN` when set and not empty: the admin token when the config gives none.
    package static func environmentToken() -> String? {
        guard let raw = getenv("SLUICE_ADMIN_TOKEN") else { return nil }
        let s = String(cString: raw)
        return s.isEmpty ? nil : s
    }

    /// Parses and compiles, also returning what `state_file:` said.
    static func compile(yaml: String, file: String, version: UInt64, resolver: HostResolver,
                        environmentToken: String? = ConfigLoader.environmentToken())
        throws(ConfigError) -> (config: SluiceConfig, stateFile: ConfigCompiler.StateFileSetting) {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml, .basic)
        } catch let error as YamlError {
            throw ConfigError(diagnostics: [diagnostic(for: error, yaml: yaml, file: file)])
        } catch {
            throw ConfigError(diagnostics: [ConfigDiagnostic(
                file: file, line: 0, column: 0, keyPath: "", message: "cannot parse YAML: \(error)")])
        }
        guard let root, !ConfigReader.isNull(root) else {
            throw ConfigError(diagnostics: [ConfigDiagnostic(
                file: file, line: 1, column: 1, keyPath: "", message: "the config is empty",
                hint: "see the README's configuration reference for a complete example")])
        }
        var compiler = ConfigCompiler(file: file, resolver: resolver, environmentToken: environmentToken)
        let config = compiler.compile(root, version: version)
        guard let config, compiler.reader.isClean else {
            let sorted = compiler.reader.diagnostics.enumerated().sorted {
                ($0.element.line, $0.element.column, $0.offset) < ($1.element.line, $1.element.column, $1.offset)
            }.map(\.element)
            throw ConfigError(diagnostics: sorted)
        }
        return (config, compiler.stateFileSetting)
    }

    // MARK: YAML errors

    /// Turns a Yams error into a diagnostic at the place libyaml reported.
    static func diagnostic(for error: YamlError, yaml: String, file: String) -> ConfigDiagnostic {
        switch error {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            var hint = "check indentation (spaces, not tabs), quotes and brackets around this place"
            if let context {
                hint = "\(context.text) that starts at line \(context.mark.line), column \(context.mark.column); " + hint
            }
            return ConfigDiagnostic(file: file, line: mark.line, column: mark.column, keyPath: "",
                                    message: "YAML syntax error: \(problem)", hint: hint)
        case .reader(let problem, let offset, _, _):
            var line = 1, column = 1
            if let offset {
                for ch in yaml.prefix(offset) {
                    if ch == "\n" { line += 1; column = 1 } else { column += 1 }
                }
            }
            return ConfigDiagnostic(file: file, line: line, column: column, keyPath: "",
                                    message: "cannot read YAML: \(problem)", hint: "the file must be UTF-8 text")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let key = duplicates.first ?? ""
            let first = context.mark
            let place = DuplicateKeyLocator(yaml: yaml).locate(key: key, first: first)
            let parent = place.parentPath
            let what: String
            switch parent {
            case "upstreams": what = "duplicate upstream name `\(key)`"
            default: what = "duplicate key `\(key)`"
            }
            return ConfigDiagnostic(
                file: file, line: place.line, column: place.column, keyPath: ConfigReader.join(parent, key),
                message: "\(what) (first defined at line \(first.line))",
                hint: parent == "upstreams" ? "give each upstream its own name" : "each key may appear once in a mapping; remove or rename one")
        default:
            return ConfigDiagnostic(file: file, line: 0, column: 0, keyPath: "", message: "cannot parse YAML: \(error)")
        }
    }

    /// Why a file could not be read (the OS error text).
    package struct ReadFailure: Error {
        /// `path: strerror text`.
        package var message: String
    }

    /// The most Sluice reads from any one file (config, state file, token file): 16 MiB. A path
    /// naming `/dev/zero` or a huge file gets an error instead of exhausting memory.
    package static let maxFileBytes = 16 << 20

    /// Reads a whole file as UTF-8 (at most `limit` bytes), or returns the OS error text.
    /// `regularOnly` refuses anything but a regular file (opened non-blocking, so a FIFO cannot stall
    /// the caller); without it pipes and devices are read too (`sluice check <(...)`), bounded.
    package static func readFile(_ path: String, limit: Int = maxFileBytes,
                                 regularOnly: Bool = false) -> Result<String, ReadFailure> {
        let fd = open(path, O_RDONLY | O_CLOEXEC | (regularOnly ? O_NONBLOCK : 0))
        guard fd >= 0 else { return .failure(ReadFailure(message: "\(path): \(String(cString: strerror(errno)))")) }
        defer { close(fd) }
        if regularOnly {
            var st = stat()
            guard fstat(fd, &st) == 0 else { return .failure(ReadFailure(message: "\(path): \(String(cString: strerror(errno)))")) }
            guard st.st_mode & S_IFMT == S_IFREG else {
                return .failure(ReadFailure(message: "\(path): not a regular file"))
            }
        }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(ReadFailure(message: "\(path): \(String(cString: strerror(errno)))"))
            }
            if n == 0 { break }
            guard data.count + n <= limit else {
                return .failure(ReadFailure(message: "\(path): larger than \(ConfigValues.formatSize(UInt64(limit))), "
                                            + "the most sluice reads from one file"))
            }
            data += chunk[0..<n]
        }
        return .success(String(decoding: data, as: UTF8.self))
    }
}

/// Finds where a duplicated mapping key appears the second time, and the key path of its
/// mapping, from the text (Yams reports only the first occurrence). Best effort: block style
/// and one-line flow mappings; anything else falls back to the first occurrence.
struct DuplicateKeyLocator {
    /// The file's lines.
    let lines: [[Character]]

    /// A locator over `yaml`.
    init(yaml: String) {
        lines = yaml.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0) }
    }

    /// Where the second `key` is (the first when not found), and the parent key path.
    func locate(key: String, first: Mark) -> (line: Int, column: Int, parentPath: String) {
        let col = first.column - 1
        let parent = parentPath(line: first.line, column: first.column)
        guard first.line >= 1 && first.line <= lines.count else { return (first.line, first.column, parent) }
        // Flow mapping: a later `key:` on the same line after `,` or `{`.
        let own = lines[first.line - 1]
        var j = col + key.count
        while j < own.count {
            if Self.startsWithKey(String(own[j...]), key) {
                let before = own[..<j].reversed().first(where: { $0 != " " })
                if before == "," || before == "{" { return (first.line, j + 1, parent) }
            }
            j += 1
        }
        // Block mapping: a later line with the key at the same column, before the mapping ends.
        var i = first.line
        while i < lines.count {
            let text = lines[i]
            let lead = text.prefix(while: { $0 == " " }).count
            let rest = String(text[lead...])
            if rest.isEmpty || rest.hasPrefix("#") { i += 1; continue }
            if lead < col || (rest.hasPrefix("- ") && lead + 2 <= col) { break }
            if lead == col && Self.startsWithKey(rest, key) { return (i + 1, col + 1, parent) }
            i += 1
        }
        return (first.line, first.column, parent)
    }

    /// The key path (`upstreams`, `routes[1].split`) of the mapping holding the key at (line, column).
    func parentPath(line: Int, column: Int) -> String {
        guard line >= 1 && line <= lines.count else { return "" }
        var parts: [String] = []
        var indent = column - 1
        // A one-line flow mapping: `split: { a: 1, a: 2 }`.
        let own = lines[line - 1]
        if indent <= own.count, let brace = own[..<indent].lastIndex(of: "{") {
            let before = String(own[..<brace]).trimmingSpaces()
            if before.hasSuffix(":") {
                let keyEnd = own[..<brace].lastIndex(of: ":")!
                var start = keyEnd
                while start > 0 && !" {,".contains(own[start - 1]) { start -= 1 }
                parts.append(String(own[start..<keyEnd]).trimmingQuotes())
                indent = start
            }
        }
        // Start on the key's own line: `- name: x` puts the key in the item that line opens.
        var i = line - 1
        var allowEqual = false
        while i >= 0 && indent > 0 {
            let text = lines[i]
            let spaces = text.prefix(while: { $0 == " " }).count
            let rest = String(text[spaces...])
            if rest.isEmpty || rest.hasPrefix("#") { i -= 1; continue }
            if rest.hasPrefix("-") && (rest.count == 1 || rest.dropFirst().hasPrefix(" ")) {
                let itemColumn = spaces + 1 + rest.dropFirst().prefix(while: { $0 == " " }).count
                if itemColumn == indent {
                    // Our node is inside this list item: count the items above it.
                    var index = 0
                    var j = i - 1
                    while j >= 0 {
                        let t = lines[j]
                        let s2 = t.prefix(while: { $0 == " " }).count
                        let r2 = String(t[s2...])
                        if r2.isEmpty || r2.hasPrefix("#") { j -= 1; continue }
                        if s2 == spaces && r2.hasPrefix("-") { index += 1 } else if s2 <= spaces { break }
                        j -= 1
                    }
                    parts.append("[\(index)]")
                    indent = spaces
                    allowEqual = true
                    i = j
                    continue
                }
                if itemColumn < indent, let k = Self.key(of: String(rest.dropFirst().drop(while: { $0 == " " }))) {
                    parts.append(k)
                    indent = itemColumn
                    continue  // the same line again, now as the item holding `k`
                }
                i -= 1
                continue
            }
            if spaces < indent || (allowEqual && spaces == indent), let k = Self.key(of: rest) {
                parts.append(k)
                indent = spaces
                allowEqual = false
            }
            i -= 1
        }
        var path = ""
        for part in parts.reversed() {
            if part.hasPrefix("[") { path += part } else { path = ConfigReader.join(path, part) }
        }
        return path
    }

    private static func key(of content: String) -> String? {
        guard let colon = content.firstIndex(of: ":") else { return nil }
        let k = String(content[..<colon]).trimmingSpaces()
        guard !k.isEmpty, !k.contains(" "), !k.hasPrefix("{") else { return nil }
        return k.trimmingQuotes()
    }

    private static func startsWithKey(_ content: String, _ key: String) -> Bool {
        for candidate in [key, "\"\(key)\"", "'\(key)'"] where content.hasPrefix(candidate) {
            let rest = content.dropFirst(candidate.count).drop(while: { $0 == " " })
            if rest.hasPrefix(":") { return true }
        }
        return false
    }
}

extension String {
    fileprivate func trimmingQuotes() -> String {
        if count >= 2, (hasPrefix("\"") && hasSuffix("\"")) || (hasPrefix("'") && hasSuffix("'")) {
            return String(dropFirst().dropLast())
        }
        return self
    }
}
