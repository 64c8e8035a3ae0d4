#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SluiceCore

/// The state file: runtime overrides, rollouts and the table version counter, kept across restarts.
///
/// ```json
/// { "format": 1, "version": 12, "updated": "2026-11-27T10:00:00.000Z",
///   "overrides": { "web": { "kind": "split", "weights": [{ "cohort": "stable", "weight": 90 }, ...], ... } },
///   "file_splits": { "web": "stable/stable/9500/split canary/canary/500/split baseline=stable" },
///   "rollouts": { "web": { "state": "progressing", "step": 2, "elapsed_at_step_ns": 250000000000, ... } } }
/// ```
/// Unknown keys are ignored when reading, so an older sluice reads a newer file.
/// Written atomically: a temporary file in the same directory, fsync, rename over the old one,
/// fsync of the directory. A crash leaves either the old or the new file, never a mix.
public struct RuntimeStateFile: Sendable, Equatable, Codable {
    /// Layout version of this file (1).
    public var format: Int
    /// The table version serving when it was written.
    public var version: UInt64
    /// When it was written, RFC 3339 UTC.
    public var updated: String
    /// Overrides in force, by route name.
    public var overrides: [String: RouteOverride]
    /// For each route with an override, its split as the config file had it (cohorts, upstreams,
    /// weights, baseline): when the file's split differs at the next start, the file was
    /// changed meanwhile and wins (the override is dropped).
    public var fileSplits: [String: String]
    /// Each route's automated rollout (state, step, time at the step), by route name; written
    /// in the same file write as the split the rollout set.
    public var rollouts: [String: RolloutSnapshot]

    /// Creates a state.
    public init(format: Int = 1, version: UInt64, updated: String, overrides: [String: RouteOverride],
                fileSplits: [String: String] = [:], rollouts: [String: RolloutSnapshot] = [:]) {
        self.format = format
        self.version = version
        self.updated = updated
        self.overrides = overrides
        self.fileSplits = fileSplits
        self.rollouts = rollouts
    }

    /// JSON keys.
    enum CodingKeys: String, CodingKey {
        case format, version, updated, overrides, fileSplits = "file_splits", rollouts
    }

