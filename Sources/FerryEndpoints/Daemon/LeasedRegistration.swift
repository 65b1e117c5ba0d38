import FerryWire
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Keeps one service registered at an endpoint daemon for as long as it runs: registers, renews
/// every third of the ttl, registers again when the daemon no longer holds the lease (it restarted,
/// or the lease ran out while the service could not reach it), and deregisters on shutdown.
///
/// Because renewals come every `ttl / 3`, a restarted daemon has the registration back within one
/// renewal interval of coming up.
public final class LeasedRegistration: Service, Sendable {
    public let name: String
    public let endpoints: [ServiceEndpoint]
    public let metadata: [String: String]
    public let ttl: Duration
    private let daemonHost: String
    private let daemonPort: Int
    private let logger: Logger
    private let current = NIOLockedValueBox<EndpointLease?>(nil)
    private let rounds = NIOLockedValueBox(0)

    /// How often the lease is renewed.
    public var renewalInterval: Duration { self.ttl / 3 }

    /// The lease held now, if any.
    public var lease: EndpointLease? { self.current.withLockedValue { $0 } }

    /// How many renewal rounds (one every ``renewalInterval``) have started.
    public var renewalRounds: Int { self.rounds.withLockedValue { $0 } }

    public init(
        name: String,
        endpoints: [ServiceEndpoint],
        metadata: [String: String] = [:],
        ttl: Duration = .seconds(15),
        daemonHost: String = "127.0.0.1",
        daemonPort: Int = EndpointDaemon.defaultPort,
        logger: Logger = Logger(label: "ferry.endpoints")
    ) {
        self.name = name
        self.endpoints = endpoints
        self.metadata = metadata
        self.ttl = ttl
        self.daemonHost = daemonHost
        self.daemonPort = daemonPort
        self.logger = logger
    }

    public func run() async throws {
        var client: EndpointClient?
        var failing = false
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            self.rounds.withLockedValue { $0 += 1 }
            do {
                if client?.isActive != true {
                    await client?.close()
                    client = try await EndpointClient.connect(
                        host: self.daemonHost,
                        port: self.daemonPort,
                        logger: self.logger
                    )
                }
                try await self.keepLease(client!)
                if failing {
                    self.logger.info("'\(self.name)' is registered at \(self.daemonHost):\(self.daemonPort) again")
                    failing = false
                }
            } catch {
                // Warn once per outage, not at every retry.
                self.logger.log(
                    level: failing ? .debug : .warning,
                    "cannot keep '\(self.name)' registered at the endpoint daemon \(self.daemonHost):\(self.daemonPort): \(error); retrying in \(self.renewalInterval)"
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

    private func keepLease(_ client: EndpointClient) async throws {
        if let lease = self.lease {
            do {
                let renewed = try await client.renew(lease)
                self.current.withLockedValue { $0 = renewed }
                return
            } catch let error as ErrorMessage where error.code == .notHeld {
                self.logger.info("the endpoint daemon no longer holds the lease on '\(self.name)'; registering again")
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
