import Testing

@testable import FerryCDN

@Suite struct RegionDistancesTests {
    @Test func aPairGivenOneWayCountsBothWays() throws {
        let distances = try RegionDistances(["east": ["west": 70]])
        #expect(distances.distance(from: "east", to: "west") == 70)
        #expect(distances.distance(from: "west", to: "east") == 70)
    }

    @Test func aPairGivenBothWaysKeepsEachAsGiven() throws {
        let distances = try RegionDistances(["east": ["west": 70], "west": ["east": 90]])
        #expect(distances.distance(from: "east", to: "west") == 70)
        #expect(distances.distance(from: "west", to: "east") == 90)
    }

    @Test func aRegionIsNothingFromItselfAndAnUnknownPairIsUnreachable() throws {
        let distances = try RegionDistances(["east": ["west": 70, "east": 5], "north": ["south": 10]])
        #expect(distances.distance(from: "east", to: "east") == 0)
        #expect(distances.distance(from: "mars", to: "mars") == 0)
        #expect(distances.distance(from: "east", to: "north") == nil)
        #expect(distances.distance(from: "east", to: "mars") == nil)
    }

    @Test func regionsAreOrderedNearestFirstTiesByNameUnreachableLast() throws {
        let distances = try RegionDistances([
            "east": ["west": 70, "north": 30, "south": 30],
            "west": ["north": 50],
            "island": [:],
        ])
        #expect(distances.regions == ["east", "island", "north", "south", "west"])
        #expect(distances.nearest(from: "east") == ["east", "north", "south", "west", "island"])
        #expect(distances.nearest(from: "west") == ["west", "north", "east", "island", "south"])
        #expect(distances.nearest(from: "island") == ["island", "east", "north", "south", "west"])
        #expect(distances.nearest(from: "mars") == [])
        #expect(distances.order(from: "east", among: ["west", "moon", "north"]) == ["north", "west", "moon"])
    }

    @Test func aNegativeDistanceIsRefused() {
        #expect(throws: RegionDistanceError.negative(from: "east", to: "west", distance: -1)) {
            try RegionDistances(["east": ["west": -1]])
        }
    }
}
