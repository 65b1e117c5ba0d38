import FerryConfiguration
import FerryEndpoints
import Foundation

/// What a redirector answers with, from its YAML file; SIGHUP reads it again.
///
/// ```yaml
/// zone: cdn.test              # names under it are answered; others REFUSED
/// names: [www]                # the names served under the zone (each edge's own name is too); * for any
/// origin: http://127.0.0.1:8080
/// ttl: 5                      # seconds, for DNS answers
/// check_interval: 1           # seconds between health checks of each edge
/// regions:
///   east: {networks: [127.0.1.0/24, 10.1.0.0/16]}
///   west: {networks: [127.0.2.0/24, 10.2.0.0/16]}
/// coverage_zone_file: czf.json  # Traffic Control's coverage zone file, instead of or beside networks
/// distances: {east: {west: 70}}   # milliseconds, symmetric if one side is given
/// edges:
///   - {name: e1, region: east, address: 127.0.0.2:8000, capacity: 1000}   # capacity in requests/s
///   - {name: e2, region: west, address: 127.0.0.3:8000, capacity: 1000}
/// trusted_proxies: [127.0.0.0/8]  # whose X-Forwarded-For the HTTP side believes
/// ```
public struct RedirectorConfiguration: Sendable, ConfigurationFileContents {
    public struct Edge: Sendable, Equatable {
        public var name: String
        public var region: String
        public var address: ServiceEndpoint
        public var capacity: Int

        public init(name: String, region: String, address: ServiceEndpoint, capacity: Int) {
            self.name = name
            self.region = region
            self.address = address
            self.capacity = capacity
        }
    }

    public var zone: DNSName
    public var names: [String] = ["www"]
    public var origin: OriginAddress
    public var ttl: UInt32 = 5
    public var checkInterval: Duration = .seconds(1)
    /// Each region's client networks, in the file's order.
    public var regions: [(name: String, networks: [IPNetwork])] = []
    public var distances: [String: [String: Int]] = [:]
    public var edges: [Edge] = []
    public var trustedProxies: [IPNetwork] = []
    /// The address `ns.<zone>` (the SOA's and NS record's name server) answers with: the
    /// redirector's own DNS address, set when it starts (not read from the file).
    public var nameServerAddress: IPAddress?
    /// The SOA serial: when the configuration was read, so a reload is a new version of the zone.
    public var serial = UInt32(truncatingIfNeeded: Int(Date().timeIntervalSince1970))

    public init(zone: DNSName, origin: OriginAddress) {
        self.zone = zone
        self.origin = origin
    }

    /// Whether `name` (relative to the zone) is one the zone serves.
    func serves(_ label: String) -> Bool {
        self.names.contains("*") || self.names.contains(label)
    }

