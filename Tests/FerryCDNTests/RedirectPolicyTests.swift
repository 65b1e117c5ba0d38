import Testing

@testable import FerryCDN

/// The policy over four regions: east is 30 ms from north and 70 from west, west 50 from north;
/// south has no distances (unreachable from all).
@Suite struct RedirectPolicyTests {
    static let coverage = try! CoverageZones(
        regions: [
            "east": [IPNetwork("10.1.0.0/16")!, IPNetwork("2001:db8:1::/48")!],
            "west": [IPNetwork("10.2.0.0/16")!, IPNetwork("10.1.2.0/24")!],
            "north": [IPNetwork("10.3.0.0/16")!],
            "south": [IPNetwork("10.4.0.0/16")!],
            "lab": [IPNetwork("10.9.0.0/16")!],
        ]
    )
    static let distances = try! RegionDistances(["east": ["west": 70, "north": 30], "west": ["north": 50]])
    static let regions = ["east", "west", "north", "south"]

    static func edge(
        _ name: String,
        _ region: String,
        _ last: Int,
        load: Double = 0,
        capacity: Int = 1000
    ) -> EdgeStatus {
        EdgeStatus(
            name: name,
            region: region,
            address: .init(host: "127.0.0.\(last)", port: 8000),
            capacity: capacity,
            healthy: true,
            load: load
        )
    }

    /// Everything healthy and lightly loaded; the tests change what they need.
    static let edges = [
        edge("e1", "east", 1, load: 500), edge("e2", "east", 2, load: 100),
        edge("w1", "west", 3, load: 10), edge("w2", "west", 4, load: 20),
        edge("n1", "north", 5, load: 300),
        edge("s1", "south", 6, load: 0),
    ]

    static let policy = try! RedirectPolicy(
        coverage: coverage,
        distances: distances,
        regions: regions,
        edges: edges,
        origin: "http://origin.example"
    )

    static func with(_ changes: [String: (inout EdgeStatus) -> Void]) -> [EdgeStatus] {
        edges.map { edge in
            var edge = edge
            changes[edge.name]?(&edge)
            return edge
        }
    }

    static func down(_ edge: inout EdgeStatus) { edge.healthy = false }
    static func full(_ edge: inout EdgeStatus) { edge.load = Double(edge.capacity) }

    static let eastClient = IPAddress("10.1.5.5")!

    @Test func theNearestRegionServesAndItsLeastLoadedEdgeAnswersDNS() {
        let choice = Self.policy.choose(client: Self.eastClient, edges: Self.edges)
        #expect(choice.edge?.name == "e2")
        #expect(choice.reason == .nearestLeastLoaded)
        #expect(choice.clientRegion == "east")
        #expect(choice.clientNetwork == IPNetwork("10.1.0.0/16"))
        #expect(choice.prefixLength == 16)
        #expect(choice.scopePrefixLength == 22)
        #expect(choice.regionsSkipped == 0)
        #expect(choice.distance == 0)
        // The longer match: 10.1.2.3 is west, whose w1 is least loaded.
        let west = Self.policy.choose(client: IPAddress("10.1.2.3")!, edges: Self.edges)
        #expect(west.edge?.name == "w1")
        #expect(west.prefixLength == 24)
        // IPv6 and IPv4-mapped clients find their zones too.
        #expect(Self.policy.choose(client: IPAddress("2001:db8:1::7")!, edges: Self.edges).edge?.name == "e2")
        let mapped = Self.policy.choose(client: IPAddress("::ffff:10.3.0.1")!, edges: Self.edges)
        #expect(mapped.edge?.name == "n1")
        #expect(mapped.prefixLength == 112)
    }

    @Test func leastLoadedComparesLoadOverCapacityWithTiesByName() {
        let bigger = Self.with(["e1": { $0.capacity = 10_000 }])  // 500 of 10000 beats 100 of 1000
        #expect(Self.policy.choose(client: Self.eastClient, edges: bigger).edge?.name == "e1")
        let tied = Self.with(["e1": { $0.load = 100 }])
        #expect(Self.policy.choose(client: Self.eastClient, edges: tied).edge?.name == "e1")
    }

    @Test func anEdgeNotYetCheckedIsNeverChosen() {
        // e2 is the least loaded, but no check has passed.
        let statuses = Self.with([
            "e2": {
                $0.healthy = false
                $0.load = 0
            }
        ])
        let snapshot = Self.policy.snapshot(statuses)
        #expect(snapshot.choose(client: Self.eastClient).edge?.name == "e1")
        for index in 0..<300 {
            #expect(snapshot.choose(client: Self.eastClient, path: "/objects/\(index)"[...]).edge?.name == "e1")
        }
        // An edge with no status at all is down too.
        let silent = Self.policy.snapshot(Self.edges.filter { $0.name != "e2" })
        #expect(silent.choose(client: Self.eastClient).edge?.name == "e1")
        #expect(silent.edges.first { $0.name == "e2" }?.healthy == false)
    }

