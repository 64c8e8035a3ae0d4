import SluiceCore
import Testing

/// Header, cookie, query and host lookups over a head's buffer.
@Suite struct LookupTests {
    @Test func headerLookupIgnoresNameCase() {
        let r = TestRequest(headers: [("X-User-Id", "u1"), ("x-user-id", "u2")])
        r.bytes.withUnsafeBytes { bytes in
            #expect(r.text(r.head.fieldValue(named: "X-USER-ID", in: bytes)) == "u1")
            #expect(r.head.fieldValue(named: "X-Missing", in: bytes) == nil)
        }
    }

    @Test(arguments: [
        ("a=1; b=2", "b", "2"),
        ("a=1;b=2", "b", "2"),
        ("  a=1 ;  b=2  ", "b", "2"),
        ("a=1; b=", "b", ""),
        ("a=1; b=\"x y\"", "b", "x y"),
        ("ab=1; b=2", "b", "2"),
        ("a=1; b=2; b=3", "b", "2"),
        ("a=1", "b", nil),
        ("b", "b", nil),
        ("", "b", nil),
        ("session_id=abc=def", "session_id", "abc=def"),
    ] as [(String, String, String?)])
    func cookies(header: String, name: String, expected: String?) {
        let r = TestRequest(headers: [("Cookie", header)])
        r.bytes.withUnsafeBytes { bytes in
            #expect(r.text(r.head.cookieValue(named: name, in: bytes)) == expected)
        }
    }

    @Test(arguments: [
        ("/p?a=1&b=2", "b", "2"),
        ("/p?a=1&b=", "b", ""),
        ("/p?a=1&b", "b", ""),
        ("/p?b=1&b=2", "b", "1"),
        ("/p?ab=1", "b", nil),
        ("/p", "b", nil),
        ("/p?", "b", nil),
        ("/p?a=%20&b=x%2Fy", "b", "x%2Fy"),
    ] as [(String, String, String?)])
    func queries(target: String, name: String, expected: String?) {
        let r = TestRequest("GET", target)
        r.bytes.withUnsafeBytes { bytes in
            #expect(r.text(r.head.queryValue(named: name, in: bytes)) == expected)
        }
    }

    @Test(arguments: [
        ("example.com", "example.com"),
        ("example.com:8080", "example.com"),
        ("Example.COM.:80", "Example.COM"),
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("", ""),
    ])
    func hostWithoutPort(host: String, expected: String) {
        let r = TestRequest(host: host)
        r.bytes.withUnsafeBytes { bytes in
            #expect(r.text(r.head.hostName(in: bytes)) == expected)
        }
    }

    @Test(arguments: [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("192.168.1.7", "192.168.1.7/32"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("::1/128", "::1/128"),
        ("fd00::/8", "fd00::/8"),
        ("::/0", "::/0"),
        ("2001:db8::/32", "2001:db8::/32"),
    ])
    func prefixesParse(text: String, canonical: String) throws {
        let p = try #require(AddressPrefix.parse(text))
        #expect(p.description == canonical)
    }

    @Test(arguments: ["10.0.0.1/8", "10.0.0.0/33", "::1/129", "10.0.0/8", "bogus", "10.0.0.0/", "fd00::1/8"])
    func badPrefixes(text: String) {
        #expect(AddressPrefix.parse(text) == nil)
    }

    @Test func prefixContainment() throws {
        let v4 = try #require(AddressPrefix.parse("10.1.0.0/16"))
        #expect(v4.contains(.v4(0x0a01_ffff, port: 1)))
        #expect(!v4.contains(.v4(0x0a02_0000, port: 1)))
        #expect(v4.contains(.v6(hi: 0, lo: 0x0000_ffff_0a01_0203, port: 1)))
        #expect(!v4.contains(.v6(hi: 0, lo: 1, port: 1)))
        let v6 = try #require(AddressPrefix.parse("2001:db8:1::/48"))
        #expect(v6.contains(.v6(hi: 0x2001_0db8_0001_ffff, lo: 5, port: 1)))
        #expect(!v6.contains(.v6(hi: 0x2001_0db8_0002_0000, lo: 0, port: 1)))
        #expect(!v6.contains(.v4(0x0a01_0203, port: 1)))
        let any4 = try #require(AddressPrefix.parse("0.0.0.0/0"))
        #expect(any4.contains(.v4(0xffff_ffff, port: 1)))
        let host6 = try #require(AddressPrefix.parse("::1/128"))
        #expect(host6.contains(.v6(hi: 0, lo: 1, port: 9)) && !host6.contains(.v6(hi: 0, lo: 2, port: 9)))
    }
}
