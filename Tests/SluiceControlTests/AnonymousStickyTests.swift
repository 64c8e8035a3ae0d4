import SluiceControl
import SluiceCore
import Testing

/// `sticky: { cookie: X }` / `{ header: X }` for a client without that key: Sluice's own cookie
/// keeps it in place (read, or assigned and set), exactly as on a route without `sticky:`.
///
/// Fixed points (sluice-hash-v1, see CohortSplitTests): `user-0` → bucket 7650, the assigned key
/// 0x0123456789abcdef (cookie text `0123456789abcdef`) → bucket 2966. At 50/50 the canary owns
/// buckets 5000..<10000, so `user-0` is canary and that assigned key is stable.
@Suite struct AnonymousStickyTests {
    static func config(_ sticky: String) -> String {
        baseYAML + """
            routes:
              - name: web
                baseline: stable
                \(sticky)
                split: { stable: 50, canary: 50 }
            """
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var sticky: String
        /// The header line that carries the user's own key.
        var carrier: (String, String)
        /// The cookie Sluice assigns on this route.
        var ownCookie: String
        var testDescription: String { sticky }
    }

    static let cases: [Case] = [
        Case(sticky: "sticky: { cookie: session_id }", carrier: ("Cookie", "session_id=user-0"), ownCookie: "sluice_sticky"),
        Case(sticky: "sticky: { header: X-User-Id }", carrier: ("X-User-Id", "user-0"), ownCookie: "sluice_sticky"),
        Case(sticky: "sticky: { cookie: session_id, assign_cookie: anon, max_age: 1h }", carrier: ("Cookie", "session_id=user-0"),
             ownCookie: "anon"),
    ]

    @Test(arguments: cases)
    func anonymousClientGetsSluiceCookieAndOwnKeyWins(_ c: Case) throws {
        let t = try #require(mustLoad(Self.config(c.sticky))).table
        let key: UInt64 = 0x0123_4567_89ab_cdef
        // 1. No key at all: assigned from entropy, cookie to be set, cohort of the assigned key's bucket.
        let first = decide(t, TestRequest(), entropy: key)
        #expect(first == RouteDecision(action: .forward, route: 0, cohort: 0, upstream: 0, endpoint: 0,
                                       setStickyCookie: true, stickyKey: key))
        var setCookie: [UInt8] = []
        t.routes[0].appendSetCookie(stickyKey: first.stickyKey, to: &setCookie)
        #expect(String(decoding: setCookie, as: UTF8.self).hasPrefix("Set-Cookie: \(c.ownCookie)=0123456789abcdef; Path=/; "))
        // 2. The cookie sent back: same cohort whatever the entropy, nothing set.
        for e: UInt64 in [0, 9_999, 5_000, .max] {
            let back = decide(t, TestRequest(headers: [("Cookie", "\(c.ownCookie)=0123456789abcdef")]), entropy: e)
            #expect(back == RouteDecision(action: .forward, route: 0, cohort: 0, upstream: 0, endpoint: 0))
        }
        // 3. The user's own key appears: it wins (bucket 7650 → canary), Sluice's cookie is ignored.
        let mine = decide(t, TestRequest(headers: [("Cookie", "\(c.ownCookie)=0123456789abcdef"), c.carrier]), entropy: 1)
        #expect(mine == RouteDecision(action: .forward, route: 0, cohort: 1, upstream: 1, endpoint: 0))
        // 4. A fresh entropy value in the canary half gives a canary assignment (the pick is the key's bucket, not entropy % 10000).
        let other: UInt64 = 7
        let expected = t.cohort(route: 0, bucket: StickyHash.bucket(assignedKey: other))
        let d = decide(t, TestRequest(), entropy: other)
        #expect(d.cohort == expected && d.setStickyCookie && d.stickyKey == other)
    }

    @Test func emptyOrMalformedKeysCountAsMissing() throws {
        let t = try #require(mustLoad(Self.config("sticky: { cookie: session_id }"))).table
        // An empty user cookie falls back to Sluice's cookie.
        let empty = decide(t, TestRequest(headers: [("Cookie", "session_id=; sluice_sticky=0123456789abcdef")]), entropy: 3)
        #expect(empty == RouteDecision(action: .forward, route: 0, cohort: 0, upstream: 0, endpoint: 0))
        // A malformed Sluice cookie is replaced.
        let bad = decide(t, TestRequest(headers: [("Cookie", "sluice_sticky=nothex")]), entropy: 3)
        #expect(bad.setStickyCookie && bad.stickyKey == 3)
        // A header-keyed route ignores a cookie of the header's name.
        let h = try #require(mustLoad(Self.config("sticky: { header: X-User-Id }"))).table
        let cookieNotHeader = decide(h, TestRequest(headers: [("Cookie", "X-User-Id=user-0")]), entropy: 3)
        #expect(cookieNotHeader.setStickyCookie)
    }

    @Test func stickyNoneStaysPerRequest() throws {
        let t = try #require(mustLoad(Self.config("sticky: none"))).table
        #expect(t.routes[0].sticky == StickyPolicy.none)
        #expect(t.routes[0].sticky.assignedCookie == nil)
        for (e, cohort) in [(0, 0), (4_999, 0), (5_000, 1), (9_999, 1)] as [(UInt64, Int32)] {
            let d = decide(t, TestRequest(headers: [("Cookie", "sluice_sticky=0123456789abcdef")]), entropy: e)
            #expect(d == RouteDecision(action: .forward, route: 0, cohort: cohort, upstream: cohort, endpoint: 0))
        }
    }

    @Test func configSpellings() throws {
        let cookie = try #require(mustLoad(Self.config("sticky: { cookie: session_id }"))).table.routes[0].sticky
        #expect(cookie == .cookie("session_id", assignCookie: "sluice_sticky", maxAge: nil))
        let named = try #require(mustLoad(Self.config("sticky: { header: X-User-Id, assign_cookie: anon, max_age: 30d }")))
        #expect(named.table.routes[0].sticky == .header("X-User-Id", assignCookie: "anon", maxAge: 2_592_000))
        var out: [UInt8] = []
        named.table.routes[0].appendSetCookie(stickyKey: 10, to: &out)
        #expect(String(decoding: out, as: UTF8.self)
            == "Set-Cookie: anon=000000000000000a; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax\r\n")
        let both = diagnostics(Self.config("sticky: { cookie: a, header: X-B, assign_cookie: c }"))
        #expect(both.map(\.message) == ["`cookie` and `header` cannot both be set"])
        let badName = diagnostics(Self.config("sticky: { header: X-User-Id, assign_cookie: \"a b\" }"))
        #expect(badName.map(\.message) == ["`a b` is not a valid cookie name"])
    }
}
