#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import SluiceCore

/// The swift-log handler for the server's own messages (not the access log): one JSON object per
/// line with `time`, `level`, `msg` and the message's metadata as fields, or a plain-text line
/// when the destination is a terminal. Warnings and errors go to standard error, the rest to
/// standard output. Each line is one `write(2)`, so lines of several threads never interleave.
///
/// `SLUICE_LOG_FORMAT=json` or `text` overrides the terminal detection.
public struct ServerLogHandler: LogHandler {
    /// How lines are written.
    public enum Format: String, Sendable {
        /// `{"time":"2026-12-03T10:00:00.123Z","level":"info","msg":"...","listener":"public"}`
        case json
        /// `2026-12-03T10:00:00.123Z info  ... listener=public`
        case text
    }

    /// Metadata of this logger (merged under each message's own).
    public var metadata: Logger.Metadata = [:]
    /// Lowest level written.
    public var logLevel: Logger.Level = .info
    /// Format of lines going to standard output and to standard error.
    let formats: (out: Format, err: Format)
    /// Where a finished line goes: (is it for standard error, the line). Tests capture it.
    let sink: @Sendable (Bool, [UInt8]) -> Void
    /// Wall-clock Unix nanoseconds.
    let clock: @Sendable () -> UInt64

    /// A handler writing to the process's standard output and error.
    public init(label: String) {
        let forced = getenv("SLUICE_LOG_FORMAT").flatMap { Format(rawValue: String(cString: $0)) }
        formats = (forced ?? (isatty(STDOUT_FILENO) == 1 ? .text : .json), forced ?? (isatty(STDERR_FILENO) == 1 ? .text : .json))
        sink = { toStderr, line in
            line.withUnsafeBytes { raw in
                var done = 0
                while done < raw.count {
                    let n = write(toStderr ? STDERR_FILENO : STDOUT_FILENO, raw.baseAddress! + done, raw.count - done)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { return }
                    done += n
                }
            }
        }
        clock = { ControlClock.unixNanos() }
    }

    /// A handler with a fixed format and clock that hands lines to `sink` (for tests).
    public init(format: Format, clock: @escaping @Sendable () -> UInt64, sink: @escaping @Sendable (Bool, [UInt8]) -> Void) {
        formats = (format, format)
        self.sink = sink
        self.clock = clock
    }

    /// Sends every `Logger` of the process to this handler (once, at start).
    public static func bootstrap() {
        LoggingSystem.bootstrap { ServerLogHandler(label: $0) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let own = event.metadata { fields.merge(own) { $1 } }
        if let error = event.error, fields["error"] == nil { fields["error"] = "\(error)" }
        let toStderr = event.level >= .warning
        sink(toStderr, Self.line(level: event.level, message: event.message.description, metadata: fields,
                                 unixNanos: clock(), format: toStderr ? formats.err : formats.out))
    }

    /// One line, newline included; metadata keys sorted.
    public static func line(level: Logger.Level, message: String, metadata: Logger.Metadata, unixNanos: UInt64,
                            format: Format) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + message.utf8.count)
        let seconds = Int(unixNanos / 1_000_000_000), millis = Int(unixNanos / 1_000_000 % 1000)
        switch format {
        case .json:
            out += Array(#"{"time":""#.utf8)
            AccessLogLine.appendTimestamp(unixSeconds: seconds, milliseconds: millis, to: &out)
            out += Array(#"","level":"#.utf8)
            appendJSON(level.rawValue, to: &out)
            out += Array(#","msg":"#.utf8)
            appendJSON(message, to: &out)
            for key in metadata.keys.sorted() where key != "time" && key != "level" && key != "msg" {
                out.append(UInt8(ascii: ","))
                appendJSON(key, to: &out)
                out.append(UInt8(ascii: ":"))
                appendJSON(metadata[key]!, to: &out)
            }
            out += Array("}\n".utf8)
        case .text:
            AccessLogLine.appendTimestamp(unixSeconds: seconds, milliseconds: millis, to: &out)
            out.append(UInt8(ascii: " "))
            var name = level.rawValue
            while name.utf8.count < 8 { name += " " }
            out += Array(name.utf8)
            out += Array(message.utf8)
            for key in metadata.keys.sorted() {
                out += Array(" \(key)=\(metadata[key]!)".utf8)
            }
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }

    /// A metadata value as JSON: strings, arrays and objects.
    static func appendJSON(_ value: Logger.MetadataValue, to out: inout [UInt8]) {
        switch value {
        case .string(let s): appendJSON(s, to: &out)
        case .stringConvertible(let c): appendJSON(c.description, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                appendJSON(item, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .dictionary(let d):
            out.append(UInt8(ascii: "{"))
            for (i, key) in d.keys.sorted().enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                appendJSON(key, to: &out)
                out.append(UInt8(ascii: ":"))
                appendJSON(d[key]!, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// A JSON string: quotes, backslashes and control characters escaped; other UTF-8 kept.
    static func appendJSON(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), b]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), b]
            case UInt8(ascii: "\n"): out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case UInt8(ascii: "\t"): out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20, 0x7F:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out += Array("\\u00".utf8)
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
