import FerryHTTP

/// What routing needs, worked out once: each route's backends, the default group, the backends'
/// cookie tokens.
struct RoutingPlan: Sendable {
    let options: Options
    let routes: [(route: HTTPRoute, outside: Set<Int>)]
    /// Backends a request no route matches may not go to.
    let outsideDefault: Set<Int>
    let tokens: [String]
    let tokenIndex: [String: Int]
    let backendCount: Int

    typealias Options = HTTPSwitch.Options

    init(backends: [BackendSpec], options: Options) {
        self.options = options
        let all = Set(backends.indices)
        self.routes = options.routes.map { route in
            (route, all.subtracting(backends.indices.filter { backends[$0].group == route.group }))
        }
        let ungrouped = backends.indices.filter { backends[$0].group == nil }
        self.outsideDefault = ungrouped.isEmpty ? [] : all.subtracting(ungrouped)
        self.tokens = backends.map { String(Balancer.hash(Array($0.address.description.utf8)), radix: 16) }
        self.tokenIndex = Dictionary(self.tokens.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        self.backendCount = backends.count
    }

    /// The backends a request may not go to, by the first route it matches.
    func outside(host: String, path: Substring, values: (String) -> [String]) -> Set<Int> {
        for entry in self.routes where entry.route.matches(host: host, path: path, values: values) {
            return entry.outside
        }
        return self.outsideDefault
    }

    /// The backend a request's sticky cookie names, if it names one.
    func stickyBackend(_ cookies: [String]) -> Int? {
        guard let name = self.options.stickyCookie else { return nil }
        for field in cookies {
            for pair in field.split(separator: ";") {
                let trimmed = pair.drop { $0 == " " }
                guard trimmed.hasPrefix(name + "=") else { continue }
                return self.tokenIndex[String(trimmed.dropFirst(name.count + 1))]
            }
        }
        return nil
    }
}
