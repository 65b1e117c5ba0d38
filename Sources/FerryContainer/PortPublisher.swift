import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// `--publish HOST_PORT:PORT`: listens on the host's port and relays each connection to the
/// container's address and port, bytes both ways (as docker-proxy and rootlesskit's port driver
/// do: no firewall rules to leave behind when Ferry is killed). Reading waits for writing, so a
/// slow side holds the other back instead of filling memory.
public final class PortPublisher: Sendable {
    /// The address it listens on, the port chosen when HOST_PORT was 0.
    public let localAddress: SocketAddress
    /// The container's address and port it relays to.
    public let target: SocketAddress
    private let server: Channel
    private let connections: Connections

    private init(localAddress: SocketAddress, target: SocketAddress, server: Channel, connections: Connections) {
        self.localAddress = localAddress
        self.target = target
        self.server = server
        self.connections = connections
    }

    /// The host's port it listens on.
    public var hostPort: Int { self.localAddress.port ?? 0 }

    /// What it forwards, as Ferry reports it: `0.0.0.0:HOST_PORT -> ADDRESS:PORT`.
    public var forwarding: String {
        "0.0.0.0:\(self.hostPort) -> \(self.target.ipAddress ?? "?"):\(self.target.port ?? 0)"
    }

    /// Publishes each of a started container's `--publish` mappings on its private address; all
    /// or none (those already listening close again when one cannot).
    public static func publish(
        _ mappings: [ContainerSpec.PortMapping],
        of container: Container
    ) async throws -> [PortPublisher] {
        guard let network = container.network else { return [] }
        var publishers: [PortPublisher] = []
        do {
            for mapping in mappings {
                let target = try SocketAddress(ipAddress: network.containerAddress, port: mapping.containerPort)
                publishers.append(try await Self.start(hostPort: mapping.hostPort, target: target))
            }
        } catch {
            for publisher in publishers { await publisher.close() }
            throw ContainerError("cannot publish the container's ports: \(error)")
        }
        return publishers
    }

    public static func start(hostPort: Int, target: SocketAddress) async throws -> PortPublisher {
        let connections = Connections()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { inbound in
                guard connections.insert(inbound) else { return inbound.close() }
                return inbound.eventLoop.makeCompletedFuture { try Self.relay(inbound, to: target) }
            }
            .bind(host: "0.0.0.0", port: hostPort)
            .get()
        guard let address = server.localAddress else {
            try? await server.close()
            throw ContainerError("the published port has no address")
        }
        return PortPublisher(localAddress: address, target: target, server: server, connections: connections)
    }

    /// Stops listening and closes every client's connection; returns once they are closed. Each
    /// connection to the container closes once what the client sent before is written to it.
    public func close() async {
        try? await self.server.close()
        for connection in self.connections.closeAll() {
            connection.close(promise: nil)
            try? await connection.closeFuture.get()
        }
    }

    /// Joins the client's connection to one made to the container from the same event loop. The
    /// client's half joins at once, so that nothing it sends meanwhile is lost; a connection the
    /// container refuses (not listening yet, stopped for a move) ends alone.
    private static func relay(_ inbound: Channel, to target: SocketAddress) throws {
        let (toContainer, toClient) = GlueHandler.matchedPair()
        try inbound.pipeline.syncOperations.addHandler(toContainer)
        let toClientOnLoop = NIOLoopBound(toClient, eventLoop: inbound.eventLoop)
        ClientBootstrap(group: inbound.eventLoop)
            .connectTimeout(.seconds(5))
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { outbound in
                // A client gone before the container answered takes the attempt with it; once
                // joined, the handlers end one side with the other.
                inbound.closeFuture.whenComplete { _ in
                    if !toClientOnLoop.value.isJoined { outbound.close(promise: nil) }
                }
                return outbound.eventLoop.makeSucceededVoidFuture()
            }
            .connect(to: target)
            .whenComplete { result in
                switch result {
                case .success(let outbound):
                    do {
                        try outbound.pipeline.syncOperations.addHandler(toClientOnLoop.value)
                    } catch {
                        inbound.close(promise: nil)
                        outbound.close(promise: nil)
                    }
                case .failure:
                    inbound.close(promise: nil)
                }
            }
    }
}

/// The connections a publisher relays, so that closing it closes them; once closed it takes no
/// more.
private final class Connections: Sendable {
    private struct State {
        var open: [ObjectIdentifier: Channel] = [:]
        var closed = false
    }

    private let state = NIOLockedValueBox(State())

    /// Tracks the connection until it closes; false once the publisher is closed.
    func insert(_ channel: Channel) -> Bool {
        let key = ObjectIdentifier(channel)
        let taken = self.state.withLockedValue { state in
            guard !state.closed else { return false }
            state.open[key] = channel
            return true
        }
        if taken {
            channel.closeFuture.whenComplete { _ in
                _ = self.state.withLockedValue { $0.open.removeValue(forKey: key) }
            }
        }
        return taken
    }

    /// Takes no more, and hands back those still open.
    func closeAll() -> [Channel] {
        self.state.withLockedValue { state in
            state.closed = true
            return Array(state.open.values)
        }
    }
}
