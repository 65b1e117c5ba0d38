import FerryWire
import NIOCore

/// One connection of the key-value service on NIO's pipeline, where its TLS is: decodes a
/// request, answers it at once or when the store has (``KVReply``).
final class KVHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let store: any KVStorage
    private let local: KVStore?

    init(store: any KVStorage) {
        self.store = store
        self.local = store as? KVStore
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        let requestID = frame.header.requestID
        let timer = KVReply.timer(for: frame.header.kind)
        let started = NIODeadline.now()
        let channel = context.channel
        switch KVReply.to(frame, store: self.store, local: self.local) {
        case .now(let answer):
            // Flushed once per read burst, so a pipelining client costs one write syscall.
            context.write(Self.wrapOutboundOut(answer.frame), promise: nil)
            timer?.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
        case .write(let write):
            // Writes wait for the group commit's fsync on the writer thread; the answer goes
            // back through the connection's event loop.
            self.store.enqueue(write) { result in
                channel.writeAndFlush(KVAnswer(result, requestID: requestID).frame, promise: nil)
                timer?.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
            }
        case .later(let read):
            Task {
                channel.writeAndFlush(await read().frame, promise: nil)
                timer?.recordNanoseconds((NIODeadline.now() - started).nanoseconds)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }
}
