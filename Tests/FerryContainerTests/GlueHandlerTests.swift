import NIOCore
import NIOEmbedded
import Testing

@testable import FerryContainer

@Suite struct GlueHandlerTests {
    /// A client's bytes and end that came before the connection to the container was made reach
    /// the container once it is (NIO reads a connection to its end when the peer closes, whether
    /// or not a read was asked for).
    @Test func whatCameBeforeThePartnerJoinedIsWrittenThenTheEnd() throws {
        let loop = EmbeddedEventLoop()
        let client = EmbeddedChannel(loop: loop)
        let container = EmbeddedChannel(loop: loop)
        let anywhere = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        _ = client.connect(to: anywhere)
        _ = container.connect(to: anywhere)
        let (toContainer, toClient) = GlueHandler.matchedPair()
        try client.pipeline.syncOperations.addHandler(toContainer)
        try client.writeInbound(ByteBuffer(string: "early "))
        try client.writeInbound(ByteBuffer(string: "bytes"))
        client.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(container.isActive)

        try container.pipeline.syncOperations.addHandler(toClient)
        loop.run()
        var written = ""
        while let part = try container.readOutbound(as: ByteBuffer.self) { written += String(buffer: part) }
        #expect(written == "early bytes")
        // (An embedded channel closes whole where a socket would close its output only.)
        #expect(!container.isActive, "the client's end did not reach the container")
    }
}
