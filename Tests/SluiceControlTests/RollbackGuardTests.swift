import Foundation
import SluiceControl
import SluiceCore
import Testing

/// Issue 19: `rollback` / `undo` never reopen a canary by surprise. The pure comparison
/// (`RoutingTable.exposureIncreases`), the controller's guard, and the admin API.
@Suite struct RollbackGuardTests {
    // MARK: The pure comparison

    @Test func exposureIncreasesAreExact() throws {
        let rig = try ControllerRig()  // web: stable 95 / canary 5 (baseline stable), rule 0 → canary
        defer { rig.dir.remove() }
        let base = rig.controller.table
        _ = try rig.controller.abort(route: "web", cause: "t")
        let aborted = rig.controller.table
        // Going back from the abort: canary 0 → 5%, and rule 0 forwards to it again.
        #expect(base.exposureIncreases(comparedTo: aborted)
            == [ExposureIncrease(route: "web", cohort: "canary", fromWeight: 0, toWeight: 500, rules: [0])])
        // Aborting raises nothing (the baseline is not counted).
        #expect(aborted.exposureIncreases(comparedTo: base) == [])
        _ = try rig.controller.setSplit(route: "web", weights: split(["stable": 90, "canary": 10]), cause: "t")
        let ninety = rig.controller.table
        #expect(ninety.exposureIncreases(comparedTo: base)
            == [ExposureIncrease(route: "web", cohort: "canary", fromWeight: 500, toWeight: 1000, rules: [])])
        #expect(base.exposureIncreases(comparedTo: ninety) == [])
        #expect(base.exposureIncreases(comparedTo: base) == [])
        // A switch to the canary and back: the canary only loses, the baseline gains (allowed).
        _ = try rig.controller.switchTo(route: "web", cohort: "canary", cause: "t")
        #expect(base.exposureIncreases(comparedTo: rig.controller.table) == [])
    }

    @Test func aRouteOrCohortMissingNowCountsFromZeroAndEitherBaselineIsExempt() throws {
        let two = try #require(mustLoad(baseYAML + """
            routes:
              - { name: web, baseline: stable, split: { stable: 100 } }
            """)).table
        let three = try #require(mustLoad(baseYAML + """
            routes:
              - { name: web, baseline: stable, split: { stable: 90, canary: 10 } }
              - { name: api, match: { path_prefix: /api }, baseline: canary, split: { stable: 20, canary: 80 } }
            """)).table
        #expect(three.exposureIncreases(comparedTo: two) == [
            ExposureIncrease(route: "web", cohort: "canary", fromWeight: 0, toWeight: 1000),
            ExposureIncrease(route: "api", cohort: "stable", fromWeight: 0, toWeight: 2000),
        ])
        // A change of baseline: going back to a version whose baseline is the cohort that grows is allowed.
        let promoted = try #require(mustLoad(baseYAML + """
            routes:
              - { name: web, baseline: canary, split: { stable: 0, canary: 100 } }
            """)).table
        let before = try #require(mustLoad(baseYAML + """
            routes:
              - { name: web, baseline: stable, split: { stable: 100, canary: 0 } }
            """)).table
        #expect(before.exposureIncreases(comparedTo: promoted) == [])
    }

    // MARK: The controller

    @Test func rollbackAndUndoAfterAbortAreRefusedAndChangeNothing() throws {
        let rig = try ControllerRig(yaml: controllerYAML().replacingOccurrences(of: "listeners:", with: "state_file: state.json\nlisteners:"))
        defer { rig.dir.remove() }
        _ = try rig.controller.abort(route: "web", cause: "incident")  // v2
        let stateBefore = try String(contentsOfFile: rig.dir.file("state.json"), encoding: .utf8)
        let kindsBefore = rig.kinds
        for attempt in [{ try rig.controller.rollback(cause: "x") }, { try rig.controller.undo(cause: "x") },
                        { try rig.controller.rollback(to: 1, cause: "x") }] as [() throws -> ChangeResult] {
            do {
                _ = try attempt()
                Issue.record("an unsafe rollback was accepted")
            } catch let error as ControlError {
                #expect(error.status == 409)
                #expect(error.description == "refused: going back to version 1 would send more traffic to a cohort that is "
                    + "not the baseline (web: canary 0%→5%, rules[0] to canary again); the change would be: web: stable "
                    + "100→95, canary 0→5, rules → canary. Nothing changed. To publish it anyway, repeat with --force "
                    + "(admin API: \"force\": true); to send everyone to the baseline, use `sluice abort ROUTE`.")
                guard case .unsafeRollback(1, let raised, _) = error else { Issue.record("\(error)"); continue }
                #expect(raised == [ExposureIncrease(route: "web", cohort: "canary", fromWeight: 0, toWeight: 500, rules: [0])])
            }
        }
        #expect(rig.controller.version == 2)
        #expect(rig.published.versions == [2])
        #expect(rig.kinds == kindsBefore)
        #expect(rig.weights() == ["stable": 100, "canary": 0])
        #expect(try String(contentsOfFile: rig.dir.file("state.json"), encoding: .utf8) == stateBefore)
        // --force does it.
        let forced = try rig.controller.undo(force: true, cause: "drill over")
        #expect(forced.version == 3 && forced.rolledBackTo == 1)
        #expect(rig.weights() == ["stable": 95, "canary": 5])
        #expect(rig.controller.overrides.isEmpty)
        // Undo of a ramp-up is a ramp-down: allowed without force.
        _ = try rig.controller.setSplit(route: "web", weights: split(["stable": 50, "canary": 50]), cause: "ramp")  // v4
        let down = try rig.controller.undo(cause: "too fast")
        #expect(down.rolledBackTo == 3 && rig.weights() == ["stable": 95, "canary": 5])
        // And undoing that (back to 50%) is refused again.
        #expect(throws: ControlError.self) { try rig.controller.undo(cause: "x") }
        #expect(rig.weights() == ["stable": 95, "canary": 5])
    }

    @Test func rollbackAfterAnAutomatedRolloutAbortIsRefused() throws {
        let rig = try RolloutControllerTests.Rig()
        defer { rig.base.dir.remove() }
        _ = try rig.rollouts.command(.start, route: "web", cause: "test")  // canary 10%
        _ = try rig.rollouts.command(.abort, route: "web", cause: "test")  // canary 0%, rules to stable
        #expect(rig.base.weights()["canary"] == 0)
        let version = rig.routing.version
        #expect(throws: ControlError.self) { try rig.routing.rollback(cause: "operator") }
        #expect(rig.routing.version == version && rig.base.weights()["canary"] == 0)
    }

    // MARK: The admin API

    @Test func adminRollbackAndUndoAreGuarded() throws {
        let rig = try AdminControlTests.Rig()
        defer { rig.stop() }
        #expect(try rig.call("POST", "/admin/routes/web/abort").status == 200)  // v2
        for (path, body) in [("/admin/rollback", ""), ("/admin/rollback", #"{"to": 1}"#), ("/admin/undo", ""),
                             ("/admin/undo", #"{"force": false}"#)] {
            let refused = try rig.call("POST", path, body)
            #expect(refused.status == 409, "\(path) \(body): \(refused.text)")
            let error = try rig.error(refused)
            #expect(error.error.hasPrefix("refused: going back to version 1 would send more traffic"))
            #expect(error.raises == [ExposureIncrease(route: "web", cohort: "canary", fromWeight: 0, toWeight: 500, rules: [0])])
            #expect(refused.text.contains(#""from_weight" : 0"#) && refused.text.contains(#""to_weight" : 500"#))
        }
        #expect(rig.controller.version == 2)
        #expect(rig.base.weights() == ["stable": 100, "canary": 0])
        let forced = try rig.call("POST", "/admin/undo", #"{"force": true, "cause": "drill over"}"#)
        #expect(forced.status == 200, "\(forced.text)")
        #expect(try rig.result(forced).rolledBackTo == 1)
        #expect(rig.base.events.recent().last?.cause == "drill over")
        #expect(rig.base.weights() == ["stable": 95, "canary": 5])
        // The endpoints need the token like every change.
        let locked = try AdminControlTests.Rig(token: "t0k")
        defer { locked.stop() }
        #expect(try locked.call("POST", "/admin/undo").status == 401)
        #expect(try locked.call("POST", "/admin/undo", token: "t0k").status == 409, "nothing to undo yet")
    }
}
