import FerryEndpoints

/// The origin as operators write it, `http://HOST:PORT` (port 80 when left out); only plain HTTP.
public struct OriginAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(_ text: String) {
        guard text.hasPrefix("http://") else { return nil }
        var rest = text.dropFirst("http://".count)
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.isEmpty, !rest.contains("/") else { return nil }
        if let endpoint = ServiceEndpoint(String(rest)) {
            self.init(host: endpoint.host, port: endpoint.port)
        } else if !rest.contains(":") {
            self.init(host: String(rest), port: 80)
        } else {
            return nil
        }
    }

    /// The Host header value.
    public var authority: String { self.port == 80 ? self.host : "\(self.host):\(self.port)" }

    public var description: String { "http://\(self.authority)" }
}
