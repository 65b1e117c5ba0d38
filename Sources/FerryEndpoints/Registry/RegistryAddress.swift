import Logging

/// Which registry a command or service uses: the endpoint daemon at `HOST:PORT`, or an etcd
/// cluster at `etcd://HOST:PORT[,HOST:PORT...]`.
public enum RegistryAddress: Sendable, CustomStringConvertible {
    case daemon(ServiceEndpoint)
    case etcd(EtcdClient)

    /// `HOST:PORT` (a daemon) or `etcd://HOST:PORT[,HOST:PORT...]`; nil for anything else.
    public init?(_ text: String) {
        if text.hasPrefix("etcd://") {
            guard let client = EtcdClient(url: text) else { return nil }
            self = .etcd(client)
        } else {
            guard let daemon = ServiceEndpoint(text) else { return nil }
            self = .daemon(daemon)
        }
    }

    /// What a flag taking a registry says it takes, for its error.
    public static let expected = "HOST:PORT (an endpoint daemon) or etcd://HOST:PORT[,HOST:PORT...]"

    /// A connection to the registry (for etcd, a client that opens one per call).
    public func connect(logger: Logger) async throws -> any Registry {
        switch self {
        case .daemon(let daemon):
            try await EndpointClient.connect(host: daemon.host, port: daemon.port, logger: logger)
        case .etcd(let client):
            EtcdRegistry(client)
        }
    }

    public var description: String {
        switch self {
        case .daemon(let daemon): "the endpoint daemon \(daemon)"
        case .etcd(let client): "etcd://" + client.members.map(\.description).joined(separator: ",")
        }
    }
}
