import FerryCDN
import FerryEndpoints
import FerryServer
import Logging
import ServiceLifecycle

/// The small CDN of `ferry up`: a file server of the demo site is the origin (its answers say
/// how long caches may keep them, and it keeps no sessions: a Set-Cookie is never cached), two
/// edges stand in two regions on their own loopback addresses (so DNS answers tell them apart),
/// and the redirector answers for `ferry.test` by DNS and HTTP.
public struct CDNDemo: Sendable {
    public let origin: FileServer
    public let edges: [EdgeServer]
    public let redirector: Redirector

    public var services: [any Service] { [self.origin] + self.edges + [self.redirector] }

    /// What the origin tells caches.
    public static let cacheControl = "max-age=60, stale-while-revalidate=30, stale-if-error=600"

    /// The zone the demo answers for.
    public static let zone = "ferry.test"

    public static func start(
        root: String,
        host: String,
        redirectorPort: Int,
        dnsPort: Int,
        daemon: ServiceEndpoint,
        logger: Logger
    ) async throws -> CDNDemo {
        let files = try await FileServer.bind(
            .init(root: root, host: host, port: 0, cacheControl: Self.cacheControl),
            logger: logger
        )
        let origin = ServiceEndpoint(host: files.host, port: files.port)
        // 127.0.0.0/8 is all loopback: each edge gets an address of its own there.
        let onLoopback = host == "127.0.0.1"
        var edges: [EdgeServer] = []
        for (name, region, address) in [("e1", "east", "127.0.0.2"), ("e2", "west", "127.0.0.3")] {
            var configuration = EdgeServer.Configuration(origin: OriginAddress(host: origin.host, port: origin.port))
            configuration.host = onLoopback ? address : host
            configuration.name = name
            configuration.region = region
            configuration.cacheBytes = 64 << 20
            configuration.endpoints = .daemon(daemon)
            edges.append(try await EdgeServer.bind(configuration, logger: logger))
        }
        var configuration = RedirectorConfiguration(
            zone: DNSName(Self.zone)!,
            origin: OriginAddress(host: origin.host, port: origin.port)
        )
        configuration.ttl = 5
        configuration.checkInterval = .seconds(1)
        configuration.regions = [
            ("east", [IPNetwork("127.0.0.0/24")!, IPNetwork("10.1.0.0/16")!]),
            ("west", [IPNetwork("127.0.2.0/24")!, IPNetwork("10.2.0.0/16")!]),
        ]
        configuration.distances = ["east": ["west": 70]]
        configuration.edges = zip(["e1", "e2"], zip(["east", "west"], edges)).map { name, placed in
            .init(name: name, region: placed.0, address: placed.1.address, capacity: 10_000)
        }
        let redirector = try await Redirector.start(
            configuration,
            host: host,
            port: redirectorPort,
            dnsPort: dnsPort,
            logger: logger
        )
        return CDNDemo(origin: files, edges: edges, redirector: redirector)
    }

    /// What `ferry up` prints of it.
    public var summary: [String] {
        let edges = self.edges.map { "\($0.configuration.name) \($0.address) (\($0.configuration.region ?? "-"))" }
        return [
            "cdn       redirector http://\(self.redirector.address)/, dns \(self.redirector.dnsAddress) (zone \(Self.zone)); edges \(edges.joined(separator: ", ")); origin http://\(self.origin.host):\(self.origin.port)/ (\(Self.cacheControl))"
        ]
    }

    /// How to try it.
    public var tryLines: [String] {
        let dns = self.redirector.dnsAddress
        return [
            "a CDN: DNS and HTTP redirection to the nearest healthy edge, which caches the file server:",
            "  dig @\(dns.host) -p \(dns.port) www.\(Self.zone) +short                        # you are in east: e1",
            "  dig @\(dns.host) -p \(dns.port) www.\(Self.zone) +subnet=10.2.0.0/16 +short    # a client in west: e2",
            "  curl -sL -D- -o /dev/null http://\(self.redirector.address)/hello.txt   # 302 to an edge, then X-Cache",
            "  swift run ferry redirector explain --config Examples/redirector.yaml --client 10.2.3.4 --path /hello.txt",
        ]
    }
}
