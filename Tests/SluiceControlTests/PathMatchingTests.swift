import SluiceControl
import SluiceCore
import Testing

/// Path conditions match the normalized path by default (issue 17): `/./admin`, `//admin`,
/// `/%61dmin` and `/public/../admin` cannot slip past a `path_prefix: /admin` rule.
@Suite struct PathMatchingTests {
    /// A deny route for /admin before a catch-all route, with extra keys for the deny route.
    static func denyConfig(top: String = "", deny: String = "") -> String {
        baseYAML + top + """
            routes:
              - name: deny
                match: { path_prefix: /admin }
                respond: { status: 403, body: "no" }
            \(deny.isEmpty ? "" : "    " + deny)
              - name: web
                upstream: stable
            """
    }

    /// The name of the route `target` goes to.
    func route(_ table: RoutingTable, _ target: String) -> String {
        let d = decide(table, TestRequest("GET", target))
        return d.route >= 0 ? table.routes[Int(d.route)].name : "none"
    }

    @Test(arguments: ["/admin", "/admin/users", "/./admin", "//admin", "///admin/x", "/%61dmin", "/%61%64%6D%69%6E/x",
                      "/public/../admin", "/%2e%2e/admin", "/a/b/../../admin", "/x/%2E%2E/admin?q=1", "/../admin"])
    func variantsOfADeniedPathAreDenied(target: String) throws {
        let table = try #require(mustLoad(Self.denyConfig())).table
        #expect(route(table, target) == "deny", "\(target)")
        #expect(decide(table, TestRequest("GET", target)).action == .respond)
    }

    @Test(arguments: ["/", "/ADMIN", "/Admin", "/public/admin", "/admin%2Fx/../y", "/%2561dmin", "/adm%69n%2F"])
    func otherPathsAreNotDenied(target: String) throws {
        let table = try #require(mustLoad(Self.denyConfig())).table
        // Case is kept (paths are case-sensitive), an encoded `/` is data, `%25` is a `%`.
        #expect(route(table, target) == (target == "/adm%69n%2F" ? "deny" : "web"), "\(target)")
    }

    @Test func rulesSeeTheNormalizedPathToo() throws {
        let table = try #require(mustLoad(baseYAML + """
            routes:
              - name: web
                split: { stable: 100, canary: 0 }
                rules:
                  - { match: { path: /beta/x }, cohort: canary }
            """)).table
        #expect(decide(table, TestRequest("GET", "/beta/./x")).upstream == 1)
        #expect(decide(table, TestRequest("GET", "/beta//x")).upstream == 1)
        #expect(decide(table, TestRequest("GET", "/beta/x/")).upstream == 0)
    }

    @Test func pathNormalizationOffMatchesRawBytesPerRouteOrGlobally() throws {
        let perRoute = try #require(mustLoad(Self.denyConfig(deny: "path_normalization: off"))).table
        #expect(perRoute.routes[0].normalizesPath == false && perRoute.routes[1].normalizesPath == true)
        #expect(route(perRoute, "/admin/x") == "deny")
        #expect(route(perRoute, "/%61dmin") == "web")
        #expect(route(perRoute, "//admin") == "web")
        let global = try #require(mustLoad(Self.denyConfig(top: "path_normalization: off\n"))).table
        #expect(global.routes.allSatisfy { !$0.normalizesPath })
        #expect(route(global, "/./admin") == "web")
        // A route may turn it back on under a global `off`.
        let back = try #require(mustLoad(Self.denyConfig(top: "path_normalization: off\n", deny: "path_normalization: on"))).table
        #expect(route(back, "/./admin") == "deny")
    }

    @Test func forwardNormalizedPathIsExposedPerRoute() throws {
        let off = try #require(mustLoad(Self.denyConfig())).table
        #expect(off.routes.allSatisfy { !$0.forwardNormalizedPath })
        let one = try #require(mustLoad(Self.denyConfig(deny: "forward_normalized_path: true"))).table
        #expect(one.routes.map(\.forwardNormalizedPath) == [true, false])
        let all = try #require(mustLoad(Self.denyConfig(top: "forward_normalized_path: true\n"))).table
        #expect(all.routes.map(\.forwardNormalizedPath) == [true, true])
        // The flag survives a runtime change of the table.
        let changed = try all.applying([.abort(route: "web")], version: 2)
        #expect(changed.routes.map(\.forwardNormalizedPath) == [true, true])
    }

    @Test func configPathsMustBeWrittenNormalized() {
        let found = diagnostics(baseYAML + "routes: [{ name: web, match: { path_prefix: /a/./b }, upstream: stable }]\n")
        #expect(found.map(\.description) == ["""
            sluice.yaml:7:45: routes[0].match.path_prefix: `/a/./b` is not a normalized path, so it would never match: \
            request paths are compared after normalization (`/a/b`)
              hint: write `/a/b`, or set `path_normalization: off` on this route to match raw bytes
            """])
        let rule = diagnostics(baseYAML + "routes: [{ name: web, upstream: stable, rules: [{ match: { path: \"/%61\" }, respond: { status: 404 } }] }]\n")
        #expect(rule.first?.description.hasPrefix("sluice.yaml:7:66: routes[0].rules[0].match.path: `/%61` is not a normalized path") == true,
                "\(rule)")
        // With normalization off the raw form is what is meant, and accepted.
        #expect(mustLoad(baseYAML + "routes: [{ name: web, path_normalization: off, match: { path_prefix: /a/./b }, upstream: stable }]\n")
            != nil)
    }

    @Test func forwardingNormalizedPathsNeedsNormalization() {
        let route = diagnostics(baseYAML + "routes: [{ name: web, upstream: stable, path_normalization: off, forward_normalized_path: true }]\n")
        #expect(route.map(\.description) == ["""
            sluice.yaml:7:66: routes[0].forward_normalized_path: `forward_normalized_path: true` needs `path_normalization` on
              hint: a route that matches raw paths forwards them raw; remove one of the two
            """])
        let top = diagnostics(baseYAML + "path_normalization: off\nforward_normalized_path: true\nroutes: [{ name: web, upstream: stable }]\n")
        #expect(top.map(\.description) == ["""
            sluice.yaml:8:1: forward_normalized_path: `forward_normalized_path: true` needs `path_normalization` on
              hint: paths matched raw are forwarded raw; remove one of the two
            """])
        #expect(diagnostics(baseYAML + "path_normalization: sometimes\nroutes: [{ name: web, upstream: stable }]\n").first?.message
            == "expected true or false, found the string `sometimes`")
    }
}
