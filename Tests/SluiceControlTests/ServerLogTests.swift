import Foundation
import Logging
import SluiceControl
import Synchronization
import Testing

/// The server's log lines through swift-log: JSON with time, level, msg and fields; plain text
/// for a terminal; warnings and errors to standard error.
struct ServerLogTests {
    final class Captured: Sendable {
        let lines = Mutex<[(stderr: Bool, text: String)]>([])
        var all: [(stderr: Bool, text: String)] { lines.withLock { $0 } }
    }

    func logger(_ format: ServerLogHandler.Format, _ captured: Captured) -> Logger {
        Logger(label: "sluice") { _ in
            ServerLogHandler(format: format, clock: { 1_795_737_600_123_000_000 }) { toStderr, line in
                captured.lines.withLock { $0.append((toStderr, String(decoding: line, as: UTF8.self))) }
            }
        }
    }

    @Test func jsonLinesWithTimeLevelMessageAndFields() throws {
        let captured = Captured()
        var log = logger(.json, captured)
        log[metadataKey: "worker"] = "0"
        log.notice("listening", metadata: ["listener": "public", "address": "127.0.0.1:8080"])
        log.error("config rejected: \"x\"\nnext", metadata: ["problems": .array(["a.yaml:1:1: bad", "tab\there"]), "route": .dictionary(["name": "web"])])
        log.debug("not written at the default level")
        let lines = captured.all
        #expect(lines.count == 2)
        #expect(lines[0].stderr == false)
        #expect(lines[0].text == #"{"time":"2026-11-27T00:00:00.123Z","level":"notice","msg":"listening","address":"127.0.0.1:8080","listener":"public","worker":"0"}"# + "\n")
        #expect(lines[1].stderr == true)
        #expect(lines[1].text == #"{"time":"2026-11-27T00:00:00.123Z","level":"error","msg":"config rejected: \"x\"\nnext","problems":["a.yaml:1:1: bad","tab\there"],"route":{"name":"web"},"worker":"0"}"# + "\n")
        // Every line is valid JSON.
        for line in lines {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.text.utf8))) != nil, "\(line.text)")
        }
    }

    @Test func plainTextForATerminalAndWarningsToStderr() {
        let captured = Captured()
        let log = logger(.text, captured)
        log.info("reloaded", metadata: ["cause": "SIGHUP"])
        log.warning("SIGHUP ignored (no config file)")
        #expect(captured.all.map(\.stderr) == [false, true])
        #expect(captured.all.map(\.text) == [
            "2026-11-27T00:00:00.123Z info    reloaded cause=SIGHUP\n",
            "2026-11-27T00:00:00.123Z warning SIGHUP ignored (no config file)\n",
        ])
    }
}
