import FerryPosix
import FerryWire
import Logging
import NIOCore

/// A connection to an endpoint daemon. Concurrent calls share it.
public struct EndpointClient: Sendable {
    let wire: WireClient

    /// Connects to the daemon at `host:port`.
    public static func connect(
        host: String = "127.0.0.1",
        port: Int = EndpointDaemon.defaultPort,
        logger: Logger = Logger(label: "ferry.endpoints")
    ) async throws -> EndpointClient {
        EndpointClient(
            wire: try await WireClient.connect(
                host: host,
                port: port,
                maxPayloadLength: EndpointLimits.maxPayloadLength,
                logger: logger
            )
        )
    }

    /// Registers `name` under a lease of `ttl`; keep it alive with ``renew(_:)`` (or let
    /// ``LeasedRegistration`` do so).
    public func register(
        _ name: String,
        endpoints: [ServiceEndpoint],
        metadata: [String: String] = [:],
        ttl: Duration
    ) async throws -> EndpointLease {
        let request = RegisterRequest(
            name: name,
            endpoints: endpoints,
            metadata: metadata,
            ttlMilliseconds: UInt32(clamping: ttl.wholeMilliseconds)
        )
        return try await self.wire.call(request).decode(as: EndpointLease.self)
    }

    /// Renews a lease; throws an ``ErrorMessage`` with code `notHeld` when the daemon no longer
    /// holds it.
    ///
    /// - Parameter timeout: how long to wait for the answer (a renewal later than the lease is useless).
    public func renew(_ lease: EndpointLease, timeout: Duration = .seconds(30)) async throws -> EndpointLease {
        try await self.wire.call(
            RenewRequest(name: lease.name, leaseID: lease.leaseID),
            timeout: .nanoseconds(Int64(clamping: timeout.wholeNanoseconds))
        ).decode(as: EndpointLease.self)
    }

    /// Gives a lease up.
    public func deregister(_ lease: EndpointLease) async throws {
        _ = try await self.wire.call(DeregisterRequest(name: lease.name, leaseID: lease.leaseID)).decode(
            as: EndpointLease.self
        )
    }

    /// The live registrations of `name`; throws `notFound` when there are none.
    public func lookup(_ name: String) async throws -> [EndpointEntry] {
        try await self.wire.call(LookupRequest(name: name)).decode(as: EndpointEntries.self).entries
    }

    /// Every live registration whose name starts with `prefix`.
    public func list(prefix: String = "") async throws -> [EndpointEntry] {
        try await self.wire.call(ListRequest(prefix: prefix)).decode(as: EndpointEntries.self).entries
    }

    /// The entries of `name` now, then again after every change, until the connection ends or
    /// the consumer stops.
    public func watch(_ name: String) -> AsyncThrowingStream<EndpointEntries, any Error> {
        let frames = self.wire.subscribe(WatchRequest(name: name))
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await frame in frames { continuation.yield(try frame.decode(as: EndpointEntries.self)) }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Whether the connection is still open.
    public var isActive: Bool { self.wire.isActive }

    public func close() async { await self.wire.close() }
}
