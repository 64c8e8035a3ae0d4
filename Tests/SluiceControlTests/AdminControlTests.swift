import Foundation
import SluiceControl
import SluiceCore
import Testing

/// The routing endpoints of the admin API over a real socket: reload, split, switch, abort,
/// clear, rollback, history, and the bearer token.
@Suite struct AdminControlTests {
    /// A controller rig with an admin server on an ephemeral loopback port.
    struct Rig {
        let base: ControllerRig
        let hub: MetricsHub
        let admin: AdminServer
        var controller: RoutingController { base.controller }

        init(token: String? = nil) throws {
            base = try ControllerRig()
            hub = MetricsHub(workers: 1, listenerNames: ["public"], buildVersion: "test")
            let controller = base.controller
            admin = try AdminServer(address: .v4(0x7f00_0001, port: 0), token: token, hub: hub, events: base.events,
                                    table: { controller.table })
            controller.registerAdminEndpoints(on: admin, hub: hub)
            try admin.start()
        }

        func stop() {
            admin.stop()
            base.dir.remove()
        }

        func call(_ method: String, _ path: String, _ body: String = "", token: String? = nil) throws -> AdminClientResponse {
            try AdminClient.request(method, path, to: admin.boundAddress!, token: token, body: Array(body.utf8))
        }

        func result(_ response: AdminClientResponse) throws -> ChangeResult {
            try JSONDecoder().decode(ChangeResult.self, from: Data(response.body))
        }

        func error(_ response: AdminClientResponse) throws -> ControlErrorBody {
            try JSONDecoder().decode(ControlErrorBody.self, from: Data(response.body))
        }
    }

    @Test func mutatingEndpointsNeedTheTokenWhenOneIsSet() throws {
        let rig = try Rig(token: "s3cret")
        defer { rig.stop() }
        let paths = ["/admin/reload", "/admin/routes/web/split", "/admin/routes/web/switch", "/admin/routes/web/abort",
                     "/admin/routes/web/clear", "/admin/rollback"]
        for path in paths {
            #expect(try rig.call("POST", path).status == 401, "\(path) without a token")
            #expect(try rig.call("POST", path, token: "wrong").status == 401, "\(path) with a wrong token")
        }
        #expect(rig.controller.version == 1, "nothing changed without the token")
        // Issue 17: with a token set, reading the topology needs it too (it used to be open).
        #expect(try rig.call("GET", "/admin/history").status == 401, "reading the history needs the token")
        #expect(try rig.call("GET", "/admin/history", token: "s3cret").status == 200)
        let ok = try rig.call("POST", "/admin/routes/web/abort", token: "s3cret")
        #expect(ok.status == 200)
        #expect(try rig.result(ok).version == 2)
        // Without a configured token, no header is needed.
        let open = try Rig()
        defer { open.stop() }
        #expect(try open.call("POST", "/admin/routes/web/abort").status == 200)
    }

