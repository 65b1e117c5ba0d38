/// A ``RedirectPolicy`` with its edges' health and load at one moment, with the answers that do not
/// depend on the client worked out once: each region's least loaded usable edge and, for each
/// client region, the nearest region that has one. Rebuilt when a status changes (every few hundred
/// milliseconds at most), shared by every thread that answers queries.
public struct PolicySnapshot: Sendable {
    public let policy: RedirectPolicy
    /// The policy's edges (in its order) with their current health, load and capacity.
    public let edges: [EdgeStatus]
    /// Names of statuses that match no configured edge, for the caller to log.
    public let unknownEdges: [String]

    struct Slot: Sendable {
        var usable: Bool
        var ratio: Double
        var weight: Double
        var seed: UInt64
    }

    let slots: [Slot]
    /// Per region: its least loaded usable edge, or -1.
    let leastLoaded: [Int]
    /// Per client region: the nearest region with a usable edge, or -1.
    let serving: [Int]
    /// Per client region: how many nearer regions `serving` passed over.
    let skipped: [Int]
    /// The least loaded usable edge of all, for clients of unknown region; -1 when none.
    let leastLoadedAnywhere: Int

    init(policy: RedirectPolicy, statuses: [EdgeStatus]) {
        var edges = policy.edges
        for index in edges.indices {
            edges[index].healthy = false
            edges[index].healthDetail = "no status has been reported for it"
        }
        var unknown: [String] = []
        for status in statuses {
            guard let index = policy.edgeIndex[status.name] else {
                unknown.append(status.name)
                continue
            }
            edges[index].healthy = status.healthy
            edges[index].healthDetail = status.healthDetail
            edges[index].load = status.load
            edges[index].capacity = status.capacity
        }
        let slots = edges.indices.map { index in
            Slot(
                usable: edges[index].isUsable,
                ratio: edges[index].loadRatio,
                weight: Double(edges[index].capacity),
                seed: policy.seeds[index]
            )
        }
        // Edges are in name order within a region, so a strict `<` leaves ties to the first name.
        let leastLoaded = policy.regionEdges.map { range in
            range.reduce(-1) { best, index in
                slots[index].usable && (best < 0 || slots[index].ratio < slots[best].ratio) ? index : best
            }
        }
        var serving: [Int] = []
        var skipped: [Int] = []
        for order in policy.nearest {
            let position = order.firstIndex { leastLoaded[$0] >= 0 }
            serving.append(position.map { order[$0] } ?? -1)
            skipped.append(position ?? order.count)
        }
        self.policy = policy
        self.edges = edges
        self.unknownEdges = unknown
        self.slots = slots
        self.leastLoaded = leastLoaded
        self.serving = serving
        self.skipped = skipped
        self.leastLoadedAnywhere = policy.edgesByName.reduce(-1) { best, index in
            slots[index].usable && (best < 0 || slots[index].ratio < slots[best].ratio) ? index : best
        }
    }

    /// Where to send a client: see ``RedirectPolicy`` for the rules.
    ///
    /// - Parameters:
    ///   - client: the client's address (for DNS, the Client Subnet address if the query has one,
    ///     else the resolver's); nil when unknown.
    ///   - path: the request path for an HTTP redirect, without the query unless the query names the
    ///     object; nil for DNS.
    public func choose(client: IPAddress?, path: Substring? = nil) -> PolicyChoice {
        let located = self.locate(client)
        guard let region = located.region else {
            guard self.leastLoadedAnywhere >= 0 else { return located.choice(.origin, .noUsableEdge) }
            return located.choice(.edge(self.edges[self.leastLoadedAnywhere]), .clientRegionUnknown)
        }
        let serving = self.serving[region]
        var choice = located.choice(.origin, .noUsableEdge)
        choice.regionsSkipped = self.skipped[region]
        guard serving >= 0 else { return choice }
        choice.distance = self.policy.distance(region, serving)
        if let path {
            choice.target = .edge(self.edges[self.hashed(path, in: serving)])
            choice.reason = .nearestHashed
        } else {
            choice.target = .edge(self.edges[self.leastLoaded[serving]])
            choice.reason = .nearestLeastLoaded
        }
        return choice
    }

    /// The usable edge of the region the path hashes to; the region must have one.
    func hashed(_ path: Substring, in region: Int) -> Int {
        let key = RendezvousHash.hash(path.utf8)
        var best = self.leastLoaded[region]
        var bestScore = -Double.infinity
        for index in self.policy.regionEdges[region] where self.slots[index].usable {
            let slot = self.slots[index]
            let score = RendezvousHash.score(key: key, seed: slot.seed, weight: slot.weight)
            // Name order within the region: a strict `>` leaves ties to the first name.
            if score > bestScore {
                best = index
                bestScore = score
            }
        }
        return best
    }

    /// Where the client is, as far as the policy is concerned.
    struct Location {
        /// The client's region in the policy's ``RedirectPolicy/regions``; nil when unknown.
        var region: Int?
        var zone: String?
        var network: IPNetwork?
        var prefixLength: Int?
        var scope: Int

        func choice(_ target: PolicyChoice.Target, _ reason: PolicyChoice.Reason) -> PolicyChoice {
            PolicyChoice(
                target: target,
                reason: reason,
                clientRegion: self.zone,
                clientNetwork: self.network,
                prefixLength: self.prefixLength,
                scopePrefixLength: self.scope
            )
        }
    }

    func locate(_ client: IPAddress?) -> Location {
        guard let client else { return Location(scope: 0) }
        let found = self.policy.coverage.lookup(client)
        guard found.region >= 0 else { return Location(scope: found.scopePrefixLength) }
        let zone = Int(found.region)
        let region = self.policy.coverageRegion[zone]
        return Location(
            region: region >= 0 ? region : nil,
            zone: self.policy.coverage.regions[zone],
            network: found.network,
            prefixLength: found.prefixLength,
            scope: found.scopePrefixLength
        )
    }
}
