import Testing

@testable import FerryCDN

@Suite struct IPAddressTests {
    @Test func dottedQuadsParseToTheirNumber() {
        #expect(IPAddress("10.1.2.3") == .v4(0x0a01_0203))
        #expect(IPAddress("0.0.0.0") == .v4(0))
        #expect(IPAddress("255.255.255.255") == .v4(.max))
        #expect(IPAddress("10.1.2.3")?.description == "10.1.2.3")
    }

    @Test(arguments: [
        "256.1.1.1", "1.2.3", "1.2.3.4.5", "1..2.3", "", ".1.2.3", "1.2.3.", "01.2.3.4", "1.2.3.0004", "a.b.c.d",
        " 1.2.3.4", "1.2.3.4 ", "1.2.3.-4", "1.2.3.4/32", "999.1.1.1",
    ])
    func malformedDottedQuadsAreRefused(_ text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func ipv6TextParsesWithCompressionAndAnEmbeddedIPv4Tail() {
        #expect(IPAddress("::") == .v6(0))
        #expect(IPAddress("::1") == .v6(1))
        #expect(IPAddress("1::") == .v6(UInt128(1) << 112))
        #expect(IPAddress("2001:db8::1") == .v6(UInt128(0x2001_0db8) << 96 | 1))
        #expect(IPAddress("2001:DB8:0:0:8:800:200C:417A") == IPAddress("2001:db8::8:800:200c:417a"))
        #expect(IPAddress("1:2:3:4:5:6:7:8") == .v6(0x0001_0002_0003_0004_0005_0006_0007_0008))
        #expect(IPAddress("1:2:3:4:5:6:7::") == .v6(0x0001_0002_0003_0004_0005_0006_0007_0000))
        #expect(IPAddress("::ffff:1.2.3.4") == .v6(0xffff_0102_0304))
        #expect(IPAddress("64:ff9b::192.0.2.33") == .v6(UInt128(0x64_ff9b) << 96 | 0xc000_0221))
        #expect(IPAddress("1:2:3:4:5:6:1.2.3.4") == .v6(0x0001_0002_0003_0004_0005_0006_0102_0304))
    }

    @Test(arguments: [
        "::1::", ":::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "12345::", "1:", ":1", "g::", "1:2:3:4:5:6:7:8::",
        "::1.2.3", "::1.2.3.4:5", "fe80::1%eth0", "::256.1.1.1", "1:2:3:4:5:6:7:1.2.3.4", "::ffff:01.2.3.4",
        "1::2::3", "[::1]", ":", "1:2:3:4:5:6:7:8:", "::1:",
    ])
    func malformedIPv6TextIsRefused(_ text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func ipv6IsWrittenInTheCanonicalFormOfRFC5952() {
        let cases = [
            ("2001:db8:0:0:0:0:2:1", "2001:db8::2:1"),
            ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
            ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
            ("0:0:0:0:0:0:0:0", "::"),
            ("0:0:0:0:0:0:0:1", "::1"),
            ("1:0:0:0:0:0:0:0", "1::"),
            ("1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"),
            ("::FFFF:1.2.3.4", "::ffff:1.2.3.4"),
            ("::ffff:0102:0304", "::ffff:1.2.3.4"),
            ("fe80::abcd:0:0:1", "fe80::abcd:0:0:1"),
        ]
        for (text, canonical) in cases {
            #expect(IPAddress(text)?.description == canonical, "\(text)")
        }
    }

    @Test func bytesRoundTripInNetworkOrder() {
        #expect(IPAddress(bytes: [10, 1, 2, 3]) == IPAddress("10.1.2.3"))
        #expect(IPAddress("10.1.2.3")?.bytes == [10, 1, 2, 3])
        let v6: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1]
        #expect(IPAddress(bytes: v6) == IPAddress("2001:db8::1"))
        #expect(IPAddress("2001:db8::1")?.bytes == v6)
        #expect(IPAddress(bytes: v6[...]) == IPAddress("2001:db8::1"))
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
        #expect(IPAddress(bytes: [UInt8](repeating: 0, count: 5)) == nil)
    }

    @Test func anIPv4MappedAddressUnmapsToTheIPv4AddressItStandsFor() {
        let mapped = IPAddress("::ffff:10.1.2.3")
        #expect(mapped?.isIPv4Mapped == true)
        #expect(mapped?.unmapped == IPAddress("10.1.2.3"))
        #expect(IPAddress("::10.1.2.3")?.unmapped == IPAddress("::10.1.2.3"))
        #expect(IPAddress("10.1.2.3")?.unmapped == IPAddress("10.1.2.3"))
    }
}
