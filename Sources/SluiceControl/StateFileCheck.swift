#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A start-time check that the state file can be written where it is configured, so a state
/// file on a read-only mount (a ConfigMap, `/etc` under `ProtectSystem=strict`) is reported when
/// the server starts instead of runtime changes being lost silently at the next restart.
public enum StateFileCheck {
    /// nil when a file can be created next to `path` (what every state-file write does: a
    /// temporary file renamed over it); otherwise the problem, for a warning.
    public static func problem(path: String) -> String? {
        let probe = path + ".probe-\(getpid())"
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            return "cannot write the state file \(path) (\(reason)): runtime changes (split, switch, abort, rollouts) "
                + "will not survive a restart; point state_file or --state-file at a writable place"
        }
        close(fd)
        unlink(probe)
        return nil
    }
}
