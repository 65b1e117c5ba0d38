import NIOCore

/// DNS over UDP: one datagram in, at most one out, sized for what the client can take.
final class DNSDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let redirector: RedirectorCore
    private var pending = false

    init(redirector: RedirectorCore) {
        self.redirector = redirector
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = Self.unwrapInboundIn(data)
        let client = IPAddress(envelope.remoteAddress)
        let answer = envelope.data.readableBytesView.withUnsafeBytes { query in
            self.redirector.answerDNS(query, client: client, overTCP: false)
        }
        guard let answer else { return }
        var buffer = context.channel.allocator.buffer(capacity: answer.count)
        buffer.writeBytes(answer)
        context.write(Self.wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: buffer)))
            .whenFailure { _ in }
        self.pending = true
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if self.pending {
            self.pending = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // An ICMP error for one client's datagram must not stop the others': keep reading.
    }
}

/// DNS over TCP (RFC 7766): each message behind a two-byte length, several on one connection.
struct DNSStreamFramer: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self),
            buffer.readableBytes >= 2 + Int(length)
        else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 2)
        context.fireChannelRead(Self.wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }
}

/// Answers the messages of one TCP connection, each behind its length.
final class DNSStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let redirector: RedirectorCore
    private var client: IPAddress?

    init(redirector: RedirectorCore) {
        self.redirector = redirector
    }

    func channelActive(context: ChannelHandlerContext) {
        self.client = IPAddress(context.channel.remoteAddress)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let query = Self.unwrapInboundIn(data)
        let answer = query.readableBytesView.withUnsafeBytes { bytes in
            self.redirector.answerDNS(bytes, client: self.client, overTCP: true)
        }
        guard let answer else { return context.close(promise: nil) }
        var buffer = context.channel.allocator.buffer(capacity: answer.count + 2)
        buffer.writeInteger(UInt16(answer.count))
        buffer.writeBytes(answer)
        context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { return context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

extension IPAddress {
    /// The address of a socket peer, read from the socket address itself (no text on the way).
    init?(_ address: SocketAddress?) {
        switch address {
        case .v4(let v4)?: self = .v4(UInt32(bigEndian: v4.address.sin_addr.s_addr))
        case .v6(let v6)?:
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            guard let address = IPAddress(bytes: bytes) else { return nil }
            self = address
        default: return nil
        }
    }
}
