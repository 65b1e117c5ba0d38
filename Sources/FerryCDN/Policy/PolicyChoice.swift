/// Where the redirect policy sends a client, with what the DNS answer and a log line need.
public struct PolicyChoice: Sendable, Hashable {
    public enum Target: Sendable, Hashable {
        /// The edge, with the status it was chosen on.
        case edge(EdgeStatus)
        /// No edge is usable: the client goes to the origin.
        case origin
    }

    public enum Reason: Sendable, Hashable {
        /// The nearest region with a usable edge; of its usable edges the least loaded (DNS, which
        /// sees no path).
        case nearestLeastLoaded
        /// The nearest region with a usable edge; the path hashed over its usable edges, so that one
        /// object stays on one edge.
        case nearestHashed
        /// The client's region is unknown (no address, no coverage zone, or a zone that is not one of
        /// the CDN's regions): every region is equally near, and the edge with the most spare
        /// capacity of all is taken. There is no geolocation fallback as in Traffic Router.
        case clientRegionUnknown
        /// Every edge is down or full.
        case noUsableEdge
    }

    public var target: Target
    public var reason: Reason
    /// The coverage zone the client matched, if any (it may name a region with no edges).
    public var clientRegion: String?
    /// The network the client matched.
    public var clientNetwork: IPNetwork?
    /// The matched network's length in the client's family, if it matched.
    public var prefixLength: Int?
    /// The EDNS Client Subnet SCOPE to answer with (0 when there is no client address): see
    /// ``CoverageZones/scopePrefixLength(for:)``.
    public var scopePrefixLength: Int
    /// How many regions nearer the client were passed over for having no usable edge.
    public var regionsSkipped: Int
    /// The distance from the client's region to the chosen edge's; nil when either is unknown or
    /// the two are unreachable from each other.
    public var distance: Int?

    public init(
        target: Target,
        reason: Reason,
        clientRegion: String? = nil,
        clientNetwork: IPNetwork? = nil,
        prefixLength: Int? = nil,
        scopePrefixLength: Int = 0,
        regionsSkipped: Int = 0,
        distance: Int? = nil
    ) {
        self.target = target
        self.reason = reason
        self.clientRegion = clientRegion
        self.clientNetwork = clientNetwork
        self.prefixLength = prefixLength
        self.scopePrefixLength = scopePrefixLength
        self.regionsSkipped = regionsSkipped
        self.distance = distance
    }

    /// The chosen edge; nil for the origin.
    public var edge: EdgeStatus? {
        if case .edge(let edge) = self.target { return edge }
        return nil
    }
}
