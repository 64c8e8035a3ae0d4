// Checks run on every input of FuzzConfigLoader besides the config load (issue 17): the input as
// a header regex, as a duration and a size, as a state file, and as a request path.
import FuzzSupport
@testable import SluiceCore  // `package` API (ByteRegex) from another package: a testable debug build
@testable import SluiceControl

enum HostileValueChecks {
    static func run(_ input: UnsafeRawBufferPointer, text: String) {
        regex(text)
        durationAndSize(text, input: input)
        stateFile(text)
        path(input)
    }

    // MARK: Regex

    /// Values a pattern is matched against: fixed ones and pieces of the pattern itself.
    static let probes: [[UInt8]] = ["", "a", "ab", "aaaa", "abc", "a.b", "Mozilla/5.0", "x-y_z 09", "\t\r\n", "((a))"].map { Array($0.utf8) }

    static func regex(_ pattern: String) {
        let compiled: ByteRegex
        do {
            compiled = try ByteRegex.compile(pattern)
        } catch {
            fuzzCheck(error.offset >= 0 && error.offset <= pattern.utf8.count, "error offset \(error.offset) outside the pattern")
            return
        }
        fuzzCheck(compiled.stateCount <= ByteRegex.maxStates, "\(compiled.stateCount) NFA states")
        let bytes = Array(pattern.utf8)
        var values = probes
        values.append(bytes)
        values.append(Array(bytes.prefix(bytes.count / 2)))
        values.append(Array(bytes.suffix(bytes.count / 2)))
        // Wrapping a pattern in a non-capturing group changes nothing it matches (when the
        // wrapped pattern is still within the limits, and has no leading `(?i)`, which must lead).
        let wrapped = pattern.hasPrefix("(?i)") ? nil : try? ByteRegex.compile("(?:" + pattern + ")")
        for v in values {
            let m = compiled.matches(v)
            fuzzCheck(m == compiled.matches(v), "matching is not deterministic")
            if let wrapped { fuzzCheck(wrapped.matches(v) == m, "(?:P) and P disagree on \(v)") }
        }
    }

    // MARK: Durations and sizes

    static func durationAndSize(_ text: String, input: UnsafeRawBufferPointer) {
        if case .success(let ns) = ConfigValues.parseDuration(text) {
            _ = RolloutFormat.duration(nanos: ns)
            // The unit the bound messages use reads back as the same value.
            let written = ConfigValues.formatDuration(ns)
            if ns % 1_000_000 == 0, ns > 0 {
                fuzzCheck(ConfigValues.parseDuration(written) == .success(ns), "\(ns) ns written as \(written)")
            }
        }
        if case .success(let bytes) = ConfigValues.parseSize(text) {
            let written = ConfigValues.formatSize(bytes)
            fuzzCheck(ConfigValues.parseSize(written) == .success(bytes), "\(bytes) bytes written as \(written)")
        }
        // Any 64-bit value formats without trapping (elapsed times near UInt64.max did).
        var raw: UInt64 = 0
        for (i, b) in input.prefix(8).enumerated() { raw |= UInt64(b) << (8 * UInt64(i)) }
        _ = RolloutFormat.duration(nanos: raw)
        _ = RolloutFormat.duration(nanos: UInt64.max &- raw)
        _ = RolloutFormat.duration(seconds: Double(bitPattern: raw))
    }

    // MARK: State file

    /// A route with a rollout the snapshots are restored against.
    static let spec = RolloutSpec(canary: "canary", baseline: "stable")

    static func stateFile(_ text: String) {
        guard let state = try? RuntimeStateFile.decode(text, path: "fuzz.json") else { return }
        // Accepted means in range.
        fuzzCheck(state.format == 1 && state.version <= RuntimeStateFile.maxVersion, "version \(state.version) accepted")
        for (_, o) in state.overrides {
            fuzzCheck(o.version <= RuntimeStateFile.maxVersion, "override version \(o.version) accepted")
            fuzzCheck(o.weights.allSatisfy { (0...10_000).contains($0.weight) }, "override weights \(o.weights) accepted")
        }
        for (_, r) in state.rollouts {
            fuzzCheck((0...10_000).contains(r.canaryWeight) && r.elapsedAtStep <= RuntimeStateFile.maxElapsedAtStep
                      && (0...RuntimeStateFile.maxConsecutiveFailures).contains(r.consecutiveFailures), "snapshot \(r) accepted")
            // What a start does with it: restore, then run the machine on, without a trap.
            var (machine, _) = RolloutMachine.restoring(spec: spec, snapshot: r, now: 1_000)
            _ = machine.evaluate(now: 1_000 + spec.stepDuration, canary: RolloutStats(requests: 500, errors: 0, p99: 1_000_000),
                                 baseline: RolloutStats(requests: 500, errors: 0, p99: 1_000_000))
            _ = machine.evaluate(now: 2_000 + spec.stepDuration, canary: RolloutStats(requests: 500, errors: 500, p99: nil),
                                 baseline: nil)
            _ = machine.snapshot(now: UInt64.max)
        }
        // What a write then a read gives back is what was read.
        if let encoded = try? JSONEncoderForFuzz.encode(state) {
            let again = try? RuntimeStateFile.decode(encoded, path: "fuzz.json")
            fuzzCheck(again?.version == state.version && again?.rollouts == state.rollouts, "a state does not survive a write and read")
        }
    }

    // MARK: Paths

    static func path(_ input: UnsafeRawBufferPointer) {
        var path: [UInt8] = [UInt8(ascii: "/")]
        path += input.prefix(512)
        let once = PathNormalizer.normalized(path)
        fuzzCheck(once.count <= PathNormalizer.capacity(for: path.count), "normalized path too long")
        fuzzCheck(PathNormalizer.normalized(once) == once, "normalizing twice changes the path")
        fuzzCheck(once.first == UInt8(ascii: "/"), "lost the leading /")
        // No empty (but a trailing), `.` or `..` segment is left.
        let segments = once.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
        for (i, s) in segments.enumerated() {
            let last = i == segments.count - 1
            fuzzCheck(!(s.isEmpty && !last), "an empty segment in \(once)")
            fuzzCheck(!s.elementsEqual([UInt8(ascii: ".")]) && !s.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]),
                      "a dot segment in \(once)")
        }
        let needs = path.withUnsafeBytes { PathNormalizer.needsNormalization($0) }
        if !needs { fuzzCheck(once == path, "the pre-check said no, but normalization changed \(path)") }
    }
}

/// The state file's own encoding (as `RuntimeStateFile.write` does it), to text.
enum JSONEncoderForFuzz {
    static func encode(_ state: RuntimeStateFile) throws -> String {
        try RuntimeStateFile.encodedText(state)
    }
}
