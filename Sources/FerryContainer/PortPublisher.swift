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
    private let accepting: Task<Void, Never>

    private init(localAddress: SocketAddress, target: SocketAddress, accepting: Task<Void, Never>) {
        self.localAddress = localAddress
        self.target = target
        self.accepting = accepting
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
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .bind(host: "0.0.0.0", port: hostPort) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        guard let address = server.channel.localAddress else {
            throw ContainerError("the published port has no address")
        }
        let accepting = Task<Void, Never> {
            try? await server.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in connections {
                        group.addTask { await self.relay(connection, to: target) }
                    }
                }
            }
        }
        return PortPublisher(localAddress: address, target: target, accepting: accepting)
    }

    public func close() async {
        self.accepting.cancel()
        await self.accepting.value
    }

    private static func relay(_ inbound: NIOAsyncChannel<ByteBuffer, ByteBuffer>, to target: SocketAddress) async {
        do {
            let outbound = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .connect(to: target) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            try await inbound.executeThenClose { inboundIn, inboundOut in
                try await outbound.executeThenClose { outboundIn, outboundOut in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await bytes in inboundIn { try await outboundOut.write(bytes) }
                            outboundOut.finish()
                        }
                        group.addTask {
                            for try await bytes in outboundIn { try await inboundOut.write(bytes) }
                            inboundOut.finish()
                        }
                        try await group.waitForAll()
                    }
                }
            }
        } catch {
            // One connection failing (the container not listening yet, a peer reset) ends only it.
            try? await inbound.channel.close()
        }
    }
}
