import Testing

@testable import FerryCDN

@Suite struct IPNetworkTests {
    @Test func cidrTextGivesTheNetworkAndItsLength() {
        let network = IPNetwork("10.1.0.0/16")
        #expect(network?.prefixLength == 16)
        #expect(network?.address == IPAddress("10.1.0.0"))
        #expect(network?.description == "10.1.0.0/16")
        #expect(IPNetwork("2001:db8::/32")?.description == "2001:db8::/32")
        #expect(IPNetwork("0.0.0.0/0")?.prefixLength == 0)
        #expect(IPNetwork("::/0")?.description == "::/0")
    }

    @Test func hostBitsAreClearedAsTrafficControlDoes() {
        #expect(IPNetwork("10.1.2.3/16")?.description == "10.1.0.0/16")
        #expect(IPNetwork("2001:db8:1:2::5/32")?.description == "2001:db8::/32")
        #expect(IPNetwork("10.1.2.3/16") == IPNetwork("10.1.0.0/16"))
    }

    @Test func aBareAddressIsANetworkOfOne() {
        #expect(IPNetwork("10.1.2.3")?.description == "10.1.2.3/32")
        #expect(IPNetwork("2001:db8::1")?.description == "2001:db8::1/128")
    }

    @Test(arguments: [
        "1.2.3.4/33", "::/129", "1.2.3.4/", "1.2.3.4/-1", "1.2.3.4/08", "/8", "1.2.3/8", "1.2.3.4/8/9", "1.2.3.4/ 8",
        "1.2.3.4/+8", "::1::/64", "10.0.0.0/1000",
    ])
    func malformedNetworksAreRefused(_ text: String) {
        #expect(IPNetwork(text) == nil)
    }

    @Test func containsMatchesTheFamilyAndPrefix() throws {
        let v4 = try #require(IPNetwork("10.1.0.0/16"))
        #expect(v4.contains(try #require(IPAddress("10.1.255.7"))))
        #expect(!v4.contains(try #require(IPAddress("10.2.0.1"))))
        #expect(v4.contains(try #require(IPAddress("::ffff:10.1.2.3"))))
        #expect(!v4.contains(try #require(IPAddress("::a01:203"))))
        let v6 = try #require(IPNetwork("2001:db8::/32"))
        #expect(v6.contains(try #require(IPAddress("2001:db8:ffff::1"))))
        #expect(!v6.contains(try #require(IPAddress("2001:db9::1"))))
        #expect(!v6.contains(try #require(IPAddress("10.1.2.3"))))
        #expect(try #require(IPNetwork("0.0.0.0/0")).contains(try #require(IPAddress("192.0.2.1"))))
    }

    @Test func anIPv4MappedNetworkIsTheIPv4NetworkItStandsFor() {
        #expect(IPNetwork("::ffff:10.0.0.0/104") == IPNetwork("10.0.0.0/8"))
        #expect(IPNetwork("::ffff:0:0/96") == IPNetwork("0.0.0.0/0"))
        #expect(IPNetwork("::ffff:0:0/80")?.address.isIPv4 == false)
    }
}
