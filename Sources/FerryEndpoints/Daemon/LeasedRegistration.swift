import FerryWire
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Keeps one service registered at a registry (an endpoint daemon or etcd) for as long as it
/// runs: registers, renews every third of the ttl, registers again when the registry no longer
/// holds the lease (a daemon restarted, or the lease ran out while the service could not reach
/// it), and deregisters on shutdown.
///
/// Because renewals come every `ttl / 3`, a restarted daemon has the registration back within one
/// renewal interval of coming up.
public final class LeasedRegistration: Service, Sendable {
    public let name: String
    public let endpoints: [ServiceEndpoint]
    public let metadata: [String: String]
    public let ttl: Duration
    private let registry: RegistryAddress
    private let logger: Logger
    private let current = NIOLockedValueBox<EndpointLease?>(nil)
    private let rounds = NIOLockedValueBox(0)

    /// How often the lease is renewed.
    public var renewalInterval: Duration { self.ttl / 3 }

    /// The lease held now, if any.
    public var lease: EndpointLease? { self.current.withLockedValue { $0 } }

    /// How many renewal rounds (one every ``renewalInterval``) have started.
    public var renewalRounds: Int { self.rounds.withLockedValue { $0 } }

    /// At the endpoint daemon at `daemonHost:daemonPort`.
    public convenience init(
        name: String,
        endpoints: [ServiceEndpoint],
        metadata: [String: String] = [:],
        ttl: Duration = .seconds(15),
        daemonHost: String = "127.0.0.1",
        daemonPort: Int = EndpointDaemon.defaultPort,
        logger: Logger = Logger(label: "ferry.endpoints")
    ) {
        self.init(
            name: name,
            endpoints: endpoints,
            metadata: metadata,
            ttl: ttl,
            registry: .daemon(ServiceEndpoint(host: daemonHost, port: daemonPort)),
            logger: logger
        )
    }

    public init(
        name: String,
        endpoints: [ServiceEndpoint],
        metadata: [String: String] = [:],
        ttl: Duration = .seconds(15),
        registry: RegistryAddress,
        logger: Logger = Logger(label: "ferry.endpoints")
    ) {
        self.name = name
        self.endpoints = endpoints
        self.metadata = metadata
        self.ttl = ttl
        self.registry = registry
        self.logger = logger
    }

    public func run() async throws {
        var client: (any Registry)?
        var failing = false
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            self.rounds.withLockedValue { $0 += 1 }
            do {
                if client?.isActive != true {
                    await client?.close()
                    client = try await self.registry.connect(logger: self.logger)
                }
                try await self.keepLease(client!)
                if failing {
                    self.logger.info("'\(self.name)' is registered at \(self.registry) again")
                    failing = false
                }
            } catch {
                // Warn once per outage, not at every retry.
                self.logger.log(
                    level: failing ? .debug : .warning,
                    "cannot keep '\(self.name)' registered at \(self.registry): \(error); retrying in \(self.renewalInterval)"
                )
                failing = true
                await client?.close()
                client = nil
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.renewalInterval) }
            } catch {
                break
            }
        }
        if let client, let lease = self.lease {
            try? await client.deregister(lease)
            self.logger.debug("deregistered '\(self.name)' (lease \(lease.leaseID))")
        }
        await client?.close()
    }

    private func keepLease(_ client: any Registry) async throws {
        if let lease = self.lease {
            do {
                let renewed = try await client.renew(lease, timeout: self.ttl)
                self.current.withLockedValue { $0 = renewed }
                return
            } catch let error as ErrorMessage where error.code == .notHeld {
                self.logger.info("\(self.registry) no longer holds the lease on '\(self.name)'; registering again")
                self.current.withLockedValue { $0 = nil }
            }
        }
        let lease = try await client.register(
            self.name,
            endpoints: self.endpoints,
            metadata: self.metadata,
            ttl: self.ttl
        )
        self.current.withLockedValue { $0 = lease }
        self.logger.debug("registered '\(self.name)' (lease \(lease.leaseID), ttl \(lease.ttlMilliseconds) ms)")
    }
}