    @Test func aFullEdgeIsSkipped() {
        let statuses = Self.with(["e2": Self.full])
        #expect(Self.policy.choose(client: Self.eastClient, edges: statuses).edge?.name == "e1")
        #expect(!statuses[1].hasSpareCapacity)
        for index in 0..<300 {
            let path = "/objects/\(index)"[...]
            #expect(Self.policy.choose(client: Self.eastClient, path: path, edges: statuses).edge?.name == "e1")
        }
    }

    @Test func aRegionWithEveryEdgeDownOrFullPassesToTheNextNearest() {
        let statuses = Self.with(["e1": Self.down, "e2": Self.full])
        let choice = Self.policy.choose(client: Self.eastClient, edges: statuses)
        #expect(choice.edge?.name == "n1")  // north, 30 ms, before west at 70
        #expect(choice.regionsSkipped == 1)
        #expect(choice.distance == 30)
        #expect(choice.clientRegion == "east")
        let northDown = Self.with(["e1": Self.down, "e2": Self.full, "n1": Self.down])
        let west = Self.policy.choose(client: Self.eastClient, edges: northDown)
        #expect(west.edge?.name == "w1")
        #expect(west.regionsSkipped == 2)
        #expect(west.distance == 70)
        // Unreachable regions come last, but before the origin.
        let onlySouth = Self.edges.map { edge in
            var edge = edge
            edge.healthy = edge.region == "south"
            return edge
        }
        let south = Self.policy.choose(client: Self.eastClient, edges: onlySouth)
        #expect(south.edge?.name == "s1")
        #expect(south.distance == nil)
        #expect(south.regionsSkipped == 3)
    }

    @Test func everyEdgeDownOrFullSendsClientsToTheOrigin() {
        let statuses = Self.edges.enumerated().map { index, edge in
            var edge = edge
            if index.isMultiple(of: 2) { edge.healthy = false } else { edge.load = 5_000 }
            return edge
        }
        for client in [Self.eastClient, IPAddress("192.0.2.1")!] {
            let choice = Self.policy.choose(client: client, path: "/x", edges: statuses)
            #expect(choice.target == .origin)
            #expect(choice.reason == .noUsableEdge)
            #expect(choice.edge == nil)
        }
        #expect(Self.policy.choose(client: nil, edges: []).target == .origin)
    }

    @Test func aClientOfUnknownRegionGoesToTheLeastLoadedEdgeOfAll() {
        // No coverage zone, no address, and a zone that is not one of the CDN's regions.
        for client in [IPAddress("192.0.2.1"), nil, IPAddress("10.9.0.1")] {
            let choice = Self.policy.choose(client: client, path: "/x", edges: Self.edges)
            #expect(choice.edge?.name == "s1")
            #expect(choice.reason == .clientRegionUnknown)
            #expect(choice.distance == nil)
        }
        #expect(Self.policy.choose(client: IPAddress("10.9.0.1"), edges: Self.edges).clientRegion == "lab")
        // By spare capacity as a fraction: 300 of 100000 is less loaded than 10 of 1000.
        let statuses = Self.with(["s1": Self.down, "n1": { $0.capacity = 100_000 }])
        #expect(Self.policy.choose(client: nil, edges: statuses).edge?.name == "n1")
        // Ties by name across regions.
        let tied = Self.with(["s1": Self.down, "w1": { $0.load = 20 }])
        #expect(Self.policy.choose(client: nil, edges: tied).edge?.name == "w1")
    }

