import FerryWire
import NIOCore
import NIOEmbedded
import Testing

/// The coalescer in front of a connection's codec: answers written in one turn of the event loop
/// leave as one buffer, in order, and nothing written is held back past a flush or a close.
@Suite struct WriteCoalescerTests {
    private func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addWriteCoalescer()
        return channel
    }

    @Test func framesWrittenTogetherLeaveAsOneWriteInOrder() throws {
        let channel = try self.channel()
        var promises: [EventLoopFuture<Void>] = []
        for text in ["one", "two", "three"] {
            promises.append(channel.writeAndFlush(ByteBuffer(string: text)))
        }
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil, "the flush waits for the loop's queued tasks")
        channel.embeddedEventLoop.run()
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "onetwothree"))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        for promise in promises { #expect(throws: Never.self) { try promise.wait() } }
        #expect(try channel.finish().isClean)
    }

    @Test func aLargeFrameGoesAfterWhatIsGatheredWithoutBeingCopiedIn() throws {
        let channel = try self.channel()
        let large = ByteBuffer(repeating: 7, count: 64 * 1024)
        channel.write(ByteBuffer(string: "head"), promise: nil)
        channel.write(large, promise: nil)
        channel.write(ByteBuffer(string: "tail"), promise: nil)
        channel.flush()
        channel.embeddedEventLoop.run()
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "head"))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == large)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "tail"))
        _ = try channel.finish()
    }

    @Test func aCloseSendsWhatWasWrittenBeforeIt() throws {
        let channel = try self.channel()
        channel.writeAndFlush(ByteBuffer(string: "an error answer"), promise: nil)
        channel.close(promise: nil)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "an error answer"))
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
    }
}
