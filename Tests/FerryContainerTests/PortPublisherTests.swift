import FerryTestSupport
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import FerryContainer

/// The publisher as a container's clients meet it: bytes both ways, a refused connection ending
/// alone, and a close (a container moving away) that ends every connection while more arrive.
@Suite struct PortPublisherTests {
    @Test func relaysBytesBothWaysAndTheEndOfEachSide() async throws {
        let target = try await EchoServer.start()
        let publisher = try await PortPublisher.start(hostPort: 0, target: target.address)
        let client = try TestClient(port: publisher.hostPort)
        try client.send("hello, container")
        #expect(client.text(atLeast: 16) == "hello, container")
        client.finishSending()
        // The echo server ends its side when ours ended: the end came through the relay both ways.
        #expect(client.isClosedByPeer)
        await publisher.close()
        try await target.close()
    }

    /// A client that sends its request and ends its side, then reads slowly: the container's
    /// whole answer reaches it, though the container ended its side long before the client read
    /// the last of it (a close there must wait for what is still to be written).
    @Test func anAnswerLargerThanTheBuffersArrivesWholeAfterBothSidesEnded() async throws {
        let size = 16 << 20
        let target = try await EchoServer.start(answeringAtEnd: size)
        let publisher = try await PortPublisher.start(hostPort: 0, target: target.address)
        let client = try TestClient(port: publisher.hostPort, receiveBuffer: 4096)
        try client.send("request")
        client.finishSending()
        let answer = Array(client.receive(size + 7 + 1))
        #expect(answer.count == size + 7, "the answer was cut off")
        #expect(client.isClosedByPeer)
        await publisher.close()
        try await target.close()
    }

    @Test func aConnectionTheContainerRefusesEndsAloneAndThePortStaysOpen() async throws {
        let refusing = try ClosedPort()
        let publisher = try await PortPublisher.start(
            hostPort: 0,
            target: try SocketAddress(ipAddress: "127.0.0.1", port: refusing.port)
        )
        for _ in 0..<3 {
            let client = try TestClient(port: publisher.hostPort)
            #expect(client.isClosedByPeer)
        }
        await publisher.close()
    }

    @Test func closingUnderAStreamOfConnectionsEndsEveryOneAndStopsListening() async throws {
        let target = try await EchoServer.start()
        let publisher = try await PortPublisher.start(hostPort: 0, target: target.address)
        // Idle connections, their relays in place (each has had an answer).
        var idle: [TestClient] = []
        for index in 0..<20 {
            let client = try TestClient(port: publisher.hostPort)
            try client.send("idle \(index)\n")
            #expect(client.line() == "idle \(index)")
            idle.append(client)
        }
        // Connections arriving while it closes: some are accepted and not yet relayed, some are
        // connecting to the container, some are relayed.
        let port = publisher.hostPort
        let made = Counter()
        let stream = Task.detached {
            while let client = try? TestClient(port: port, timeout: 5) {
                client.send(Array("x\n".utf8))
                _ = client.line()
                made.add()
            }
        }
        #expect(await eventually { made.value >= 20 }, "connections through the publisher stalled")
        await publisher.close()
        // The stream ends at the first connection refused: the port no longer listens.
        await stream.value
        for client in idle {
            #expect(client.isClosedByPeer, "an idle relayed connection outlived its publisher")
        }
        #expect(throws: TestFailure.self) { try TestClient(port: port) }
        try await target.close()
    }
}

private final class Counter: Sendable {
    private let count = Atomic(0)
    func add() { self.count.add(1, ordering: .relaxed) }
    var value: Int { self.count.load(ordering: .relaxed) }
}

/// A TCP echo server on loopback that ends its output when its input ends, after `answeringAtEnd`
/// more bytes.
private struct EchoServer {
    let channel: Channel
    var address: SocketAddress { self.channel.localAddress! }

    static func start(answeringAtEnd: Int = 0) async throws -> EchoServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { $0.pipeline.addHandler(Echo(answeringAtEnd: answeringAtEnd)) }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return EchoServer(channel: channel)
    }

    func close() async throws { try await self.channel.close() }

    private final class Echo: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let answeringAtEnd: Int

        init(answeringAtEnd: Int) { self.answeringAtEnd = answeringAtEnd }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(data, promise: nil)
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let event = event as? ChannelEvent, case .inputClosed = event {
                // After what is still to be written: with the input ended, closing the output
                // closes the channel, which would fail its pending writes.
                let answer = context.channel.allocator.buffer(repeating: 0x61, count: self.answeringAtEnd)
                context.writeAndFlush(NIOAny(answer)).assumeIsolated().whenComplete { _ in
                    context.close(mode: .output, promise: nil)
                }
            }
        }
    }
}
