extension PolicySnapshot {
    /// The choice for a client in words, for `ferry redirector explain --client 10.1.2.3 --path /x`:
    /// where the client is, each edge considered and why it was taken or passed over, and the answer.
    ///
    /// ```
    /// client 10.1.2.3 is in region east (10.1.0.0/16)
    /// e1 (east, 0 ms): down — no check has passed yet
    /// e3 (east, 0 ms): full — load 1000 of 1000
    /// e2 (west, 70 ms): up — load 10 of 1000 (1%)
    /// answer: e2 127.0.0.3:8000 — nearest healthy edge with spare capacity; path /x hashed to it
    /// ```
    public func explain(client: IPAddress?, path: Substring? = nil) -> [String] {
        let choice = self.choose(client: client, path: path)
        let located = self.locate(client)
        var lines = [Self.describe(client: client, located, scope: choice.scopePrefixLength)]
        if let region = located.region {
            // The regions tried, nearest first, up to the one that served.
            let order = self.policy.nearest[region]
            let tried = self.serving[region] >= 0 ? order.prefix(self.skipped[region] + 1) : order[...]
            for other in tried {
                let distance = self.policy.distance(region, other).map { "\($0) ms" } ?? "unreachable"
                let range = self.policy.regionEdges[other]
                if range.isEmpty { lines.append("region \(self.policy.regions[other]) (\(distance)): no edges") }
                for index in range {
                    let edge = self.edges[index]
                    lines.append("\(edge.name) (\(edge.region), \(distance)): \(Self.state(of: edge))")
                }
            }
        } else {
            for index in self.policy.edgesByName {
                let edge = self.edges[index]
                lines.append("\(edge.name) (\(edge.region)): \(Self.state(of: edge))")
            }
        }
        lines.append(self.answer(choice, path: path))
        return lines
    }

    private static func describe(client: IPAddress?, _ located: Location, scope: Int) -> String {
        let equallyNear = "every region is treated as equally near (there is no geolocation fallback)"
        guard let client else { return "no client address: \(equallyNear)" }
        guard let zone = located.zone, let network = located.network else {
            return "client \(client) is in no coverage zone: \(equallyNear)"
        }
        // A longer network close by narrows what a resolver may share the answer with.
        let place = scope == located.prefixLength ? "\(network)" : "\(network), ECS scope /\(scope)"
        guard located.region != nil else {
            return "client \(client) is in coverage zone \(zone) (\(place)), which is not one of the CDN's regions: "
                + equallyNear
        }
        return "client \(client) is in region \(zone) (\(place))"
    }

    private static func state(of edge: EdgeStatus) -> String {
        let load = "load \(Self.number(edge.load)) of \(edge.capacity)"
        if !edge.healthy { return "down — \(edge.healthDetail ?? "no check has passed yet")" }
        if !edge.isUsable { return "full — \(load)" }
        let percent = (edge.loadRatio * 100).rounded()
        return "up — \(load)" + (percent.isFinite ? " (\(Int(percent))%)" : "")
    }

    private func answer(_ choice: PolicyChoice, path: Substring?) -> String {
        guard let edge = choice.edge else {
            let why = self.edges.isEmpty ? "there are no edges" : "every edge is down or full"
            return "answer: origin \(self.policy.origin) — \(why)"
        }
        let head = "answer: \(edge.name) \(edge.address) — "
        switch choice.reason {
        case .nearestHashed:
            return head + "nearest healthy edge with spare capacity; path \(path ?? "") hashed to it"
        case .nearestLeastLoaded:
            return head + "nearest healthy edge with spare capacity; the least loaded in region \(edge.region)"
        case .clientRegionUnknown, .noUsableEdge:
            let hashNote = path == nil ? "" : " (a path is hashed only within a known region)"
            return head + "the healthy edge with the most spare capacity, the client's region being unknown" + hashNote
        }
    }

    /// A load as an operator wrote it: whole numbers without a fraction.
    private static func number(_ value: Double) -> String {
        if value.isFinite, value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
        return String(value)
    }
}
