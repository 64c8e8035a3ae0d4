import Foundation
import Testing
import SluiceControl

/// Every example under config/ must stay valid as the config format evolves.
struct ExampleConfigTests {
    static let configDir = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("config")

    static var examples: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: configDir.path)) ?? [])
            .filter { $0.hasSuffix(".yaml") }.sorted()
    }

    @Test func thereAreExamples() {
        #expect(Self.examples.count >= 5)
    }

    @Test(arguments: examples)
    func exampleLoads(name: String) throws {
        let path = Self.configDir.appendingPathComponent(name).path
        do {
            let config = try ConfigLoader.load(path: path)
            #expect(!config.listeners.isEmpty)
            #expect(!config.table.routes.isEmpty)
        } catch {
            Issue.record("config/\(name) is invalid:\n\(error)")
        }
    }
}