    public static func read(_ file: ConfigurationFile) throws(ConfigurationError) -> RedirectorConfiguration {
        var zone: DNSName?
        var origin: OriginAddress?
        var configuration = RedirectorConfiguration(
            zone: DNSName("invalid")!,
            origin: OriginAddress(host: "-", port: 1)
        )
        var regionsValue: ConfigurationValue?
        for (key, value) in file.settings {
            switch key.text ?? "" {
            case "zone":
                zone = try value.parsed("a domain name such as cdn.test") { text in
                    DNSName(text).flatMap { $0.labels.isEmpty ? nil : $0 }
                }
            case "names":
                configuration.names = try value.strings()
                for name in configuration.names where name != "*" && !Self.isLabel(name) {
                    throw value.refused("'\(name)' is not a DNS label (letters, digits, '-', at most 63)")
                }
            case "origin":
                origin = try value.parsed("http://HOST:PORT", OriginAddress.init)
            case "ttl":
                configuration.ttl = UInt32(try value.integer(in: 0...86_400))
            case "check_interval":
                configuration.checkInterval = try value.seconds()
            case "regions":
                regionsValue = value
                for (name, region) in try value.entries() {
                    let regionName = try name.string()
                    var networks: [IPNetwork] = []
                    for (field, setting) in try region.entries() {
                        guard field.text == "networks" else { throw field.refused("a region has only 'networks'") }
                        for text in try setting.strings() {
                            guard let network = IPNetwork(text) else {
                                throw setting.refused("'\(text)' is not a network such as 10.1.0.0/16")
                            }
                            networks.append(network)
                        }
                    }
                    configuration.regions.append((regionName, networks))
                }
            case "coverage_zone_file":
                let path = try value.string()
                let relative =
                    path.hasPrefix("/") ? path : (file.file as NSString).deletingLastPathComponent + "/" + path
                do {
                    let json = try Data(contentsOf: URL(fileURLWithPath: relative))
                    for (network, region) in try CoverageZoneFile.parse(json: json).zones.networks {
                        if let index = configuration.regions.firstIndex(where: { $0.name == region }) {
                            configuration.regions[index].networks.append(network)
                        } else {
                            configuration.regions.append((region, [network]))
                        }
                    }
                } catch {
                    throw value.refused("\(relative): \(error)")
                }
            case "distances":
                for (from, row) in try value.entries() {
                    for (to, distance) in try row.entries() {
                        configuration.distances[try from.string(), default: [:]][try to.string()] =
                            try distance.integer(in: 0...1_000_000)
                    }
                }
            case "edges":
                for item in try value.list() {
                    configuration.edges.append(try Self.edge(item))
                }
            case "trusted_proxies":
                configuration.trustedProxies = try value.strings().map { text throws(ConfigurationError) in
                    guard let network = IPNetwork(text) else { throw value.refused("'\(text)' is not a network") }
                    return network
                }
            default:
                throw key.refused(
                    "unknown setting; use zone, names, origin, ttl, check_interval, regions, coverage_zone_file, distances, edges or trusted_proxies"
                )
            }
        }
        guard let zone else { throw file.root.refused("zone: is missing (the domain the redirector answers for)") }
        guard let origin else { throw file.root.refused("origin: is missing (http://HOST:PORT, the last resort)") }
        configuration.zone = zone
        configuration.origin = origin
        if let problem = configuration.problem() { throw (regionsValue ?? file.root).refused(problem) }
        do {
            _ = try configuration.policy()
        } catch {
            throw (regionsValue ?? file.root).refused("\(error)")
        }
        return configuration
    }

    /// The policy the configuration describes; edges start down until checked.
    func policy() throws -> RedirectPolicy {
        try RedirectPolicy(
            coverage: CoverageZones(self.regions.flatMap { region in region.networks.map { ($0, region.name) } }),
            distances: RegionDistances(self.distances),
            regions: self.regions.map(\.name),
            edges: self.edges.map { edge in
                EdgeStatus(
                    name: edge.name,
                    region: edge.region,
                    address: .init(host: edge.address.host, port: edge.address.port),
                    capacity: edge.capacity
                )
            },
            origin: "\(self.origin)"
        )
    }

    private static func edge(_ item: ConfigurationValue) throws(ConfigurationError) -> Edge {
        var name: String?
        var region: String?
        var address: ServiceEndpoint?
        var capacity = 1000
        for (key, value) in try item.entries() {
            switch key.text ?? "" {
            case "name":
                name = try value.string()
                guard Self.isLabel(name!) else { throw value.refused("an edge's name must be a DNS label") }
            case "region": region = try value.string()
            case "address":
                address = try value.address()
                guard IPAddress(address!.host) != nil else {
                    throw value.refused("must be IP:PORT (DNS answers carry the edge's IP address)")
                }
            case "capacity": capacity = try value.integer(in: 1...Int.max)
            default: throw key.refused("an edge has name, region, address and capacity")
            }
        }
        guard let name, let region, let address else { throw item.refused("an edge needs name, region and address") }
        return Edge(name: name, region: region, address: address, capacity: capacity)
    }

    /// What is wrong with the whole, if anything: regions that edges or distances name must exist.
    public func problem() -> String? {
        let regions = Set(self.regions.map(\.name))
        if let edge = self.edges.first(where: { !regions.contains($0.region) }) {
            return "edge \(edge.name) is in region '\(edge.region)', which is not under regions:"
        }
        for (from, row) in self.distances {
            for to in [from] + Array(row.keys) where !regions.contains(to) {
                return "distances name region '\(to)', which is not under regions:"
            }
        }
        var seen = Set<String>()
        for edge in self.edges where !seen.insert(edge.name).inserted {
            return "two edges are named \(edge.name)"
        }
        if self.edges.isEmpty { return "edges: lists no edge" }
        return nil
    }

    static func isLabel(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 63 && !text.hasPrefix("-") && !text.hasSuffix("-")
            && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
    }
}
