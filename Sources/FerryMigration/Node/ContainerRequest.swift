import FerryContainer

/// `ferry spawn --container`: a native program to run in a container on a node, a process of
/// the cluster like a guest (named, claimed at the endpoint daemon, listed by `ferry ps`).
public struct ContainerRequest: Codable, Sendable, Equatable {
    public var name: String
    /// The root file system on the node, and further read-only layers over it.
    public var rootfs: String
    public var layers: [String]
    public var arguments: [String]
    /// `K=V` strings, after the default PATH.
    public var environment: [String]
    public var memory: Int64?
    public var pids: Int?
    public var cpus: Double?
    /// The CPU weight against competing processes (`--cpu-shares`).
    public var cpuShares: UInt64?
    /// `none`, `host` or `private` (a veth pair with an address of its own).
    public var network: ContainerSpec.Network = .none
    /// `--publish HOST_PORT:PORT` mappings, on the private network.
    public var publish: [ContainerSpec.PortMapping] = []
    /// The name a container that publishes a port is registered under at the endpoint daemon
    /// (the process's name when nil).
    public var service: String?
    /// How many times it moved between nodes before.
    public var moves: Int = 0

    public init(
        name: String,
        rootfs: String,
        layers: [String] = [],
        arguments: [String],
        environment: [String] = [],
        memory: Int64? = nil,
        pids: Int? = nil,
        cpus: Double? = nil,
        network: ContainerSpec.Network = .none,
        publish: [ContainerSpec.PortMapping] = [],
        service: String? = nil
    ) {
        self.name = name
        self.rootfs = rootfs
        self.layers = layers
        self.arguments = arguments
        self.environment = environment
        self.memory = memory
        self.pids = pids
        self.cpus = cpus
        self.network = network
        self.publish = publish
        self.service = service
    }

    /// The name it is registered under when it publishes a port.
    public var serviceName: String { self.service ?? self.name }
}
