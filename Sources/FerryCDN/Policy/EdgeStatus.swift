import FerryPosix

/// One edge as the redirector knows it: where it is and how to reach it (configuration), and
/// whether it is healthy and how busy (what the health checker and the edge report).
public struct EdgeStatus: Sendable, Hashable {
    /// Where clients are sent: the host is a name or an address literal.
    public struct Address: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// `host:port`, with an IPv6 literal in brackets as in a URL.
        public var description: String {
            hostAndPort(self.host, self.port)
        }
    }

    /// Unique among the edges; also what the rendezvous hash is keyed on, so that every redirector
    /// sends a path to the same edge whatever order it lists the edges in.
    public var name: String
    public var region: String
    public var address: Address
    /// How much load the edge takes, in the unit of ``load``; also its share of hashed paths.
    public var capacity: Int
    /// True only once a health check has passed: an edge that has not been checked yet is not sent
    /// clients. The caller sets it.
    public var healthy: Bool
    /// What the edge reports: requests in flight or per second, in the unit of ``capacity``.
    public var load: Double
    /// Why the edge is not healthy, in words for `explain` (e.g. "no check has passed yet",
    /// "connection refused"); nil says only that no check has passed.
    public var healthDetail: String?

    public init(
        name: String,
        region: String,
        address: Address,
        capacity: Int,
        healthy: Bool = false,
        load: Double = 0,
        healthDetail: String? = nil
    ) {
        self.name = name
        self.region = region
        self.address = address
        self.capacity = capacity
        self.healthy = healthy
        self.load = load
        self.healthDetail = healthDetail
    }

    /// Below capacity (a load that is not a number is not below anything).
    public var hasSpareCapacity: Bool { self.load < Double(self.capacity) }

    /// Healthy and below a positive capacity: an edge the policy may send a client to.
    public var isUsable: Bool { self.healthy && self.capacity > 0 && self.hasSpareCapacity }

    /// Load over capacity, the measure "least loaded" compares across edges of different sizes.
    public var loadRatio: Double { self.capacity > 0 ? self.load / Double(self.capacity) : .infinity }
}
