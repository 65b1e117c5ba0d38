/// Which region a client is in, by the longest network prefix that holds its address: Traffic
/// Router's coverage zone map, where each zone is named after the cache group (here, region) that
/// serves it.
///
/// One table per prefix length in use, walked from the longest: a lookup costs one hash probe per
/// length in use (usually a handful), not one per network.
public struct CoverageZones: Sendable {
    /// Where a client matched.
    public struct Match: Sendable, Hashable {
        public let region: String
        /// The matched network (an IPv4 one for an IPv4-mapped client).
        public let network: IPNetwork
        /// The matched network's length in the client's own family: for an IPv4-mapped IPv6 client,
        /// the IPv4 length plus 96.
        public let prefixLength: Int
        /// The EDNS Client Subnet SCOPE to answer with, in the client's family: the matched length,
        /// or longer where a more specific network of another answer lies inside the matched one
        /// (see ``CoverageZones/scopePrefixLength(for:)``).
        public let scopePrefixLength: Int
    }

    /// The region names that have at least one network, sorted.
    public let regions: [String]
    /// Every network with its region, sorted by region then network text (for listing).
    public let networks: [(network: IPNetwork, region: String)]
    private let v4Tables: [PrefixTable<UInt32>]
    private let v6Tables: [PrefixTable<UInt128>]
    private let v4Sorted: SortedNetworks<UInt32>
    private let v6Sorted: SortedNetworks<UInt128>

    /// Builds the tables. The same network listed twice for one region is harmless (Traffic Router
    /// drops the repeat); listed for two regions, the map is ambiguous and is refused.
    public init(_ entries: [(network: IPNetwork, region: String)]) throws(CoverageZoneError) {
        var owner: [IPNetwork: String] = [:]
        for (network, region) in entries {
            if let existing = owner[network], existing != region {
                let pair = [existing, region].sorted()
                throw .networkInTwoRegions(network: network.description, first: pair[0], second: pair[1])
            }
            owner[network] = region
        }
        let regions = Set(owner.values).sorted()
        let index = Dictionary(uniqueKeysWithValues: regions.enumerated().map { ($1, Int32($0)) })
        var v4: [(address: UInt32, prefixLength: Int)] = []
        var v6: [(address: UInt128, prefixLength: Int)] = []
        for network in owner.keys {
            switch network.address {
            case .v4(let address): v4.append((address, network.prefixLength))
            case .v6(let address): v6.append((address, network.prefixLength))
            }
        }
        self.v4Sorted = SortedNetworks(v4)
        self.v6Sorted = SortedNetworks(v6)
        let v4Nesting = self.v4Sorted.nesting
        let v6Nesting = self.v6Sorted.nesting
        var v4Entries: [Int: [(key: UInt32, value: PrefixTable<UInt32>.Value)]] = [:]
        var v6Entries: [Int: [(key: UInt128, value: PrefixTable<UInt128>.Value)]] = [:]
        for (network, region) in owner {
            let region = index[region] ?? -1
            let length = network.prefixLength
            switch network.address {
            case .v4(let key):
                let nested = v4Nesting.contains(.init(address: key, prefixLength: length))
                v4Entries[length, default: []].append((key, .init(region: region, hasNested: nested)))
            case .v6(let key):
                let nested = v6Nesting.contains(.init(address: key, prefixLength: length))
                v6Entries[length, default: []].append((key, .init(region: region, hasNested: nested)))
            }
        }
        self.regions = regions
        self.networks = owner.map { ($0.key, $0.value) }.sorted {
            ($0.region, $0.network.description) < ($1.region, $1.network.description)
        }
        self.v4Tables = v4Entries.keys.sorted(by: >).map {
            PrefixTable(prefixLength: $0, mask: IPNetwork.mask32($0), entries: v4Entries[$0] ?? [])
        }
        self.v6Tables = v6Entries.keys.sorted(by: >).map {
            PrefixTable(prefixLength: $0, mask: IPNetwork.mask128($0), entries: v6Entries[$0] ?? [])
        }
    }