    /// Decodes (`file_splits` and `rollouts` may be absent).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = try c.decode(Int.self, forKey: .format)
        version = try c.decode(UInt64.self, forKey: .version)
        updated = try c.decodeIfPresent(String.self, forKey: .updated) ?? ""
        overrides = try c.decodeIfPresent([String: RouteOverride].self, forKey: .overrides) ?? [:]
        fileSplits = try c.decodeIfPresent([String: String].self, forKey: .fileSplits) ?? [:]
        rollouts = try c.decodeIfPresent([String: RolloutSnapshot].self, forKey: .rollouts) ?? [:]
    }

    /// Reads `path`; nil when it does not exist. Throws when it exists but cannot be read, is
    /// not a regular file, is larger than `ConfigLoader.maxFileBytes`, is not a state file this
    /// version understands, or holds a value out of range (`problem()`).
    public static func read(path: String) throws(AdminError) -> RuntimeStateFile? {
        if access(path, F_OK) != 0 && errno == ENOENT { return nil }
        let text: String
        switch ConfigLoader.readFile(path, regularOnly: true) {
        case .success(let t): text = t
        case .failure(let f): throw AdminError("cannot read state file \(f.message)")
        }
        return try decode(text, path: path)
    }

    /// Decodes and validates state-file text; `path` names the file in messages.
    package static func decode(_ text: String, path: String) throws(AdminError) -> RuntimeStateFile {
        let state: RuntimeStateFile
        do {
            state = try JSONDecoder().decode(RuntimeStateFile.self, from: Data(text.utf8))
        } catch let error as DecodingError {
            throw AdminError("state file \(path) is not valid: \(Self.describe(error))")
        } catch {
            throw AdminError("state file \(path) is not valid: \(error)")
        }
        guard state.format == 1 else {
            throw AdminError("state file \(path) has format \(state.format); this sluice reads format 1")
        }
        if let problem = state.problem() {
            throw AdminError("state file \(path) is not valid: \(problem)")
        }
        return state
    }

    /// Largest table version a state file may hold: 2^53 - 1, the largest integer every JSON
    /// reader keeps exactly. Versions grow by one per change, so this is never reached in use,
    /// and `version + 1` can never overflow.
    public static let maxVersion: UInt64 = (1 << 53) - 1
    /// Largest time at a step a snapshot may hold: 10 years, in nanoseconds.
    public static let maxElapsedAtStep: UInt64 = 3_650 * 86_400 * 1_000_000_000
    /// Largest failure count a snapshot may hold (`failure_limit` is at most 1000).
    public static let maxConsecutiveFailures = 1_000

    /// The first field out of range, as `key: what is wrong`, or nil when every field is in range.
    /// Weights are checked while decoding (`RouteOverride`), before they are converted to integers.
    func problem() -> String? {
        guard version <= Self.maxVersion else {
            return "`version` \(version) is out of range (at most \(Self.maxVersion))"
        }
        for (route, o) in overrides.sorted(by: { $0.key < $1.key }) {
            guard o.version <= Self.maxVersion else {
                return "`overrides.\(route).version` \(o.version) is out of range (at most \(Self.maxVersion))"
            }
        }
        for (route, r) in rollouts.sorted(by: { $0.key < $1.key }) {
            let at = "rollouts.\(route)"
            guard (0...9_999).contains(r.step) else {
                return "`\(at).step` \(r.step) is out of range (0...9999)"
            }
            guard (0...10_000).contains(r.canaryWeight) else {
                return "`\(at).canary_weight` \(r.canaryWeight) is out of range (0...10000, in 0.01% units)"
            }
            guard r.elapsedAtStep <= Self.maxElapsedAtStep else {
                return "`\(at).elapsed_at_step_ns` \(r.elapsedAtStep) is out of range (at most \(Self.maxElapsedAtStep), 10 years)"
            }
            guard (0...Self.maxConsecutiveFailures).contains(r.consecutiveFailures) else {
                return "`\(at).consecutive_failures` \(r.consecutiveFailures) is out of range (0...\(Self.maxConsecutiveFailures))"
            }
        }
        return nil
    }

    /// A decoding error as `key.path: what` (Foundation's own description is a debug dump).
    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            var out = ""
            for key in keys {
                if let i = key.intValue { out += "[\(i)]" } else { out += out.isEmpty ? key.stringValue : "." + key.stringValue }
            }
            return out.isEmpty ? "the file" : "`\(out)`"
        }
        switch error {
        case .typeMismatch(let type, let c): return "\(path(c.codingPath)): expected \(type) (\(c.debugDescription))"
        case .valueNotFound(let type, let c): return "\(path(c.codingPath)): expected \(type), found null"
        case .keyNotFound(let key, let c): return "\(path(c.codingPath + [key])) is missing"
        case .dataCorrupted(let c) where c.codingPath.isEmpty:
            // What Foundation's decoder says for a syntax error, NaN, and a number its field
            // cannot hold (a negative count, 1e400) alike.
            return "not valid JSON, or a number that does not fit its field (negative, fractional or too large)"
        case .dataCorrupted(let c):
            let underlying = c.underlyingError.map { " (\($0))" } ?? ""
            return "\(path(c.codingPath)): \(c.debugDescription)\(underlying)"
        @unknown default: return "\(error)"
        }
    }

    /// Writes the state to `path` atomically (temp file, fsync, rename, fsync of the directory).
    public func write(path: String) throws(AdminError) {
        try AtomicFile.replace(path, with: Array(try Self.encodedText(self).utf8))
    }

    /// The file's text for `state`: pretty-printed JSON with sorted keys and a final newline.
    package static func encodedText(_ state: RuntimeStateFile) throws(AdminError) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            return String(decoding: try encoder.encode(state), as: UTF8.self) + "\n"
        } catch {
            throw AdminError("cannot encode the state: \(error)")
        }
    }
}

/// Whole-file replacement that survives crashes: write a temporary file next to the target,
/// fsync it, rename it over the target, fsync the directory.
enum AtomicFile {
    /// Replaces `path` with `bytes` (mode 0644).
    static func replace(_ path: String, with bytes: [UInt8]) throws(AdminError) {
        let dir: String
        if let slash = path.lastIndex(of: "/") {
            dir = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            dir = "."
        }
        let temp = path + ".tmp-\(getpid())"
        // Created exclusively and never through a symlink: a link planted at the temporary name
        // must not make this write land on its target. A regular file left there by a crashed
        // sluice with the same pid is removed (unlink removes a name, never a link's target) once.
        var fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        if fd < 0 && errno == EEXIST {
            var st = stat()
            if lstat(temp, &st) == 0 && st.st_mode & S_IFMT == S_IFLNK {
                throw AdminError("refusing to write \(temp): it exists and is a symbolic link (someone else created it; "
                                 + "remove it after checking where it points)")
            }
            if lstat(temp, &st) == 0 && st.st_mode & S_IFMT == S_IFREG && unlink(temp) == 0 {
                fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            }
        }
        guard fd >= 0 else {
            let text = errno == EEXIST ? "it exists and is not a regular file" : AdminSocket.errnoText()
            throw AdminError("cannot write \(temp): \(text)")
        }
        var ok = false
        defer { if !ok { unlink(temp) } }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                let text = AdminSocket.errnoText()
                close(fd)
                throw AdminError("cannot write \(temp): \(text)")
            }
            offset += n
        }
        if fsync(fd) != 0 {
            let text = AdminSocket.errnoText()
            close(fd)
            throw AdminError("cannot fsync \(temp): \(text)")
        }
        close(fd)
        guard rename(temp, path) == 0 else { throw AdminError("cannot rename \(temp) to \(path): \(AdminSocket.errnoText())") }
        ok = true
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }
}
