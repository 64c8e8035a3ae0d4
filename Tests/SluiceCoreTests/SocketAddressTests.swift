import Testing
import SluiceCore

/// `appendHostText` (what X-Forwarded-For and the access log carry) and `hostText`, which is built on it.
struct SocketAddressTextTests {
    @Test(arguments: [
        (SocketAddress.v4(0x7f00_0001, port: 80), "127.0.0.1"),
        (.v4(0, port: 1), "0.0.0.0"),
        (.v4(0xffff_ffff, port: 1), "255.255.255.255"),
        (.v4(0xc000_020a, port: 1), "192.0.2.10"),
        (.v6(hi: 0, lo: 1, port: 1), "::1"),
        (.v6(hi: 0, lo: 0, port: 1), "::"),
        (.v6(hi: 0x0001_0000_0000_0000, lo: 0, port: 1), "1::"),
        (.v6(hi: 0x2001_0db8_0000_0000, lo: 0x0000_0000_0000_0001, port: 1), "2001:db8::1"),
        // Only a run of two or more zero groups is compressed; the first of two equal runs.
        (.v6(hi: 0x2001_0db8_0000_0001, lo: 0x0001_0001_0001_0001, port: 1), "2001:db8:0:1:1:1:1:1"),
        (.v6(hi: 0x2001_0000_0000_0001, lo: 0x0000_0000_0001_0001, port: 1), "2001::1:0:0:1:1"),
        (.v6(hi: 0x0001_0002_0003_0004, lo: 0x0005_0006_0007_abcd, port: 1), "1:2:3:4:5:6:7:abcd"),
        (.v6(hi: 0, lo: 0x0000_ffff_7f00_0001, port: 1), "::ffff:7f00:1"),
    ])
    func hostText(address: SocketAddress, expected: String) {
        var out: [UInt8] = Array("x=".utf8)
        address.appendHostText(to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "x=" + expected)
        #expect(address.hostText == expected)
    }
}
