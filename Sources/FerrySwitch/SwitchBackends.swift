import Logging
import NIOCore

/// One of a switch's threads (an epoll loop), as its switch drives it.
protocol SwitchLoop: Sendable {
    func start() throws
    func stop()
    /// Stops accepting; ends once what the loop holds is done.
    func retire()
}

/// The backends a switch balances over: their balancer, their resolved addresses, and the health
/// checks that keep the balancer's view of them current. Every switch mode has one.
struct SwitchBackends: Sendable {
    let balancer: Balancer
    let addresses: [SocketAddress]
    let healthChecker: HealthChecker
    /// Without an interval, checks run only when asked (`checkHealthNow`).
    private let checksOnInterval: Bool

    init(
        _ backends: [BackendSpec],
        policy: BalancePolicy,
        maxConnections: Int?,
        slowStart: Duration?,
        healthCheck: HealthCheck,
        healthCheckInterval: Duration?,
        logger: Logger
    ) throws {
        self.balancer = Balancer(
            backends: backends,
            policy: policy,
            maxConnections: maxConnections,
            slowStart: slowStart
        )
        self.addresses = try backends.map { try Self.resolve($0.address) }
        self.healthChecker = try HealthChecker(
            balancer: self.balancer,
            addresses: self.addresses,
            check: healthCheck,
            interval: healthCheckInterval ?? .seconds(2),
            logger: logger
        )
        self.checksOnInterval = healthCheckInterval != nil
    }

    func startChecks() throws {
        if self.checksOnInterval { try self.healthChecker.start() }
    }

    /// Starts a switch's threads, then the health checks.
    func start(_ loops: [any SwitchLoop]) throws {
        for loop in loops { try loop.start() }
        try self.startChecks()
    }

    /// Stops the health checks and the threads, closing every connection.
    func stop(_ loops: [any SwitchLoop]) {
        self.healthChecker.stop()
        for loop in loops { loop.stop() }
    }

    /// Stops the health checks; the threads stop accepting and end when their connections have.
    func retire(_ loops: [any SwitchLoop]) {
        self.healthChecker.stop()
        for loop in loops { loop.retire() }
    }

    static func resolve(_ address: BackendAddress) throws -> SocketAddress {
        do {
            switch address {
            case .tcp(let endpoint):
                return try SocketAddress.makeAddressResolvingHost(endpoint.host, port: endpoint.port)
            case .unix(let path): return try SocketAddress(unixDomainSocketPath: path)
            }
        } catch {
            throw SwitchError.cannotResolve(address.description, "\(error)")
        }
    }
}
