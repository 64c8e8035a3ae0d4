/// One problem found in a config file: where it is, what is wrong, and how to fix it.
public struct ConfigDiagnostic: Error, Sendable, CustomStringConvertible, Equatable {
    /// The file name as given to the loader.
    public var file: String
    /// 1-based line (0 when the problem is not at a place in the file, e.g. it cannot be read).
    public var line: Int
    /// 1-based column (0 when unknown).
    public var column: Int
    /// Where in the config, e.g. `routes[0].split` (empty for the whole file).
    public var keyPath: String
    /// What is wrong.
    public var message: String
    /// How to fix it, when there is something useful to say.
    public var hint: String?

    /// Creates a diagnostic.
    public init(file: String, line: Int, column: Int, keyPath: String, message: String, hint: String? = nil) {
        self.file = file
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.message = message
        self.hint = hint
    }

    /// `sluice.yaml:12:5: routes[0].split: weights sum to 99.5, must be 100` and, when there is
    /// one, a second line `  hint: ...`.
    public var description: String {
        var text = file
        if line > 0 { text += ":\(line):\(column)" }
        text += ": "
        if !keyPath.isEmpty { text += keyPath + ": " }
        text += message
        if let hint { text += "\n  hint: " + hint }
        return text
    }
}

/// Every problem found in a config file (loading does not stop at the first).
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    /// The problems, ordered by position in the file.
    public var diagnostics: [ConfigDiagnostic]

    /// Creates an error from diagnostics.
    public init(diagnostics: [ConfigDiagnostic]) {
        self.diagnostics = diagnostics
    }

    /// Each diagnostic on its own line(s), then a count when there are several.
    public var description: String {
        var lines = diagnostics.map(\.description)
        if diagnostics.count > 1 { lines.append("\(diagnostics.count) errors in config") }
        return lines.joined(separator: "\n")
    }
}