    /// Builds the tables from region → networks.
    public init(regions: [String: [IPNetwork]]) throws(CoverageZoneError) {
        try self.init(regions.sorted { $0.key < $1.key }.flatMap { region, networks in networks.map { ($0, region) } })
    }

    /// No zones: every client is unknown.
    public static let empty = try! CoverageZones([])

    /// The client's region and the matched prefix length, by longest-prefix match. For the ECS
    /// SCOPE use ``match(_:)``'s `scopePrefixLength`, which also accounts for nested networks.
    public func region(for address: IPAddress) -> (region: String, prefixLength: Int)? {
        let found = self.lookup(address)
        guard found.region >= 0 else { return nil }
        return (self.regions[Int(found.region)], found.prefixLength)
    }

    /// The client's region with the network it matched; nil when no network holds it.
    public func match(_ address: IPAddress) -> Match? {
        let found = self.lookup(address)
        guard found.region >= 0, let network = found.network else { return nil }
        return Match(
            region: self.regions[Int(found.region)],
            network: network,
            prefixLength: found.prefixLength,
            scopePrefixLength: found.scopePrefixLength
        )
    }

    /// The ECS SCOPE for an answer to this client, matched or not: the longer of the matched
    /// length and one more than the prefix it shares with any network that does not hold it, so
    /// that every client the resolver shares the answer with would have got the same region.
    public func scopePrefixLength(for address: IPAddress) -> Int {
        self.lookup(address).scopePrefixLength
    }

    /// What a lookup found; region -1 when no network holds the client.
    struct Lookup {
        var region: Int32
        var network: IPNetwork?
        var prefixLength: Int
        var scopePrefixLength: Int
    }

    /// Longest-prefix match. An IPv4-mapped client is looked up as IPv4, as Traffic Router does;
    /// lengths are then given in its own (IPv6) family.
    func lookup(_ address: IPAddress) -> Lookup {
        switch address.unmapped {
        case .v4(let value):
            let extra = address.isIPv4 ? 0 : 96
            for table in self.v4Tables {
                let key = value & table.mask
                guard let found = table.value(for: key) else { continue }
                let length = table.prefixLength
                let scope = found.hasNested ? self.v4Sorted.scope(for: value, matched: length) : length
                let network = IPNetwork(v4: key, prefixLength: length)
                return Lookup(
                    region: found.region,
                    network: network,
                    prefixLength: length + extra,
                    scopePrefixLength: scope + extra
                )
            }
            return Lookup(
                region: -1,
                prefixLength: 0,
                scopePrefixLength: self.v4Sorted.scope(for: value, matched: 0) + extra
            )
        case .v6(let value):
            for table in self.v6Tables {
                let key = value & table.mask
                guard let found = table.value(for: key) else { continue }
                let length = table.prefixLength
                let scope = found.hasNested ? self.v6Sorted.scope(for: value, matched: length) : length
                let network = IPNetwork(v6: key, prefixLength: length)
                return Lookup(region: found.region, network: network, prefixLength: length, scopePrefixLength: scope)
            }
            return Lookup(region: -1, prefixLength: 0, scopePrefixLength: self.v6Sorted.scope(for: value, matched: 0))
        }
    }
}

/// Why a coverage zone map was refused; each names the zone and entry at fault.
public enum CoverageZoneError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The file is not JSON, or not of the coverage zone form.
    case malformed(String)
    /// An entry is not a network of the family its list is for.
    case badNetwork(zone: String, list: String, entry: String, reason: String)
    /// One network, two regions: which should its clients go to?
    case networkInTwoRegions(network: String, first: String, second: String)

    public var description: String {
        switch self {
        case .malformed(let reason):
            "the coverage zone file is malformed: \(reason)"
        case .badNetwork(let zone, let list, let entry, let reason):
            "coverage zone \"\(zone)\": \"\(entry)\" in \"\(list)\" \(reason)"
        case .networkInTwoRegions(let network, let first, let second):
            "network \(network) is listed in two coverage zones, \"\(first)\" and \"\(second)\""
        }
    }
}
