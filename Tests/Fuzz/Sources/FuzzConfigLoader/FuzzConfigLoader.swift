// libFuzzer target: ConfigLoader.parse(yaml:file:version:resolver:) on arbitrary text, and the
// same input as a header regex, a duration and a size, a state file and a request path
// (HostileValueChecks.swift).
//
// The loader must never crash: every input is either a config or a ConfigError with at least one
// diagnostic. Host names resolve through a fixed table (no DNS, no files, fast and repeatable).
// A result is checked lightly: parsing the same text twice gives the same outcome, and every
// diagnostic points at a line of the text (or line 0 for whole-file problems).
import FuzzSupport
import SluiceCore
// `@testable` for the `package` entry point that takes a resolver: a debug build of the root
// package is compiled with testing enabled, which is how the fuzz build is made.
@testable import SluiceControl

/// Entry point called by libFuzzer once per input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfigLoader(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    ConfigLoaderFuzz.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if !FUZZING
/// Replays the files given as arguments (a build without libFuzzer, for debugging).
@main
enum Replay {
    static func main() {
        replayFiles(CommandLine.arguments.dropFirst()) { ConfigLoaderFuzz.run($0) }
    }
}
#endif

/// The checks for one input.
enum ConfigLoaderFuzz {
    /// `localhost` and `*.internal` resolve; every other name fails, as an unknown name would.
    static let resolver = HostResolver { name in
        if name == "localhost" { return .success([.v4(0x7f00_0001, port: 0)]) }
        if name.hasSuffix(".internal") { return .success([.v4(0x0a00_0001, port: 0)]) }
        return .failure(HostResolver.ResolveFailure(message: "Name or service not known"))
    }

    static func run(_ input: UnsafeRawBufferPointer) {
        let text = String(decoding: input, as: UTF8.self)
        HostileValueChecks.run(input, text: text)
        let first = outcome(text)
        let second = outcome(text)
        fuzzCheck(first == second, "second load gave a different outcome")
        if case .failure(let places) = first {
            fuzzCheck(!places.isEmpty, "a ConfigError without diagnostics")
            // YAML breaks lines at LF, CRLF and a lone CR; counting every CR and LF is an upper bound.
            let lineCount = text.utf8.count(where: { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }) + 1
            for place in places {
                let line = place.line
                fuzzCheck(line >= 0 && line <= lineCount + 1, "diagnostic at line \(line) of \(lineCount)")
            }
        }
    }

    /// What a load produced: the table's shape, or where the diagnostics point.
    enum Outcome: Equatable {
        case success(routes: Int, upstreams: Int, listeners: Int)
        case failure([Place])

        /// A diagnostic's line and column.
        struct Place: Equatable {
            var line: Int
            var column: Int
        }
    }

    static func outcome(_ text: String) -> Outcome {
        do {
            let config = try ConfigLoader.parse(yaml: text, file: "fuzz.yaml", version: 1, resolver: resolver)
            return .success(routes: config.table.routes.count, upstreams: config.table.upstreams.count,
                            listeners: config.listeners.count)
        } catch {
            return .failure(error.diagnostics.map { Outcome.Place(line: $0.line, column: $0.column) })
        }
    }
}
