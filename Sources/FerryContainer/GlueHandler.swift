import NIOCore

/// One half of a pair that joins two channels on one event loop: what one reads, the other
/// writes; one's end of input half-closes the other's output; one's close closes the other. A
/// side reads only while its partner can take more, so a slow side holds the other back instead
/// of filling memory. (The shape of swift-nio-examples' connect-proxy `GlueHandler`: plain
/// handlers, no async stream whose writer must be finished by hand before it is dropped.)
///
/// The halves may join their channels at different times (a client's connection before the one
/// to the container exists): what the first reads meanwhile — NIO reads a connection to its end
/// when the peer closes, asked or not — is kept and written once the second joins.
final class GlueHandler {
    private enum End {
        case output
        case full
    }

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    /// What the partner read before this half joined its channel, and how the partner's side ended.
    private var early: [NIOAny] = []
    private var earlyEnd: End?

    private init() {}

    /// Two handlers, each the other's partner: add one to each channel, on their shared loop.
    static func matchedPair() -> (GlueHandler, GlueHandler) {
        let first = GlueHandler()
        let second = GlueHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    /// Whether this half is in its channel's pipeline.
    var isJoined: Bool { self.context != nil }

    private func partnerWrite(_ data: NIOAny) {
        guard let context = self.context else { return self.early.append(data) }
        context.write(data, promise: nil)
    }

    private func partnerFlush() { self.context?.flush() }

    private func partnerWriteEOF() {
        guard let context = self.context else {
            if self.earlyEnd == nil { self.earlyEnd = .output }
            return
        }
        Self.afterWrites(context) { $0.close(mode: .output, promise: nil) }
    }

    private func partnerCloseFull() {
        guard let context = self.context else {
            self.earlyEnd = .full
            return
        }
        Self.afterWrites(context) { $0.close(promise: nil) }
    }

    /// Runs `body` once every write before it is sent: the other side's end must not cut off what
    /// it sent before it ended (closing a channel fails its pending writes).
    private static func afterWrites(
        _ context: ChannelHandlerContext,
        _ body: @escaping (ChannelHandlerContext) -> Void
    ) {
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(capacity: 0)), promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in body(context) }
    }

    private func partnerBecameWritable() {
        if self.pendingRead {
            self.pendingRead = false
            self.context?.read()
        }
    }

    private var partnerWritable: Bool { self.context?.channel.isWritable ?? false }
}

extension GlueHandler: ChannelDuplexHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        for data in self.early { context.write(data, promise: nil) }
        self.early = []
        context.flush()
        switch self.earlyEnd {
        case .output: self.partnerWriteEOF()
        case .full: self.partnerCloseFull()
        case nil: break
        }
        self.earlyEnd = nil
        // The partner held its reads until this half could take what they bring.
        if context.channel.isWritable { self.partner?.partnerBecameWritable() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.partner?.partnerWrite(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.partner?.partnerCloseFull()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            self.partner?.partnerWriteEOF()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A reset or a failed write: nothing more will pass, so both close at once.
        self.partner?.context?.close(promise: nil)
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.partner?.partnerBecameWritable()
        }
    }

    func read(context: ChannelHandlerContext) {
        if let partner = self.partner, partner.partnerWritable {
            context.read()
        } else {
            self.pendingRead = true
        }
    }
}
