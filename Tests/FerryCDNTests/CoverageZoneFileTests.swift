import Testing

@testable import FerryCDN

@Suite struct CoverageZoneFileTests {
    static func parse(_ json: String) throws(CoverageZoneError) -> CoverageZoneFile {
        try CoverageZoneFile.parse(json: Array(json.utf8))
    }

    static func refusal(_ json: String) -> String? {
        do {
            _ = try Self.parse(json)
            return nil
        } catch {
            return error.description
        }
    }

    @Test func aTrafficControlCoverageZoneFileIsRead() throws {
        // The form of Traffic Control's documentation, with coordinates (ignored) and both lists.
        let file = try Self.parse(
            """
            {
                "revision": "2024-05-01T10:00:00Z",
                "customerName": "Example",
                "coverageZones": {
                    "east": {
                        "coordinates": {"latitude": 1.1, "longitude": 2.2},
                        "network6": ["1234:5678::/64", "1234:5679::/64"],
                        "network": ["192.168.8.0/24", "192.168.9.0/24", "10.1.2.3/16"]
                    },
                    "west": {
                        "network": ["192.168.8.128/25", " 172.16.0.0/12 "]
                    },
                    "north": {
                        "network6": ["1234:5678:0:1::/80"]
                    },
                    "empty": {}
                }
            }
            """
        )
        #expect(file.revision == "2024-05-01T10:00:00Z")
        #expect(file.customerName == "Example")
        let zones = file.zones
        #expect(zones.region(for: IPAddress("192.168.8.1")!)?.region == "east")
        #expect(zones.region(for: IPAddress("192.168.8.200")!)! == ("west", 25))
        #expect(zones.region(for: IPAddress("10.1.200.1")!)! == ("east", 16))
        #expect(zones.region(for: IPAddress("172.20.0.1")!)?.region == "west")
        #expect(zones.region(for: IPAddress("1234:5679::1")!)?.region == "east")
        #expect(zones.region(for: IPAddress("1234:5678:0:1::1")!)! == ("north", 80))
        #expect(zones.regions == ["east", "north", "west"])
    }

    @Test func theStaticParserGivesTheZones() throws {
        let zones = try CoverageZones.parseTrafficControl(
            json: Array(#"{"coverageZones": {"a": {"network": ["10.0.0.0/8"]}}}"#.utf8)
        )
        #expect(zones.region(for: IPAddress("10.1.1.1")!)?.region == "a")
    }

    @Test func aBadNetworkIsRefusedNamingTheZoneAndTheEntry() throws {
        let message = try #require(
            Self.refusal(#"{"coverageZones": {"east": {"network": ["10.0.0.0/8", "10.1.0.0/33"]}}}"#)
        )
        #expect(message.contains("\"east\""))
        #expect(message.contains("\"10.1.0.0/33\""))
        #expect(message.contains("\"network\""))
        #expect(
            Self.refusal(#"{"coverageZones": {"east": {"network6": ["::1::/64"]}}}"#)
                == #"coverage zone "east": "::1::/64" in "network6" is not an IPv6 network in CIDR form"#
        )
    }

    @Test func aNetworkOfTheWrongFamilyForItsListIsRefused() {
        #expect(
            Self.refusal(#"{"coverageZones": {"east": {"network": ["2001:db8::/32"]}}}"#)
                == #"coverage zone "east": "2001:db8::/32" in "network" is not an IPv4 network"#
        )
        #expect(Self.refusal(#"{"coverageZones": {"east": {"network6": ["10.0.0.0/8"]}}}"#) != nil)
    }

    @Test func aNetworkInTwoZonesIsRefusedNamingBoth() {
        let json = #"{"coverageZones": {"west": {"network": ["10.1.0.0/16"]}, "east": {"network": ["10.1.0.0/16"]}}}"#
        #expect(Self.refusal(json) == #"network 10.1.0.0/16 is listed in two coverage zones, "east" and "west""#)
    }

    @Test func filesNotOfTheCoverageZoneFormAreRefused() {
        #expect(Self.refusal("not json")?.hasPrefix("the coverage zone file is malformed: not JSON") == true)
        #expect(Self.refusal("[]") == "the coverage zone file is malformed: the top level is not an object")
        #expect(Self.refusal(#"{"zones": {}}"#)?.contains("no \"coverageZones\"") == true)
        #expect(Self.refusal(#"{"coverageZones": []}"#)?.contains("not an object") == true)
        #expect(Self.refusal(#"{"coverageZones": {"east": []}}"#)?.contains("\"east\" is not an object") == true)
        #expect(
            Self.refusal(#"{"coverageZones": {"east": {"network": "10.0.0.0/8"}}}"#)
                == #"the coverage zone file is malformed: "network" of coverage zone "east" is not an array"#
        )
        #expect(
            Self.refusal(#"{"coverageZones": {"east": {"network": [10]}}}"#)
                == #"coverage zone "east": "10" in "network" is not a string"#
        )
    }

    @Test func anEmptyMapIsValidAndMatchesNoOne() throws {
        let file = try Self.parse(#"{"coverageZones": {}}"#)
        #expect(file.revision == nil)
        #expect(file.zones.region(for: IPAddress("10.0.0.1")!) == nil)
    }
}
