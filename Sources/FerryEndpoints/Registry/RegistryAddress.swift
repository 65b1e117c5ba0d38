import Logging

/// Which registry a command or service uses: the endpoint daemon at `HOST:PORT`, or an etcd
/// cluster at `etcd://HOST:PORT[,HOST:PORT...]`.
public enum RegistryAddress: Sendable, Equatable, CustomStringConvertible {
    case daemon(ServiceEndpoint)
    case etcd(EtcdRegistry)

    /// `HOST:PORT` (a daemon) or `etcd://HOST:PORT[,HOST:PORT...]`; nil for anything else.
    public init?(_ text: String) {
        if text.hasPrefix("etcd://") {
            guard let client = EtcdClient(url: text) else { return nil }
            self = .etcd(EtcdRegistry(client))
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
        case .etcd(let registry):
            registry
        }
    }

    public var description: String {
        switch self {
        case .daemon(let daemon): "the endpoint daemon \(daemon)"
        case .etcd: self.text
        }
    }

    public static func == (a: RegistryAddress, b: RegistryAddress) -> Bool {
        switch (a, b) {
        case (.daemon(let a), .daemon(let b)): a == b
        case (.etcd(let a), .etcd(let b)): a.etcd.members == b.etcd.members && a.root == b.root
        default: false
        }
    }

    /// The address as a flag takes it: `HOST:PORT` or `etcd://HOST:PORT[,HOST:PORT...]`.
    public var text: String {
        switch self {
        case .daemon(let daemon): "\(daemon)"
        case .etcd(let registry): "etcd://" + registry.etcd.members.map(\.description).joined(separator: ",")
        }
    }
}
