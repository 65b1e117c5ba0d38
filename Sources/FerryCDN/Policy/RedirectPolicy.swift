/// Which edge answers a client, by proximity, load and health, in the manner of Apache Traffic
/// Control's Traffic Router:
///
/// 1. The client's region is the coverage zone its address matches by longest prefix.
/// 2. Regions are tried nearest first from it (itself, then by distance, ties by name, unreachable
///    ones last); the first with an edge that is healthy and has spare capacity serves.
/// 3. In that region, a path (HTTP redirects) is rendezvous-hashed over the usable edges, so that one
///    object stays on one edge; without one (DNS) the edge with the lowest load over capacity wins,
///    ties by name.
/// 4. A client with no address, no matching zone, or a zone that is not one of the regions has no
///    nearest region: every edge is equally near and the one with the most spare capacity (lowest
///    load over capacity) wins. Traffic Router would fall back to geolocation; there is none here.
/// 5. No usable edge anywhere: the origin.
///
/// The policy holds only configuration, in tables built once. Health and load come in a
/// ``PolicySnapshot`` (``snapshot(_:)``) that the caller rebuilds when they change and shares
/// between threads; `choose` on it allocates nothing and does no string hashing.
public struct RedirectPolicy: Sendable {
    public let coverage: CoverageZones
    public let distances: RegionDistances
    /// The CDN's regions, sorted.
    public let regions: [String]
    /// The configured edges, sorted by region (in ``regions`` order) then name.
    public let edges: [EdgeStatus]
    /// Where clients go when no edge can take them (shown by `explain`).
    public let origin: String

    let regionIndex: [String: Int]
    /// Each region's edges, a range of ``edges``.
    let regionEdges: [Range<Int>]
    /// Each region's regions nearest first, itself first.
    let nearest: [[Int]]
    /// `distance[from * regions.count + to]`, -1 when unreachable.
    let distanceMatrix: [Int]
    /// For each of `coverage.regions`, its index in ``regions``, or -1.
    let coverageRegion: [Int]
    let edgeIndex: [String: Int]
    /// Indices of ``edges`` by edge name, for ties across regions.
    let edgesByName: [Int]
    let seeds: [UInt64]

    /// - Parameters:
    ///   - regions: the CDN's regions; every edge's region must be one of them. A coverage zone that
    ///     names no region here is treated as an unknown client.
    ///   - edges: each edge's configuration (name, region, address, capacity); health and load are
    ///     read from the statuses given to ``snapshot(_:)``.
    ///   - origin: what `explain` names when clients go to the origin, e.g. its URL.
    public init(
        coverage: CoverageZones,
        distances: RegionDistances,
        regions: [String],
        edges: [EdgeStatus],
        origin: String
    ) throws(RedirectPolicyError) {
        let regions = Set(regions).sorted()
        let regionIndex = Dictionary(uniqueKeysWithValues: regions.enumerated().map { ($1, $0) })
        var seen: Set<String> = []
        for edge in edges {
            guard seen.insert(edge.name).inserted else { throw .duplicateEdge(edge.name) }
            guard regionIndex[edge.region] != nil else { throw .unknownRegion(edge: edge.name, region: edge.region) }
        }
        let sorted = edges.sorted { (regionIndex[$0.region] ?? 0, $0.name) < (regionIndex[$1.region] ?? 0, $1.name) }
        var regionEdges = [Range<Int>](repeating: 0..<0, count: regions.count)
        var start = 0
        for region in regions.indices {
            var end = start
            while end < sorted.count, sorted[end].region == regions[region] { end += 1 }
            regionEdges[region] = start..<end
            start = end
        }
        var distanceMatrix: [Int] = []
        distanceMatrix.reserveCapacity(regions.count * regions.count)
        for from in regions {
            for to in regions { distanceMatrix.append(distances.distance(from: from, to: to) ?? -1) }
        }
        self.coverage = coverage
        self.distances = distances
        self.regions = regions
        self.edges = sorted
        self.origin = origin
        self.regionIndex = regionIndex
        self.regionEdges = regionEdges
        self.nearest = regions.map { region in
            distances.order(from: region, among: regions).compactMap { regionIndex[$0] }
        }
        self.distanceMatrix = distanceMatrix
        self.coverageRegion = coverage.regions.map { regionIndex[$0] ?? -1 }
        self.edgeIndex = Dictionary(uniqueKeysWithValues: sorted.enumerated().map { ($1.name, $0) })
        self.edgesByName = sorted.indices.sorted { sorted[$0].name < sorted[$1].name }
        self.seeds = sorted.map { RendezvousHash.seed($0.name) }
    }

    /// The tables for `choose`, from the edges' current statuses (matched to the configured edges by
    /// name). Health, load and capacity come from the status; region and address stay as
    /// configured. A configured edge without a status is down.
    public func snapshot(_ statuses: [EdgeStatus]) -> PolicySnapshot {
        PolicySnapshot(policy: self, statuses: statuses)
    }

    /// Chooses from statuses given directly: builds a snapshot each time, so for tests and tools,
    /// not for every query.
    public func choose(client: IPAddress?, path: Substring? = nil, edges: [EdgeStatus]) -> PolicyChoice {
        self.snapshot(edges).choose(client: client, path: path)
    }

    /// ``PolicySnapshot/explain(client:path:)`` from statuses given directly.
    public func explain(client: IPAddress?, path: Substring? = nil, edges: [EdgeStatus]) -> [String] {
        self.snapshot(edges).explain(client: client, path: path)
    }

    /// The distance between two regions by index; nil when unreachable.
    func distance(_ from: Int, _ to: Int) -> Int? {
        let distance = self.distanceMatrix[from * self.regions.count + to]
        return distance < 0 ? nil : distance
    }
}

/// Why a policy could not be built.
public enum RedirectPolicyError: Error, Sendable, Hashable, CustomStringConvertible {
    case duplicateEdge(String)
    case unknownRegion(edge: String, region: String)

    public var description: String {
        switch self {
        case .duplicateEdge(let name):
            "two edges are named \"\(name)\""
        case .unknownRegion(let edge, let region):
            "edge \"\(edge)\" is in region \"\(region)\", which is not one of the CDN's regions"
        }
    }
}
