import FerryHTTP

/// An l7 routing rule: requests that match every condition given go to the backends of `group`.
/// Rules are tried in order and the first match wins; a request no rule matches goes to the
/// backends without a group (or to all of them, when every backend has one).
public struct HTTPRoute: Sendable, Equatable, CustomStringConvertible {
    /// The Host header, without its port, compared without regard to case.
    public var host: String?
    public var pathPrefix: String?
    public var header: HeaderCondition?
    public var group: String

    public struct HeaderCondition: Sendable, Equatable {
        public var name: String
        public var value: String
    }

    public init(host: String? = nil, pathPrefix: String? = nil, header: HeaderCondition? = nil, group: String) {
        self.host = host?.lowercased()
        self.pathPrefix = pathPrefix
        self.header = header
        self.group = group
    }

    /// Parses `host=NAME path=/PREFIX header=NAME:VALUE group=GROUP` (any of the first three, in
    /// any order, separated by spaces; `group` is required).
    public init?(_ text: String) {
        var route = HTTPRoute(group: "")
        for part in text.split(separator: " ") {
            guard let equals = part.firstIndex(of: "=") else { return nil }
            let key = part[..<equals]
            let value = String(part[part.index(after: equals)...])
            guard !value.isEmpty else { return nil }
            switch key {
            case "host": route.host = value.lowercased()
            case "path":
                guard value.hasPrefix("/") else { return nil }
                route.pathPrefix = value
            case "header":
                guard let colon = value.firstIndex(of: ":"), colon != value.startIndex else { return nil }
                route.header = HeaderCondition(
                    name: String(value[..<colon]),
                    value: String(value[value.index(after: colon)...])
                )
            case "group": route.group = value
            default: return nil
            }
        }
        guard !route.group.isEmpty, route.host != nil || route.pathPrefix != nil || route.header != nil else {
            return nil
        }
        self = route
    }

    /// Whether a request matches; `values` gives a header's values by its lowercased name.
    func matches(host: String, path: Substring, values: (String) -> [String]) -> Bool {
        if let wanted = self.host, wanted != host { return false }
        if let prefix = self.pathPrefix, !path.hasPrefix(prefix) { return false }
        if let header = self.header, !values(header.name.lowercased()).contains(header.value) { return false }
        return true
    }

    public var description: String {
        [
            self.host.map { "host=\($0)" }, self.pathPrefix.map { "path=\($0)" },
            self.header.map { "header=\($0.name):\($0.value)" }, "group=\(self.group)",
        ].compactMap { $0 }.joined(separator: " ")
    }
}