    @Test func splitSwitchAbortClearAndRollback() throws {
        let rig = try Rig()
        defer { rig.stop() }
        let split = try rig.call("POST", "/admin/routes/web/split", #"{"weights": {"stable": 90.5, "canary": "9.5"}, "cause": "ramp step 2"}"#)
        #expect(split.status == 200, "\(split.text)")
        let s = try rig.result(split)
        #expect(s.kind == .split && s.version == 2 && s.oldVersion == 1 && s.route == "web")
        #expect(s.split == "stable=90.5% canary=9.5%")
        #expect(s.changed == "web: stable 95→90.5, canary 5→9.5")
        #expect(rig.base.events.recent().last?.cause == "ramp step 2")
        let sw = try rig.result(try rig.call("POST", "/admin/routes/web/switch", #"{"cohort": "canary"}"#))
        #expect(sw.version == 3 && sw.split == "stable=0% canary=100%")
        #expect(rig.base.events.recent().last?.cause == "admin API: POST /admin/routes/web/switch")
        let ab = try rig.result(try rig.call("POST", "/admin/routes/web/abort"))
        #expect(ab.version == 4 && ab.override?.kind == .abort && ab.override?.cohort == "stable")
        let cl = try rig.result(try rig.call("POST", "/admin/routes/web/clear", "{}"))
        #expect(cl.version == 5 && cl.override == nil && cl.split == "stable=95% canary=5%")
        // Version 2 had the canary at 9.5% (5% now): a rollback that raises it needs `force`.
        #expect(try rig.call("POST", "/admin/rollback", #"{"to": 2}"#).status == 409)
        let rb = try rig.result(try rig.call("POST", "/admin/rollback", #"{"to": 2, "force": true}"#))
        #expect(rb.version == 6 && rb.rolledBackTo == 2)
        #expect(rig.base.weights() == ["stable": 90.5, "canary": 9.5])
        let prev = try rig.result(try rig.call("POST", "/admin/rollback"))
        #expect(prev.rolledBackTo == 5)
        let history = try JSONDecoder().decode(HistoryReport.self, from: Data(try rig.call("GET", "/admin/history").body))
        #expect(history.currentVersion == 7)
        #expect(history.versions.map(\.kind) == [.start, .split, .switch, .abort, .clear, .rollback, .rollback])
        #expect(history.versions[1].cause == "ramp step 2")
        let limited = try JSONDecoder().decode(HistoryReport.self, from: Data(try rig.call("GET", "/admin/history?limit=2").body))
        #expect(limited.versions.map(\.version) == [6, 7])
    }

    @Test(arguments: [
        ("/admin/routes/web/split", #"{"weights": {"stable": 90, "canary": 9}}"#, "weights of route `web` sum to 99, must be 100"),
        ("/admin/routes/web/split", #"{"weights": {"stable": 90, "green": 10}}"#, "route `web` has no cohort `green`"),
        ("/admin/routes/shop/split", #"{"weights": {"stable": 100}}"#, "unknown route `shop` (routes: `web`)"),
        ("/admin/routes/web/split", #"{"weights": {"stable": "abc", "canary": 10}}"#, "weight of `stable`: invalid weight `abc`"),
        ("/admin/routes/web/split", #"{"weights": {"stable": 90.125, "canary": 9.875}}"#, "more than two decimals"),
        ("/admin/routes/web/split", #"{"weights": {}}"#, "the body needs `weights`"),
        ("/admin/routes/web/split", #"{"weights": [90, 10]}"#, "the body is not the JSON expected"),
        ("/admin/routes/web/split", "not json", "the body is not the JSON expected"),
        ("/admin/routes/web/switch", #"{"cohort": "green"}"#, "route `web` has no cohort `green` (cohorts: `stable`, `canary`)"),
        ("/admin/routes/web/switch", "{}", "the body needs `cohort`"),
        ("/admin/routes/nope/abort", "", "unknown route `nope`"),
        ("/admin/rollback", #"{"to": 99}"#, "version 99 is not in the history (available: 1)"),
    ])
    func badRequestsAre400WithTheProblem(path: String, body: String, message: String) throws {
        let rig = try Rig()
        defer { rig.stop() }
        let response = try rig.call("POST", path, body)
        #expect(response.status == 400, "\(response.text)")
        let error = try rig.error(response)
        #expect(error.error.contains(message), "\(error.error)")
        #expect(error.status == 400)
        #expect(rig.controller.version == 1)
    }

    @Test func conflictsAre409() throws {
        let rig = try Rig()
        defer { rig.stop() }
        #expect(try rig.call("POST", "/admin/rollback").status == 409, "nothing to roll back to")
        #expect(try rig.call("POST", "/admin/routes/web/clear").status == 409, "no override to clear")
        #expect(try rig.call("POST", "/admin/rollback", #"{"to": 1}"#).status == 409, "already serving")
    }

    @Test func anInvalidConfigIs422WithEveryProblem() throws {
        let rig = try Rig()
        defer { rig.stop() }
        try rig.base.dir.write("sluice.yaml", controllerYAML(split: "stable: 95, canry: 6", top: "wokers: 2"))
        let response = try rig.call("POST", "/admin/reload")
        #expect(response.status == 422)
        let error = try rig.error(response)
        #expect(error.error == "config rejected (2 problems), still serving version 1")
        #expect(error.version == 1)
        let diagnostics = try #require(error.diagnostics)
        #expect(diagnostics.count == 2)
        #expect(diagnostics.contains { $0.contains("unknown key `wokers`") })
        #expect(diagnostics.contains { $0.contains("cohort `canry` is neither an upstream nor a declared cohort") })
        #expect(rig.base.kinds.last == .reloadRejected)
        try rig.base.dir.write("sluice.yaml", controllerYAML(split: "stable: 50, canary: 50"))
        let ok = try rig.call("POST", "/admin/reload")
        #expect(ok.status == 200)
        #expect(try rig.result(ok).changed == "web: stable 95→50, canary 5→50")
    }

    @Test func statsShowTheOverrideInForce() throws {
        let rig = try Rig()
        defer { rig.stop() }
        func stats() throws -> StatsReport {
            try JSONDecoder().decode(StatsReport.self, from: Data(try rig.call("GET", "/admin/stats").body))
        }
        #expect(try stats().routes[0].override == nil)
        _ = try rig.call("POST", "/admin/routes/web/split", #"{"weights": {"stable": 80, "canary": 20}, "cause": "ramp"}"#)
        let report = try stats()
        let o = try #require(report.routes[0].override)
        #expect(o.kind == .split && o.version == 2 && o.cause == "ramp")
        #expect(report.configVersion == 2)
        #expect(report.routes[0].cohorts.map(\.weight) == [80, 20])
        let json = try rig.call("GET", "/admin/stats").text
        #expect(json.contains(#""override" : {"#))
        let text = StatusTable.render(report, window: "1m")
        #expect(text.contains("route web\n  runtime override: split stable=80% canary=20%, since \(o.since) (version 2, ramp)\n"), "\(text)")
    }

    @Test func routePatternsMatchOneNameSegment() throws {
        let rig = try Rig()
        defer { rig.stop() }
        #expect(try rig.call("POST", "/admin/routes/web/explode").status == 404)
        #expect(try rig.call("POST", "/admin/routes//abort").status == 404)
        #expect(try rig.call("POST", "/admin/routes/a/b/abort").status == 404)
        let wrongMethod = try rig.call("GET", "/admin/routes/web/abort")
        #expect(wrongMethod.status == 405)
        #expect(wrongMethod.headers["allow"] == "POST")
    }

    @Test func cliResultLinesAndHistoryTable() throws {
        let rig = try Rig()
        defer { rig.stop() }
        let s = try rig.result(try rig.call("POST", "/admin/routes/web/split", #"{"weights": {"stable": 90, "canary": 10}}"#))
        #expect(s.line == "web: split stable=90% canary=10% (version 2)")
        let w = try rig.result(try rig.call("POST", "/admin/routes/web/switch", #"{"cohort": "canary"}"#))
        #expect(w.line == "web: switched to canary (stable=0% canary=100%) (version 3)")
        let r = try rig.result(try rig.call("POST", "/admin/rollback"))
        #expect(r.line == "rolled back to version 2, serving it as version 4 (was 3): web: stable 0→90, canary 100→10")
        let history = try JSONDecoder().decode(HistoryReport.self, from: Data(try rig.call("GET", "/admin/history").body))
        let text = HistoryTable.render(history)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0].hasPrefix("   VERSION  TIME"))
        #expect(lines[4].hasPrefix("*  4 "))
        #expect(lines[4].contains("  rollback  admin API: POST /admin/rollback  "))
        #expect(lines[4].hasSuffix("  web: stable 0→90, canary 100→10"))
        #expect(text.contains("runtime overrides in force:\n  web: split stable=90% canary=10%, since "))
    }
}
