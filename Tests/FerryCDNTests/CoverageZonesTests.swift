import Testing

@testable import FerryCDN

@Suite struct CoverageZonesTests {
    static func zones(_ entries: [(String, String)]) throws -> CoverageZones {
        try CoverageZones(entries.map { (IPNetwork($0.0)!, $0.1) })
    }

    @Test func theLongestMatchingPrefixWinsAndItsLengthIsReturned() throws {
        let zones = try Self.zones([("10.1.0.0/16", "east"), ("10.1.2.0/24", "west")])
        let west = try #require(zones.region(for: IPAddress("10.1.2.3")!))
        #expect(west.region == "west")
        #expect(west.prefixLength == 24)
        let east = try #require(zones.region(for: IPAddress("10.1.3.3")!))
        #expect(east.region == "east")
        #expect(east.prefixLength == 16)
        #expect(zones.region(for: IPAddress("10.2.0.1")!) == nil)
        #expect(zones.match(IPAddress("10.1.2.3")!)?.network == IPNetwork("10.1.2.0/24"))
        #expect(zones.regions == ["east", "west"])
    }

    @Test func ipv6ClientsMatchIPv6NetworksByLongestPrefix() throws {
        let zones = try Self.zones([
            ("2001:db8::/32", "east"), ("2001:db8:1::/48", "west"), ("2001:db8:1:2::/64", "north"),
            ("10.0.0.0/8", "v4"),
        ])
        #expect(zones.region(for: IPAddress("2001:db8:1:2::9")!)! == ("north", 64))
        #expect(zones.region(for: IPAddress("2001:db8:1:3::9")!)! == ("west", 48))
        #expect(zones.region(for: IPAddress("2001:db8:2::9")!)! == ("east", 32))
        #expect(zones.region(for: IPAddress("2001:db9::1")!) == nil)
        // An IPv4-compatible IPv6 address is not an IPv4 client.
        #expect(zones.region(for: IPAddress("::10.1.2.3")!) == nil)
    }

    @Test func anIPv4MappedClientFindsItsIPv4ZoneWithItsLengthInIPv6Terms() throws {
        let zones = try Self.zones([("10.1.0.0/16", "east")])
        let match = try #require(zones.match(IPAddress("::ffff:10.1.2.3")!))
        #expect(match.region == "east")
        #expect(match.network == IPNetwork("10.1.0.0/16"))
        #expect(match.prefixLength == 112)
        #expect(match.scopePrefixLength == 112)
    }

    @Test func aDefaultRouteCatchesEveryClientOfItsFamily() throws {
        let zones = try Self.zones([("0.0.0.0/0", "anywhere"), ("10.0.0.0/8", "ten")])
        #expect(zones.region(for: IPAddress("192.0.2.1")!)! == ("anywhere", 0))
        #expect(zones.region(for: IPAddress("10.9.9.9")!)! == ("ten", 8))
        #expect(zones.region(for: IPAddress("2001:db8::1")!) == nil)
    }

    @Test func theECSScopeExcludesAMoreSpecificNetworkOfAnotherAnswer() throws {
        let zones = try Self.zones([("10.1.0.0/16", "east"), ("10.1.2.0/24", "west")])
        // 10.1.5.5 and 10.1.2.0/24 share 21 bits: an answer scoped /16 would be cached for 10.1.2.3.
        let match = try #require(zones.match(IPAddress("10.1.5.5")!))
        #expect(match.prefixLength == 16)
        #expect(match.scopePrefixLength == 22)
        #expect(zones.match(IPAddress("10.1.200.1")!)?.scopePrefixLength == 17)
        #expect(zones.match(IPAddress("10.1.2.3")!)?.scopePrefixLength == 24)
        // An unmatched client is scoped so as to leave out every network.
        #expect(zones.scopePrefixLength(for: IPAddress("10.200.0.1")!) == 9)
        #expect(zones.scopePrefixLength(for: IPAddress("192.0.2.1")!) == 1)
        #expect(zones.scopePrefixLength(for: IPAddress("2001:db8::1")!) == 0)
    }

    @Test func aNetworkInTwoRegionsIsRefusedNamingBoth() throws {
        #expect(throws: CoverageZoneError.networkInTwoRegions(network: "10.1.0.0/16", first: "east", second: "west")) {
            try Self.zones([("10.1.0.0/16", "west"), ("10.1.0.0/16", "east")])
        }
        // Host bits do not make it another network.
        #expect(throws: CoverageZoneError.self) {
            try Self.zones([("10.1.0.0/16", "west"), ("10.1.9.9/16", "east")])
        }
        // Listed twice for one region is harmless.
        let zones = try Self.zones([("10.1.0.0/16", "east"), ("10.1.0.0/16", "east")])
        #expect(zones.networks.count == 1)
    }

    /// Random maps checked against a linear scan, and every ECS scope checked by sampling the
    /// addresses it covers: each must get the same region as the client.
    @Test func lookupsAgreeWithALinearScanAndScopesHoldForTheirWholeSubnet() throws {
        var random = SeededRandom(seed: 7)
        var entries: [(network: IPNetwork, region: String)] = []
        var seen: Set<IPNetwork> = []
        for _ in 0..<400 {
            // Clustered under 10.0.0.0/12 so that networks nest often.
            let length = Int(random.next() % 25) + 8
            let address = IPAddress.v4(0x0a00_0000 | UInt32(truncatingIfNeeded: random.next()) & 0x000f_ffff)
            let network = IPNetwork(address: address, prefixLength: length)!
            guard seen.insert(network).inserted else { continue }
            entries.append((network, "r\(random.next() % 5)"))
        }
        let zones = try CoverageZones(entries)
        func scan(_ address: IPAddress) -> String? {
            entries.filter { $0.network.contains(address) }.max { $0.network.prefixLength < $1.network.prefixLength }?
                .region
        }
        for _ in 0..<2_000 {
            let value = 0x0a00_0000 | UInt32(truncatingIfNeeded: random.next()) & 0x000f_ffff
            let client = IPAddress.v4(value)
            let region = zones.region(for: client)?.region
            #expect(region == scan(client))
            let scope = zones.scopePrefixLength(for: client)
            let subnet = IPNetwork(address: client, prefixLength: scope)!
            guard case .v4(let base) = subnet.address else { continue }
            let span = scope == 32 ? 1 : UInt32(1) << (32 - scope)
            for _ in 0..<8 {
                let other = IPAddress.v4(base | UInt32(truncatingIfNeeded: random.next()) % span)
                #expect(zones.region(for: other)?.region == region, "\(client) scoped /\(scope), \(other)")
            }
        }
    }

    /// A fixed-seed generator (SplitMix64), so that a failure can be replayed.
    struct SeededRandom {
        var state: UInt64

        init(seed: UInt64) { self.state = seed }

        mutating func next() -> UInt64 {
            self.state &+= 0x9e37_79b9_7f4a_7c15
            var z = self.state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
    }
}
