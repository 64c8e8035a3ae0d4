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

    /// Reads `path`; nil when it does not exist. Throws when it exists but cannot be read or
    /// is not a state file this version understands.
    public static func read(path: String) throws(AdminError) -> RuntimeStateFile? {
        if access(path, F_OK) != 0 && errno == ENOENT { return nil }
        let text: String
        switch ConfigLoader.readFile(path) {
        case .success(let t): text = t
        case .failure(let f): throw AdminError("cannot read state file \(f.message)")
        }
        do {
            let state = try JSONDecoder().decode(RuntimeStateFile.self, from: Data(text.utf8))
            guard state.format == 1 else {
                throw AdminError("state file \(path) has format \(state.format); this sluice reads format 1")
            }
            return state
        } catch let error as AdminError {
            throw error
        } catch {
            throw AdminError("state file \(path) is not valid: \(error)")
        }
    }

    /// Writes the state to `path` atomically (temp file, fsync, rename, fsync of the directory).
    public func write(path: String) throws(AdminError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let bytes: [UInt8]
        do {
            bytes = Array(try encoder.encode(self)) + [0x0A]
        } catch {
            throw AdminError("cannot encode the state: \(error)")
        }
        try AtomicFile.replace(path, with: bytes)
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
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw AdminError("cannot write \(temp): \(AdminSocket.errnoText())") }
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