    @Test func pathHashingIsStableAcrossCallsAndLoadsAndSpreadsOverTheRegion() {
        let snapshot = Self.policy.snapshot(Self.edges)
        let busier = Self.policy.snapshot(Self.with(["e1": { $0.load = 900 }, "e2": { $0.load = 5 }]))
        var counts: [String: Int] = [:]
        for index in 0..<2_000 {
            let path = "/video/\(index).ts"[...]
            let first = snapshot.choose(client: Self.eastClient, path: path)
            #expect(first.reason == .nearestHashed)
            #expect(snapshot.choose(client: Self.eastClient, path: path) == first)
            // Load moves DNS answers, not hashed paths, while the edge has spare capacity.
            #expect(busier.choose(client: Self.eastClient, path: path).edge?.name == first.edge?.name)
            // Any client of the region gets the same edge for the path.
            #expect(snapshot.choose(client: IPAddress("10.1.99.1")!, path: path).edge?.name == first.edge?.name)
            counts[first.edge?.name ?? "-", default: 0] += 1
        }
        #expect(Set(counts.keys) == ["e1", "e2"])
        #expect(counts.values.allSatisfy { $0 > 850 }, "\(counts)")
        // The policy hashes as RendezvousHash does, weighted by capacity.
        let hash = RendezvousHash([("e1", 1000), ("e2", 1000)])
        for index in 0..<200 {
            let path = "/video/\(index).ts"
            #expect(
                snapshot.choose(client: Self.eastClient, path: path[...]).edge?.name == hash.member(for: path)?.name
            )
        }
    }

    @Test func aHashedPathLeavesOnlyAnEdgeThatBecameUnusable() {
        let three = Self.with(["w1": { $0.region = "east" }])
        let policy = try! RedirectPolicy(
            coverage: Self.coverage,
            distances: Self.distances,
            regions: Self.regions,
            edges: three,
            origin: "http://origin.example"
        )
        let all = policy.snapshot(three)
        let oneDown = policy.snapshot(
            three.map { edge in
                var edge = edge
                if edge.name == "e2" { edge.healthy = false }
                return edge
            }
        )
        for index in 0..<3_000 {
            let path = "/p/\(index)"[...]
            let before = all.choose(client: Self.eastClient, path: path).edge?.name
            let after = oneDown.choose(client: Self.eastClient, path: path).edge?.name
            if before != after { #expect(before == "e2") }
        }
    }

    @Test func theExplanationNamesWhyEachEdgeWasTakenOrPassedOver() {
        var statuses = Self.with(["e1": Self.down, "e2": Self.full, "n1": { $0.healthy = false }])
        statuses[4].healthDetail = "the last check failed: connection refused"
        let lines = Self.policy.explain(client: Self.eastClient, path: "/x", edges: statuses)
        let hashed = Self.policy.choose(client: Self.eastClient, path: "/x", edges: statuses).edge
        #expect(
            lines == [
                "client 10.1.5.5 is in region east (10.1.0.0/16, ECS scope /22)",
                "e1 (east, 0 ms): down — no check has passed yet",
                "e2 (east, 0 ms): full — load 1000 of 1000",
                "n1 (north, 30 ms): down — the last check failed: connection refused",
                "w1 (west, 70 ms): up — load 10 of 1000 (1%)",
                "w2 (west, 70 ms): up — load 20 of 1000 (2%)",
                "answer: \(hashed?.name ?? "-") \(hashed?.address.description ?? "-")"
                    + " — nearest healthy edge with spare capacity; path /x hashed to it",
            ]
        )
        let dns = Self.policy.explain(client: IPAddress("10.2.0.9")!, edges: Self.edges)
        #expect(
            dns == [
                "client 10.2.0.9 is in region west (10.2.0.0/16)",
                "w1 (west, 0 ms): up — load 10 of 1000 (1%)",
                "w2 (west, 0 ms): up — load 20 of 1000 (2%)",
                "answer: w1 127.0.0.3:8000 — nearest healthy edge with spare capacity;"
                    + " the least loaded in region west",
            ]
        )
    }

    @Test func theExplanationOfTheOriginSaysEveryEdgeIsDownOrFull() {
        let statuses = Self.edges.map { edge in
            var edge = edge
            edge.healthy = false
            return edge
        }
        let lines = Self.policy.explain(client: IPAddress("10.4.0.1")!, edges: statuses)
        #expect(lines.first == "client 10.4.0.1 is in region south (10.4.0.0/16)")
        #expect(lines.count == 1 + Self.edges.count + 1)
        #expect(lines.last == "answer: origin http://origin.example — every edge is down or full")
    }

    @Test func theExplanationOfAnUnknownClientSaysItHasNoRegion() {
        let lines = Self.policy.explain(client: IPAddress("192.0.2.1")!, edges: Self.with(["s1": Self.down]))
        #expect(
            lines.first
                == "client 192.0.2.1 is in no coverage zone: every region is treated as equally near"
                + " (there is no geolocation fallback)"
        )
        #expect(lines.contains("s1 (south): down — no check has passed yet"))
        #expect(
            lines.last
                == "answer: w1 127.0.0.3:8000 — the healthy edge with the most spare capacity, the client's region"
                + " being unknown"
        )
        let lab = Self.policy.explain(client: IPAddress("10.9.0.1")!, edges: Self.edges)
        #expect(lab.first?.contains("coverage zone lab (10.9.0.0/16), which is not one of the CDN's regions") == true)
        #expect(Self.policy.explain(client: nil, edges: Self.edges).first?.hasPrefix("no client address") == true)
    }

    @Test func statusesOfUnconfiguredEdgesAreReportedAndIgnored() {
        var statuses = Self.edges
        statuses.append(Self.edge("stray", "east", 9))
        let snapshot = Self.policy.snapshot(statuses)
        #expect(snapshot.unknownEdges == ["stray"])
        #expect(snapshot.edges.count == Self.edges.count)
    }

    @Test func aBadConfigurationIsRefused() {
        #expect(throws: RedirectPolicyError.duplicateEdge("e1")) {
            try RedirectPolicy(
                coverage: .empty,
                distances: .empty,
                regions: ["east"],
                edges: [Self.edge("e1", "east", 1), Self.edge("e1", "east", 2)],
                origin: "o"
            )
        }
        #expect(throws: RedirectPolicyError.unknownRegion(edge: "e1", region: "mars")) {
            try RedirectPolicy(
                coverage: .empty,
                distances: .empty,
                regions: ["east"],
                edges: [Self.edge("e1", "mars", 1)],
                origin: "o"
            )
        }
    }
}
